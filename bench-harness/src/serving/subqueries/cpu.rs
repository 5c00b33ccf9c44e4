//! CPU accounting around a burst: the server's own time, Postgres's (all its processes), and
//! waiting until both are idle, which is how "the burst has been processed" is recognised
//! without attaching a client that would itself cost the server CPU.
//!
//! The server's time is read twice: utime + stime (`process_cpu_time`, 10 ms ticks, the whole
//! process) and the sum of its threads' `schedstat` run time (nanoseconds; Ampere's threads
//! live as long as the process). A baseline burst costs a few ticks, so ratios use the latter.

use std::time::{Duration, Instant};

use anyhow::Result;

use super::super::server::AmpereServer;

/// Sampling window of the idle waits.
const WINDOW: Duration = Duration::from_millis(500);
/// Idle: in one window the server ran at most this much more than its idle floor…
const SERVER_SLACK: Duration = Duration::from_millis(5);
/// …and Postgres (checkpointer, walwriter, walsender keep-alives) at most this much more.
const POSTGRES_SLACK: Duration = Duration::from_millis(20);
/// Give up waiting after this (the result is then flagged).
const IDLE_BOUND: Duration = Duration::from_secs(120);
/// Length of the idle-floor measurement.
const FLOOR_SPAN: Duration = Duration::from_secs(2);

/// CPU times read at one instant.
#[derive(Clone, Copy, Debug)]
pub struct CpuMark {
    pub at: Instant,
    /// Run time of the server's threads (schedstat).
    pub server: Duration,
    /// utime + stime of the server.
    pub server_ticks: Duration,
    pub postgres: Option<Duration>,
}

impl CpuMark {
    pub fn read(server: &AmpereServer, postmaster: Option<u32>) -> Result<Self> {
        let server_ticks = server.cpu_time()?;
        Ok(Self {
            at: Instant::now(),
            server: threads_run_time(server.pid()).unwrap_or(server_ticks),
            server_ticks,
            postgres: postmaster.and_then(postgres_cpu),
        })
    }

    /// Server and Postgres CPU from `earlier` to this mark.
    fn since(&self, earlier: &Self) -> (Duration, Option<Duration>) {
        let pg = self
            .postgres
            .zip(earlier.postgres)
            .map(|(a, b)| a.saturating_sub(b));
        (self.server.saturating_sub(earlier.server), pg)
    }
}

/// What the server and Postgres use per second with nothing to do: the server is not at zero
/// (its cores' periodic work), so a burst's CPU is measured net of it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Floor {
    pub server_ms_per_s: f64,
    pub postgres_ms_per_s: f64,
}

impl Floor {
    /// The floor's CPU over `span`.
    pub fn over(&self, span: Duration) -> (Duration, Duration) {
        let at = |ms_per_s: f64| Duration::from_secs_f64(ms_per_s * span.as_secs_f64() / 1e3);
        (at(self.server_ms_per_s), at(self.postgres_ms_per_s))
    }
}

/// Waits until two consecutive windows cost the server about the same (its work has ended,
/// only the periodic part is left), then measures the floor over [`FLOOR_SPAN`].
pub fn idle_floor(server: &AmpereServer, postmaster: Option<u32>) -> Result<Floor> {
    let deadline = Instant::now() + IDLE_BOUND;
    let mut last = CpuMark::read(server, postmaster)?;
    let mut previous: Option<Duration> = None;
    loop {
        std::thread::sleep(WINDOW);
        let now = CpuMark::read(server, postmaster)?;
        let (used, pg) = now.since(&last);
        last = now;
        let pg_quiet = pg.is_none_or(|p| p <= POSTGRES_SLACK);
        let steady = previous.is_some_and(|p| p.abs_diff(used) <= Duration::from_millis(3));
        if (steady && pg_quiet) || Instant::now() > deadline {
            break;
        }
        previous = Some(used);
    }
    let before = CpuMark::read(server, postmaster)?;
    std::thread::sleep(FLOOR_SPAN);
    let after = CpuMark::read(server, postmaster)?;
    let (used, pg) = after.since(&before);
    let secs = (after.at - before.at).as_secs_f64();
    Ok(Floor {
        server_ms_per_s: used.as_secs_f64() * 1e3 / secs,
        postgres_ms_per_s: pg.map_or(0.0, |p| p.as_secs_f64() * 1e3 / secs),
    })
}

/// Waits until one window costs the server and Postgres no more than their floor plus some
/// slack; the mark at the start of that window, and whether it came within the bound.
pub fn wait_idle(
    server: &AmpereServer,
    postmaster: Option<u32>,
    floor: Floor,
) -> Result<(CpuMark, bool)> {
    let deadline = Instant::now() + IDLE_BOUND;
    let (server_floor, pg_floor) = floor.over(WINDOW);
    let mut last = CpuMark::read(server, postmaster)?;
    loop {
        std::thread::sleep(WINDOW);
        let now = CpuMark::read(server, postmaster)?;
        let (used, pg) = now.since(&last);
        let idle = used <= server_floor + SERVER_SLACK
            && pg.is_none_or(|p| p <= pg_floor + POSTGRES_SLACK);
        if idle {
            return Ok((last, true));
        }
        if Instant::now() > deadline {
            return Ok((now, false));
        }
        last = now;
    }
}

/// The postmaster of the backend `backend_pid`, when it runs on this machine.
pub fn postmaster_of(backend_pid: u32) -> Option<u32> {
    stat_fields(backend_pid).and_then(|f| f.get(1)?.parse().ok())
}

/// CPU time of a Postgres instance: the postmaster, its exited children (reaped into its
/// cutime/cstime) and its live children (backends, the walsender, background workers).
pub fn postgres_cpu(postmaster: u32) -> Option<Duration> {
    let own = stat_fields(postmaster)?;
    // After ")": utime, stime, cutime, cstime are fields 11..=14 (man proc: 14..=17).
    let mut ticks: u64 = (11..=14)
        .filter_map(|i| own.get(i)?.parse::<u64>().ok())
        .sum();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Some(fields) = stat_fields(pid) else {
            continue;
        };
        if fields.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(postmaster) {
            ticks += (11..=12)
                .filter_map(|i| fields.get(i)?.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    Some(clock_tick() * ticks as u32)
}

/// Sum of the first field of `/proc/<pid>/task/*/schedstat`: time on a CPU, ns.
fn threads_run_time(pid: u32) -> Option<Duration> {
    let mut ns = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let stat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
        ns += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(ns))
}

/// utime and stime of a process, each in clock ticks converted to time.
pub fn user_and_system(pid: u32) -> Option<(Duration, Duration)> {
    let f = stat_fields(pid)?;
    let at = |i: usize| Some(clock_tick() * f.get(i)?.parse::<u32>().ok()?);
    Some((at(11)?, at(12)?))
}

/// Run time (ns) and voluntary context switches (≈ wakeups) per thread name (`comm`): shows
/// where idle time goes.
pub fn run_time_by_thread(pid: u32) -> Vec<(String, u64, u64)> {
    let mut by_name: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    for task in tasks.flatten() {
        let read = |file: &str| std::fs::read_to_string(task.path().join(file)).unwrap_or_default();
        let ns = read("schedstat")
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        let switches = read("status")
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let entry = by_name.entry(read("comm").trim().to_string()).or_default();
        entry.0 += ns;
        entry.1 += switches;
    }
    by_name
        .into_iter()
        .map(|(n, (ns, sw))| (n, ns, sw))
        .collect()
}

/// The fields of `/proc/<pid>/stat` after the command name (state first, then ppid).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// One clock tick.
fn clock_tick() -> Duration {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|&hz| hz > 0).unwrap_or(100);
    Duration::from_micros(1_000_000 / hz)
}
