//! Operational metrics, served as Prometheus text on `ELECTRIC_PROMETHEUS_PORT` (`/metrics`).
//!
//! Every core writes only its own `CoreStats` (relaxed atomics on a cache line of its own, so
//! the data path takes no lock and shares no line with another core); the ingest core writes
//! `IngestStats`. A scrape reads them all and adds them up (`render`).

mod histogram;
pub mod listener;
mod render;

pub use histogram::Histogram;
pub use render::render;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Request routes as labelled in the metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteLabel {
    ShapeGet,
    ShapePost,
    ShapeDelete,
    ShapeOptions,
    Health,
    Root,
    Other,
}

impl RouteLabel {
    pub const ALL: [RouteLabel; 7] = [
        Self::ShapeGet,
        Self::ShapePost,
        Self::ShapeDelete,
        Self::ShapeOptions,
        Self::Health,
        Self::Root,
        Self::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ShapeGet => "shape_get",
            Self::ShapePost => "shape_post",
            Self::ShapeDelete => "shape_delete",
            Self::ShapeOptions => "shape_options",
            Self::Health => "health",
            Self::Root => "root",
            Self::Other => "other",
        }
    }
}

/// Status codes counted individually; anything else is counted as `other`.
pub const STATUSES: [u16; 14] = [
    200, 204, 304, 400, 401, 404, 405, 409, 413, 429, 431, 500, 501, 503,
];

fn status_index(status: u16) -> usize {
    STATUSES
        .iter()
        .position(|&s| s == status)
        .unwrap_or(STATUSES.len())
}

/// `CoreStats::cpu_clock` before the core registered its thread.
const NO_CLOCK: i64 = i64::MIN;

/// Admission classes (`ELECTRIC_MAX_CONCURRENT_REQUESTS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdmissionKind {
    Initial,
    Existing,
}

/// One core's counters. Aligned so two cores never write the same cache line.
#[repr(align(128))]
#[derive(Default)]
pub struct CoreStats {
    requests: [[AtomicU64; STATUSES.len() + 1]; RouteLabel::ALL.len()],
    latency: [Histogram; RouteLabel::ALL.len()],
    /// Live requests waiting for a change (long-polls) and open SSE streams.
    pub held_long_polls: AtomicI64,
    pub held_sse: AtomicI64,
    /// Shapes this core owns.
    pub shapes: AtomicU64,
    /// Bytes and entries appended to shape logs (snapshots included).
    pub log_bytes: AtomicU64,
    pub log_entries: AtomicU64,
    /// Catch-up requests answered from this core's `closed_chunks` (no hop to the owner).
    pub closed_chunk_hits: AtomicU64,
    /// Requests of other cores' shapes answered from this core's published views (`views`).
    pub view_answers: AtomicU64,
    /// Requests refused by admission control, by kind.
    pub rejected_initial: AtomicU64,
    pub rejected_existing: AtomicU64,
    /// The core thread's CPU clock (`clockid_t`, negative on Linux), or `NO_CLOCK`.
    cpu_clock: AtomicI64,
}

impl CoreStats {
    pub fn record_request(&self, route: RouteLabel, status: u16, elapsed: Duration) {
        let r = route as usize;
        self.requests[r][status_index(status)].fetch_add(1, Relaxed);
        self.latency[r].observe(elapsed);
    }

    pub fn record_rejection(&self, kind: AdmissionKind) {
        match kind {
            AdmissionKind::Initial => self.rejected_initial.fetch_add(1, Relaxed),
            AdmissionKind::Existing => self.rejected_existing.fetch_add(1, Relaxed),
        };
    }

    /// Called on the core's own thread at start, so scrapes can read its CPU time.
    pub fn register_thread_clock(&self) {
        let mut clock: libc::clockid_t = 0;
        // SAFETY: pthread_self is always valid for the calling thread; the out pointer is ours.
        let rc = unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut clock) };
        if rc == 0 {
            self.cpu_clock.store(i64::from(clock), Relaxed);
        }
    }

    /// CPU time the core's thread has used (busy time: the runtime sleeps in the kernel when idle).
    pub fn cpu_seconds(&self) -> Option<f64> {
        let clock = self.cpu_clock.load(Relaxed);
        if clock == NO_CLOCK {
            return None;
        }
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes the timespec we pass; a stale clock id fails with EINVAL.
        let rc = unsafe { libc::clock_gettime(clock as libc::clockid_t, &mut ts) };
        (rc == 0).then(|| ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9)
    }
}

/// Counters of the replication stream, written by the ingest core.
#[derive(Default)]
pub struct IngestStats {
    pub transactions: AtomicU64,
    pub changes: AtomicU64,
    pub wal_bytes: AtomicU64,
    /// Server's WAL end as last reported (XLogData and keepalives).
    pub server_wal_end: AtomicU64,
    /// End LSN of the last transaction handed to the cores.
    pub dispatched_lsn: AtomicU64,
    /// Microseconds since `Metrics::started` when ingest was last caught up with the server.
    caught_up_at_micros: AtomicU64,
}

impl IngestStats {
    /// Notes the positions after handling a message; `started` is `Metrics::started`.
    pub fn note_positions(&self, server_end: u64, dispatched: u64, started: Instant) {
        self.server_wal_end.fetch_max(server_end, Relaxed);
        self.dispatched_lsn.fetch_max(dispatched, Relaxed);
        if dispatched >= self.server_wal_end.load(Relaxed) {
            self.caught_up_at_micros
                .store(started.elapsed().as_micros() as u64, Relaxed);
        }
    }

    /// Bytes of WAL the server has that the cores were not handed yet.
    pub fn lag_bytes(&self) -> u64 {
        self.server_wal_end
            .load(Relaxed)
            .saturating_sub(self.dispatched_lsn.load(Relaxed))
    }

    /// Seconds since ingest was last caught up with the server (0 while it is).
    pub fn lag_seconds(&self, started: Instant) -> f64 {
        if self.lag_bytes() == 0 {
            return 0.0;
        }
        let now = started.elapsed().as_micros() as u64;
        now.saturating_sub(self.caught_up_at_micros.load(Relaxed)) as f64 / 1e6
    }
}

/// Everything a scrape reports.
pub struct Metrics {
    pub cores: Vec<CoreStats>,
    pub ingest: IngestStats,
    pub started: Instant,
    /// Requests holding an admission permit now, by kind (node-wide).
    pub admitted_initial: AtomicI64,
    pub admitted_existing: AtomicI64,
}

impl Metrics {
    pub fn new(cores: usize) -> Self {
        let stats: Vec<CoreStats> = (0..cores).map(|_| CoreStats::default()).collect();
        for s in &stats {
            s.cpu_clock.store(NO_CLOCK, Relaxed);
        }
        Self {
            cores: stats,
            ingest: IngestStats::default(),
            started: Instant::now(),
            admitted_initial: AtomicI64::new(0),
            admitted_existing: AtomicI64::new(0),
        }
    }

    pub fn core(&self, id: usize) -> &CoreStats {
        &self.cores[id]
    }
}

/// Counts a held live request (long-poll or SSE stream) while it exists.
pub struct HeldGuard<'a>(&'a AtomicI64);

impl<'a> HeldGuard<'a> {
    pub fn new(gauge: &'a AtomicI64) -> Self {
        gauge.fetch_add(1, Relaxed);
        Self(gauge)
    }
}

impl Drop for HeldGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}
