//! Runs each benchmark at a tiny size against a real Postgres, so the harness cannot rot.
//!
//! Goal: every subcommand still works end to end and decodes exactly the changes it wrote.
//! Method: the same entry points as the binary with a few thousand rows; only counts are
//! asserted, never timings.

use bench_harness::bench_decode::{self, DecodeOptions};
use bench_harness::bench_drain::{self, Contender, DrainOptions};
use bench_harness::callgrind;
use bench_harness::workload::Workload;
use engine::runtime::{uring_available, IoDriver};

#[test]
fn decode_quick_decodes_every_change_written() {
    let workload = Workload {
        rows: 2_003,
        batch_rows: 500,
        with_updates_and_deletes: true,
    };
    let report = bench_decode::run(&DecodeOptions {
        workload,
        runs: 2,
        callgrind_changes: 0,
    })
    .expect("decode benchmark runs");
    let expected = workload.expected();
    assert_eq!(report.decoded.inserts, 2_003);
    assert_eq!(report.decoded.updates, expected.updates);
    assert_eq!(report.decoded.deletes, expected.deletes);
    assert_eq!(report.decoded.changes(), expected.changes());
    assert_eq!(report.captured, report.decoded);
    assert_eq!(report.runs.len(), 2);
    assert!(report.tables[0].to_markdown().contains("median of 2"));
}

#[test]
fn drain_quick_decodes_every_row_with_each_driver() {
    let workload = Workload {
        rows: 3_000,
        batch_rows: 1_000,
        with_updates_and_deletes: false,
    };
    let report = bench_drain::run(&DrainOptions {
        workload,
        repetitions: 1,
        drivers: vec![IoDriver::Uring, IoDriver::Epoll],
    })
    .expect("drain benchmark runs");
    let ampere_runs: Vec<_> = report
        .measurements
        .iter()
        .filter(|m| matches!(m.contender, Contender::Ampere(_)))
        .collect();
    assert_eq!(ampere_runs.len(), if uring_available() { 2 } else { 1 });
    for run in ampere_runs {
        let tally = run.tally.expect("Ampere's client reports what it decoded");
        assert_eq!(tally.inserts, 3_000, "{:?}", run.contender);
        assert_eq!(tally.changes(), 3_000, "{:?}", run.contender);
        assert_eq!(tally.transactions, 3, "{:?}", run.contender);
    }
    let baseline = report
        .measurements
        .iter()
        .filter(|m| m.contender == Contender::PgRecvlogical)
        .count();
    assert_eq!(baseline, 1);
    assert!(report.recvlogical_command.contains("--no-loop"));
}

#[test]
fn replay_decodes_a_recording_file() {
    // A recording made by hand with the encoder would duplicate pgwire's own tests; instead
    // capture a tiny real stream through the decode benchmark's helpers.
    let workload = Workload {
        rows: 20,
        batch_rows: 10,
        with_updates_and_deletes: true,
    };
    let cluster = testkit::Cluster::start().expect("start Postgres");
    let db = cluster.create_database().expect("create database");
    Workload::create_schema(&db).unwrap();
    bench_harness::workload::create_slots(&db, &["replay".to_string()]).unwrap();
    workload.run(&db).unwrap();
    let target = bench_harness::client::DrainTarget {
        params: db.params().clone(),
        slot: "replay".into(),
        end: bench_harness::workload::current_wal_lsn(&db).unwrap(),
    };
    let capture = bench_harness::client::drain(&target, IoDriver::Epoll, true).unwrap();
    let recording = capture.recording.unwrap();
    let path = std::env::temp_dir().join(format!("bench-replay-{}.rec", std::process::id()));
    recording.write_file(&path).unwrap();
    let tally = callgrind::replay(&path, 3).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(tally.changes(), workload.expected().changes());
    assert_eq!(tally, capture.tally);
}
