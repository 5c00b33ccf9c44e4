//! Live progress on a terminal: process-wide counters that scenarios bump, and a thread that
//! redraws one status line on stderr while a run lasts — only when stderr is a terminal, so
//! logs and CI output stay clean.

use std::io::{IsTerminal as _, Write as _};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the status line is redrawn.
const REDRAW: Duration = Duration::from_millis(250);

/// Counters shown on the status line. Relaxed atomics: they are a display, not a result.
pub struct Counters {
    /// Shapes created or synced to up-to-date.
    pub shapes_ready: AtomicU64,
    /// Write transactions committed.
    pub writes: AtomicU64,
    /// (client, write) pairs fully received.
    pub deliveries: AtomicU64,
    /// Rows received by clients.
    pub rows: AtomicU64,
    pub errors: AtomicU64,
}

pub static COUNTERS: Counters = Counters {
    shapes_ready: AtomicU64::new(0),
    writes: AtomicU64::new(0),
    deliveries: AtomicU64::new(0),
    rows: AtomicU64::new(0),
    errors: AtomicU64::new(0),
};

/// Adds `n` to a counter.
pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// The redraw thread; stopping it clears the line.
pub struct Display {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Display {
    /// Starts redrawing under `label` if stderr is a terminal; otherwise does nothing.
    pub fn start(label: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        if !std::io::stderr().is_terminal() {
            return Self { stop, thread: None };
        }
        let label = label.to_owned();
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("loadgen-progress".to_owned())
            .spawn(move || redraw(&label, &flag))
            .ok();
        Self { stop, thread }
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
            // Clear the status line so the report starts on a clean line.
            eprint!("\r\x1b[K");
        }
    }
}

fn redraw(label: &str, stop: &AtomicBool) {
    let start = Instant::now();
    let base = snapshot();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(REDRAW);
        let now = snapshot();
        let line = format!(
            "\r\x1b[K{label} {:>6.1}s  shapes {}  writes {}  deliveries {}  rows {}  errors {}",
            start.elapsed().as_secs_f64(),
            now[0].saturating_sub(base[0]),
            now[1].saturating_sub(base[1]),
            now[2].saturating_sub(base[2]),
            now[3].saturating_sub(base[3]),
            now[4].saturating_sub(base[4]),
        );
        let mut stderr = std::io::stderr().lock();
        let _ = stderr.write_all(line.as_bytes());
        let _ = stderr.flush();
    }
}

/// The counters now; a run shows its own counts as differences from its start, since `plan`
/// runs several scenarios in one process.
fn snapshot() -> [u64; 5] {
    let c = &COUNTERS;
    [
        c.shapes_ready.load(Ordering::Relaxed),
        c.writes.load(Ordering::Relaxed),
        c.deliveries.load(Ordering::Relaxed),
        c.rows.load(Ordering::Relaxed),
        c.errors.load(Ordering::Relaxed),
    ]
}
