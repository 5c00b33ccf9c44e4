//! Smoke test: a throwaway Postgres, the `ampere` binary, and `loadgen write-fanout` with 20
//! clients and 10 writes; every client must receive every write (no timing assertions).
//!
//! The server binary comes from `AMPERE_BIN`, else the workspace's `target/release/ampere`;
//! without either the test prints why and passes vacuously.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const START_TIMEOUT: Duration = Duration::from_secs(30);

fn ampere_bin() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("AMPERE_BIN") {
        return Some(PathBuf::from(path));
    }
    let release = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/ampere");
    release.exists().then_some(release)
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("probe a free port");
    listener.local_addr().expect("probed address").port()
}

/// The ampere process; killed and its storage removed on drop.
struct Server {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Server {
    fn start(bin: &PathBuf, database_url: &str) -> Self {
        let port = free_port();
        let stream_id = format!("loadgen_smoke_{}", std::process::id());
        let dir = std::env::temp_dir().join(format!("loadgen-smoke-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("storage")).expect("storage dir");
        let log = std::fs::File::create(dir.join("ampere.log")).expect("log file");
        let child = Command::new(bin)
            .env("ELECTRIC_INSECURE", "true")
            .env("DATABASE_URL", database_url)
            .env("ELECTRIC_PORT", port.to_string())
            .env("AMPERE_LISTEN_ADDR", "127.0.0.1")
            .env("ELECTRIC_STORAGE_DIR", dir.join("storage"))
            .env("ELECTRIC_REPLICATION_STREAM_ID", &stream_id)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("spawn ampere");
        let server = Self { child, dir, port };
        let deadline = Instant::now() + START_TIMEOUT;
        while !server.is_active() {
            assert!(
                Instant::now() < deadline,
                "ampere not active after {START_TIMEOUT:?}:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn is_active(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let request = "GET /v1/health HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n";
        if stream.write_all(request.as_bytes()).is_err() {
            return false;
        }
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response.starts_with("HTTP/1.1 200") && response.contains(r#""status":"active""#)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("ampere.log")).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn write_fanout_delivers_every_write_to_every_client() {
    let Some(bin) = ampere_bin() else {
        println!("skipping: no ampere binary (set AMPERE_BIN or build target/release/ampere)");
        return;
    };
    let cluster = testkit::Cluster::start().expect("start Postgres");
    let db = cluster.create_database().expect("create database");
    let server = Server::start(&bin, &db.url());
    let json_path = server.dir.join("report.json");
    let output = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["--target", &format!("http://127.0.0.1:{}", server.port)])
        .args(["--database-url", &db.url()])
        .args(["--cores", "2", "--json"])
        .arg(&json_path)
        .args(["write-fanout", "--clients", "20", "--writes", "10"])
        .args(["--writes-per-sec", "20", "--grace-secs", "20"])
        .output()
        .expect("run loadgen");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let context = format!(
        "stdout:\n{stdout}\nstderr:\n{stderr}\nampere:\n{}",
        server.log()
    );
    assert!(output.status.success(), "loadgen failed\n{context}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).expect("JSON report written"))
            .expect("JSON report parses");
    assert_eq!(report["writes_done"], 10, "{context}");
    assert_eq!(report["client_writes_expected"], 200, "{context}");
    assert_eq!(report["client_writes_received"], 200, "{context}");
    assert_eq!(report["complete"], true, "{context}");
    assert_eq!(report["latency_last_client"]["count"], 10, "{context}");
    assert_eq!(report["latency_every_client"]["count"], 200, "{context}");
    assert_eq!(report["commit"]["count"], 10, "{context}");
}
