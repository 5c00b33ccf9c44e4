//! Helpers for the durability tests: an `ampere` process that can be `kill -9`ed and started
//! again on the same port and storage directory, a blocking Postgres session (the engine's own
//! client on a private monoio runtime), shape readers that follow a shape over HTTP on a thread
//! and materialize its rows the way the official client does, and a seeded RNG.

use super::Client;
use engine::pg::{ConnectConfig, Connection};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Rows of a shape or a query: row key → column → text value (`None` = SQL NULL).
pub type Rows = BTreeMap<String, BTreeMap<String, Option<String>>>;

/// SplitMix64: a tiny seeded generator, so a failing run can be repeated with its seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi` (`hi > lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        assert!(hi > lo, "empty range {lo}..{hi}");
        lo + self.next_u64() % (hi - lo)
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.range(0, 100) < percent
    }
}

/// A seed from `var` if set, else from the clock; printed so a failure can be replayed.
pub fn seed_from_env(var: &str) -> u64 {
    let seed = std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    eprintln!("seed: {var}={seed}");
    seed
}

/// `X/Y` (pg_lsn text) → u64.
pub fn parse_pg_lsn(s: &str) -> u64 {
    let (hi, lo) = s.trim().split_once('/').expect("pg_lsn has a slash");
    (u64::from_str_radix(hi, 16).expect("lsn hi") << 32)
        | u64::from_str_radix(lo, 16).expect("lsn lo")
}

/// A blocking Postgres session on its own single-thread runtime (one per thread).
pub struct Pg {
    rt: monoio::Runtime<monoio::time::TimeDriver<monoio::LegacyDriver>>,
    conn: Connection,
}

impl Pg {
    pub fn connect(url: &str) -> Result<Self, String> {
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .map_err(|e| format!("runtime: {e}"))?;
        let cfg = ConnectConfig::from_url(url).map_err(|e| e.to_string())?;
        let conn = rt
            .block_on(Connection::connect(&cfg))
            .map_err(|e| e.to_string())?;
        Ok(Self { rt, conn })
    }

    /// Runs statements (simple protocol); returns the rows of the last result that has any.
    pub fn query(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>, String> {
        let results = self
            .rt
            .block_on(self.conn.simple_query(sql))
            .map_err(|e| format!("{sql}: {e}"))?;
        let rows = results
            .into_iter()
            .rev()
            .find(|r| !r.rows.is_empty())
            .map(|r| {
                r.rows
                    .iter()
                    .map(|row| {
                        (0..row.len())
                            .map(|i| {
                                (!row.is_null(i)).then(|| row.get(i).unwrap_or("").to_string())
                            })
                            .collect()
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(rows)
    }

    pub fn exec(&mut self, sql: &str) {
        self.query(sql).unwrap_or_else(|e| panic!("{e}"));
    }

    /// One value (first row, first column).
    pub fn value(&mut self, sql: &str) -> Option<String> {
        self.query(sql)
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next().flatten())
    }

    /// What a shape on `table` should hold: `sql` selects the key columns first (`key_cols` of
    /// them, joined into the row key) and then the shape's columns, named as in the shape.
    pub fn expected_rows(&mut self, table: &str, key_cols: usize, sql: &str) -> Rows {
        let results = self
            .rt
            .block_on(self.conn.simple_query(sql))
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let mut out = Rows::new();
        for r in results {
            for row in &r.rows {
                let cols = row.columns();
                let key = (0..key_cols)
                    .map(|i| format!("\"{}\"", row.get(i).unwrap_or("").replace('/', "//")))
                    .collect::<Vec<_>>()
                    .join("/");
                let value = (key_cols..row.len())
                    .map(|i| {
                        let v = (!row.is_null(i)).then(|| row.get(i).unwrap_or("").to_string());
                        (cols[i].clone(), v)
                    })
                    .collect();
                out.insert(format!("\"public\".\"{table}\"/{key}"), value);
            }
        }
        out
    }

    /// The slot's `confirmed_flush_lsn` (0 when the slot does not exist yet).
    pub fn confirmed_flush(&mut self) -> u64 {
        self.value("SELECT max(confirmed_flush_lsn)::text FROM pg_replication_slots")
            .map(|s| parse_pg_lsn(&s))
            .unwrap_or(0)
    }

    /// Waits (bounded) until every core has made everything up to `lsn` durable, as shown by the
    /// slot's acknowledged position.
    pub fn wait_confirmed(&mut self, lsn: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let c = self.confirmed_flush();
            if c >= lsn {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "slot confirmed_flush_lsn {c} did not reach {lsn} within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn current_lsn(&mut self) -> u64 {
        parse_pg_lsn(
            &self
                .value("SELECT pg_current_wal_lsn()::text")
                .expect("lsn"),
        )
    }
}

/// Server settings for a restartable server.
#[derive(Clone, Debug)]
pub struct CrashOpts {
    pub cores: usize,
    pub long_poll_ms: u64,
    pub io_driver: &'static str,
    /// Use this storage directory (kept on drop) instead of a private one (removed on drop).
    pub storage: Option<PathBuf>,
    /// Binary to run instead of this build's `ampere` (e.g. a release build for measurements).
    pub bin: Option<PathBuf>,
    /// Extra environment variables.
    pub env: Vec<(&'static str, String)>,
}

impl Default for CrashOpts {
    fn default() -> Self {
        Self {
            cores: 2,
            long_poll_ms: 2000,
            io_driver: "epoll",
            storage: None,
            bin: None,
            env: Vec::new(),
        }
    }
}

/// An `ampere` process that survives `kill -9` + restart on the same port and storage
/// directory. Its output (every incarnation) goes to one log file, printed when a test fails.
pub struct Restartable {
    child: Option<Child>,
    pub port: u16,
    _lease: testkit::ports::PortLease,
    pub storage: PathBuf,
    own_storage: bool,
    dir: PathBuf,
    db_url: String,
    stream_id: String,
    opts: CrashOpts,
    pub starts: u32,
}

impl Restartable {
    /// Starts the server and waits until it is active.
    pub fn start(db_url: &str, opts: CrashOpts) -> Self {
        let mut s = Self::new(db_url, opts);
        s.restart();
        s
    }

    /// Starts the server without waiting for it to become active.
    #[allow(dead_code)]
    pub fn start_detached(db_url: &str, opts: CrashOpts) -> Self {
        let mut s = Self::new(db_url, opts);
        s.spawn();
        s
    }

    fn new(db_url: &str, opts: CrashOpts) -> Self {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let stream_id = format!("d{}_{n}", std::process::id());
        let dir = std::env::temp_dir().join(format!("ampere-durability-{stream_id}"));
        std::fs::create_dir_all(&dir).expect("test dir");
        let (storage, own_storage) = match &opts.storage {
            Some(s) => (s.clone(), false),
            None => (dir.join("storage"), true),
        };
        std::fs::create_dir_all(&storage).expect("storage dir");
        // Leased for the life of the test, so no other test server takes the port while this one
        // is down between a kill and its restart (`testkit::ports`).
        let lease = testkit::ports::lease();
        Self {
            child: None,
            port: lease.port(),
            _lease: lease,
            storage,
            own_storage,
            dir,
            db_url: db_url.to_string(),
            stream_id,
            opts,
            starts: 0,
        }
    }

    pub fn client(&self) -> Client {
        Client::new(self.port)
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("ampere.log")
    }

    /// Spawns the process (it must not be running) without waiting for it.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "server already running");
        self.starts += 1;
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log file");
        let _ = writeln!(log, "==== start #{} ====", self.starts);
        let log2 = log.try_clone().expect("log fd");
        let bin = self
            .opts
            .bin
            .clone()
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_ampere")));
        let child = Command::new(bin)
            .env_clear()
            .envs(self.opts.env.iter().map(|(k, v)| (k, v)))
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("DATABASE_URL", &self.db_url)
            .env("ELECTRIC_PORT", self.port.to_string())
            .env("AMPERE_LISTEN_ADDR", "127.0.0.1")
            .env("ELECTRIC_STORAGE_DIR", &self.storage)
            .env("ELECTRIC_REPLICATION_STREAM_ID", &self.stream_id)
            .env(
                "ELECTRIC_LONG_POLL_TIMEOUT",
                self.opts.long_poll_ms.to_string(),
            )
            .env("AMPERE_IO_DRIVER", self.opts.io_driver)
            .env("AMPERE_CORES", self.opts.cores.to_string())
            .env("ELECTRIC_INSECURE", "true")
            .env("ELECTRIC_ENABLE_INTEGRATION_TESTING", "true")
            .env("AMPERE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .spawn()
            .expect("spawn ampere");
        self.child = Some(child);
    }

    /// Health status text (`active`, `starting`, `waiting`), or `None` when not answering.
    pub fn health(&self) -> Option<String> {
        let r = self.client().try_get("/v1/health").ok()?;
        let v: Value = serde_json::from_slice(&r.body).ok()?;
        v["status"].as_str().map(str::to_string)
    }

    /// Waits (bounded) until `/v1/health` reports active; returns how long it took.
    pub fn wait_active(&mut self, timeout: Duration) -> Duration {
        let t0 = Instant::now();
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!("ampere exited with {st}:\n{}", self.log_tail(60));
                }
            }
            if self.health().as_deref() == Some("active") {
                return t0.elapsed();
            }
            assert!(
                t0.elapsed() < timeout,
                "ampere not active within {timeout:?}:\n{}",
                self.log_tail(60)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts (again) and waits until active.
    pub fn restart(&mut self) -> Duration {
        self.spawn();
        self.wait_active(Duration::from_secs(60))
    }

    /// Waits (bounded) for the process to end by itself and returns how it ended.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("server running");
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = c.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                panic!(
                    "ampere still running after {timeout:?}:\n{}",
                    self.log_tail(60)
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The running process's id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server running").id()
    }

    /// `kill -9`: no chance to flush or sync anything.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait (bounded), then SIGKILL.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pid = c.id() as libc::pid_t;
            // SAFETY: plain signal to our own child process.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            eprintln!("ampere ignored SIGTERM for 10 s; killing it");
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

impl Drop for Restartable {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!(
                "---- ampere log, all {} starts (port {}) ----\n{}\n---- end ----",
                self.starts,
                self.port,
                self.log_tail(150)
            );
        }
        if self.own_storage {
            let _ = std::fs::remove_dir_all(&self.storage);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Directory of a shape's files: `<storage>/shapes/<h[0..2]>/<handle>`.
pub fn shape_dir(storage: &Path, handle: &str) -> PathBuf {
    storage.join("shapes").join(&handle[..2]).join(handle)
}

/// An offset `tx_op` as numbers (`inf` → `u64::MAX`); `None` for `-1`/`now`/garbage.
pub fn parse_offset(s: &str) -> Option<(u64, u64)> {
    let (a, b) = s.split_once('_')?;
    let b = if b == "inf" {
        u64::MAX
    } else {
        b.parse().ok()?
    };
    Some((a.parse().ok()?, b))
}

/// What a reader has seen so far.
#[derive(Debug, Default, Clone)]
pub struct ReaderState {
    pub handle: Option<String>,
    pub offset: String,
    pub rows: Rows,
    /// `global_last_seen_lsn` of the last up-to-date message.
    pub up_to_date_lsn: u64,
    pub up_to_date: bool,
    /// Handles this reader was told to drop (409 / must-refetch), with the new handle.
    pub refetches: Vec<String>,
    /// Broken invariants (duplicate/decreasing offsets, unexpected statuses, bad bodies).
    pub violations: Vec<String>,
    pub responses: u64,
    pub changes: u64,
    pub conn_errors: u64,
    pub statuses: BTreeMap<u16, u64>,
    last_change: Option<(u64, u64)>,
    last_resp: Option<(u64, u64)>,
}

impl ReaderState {
    fn reset(&mut self, why: String) {
        self.refetches.push(why);
        self.rows.clear();
        self.handle = None;
        self.offset = "-1".into();
        self.up_to_date = false;
        self.last_change = None;
        self.last_resp = None;
    }

    fn apply(&mut self, item: &Value) {
        let headers = &item["headers"];
        if let Some(control) = headers["control"].as_str() {
            match control {
                "up-to-date" => {
                    self.up_to_date = true;
                    if let Some(l) = headers["global_last_seen_lsn"].as_str() {
                        self.up_to_date_lsn = l.parse().unwrap_or(0);
                    }
                }
                "must-refetch" => self.reset("must-refetch message".into()),
                "snapshot-end" => {}
                other => self.violations.push(format!("unknown control {other}")),
            }
            return;
        }
        self.changes += 1;
        let Some(key) = item["key"].as_str() else {
            self.violations.push(format!("change without key: {item}"));
            return;
        };
        // Replicated changes carry their offset; it must increase strictly within a handle,
        // which is what "no change delivered twice" means after a replay.
        if let Some(lsn) = headers["lsn"].as_str() {
            let off = (
                lsn.parse::<u64>().unwrap_or(0),
                headers["op_position"].as_u64().unwrap_or(0),
            );
            if let Some(prev) = self.last_change {
                if off <= prev {
                    self.violations.push(format!(
                        "handle {:?}: change offset {off:?} after {prev:?} ({key})",
                        self.handle
                    ));
                }
            }
            self.last_change = Some(off);
        }
        let value = || -> BTreeMap<String, Option<String>> {
            item["value"]
                .as_object()
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().map(str::to_string)))
                        .collect()
                })
                .unwrap_or_default()
        };
        match headers["operation"].as_str() {
            Some("insert") => {
                self.rows.insert(key.to_string(), value());
            }
            Some("update") => match self.rows.get_mut(key) {
                Some(row) => row.extend(value()),
                None => self
                    .violations
                    .push(format!("update of a row the reader does not have: {item}")),
            },
            Some("delete") => {
                if self.rows.remove(key).is_none() {
                    self.violations
                        .push(format!("delete of a row the reader does not have: {item}"));
                }
            }
            _ => self.violations.push(format!("bad operation: {item}")),
        }
    }

    fn on_response(&mut self, r: &super::Resp) {
        self.responses += 1;
        *self.statuses.entry(r.status).or_default() += 1;
        match r.status {
            200 => {
                let handle = r.header("electric-handle").map(str::to_string);
                let offset = r.header("electric-offset").map(str::to_string);
                let (Some(handle), Some(offset)) = (handle, offset) else {
                    self.violations.push("200 without handle/offset".into());
                    return;
                };
                if let Some(h) = &self.handle {
                    if *h != handle {
                        self.violations
                            .push(format!("200 for handle {handle} on a request for {h}"));
                    }
                }
                self.handle = Some(handle);
                let items = match serde_json::from_slice::<Value>(&r.body) {
                    Ok(Value::Array(v)) => v,
                    _ => {
                        self.violations
                            .push(format!("body is not a JSON array: {}", r.body_str()));
                        return;
                    }
                };
                self.up_to_date = false;
                for item in &items {
                    self.apply(item);
                    if self.handle.is_none() {
                        return; // must-refetch in the body
                    }
                }
                let o = parse_offset(&offset);
                if let (Some(o), Some(prev)) = (o, self.last_resp) {
                    if o < prev {
                        self.violations
                            .push(format!("response offset {offset} went back from {prev:?}"));
                    }
                }
                self.last_resp = o.or(self.last_resp);
                self.offset = offset;
            }
            409 => {
                let next = r.header("electric-handle").unwrap_or("?").to_string();
                let old = self.handle.clone().unwrap_or_default();
                self.reset(format!("409: {old} -> {next}"));
            }
            // Not active yet (restart, Postgres down): the client retries.
            502..=504 => {}
            _ => self.violations.push(format!(
                "unexpected {} for offset {}: {}",
                r.status,
                self.offset,
                r.body_str()
            )),
        }
    }
}

/// A thread following one shape until stopped.
pub struct Reader {
    pub name: String,
    pub def: String,
    pub state: Arc<Mutex<ReaderState>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Reader {
    /// `def` is the encoded definition query (`table=…&where=…`).
    pub fn spawn(name: &str, port: u16, def: &str) -> Self {
        let state = Arc::new(Mutex::new(ReaderState {
            offset: "-1".into(),
            ..Default::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp, d) = (state.clone(), stop.clone(), def.to_string());
        let thread = std::thread::Builder::new()
            .name(format!("reader-{name}"))
            .spawn(move || {
                let client = Client::new(port);
                while !sp.load(Ordering::Relaxed) {
                    let url = {
                        let s = st.lock().expect("reader state");
                        match &s.handle {
                            None => format!("/v1/shape?{d}&offset=-1"),
                            Some(h) => format!(
                                "/v1/shape?{d}&handle={h}&offset={}{}",
                                s.offset,
                                if s.up_to_date { "&live=true" } else { "" }
                            ),
                        }
                    };
                    match client.try_get(&url) {
                        Ok(r) => {
                            let retry = r.status != 200;
                            st.lock().expect("reader state").on_response(&r);
                            if retry {
                                std::thread::sleep(Duration::from_millis(50));
                            }
                        }
                        Err(_) => {
                            st.lock().expect("reader state").conn_errors += 1;
                            std::thread::sleep(Duration::from_millis(30));
                        }
                    }
                }
            })
            .expect("spawn reader");
        Self {
            name: name.to_string(),
            def: def.to_string(),
            state,
            stop,
            thread: Some(thread),
        }
    }

    pub fn snapshot(&self) -> ReaderState {
        self.state.lock().expect("reader state").clone()
    }

    /// Waits (bounded) until the reader is up to date at or past `lsn`.
    pub fn wait_past(&self, lsn: u64, timeout: Duration) -> ReaderState {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.snapshot();
            if s.up_to_date && s.up_to_date_lsn >= lsn {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "reader {} not up to date past {lsn} within {timeout:?}: handle {:?} offset {} \
                 up_to_date {} lsn {} statuses {:?} conn errors {} violations {:?}",
                self.name,
                s.handle,
                s.offset,
                s.up_to_date,
                s.up_to_date_lsn,
                s.statuses,
                s.conn_errors,
                s.violations
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Asks the thread to stop after its current request (see [`Reader::stop`]).
    pub fn halt(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    pub fn stop(mut self) -> ReaderState {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            // A long-poll in flight ends within the long-poll timeout.
            let _ = t.join();
        }
        self.snapshot()
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Rows of `a` that differ from `b` (for failure messages), at most `max` of them.
pub fn diff(a: &Rows, b: &Rows, max: usize) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in a {
        match b.get(k) {
            None => out.push(format!("only in reader: {k} {v:?}")),
            Some(w) if w != v => out.push(format!("differs: {k} reader {v:?} postgres {w:?}")),
            _ => {}
        }
    }
    for (k, v) in b {
        if !a.contains_key(k) {
            out.push(format!("missing in reader: {k} {v:?}"));
        }
    }
    out.truncate(max);
    out
}

/// Asserts a reader's rows equal the expected rows and its invariants held.
#[track_caller]
pub fn assert_reader_matches(name: &str, s: &ReaderState, expected: &Rows) {
    assert!(
        s.violations.is_empty(),
        "reader {name}: invariants broken: {:#?}",
        &s.violations[..s.violations.len().min(20)]
    );
    let d = diff(&s.rows, expected, 20);
    assert!(
        d.is_empty(),
        "reader {name}: {} rows vs {} in Postgres; differences: {d:#?}",
        s.rows.len(),
        expected.len()
    );
}

/// One record of a shape log segment, as laid out in `docs/storage-format.md` (25-byte header:
/// len u32, crc u32, kind u8, tx u64, op u64, then `len` payload bytes). Checksums are not
/// verified: the tests only need to find record boundaries in files the server wrote.
#[derive(Clone, Copy, Debug)]
pub struct RawRecord {
    pub pos: usize,
    pub end: usize,
    pub kind: u8,
    pub tx: u64,
    pub op: u64,
}

pub const KIND_COMMIT: u8 = 2;

/// Splits a segment into records, stopping at the first one that does not fit.
pub fn raw_records(bytes: &[u8]) -> Vec<RawRecord> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 25 <= bytes.len() {
        let u64_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().expect("4 bytes")) as usize;
        let end = pos + 25 + len;
        if end > bytes.len() || bytes[pos + 8] == 0 {
            break;
        }
        out.push(RawRecord {
            pos,
            end,
            kind: bytes[pos + 8],
            tx: u64_at(pos + 9),
            op: u64_at(pos + 17),
        });
        pos = end;
    }
    out
}

/// The newest log segment of a shape (`log.<highest n>`).
pub fn last_segment(storage: &Path, handle: &str) -> PathBuf {
    let dir = shape_dir(storage, handle);
    let mut segs: Vec<(u32, PathBuf)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n = name.strip_prefix("log.")?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    segs.sort();
    segs.pop().expect("a log segment").1
}

/// Commit LSN of the last COMMIT record in a shape's newest segment (0 if none).
pub fn last_commit_in_file(storage: &Path, handle: &str) -> u64 {
    let bytes = std::fs::read(last_segment(storage, handle)).unwrap_or_default();
    raw_records(&bytes)
        .iter()
        .rev()
        .find(|r| r.kind == KIND_COMMIT)
        .map(|r| r.tx)
        .unwrap_or(0)
}

/// Runs `pg_ctl <args>` on a private testkit cluster (as the `postgres` user when root).
pub fn pg_ctl(cluster: &testkit::Cluster, args: &[&str]) {
    if let Err(e) = try_pg_ctl(cluster, args) {
        panic!("{e}");
    }
}

/// `pg_ctl` on the cluster's data directory (as the `postgres` user when running as root),
/// logging to its `server.log`; the error names the arguments and pg_ctl's output.
pub fn try_pg_ctl(cluster: &testkit::Cluster, args: &[&str]) -> Result<(), String> {
    let dir = cluster.dir().ok_or("not a private cluster")?;
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let mut cmd = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(cluster.bin("pg_ctl"));
        c
    } else {
        Command::new(cluster.bin("pg_ctl"))
    };
    cmd.arg("-D")
        .arg(dir.join("data"))
        .arg("-l")
        .arg(dir.join("server.log"))
        .args(args);
    let out = cmd.output().map_err(|e| format!("pg_ctl: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "pg_ctl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
