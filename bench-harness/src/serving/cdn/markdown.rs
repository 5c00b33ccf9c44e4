//! The markdown tables of a run (`docs/benchmarks/cdn.md`).

use super::*;

pub(super) fn ms(v: f64) -> String {
    if v.is_nan() {
        "-".to_owned()
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

pub(super) fn num(v: f64, digits: usize) -> String {
    if v.is_nan() {
        "-".to_owned()
    } else {
        format!("{v:.digits$}")
    }
}

pub(super) fn ratio(a: f64, b: f64) -> String {
    if a.is_nan() || b.is_nan() || b == 0.0 {
        "-".to_owned()
    } else {
        let r = a / b;
        if r >= 10.0 {
            format!("{r:.0}×")
        } else if r >= 0.1 {
            format!("{r:.2}×")
        } else {
            format!("{r:.4}×")
        }
    }
}

pub(super) fn per_write(total: f64, writes: u64) -> f64 {
    if writes == 0 {
        f64::NAN
    } else {
        total / writes as f64
    }
}

pub(super) fn tables(options: &CdnOptions, points: &[Point], nofile: u64) -> Vec<Table> {
    let mut latency = Table::new(
        "Write → client latency (ms), one shape, 1-row writes",
        &[
            "mode",
            "clients",
            "delivered",
            "last client p50",
            "last client p99",
            "last client max",
            "last − commit p50",
            "last − commit p99",
            "mean client (mean)",
            "every client p50",
            "every client p99",
            "pg commit (mean)",
            "setup s",
            "load avg",
        ],
    );
    let mut load = Table::new(
        "Origin requests and resources over the write phase (first write to last delivery)",
        &[
            "mode",
            "clients",
            "origin requests / write",
            "Ampere CPU s / write",
            "nginx CPU s / write",
            "loadgen CPU s / write",
            "Ampere RSS MB (start → end)",
            "nginx RSS MB (start → end)",
            "nginx processes",
            "phase s",
        ],
    );
    let mut failures = Vec::new();
    for p in points {
        let f = match &p.figures {
            Ok(f) => f,
            Err(e) => {
                failures.push(format!("{} {} clients: {e}", p.mode.name(), p.clients));
                continue;
            }
        };
        let load_avg = format!("{:.1}–{:.1}", p.load.0, p.load.1);
        let mut delivered = format!("{} / {}", f.received, f.expected);
        if !f.complete {
            delivered.push_str(" (incomplete)");
        }
        latency.row(vec![
            p.mode.name().to_owned(),
            p.clients.to_string(),
            delivered,
            ms(f.last_p50_ms),
            ms(f.last_p99_ms),
            ms(f.last_max_ms),
            ms(f.last_after_commit_p50_ms),
            ms(f.last_after_commit_p99_ms),
            ms(f.mean_client_mean_ms),
            ms(f.every_p50_ms),
            ms(f.every_p99_ms),
            ms(f.commit_mean_ms),
            num(f.setup_secs, 1),
            load_avg,
        ]);
        let w = f.writes_done;
        let cpu = |s: &Option<ServerFigures>| {
            s.as_ref()
                .map_or("-".to_owned(), |s| num(per_write(s.phase_cpu_secs, w), 3))
        };
        let rss = |s: &Option<ServerFigures>| {
            s.as_ref().map_or("-".to_owned(), |s| {
                format!(
                    "{} → {}",
                    num(s.phase_rss_start_mb, 0),
                    num(s.phase_rss_end_mb, 0)
                )
            })
        };
        let origin = match f.origin_shape_requests {
            Some(n) => {
                let statuses: Vec<String> = f
                    .origin_by_status
                    .iter()
                    .filter(|(s, _)| s != "200")
                    .map(|(s, v)| format!("{v:.0}×{s}"))
                    .collect();
                let mut text = num(per_write(n, w), 1);
                if !statuses.is_empty() {
                    text.push_str(&format!(" (incl. {})", statuses.join(", ")));
                }
                text
            }
            None => "-".to_owned(),
        };
        load.row(vec![
            p.mode.name().to_owned(),
            p.clients.to_string(),
            origin,
            cpu(&f.ampere),
            cpu(&f.nginx),
            num(per_write(f.loadgen_phase_cpu_secs, w), 3),
            rss(&f.ampere),
            rss(&f.nginx),
            f.nginx
                .as_ref()
                .map_or("-".to_owned(), |n| n.processes.to_string()),
            num(f.phase_secs, 1),
        ]);
    }
    let mut per_write_table = Table::new(
        "Origin requests of each write, in order (Ampere's shape_get counter, scraped before \
         every write)",
        &["mode", "clients", "writes 1, 2, 3, …"],
    );
    for p in points {
        if let Ok(f) = &p.figures {
            if !f.origin_per_write.is_empty() {
                let list: Vec<String> = f
                    .origin_per_write
                    .iter()
                    .map(|n| format!("{n:.0}"))
                    .collect();
                per_write_table.row(vec![
                    p.mode.name().to_owned(),
                    p.clients.to_string(),
                    list.join(", "),
                ]);
            }
        }
    }
    let mut ratios = Table::new(
        "Proxy ÷ direct, same run",
        &[
            "clients",
            "last client p50",
            "last client p99",
            "mean client (mean)",
            "origin requests / write",
            "Ampere CPU / write",
        ],
    );
    for &clients in &options.clients {
        let find = |mode: Mode| {
            points
                .iter()
                .find(|p| p.mode == mode && p.clients == clients)
                .and_then(|p| p.figures.as_ref().ok())
        };
        let (Some(proxy), Some(direct)) = (find(Mode::Proxy), find(Mode::Direct)) else {
            continue;
        };
        let origin = |f: &PointFigures| {
            f.origin_shape_requests
                .map_or(f64::NAN, |n| per_write(n, f.writes_done))
        };
        let ampere_cpu = |f: &PointFigures| {
            f.ampere
                .as_ref()
                .map_or(f64::NAN, |s| per_write(s.phase_cpu_secs, f.writes_done))
        };
        ratios.row(vec![
            clients.to_string(),
            ratio(proxy.last_p50_ms, direct.last_p50_ms),
            ratio(proxy.last_p99_ms, direct.last_p99_ms),
            ratio(proxy.mean_client_mean_ms, direct.mean_client_mean_ms),
            ratio(origin(proxy), origin(direct)),
            ratio(ampere_cpu(proxy), ampere_cpu(direct)),
        ]);
    }
    latency.note(format!(
        "{} writes of {} row(s) at {}/s (each up to {} ms late) per point; clients start at {}/s in all; {} loadgen \
         process(es) × {} thread(s) ({}), clients spread over {} nginx port(s) (proxy) or \
         Ampere's one port (direct), from source addresses {}",
        options.writes,
        options.rows_per_write,
        options.writes_per_sec,
        options.write_jitter_ms,
        options.spawn_per_sec,
        options.loadgen_procs,
        options.loadgen_cores,
        options.loadgen_driver,
        options.listen_ports,
        options.source_addrs
    ));
    latency.note(format!(
        "Ampere: {} io driver, AMPERE_CORES={}; nginx workers: {}; open-file limit {nofile}; \
         ephemeral ports {}",
        options.ampere_driver,
        options
            .ampere_cores
            .map_or("all".to_owned(), |c| c.to_string()),
        options
            .nginx_workers
            .map_or("auto".to_owned(), |w| w.to_string()),
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join("–"))
            .unwrap_or_default()
    ));
    latency.note(
        "last client: per write, the slowest client's latency (p50/p99/max over writes that \
         every client received); mean client: per write, the mean over clients; every client: \
         every (client, write) pair",
    );
    for p in points {
        if let Ok(f) = &p.figures {
            if let Some(e) = &f.first_error {
                failures.push(format!(
                    "{} {} clients: {} errors, first: {e}",
                    p.mode.name(),
                    p.clients,
                    f.errors
                ));
            }
        }
    }
    for failure in failures {
        latency.note(failure);
    }
    load.note(
        "origin requests: Ampere's own ampere_http_requests_total{route=\"shape_get\"}, all \
         statuses, scraped at the first write and after the last delivery, divided by writes",
    );
    load.note(
        "CPU: user + system over the write phase from /proc (nginx: master + workers); RSS: \
         VmRSS summed over the processes at the phase's start and end",
    );
    vec![latency, load, per_write_table, ratios]
}
