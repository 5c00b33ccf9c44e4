//! The Prometheus text exposition format (version 0.0.4) of [`super::Metrics`].

use super::histogram::BOUNDS;
use super::{Metrics, RouteLabel, STATUSES};
use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

/// Facts about this process that do not change while it runs.
pub struct Info<'a> {
    pub io_driver: &'a str,
    pub version: &'a str,
    /// Whether replication is active (`/v1/health` says `active`).
    pub active: bool,
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

pub fn render(m: &Metrics, info: &Info<'_>) -> String {
    let mut out = String::with_capacity(8 * 1024);
    header(&mut out, "ampere_info", "gauge", "Build and runtime facts.");
    let _ = writeln!(
        out,
        "ampere_info{{version=\"{}\",io_driver=\"{}\",cores=\"{}\"}} 1",
        info.version,
        info.io_driver,
        m.cores.len()
    );
    header(
        &mut out,
        "ampere_up",
        "gauge",
        "1 while replication is active.",
    );
    let _ = writeln!(out, "ampere_up {}", u8::from(info.active));
    header(
        &mut out,
        "ampere_uptime_seconds",
        "gauge",
        "Seconds since the process started.",
    );
    let _ = writeln!(
        out,
        "ampere_uptime_seconds {:.3}",
        m.started.elapsed().as_secs_f64()
    );

    header(
        &mut out,
        "ampere_http_requests_total",
        "counter",
        "HTTP requests answered, by route and status.",
    );
    for route in RouteLabel::ALL {
        let r = route as usize;
        for s in 0..=STATUSES.len() {
            let n: u64 = m.cores.iter().map(|c| c.requests[r][s].load(Relaxed)).sum();
            if n == 0 {
                continue;
            }
            let status = STATUSES.get(s).map_or("other".to_string(), u16::to_string);
            let _ = writeln!(
                out,
                "ampere_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                route.as_str()
            );
        }
    }
    header(
        &mut out,
        "ampere_http_request_duration_seconds",
        "histogram",
        "Time from a parsed request to its response (live requests include their wait).",
    );
    for route in RouteLabel::ALL {
        let mut counts = [0u64; BOUNDS.len() + 1];
        let mut sum_micros = 0u64;
        for c in &m.cores {
            c.latency[route as usize].add_into(&mut counts, &mut sum_micros);
        }
        let total: u64 = counts.iter().sum();
        if total == 0 {
            continue;
        }
        let name = route.as_str();
        let mut cumulative = 0;
        for (bound, count) in BOUNDS.iter().zip(&counts) {
            cumulative += count;
            let _ = writeln!(
                out,
                "ampere_http_request_duration_seconds_bucket{{route=\"{name}\",le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "ampere_http_request_duration_seconds_bucket{{route=\"{name}\",le=\"+Inf\"}} {total}"
        );
        let _ = writeln!(
            out,
            "ampere_http_request_duration_seconds_sum{{route=\"{name}\"}} {:.6}",
            sum_micros as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "ampere_http_request_duration_seconds_count{{route=\"{name}\"}} {total}"
        );
    }

    header(
        &mut out,
        "ampere_live_connections",
        "gauge",
        "Live requests held open, by mode.",
    );
    let held = |f: fn(&super::CoreStats) -> i64| m.cores.iter().map(f).sum::<i64>().max(0);
    let _ = writeln!(
        out,
        "ampere_live_connections{{mode=\"long_poll\"}} {}",
        held(|c| c.held_long_polls.load(Relaxed))
    );
    let _ = writeln!(
        out,
        "ampere_live_connections{{mode=\"sse\"}} {}",
        held(|c| c.held_sse.load(Relaxed))
    );
    header(
        &mut out,
        "ampere_closed_chunk_hits_total",
        "counter",
        "Catch-up requests answered from the closed chunks kept by the core holding the connection.",
    );
    let sum = |f: fn(&super::CoreStats) -> u64| m.cores.iter().map(f).sum::<u64>();
    let _ = writeln!(
        out,
        "ampere_closed_chunk_hits_total {}",
        sum(|c| c.closed_chunk_hits.load(Relaxed))
    );
    header(
        &mut out,
        "ampere_view_answers_total",
        "counter",
        "Catch-up and up-to-date requests of a shape answered from the view its owner core published to the core holding the connection.",
    );
    let _ = writeln!(
        out,
        "ampere_view_answers_total {}",
        sum(|c| c.view_answers.load(Relaxed))
    );
    header(
        &mut out,
        "ampere_admission_in_flight",
        "gauge",
        "Shape requests holding an admission permit, by kind.",
    );
    let _ = writeln!(
        out,
        "ampere_admission_in_flight{{kind=\"initial\"}} {}",
        m.admitted_initial.load(Relaxed).max(0)
    );
    let _ = writeln!(
        out,
        "ampere_admission_in_flight{{kind=\"existing\"}} {}",
        m.admitted_existing.load(Relaxed).max(0)
    );
    header(
        &mut out,
        "ampere_admission_rejected_total",
        "counter",
        "Shape requests refused with 503 by admission control, by kind.",
    );
    let _ = writeln!(
        out,
        "ampere_admission_rejected_total{{kind=\"initial\"}} {}",
        sum(|c| c.rejected_initial.load(Relaxed))
    );
    let _ = writeln!(
        out,
        "ampere_admission_rejected_total{{kind=\"existing\"}} {}",
        sum(|c| c.rejected_existing.load(Relaxed))
    );

    header(&mut out, "ampere_shapes", "gauge", "Shapes held, by core.");
    for (i, c) in m.cores.iter().enumerate() {
        let _ = writeln!(
            out,
            "ampere_shapes{{core=\"{i}\"}} {}",
            c.shapes.load(Relaxed)
        );
    }
    header(
        &mut out,
        "ampere_shape_log_bytes_total",
        "counter",
        "Bytes appended to shape logs (snapshots and changes).",
    );
    let _ = writeln!(
        out,
        "ampere_shape_log_bytes_total {}",
        sum(|c| c.log_bytes.load(Relaxed))
    );
    header(
        &mut out,
        "ampere_shape_log_entries_total",
        "counter",
        "Change entries appended to shape logs.",
    );
    let _ = writeln!(
        out,
        "ampere_shape_log_entries_total {}",
        sum(|c| c.log_entries.load(Relaxed))
    );
    header(
        &mut out,
        "ampere_core_busy_seconds_total",
        "counter",
        "CPU time used by each core's thread.",
    );
    for (i, c) in m.cores.iter().enumerate() {
        if let Some(secs) = c.cpu_seconds() {
            let _ = writeln!(
                out,
                "ampere_core_busy_seconds_total{{core=\"{i}\"}} {secs:.6}"
            );
        }
    }

    let ing = &m.ingest;
    header(
        &mut out,
        "ampere_replication_transactions_total",
        "counter",
        "Transactions received from the replication slot.",
    );
    let _ = writeln!(
        out,
        "ampere_replication_transactions_total {}",
        ing.transactions.load(Relaxed)
    );
    header(
        &mut out,
        "ampere_replication_changes_total",
        "counter",
        "Row changes received from the replication slot.",
    );
    let _ = writeln!(
        out,
        "ampere_replication_changes_total {}",
        ing.changes.load(Relaxed)
    );
    header(
        &mut out,
        "ampere_replication_received_bytes_total",
        "counter",
        "pgoutput bytes received from the replication slot.",
    );
    let _ = writeln!(
        out,
        "ampere_replication_received_bytes_total {}",
        ing.wal_bytes.load(Relaxed)
    );
    header(
        &mut out,
        "ampere_replication_lag_bytes",
        "gauge",
        "WAL the server reported beyond the last transaction handed to the cores.",
    );
    let _ = writeln!(out, "ampere_replication_lag_bytes {}", ing.lag_bytes());
    header(
        &mut out,
        "ampere_replication_lag_seconds",
        "gauge",
        "Seconds since ingest was last caught up with the server's WAL (0 while it is).",
    );
    let _ = writeln!(
        out,
        "ampere_replication_lag_seconds {:.3}",
        ing.lag_seconds(m.started)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use std::time::Duration;

    #[test]
    fn renders_counters_histograms_and_gauges() {
        let m = Metrics::new(2);
        m.core(0)
            .record_request(RouteLabel::ShapeGet, 200, Duration::from_millis(3));
        m.core(1)
            .record_request(RouteLabel::ShapeGet, 200, Duration::from_millis(30));
        m.core(1)
            .record_request(RouteLabel::ShapeGet, 418, Duration::from_millis(1));
        m.core(0).shapes.store(5, Relaxed);
        let text = render(
            &m,
            &Info {
                io_driver: "epoll",
                version: "0.1.0",
                active: true,
            },
        );
        assert!(text.contains("ampere_http_requests_total{route=\"shape_get\",status=\"200\"} 2\n"));
        assert!(
            text.contains("ampere_http_requests_total{route=\"shape_get\",status=\"other\"} 1\n")
        );
        assert!(text.contains(
            "ampere_http_request_duration_seconds_bucket{route=\"shape_get\",le=\"0.005\"} 2\n"
        ));
        assert!(text.contains(
            "ampere_http_request_duration_seconds_bucket{route=\"shape_get\",le=\"+Inf\"} 3\n"
        ));
        assert!(
            text.contains("ampere_http_request_duration_seconds_count{route=\"shape_get\"} 3\n")
        );
        assert!(text.contains("ampere_shapes{core=\"0\"} 5\n"));
        assert!(text.contains("ampere_info{version=\"0.1.0\",io_driver=\"epoll\",cores=\"2\"} 1\n"));
        // Every sample line is `name{labels} value` or `name value`, after its TYPE line.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').expect("sample");
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
