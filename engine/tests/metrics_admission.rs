//! `/metrics` on `ELECTRIC_PROMETHEUS_PORT` and admission control
//! (`ELECTRIC_MAX_CONCURRENT_REQUESTS`), black-box: the scrape parses as Prometheus text and its
//! counters move with the traffic; past the limit a shape request gets upstream's 503 with
//! `retry-after`, and once requests finish the server admits again.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};
use support::{Client, Env, Opts};

/// Samples of one scrape: `name{labels}` → value.
fn scrape(port: u16) -> HashMap<String, f64> {
    let r = Client::new(port).get("/metrics");
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(
        r.h("content-type"),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let mut out = HashMap::new();
    let mut typed = std::collections::HashSet::new();
    for line in r.body_str().lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE line");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            typed.insert(name.to_string());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample line");
        let name = series.split('{').next().expect("name");
        let family = name
            .strip_suffix("_bucket")
            .or_else(|| name.strip_suffix("_sum"))
            .or_else(|| name.strip_suffix("_count"))
            .filter(|f| typed.contains(*f))
            .unwrap_or(name);
        assert!(typed.contains(family), "sample before its TYPE: {line}");
        let v: f64 = value.parse().unwrap_or_else(|_| panic!("value in {line}"));
        out.insert(series.to_string(), v);
    }
    out
}

fn get(m: &HashMap<String, f64>, series: &str) -> f64 {
    m.get(series).copied().unwrap_or(0.0)
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn metrics_move_and_admission_refuses_then_recovers() {
    let cluster = support::cluster();
    let metrics_lease = support::lease_port();
    let metrics_port = metrics_lease.port();
    let env = Env::start(
        &cluster,
        "CREATE TABLE items (id int PRIMARY KEY, v text); INSERT INTO items VALUES (1, 'a');",
        Opts {
            long_poll_ms: 20_000,
            cores: 2,
            env: vec![
                ("ELECTRIC_PROMETHEUS_PORT", metrics_port.to_string()),
                (
                    "ELECTRIC_MAX_CONCURRENT_REQUESTS",
                    r#"{"initial":2,"existing":3}"#.to_string(),
                ),
            ],
            ..Opts::default()
        },
    );
    let m0 = scrape(metrics_port);
    assert_eq!(get(&m0, "ampere_up"), 1.0);
    assert!(m0.contains_key("ampere_info{version=\"0.1.0\",io_driver=\"epoll\",cores=\"2\"}"));

    // Counters move with requests and replication.
    let c = env.client();
    let r = c.get("/v1/shape?table=items&offset=-1");
    assert_eq!(r.status, 200);
    let (handle, mut offset) = (r.handle().to_string(), r.offset().to_string());
    loop {
        let r = c.get(&format!(
            "/v1/shape?table=items&handle={handle}&offset={offset}"
        ));
        offset = r.offset().to_string();
        if r.has("electric-up-to-date") {
            break;
        }
    }
    env.sql("INSERT INTO items VALUES (2, 'b')");
    wait_for("the insert in the metrics", || {
        let m = scrape(metrics_port);
        get(&m, "ampere_replication_transactions_total") >= 1.0
            && get(&m, "ampere_shape_log_entries_total") >= 1.0
    });
    let m1 = scrape(metrics_port);
    let ok = "ampere_http_requests_total{route=\"shape_get\",status=\"200\"}";
    assert!(get(&m1, ok) >= get(&m0, ok) + 2.0, "{m1:?}");
    let shapes: f64 = (0..2)
        .map(|i| get(&m1, &format!("ampere_shapes{{core=\"{i}\"}}")))
        .sum();
    assert_eq!(shapes, 1.0);
    assert!(
        get(
            &m1,
            "ampere_http_request_duration_seconds_count{route=\"shape_get\"}"
        ) >= 2.0
    );
    assert!(get(&m1, "ampere_replication_changes_total") >= 1.0);
    assert!(get(&m1, "ampere_shape_log_bytes_total") > 0.0);
    assert!(get(&m1, "ampere_core_busy_seconds_total{core=\"0\"}") > 0.0);
    // Other paths on the metrics port are 404.
    assert_eq!(Client::new(metrics_port).get("/v1/shape").status, 404);

    // Hold three live requests (the "existing" limit), from threads.
    env.sql("SELECT 1");
    let lsn_query = format!("/v1/shape?table=items&handle={handle}&offset=");
    let r = c.get(&format!("{lsn_query}{offset}"));
    offset = r.offset().to_string();
    let live = format!("/v1/shape?table=items&handle={handle}&offset={offset}&live=true");
    let held: Vec<_> = (0..3)
        .map(|_| {
            let (port, url) = (env.server.port, live.clone());
            std::thread::spawn(move || Client::new(port).get(&url))
        })
        .collect();
    wait_for("three held long-polls", || {
        get(
            &scrape(metrics_port),
            "ampere_live_connections{mode=\"long_poll\"}",
        ) == 3.0
    });
    let refused = c.get(&live);
    assert_eq!(refused.status, 503, "{}", refused.body_str());
    assert_eq!(
        refused.body_str(),
        r#"{"code":"concurrent_request_limit_exceeded","message":"Concurrent existing request limit exceeded (limit: 3), please retry"}"#
    );
    let retry: u64 = refused.h("retry-after").parse().expect("retry-after");
    assert!((6..=10).contains(&retry), "retry-after {retry}");
    assert_eq!(refused.h("cache-control"), "no-store");
    // Initial requests have their own budget.
    assert_eq!(c.get("/v1/shape?table=items&offset=-1").status, 200);
    let m2 = scrape(metrics_port);
    assert_eq!(
        get(&m2, "ampere_admission_rejected_total{kind=\"existing\"}"),
        1.0
    );
    assert_eq!(
        get(&m2, "ampere_admission_in_flight{kind=\"existing\"}"),
        3.0
    );

    // A write completes the held requests; then the server admits again.
    env.sql("INSERT INTO items VALUES (3, 'c')");
    for h in held {
        let r = h.join().expect("held request");
        assert_eq!(r.status, 200, "{}", r.body_str());
    }
    wait_for("the permits back", || {
        get(
            &scrape(metrics_port),
            "ampere_admission_in_flight{kind=\"existing\"}",
        ) == 0.0
    });
    let again = c.get(&format!(
        "/v1/shape?table=items&handle={handle}&offset={offset}"
    ));
    assert_eq!(again.status, 200, "{}", again.body_str());
    let m3 = scrape(metrics_port);
    assert!(
        get(
            &m3,
            "ampere_http_requests_total{route=\"shape_get\",status=\"503\"}"
        ) >= 1.0
    );
}

/// Initial requests past the limit queue for a slot instead of getting 503 (a storm of new
/// shapes: `app::admission`): 40 new shapes at once with an initial limit of 1 all get their
/// snapshot, and no initial request is refused.
#[test]
fn initial_requests_past_the_limit_queue_instead_of_503() {
    let cluster = support::cluster();
    let metrics_lease = support::lease_port();
    let metrics_port = metrics_lease.port();
    let env = Env::start(
        &cluster,
        "CREATE TABLE items (id int PRIMARY KEY, v text);
         INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 200) g;",
        Opts {
            cores: 2,
            env: vec![
                ("ELECTRIC_PROMETHEUS_PORT", metrics_port.to_string()),
                (
                    "ELECTRIC_MAX_CONCURRENT_REQUESTS",
                    r#"{"initial":1,"existing":100}"#.to_string(),
                ),
            ],
            ..Opts::default()
        },
    );
    let port = env.server.port;
    let clients: Vec<_> = (0..40)
        .map(|i| {
            std::thread::spawn(move || {
                let r = Client::new(port).get(&format!(
                    "/v1/shape?table=items&offset=-1&where=id%20%3E%20{i}"
                ));
                (i, r.status, r.body_str().to_string())
            })
        })
        .collect();
    for c in clients {
        let (i, status, body) = c.join().expect("client");
        assert_eq!(status, 200, "shape {i}: {body}");
        let rows = body.matches("\"insert\"").count();
        assert_eq!(rows, 200 - i, "shape {i}: rows");
    }
    let m = scrape(metrics_port);
    assert_eq!(
        get(&m, "ampere_admission_rejected_total{kind=\"initial\"}"),
        0.0
    );
}
