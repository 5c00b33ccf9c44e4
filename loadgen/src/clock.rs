//! One monotonic epoch for the whole process.
//!
//! The writer stamps each row with nanoseconds since this epoch and every client (on any core)
//! reads the same clock when the row arrives, so latency needs no clock synchronisation: both
//! ends live in this process.

use std::sync::OnceLock;
use std::time::Instant;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the process epoch (fixed by the first call).
pub fn now_ns() -> u64 {
    let elapsed = EPOCH.get_or_init(Instant::now).elapsed().as_nanos();
    // u64 nanoseconds last 584 years; saturating keeps this total anyway.
    u64::try_from(elapsed).unwrap_or(u64::MAX)
}
