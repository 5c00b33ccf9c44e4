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

mod markdown;
mod merge;
mod procs;

use markdown::*;
pub use merge::merge_reports;
pub use procs::load_average;
use procs::*;

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
    use super::merge::percentile;
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
