//! Fan-out through a caching proxy (issue 16, `docs/benchmarks/cdn.md`): N simulated clients
//! long-poll ONE shape through nginx (`deploy/nginx/run`, request collapsing on) and, in the
//! same run, directly against Ampere; per write, how long until the last client has it, how
//! many requests reached Ampere (its own `ampere_http_requests_total{route="shape_get"}`), and
//! the CPU and memory of nginx (master + workers) and of Ampere.
//!
//! Every point gets a fresh database, a fresh Ampere (own slot and storage) and, for the proxy
//! mode, a fresh nginx; `loadgen write-fanout` runs as a subprocess with `--json`, its clients
//! spread over several nginx listening ports and several loopback source addresses (one
//! source address reaches one `ip:port` with at most the ephemeral port range's ~28k
//! connections). loadgen marks the write phase (first write to last delivery) and reports CPU
//! and RSS of every `--server-pid` tree and the change of Ampere's counters over it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _, Result};
use engine::runtime::IoDriver;
use serde_json::Value;
use testkit::{Cluster, TestDb};

use super::http::HttpClient;
use super::server::{free_port, AmpereServer, ServerSpec};
use crate::report::Table;

/// Admission control out of the way: direct, every client's long-poll is a request in flight
/// at Ampere ("existing"), and their initial requests arrive together ("initial").
const MAX_CONCURRENT_REQUESTS: &str = r#"{"initial":100000,"existing":100000}"#;
/// File descriptors asked for (soft and hard; raising the hard limit needs root): loadgen and
/// Ampere each hold one per client, nginx two per proxied connection at most.
const NOFILE: u64 = 262_144;
/// Time allowed for nginx to listen and answer through to Ampere.
const NGINX_READY: Duration = Duration::from_secs(20);
/// How often the load average is sampled while a point runs.
const LOAD_SAMPLE_EVERY: Duration = Duration::from_secs(2);

/// Where the clients connect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Through nginx (`deploy/nginx/run`) in front of Ampere.
    Proxy,
    /// Straight to Ampere.
    Direct,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Self::Proxy => "proxy",
            Self::Direct => "direct",
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "proxy" => Ok(Self::Proxy),
            "direct" => Ok(Self::Direct),
            other => Err(format!("unknown mode {other:?} (proxy, direct)")),
        }
    }
}

#[derive(Clone, Debug)]
pub struct CdnOptions {
    /// Client counts; each is measured in every mode, modes alternating.
    pub clients: Vec<usize>,
    pub modes: Vec<Mode>,
    pub writes: u64,
    pub writes_per_sec: f64,
    pub rows_per_write: u32,
    /// loadgen `--write-jitter-ms`.
    pub write_jitter_ms: u64,
    /// Clients start this many per second (loadgen `--spawn-per-sec`).
    pub spawn_per_sec: f64,
    pub ready_timeout_secs: u64,
    pub grace_secs: u64,
    /// nginx listening ports the proxy clients are spread over.
    pub listen_ports: usize,
    /// loadgen `--source-addrs`.
    pub source_addrs: String,
    /// loadgen processes per point (each holds one file descriptor per client, and the
    /// open-file limit is per process); the first writes, the others follow its table.
    pub loadgen_procs: usize,
    /// Threads (monoio cores) per loadgen process.
    pub loadgen_cores: usize,
    /// `AMPERE_CORES`; `None`: all.
    pub ampere_cores: Option<usize>,
    /// nginx `--workers`; `None`: nginx's `auto` (one per core).
    pub nginx_workers: Option<usize>,
    pub ampere_driver: IoDriver,
    pub loadgen_driver: IoDriver,
    pub ampere_bin: PathBuf,
    pub loadgen_bin: PathBuf,
    pub nginx_run: PathBuf,
    /// Where loadgen's JSON reports and stderr logs go.
    pub out: PathBuf,
    /// Also keep nginx's access log (one line per request, with its cache status) there.
    pub access_log: bool,
    /// Direct points with more clients are not run (Ampere holds one file descriptor per
    /// client, within its open-file limit); `None`: the open-file limit less 1,000.
    pub direct_max_clients: Option<usize>,
}

/// What one (mode, clients) point measured, read back from loadgen's JSON.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PointFigures {
    pub complete: bool,
    pub clients: u64,
    pub writes_done: u64,
    pub expected: u64,
    pub received: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub setup_secs: f64,
    pub last_p50_ms: f64,
    pub last_p99_ms: f64,
    pub last_max_ms: f64,
    pub last_mean_ms: f64,
    /// Writes every client received (the last-client figures are over these).
    pub last_count: u64,
    /// The last client counted from the write's commit acknowledgement instead of its send
    /// (leaves out Postgres's commit, which a starved machine can stretch).
    pub last_after_commit_p50_ms: f64,
    pub last_after_commit_p99_ms: f64,
    pub mean_client_mean_ms: f64,
    pub mean_client_p50_ms: f64,
    pub every_p50_ms: f64,
    pub every_p99_ms: f64,
    pub commit_mean_ms: f64,
    pub phase_secs: f64,
    pub loadgen_phase_cpu_secs: f64,
    pub loadgen_max_rss_mb: f64,
    pub ampere: Option<ServerFigures>,
    pub nginx: Option<ServerFigures>,
    /// `ampere_http_requests_total{route="shape_get"}` over the write phase, all statuses.
    pub origin_shape_requests: Option<f64>,
    /// The same by status (`200`, `409`, …).
    pub origin_by_status: Vec<(String, f64)>,
    /// The same write by write (loadgen scrapes Ampere's metrics before every write).
    pub origin_per_write: Vec<f64>,
}

/// One server over a point.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServerFigures {
    pub processes: u64,
    pub phase_cpu_secs: f64,
    pub phase_rss_start_mb: f64,
    pub phase_rss_end_mb: f64,
    pub rss_peak_mb: f64,
}

/// One measured point.
#[derive(Clone, Debug)]
pub struct Point {
    pub mode: Mode,
    pub clients: usize,
    pub figures: Result<PointFigures, String>,
    /// 1-minute load average over the point: (min, max).
    pub load: (f64, f64),
    /// loadgen's exit status (0 complete, 2 incomplete).
    pub exit: Option<i32>,
    pub wall: Duration,
}

#[derive(Debug)]
pub struct CdnReport {
    pub points: Vec<Point>,
    pub tables: Vec<Table>,
}

pub fn run(options: &CdnOptions) -> Result<CdnReport> {
    ensure!(
        !options.clients.is_empty() && !options.modes.is_empty(),
        "nothing to measure"
    );
    ensure!(
        options.listen_ports >= 1 && options.listen_ports <= 64,
        "--listen-ports must be 1..=64"
    );
    for bin in [
        &options.ampere_bin,
        &options.loadgen_bin,
        &options.nginx_run,
    ] {
        ensure!(bin.exists(), "{} does not exist", bin.display());
    }
    std::fs::create_dir_all(&options.out)
        .with_context(|| format!("create {}", options.out.display()))?;
    let nofile = raise_nofile(NOFILE)?;
    eprintln!("cdn: open-file limit {nofile}");
    let cluster = Cluster::start().context("start Postgres")?;
    let mut points = Vec::new();
    let direct_max = options
        .direct_max_clients
        .unwrap_or_else(|| usize::try_from(nofile.saturating_sub(1_000)).unwrap_or(usize::MAX));
    for &clients in &options.clients {
        for &mode in &options.modes {
            let index = points.len();
            if mode == Mode::Direct && clients > direct_max {
                eprintln!("cdn: point {index}: direct with {clients} clients skipped");
                points.push(Point {
                    mode,
                    clients,
                    figures: Err(format!(
                        "not run: Ampere holds one file descriptor per client, and its open-file \
                         limit is {nofile} (the hard limit, which this process cannot raise); \
                         direct points stop at {direct_max} clients"
                    )),
                    load: (f64::NAN, f64::NAN),
                    exit: None,
                    wall: Duration::ZERO,
                });
                continue;
            }
            eprintln!("cdn: point {index}: {} with {clients} clients", mode.name());
            let point = run_point(&cluster, options, mode, clients, index);
            match &point.figures {
                Ok(f) => eprintln!(
                    "cdn: {} {clients}: last client p50 {:.1} ms, p99 {:.1} ms; origin requests \
                     per write {}; {} of {} deliveries{}",
                    mode.name(),
                    f.last_p50_ms,
                    f.last_p99_ms,
                    f.origin_shape_requests.map_or("?".to_owned(), |n| format!(
                        "{:.1}",
                        n / f.writes_done.max(1) as f64
                    )),
                    f.received,
                    f.expected,
                    if f.complete { "" } else { " (INCOMPLETE)" }
                ),
                Err(e) => eprintln!("cdn: {} {clients} failed: {e}", mode.name()),
            }
            points.push(point);
        }
    }
    let tables = tables(options, &points, nofile);
    Ok(CdnReport { points, tables })
}

fn run_point(
    cluster: &Cluster,
    options: &CdnOptions,
    mode: Mode,
    clients: usize,
    index: usize,
) -> Point {
    let started = Instant::now();
    let load = LoadSampler::start();
    let result = (|| -> Result<(PointFigures, Option<i32>)> {
        let db = cluster.create_database().context("create a database")?;
        measure(&db, options, mode, clients, index)
    })();
    let (figures, exit) = match result {
        Ok((figures, exit)) => (Ok(figures), exit),
        Err(e) => (Err(format!("{e:#}")), None),
    };
    Point {
        mode,
        clients,
        figures,
        load: load.finish(),
        exit,
        wall: started.elapsed(),
    }
}

fn measure(
    db: &TestDb<'_>,
    options: &CdnOptions,
    mode: Mode,
    clients: usize,
    index: usize,
) -> Result<(PointFigures, Option<i32>)> {
    let metrics_port = free_port()?;
    let spec = ServerSpec {
        binary: options.ampere_bin.clone(),
        database_url: db.url(),
        driver: options.ampere_driver,
        chunk_bytes: None,
        long_poll_ms: None,
        cores: options.ampere_cores,
        env: vec![
            (
                "ELECTRIC_MAX_CONCURRENT_REQUESTS",
                MAX_CONCURRENT_REQUESTS.to_string(),
            ),
            ("ELECTRIC_PROMETHEUS_PORT", metrics_port.to_string()),
        ],
    };
    let server = AmpereServer::start(&spec, &format!("cdn_{index}"))?;
    let nginx = match mode {
        Mode::Proxy => {
            let log = options.access_log.then(|| {
                options
                    .out
                    .join(format!("cdn-{index}-proxy-{clients}.access.log"))
            });
            Some(Nginx::start(options, server.port, log.as_deref())?)
        }
        Mode::Direct => None,
    };
    let targets: Vec<String> = match &nginx {
        Some(n) => n
            .ports
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}"))
            .collect(),
        None => vec![format!("http://127.0.0.1:{}", server.port)],
    };
    let stem = format!("cdn-{index}-{}-{clients}", mode.name());
    let sync_dir = options.out.join(format!("{stem}.sync"));
    let _ = std::fs::remove_dir_all(&sync_dir);
    std::fs::create_dir_all(&sync_dir).with_context(|| format!("create {}", sync_dir.display()))?;
    let procs = options.loadgen_procs.max(1);
    let table = format!("loadgen_cdn_{index}_{}", std::process::id());
    let shares = split(clients, procs);
    let common = |i: usize| -> (Command, PathBuf, PathBuf) {
        let json = options.out.join(format!("{stem}.{i}.json"));
        let log = options.out.join(format!("{stem}.{i}.log"));
        let _ = std::fs::remove_file(&json);
        let mut command = Command::new(&options.loadgen_bin);
        command
            .arg("--target")
            .arg(targets.join(","))
            .arg("--source-addrs")
            .arg(&options.source_addrs)
            .arg("--database-url")
            .arg(db.url())
            .arg("--table")
            .arg(&table)
            .arg("--cores")
            .arg(options.loadgen_cores.to_string())
            .arg("--io-driver")
            .arg(options.loadgen_driver.to_string())
            .arg("--json")
            .arg(&json);
        (command, json, log)
    };
    let fanout_args = |clients: usize| -> Vec<String> {
        let rate = options.spawn_per_sec / procs as f64;
        [
            "write-fanout".to_owned(),
            "--clients".to_owned(),
            clients.to_string(),
            "--spawn-per-sec".to_owned(),
            rate.to_string(),
            "--writes".to_owned(),
            options.writes.to_string(),
            "--writes-per-sec".to_owned(),
            options.writes_per_sec.to_string(),
            "--rows-per-write".to_owned(),
            options.rows_per_write.to_string(),
            "--write-jitter-ms".to_owned(),
            options.write_jitter_ms.to_string(),
            "--ready-timeout-secs".to_owned(),
            options.ready_timeout_secs.to_string(),
            "--grace-secs".to_owned(),
            options.grace_secs.to_string(),
        ]
        .into()
    };
    let mut children = Children::default();
    let mut outputs = Vec::new();
    // Followers first: the leader watches their CPU and waits for them before writing.
    for (i, &share) in shares.iter().enumerate().skip(1) {
        let (mut command, json, log) = common(i);
        command
            .args(fanout_args(share))
            .arg("--sync-dir")
            .arg(&sync_dir)
            .args(["--follower-id", &i.to_string()]);
        children.spawn(&mut command, &log)?;
        outputs.push((json, log));
    }
    let (mut command, json, log) = common(0);
    command
        .arg("--server-pid")
        .arg(server.pid().to_string())
        .arg("--server-metrics")
        .arg(format!("http://127.0.0.1:{metrics_port}/metrics"));
    if let Some(n) = &nginx {
        command.arg("--server-pid").arg(n.master.to_string());
    }
    for pid in children.pids() {
        command.arg("--server-pid").arg(pid.to_string());
    }
    command.args(fanout_args(shares[0]));
    if procs > 1 {
        command
            .arg("--sync-dir")
            .arg(&sync_dir)
            .args(["--followers", &(procs - 1).to_string()]);
    }
    children.spawn(&mut command, &log)?;
    outputs.insert(0, (json, log));
    // loadgen bounds itself; this is the backstop should it hang.
    let ramp = (clients as f64 / options.spawn_per_sec).ceil() as u64;
    let span = (options.writes as f64 / options.writes_per_sec).ceil() as u64;
    let limit = Duration::from_secs(
        ramp + 2 * options.ready_timeout_secs + span + options.grace_secs + 120,
    );
    let statuses = children.wait_all(limit);
    let mut server = server;
    if let Some(status) = server.exited() {
        bail!("ampere exited during the run ({status}); its stderr is this program's");
    }
    drop(nginx);
    drop(server);
    let _ = std::fs::remove_dir_all(&sync_dir);
    let mut reports = Vec::new();
    let mut worst = Some(0);
    for ((json, log), status) in outputs.iter().zip(&statuses) {
        let code = status.as_ref().ok().and_then(|s| s.code());
        if code != Some(0) {
            worst = worst.max(code).or(code);
        }
        let ok = matches!(code, Some(0 | 2));
        if !ok {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(3).collect();
            let why = match status {
                Ok(s) => s.to_string(),
                Err(e) => e.clone(),
            };
            bail!(
                "loadgen ({}) exited with {why}: {}",
                log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
            );
        }
        let text =
            std::fs::read_to_string(json).with_context(|| format!("read {}", json.display()))?;
        reports.push(serde_json::from_str::<Value>(&text).context("parse loadgen's JSON")?);
    }
    Ok((merge_reports(&reports, mode)?, worst))
}

/// `total` clients over `parts` processes, as evenly as possible.
fn split(total: usize, parts: usize) -> Vec<usize> {
    (0..parts)
        .map(|i| total / parts + usize::from(i < total % parts))
        .collect()
}

/// The loadgen processes of one point.
#[derive(Default)]
struct Children {
    children: Vec<Child>,
}

impl Children {
    fn spawn(&mut self, command: &mut Command, log: &Path) -> Result<()> {
        let file =
            std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .context("start loadgen")?;
        self.children.push(child);
        Ok(())
    }

    fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }

    /// Waits for every child, killing those still running after `limit`; statuses in spawn
    /// order.
    fn wait_all(&mut self, limit: Duration) -> Vec<Result<std::process::ExitStatus, String>> {
        let deadline = Instant::now() + limit;
        let mut statuses: Vec<Option<Result<std::process::ExitStatus, String>>> =
            self.children.iter().map(|_| None).collect();
        while statuses.iter().any(Option::is_none) {
            for (child, status) in self.children.iter_mut().zip(statuses.iter_mut()) {
                if status.is_none() {
                    match child.try_wait() {
                        Ok(Some(s)) => *status = Some(Ok(s)),
                        Ok(None) => {}
                        Err(e) => *status = Some(Err(e.to_string())),
                    }
                }
            }
            if Instant::now() > deadline {
                for (child, status) in self.children.iter_mut().zip(statuses.iter_mut()) {
                    if status.is_none() {
                        let _ = child.kill();
                        let _ = child.wait();
                        *status = Some(Err(format!("still running after {limit:?}; killed")));
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        statuses.into_iter().flatten().collect()
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.children {
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Combines the JSON reports of one point's loadgen processes (the leader's first) into its
/// figures. The leader's report has the resources: `--server-pid` order Ampere, nginx's
/// master (proxy mode), then the follower processes.
pub fn merge_reports(reports: &[Value], mode: Mode) -> Result<PointFigures> {
    let leader = reports.first().context("no loadgen report")?;
    for report in reports {
        ensure!(
            report.get("per_write").is_some(),
            "not a write-fanout report (no per_write)"
        );
    }
    let num = |v: &Value, pointer: &str| v.pointer(pointer).and_then(Value::as_f64);
    let count = |v: &Value, pointer: &str| v.pointer(pointer).and_then(Value::as_u64).unwrap_or(0);
    let sum = |pointer: &str| reports.iter().map(|r| count(r, pointer)).sum::<u64>();
    let writes_done = count(leader, "/writes_done");

    // Per write: expecting, received, weighted mean, max over processes. A follower lists the
    // writes up to the last one its clients saw; for a later write, all its clients count as
    // expecting it and none as having it.
    let mut last = Vec::new();
    let mut last_after_commit = Vec::new();
    let mut mean_client = Vec::new();
    let (mut expected, mut received_all) = (0u64, 0u64);
    let leader_commit = |write: u64| -> f64 {
        leader
            .get("per_write")
            .and_then(Value::as_array)
            .and_then(|a| {
                a.iter()
                    .find(|w| w.get("write_id").and_then(Value::as_u64) == Some(write))
            })
            .and_then(|w| w.get("commit_ms"))
            .and_then(Value::as_f64)
            .unwrap_or(0.0)
    };
    for write in 1..=writes_done {
        let (mut expecting, mut received, mut weighted, mut max) = (0u64, 0u64, 0.0f64, 0.0f64);
        for report in reports {
            let entry = report
                .get("per_write")
                .and_then(Value::as_array)
                .and_then(|a| {
                    a.iter()
                        .find(|w| w.get("write_id").and_then(Value::as_u64) == Some(write))
                });
            let Some(entry) = entry else {
                expecting += count(report, "/clients");
                continue;
            };
            let n = count(entry, "/received");
            expecting += count(entry, "/expecting");
            received += n;
            weighted += num(entry, "/mean_ms").unwrap_or(0.0) * n as f64;
            max = max.max(num(entry, "/max_ms").unwrap_or(0.0));
        }
        expected += expecting;
        received_all += received;
        if received > 0 {
            mean_client.push(weighted / received as f64);
        }
        if expecting > 0 && received == expecting {
            last.push(max);
            last_after_commit.push((max - leader_commit(write)).max(0.0));
        }
    }
    let every = merge_histograms(reports);
    let phase_servers = leader
        .pointer("/resources/write_phase/servers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let server = |i: usize| -> Option<ServerFigures> {
        let whole = leader.pointer(&format!("/resources/servers/{i}"))?;
        let phase = phase_servers.get(i);
        let f = |v: Option<&Value>, key: &str| {
            v.and_then(|v| v.get(key))
                .and_then(Value::as_f64)
                .unwrap_or(f64::NAN)
        };
        Some(ServerFigures {
            processes: whole.get("processes").and_then(Value::as_u64).unwrap_or(0),
            phase_cpu_secs: f(phase, "cpu_secs"),
            phase_rss_start_mb: f(phase, "rss_mb_start"),
            phase_rss_end_mb: f(phase, "rss_mb_end"),
            rss_peak_mb: f(Some(whole), "rss_mb_peak"),
        })
    };
    let followers_from = if mode == Mode::Proxy { 2 } else { 1 };
    let follower_cpu: f64 = phase_servers
        .iter()
        .skip(followers_from)
        .filter_map(|s| s.get("cpu_secs").and_then(Value::as_f64))
        .sum();
    let counters = leader.pointer("/resources/write_phase/server_metrics/counters");
    let mut by_status = Vec::new();
    let origin = counters.and_then(Value::as_object).map(|map| {
        let prefix = SHAPE_GET;
        let mut total = 0.0;
        for (sample, value) in map {
            if let (Some(rest), Some(v)) = (sample.strip_prefix(prefix), value.as_f64()) {
                total += v;
                let status = rest
                    .split("status=\"")
                    .nth(1)
                    .and_then(|s| s.split('"').next())
                    .unwrap_or("?");
                by_status.push((status.to_owned(), v));
            }
        }
        total
    });
    let origin_per_write: Vec<f64> = leader
        .pointer("/resources/write_phase/server_metrics/per_write")
        .and_then(Value::as_array)
        .map(|writes| {
            writes
                .iter()
                .map(|w| {
                    w.as_object().map_or(0.0, |map| {
                        map.iter()
                            .filter(|(k, _)| k.starts_with(SHAPE_GET))
                            .filter_map(|(_, v)| v.as_f64())
                            .sum()
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let nan = f64::NAN;
    Ok(PointFigures {
        complete: reports
            .iter()
            .all(|r| r.get("complete").and_then(Value::as_bool) == Some(true)),
        clients: sum("/clients"),
        writes_done,
        expected,
        received: received_all,
        errors: sum("/error_count"),
        first_error: reports
            .iter()
            .find_map(|r| r.pointer("/errors/0").and_then(Value::as_str))
            .map(str::to_owned),
        setup_secs: num(leader, "/setup_secs").unwrap_or(nan),
        last_p50_ms: percentile(&last, 0.5),
        last_p99_ms: percentile(&last, 0.99),
        last_max_ms: percentile(&last, 1.0),
        last_mean_ms: mean(&last),
        last_count: last.len() as u64,
        last_after_commit_p50_ms: percentile(&last_after_commit, 0.5),
        last_after_commit_p99_ms: percentile(&last_after_commit, 0.99),
        mean_client_mean_ms: mean(&mean_client),
        mean_client_p50_ms: percentile(&mean_client, 0.5),
        every_p50_ms: histogram_percentile(&every, 0.5),
        every_p99_ms: histogram_percentile(&every, 0.99),
        commit_mean_ms: num(leader, "/commit/mean_ms").unwrap_or(nan),
        phase_secs: num(leader, "/resources/write_phase/wall_secs").unwrap_or(nan),
        loadgen_phase_cpu_secs: num(leader, "/resources/write_phase/loadgen_cpu_secs")
            .map_or(nan, |own| own + follower_cpu),
        loadgen_max_rss_mb: reports
            .iter()
            .filter_map(|r| num(r, "/resources/loadgen_max_rss_mb"))
            .sum(),
        ampere: server(0),
        nginx: if mode == Mode::Proxy { server(1) } else { None },
        origin_shape_requests: origin,
        origin_by_status: by_status,
        origin_per_write,
    })
}

/// Ampere's counter of answered shape requests (all statuses follow).
const SHAPE_GET: &str = "ampere_http_requests_total{route=\"shape_get\"";

/// The every-client histograms of all reports, summed: (latency µs, count), ascending.
fn merge_histograms(reports: &[Value]) -> Vec<(u64, u64)> {
    let mut merged = std::collections::BTreeMap::new();
    for report in reports {
        let Some(pairs) = report
            .get("latency_every_client_histogram")
            .and_then(Value::as_array)
        else {
            continue;
        };
        for pair in pairs {
            let (Some(ms), Some(n)) = (
                pair.get(0).and_then(Value::as_f64),
                pair.get(1).and_then(Value::as_u64),
            ) else {
                continue;
            };
            *merged.entry((ms * 1000.0).round() as u64).or_insert(0u64) += n;
        }
    }
    merged.into_iter().collect()
}

/// Nearest-rank percentile of a histogram, in ms.
fn histogram_percentile(histogram: &[(u64, u64)], q: f64) -> f64 {
    let total: u64 = histogram.iter().map(|&(_, n)| n).sum();
    if total == 0 {
        return f64::NAN;
    }
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    for &(us, n) in histogram {
        seen += n;
        if seen >= rank {
            return us as f64 / 1000.0;
        }
    }
    f64::NAN
}

/// Nearest-rank percentile of exact values (q = 1: the maximum).
fn percentile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        f64::NAN
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

/// `deploy/nginx/run` as a child: the script's process, nginx's master pid, its listening
/// ports. Dropping it sends SIGTERM to the script (which stops nginx and removes its files).
struct Nginx {
    script: Child,
    master: u32,
    ports: Vec<u16>,
}

impl Nginx {
    fn start(options: &CdnOptions, origin_port: u16, access_log: Option<&Path>) -> Result<Self> {
        let ports: Vec<u16> = (0..options.listen_ports)
            .map(|_| free_port())
            .collect::<Result<_>>()?;
        let mut command = Command::new(&options.nginx_run);
        command
            .arg("--origin")
            .arg(format!("127.0.0.1:{origin_port}"));
        for port in &ports {
            command.arg("--listen").arg(format!("127.0.0.1:{port}"));
        }
        if let Some(workers) = options.nginx_workers {
            command.arg("--workers").arg(workers.to_string());
        }
        if let Some(log) = access_log {
            command.arg("--access-log").arg(log);
        }
        let script = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("start {}", options.nginx_run.display()))?;
        let mut nginx = Self {
            script,
            master: 0,
            ports,
        };
        nginx.wait_ready()?;
        Ok(nginx)
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + NGINX_READY;
        loop {
            if let Some(status) = self.script.try_wait()? {
                bail!("deploy/nginx/run exited during start-up: {status}");
            }
            if self.master == 0 {
                self.master = child_named(self.script.id(), "nginx").unwrap_or(0);
            }
            if self.master != 0 && self.ports.iter().all(|&p| health_ok(p)) {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "nginx not answering /v1/health on every port after {NGINX_READY:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SAFETY: kill has no memory preconditions; the pid is our own child, not yet reaped.
        unsafe {
            libc::kill(self.script.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.script.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.script.kill();
        let _ = self.script.wait();
    }
}

fn health_ok(port: u16) -> bool {
    HttpClient::connect(port)
        .and_then(|mut c| c.get("/v1/health"))
        .is_ok_and(|r| r.status == 200)
}

/// A child process of `parent` whose command name is `name`.
fn child_named(parent: u32, name: &str) -> Option<u32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        let ppid = stat[close + 1..]
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if comm == name && ppid == Some(parent) {
            return Some(pid);
        }
    }
    None
}

/// Raises the open-file limit (soft and hard) to `wanted` when allowed (root), else the soft
/// limit to the hard one; children inherit it. Returns the soft limit in force.
fn raise_nofile(wanted: u64) -> Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit.
    ensure!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0,
        "getrlimit: {}",
        std::io::Error::last_os_error()
    );
    let want = libc::rlimit {
        rlim_cur: wanted.max(limit.rlim_cur),
        rlim_max: wanted.max(limit.rlim_max),
    };
    // SAFETY: `want` is a valid rlimit (soft ≤ hard).
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } == 0 {
        return Ok(want.rlim_cur);
    }
    let soft = libc::rlimit {
        rlim_cur: limit.rlim_max,
        rlim_max: limit.rlim_max,
    };
    // SAFETY: `soft` is a valid rlimit (soft = hard).
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &soft) } == 0 {
        return Ok(soft.rlim_cur);
    }
    Ok(limit.rlim_cur)
}

/// Samples the 1-minute load average in a thread while a point runs.
struct LoadSampler {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<f64>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LoadSampler {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (flag, sink) = (Arc::clone(&stop), Arc::clone(&samples));
        let thread = std::thread::spawn(move || {
            let mut waited = LOAD_SAMPLE_EVERY;
            while !flag.load(Ordering::Relaxed) {
                if waited >= LOAD_SAMPLE_EVERY {
                    if let Some(load) = load_average() {
                        if let Ok(mut s) = sink.lock() {
                            s.push(load);
                        }
                    }
                    waited = Duration::ZERO;
                }
                std::thread::sleep(Duration::from_millis(100));
                waited += Duration::from_millis(100);
            }
        });
        Self {
            stop,
            samples,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> (f64, f64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let samples = self.samples.lock().map(|s| s.clone()).unwrap_or_default();
        let min = samples.iter().copied().fold(f64::INFINITY, f64::min);
        let max = samples.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if samples.is_empty() {
            (f64::NAN, f64::NAN)
        } else {
            (min, max)
        }
    }
}

/// The 1-minute load average.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn ms(v: f64) -> String {
    if v.is_nan() {
        "-".to_owned()
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn num(v: f64, digits: usize) -> String {
    if v.is_nan() {
        "-".to_owned()
    } else {
        format!("{v:.digits$}")
    }
}

fn ratio(a: f64, b: f64) -> String {
    if a.is_nan() || b.is_nan() || b == 0.0 {
        "-".to_owned()
    } else {
        let r = a / b;
        if r >= 10.0 {
            format!("{r:.0}×")
        } else if r >= 0.1 {
            format!("{r:.2}×")
        } else {
            format!("{r:.4}×")
        }
    }
}

fn per_write(total: f64, writes: u64) -> f64 {
    if writes == 0 {
        f64::NAN
    } else {
        total / writes as f64
    }
}

fn tables(options: &CdnOptions, points: &[Point], nofile: u64) -> Vec<Table> {
    let mut latency = Table::new(
        "Write → client latency (ms), one shape, 1-row writes",
        &[
            "mode",
            "clients",
            "delivered",
            "last client p50",
            "last client p99",
            "last client max",
            "last − commit p50",
            "last − commit p99",
            "mean client (mean)",
            "every client p50",
            "every client p99",
            "pg commit (mean)",
            "setup s",
            "load avg",
        ],
    );
    let mut load = Table::new(
        "Origin requests and resources over the write phase (first write to last delivery)",
        &[
            "mode",
            "clients",
            "origin requests / write",
            "Ampere CPU s / write",
            "nginx CPU s / write",
            "loadgen CPU s / write",
            "Ampere RSS MB (start → end)",
            "nginx RSS MB (start → end)",
            "nginx processes",
            "phase s",
        ],
    );
    let mut failures = Vec::new();
    for p in points {
        let f = match &p.figures {
            Ok(f) => f,
            Err(e) => {
                failures.push(format!("{} {} clients: {e}", p.mode.name(), p.clients));
                continue;
            }
        };
        let load_avg = format!("{:.1}–{:.1}", p.load.0, p.load.1);
        let mut delivered = format!("{} / {}", f.received, f.expected);
        if !f.complete {
            delivered.push_str(" (incomplete)");
        }
        latency.row(vec![
            p.mode.name().to_owned(),
            p.clients.to_string(),
            delivered,
            ms(f.last_p50_ms),
            ms(f.last_p99_ms),
            ms(f.last_max_ms),
            ms(f.last_after_commit_p50_ms),
            ms(f.last_after_commit_p99_ms),
            ms(f.mean_client_mean_ms),
            ms(f.every_p50_ms),
            ms(f.every_p99_ms),
            ms(f.commit_mean_ms),
            num(f.setup_secs, 1),
            load_avg,
        ]);
        let w = f.writes_done;
        let cpu = |s: &Option<ServerFigures>| {
            s.as_ref()
                .map_or("-".to_owned(), |s| num(per_write(s.phase_cpu_secs, w), 3))
        };
        let rss = |s: &Option<ServerFigures>| {
            s.as_ref().map_or("-".to_owned(), |s| {
                format!(
                    "{} → {}",
                    num(s.phase_rss_start_mb, 0),
                    num(s.phase_rss_end_mb, 0)
                )
            })
        };
        let origin = match f.origin_shape_requests {
            Some(n) => {
                let statuses: Vec<String> = f
                    .origin_by_status
                    .iter()
                    .filter(|(s, _)| s != "200")
                    .map(|(s, v)| format!("{v:.0}×{s}"))
                    .collect();
                let mut text = num(per_write(n, w), 1);
                if !statuses.is_empty() {
                    text.push_str(&format!(" (incl. {})", statuses.join(", ")));
                }
                text
            }
            None => "-".to_owned(),
        };
        load.row(vec![
            p.mode.name().to_owned(),
            p.clients.to_string(),
            origin,
            cpu(&f.ampere),
            cpu(&f.nginx),
            num(per_write(f.loadgen_phase_cpu_secs, w), 3),
            rss(&f.ampere),
            rss(&f.nginx),
            f.nginx
                .as_ref()
                .map_or("-".to_owned(), |n| n.processes.to_string()),
            num(f.phase_secs, 1),
        ]);
    }
    let mut per_write_table = Table::new(
        "Origin requests of each write, in order (Ampere's shape_get counter, scraped before \
         every write)",
        &["mode", "clients", "writes 1, 2, 3, …"],
    );
    for p in points {
        if let Ok(f) = &p.figures {
            if !f.origin_per_write.is_empty() {
                let list: Vec<String> = f
                    .origin_per_write
                    .iter()
                    .map(|n| format!("{n:.0}"))
                    .collect();
                per_write_table.row(vec![
                    p.mode.name().to_owned(),
                    p.clients.to_string(),
                    list.join(", "),
                ]);
            }
        }
    }
    let mut ratios = Table::new(
        "Proxy ÷ direct, same run",
        &[
            "clients",
            "last client p50",
            "last client p99",
            "mean client (mean)",
            "origin requests / write",
            "Ampere CPU / write",
        ],
    );
    for &clients in &options.clients {
        let find = |mode: Mode| {
            points
                .iter()
                .find(|p| p.mode == mode && p.clients == clients)
                .and_then(|p| p.figures.as_ref().ok())
        };
        let (Some(proxy), Some(direct)) = (find(Mode::Proxy), find(Mode::Direct)) else {
            continue;
        };
        let origin = |f: &PointFigures| {
            f.origin_shape_requests
                .map_or(f64::NAN, |n| per_write(n, f.writes_done))
        };
        let ampere_cpu = |f: &PointFigures| {
            f.ampere
                .as_ref()
                .map_or(f64::NAN, |s| per_write(s.phase_cpu_secs, f.writes_done))
        };
        ratios.row(vec![
            clients.to_string(),
            ratio(proxy.last_p50_ms, direct.last_p50_ms),
            ratio(proxy.last_p99_ms, direct.last_p99_ms),
            ratio(proxy.mean_client_mean_ms, direct.mean_client_mean_ms),
            ratio(origin(proxy), origin(direct)),
            ratio(ampere_cpu(proxy), ampere_cpu(direct)),
        ]);
    }
    latency.note(format!(
        "{} writes of {} row(s) at {}/s (each up to {} ms late) per point; clients start at {}/s in all; {} loadgen \
         process(es) × {} thread(s) ({}), clients spread over {} nginx port(s) (proxy) or \
         Ampere's one port (direct), from source addresses {}",
        options.writes,
        options.rows_per_write,
        options.writes_per_sec,
        options.write_jitter_ms,
        options.spawn_per_sec,
        options.loadgen_procs,
        options.loadgen_cores,
        options.loadgen_driver,
        options.listen_ports,
        options.source_addrs
    ));
    latency.note(format!(
        "Ampere: {} io driver, AMPERE_CORES={}; nginx workers: {}; open-file limit {nofile}; \
         ephemeral ports {}",
        options.ampere_driver,
        options
            .ampere_cores
            .map_or("all".to_owned(), |c| c.to_string()),
        options
            .nginx_workers
            .map_or("auto".to_owned(), |w| w.to_string()),
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join("–"))
            .unwrap_or_default()
    ));
    latency.note(
        "last client: per write, the slowest client's latency (p50/p99/max over writes that \
         every client received); mean client: per write, the mean over clients; every client: \
         every (client, write) pair",
    );
    for p in points {
        if let Ok(f) = &p.figures {
            if let Some(e) = &f.first_error {
                failures.push(format!(
                    "{} {} clients: {} errors, first: {e}",
                    p.mode.name(),
                    p.clients,
                    f.errors
                ));
            }
        }
    }
    for failure in failures {
        latency.note(failure);
    }
    load.note(
        "origin requests: Ampere's own ampere_http_requests_total{route=\"shape_get\"}, all \
         statuses, scraped at the first write and after the last delivery, divided by writes",
    );
    load.note(
        "CPU: user + system over the write phase from /proc (nginx: master + workers); RSS: \
         VmRSS summed over the processes at the phase's start and end",
    );
    vec![latency, load, per_write_table, ratios]
}

/// `deploy/nginx/run` in this workspace.
pub fn locate_nginx_run(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nginx/run");
    ensure!(
        path.exists(),
        "no deploy/nginx/run at {} (pass --nginx-run)",
        path.display()
    );
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A leader's report: 4 clients, 2 writes, Ampere, nginx and one follower watched.
    const LEADER: &str = r#"{"complete": true, "clients": 4, "writes_done": 2,
        "client_writes_expected": 8, "client_writes_received": 8, "error_count": 0,
        "errors": [], "setup_secs": 1.5, "commit": {"mean_ms": 1.0},
        "per_write": [
          {"write_id": 1, "expecting": 4, "received": 4, "mean_ms": 5.0, "max_ms": 9.0,
           "commit_ms": 1.0},
          {"write_id": 2, "expecting": 4, "received": 4, "mean_ms": 6.0, "max_ms": 11.0,
           "commit_ms": 2.0}],
        "latency_every_client_histogram": [[2.0, 4], [9.0, 3], [11.0, 1]],
        "resources": {"loadgen_max_rss_mb": 50.0,
          "servers": [{"processes": 1, "rss_mb_peak": 30.0},
                      {"processes": 3, "rss_mb_peak": 20.0},
                      {"processes": 1, "rss_mb_peak": 40.0}],
          "write_phase": {"wall_secs": 2.5, "loadgen_cpu_secs": 0.5,
            "servers": [{"cpu_secs": 0.2, "rss_mb_start": 25.0, "rss_mb_end": 26.0},
                        {"cpu_secs": 0.4, "rss_mb_start": 15.0, "rss_mb_end": 16.0},
                        {"cpu_secs": 0.3, "rss_mb_start": 35.0, "rss_mb_end": 36.0}],
            "server_metrics": {"url": "u", "error": null,
              "per_write": [
                {"ampere_http_requests_total{route=\"shape_get\",status=\"200\"}": 3.0},
                {"ampere_http_requests_total{route=\"shape_get\",status=\"409\"}": 1.0,
                 "ampere_http_requests_total{route=\"health\",status=\"200\"}": 7.0}],
              "counters": {
              "ampere_http_requests_total{route=\"shape_get\",status=\"200\"}": 3.0,
              "ampere_http_requests_total{route=\"shape_get\",status=\"409\"}": 1.0,
              "ampere_http_requests_total{route=\"health\",status=\"200\"}": 7.0}}}}}"#;

    /// A follower's report: 2 clients; the second write reached only one of them.
    const FOLLOWER: &str = r#"{"complete": false, "clients": 2, "writes_done": 2,
        "client_writes_expected": 4, "client_writes_received": 3, "error_count": 1,
        "errors": ["client: timed out"],
        "per_write": [
          {"write_id": 1, "expecting": 2, "received": 2, "mean_ms": 20.0, "max_ms": 30.0},
          {"write_id": 2, "expecting": 2, "received": 1, "mean_ms": 12.0, "max_ms": 12.0}],
        "latency_every_client_histogram": [[2.0, 1], [30.0, 2]],
        "resources": {"loadgen_max_rss_mb": 40.0, "servers": []}}"#;

    fn parse(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn reads_one_report() {
        let f = merge_reports(&[parse(LEADER)], Mode::Proxy).unwrap();
        assert!(f.complete);
        assert_eq!((f.clients, f.writes_done, f.received), (4, 2, 8));
        assert_eq!(
            (f.last_p50_ms, f.last_p99_ms, f.last_max_ms),
            (9.0, 11.0, 11.0)
        );
        assert_eq!(f.mean_client_mean_ms, 5.5);
        assert_eq!((f.every_p50_ms, f.every_p99_ms), (2.0, 11.0));
        assert_eq!(f.origin_shape_requests, Some(4.0));
        assert_eq!(f.origin_per_write, vec![3.0, 1.0]);
        let mut statuses = f.origin_by_status.clone();
        statuses.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            statuses,
            vec![("200".to_owned(), 3.0), ("409".to_owned(), 1.0)]
        );
        let ampere = f.ampere.unwrap();
        assert_eq!((ampere.phase_cpu_secs, ampere.rss_peak_mb), (0.2, 30.0));
        let nginx = f.nginx.unwrap();
        assert_eq!((nginx.processes, nginx.phase_cpu_secs), (3, 0.4));
        // The third watched pid is a follower: its CPU counts as loadgen's.
        assert!((f.loadgen_phase_cpu_secs - 0.8).abs() < 1e-9);
        // Direct: the second pid is not nginx, and from it on the pids are followers.
        let direct = merge_reports(&[parse(LEADER)], Mode::Direct).unwrap();
        assert!(direct.nginx.is_none());
        assert!((direct.loadgen_phase_cpu_secs - 1.2).abs() < 1e-9);
        assert!(merge_reports(&[parse("{}")], Mode::Direct).is_err());
        assert!(merge_reports(&[], Mode::Direct).is_err());
    }

    #[test]
    fn merges_a_leader_and_a_follower() {
        let f = merge_reports(&[parse(LEADER), parse(FOLLOWER)], Mode::Proxy).unwrap();
        assert!(!f.complete);
        assert_eq!(
            (f.clients, f.expected, f.received, f.errors),
            (6, 12, 11, 1)
        );
        assert_eq!(f.first_error.as_deref(), Some("client: timed out"));
        // Write 1 reached all 6 clients, slowest at 30 ms; write 2 did not reach everyone.
        assert_eq!((f.last_count, f.last_max_ms), (1, 30.0));
        // Per write, the mean over every process's clients: (4×5 + 2×20) / 6 and (4×6 + 12) / 5.
        let expected = (10.0 + 36.0 / 5.0) / 2.0;
        assert!((f.mean_client_mean_ms - expected).abs() < 1e-9);
        // 11 latencies: 5 at 2 ms, 3 at 9, 1 at 11, 2 at 30.
        assert_eq!(f.every_p50_ms, 9.0);
        assert_eq!(f.every_p99_ms, 30.0);
        assert_eq!(f.loadgen_max_rss_mb, 90.0);
    }

    #[test]
    fn a_follower_that_missed_the_last_write_expected_it() {
        let short = r#"{"complete": false, "clients": 2, "writes_done": 1,
            "client_writes_expected": 2, "client_writes_received": 2, "error_count": 0,
            "per_write": [
              {"write_id": 1, "expecting": 2, "received": 2, "mean_ms": 20.0, "max_ms": 30.0}],
            "latency_every_client_histogram": [[30.0, 2]],
            "resources": {"loadgen_max_rss_mb": 40.0, "servers": []}}"#;
        let f = merge_reports(&[parse(LEADER), parse(short)], Mode::Proxy).unwrap();
        assert_eq!((f.expected, f.received), (12, 10));
        assert_eq!((f.last_count, f.last_max_ms), (1, 30.0));
    }

    #[test]
    fn splits_clients_evenly() {
        assert_eq!(split(50_000, 4), vec![12_500; 4]);
        assert_eq!(split(10, 3), vec![4, 3, 3]);
        assert_eq!(split(5_000, 1), vec![5_000]);
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 0.5), 2.0);
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 0.99), 3.0);
        assert!(percentile(&[], 0.5).is_nan());
    }

    #[test]
    fn tables_pair_modes_for_ratios() {
        let figures = merge_reports(&[parse(LEADER)], Mode::Proxy).unwrap();
        let mut direct = figures.clone();
        direct.last_p50_ms = 3.0;
        direct.origin_shape_requests = Some(8.0);
        let point = |mode, figures| Point {
            mode,
            clients: 4,
            figures: Ok(figures),
            load: (1.0, 2.0),
            exit: Some(0),
            wall: Duration::from_secs(1),
        };
        let options = CdnOptions {
            clients: vec![4],
            modes: vec![Mode::Proxy, Mode::Direct],
            writes: 2,
            writes_per_sec: 1.0,
            rows_per_write: 1,
            write_jitter_ms: 0,
            spawn_per_sec: 100.0,
            ready_timeout_secs: 10,
            grace_secs: 10,
            listen_ports: 2,
            source_addrs: "127.0.0.2".into(),
            loadgen_procs: 1,
            loadgen_cores: 1,
            ampere_cores: None,
            nginx_workers: None,
            ampere_driver: IoDriver::Epoll,
            loadgen_driver: IoDriver::Epoll,
            ampere_bin: PathBuf::new(),
            loadgen_bin: PathBuf::new(),
            nginx_run: PathBuf::new(),
            out: PathBuf::new(),
            access_log: false,
            direct_max_clients: None,
        };
        let points = vec![
            point(Mode::Proxy, figures),
            point(Mode::Direct, direct),
            Point {
                figures: Err("boom".into()),
                ..point(Mode::Direct, PointFigures::default())
            },
        ];
        let tables = tables(&options, &points, 1024);
        assert_eq!(tables[0].rows.len(), 2);
        assert!(tables[0].notes.iter().any(|n| n.contains("boom")));
        assert_eq!(tables[1].rows[0][2], "2.0 (incl. 1×409)");
        assert_eq!(tables[2].rows[0][2], "3, 1");
        assert_eq!(tables[3].rows.len(), 1);
        assert_eq!(tables[3].rows[0][1], "3.00×");
        assert_eq!(tables[3].rows[0][4], "0.50×");
    }

    #[test]
    fn modes_parse() {
        assert_eq!("proxy".parse::<Mode>(), Ok(Mode::Proxy));
        assert_eq!("direct".parse::<Mode>(), Ok(Mode::Direct));
        assert!("cdn".parse::<Mode>().is_err());
    }
}
