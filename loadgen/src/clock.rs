//! One monotonic clock for every loadgen process on the machine.
//!
//! The writer stamps each row with [`now_ns`] and every client (on any core, or in another
//! loadgen process following the same table, see `write-fanout --followers`) reads the same
//! clock when the row arrives, so latency needs no clock synchronisation: `CLOCK_MONOTONIC`
//! is one clock for the whole machine (nanoseconds since boot), unaffected by wall-clock
//! changes.

/// Nanoseconds of `CLOCK_MONOTONIC`.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    }
    // Both fields are non-negative for CLOCK_MONOTONIC; u64 nanoseconds last 584 years.
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advances_like_instant() {
        let (a, started) = (now_ns(), std::time::Instant::now());
        std::thread::sleep(std::time::Duration::from_millis(20));
        let elapsed = now_ns() - a;
        let reference = started.elapsed().as_nanos() as u64;
        assert!(elapsed >= 20_000_000);
        assert!(
            elapsed.abs_diff(reference) < 5_000_000,
            "{elapsed} vs {reference}"
        );
    }
}
