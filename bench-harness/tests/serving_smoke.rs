//! Runs the shape-serving and snapshot benchmarks at tiny sizes against a real Postgres and the
//! real `ampere` binary, so they cannot rot.
//!
//! Goal: every subcommand works end to end and every row is accounted for. Only counts are
//! asserted, never timings. The `ampere` binary is `AMPERE_BIN` if set, else built here into
//! this test's own target directory (same profile).

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use bench_harness::serving::catchup::{self, CatchupOptions, Target};
use bench_harness::serving::cdn::{self, CdnOptions, Mode};
use bench_harness::serving::initial_sync::{self, InitialSyncOptions};
use bench_harness::serving::longpoll::{self, LiveMode, LongPollOptions};
use bench_harness::serving::subqueries::{self, SubqueryOptions};
use bench_harness::serving::wrk::WrkSpec;
use bench_harness::snapshot_bench::{self, SnapshotOptions, Variant};
use engine::runtime::{uring_available, IoDriver};

fn drivers() -> Vec<IoDriver> {
    if uring_available() {
        vec![IoDriver::Epoll, IoDriver::Uring]
    } else {
        vec![IoDriver::Epoll]
    }
}

/// The server binary, built once per test process.
fn ampere_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| workspace_bin("AMPERE_BIN", "engine", "ampere"))
        .clone()
}

/// The `loadgen` binary, built next to `ampere` (the same target directory and profile).
fn loadgen_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| workspace_bin("LOADGEN_BIN", "loadgen", "loadgen"))
        .clone()
}

/// `$env_var` when set, else `bin` of `package` built into this test's target directory and
/// profile (`<target>/<profile>/deps/serving_smoke-<hash>` is the running executable).
fn workspace_bin(env_var: &str, package: &str, bin: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env_var) {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let target_dir = profile_dir.parent().unwrap();
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args(["build", "-p", package, "--bin", bin, "--target-dir"])
        .arg(target_dir);
    if release {
        build.arg("--release");
    }
    let status = build.status().expect("run cargo build");
    assert!(status.success(), "building {bin} failed");
    profile_dir.join(bin)
}

#[test]
fn cdn_delivers_every_write_through_nginx_and_directly() {
    let out = std::env::temp_dir().join(format!("cdn-smoke-{}", std::process::id()));
    let clients = 300;
    let report = cdn::run(&CdnOptions {
        clients: vec![clients],
        modes: vec![Mode::Proxy, Mode::Direct],
        writes: 2,
        writes_per_sec: 1.0,
        rows_per_write: 1,
        write_jitter_ms: 100,
        spawn_per_sec: 1_000.0,
        ready_timeout_secs: 60,
        grace_secs: 20,
        listen_ports: 2,
        source_addrs: "127.0.0.2-127.0.0.3".into(),
        loadgen_procs: 2,
        loadgen_cores: 1,
        ampere_cores: Some(1),
        nginx_workers: Some(2),
        ampere_driver: IoDriver::Epoll,
        loadgen_driver: IoDriver::Epoll,
        ampere_bin: ampere_bin(),
        loadgen_bin: loadgen_bin(),
        nginx_run: cdn::locate_nginx_run(None).unwrap(),
        out: out.clone(),
        access_log: false,
        direct_max_clients: None,
    })
    .unwrap();
    let _ = std::fs::remove_dir_all(&out);
    assert_eq!(report.points.len(), 2);
    for point in &report.points {
        let f = point.figures.as_ref().unwrap();
        let expected = 2 * clients as u64;
        assert!(f.complete, "{point:?}");
        assert_eq!(
            (f.expected, f.received, f.last_count),
            (expected, expected, 2)
        );
        assert!(f.ampere.is_some(), "{point:?}");
        assert_eq!(f.origin_per_write.len(), 2, "{point:?}");
        match point.mode {
            // Each write answers every client's held long-poll.
            Mode::Direct => assert_eq!(f.origin_per_write, vec![clients as f64; 2]),
            // Fewer than 1,024 waiters per URL: nginx collapses them.
            Mode::Proxy => {
                assert!(f.nginx.as_ref().is_some_and(|n| n.processes >= 3));
                assert!(f.origin_per_write.iter().all(|&n| n <= 5.0), "{point:?}");
            }
        }
    }
}

#[test]
fn catchup_serves_every_row_from_ampere_and_nginx() {
    let drivers = drivers();
    let report = catchup::run(&CatchupOptions {
        rows: 3_000,
        chunk_bytes: 16_384,
        drivers: drivers.clone(),
        wrk: WrkSpec {
            threads: 1,
            connections: 4,
            duration: Duration::from_secs(1),
        },
        rounds: 1,
        ampere_bin: ampere_bin(),
        cores: 1,
        // Most chunks from their files, as in the disk-serving measurement.
        working_set_ratio: Some(4.0),
        cold: false,
    })
    .expect("catch-up benchmark runs");
    assert_eq!(report.rows_fetched, 3_000);
    assert!(report.chunks >= 3, "{} chunks", report.chunks);
    // Same and spread, for every driver and for nginx.
    assert_eq!(report.runs.len(), (drivers.len() + 1) * 2);
    assert_eq!(
        report
            .runs
            .iter()
            .filter(|r| r.target == Target::Nginx)
            .count(),
        2
    );
    for run in &report.runs {
        assert!(run.wrk.requests > 0, "{:?} served nothing", run.target);
        assert_eq!(run.wrk.non_2xx, 0);
    }
}

#[test]
fn longpoll_every_held_request_gets_the_new_row() {
    let report = longpoll::run(&LongPollOptions {
        connections: 200,
        rows: 10,
        long_poll_ms: 60_000,
        drivers: drivers(),
        ampere_bin: ampere_bin(),
        cores: 2,
        modes: vec![LiveMode::LongPoll, LiveMode::Sse],
    })
    .expect("long-poll benchmark runs");
    assert_eq!(report.runs.len(), drivers().len() * 2);
    for run in &report.runs {
        let what = (run.driver, run.mode);
        assert_eq!(run.completed, 200, "{what:?}");
        assert_eq!(run.with_row, 200, "{what:?}");
        assert_eq!(run.failed, 0, "{what:?}");
    }
}

#[test]
fn initial_sync_counts_every_row() {
    let report = initial_sync::run(&InitialSyncOptions {
        rows: 5_000,
        repetitions: 1,
        drivers: drivers(),
        ampere_bin: ampere_bin(),
        cores: 2,
    })
    .expect("initial sync benchmark runs");
    assert_eq!(report.runs.len(), drivers().len());
    for run in &report.runs {
        assert_eq!(run.rows, 5_000, "{:?}", run.driver);
        assert!(run.peak_rss_kib >= run.rss_idle_kib);
    }
}

#[test]
fn subqueries_every_move_arrives() {
    let report = subqueries::run(&SubqueryOptions {
        shapes: 100,
        docs: 500,
        samples: 10,
        burst: 40,
        sync_docs: 50,
        repetitions: 1,
        concurrency: 8,
        drivers: vec![IoDriver::Epoll],
        ampere_bin: ampere_bin(),
        cores: 2,
    })
    .expect("subquery benchmark runs");
    let run = &report.runs[0];
    assert_eq!((run.setup.created, run.setup.failed), (100, 0));
    assert_eq!(run.setup.wrong_rows, 0);
    for moves in [&run.moves.move_in, &run.moves.move_out] {
        assert_eq!((moves.latencies.len(), moves.failed), (10, 0));
        assert!(moves.anomalies.is_empty(), "{:?}", moves.anomalies);
    }
    assert_eq!((run.burst.checked, run.burst.as_expected), (20, 20));
    assert_eq!((run.sync.subquery.rows, run.sync.list.rows), (50, 50));
}

#[test]
fn snapshot_variants_read_every_row() {
    let report = snapshot_bench::run(&SnapshotOptions {
        rows: 2_000,
        repetitions: 1,
        driver: IoDriver::Epoll,
    })
    .expect("snapshot benchmark runs");
    assert_eq!(report.results.len(), 2);
    for result in &report.results {
        assert_eq!(result.rows, 2_000, "{:?}", result.variant);
        assert_eq!(result.end_to_end.len(), 1);
        assert!(result.json_bytes > 0);
    }
    let copy = &report.results[0];
    let json = &report.results[1];
    assert_eq!(
        (copy.variant, json.variant),
        (Variant::CopyText, Variant::JsonInSql)
    );
    // COPY text carries the values only; the JSON variant carries whole messages.
    assert!(copy.payload_bytes < json.payload_bytes);
}
