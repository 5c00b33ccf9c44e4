//! CPU and memory accounting: loadgen's own CPU time (getrusage), and — when the server runs on
//! this machine and `--server-pid` names it — the server's CPU seconds and RSS from `/proc`,
//! sampled every 100 ms while a run lasts.
//!
//! Reporting loadgen's CPU beside the server's shows whether the load generator itself was the
//! bottleneck: on a 2-core machine shared by server, Postgres and loadgen, it can be.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::runner::lock;

/// How often server RSS is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// Most RSS samples kept (about 3 hours at 100 ms); later samples only update the peak.
const MAX_SAMPLES: usize = 100_000;

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
    /// Present when `--server-pid` was given and `/proc/<pid>` was readable.
    pub server: Option<ServerResources>,
}

/// The server process's share, from `/proc/<pid>/stat` and `/proc/<pid>/status`.
#[derive(Debug, Clone, Serialize)]
pub struct ServerResources {
    pub pid: u32,
    pub cpu_user_secs: f64,
    pub cpu_sys_secs: f64,
    pub cpu_secs: f64,
    pub rss_mb_start: f64,
    pub rss_mb_end: f64,
    pub rss_mb_median: f64,
    /// Highest sampled RSS during the run.
    pub rss_mb_peak: f64,
    /// The kernel's high-water mark since the server started (VmHWM), not just this run.
    pub vm_hwm_mb: f64,
    pub samples: usize,
}

/// Measures from `start` until `finish`.
pub struct Monitor {
    started: Instant,
    self_start: SelfUsage,
    server: Option<ServerMonitor>,
}

struct ServerMonitor {
    pid: u32,
    cpu_start: (f64, f64),
    rss_start_kb: u64,
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<u64>>>,
    thread: Option<JoinHandle<()>>,
}

impl Monitor {
    pub fn start(server_pid: Option<u32>) -> Self {
        let server = server_pid.and_then(ServerMonitor::start);
        Self {
            started: Instant::now(),
            self_start: self_usage(),
            server,
        }
    }

    pub fn finish(mut self) -> Resources {
        let wall_secs = self.started.elapsed().as_secs_f64();
        let now = self_usage();
        let user = now.user_secs - self.self_start.user_secs;
        let sys = now.sys_secs - self.self_start.sys_secs;
        Resources {
            wall_secs: round3(wall_secs),
            loadgen_cpu_user_secs: round3(user),
            loadgen_cpu_sys_secs: round3(sys),
            loadgen_cpu_secs: round3(user + sys),
            loadgen_max_rss_mb: round3(now.max_rss_kb as f64 / 1024.0),
            server: self.server.take().and_then(ServerMonitor::finish),
        }
    }
}

impl ServerMonitor {
    fn start(pid: u32) -> Option<Self> {
        let cpu_start = proc_cpu_secs(pid)?;
        let rss_start_kb = proc_status_kb(pid, "VmRSS:")?;
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (flag, sink) = (Arc::clone(&stop), Arc::clone(&samples));
        let thread = std::thread::Builder::new()
            .name("loadgen-rss".to_owned())
            .spawn(move || {
                let mut peak = 0;
                while !flag.load(Ordering::Relaxed) {
                    if let Some(kb) = proc_status_kb(pid, "VmRSS:") {
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
            cpu_start,
            rss_start_kb,
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
        let (user, sys) = proc_cpu_secs(self.pid)?;
        let rss_end_kb = proc_status_kb(self.pid, "VmRSS:").unwrap_or(0);
        let mut samples = lock(&self.samples).clone();
        samples.push(rss_end_kb);
        samples.sort_unstable();
        let median = samples[samples.len() / 2];
        let peak = samples.last().copied().unwrap_or(0);
        let mb = |kb: u64| round3(kb as f64 / 1024.0);
        let (user, sys) = (user - self.cpu_start.0, sys - self.cpu_start.1);
        Some(ServerResources {
            pid: self.pid,
            cpu_user_secs: round3(user),
            cpu_sys_secs: round3(sys),
            cpu_secs: round3(user + sys),
            rss_mb_start: mb(self.rss_start_kb),
            rss_mb_end: mb(rss_end_kb),
            rss_mb_median: mb(median),
            rss_mb_peak: mb(peak),
            vm_hwm_mb: mb(proc_status_kb(self.pid, "VmHWM:").unwrap_or(0)),
            samples: samples.len(),
        })
    }
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
        let status = "Name:\tampere\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
        assert_eq!(parse_status_kb(status, "VmRSS:"), Some(1024));
        assert_eq!(parse_status_kb(status, "VmHWM:"), Some(2048));
        assert_eq!(parse_status_kb(status, "VmSwap:"), None);
    }

    #[test]
    fn measures_this_process() {
        let monitor = Monitor::start(Some(std::process::id()));
        // Burn a little CPU so the figures can be non-zero; nothing asserts on their size.
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        let resources = monitor.finish();
        let server = resources.server.expect("our own /proc entry is readable");
        assert_eq!(server.pid, std::process::id());
        assert!(server.rss_mb_end > 0.0 && server.samples >= 1);
        assert!(resources.loadgen_max_rss_mb > 0.0);
    }
}
