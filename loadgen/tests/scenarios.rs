//! Every scenario at a tiny size against a real `ampere` and a real Postgres, so none of them
//! rots: each run must exit 0 and its JSON report must carry the expected counts. One server
//! and one cluster serve all runs (started once, to keep the test short); failures are
//! collected and reported together. No timing assertions.

mod support;

use serde_json::Value;
use support::{ampere_bin, loadgen, Run, Server};

/// Checks one run: exit status 0, a report, `complete`, resources with the server's share,
/// then the scenario's own expectations.
fn check(run: &Run, expectations: &[(&str, Value)]) -> Result<(), String> {
    let context = &run.context;
    if !run.output.status.success() {
        return Err(format!("non-zero exit\n{context}"));
    }
    let Some(report) = &run.report else {
        return Err(format!("no JSON report\n{context}"));
    };
    let mut problems = Vec::new();
    for (pointer, expected) in expectations {
        let actual = report.pointer(pointer).cloned().unwrap_or(Value::Null);
        if &actual != expected {
            problems.push(format!("{pointer}: expected {expected}, got {actual}"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}\n{context}", problems.join("\n")))
    }
}

/// Checks that a pointer holds a number greater than zero.
fn positive(run: &Run, pointer: &str) -> Result<(), String> {
    let value = run.report.as_ref().and_then(|r| r.pointer(pointer));
    match value.and_then(Value::as_f64) {
        Some(n) if n > 0.0 => Ok(()),
        _ => Err(format!(
            "{pointer}: expected > 0, got {value:?}\n{}",
            run.context
        )),
    }
}

#[test]
fn every_scenario_runs_at_a_tiny_size() {
    let bin = ampere_bin();
    let cluster = testkit::Cluster::start().expect("start Postgres");
    let db = cluster.create_database().expect("create database");
    let url = db.url();
    let server = Server::start(&bin, &url);
    let mut failures: Vec<String> = Vec::new();
    let mut record = |name: &str, result: Result<(), String>| {
        if let Err(message) = result {
            failures.push(format!("=== {name}\n{message}"));
        }
    };
    let t = |v: u64| Value::from(v);

    let run = loadgen(
        &server,
        &url,
        "creation",
        &["concurrent-shape-creation", "--shapes", "5", "--rows", "20"],
    );
    record(
        "concurrent-shape-creation",
        check(
            &run,
            &[
                ("/shapes_complete", t(5)),
                ("/time_to_up_to_date/count", t(5)),
            ],
        )
        .and_then(|()| positive(&run, "/resources/server/rss_mb_end")),
    );

    let run = loadgen(
        &server,
        &url,
        "creation_same",
        &[
            "concurrent-shape-creation",
            "--shapes",
            "3",
            "--rows",
            "20",
            "--same-shape",
        ],
    );
    record(
        "concurrent-shape-creation --same-shape",
        check(&run, &[("/shapes_complete", t(3))]),
    );

    let run = loadgen(
        &server,
        &url,
        "large",
        &["large-shape-sync", "--rows", "3000", "--clients", "2"],
    );
    record(
        "large-shape-sync",
        check(
            &run,
            &[
                ("/syncs/0/rows", t(3000)),
                ("/syncs/1/rows", t(3000)),
                ("/syncs/1/complete", Value::Bool(true)),
            ],
        )
        .and_then(|()| positive(&run, "/syncs/0/body_bytes")),
    );

    for (predicate, shapes) in [("eq", "20"), ("ilike", "6"), ("in", "6"), ("range", "6")] {
        let run = loadgen(
            &server,
            &url,
            &format!("unrelated_{predicate}"),
            &[
                "unrelated-shapes-latency",
                "--shapes",
                shapes,
                "--predicate",
                predicate,
                "--writes",
                "3",
                "--writes-per-sec",
                "10",
                "--rows-per-write",
                "5",
            ],
        );
        let passive: u64 = shapes.parse::<u64>().unwrap_or(0) - 1;
        record(
            &format!("unrelated-shapes-latency --predicate {predicate}"),
            check(
                &run,
                &[
                    ("/clients", t(1)),
                    ("/passive_shapes_created", t(passive)),
                    ("/client_writes_expected", t(3)),
                    ("/client_writes_received", t(3)),
                    ("/latency_every_client/count", t(3)),
                ],
            ),
        );
    }

    let run = loadgen(
        &server,
        &url,
        "fanout",
        &["write-fanout", "--clients", "5", "--writes", "3"],
    );
    record(
        "write-fanout",
        check(
            &run,
            &[
                ("/client_writes_expected", t(15)),
                ("/client_writes_received", t(15)),
                ("/latency_last_client/count", t(3)),
            ],
        )
        .and_then(|()| positive(&run, "/resources/loadgen_cpu_secs"))
        .and_then(|()| positive(&run, "/resources/server/rss_mb_peak")),
    );

    for predicate in ["range", "in"] {
        let run = loadgen(
            &server,
            &url,
            &format!("diverse_{predicate}"),
            &[
                "diverse-shape-fanout",
                "--shapes",
                "5",
                "--predicate",
                predicate,
                "--writes",
                "2",
                "--writes-per-sec",
                "5",
                "--rows-per-write",
                "5",
            ],
        );
        record(
            &format!("diverse-shape-fanout --predicate {predicate}"),
            check(
                &run,
                &[
                    ("/clients", t(5)),
                    ("/client_writes_expected", t(10)),
                    ("/client_writes_received", t(10)),
                ],
            ),
        );
    }

    let run = loadgen(
        &server,
        &url,
        "many",
        &[
            "many-shapes-one-client",
            "--shapes",
            "10",
            "--writes",
            "2",
            "--writes-per-sec",
            "5",
        ],
    );
    record(
        "many-shapes-one-client",
        check(
            &run,
            &[
                ("/clients", t(1)),
                ("/passive_shapes_created", t(9)),
                ("/client_writes_received", t(2)),
            ],
        ),
    );

    let run = loadgen(
        &server,
        &url,
        "throughput",
        &[
            "replication-throughput",
            "--rows-per-sec",
            "200",
            "--rows-per-write",
            "20",
            "--duration-secs",
            "1",
        ],
    );
    record(
        "replication-throughput",
        check(&run, &[("/writes_done", t(10)), ("/rows_written", t(200))])
            .and_then(|()| positive(&run, "/rows_received_per_sec_first_client")),
    );

    // 4 clients × 2 of 3 shapes: shapes 0 and 1 have 3 subscribers, shape 2 has 2; 20 writes
    // cycle through the shapes (7, 7 and 6 writes), so 3·7 + 3·7 + 2·6 = 54 deliveries.
    let run = loadgen(
        &server,
        &url,
        "controlled",
        &[
            "controlled-load",
            "--clients",
            "4",
            "--shapes-per-client",
            "2",
            "--shapes",
            "3",
            "--rows",
            "100",
            "--spawn-per-sec",
            "50",
            "--writes-per-sec",
            "20",
            "--duration-secs",
            "1",
            "--interval-secs",
            "0.5",
        ],
    );
    record(
        "controlled-load",
        check(
            &run,
            &[
                ("/clients", t(8)),
                ("/writes_done", t(20)),
                ("/client_writes_expected", t(54)),
                ("/client_writes_received", t(54)),
            ],
        )
        .and_then(|()| positive(&run, "/timeline/0/deliveries")),
    );

    let run = loadgen(
        &server,
        &url,
        "plan",
        &[
            "plan",
            "--slo-p99-ms",
            "60000",
            "--start-clients",
            "2",
            "--max-clients",
            "4",
            "--writes-per-sec",
            "5",
            "--max-writes-per-sec",
            "10",
            "--step-secs",
            "1",
        ],
    );
    // Clients 2 → 4 (the maximum), then the rate 5 → 10 (the maximum): three passing steps.
    record(
        "plan",
        check(
            &run,
            &[
                ("/steps/2/phase", Value::from("rate")),
                ("/sustainable/clients", t(4)),
                ("/sustainable/writes_per_sec", Value::from(10.0)),
                ("/sustainable/per_core_basis", Value::from("server_cpu")),
            ],
        )
        .and_then(|()| positive(&run, "/sustainable/per_core_deliveries_per_sec")),
    );

    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
