//! `decode`: single-thread pgoutput decode throughput over a captured real stream.
//!
//! Method: write the pgbench-style burst into a throwaway cluster, stream the slot into memory
//! with Ampere's client, then decode the whole recording `runs` times on this thread, with the
//! arena reset after every transaction, and report the best and the median run. Optionally the
//! same decode loop runs under callgrind for an instruction count per change.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _, Result};
use engine::runtime::IoDriver;
use testkit::Cluster;

use crate::callgrind::{self, CallgrindResult};
use crate::client::{self, DrainTarget};
use crate::recording::Recording;
use crate::report::{grouped, median, megabytes_per_second, rate, seconds, Table};
use crate::tally::{StreamDecoder, Tally};
use crate::workload::{self, Expected, Workload};

/// Settings of one `decode` run.
#[derive(Clone, Debug)]
pub struct DecodeOptions {
    pub workload: Workload,
    /// Timed decode passes over the whole recording.
    pub runs: usize,
    /// Changes in the callgrind prefix; 0 skips callgrind.
    pub callgrind_changes: u64,
}

/// Everything `decode` measured.
#[derive(Debug)]
pub struct DecodeReport {
    pub expected: Expected,
    /// What the capturing drain decoded.
    pub captured: Tally,
    /// What each timed pass decoded (identical across passes, checked).
    pub decoded: Tally,
    pub capture_time: Duration,
    pub runs: Vec<Duration>,
    pub callgrind: Option<CallgrindResult>,
    pub tables: Vec<Table>,
}

pub fn run(options: &DecodeOptions) -> Result<DecodeReport> {
    ensure!(options.runs > 0, "--runs must be positive");
    let workload = options.workload;
    let expected = workload.expected();
    let cluster = Cluster::start().context("start Postgres")?;
    let db = cluster.create_database().context("create database")?;
    Workload::create_schema(&db)?;
    let slot = "bench_decode".to_string();
    workload::create_slots(&db, std::slice::from_ref(&slot))?;
    eprintln!(
        "decode: writing {} rows with updates and deletes",
        workload.rows
    );
    workload.run(&db)?;
    let target = DrainTarget {
        params: db.params().clone(),
        slot,
        end: workload::current_wal_lsn(&db)?,
    };
    eprintln!("decode: capturing the slot up to {}", target.end);
    let capture = client::drain(&target, IoDriver::Epoll, true)?;
    let recording = capture.recording.context("the capture kept no recording")?;
    check_counts(&capture.tally, &expected).context("check the captured stream")?;

    eprintln!("decode: {} timed passes", options.runs);
    let mut runs = Vec::with_capacity(options.runs);
    let mut decoded = Tally::default();
    for pass in 0..options.runs {
        let started = Instant::now();
        let tally = decode_recording(&recording)?;
        runs.push(started.elapsed());
        assert!(
            pass == 0 || tally == decoded,
            "every pass decodes the same stream"
        );
        decoded = tally;
    }
    check_counts(&decoded, &expected).context("check the decoded stream")?;

    let callgrind = if options.callgrind_changes > 0 {
        let prefix = whole_rounds_prefix(&recording, &workload, options.callgrind_changes)?;
        callgrind::measure(&prefix)?
    } else {
        None
    };
    let mut report = DecodeReport {
        expected,
        captured: capture.tally,
        decoded,
        capture_time: capture.elapsed,
        runs,
        callgrind,
        tables: Vec::new(),
    };
    report.tables = tables(&report, &workload);
    Ok(report)
}

/// Decodes every message of `recording` once with a fresh decoder and arena.
#[inline(never)]
pub fn decode_recording(recording: &Recording) -> Result<Tally> {
    let mut decoder = StreamDecoder::new();
    for (index, message) in recording.iter().enumerate() {
        decoder
            .decode(message)
            .with_context(|| format!("decode message {index}"))?;
    }
    Ok(decoder.tally)
}

fn check_counts(tally: &Tally, expected: &Expected) -> Result<()> {
    ensure!(
        tally.inserts == expected.inserts
            && tally.updates == expected.updates
            && tally.deletes == expected.deletes
            && tally.transactions == expected.transactions,
        "decoded {tally:?}, but the burst wrote {expected:?}"
    );
    Ok(())
}

/// The shortest prefix made of whole rounds (insert, update and delete transactions) with at
/// least `changes` changes, so it keeps the full stream's mix of change kinds.
fn whole_rounds_prefix(
    recording: &Recording,
    workload: &Workload,
    changes: u64,
) -> Result<Recording> {
    let per_round = if workload.with_updates_and_deletes {
        3
    } else {
        1
    };
    let mut decoder = StreamDecoder::new();
    for (index, message) in recording.iter().enumerate() {
        let is_commit = decoder.decode(message)?;
        let tally = decoder.tally;
        if is_commit && tally.transactions.is_multiple_of(per_round) && tally.changes() >= changes {
            return Ok(recording.prefix(index + 1));
        }
    }
    Ok(recording.clone())
}

fn tables(report: &DecodeReport, workload: &Workload) -> Vec<Table> {
    let decoded = &report.decoded;
    let mut runs = Table::new(
        "pgoutput decode, one thread",
        &[
            "pass",
            "seconds",
            "changes/s",
            "messages/s",
            "MB/s",
            "ns/change",
        ],
    );
    let best = report.runs.iter().copied().min().unwrap_or_default();
    let median_run = median(&report.runs);
    let mut add = |label: String, time: Duration| {
        runs.row(vec![
            label,
            seconds(time),
            grouped(rate(decoded.changes(), time)),
            grouped(rate(decoded.messages, time)),
            megabytes_per_second(decoded.bytes, time),
            format!(
                "{:.1}",
                time.as_nanos() as f64 / decoded.changes().max(1) as f64
            ),
        ]);
    };
    for (pass, time) in report.runs.iter().enumerate() {
        add(format!("{}", pass + 1), *time);
    }
    add("best".into(), best);
    add(format!("median of {}", report.runs.len()), median_run);
    runs.note(format!(
        "stream: {} changes ({} inserts, {} updates, {} deletes) in {} transactions, \
         {} messages, {} bytes of pgoutput (proto_version 1); rows {}, {} rows per round",
        grouped(decoded.changes() as f64),
        grouped(decoded.inserts as f64),
        grouped(decoded.updates as f64),
        grouped(decoded.deletes as f64),
        grouped(decoded.transactions as f64),
        grouped(decoded.messages as f64),
        grouped(decoded.bytes as f64),
        grouped(workload.rows as f64),
        grouped(workload.batch_rows as f64),
    ));
    runs.note(format!(
        "capture (Ampere client, epoll, decoding while recording): {} s",
        seconds(report.capture_time)
    ));
    let mut tables = vec![runs];
    if let Some(callgrind) = &report.callgrind {
        tables.push(callgrind.table());
    }
    tables
}
