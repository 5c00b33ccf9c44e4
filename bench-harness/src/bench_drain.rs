//! `drain`: end to end, Ampere's client (reading and decoding every message) against
//! `pg_recvlogical` (writing to /dev/null), draining identical slots in the same run.
//!
//! Fairness: every slot of every repetition is created before the one insert burst, so each
//! drain makes a fresh walsender decode exactly the same WAL range into exactly the same
//! pgoutput bytes. Contenders then drain one at a time (never concurrently: on 2 cores the
//! walsender and the client each need one), and the order rotates per repetition so that each
//! contender runs first, second and third once in three repetitions.

use std::time::Duration;

use anyhow::{ensure, Context as _, Result};
use engine::runtime::{uring_available, IoDriver};
use pgwire::types::Lsn;
use testkit::{Cluster, ConnParams};

use crate::client::{self, DrainTarget};
use crate::recvlogical;
use crate::report::{grouped, median, megabytes_per_second, rate, seconds, Table};
use crate::tally::Tally;
use crate::workload::{self, Workload};

/// Settings of one `drain` run.
#[derive(Clone, Debug)]
pub struct DrainOptions {
    pub workload: Workload,
    pub repetitions: usize,
    /// Drivers to run Ampere's client with.
    pub drivers: Vec<IoDriver>,
}

/// Who drains a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contender {
    PgRecvlogical,
    Ampere(IoDriver),
}

impl Contender {
    pub fn label(&self) -> String {
        match self {
            Contender::PgRecvlogical => "pg_recvlogical".into(),
            Contender::Ampere(driver) => format!("ampere ({driver})"),
        }
    }

    fn slot_suffix(&self) -> String {
        match self {
            Contender::PgRecvlogical => "recvlogical".into(),
            Contender::Ampere(driver) => format!("ampere_{driver}"),
        }
    }
}

/// One drain of one slot.
#[derive(Clone, Debug)]
pub struct Measurement {
    pub repetition: usize,
    /// 1-based position within the repetition.
    pub position: usize,
    pub contender: Contender,
    pub elapsed: Duration,
    pub cpu: Duration,
    /// What Ampere's client decoded (`None` for pg_recvlogical, which does not decode).
    pub tally: Option<Tally>,
}

/// Everything `drain` measured.
#[derive(Debug)]
pub struct DrainReport {
    pub measurements: Vec<Measurement>,
    /// Messages and bytes in each slot, as decoded by Ampere's client.
    pub stream: Tally,
    pub recvlogical_command: String,
    pub tables: Vec<Table>,
}

pub fn run(options: &DrainOptions) -> Result<DrainReport> {
    ensure!(options.repetitions > 0, "--repetitions must be positive");
    let contenders = contenders(&options.drivers)?;
    let cluster = Cluster::start().context("start Postgres")?;
    let db = cluster.create_database().context("create database")?;
    Workload::create_schema(&db)?;
    let slot_name =
        |rep: usize, contender: &Contender| format!("drain_{rep}_{}", contender.slot_suffix());
    let slots: Vec<String> = (0..options.repetitions)
        .flat_map(|rep| contenders.iter().map(move |c| slot_name(rep, c)))
        .collect();
    workload::create_slots(&db, &slots)?;
    eprintln!(
        "drain: inserting {} rows into {} slots' worth of WAL",
        options.workload.rows,
        slots.len()
    );
    options.workload.run(&db)?;
    let end = workload::current_wal_lsn(&db)?;
    let recvlogical_binary = cluster.bin("pg_recvlogical");

    let mut measurements = Vec::new();
    let mut recvlogical_command = String::new();
    for rep in 0..options.repetitions {
        for (index, contender) in rotated(&contenders, rep).into_iter().enumerate() {
            let target = target(db.params(), slot_name(rep, &contender), end);
            eprintln!("drain: repetition {} {}", rep + 1, contender.label());
            let mut measurement = Measurement {
                repetition: rep + 1,
                position: index + 1,
                contender,
                elapsed: Duration::ZERO,
                cpu: Duration::ZERO,
                tally: None,
            };
            match contender {
                Contender::PgRecvlogical => {
                    let run = recvlogical::drain(&recvlogical_binary, &target)?;
                    (measurement.elapsed, measurement.cpu) = (run.elapsed, run.cpu);
                    recvlogical_command = run.command;
                }
                Contender::Ampere(driver) => {
                    let run = client::drain(&target, driver, false)?;
                    ensure!(
                        run.tally.inserts == options.workload.rows,
                        "{} decoded {} inserts, the burst wrote {}",
                        contender.label(),
                        run.tally.inserts,
                        options.workload.rows
                    );
                    (measurement.elapsed, measurement.cpu) = (run.elapsed, run.cpu);
                    measurement.tally = Some(run.tally);
                }
            }
            measurements.push(measurement);
        }
    }
    let stream = measurements
        .iter()
        .find_map(|m| m.tally)
        .context("no Ampere drain ran, so the stream size is unknown")?;
    let mut report = DrainReport {
        measurements,
        stream,
        recvlogical_command,
        tables: Vec::new(),
    };
    report.tables = tables(&report, &contenders, &options.workload);
    Ok(report)
}

fn contenders(drivers: &[IoDriver]) -> Result<Vec<Contender>> {
    ensure!(!drivers.is_empty(), "name at least one I/O driver");
    let mut contenders = vec![Contender::PgRecvlogical];
    for &driver in drivers {
        if driver == IoDriver::Uring && !uring_available() {
            eprintln!("drain: io_uring is not available here, skipping that driver");
            continue;
        }
        contenders.push(Contender::Ampere(driver));
    }
    Ok(contenders)
}

/// `items` rotated left by `by`: repetition r starts with contender r.
fn rotated<T: Copy>(items: &[T], by: usize) -> Vec<T> {
    let shift = by % items.len();
    items[shift..]
        .iter()
        .chain(&items[..shift])
        .copied()
        .collect()
}

fn target(params: &ConnParams, slot: String, end: Lsn) -> DrainTarget {
    DrainTarget {
        params: params.clone(),
        slot,
        end,
    }
}

fn tables(report: &DrainReport, contenders: &[Contender], workload: &Workload) -> Vec<Table> {
    let stream = &report.stream;
    let headers = [
        "rep",
        "order",
        "drained by",
        "seconds",
        "messages/s",
        "changes/s",
        "MB/s",
        "client CPU s",
    ];
    let mut runs = Table::new("slot drain, every run", &headers);
    for m in &report.measurements {
        runs.row(vec![
            m.repetition.to_string(),
            m.position.to_string(),
            m.contender.label(),
            seconds(m.elapsed),
            grouped(rate(stream.messages, m.elapsed)),
            grouped(rate(stream.changes(), m.elapsed)),
            megabytes_per_second(stream.bytes, m.elapsed),
            seconds(m.cpu),
        ]);
    }
    runs.note(format!(
        "each slot: {} messages ({} inserts in {} transactions), {} bytes of pgoutput; \
         rows {}, {} rows per transaction",
        grouped(stream.messages as f64),
        grouped(stream.inserts as f64),
        grouped(stream.transactions as f64),
        grouped(stream.bytes as f64),
        grouped(workload.rows as f64),
        grouped(workload.batch_rows as f64),
    ));
    runs.note(format!("baseline: `{}`", report.recvlogical_command));
    vec![runs, summary(report, contenders)]
}

fn summary(report: &DrainReport, contenders: &[Contender]) -> Table {
    let stream = &report.stream;
    let headers = [
        "drained by",
        "median s",
        "best s",
        "messages/s",
        "MB/s",
        "client CPU s",
        "vs pg_recvlogical",
    ];
    let mut table = Table::new("slot drain, median per contender", &headers);
    let times_of = |contender: &Contender| -> (Vec<Duration>, Vec<Duration>) {
        report
            .measurements
            .iter()
            .filter(|m| m.contender == *contender)
            .map(|m| (m.elapsed, m.cpu))
            .unzip()
    };
    let (baseline, _) = times_of(&Contender::PgRecvlogical);
    let baseline = median(&baseline);
    for contender in contenders {
        let (times, cpus) = times_of(contender);
        let typical = median(&times);
        table.row(vec![
            contender.label(),
            seconds(typical),
            seconds(times.iter().copied().min().unwrap_or_default()),
            grouped(rate(stream.messages, typical)),
            megabytes_per_second(stream.bytes, typical),
            seconds(median(&cpus)),
            format!(
                "{:.2}",
                baseline.as_secs_f64() / typical.as_secs_f64().max(1e-9)
            ),
        ]);
    }
    table.note(
        "vs pg_recvlogical = median pg_recvlogical seconds / median seconds (above 1.0 = faster)",
    );
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_puts_each_contender_in_each_position_once() {
        let items = [1, 2, 3];
        let orders: Vec<Vec<i32>> = (0..3).map(|rep| rotated(&items, rep)).collect();
        assert_eq!(orders, vec![vec![1, 2, 3], vec![2, 3, 1], vec![3, 1, 2]]);
        for position in 0..3 {
            let mut seen: Vec<i32> = orders.iter().map(|o| o[position]).collect();
            seen.sort();
            assert_eq!(seen, items);
        }
    }
}
