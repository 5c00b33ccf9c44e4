//! One instance per storage directory and per port, and a bounded shutdown, black-box with real
//! processes: a second `ampere` on the same storage directory (embedded Postgres included) or on
//! the same port stops at once with one clear line and leaves the first untouched; SIGTERM ends
//! the process within its bound even when Postgres is down, and the end of the replication stream
//! at shutdown is not reported as a protocol error.

mod support;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::crash::{CrashOpts, Restartable};
use support::Client;

/// Bound on a process that must exit by itself (a hang fails the test instead of blocking it).
const EXIT_WAIT: Duration = Duration::from_secs(30);

fn ampere() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ampere"));
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("ELECTRIC_INSECURE", "true")
        .env("AMPERE_LISTEN_ADDR", "127.0.0.1")
        .env("AMPERE_CORES", "2")
        .stdin(Stdio::null());
    c
}

/// Runs a process that must stop by itself, bounded; returns its output.
fn run_to_exit(mut cmd: Command) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ampere");
    let deadline = Instant::now() + EXIT_WAIT;
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "the second instance kept running:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

fn health(port: u16) -> Option<String> {
    Client::new(port)
        .try_get("/v1/health")
        .ok()
        .map(|r| r.body_str().to_string())
}

fn wait_active(port: u16, child: &mut Child, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if health(port).is_some_and(|h| h.contains("active")) {
            return;
        }
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!(
                "first instance exited ({status}):\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "first instance not active:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sigterm(child: &Child) {
    // SAFETY: a plain signal to our own child process.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
}

/// The embedded-Postgres default: the second instance on the same directory must not recover its
/// files, start or stop its cluster, or share its port; the first keeps serving and stops cleanly.
#[test]
fn a_second_instance_on_the_same_storage_directory_stops_at_once() {
    let dir = std::env::temp_dir().join(format!("ampere-instances-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("test dir");
    let storage = dir.join("storage");
    let log_path = dir.join("first.log");
    let log = std::fs::File::create(&log_path).expect("log");
    let first_port = testkit::ports::lease();
    let mut first = ampere()
        .env("ELECTRIC_STORAGE_DIR", &storage)
        .env("ELECTRIC_PORT", first_port.port().to_string())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("spawn the first instance");
    wait_active(first_port.port(), &mut first, &log_path);

    let second_port = testkit::ports::lease();
    let mut second = ampere();
    second
        .env("ELECTRIC_STORAGE_DIR", &storage)
        .env("ELECTRIC_PORT", second_port.port().to_string());
    let out = run_to_exit(second);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("is in use by another ampere process")
            && stderr.contains(&format!("pid {}", first.id())),
        "{stderr}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("embedded Postgres"),
        "the second instance touched the cluster: {}",
        String::from_utf8_lossy(&out.stdout)
    );

    // The first is untouched: still active, its cluster still serving its queries.
    assert_eq!(
        health(first_port.port()).as_deref(),
        Some(r#"{"status":"active"}"#)
    );
    let r = Client::new(first_port.port()).get("/v1/shape?table=no_such_table&offset=-1");
    assert_eq!(r.status, 400, "{}", r.body_str());
    assert!(r.body_str().contains("does not exist"), "{}", r.body_str());

    sigterm(&first);
    let deadline = Instant::now() + EXIT_WAIT;
    let status = loop {
        if let Some(s) = first.try_wait().expect("try_wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "first instance ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(
        !storage.join("postgres/data/postmaster.pid").exists(),
        "the embedded cluster is still running:\n{log}"
    );
    assert!(!log.contains("protocol violation"), "{log}");
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn a_second_instance_on_the_same_port_stops_at_once() {
    let cluster = support::cluster();
    let db = cluster.create_database().expect("database");
    let mut first = Restartable::start(&db.url(), CrashOpts::default());
    for metrics_clash in [false, true] {
        let storage = std::env::temp_dir().join(format!(
            "ampere-instances-port-{}-{metrics_clash}",
            std::process::id()
        ));
        let mut second = ampere();
        second
            .env("DATABASE_URL", db.url())
            .env("ELECTRIC_STORAGE_DIR", &storage)
            .env("ELECTRIC_REPLICATION_STREAM_ID", "second");
        let _other_port;
        if metrics_clash {
            // Its own HTTP port, and the first instance's port for metrics.
            _other_port = testkit::ports::lease();
            second
                .env("ELECTRIC_PORT", _other_port.port().to_string())
                .env("ELECTRIC_PROMETHEUS_PORT", first.port.to_string());
        } else {
            second.env("ELECTRIC_PORT", first.port.to_string());
        }
        let out = run_to_exit(second);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(&format!("listen on 127.0.0.1:{}", first.port))
                && stderr.contains("already in use by another process"),
            "{stderr}"
        );
        let _ = std::fs::remove_dir_all(&storage);
        // Every connection still reaches the first instance (none is split off to the second).
        for _ in 0..20 {
            assert_eq!(first.health().as_deref(), Some("active"));
        }
    }
    first.stop();
    assert!(
        first.log().contains("received signal 15"),
        "{}",
        first.log_tail(20)
    );
}

/// SIGTERM while Postgres is down: no reconnect attempts hold the exit back, and the stream's
/// end at shutdown is no "protocol violation" (Postgres up, first round; down, second round).
#[test]
fn sigterm_finishes_promptly_with_postgres_up_or_down() {
    let cluster = support::cluster();
    let db = cluster.create_database().expect("database");
    db.psql("CREATE TABLE items (id int PRIMARY KEY)")
        .expect("table");
    let mut server = Restartable::start(&db.url(), CrashOpts::default());
    assert_eq!(
        server
            .client()
            .get("/v1/shape?table=items&offset=-1")
            .status,
        200
    );
    for postgres_up in [true, false] {
        if !postgres_up {
            server.restart();
            let seen = server.log().matches("replication stopped").count();
            cluster.stop().expect("stop Postgres");
            // The server notices (its replication connection ends) before the signal.
            support::wait_until("the lost connection logged", EXIT_WAIT, || {
                server.log().matches("replication stopped").count() > seen
            });
        }
        let pid = server.pid();
        // SAFETY: a plain signal to our own child process.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
        let status = server.wait_exit(EXIT_WAIT);
        let log = server.log();
        assert!(
            status.code() == Some(0),
            "postgres up: {postgres_up}: {status}\n{log}"
        );
        assert!(!log.contains("protocol violation"), "{log}");
        assert!(
            !log.contains("did not finish within"),
            "the shutdown needed the watchdog:\n{log}"
        );
    }
    cluster.start_again().expect("start Postgres again");
}
