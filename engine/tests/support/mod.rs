//! Shared harness for the black-box Shape API tests: a throwaway Postgres database, the real
//! `ampere` binary started as a subprocess against it, and a tiny blocking HTTP/1.1 client that
//! returns exactly what went over the wire (status, every header value, raw body bytes).
//!
//! Each test builds its own `Cluster` and `Env`, so tests share nothing and can run in parallel
//! (one process per test under nextest). Dropping the `Env` kills the server; if the test is
//! panicking, the server's stderr is printed first so a failure shows what the server logged.

#![allow(dead_code)] // each test file uses a different subset of the helpers

pub mod crash;
pub mod http;
pub mod json;
pub mod tags;

pub use http::{Client, Resp};

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use testkit::{Cluster, TestDb};

/// How long the server gets to report `/v1/health` = active.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Starts a private Postgres cluster (or uses `AMPERE_TEST_DATABASE_URL`).
pub fn cluster() -> Cluster {
    Cluster::start().expect("start Postgres cluster")
}

/// Server settings a test may change; everything else is fixed by the harness.
#[derive(Clone, Debug)]
pub struct Opts {
    /// `ELECTRIC_SECRET`; `None` runs insecure.
    pub secret: Option<String>,
    pub long_poll_ms: u64,
    pub chunk_bytes: Option<u64>,
    /// `epoll` or `uring`.
    pub io_driver: &'static str,
    pub cores: usize,
    pub integration_testing: bool,
    /// `ELECTRIC_MAX_SHAPES`.
    pub max_shapes: Option<u64>,
    /// Any other environment variables for the server.
    pub env: Vec<(&'static str, String)>,
}

impl Default for Opts {
    fn default() -> Self {
        Self {
            secret: None,
            // Short, so live timeouts and out-of-bounds waits keep tests fast.
            long_poll_ms: 1000,
            chunk_bytes: None,
            io_driver: "epoll",
            cores: 1,
            integration_testing: true,
            max_shapes: None,
            env: Vec::new(),
        }
    }
}

/// A database plus the server replicating from it.
pub struct Env<'c> {
    pub db: TestDb<'c>,
    pub server: Server,
}

impl<'c> Env<'c> {
    /// Creates a fresh database, runs `setup_sql` in it, then starts the server.
    pub fn start(cluster: &'c Cluster, setup_sql: &str, opts: Opts) -> Self {
        let db = cluster.create_database().expect("create database");
        if !setup_sql.trim().is_empty() {
            db.psql(setup_sql).expect("setup SQL");
        }
        let server = Server::start(&db.url(), opts);
        Self { db, server }
    }

    pub fn client(&self) -> Client {
        self.server.client()
    }

    /// Runs SQL in the test database (through psql, so autocommit per statement unless the SQL
    /// has its own BEGIN/COMMIT).
    pub fn sql(&self, sql: &str) {
        self.db.psql(sql).expect("SQL");
    }
}

static STREAM_COUNTER: AtomicU32 = AtomicU32::new(0);

/// A running `ampere` subprocess.
pub struct Server {
    child: Child,
    pub port: u16,
    /// Held while the server runs.
    _lease: testkit::ports::PortLease,
    pub opts: Opts,
    storage: PathBuf,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl Server {
    /// Starts the server on a leased port (`testkit::ports`: no other test server can share it,
    /// which `SO_REUSEPORT` would otherwise allow silently) and waits until it reports active.
    /// An early exit (say, the port bound by something outside the tests) is retried.
    pub fn start(db_url: &str, opts: Opts) -> Self {
        let mut last = String::new();
        for _ in 0..3 {
            match Self::try_start(db_url, &opts) {
                Ok(s) => return s,
                Err(e) => last = e,
            }
        }
        panic!("ampere did not start: {last}");
    }

    fn try_start(db_url: &str, opts: &Opts) -> Result<Self, String> {
        let lease = testkit::ports::lease();
        let port = lease.port();
        let n = STREAM_COUNTER.fetch_add(1, Ordering::Relaxed);
        let stream_id = format!("t{}_{n}", std::process::id());
        let storage = std::env::temp_dir().join(format!("ampere-shape-api-{stream_id}"));
        std::fs::create_dir_all(&storage).map_err(|e| format!("storage dir: {e}"))?;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ampere"));
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("DATABASE_URL", db_url)
            .env("ELECTRIC_PORT", port.to_string())
            .env("AMPERE_LISTEN_ADDR", "127.0.0.1")
            .env("ELECTRIC_STORAGE_DIR", &storage)
            .env("ELECTRIC_REPLICATION_STREAM_ID", &stream_id)
            .env("ELECTRIC_LONG_POLL_TIMEOUT", opts.long_poll_ms.to_string())
            .env("AMPERE_IO_DRIVER", opts.io_driver)
            .env("AMPERE_CORES", opts.cores.to_string())
            .env(
                "ELECTRIC_ENABLE_INTEGRATION_TESTING",
                opts.integration_testing.to_string(),
            )
            .env("AMPERE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        if let Some(m) = opts.max_shapes {
            cmd.env("ELECTRIC_MAX_SHAPES", m.to_string());
        }
        match &opts.secret {
            Some(s) => cmd.env("ELECTRIC_SECRET", s),
            None => cmd.env("ELECTRIC_INSECURE", "true"),
        };
        if let Some(b) = opts.chunk_bytes {
            cmd.env("ELECTRIC_SHAPE_CHUNK_BYTES_THRESHOLD", b.to_string());
        }
        let mut child = cmd.spawn().map_err(|e| format!("spawn ampere: {e}"))?;
        // The log goes to stdout (tracing's default) and errors to stderr: keep both, interleaved.
        let stderr = capture_output(&mut child);
        let mut server = Self {
            child,
            port,
            _lease: lease,
            opts: opts.clone(),
            storage,
            stderr,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("exited with {status}: {}", server.stderr_text()));
            }
            if let Ok(r) = server.client().try_get("/v1/health") {
                if r.status == 200 && r.body_str().contains("active") {
                    return Ok(server);
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "not active after {START_TIMEOUT:?}: {}",
                    server.stderr_text()
                ));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn client(&self) -> Client {
        Client::new(self.port)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's resident set size in KiB (`VmRSS`).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().expect("stderr sink")).into_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "---- ampere output (port {}) ----\n{}\n---- end of ampere output ----",
                self.port,
                self.stderr_text()
            );
        }
        let _ = std::fs::remove_dir_all(&self.storage);
    }
}

/// A port for a listener the test starts itself (e.g. the metrics port), held by the returned
/// lease until it is dropped (`testkit::ports`).
pub fn lease_port() -> testkit::ports::PortLease {
    testkit::ports::lease()
}

/// One sample from the server's Prometheus scrape (`ELECTRIC_PROMETHEUS_PORT` = `port`), by its
/// full series name, e.g. `ampere_live_connections{mode="long_poll"}`.
pub fn metric(port: u16, series: &str) -> f64 {
    let r = Client::new(port).get("/metrics");
    assert_eq!(r.status, 200, "{}", r.body_str());
    r.body_str()
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{series} not in the scrape:\n{}", r.body_str()))
}

/// Polls `done` until it holds; fails the test after `timeout` (a bound, not a timing claim).
#[track_caller]
pub fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Percent-encodes a query-string value (everything but unreserved characters).
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Runs `f` on a thread; used to hold a long-poll open while the test writes to Postgres.
pub fn spawn<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Waiter<T> {
    Waiter(Some(std::thread::spawn(f)))
}

pub struct Waiter<T>(Option<std::thread::JoinHandle<T>>);

impl<T> Waiter<T> {
    pub fn join(mut self) -> T {
        match self.0.take().expect("joined once").join() {
            Ok(v) => v,
            Err(p) => std::panic::resume_unwind(p),
        }
    }
}

/// Waits until `sql` in the database returns `expected`, bounded.
pub fn wait_sql(db: &TestDb<'_>, sql: &str, expected: &str) {
    db.wait_for(sql, expected, Duration::from_secs(10))
        .expect("database condition");
}

/// The `access-control-expose-headers` value upstream sends, in its order.
pub const EXPOSE_HEADERS: &str = "electric-cursor,electric-handle,electric-has-data,electric-offset,electric-schema,electric-up-to-date,electric-internal-known-error,retry-after";
pub const JSON_CT: &str = "application/json; charset=utf-8";
pub const CC_INITIAL: &str =
    "public, max-age=604800, s-maxage=3600, stale-while-revalidate=2629746";
pub const CC_CATCH_UP: &str = "public, max-age=60, stale-while-revalidate=300";
pub const CC_LIVE: &str = "public, max-age=5, stale-while-revalidate=5";
pub const CC_409: &str = "public, max-age=60, must-revalidate";
pub const MUST_REFETCH: &str = r#"[{"headers":{"control":"must-refetch"}}]"#;

/// Whether `s` is `<digits>-<digits>` (the handle format).
pub fn is_handle(s: &str) -> bool {
    let Some((a, b)) = s.split_once('-') else {
        return false;
    };
    !a.is_empty()
        && !b.is_empty()
        && a.bytes().all(|c| c.is_ascii_digit())
        && b.bytes().all(|c| c.is_ascii_digit())
}

pub fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())
}

/// A client following one shape: the query that defines it, its handle and current offset.
pub struct Follower {
    pub client: Client,
    /// Definition params (`table=…&where=…`), already encoded.
    pub def: String,
    pub handle: String,
    pub offset: String,
}

impl Follower {
    /// Makes the initial `offset=-1` request and keeps following from its response.
    pub fn start(client: Client, def: &str) -> (Self, Resp) {
        let r = client.get(&format!("/v1/shape?{def}&offset=-1"));
        r.expect(200);
        let f = Self {
            client,
            def: def.to_string(),
            handle: r.handle(),
            offset: r.offset(),
        };
        (f, r)
    }

    pub fn url(&self, live: bool) -> String {
        format!(
            "/v1/shape?{}&handle={}&offset={}{}",
            self.def,
            self.handle,
            self.offset,
            if live { "&live=true" } else { "" }
        )
    }

    /// One request from the current offset; a 200 advances the offset.
    pub fn next(&mut self, live: bool) -> Resp {
        let r = self.client.get(&self.url(live));
        if r.status == 200 {
            self.offset = r.offset();
        }
        r
    }

    /// Opens a long-poll, runs `sql` while it is open, and returns the long-poll's response.
    pub fn live_during(&mut self, db: &TestDb<'_>, sql: &str) -> Resp {
        let client = self.client;
        let url = self.url(true);
        let waiter = spawn(move || client.get(&url));
        db.psql(sql).expect("SQL during long-poll");
        let mut r = waiter.join();
        // On a loaded machine the short long-poll may time out before the change is replicated;
        // then one more long-poll (which returns as soon as the change is there) gets it. A
        // change that never shows up still ends in a timeout response.
        if r.status == 200 && r.header("electric-has-data") == Some("false") {
            r = self.client.get(&self.url(true));
        }
        if r.status == 200 {
            self.offset = r.offset();
        }
        r
    }
}

/// The `up-to-date` control message's LSN, asserting the message's exact shape.
#[track_caller]
pub fn up_to_date_lsn(item: &serde_json::Value) -> String {
    let headers = item["headers"].as_object().expect("up-to-date headers");
    assert_eq!(headers.len(), 2, "{item}");
    assert_eq!(item.as_object().map(|o| o.len()), Some(1), "{item}");
    assert_eq!(headers["control"], "up-to-date", "{item}");
    let lsn = headers["global_last_seen_lsn"]
        .as_str()
        .expect("global_last_seen_lsn is a string")
        .to_string();
    assert!(is_digits(&lsn), "{lsn}");
    lsn
}

/// Collects a child's piped stdout and stderr, interleaved as they arrive, into one buffer
/// (read by background threads until the pipes close).
pub fn capture_output(child: &mut std::process::Child) -> Arc<Mutex<Vec<u8>>> {
    let output = Arc::new(Mutex::new(Vec::new()));
    let pipes: [Option<Box<dyn Read + Send>>; 2] = [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    ];
    for mut pipe in pipes.into_iter().flatten() {
        let sink = output.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut buf) {
                sink.lock()
                    .expect("output sink")
                    .extend_from_slice(&buf[..n]);
            }
        });
    }
    output
}
