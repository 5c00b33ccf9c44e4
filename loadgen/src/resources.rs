//! CPU and memory accounting: loadgen's own CPU time (getrusage), and — when servers run on
//! this machine and `--server-pid` names them — each server's CPU seconds and RSS from
//! `/proc`, summed over the process and its descendants (nginx's master and workers), sampled
//! every 100 ms while a run lasts. The fan-out scenarios also mark their write phase (from
//! just before the first write until every client has its last write): CPU over that phase
//! alone, RSS at its start and end, and — with `--server-metrics` — the change of every
//! Prometheus counter of the server over it (e.g. requests that reached the origin).
//!
//! Reporting loadgen's CPU beside the server's shows whether the load generator itself was the
//! bottleneck: on a 2-core machine shared by server, Postgres and loadgen, it can be.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::runner::lock;
use crate::target::Target;

/// How often server RSS is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// How often the process tree under each server pid is re-read (workers may be replaced).
const RESCAN_EVERY: usize = 10;
/// Most RSS samples kept (about 3 hours at 100 ms); later samples only update the peak.
const MAX_SAMPLES: usize = 100_000;
/// Time allowed for one metrics scrape (connect, send, read).
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest metrics page read.
const MAX_SCRAPE_BYTES: usize = 8 << 20;
/// Most per-write scrapes kept (the writes after them count in the last entry).
const MAX_WRITE_SCRAPES: usize = 1_000;

/// What to watch besides loadgen itself.
#[derive(Clone, Debug, Default)]
pub struct Watch {
    /// Server processes (each with its descendants).
    pub server_pids: Vec<u32>,
    /// A Prometheus endpoint of the server, scraped at the write phase's start and end.
    pub metrics: Option<MetricsUrl>,
}

/// `http://host:port/path` of a Prometheus text endpoint.
#[derive(Clone, Debug)]
pub struct MetricsUrl {
    pub target: Target,
    pub path: String,
    pub url: String,
}

impl MetricsUrl {
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| anyhow::anyhow!("--server-metrics must start with http://"))?;
        let (authority, path) = match rest.find('/') {
            Some(slash) => (&rest[..slash], &rest[slash..]),
            None => (rest, "/metrics"),
        };
        if path.contains(char::is_whitespace) {
            anyhow::bail!("--server-metrics path must not contain spaces");
        }
        Ok(Self {
            target: Target::parse(&format!("http://{authority}"))?,
            path: path.to_owned(),
            url: url.to_owned(),
        })
    }
}

/// CPU and memory over one run.
#[derive(Debug, Clone, Serialize)]
pub struct Resources {
    pub wall_secs: f64,
    pub loadgen_cpu_user_secs: f64,
    pub loadgen_cpu_sys_secs: f64,
    /// user + system; divided by `wall_secs` it is the number of cores loadgen kept busy.
    pub loadgen_cpu_secs: f64,
    /// Peak resident set of the loadgen process so far (getrusage's ru_maxrss).
    pub loadgen_max_rss_mb: f64,
    /// The first `--server-pid`, when `/proc/<pid>` was readable (as `servers[0]`).
    pub server: Option<ServerResources>,
    /// Every `--server-pid` readable at the start and still running at the end, in the order
    /// given (`write_phase` has them all, marked while they ran).
    pub servers: Vec<ServerResources>,
    /// The fan-out scenarios' write phase, when one was marked.
    pub write_phase: Option<PhaseResources>,
}

/// One server's share, from `/proc/<pid>/stat` and `/proc/<pid>/status` of the process and
/// its descendants.
#[derive(Debug, Clone, Serialize)]
pub struct ServerResources {
    pub pid: u32,
    /// The process's command name (`/proc/<pid>/comm`).
    pub name: String,
    /// Processes in the tree at the end (the pid and its descendants).
    pub processes: usize,
    pub cpu_user_secs: f64,
    pub cpu_sys_secs: f64,
    pub cpu_secs: f64,
    /// RSS summed over the tree (pages shared between processes count once per process).
    pub rss_mb_start: f64,
    pub rss_mb_end: f64,
    pub rss_mb_median: f64,
    /// Highest sampled RSS during the run.
    pub rss_mb_peak: f64,
    /// The kernel's high-water mark since start (VmHWM), summed over the tree, not just this
    /// run.
    pub vm_hwm_mb: f64,
    pub samples: usize,
}

/// The write phase: from just before the first write to the moment every client had its
/// last write (or the run's deadline), before any client connection closed.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseResources {
    pub wall_secs: f64,
    pub loadgen_cpu_user_secs: f64,
    pub loadgen_cpu_sys_secs: f64,
    pub loadgen_cpu_secs: f64,
    pub servers: Vec<PhaseServer>,
    /// Counter deltas from `--server-metrics`.
    pub server_metrics: Option<MetricsDelta>,
}

/// One server over the write phase.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseServer {
    pub pid: u32,
    pub cpu_user_secs: f64,
    pub cpu_sys_secs: f64,
    pub cpu_secs: f64,
    pub rss_mb_start: f64,
    pub rss_mb_end: f64,
}

/// How the server's Prometheus counters moved over the write phase.
#[derive(Debug, Clone, Serialize)]
pub struct MetricsDelta {
    pub url: String,
    /// Every sample of a counter (name ending in `_total`) that changed: end − start (a
    /// sample absent at the start counts from 0).
    pub counters: BTreeMap<String, f64>,
    /// The same per write: entry k covers from just before write k+1 to just before write
    /// k+2 (the last entry: to the end of the phase). The fan-out scenarios scrape before
    /// every write, so a write's entry holds what its delivery cost, provided deliveries end
    /// before the next write.
    pub per_write: Vec<BTreeMap<String, f64>>,
    /// Scrape failures (then `counters` is empty).
    pub error: Option<String>,
}

/// Measures from `start` until `finish`.
pub struct Monitor {
    started: Instant,
    self_start: SelfUsage,
    servers: Vec<ServerMonitor>,
}

struct ServerMonitor {
    pid: u32,
    name: String,
    cpu_start: (f64, f64),
    rss_start_kb: u64,
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<u64>>>,
    thread: Option<JoinHandle<()>>,
}

/// A point of the write phase: loadgen's and each server tree's CPU, RSS, and a scrape.
struct Mark {
    at: Instant,
    own: SelfUsage,
    servers: Vec<Option<TreeUsage>>,
    metrics: Option<Result<String, String>>,
}

/// The write phase being watched: set by `Monitor::start`, taken by `Monitor::finish`.
struct Phase {
    watch: Watch,
    start: Option<Mark>,
    /// Scrapes just before the second and later writes.
    between: Vec<Result<String, String>>,
    end: Option<Mark>,
}

static PHASE: Mutex<Option<Phase>> = Mutex::new(None);

/// Marks the start of the write phase (once per monitor; later calls are ignored). Blocks for
/// the `/proc` reads and the metrics scrape.
pub fn mark_write_phase_start() {
    let watch = match lock(&PHASE).as_ref() {
        Some(phase) if phase.start.is_none() => phase.watch.clone(),
        _ => return,
    };
    let mark = take_mark(&watch);
    if let Some(phase) = lock(&PHASE).as_mut() {
        phase.start.get_or_insert(mark);
    }
}

/// Scrapes the server's metrics just before a write after the first (blocks for the scrape;
/// nothing without `--server-metrics` or before the phase's start).
pub fn before_next_write() {
    let metrics = match lock(&PHASE).as_ref() {
        Some(phase) if phase.start.is_some() && phase.end.is_none() => phase.watch.metrics.clone(),
        _ => return,
    };
    let Some(metrics) = metrics else { return };
    let page = scrape(&metrics);
    if let Some(phase) = lock(&PHASE).as_mut() {
        if phase.between.len() < MAX_WRITE_SCRAPES {
            phase.between.push(page);
        }
    }
}

/// Marks the end of the write phase (the last call counts).
pub fn mark_write_phase_end() {
    let watch = match lock(&PHASE).as_ref() {
        Some(phase) if phase.start.is_some() => phase.watch.clone(),
        _ => return,
    };
    let mark = take_mark(&watch);
    if let Some(phase) = lock(&PHASE).as_mut() {
        phase.end = Some(mark);
    }
}

fn take_mark(watch: &Watch) -> Mark {
    let metrics = watch.metrics.as_ref().map(scrape);
    Mark {
        at: Instant::now(),
        own: self_usage(),
        servers: watch.server_pids.iter().map(|&p| tree_usage(p)).collect(),
        metrics,
    }
}

impl Monitor {
    pub fn start(watch: &Watch) -> Self {
        let servers = watch
            .server_pids
            .iter()
            .filter_map(|&pid| ServerMonitor::start(pid))
            .collect();
        *lock(&PHASE) = Some(Phase {
            watch: watch.clone(),
            start: None,
            between: Vec::new(),
            end: None,
        });
        Self {
            started: Instant::now(),
            self_start: self_usage(),
            servers,
        }
    }

    pub fn finish(self) -> Resources {
        let wall_secs = self.started.elapsed().as_secs_f64();
        let now = self_usage();
        let user = now.user_secs - self.self_start.user_secs;
        let sys = now.sys_secs - self.self_start.sys_secs;
        let servers: Vec<ServerResources> = self
            .servers
            .into_iter()
            .filter_map(ServerMonitor::finish)
            .collect();
        let phase = lock(&PHASE).take();
        let write_phase = phase.and_then(|p| {
            let url = p.watch.metrics.map(|m| m.url);
            Some(phase_resources(p.start?, p.between, p.end?, url))
        });
        Resources {
            wall_secs: round3(wall_secs),
            loadgen_cpu_user_secs: round3(user),
            loadgen_cpu_sys_secs: round3(sys),
            loadgen_cpu_secs: round3(user + sys),
            loadgen_max_rss_mb: round3(now.max_rss_kb as f64 / 1024.0),
            server: servers.first().cloned(),
            servers,
            write_phase,
        }
    }
}

fn phase_resources(
    start: Mark,
    between: Vec<Result<String, String>>,
    end: Mark,
    url: Option<String>,
) -> PhaseResources {
    let user = end.own.user_secs - start.own.user_secs;
    let sys = end.own.sys_secs - start.own.sys_secs;
    let servers = start
        .servers
        .iter()
        .zip(&end.servers)
        .filter_map(|(a, b)| {
            let (a, b) = (a.as_ref()?, b.as_ref()?);
            let (user, sys) = (b.user_secs - a.user_secs, b.sys_secs - a.sys_secs);
            Some(PhaseServer {
                pid: a.pid,
                cpu_user_secs: round3(user),
                cpu_sys_secs: round3(sys),
                cpu_secs: round3(user + sys),
                rss_mb_start: kb_to_mb(a.rss_kb),
                rss_mb_end: kb_to_mb(b.rss_kb),
            })
        })
        .collect();
    let server_metrics = match (start.metrics, end.metrics) {
        (Some(a), Some(b)) => {
            let pages: Vec<Result<String, String>> =
                std::iter::once(a).chain(between).chain([b]).collect();
            let error = pages.iter().find_map(|p| p.as_ref().err().cloned());
            Some(match error {
                None => {
                    let pages: Vec<&str> = pages.iter().flatten().map(String::as_str).collect();
                    MetricsDelta {
                        url: url.unwrap_or_default(),
                        counters: counter_deltas(pages[0], pages[pages.len() - 1]),
                        per_write: pages
                            .windows(2)
                            .map(|w| counter_deltas(w[0], w[1]))
                            .collect(),
                        error: None,
                    }
                }
                Some(error) => MetricsDelta {
                    url: url.unwrap_or_default(),
                    counters: BTreeMap::new(),
                    per_write: Vec::new(),
                    error: Some(error),
                },
            })
        }
        _ => None,
    };
    PhaseResources {
        wall_secs: round3(end.at.duration_since(start.at).as_secs_f64()),
        loadgen_cpu_user_secs: round3(user),
        loadgen_cpu_sys_secs: round3(sys),
        loadgen_cpu_secs: round3(user + sys),
        servers,
        server_metrics,
    }
}

impl ServerMonitor {
    fn start(pid: u32) -> Option<Self> {
        let first = tree_usage(pid)?;
        let name = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (flag, sink) = (Arc::clone(&stop), Arc::clone(&samples));
        let thread = std::thread::Builder::new()
            .name("loadgen-rss".to_owned())
            .spawn(move || {
                let mut peak = 0;
                let mut tree = process_tree(pid);
                let mut round = 0usize;
                while !flag.load(Ordering::Relaxed) {
                    round += 1;
                    if round.is_multiple_of(RESCAN_EVERY) {
                        tree = process_tree(pid);
                    }
                    let kb: u64 = tree
                        .iter()
                        .filter_map(|&p| proc_status_kb(p, "VmRSS:"))
                        .sum();
                    if kb > 0 {
                        peak = peak.max(kb);
                        let mut samples = lock(&sink);
                        if samples.len() < MAX_SAMPLES {
                            samples.push(kb);
                        } else if let Some(last) = samples.last_mut() {
                            // Keep the peak visible even once the sample budget is spent.
                            *last = peak;
                        }
                    }
                    std::thread::sleep(SAMPLE_EVERY);
                }
            })
            .ok();
        Some(Self {
            pid,
            name,
            cpu_start: (first.user_secs, first.sys_secs),
            rss_start_kb: first.rss_kb,
            stop,
            samples,
            thread,
        })
    }

    fn finish(mut self) -> Option<ServerResources> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let end = tree_usage(self.pid)?;
        let mut samples = lock(&self.samples).clone();
        samples.push(end.rss_kb);
        samples.sort_unstable();
        let median = samples[samples.len() / 2];
        let peak = samples.last().copied().unwrap_or(0);
        let (user, sys) = (
            end.user_secs - self.cpu_start.0,
            end.sys_secs - self.cpu_start.1,
        );
        Some(ServerResources {
            pid: self.pid,
            name: self.name,
            processes: end.processes,
            cpu_user_secs: round3(user),
            cpu_sys_secs: round3(sys),
            cpu_secs: round3(user + sys),
            rss_mb_start: kb_to_mb(self.rss_start_kb),
            rss_mb_end: kb_to_mb(end.rss_kb),
            rss_mb_median: kb_to_mb(median),
            rss_mb_peak: kb_to_mb(peak),
            vm_hwm_mb: kb_to_mb(end.hwm_kb),
            samples: samples.len(),
        })
    }
}

/// CPU and memory of a process and its descendants at one moment.
struct TreeUsage {
    pid: u32,
    processes: usize,
    user_secs: f64,
    sys_secs: f64,
    rss_kb: u64,
    hwm_kb: u64,
}

/// `None` when the process itself is gone or unreadable.
fn tree_usage(pid: u32) -> Option<TreeUsage> {
    proc_cpu_secs(pid)?;
    let tree = process_tree(pid);
    let mut usage = TreeUsage {
        pid,
        processes: 0,
        user_secs: 0.0,
        sys_secs: 0.0,
        rss_kb: 0,
        hwm_kb: 0,
    };
    for p in tree {
        // A process may exit between the listing and the read: it then counts for nothing.
        if let Some((user, sys)) = proc_cpu_secs(p) {
            usage.processes += 1;
            usage.user_secs += user;
            usage.sys_secs += sys;
            usage.rss_kb += proc_status_kb(p, "VmRSS:").unwrap_or(0);
            usage.hwm_kb += proc_status_kb(p, "VmHWM:").unwrap_or(0);
        }
    }
    Some(usage)
}

/// `pid` and every descendant, from the parent pids in `/proc/*/stat`.
fn process_tree(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(p) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(ppid) = std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|stat| parse_stat_ppid(&stat))
            {
                parents.push((p, ppid));
            }
        }
    }
    descendants(pid, &parents)
}

/// `root` and everything below it in the (pid, parent pid) pairs, root first.
fn descendants(root: u32, parents: &[(u32, u32)]) -> Vec<u32> {
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        let parent = out[i];
        for &(p, ppid) in parents {
            if ppid == parent && p != root && !out.contains(&p) {
                out.push(p);
            }
        }
        i += 1;
    }
    out
}

/// Field 4 of `/proc/<pid>/stat`, the parent pid.
fn parse_stat_ppid(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// GETs the metrics page over a fresh connection (blocking, bounded by [`SCRAPE_TIMEOUT`]).
fn scrape(url: &MetricsUrl) -> Result<String, String> {
    let deadline = Instant::now() + SCRAPE_TIMEOUT;
    let fail = |e: std::io::Error| format!("scraping {}: {e}", url.url);
    let mut stream =
        std::net::TcpStream::connect_timeout(&url.target.addr, SCRAPE_TIMEOUT).map_err(fail)?;
    stream
        .set_read_timeout(Some(SCRAPE_TIMEOUT))
        .map_err(fail)?;
    stream
        .set_write_timeout(Some(SCRAPE_TIMEOUT))
        .map_err(fail)?;
    let request = format!(
        "GET {} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
        url.path, url.target.host
    );
    stream.write_all(request.as_bytes()).map_err(fail)?;
    let mut response = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        if Instant::now() > deadline || response.len() > MAX_SCRAPE_BYTES {
            return Err(format!("scraping {}: too slow or too large", url.url));
        }
        match stream.read(&mut buf).map_err(fail)? {
            0 => break,
            n => response.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("scraping {}: no HTTP response", url.url))?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        let status = head.lines().next().unwrap_or_default();
        return Err(format!("scraping {}: {status}", url.url));
    }
    if head
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding:") && l.contains("chunked"))
    {
        return Err(format!(
            "scraping {}: chunked responses are not supported",
            url.url
        ));
    }
    Ok(body.to_owned())
}

/// Counter samples (metric name ending in `_total`) of a Prometheus text page: `name{labels}`
/// → value.
fn counters(page: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in page.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // Label values may contain spaces: the sample ends at the closing brace if any.
        let split = match (line.find('{'), line.rfind('}')) {
            (Some(open), Some(close)) if close > open => Some(close + 1),
            _ => line.find(char::is_whitespace),
        };
        let Some(split) = split else { continue };
        let (sample, rest) = line.split_at(split);
        let name = sample.split('{').next().unwrap_or(sample);
        if !name.ends_with("_total") {
            continue;
        }
        if let Some(value) = rest
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        {
            out.insert(sample.to_owned(), value);
        }
    }
    out
}

/// end − start for every counter sample that changed.
fn counter_deltas(start: &str, end: &str) -> BTreeMap<String, f64> {
    let before = counters(start);
    counters(end)
        .into_iter()
        .filter_map(|(sample, value)| {
            let delta = value - before.get(&sample).copied().unwrap_or(0.0);
            (delta != 0.0).then_some((sample, delta))
        })
        .collect()
}

struct SelfUsage {
    user_secs: f64,
    sys_secs: f64,
    max_rss_kb: i64,
}

fn self_usage() -> SelfUsage {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a complete `rusage` into the pointer it is given; RUSAGE_SELF is
    // always valid, so it cannot fail, and a zeroed rusage is a valid value in any case.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let secs = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    SelfUsage {
        user_secs: secs(usage.ru_utime),
        sys_secs: secs(usage.ru_stime),
        max_rss_kb: usage.ru_maxrss,
    }
}

/// (user, system) CPU seconds of `pid`, from fields 14 and 15 of `/proc/<pid>/stat`.
fn proc_cpu_secs(pid: u32) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat_cpu(&stat, clock_ticks_per_sec())
}

/// The command name (field 2) may contain spaces and parentheses, so fields are counted from
/// the last `)`; after it come field 3 (state) onwards.
fn parse_stat_cpu(stat: &str, ticks_per_sec: f64) -> Option<(f64, f64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let sys: u64 = fields.next()?.parse().ok()?;
    Some((user as f64 / ticks_per_sec, sys as f64 / ticks_per_sec))
}

fn clock_ticks_per_sec() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    // USER_HZ is 100 on every Linux configuration in practice; fall back to it on error.
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// A `kB` line of `/proc/<pid>/status`, such as `VmRSS:`.
fn proc_status_kb(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_kb(&status, key)
}

fn parse_status_kb(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kb| kb.parse().ok())
}

fn kb_to_mb(kb: u64) -> f64 {
    round3(kb as f64 / 1024.0)
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_fields() {
        let stat = "1234 (a (weird) name) S 1 2 3 4 5 6 7 8 9 10 250 75 0 0 20 0";
        assert_eq!(parse_stat_cpu(stat, 100.0), Some((2.5, 0.75)));
        assert_eq!(parse_stat_cpu("1 (x) S 1", 100.0), None);
        assert_eq!(parse_stat_ppid(stat), Some(1));
        assert_eq!(parse_stat_ppid("7 (nginx: worker) S 42 7 7"), Some(42));
        let status = "Name:\tampere\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
        assert_eq!(parse_status_kb(status, "VmRSS:"), Some(1024));
        assert_eq!(parse_status_kb(status, "VmHWM:"), Some(2048));
        assert_eq!(parse_status_kb(status, "VmSwap:"), None);
    }

    #[test]
    fn finds_every_descendant() {
        // 10 → 11, 12; 12 → 13; 20 is unrelated; 30 → 10 is the root's own parent.
        let parents = [(11, 10), (12, 10), (13, 12), (20, 1), (10, 30)];
        let mut tree = descendants(10, &parents);
        tree.sort_unstable();
        assert_eq!(tree, vec![10, 11, 12, 13]);
        assert_eq!(descendants(20, &parents), vec![20]);
    }

    #[test]
    fn counter_deltas_of_prometheus_text() {
        let start = "# HELP ampere_http_requests_total HTTP requests answered.\n\
            # TYPE ampere_http_requests_total counter\n\
            ampere_http_requests_total{route=\"shape_get\",status=\"200\"} 10\n\
            ampere_http_requests_total{route=\"health\",status=\"200\"} 3\n\
            ampere_shapes 4\n";
        let end = "ampere_http_requests_total{route=\"shape_get\",status=\"200\"} 25\n\
            ampere_http_requests_total{route=\"health\",status=\"200\"} 3\n\
            ampere_http_requests_total{route=\"shape_get\",status=\"409\"} 2 1700000000\n\
            odd_total{label=\"with space\"} 1.5\n\
            ampere_shapes 9\n";
        let deltas = counter_deltas(start, end);
        assert_eq!(
            deltas
                .get("ampere_http_requests_total{route=\"shape_get\",status=\"200\"}")
                .copied(),
            Some(15.0)
        );
        assert_eq!(
            deltas
                .get("ampere_http_requests_total{route=\"shape_get\",status=\"409\"}")
                .copied(),
            Some(2.0)
        );
        assert_eq!(
            deltas.get("odd_total{label=\"with space\"}").copied(),
            Some(1.5)
        );
        // Unchanged counters and gauges are left out.
        assert_eq!(deltas.len(), 3);
    }

    #[test]
    fn metrics_urls() {
        let url = MetricsUrl::parse("http://127.0.0.1:9100/metrics").unwrap();
        assert_eq!(
            (url.target.addr.port(), url.path.as_str()),
            (9100, "/metrics")
        );
        let url = MetricsUrl::parse("http://127.0.0.1:9100").unwrap();
        assert_eq!(url.path, "/metrics");
        assert!(MetricsUrl::parse("https://127.0.0.1:9100/metrics").is_err());
    }

    /// The write phase is process-wide: tests that mark it take turns.
    static PHASE_TESTS: Mutex<()> = Mutex::new(());

    #[test]
    fn scrapes_counters_per_write() {
        let _turn = lock(&PHASE_TESTS);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            for total in [1, 3, 6, 10] {
                let (mut socket, _) = listener.accept().unwrap();
                let mut seen = Vec::new();
                let mut byte = [0u8; 1];
                while !seen.ends_with(b"\r\n\r\n") && socket.read(&mut byte).unwrap() == 1 {
                    seen.push(byte[0]);
                }
                let body = format!("# TYPE req_total counter\nreq_total{{route=\"a\"}} {total}\n");
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                socket.write_all(response.as_bytes()).unwrap();
            }
        });
        let watch = Watch {
            server_pids: Vec::new(),
            metrics: Some(MetricsUrl::parse(&format!("http://127.0.0.1:{port}/metrics")).unwrap()),
        };
        let monitor = Monitor::start(&watch);
        before_next_write(); // before the start: ignored
        mark_write_phase_start();
        before_next_write();
        before_next_write();
        mark_write_phase_end();
        let metrics = monitor
            .finish()
            .write_phase
            .and_then(|p| p.server_metrics)
            .expect("scraped");
        server.join().unwrap();
        assert_eq!(metrics.error, None);
        let key = "req_total{route=\"a\"}";
        assert_eq!(metrics.counters.get(key).copied(), Some(9.0));
        let per_write: Vec<f64> = metrics.per_write.iter().map(|m| m[key]).collect();
        assert_eq!(per_write, vec![2.0, 3.0, 4.0]);
    }

    #[test]
    fn measures_this_process_and_its_write_phase() {
        let _turn = lock(&PHASE_TESTS);
        let watch = Watch {
            server_pids: vec![std::process::id()],
            metrics: None,
        };
        let monitor = Monitor::start(&watch);
        mark_write_phase_start();
        // Burn a little CPU so the figures can be non-zero; nothing asserts on their size.
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        mark_write_phase_end();
        let resources = monitor.finish();
        let server = resources.server.expect("our own /proc entry is readable");
        assert_eq!(server.pid, std::process::id());
        assert!(server.processes >= 1);
        assert!(server.rss_mb_end > 0.0 && server.samples >= 1);
        assert!(resources.loadgen_max_rss_mb > 0.0);
        let phase = resources.write_phase.expect("the phase was marked");
        assert_eq!(phase.servers.len(), 1);
        assert!(phase.servers[0].rss_mb_start > 0.0);
        assert!(phase.server_metrics.is_none());
    }
}
