//! Smoke test: a throwaway Postgres, the `ampere` binary, and `loadgen write-fanout` with 20
//! clients on two cores and 10 writes; every client must receive every write (no timing
//! assertions).

mod support;

use support::{ampere_bin, loadgen, Server};

#[test]
fn write_fanout_delivers_every_write_to_every_client() {
    let bin = ampere_bin();
    let cluster = testkit::Cluster::start().expect("start Postgres");
    let db = cluster.create_database().expect("create database");
    let server = Server::start(&bin, &db.url());
    let run = loadgen(
        &server,
        &db.url(),
        "smoke",
        &[
            "--cores",
            "2",
            "write-fanout",
            "--clients",
            "20",
            "--writes",
            "10",
            "--writes-per-sec",
            "20",
            "--grace-secs",
            "20",
        ],
    );
    let context = &run.context;
    assert!(run.output.status.success(), "loadgen failed\n{context}");
    let report = run.report.expect("JSON report written and parses");
    assert_eq!(report["writes_done"], 10, "{context}");
    assert_eq!(report["client_writes_expected"], 200, "{context}");
    assert_eq!(report["client_writes_received"], 200, "{context}");
    assert_eq!(report["complete"], true, "{context}");
    assert_eq!(report["latency_last_client"]["count"], 10, "{context}");
    assert_eq!(report["latency_every_client"]["count"], 200, "{context}");
    assert_eq!(report["commit"]["count"], 10, "{context}");
}
