//! Latency summaries from hdrhistogram, in milliseconds for reports.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Nanosecond histogram, 1 µs … 10 min at 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts; failure would be a programming error.
    Histogram::new_with_bounds(1_000, 600_000_000_000, 3).expect("valid histogram bounds")
}

/// Records `value_ns`, clamped into the histogram's range so an outlier is kept, not lost.
pub fn record(histogram: &mut Histogram<u64>, value_ns: u64) {
    let clamped = value_ns.clamp(histogram.low(), histogram.high());
    histogram.saturating_record(clamped);
}

/// A latency distribution as reported.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Summary {
    pub fn of(histogram: &Histogram<u64>) -> Self {
        let ms = |ns: f64| (ns / 1e6 * 1000.0).round() / 1000.0;
        if histogram.is_empty() {
            return Self {
                count: 0,
                mean_ms: 0.0,
                p50_ms: 0.0,
                p90_ms: 0.0,
                p99_ms: 0.0,
                max_ms: 0.0,
            };
        }
        Self {
            count: histogram.len(),
            mean_ms: ms(histogram.mean()),
            p50_ms: ms(histogram.value_at_quantile(0.5) as f64),
            p90_ms: ms(histogram.value_at_quantile(0.9) as f64),
            p99_ms: ms(histogram.value_at_quantile(0.99) as f64),
            max_ms: ms(histogram.max() as f64),
        }
    }

    /// One table row: `label  count  mean  p50  p90  p99  max`.
    pub fn row(&self, label: &str) -> String {
        format!(
            "{label:<14} {:>8} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>10.2}",
            self.count, self.mean_ms, self.p50_ms, self.p90_ms, self.p99_ms, self.max_ms
        )
    }

    pub fn header() -> String {
        format!(
            "{:<14} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "latency (ms)", "count", "mean", "p50", "p90", "p99", "max"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarises_in_milliseconds() {
        let mut histogram = new_histogram();
        for ms in 1..=100u64 {
            record(&mut histogram, ms * 1_000_000);
        }
        record(&mut histogram, 0); // clamped to 1 µs, still counted
        let summary = Summary::of(&histogram);
        assert_eq!(summary.count, 101);
        assert!((summary.max_ms - 100.0).abs() < 0.1);
        assert!((summary.p50_ms - 50.0).abs() < 0.1);
        assert!((summary.p90_ms - 90.0).abs() < 0.1);
        assert_eq!(Summary::of(&new_histogram()).count, 0);
    }
}
