//! A latency histogram with fixed buckets, updated with relaxed atomics by one core and read by
//! the scraper (counts may be a moment apart; Prometheus tolerates that).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds in seconds; long-polls land in the 20 s bucket, SSE heads in the first ones.
pub const BOUNDS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

#[derive(Default)]
pub struct Histogram {
    /// Non-cumulative counts per bucket; the last one is `+Inf`.
    buckets: [AtomicU64; BOUNDS.len() + 1],
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = BOUNDS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(BOUNDS.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros().min(u128::from(u64::MAX)) as u64, Relaxed);
    }

    /// Adds this histogram's non-cumulative counts and sum (µs) into the totals.
    pub fn add_into(&self, counts: &mut [u64; BOUNDS.len() + 1], sum_micros: &mut u64) {
        for (total, b) in counts.iter_mut().zip(&self.buckets) {
            *total += b.load(Relaxed);
        }
        *sum_micros += self.sum_micros.load(Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_by_upper_bound() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(1));
        h.observe(Duration::from_millis(7));
        h.observe(Duration::from_secs(100));
        let mut counts = [0; BOUNDS.len() + 1];
        let mut sum = 0;
        h.add_into(&mut counts, &mut sum);
        assert_eq!(counts[0], 2, "≤ 1 ms, bound inclusive");
        assert_eq!(counts[2], 1, "≤ 10 ms");
        assert_eq!(counts[BOUNDS.len()], 1, "+Inf");
        assert_eq!(sum, 500 + 1000 + 7000 + 100_000_000);
    }
}
