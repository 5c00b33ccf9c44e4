//! Combining the loadgen processes' JSON reports of one point into its figures.

use super::*;

/// Combines the JSON reports of one point's loadgen processes (the leader's first) into its
/// figures. The leader's report has the resources: `--server-pid` order Ampere, nginx's
/// master (proxy mode), then the follower processes.
pub fn merge_reports(reports: &[Value], mode: Mode) -> Result<PointFigures> {
    let leader = reports.first().context("no loadgen report")?;
    for report in reports {
        ensure!(
            report.get("per_write").is_some(),
            "not a write-fanout report (no per_write)"
        );
    }
    let num = |v: &Value, pointer: &str| v.pointer(pointer).and_then(Value::as_f64);
    let count = |v: &Value, pointer: &str| v.pointer(pointer).and_then(Value::as_u64).unwrap_or(0);
    let sum = |pointer: &str| reports.iter().map(|r| count(r, pointer)).sum::<u64>();
    let writes_done = count(leader, "/writes_done");

    // Per write: expecting, received, weighted mean, max over processes. A follower lists the
    // writes up to the last one its clients saw; for a later write, all its clients count as
    // expecting it and none as having it.
    let mut last = Vec::new();
    let mut last_after_commit = Vec::new();
    let mut mean_client = Vec::new();
    let (mut expected, mut received_all) = (0u64, 0u64);
    let leader_commit = |write: u64| -> f64 {
        leader
            .get("per_write")
            .and_then(Value::as_array)
            .and_then(|a| {
                a.iter()
                    .find(|w| w.get("write_id").and_then(Value::as_u64) == Some(write))
            })
            .and_then(|w| w.get("commit_ms"))
            .and_then(Value::as_f64)
            .unwrap_or(0.0)
    };
    for write in 1..=writes_done {
        let (mut expecting, mut received, mut weighted, mut max) = (0u64, 0u64, 0.0f64, 0.0f64);
        for report in reports {
            let entry = report
                .get("per_write")
                .and_then(Value::as_array)
                .and_then(|a| {
                    a.iter()
                        .find(|w| w.get("write_id").and_then(Value::as_u64) == Some(write))
                });
            let Some(entry) = entry else {
                expecting += count(report, "/clients");
                continue;
            };
            let n = count(entry, "/received");
            expecting += count(entry, "/expecting");
            received += n;
            weighted += num(entry, "/mean_ms").unwrap_or(0.0) * n as f64;
            max = max.max(num(entry, "/max_ms").unwrap_or(0.0));
        }
        expected += expecting;
        received_all += received;
        if received > 0 {
            mean_client.push(weighted / received as f64);
        }
        if expecting > 0 && received == expecting {
            last.push(max);
            last_after_commit.push((max - leader_commit(write)).max(0.0));
        }
    }
    let every = merge_histograms(reports);
    let phase_servers = leader
        .pointer("/resources/write_phase/servers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let server = |i: usize| -> Option<ServerFigures> {
        let whole = leader.pointer(&format!("/resources/servers/{i}"))?;
        let phase = phase_servers.get(i);
        let f = |v: Option<&Value>, key: &str| {
            v.and_then(|v| v.get(key))
                .and_then(Value::as_f64)
                .unwrap_or(f64::NAN)
        };
        Some(ServerFigures {
            processes: whole.get("processes").and_then(Value::as_u64).unwrap_or(0),
            phase_cpu_secs: f(phase, "cpu_secs"),
            phase_rss_start_mb: f(phase, "rss_mb_start"),
            phase_rss_end_mb: f(phase, "rss_mb_end"),
            rss_peak_mb: f(Some(whole), "rss_mb_peak"),
        })
    };
    let followers_from = if mode == Mode::Proxy { 2 } else { 1 };
    let follower_cpu: f64 = phase_servers
        .iter()
        .skip(followers_from)
        .filter_map(|s| s.get("cpu_secs").and_then(Value::as_f64))
        .sum();
    let counters = leader.pointer("/resources/write_phase/server_metrics/counters");
    let mut by_status = Vec::new();
    let origin = counters.and_then(Value::as_object).map(|map| {
        let prefix = SHAPE_GET;
        let mut total = 0.0;
        for (sample, value) in map {
            if let (Some(rest), Some(v)) = (sample.strip_prefix(prefix), value.as_f64()) {
                total += v;
                let status = rest
                    .split("status=\"")
                    .nth(1)
                    .and_then(|s| s.split('"').next())
                    .unwrap_or("?");
                by_status.push((status.to_owned(), v));
            }
        }
        total
    });
    let origin_per_write: Vec<f64> = leader
        .pointer("/resources/write_phase/server_metrics/per_write")
        .and_then(Value::as_array)
        .map(|writes| {
            writes
                .iter()
                .map(|w| {
                    w.as_object().map_or(0.0, |map| {
                        map.iter()
                            .filter(|(k, _)| k.starts_with(SHAPE_GET))
                            .filter_map(|(_, v)| v.as_f64())
                            .sum()
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let nan = f64::NAN;
    Ok(PointFigures {
        complete: reports
            .iter()
            .all(|r| r.get("complete").and_then(Value::as_bool) == Some(true)),
        clients: sum("/clients"),
        writes_done,
        expected,
        received: received_all,
        errors: sum("/error_count"),
        first_error: reports
            .iter()
            .find_map(|r| r.pointer("/errors/0").and_then(Value::as_str))
            .map(str::to_owned),
        setup_secs: num(leader, "/setup_secs").unwrap_or(nan),
        last_p50_ms: percentile(&last, 0.5),
        last_p99_ms: percentile(&last, 0.99),
        last_max_ms: percentile(&last, 1.0),
        last_mean_ms: mean(&last),
        last_count: last.len() as u64,
        last_after_commit_p50_ms: percentile(&last_after_commit, 0.5),
        last_after_commit_p99_ms: percentile(&last_after_commit, 0.99),
        mean_client_mean_ms: mean(&mean_client),
        mean_client_p50_ms: percentile(&mean_client, 0.5),
        every_p50_ms: histogram_percentile(&every, 0.5),
        every_p99_ms: histogram_percentile(&every, 0.99),
        commit_mean_ms: num(leader, "/commit/mean_ms").unwrap_or(nan),
        phase_secs: num(leader, "/resources/write_phase/wall_secs").unwrap_or(nan),
        loadgen_phase_cpu_secs: num(leader, "/resources/write_phase/loadgen_cpu_secs")
            .map_or(nan, |own| own + follower_cpu),
        loadgen_max_rss_mb: reports
            .iter()
            .filter_map(|r| num(r, "/resources/loadgen_max_rss_mb"))
            .sum(),
        ampere: server(0),
        nginx: if mode == Mode::Proxy { server(1) } else { None },
        origin_shape_requests: origin,
        origin_by_status: by_status,
        origin_per_write,
    })
}

/// Ampere's counter of answered shape requests (all statuses follow).
pub(super) const SHAPE_GET: &str = "ampere_http_requests_total{route=\"shape_get\"";

/// The every-client histograms of all reports, summed: (latency µs, count), ascending.
pub(super) fn merge_histograms(reports: &[Value]) -> Vec<(u64, u64)> {
    let mut merged = std::collections::BTreeMap::new();
    for report in reports {
        let Some(pairs) = report
            .get("latency_every_client_histogram")
            .and_then(Value::as_array)
        else {
            continue;
        };
        for pair in pairs {
            let (Some(ms), Some(n)) = (
                pair.get(0).and_then(Value::as_f64),
                pair.get(1).and_then(Value::as_u64),
            ) else {
                continue;
            };
            *merged.entry((ms * 1000.0).round() as u64).or_insert(0u64) += n;
        }
    }
    merged.into_iter().collect()
}

/// Nearest-rank percentile of a histogram, in ms.
pub(super) fn histogram_percentile(histogram: &[(u64, u64)], q: f64) -> f64 {
    let total: u64 = histogram.iter().map(|&(_, n)| n).sum();
    if total == 0 {
        return f64::NAN;
    }
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    for &(us, n) in histogram {
        seen += n;
        if seen >= rank {
            return us as f64 / 1000.0;
        }
    }
    f64::NAN
}

/// Nearest-rank percentile of exact values (q = 1: the maximum).
pub(super) fn percentile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

pub(super) fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        f64::NAN
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}
