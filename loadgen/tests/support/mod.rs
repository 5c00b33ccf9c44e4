//! Shared by the integration tests: a throwaway `ampere` server and a `loadgen` runner.
//!
//! The server binary is `AMPERE_BIN` (set by `cargo xtask test` to the release binary it just
//! built); without it the tests build the workspace's release binary with cargo first, so they
//! never skip and never test a stale binary.

#![allow(dead_code)] // each test binary uses a different part

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The `ampere` binary under test (see the module doc). Panics when `AMPERE_BIN` names no file
/// or the build fails: a missing server is a failure, not a reason to pass.
pub fn ampere_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(path) = std::env::var_os("AMPERE_BIN") {
            let path = PathBuf::from(path);
            assert!(
                path.is_file(),
                "AMPERE_BIN={} is not a file",
                path.display()
            );
            return path;
        }
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        // A no-op when the binary is up to date; rebuilds it when the sources changed.
        let status = Command::new(cargo)
            .current_dir(&workspace)
            .args(["build", "--release", "-p", "engine", "--bin", "ampere"])
            .status()
            .expect("run cargo build for the ampere binary");
        assert!(
            status.success(),
            "cargo build --release --bin ampere failed"
        );
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace.join("target"));
        let bin = target.join("release/ampere");
        assert!(bin.is_file(), "{} missing after the build", bin.display());
        bin
    })
    .clone()
}

/// The ampere process; killed and its storage removed on drop.
pub struct Server {
    child: Child,
    pub dir: PathBuf,
    pub port: u16,
    _lease: testkit::ports::PortLease,
}

impl Server {
    pub fn start(bin: &PathBuf, database_url: &str) -> Self {
        Self::start_with_env(bin, database_url, &[])
    }

    /// Starts the server with extra environment variables.
    pub fn start_with_env(bin: &PathBuf, database_url: &str, env: &[(&str, String)]) -> Self {
        // Leased, so no other test server shares it through SO_REUSEPORT (`testkit::ports`).
        let lease = testkit::ports::lease();
        let port = lease.port();
        let stream_id = format!("loadgen_test_{}_{port}", std::process::id());
        let dir = std::env::temp_dir().join(format!("loadgen-test-{}-{port}", std::process::id()));
        std::fs::create_dir_all(dir.join("storage")).expect("storage dir");
        let log = std::fs::File::create(dir.join("ampere.log")).expect("log file");
        let mut command = Command::new(bin);
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command
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
        let server = Self {
            child,
            dir,
            port,
            _lease: lease,
        };
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

    pub fn log(&self) -> String {
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

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// One finished `loadgen` run.
pub struct Run {
    pub output: Output,
    /// The `--json` report, if it was written and parses.
    pub report: Option<serde_json::Value>,
    /// stdout, stderr and the server log, for assertion messages.
    pub context: String,
}

/// Runs `loadgen` against `server` with the global options, `--json`, and `args`.
pub fn loadgen(server: &Server, database_url: &str, name: &str, args: &[&str]) -> Run {
    let json_path = server.dir.join(format!("{name}.json"));
    let output = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["--target", &server.url()])
        .args(["--database-url", database_url])
        .args(["--server-pid", &server.pid().to_string()])
        .arg("--json")
        .arg(&json_path)
        .args(args)
        .output()
        .expect("run loadgen");
    let report = read_json(&json_path);
    let context = format!(
        "loadgen {args:?}\nstatus: {}\nstdout:\n{}\nstderr:\n{}\nampere log (tail):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        tail(&server.log(), 4000)
    );
    Run {
        output,
        report,
        context,
    }
}

fn read_json(path: &Path) -> Option<serde_json::Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn tail(text: &str, bytes: usize) -> &str {
    let mut start = text.len().saturating_sub(bytes);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}
