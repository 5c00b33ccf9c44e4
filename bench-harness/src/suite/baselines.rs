//! The in-process benchmarks at the plan's sizes, each with the same-run baseline it is judged
//! against: decode, drain vs `pg_recvlogical`, catch-up vs nginx, held long-polls/SSE,
//! initial sync (beside Electric's published rate) and shape routing.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use engine::runtime::IoDriver;

use super::electric;
use super::plan::Plan;
use crate::bench_decode::{self, DecodeOptions};
use crate::bench_drain::{self, Contender, DrainOptions, DrainReport};
use crate::report::{grouped, median, rate, Table};
use crate::serving::catchup::{self, CatchupOptions, CatchupReport, Target};
use crate::serving::initial_sync::{self, InitialSyncOptions, InitialSyncReport};
use crate::serving::longpoll::{self, LiveMode, LongPollOptions};
use crate::serving::wrk::{Pattern, WrkSpec};
use crate::workload::Workload;

/// The shape-routing benchmark lives in the binary; the suite is handed it.
pub type RouteBench = dyn Fn(&[u64]) -> Result<Vec<Table>>;

/// One benchmark's part of RESULTS.md.
#[derive(Clone, Debug)]
pub struct Section {
    pub title: String,
    /// Paragraph lines above the tables (what ran, the baseline).
    pub intro: Vec<String>,
    /// Summary tables with ratios first, then the benchmark's own tables.
    pub tables: Vec<Table>,
    /// Set when the benchmark failed; the suite goes on.
    pub error: Option<String>,
}

impl Section {
    fn new(title: &str, intro: &[&str]) -> Self {
        Self {
            title: title.into(),
            intro: intro.iter().map(|s| s.to_string()).collect(),
            tables: Vec::new(),
            error: None,
        }
    }

    fn with(mut self, result: Result<Vec<Table>>) -> Self {
        match result {
            Ok(tables) => self.tables = tables,
            Err(error) => {
                eprintln!("suite: {} failed: {error:#}", self.title);
                self.error = Some(format!("{error:#}"));
            }
        }
        self
    }
}

/// Where the server binary is and which drivers to measure.
pub struct BaselineOptions<'a> {
    pub ampere_bin: PathBuf,
    pub drivers: Vec<IoDriver>,
    pub cores: usize,
    pub route: Option<&'a RouteBench>,
}

/// Runs every in-process benchmark; failures become sections with an error.
pub fn run(plan: &Plan, options: &BaselineOptions<'_>) -> Vec<Section> {
    let workload = |with_updates_and_deletes| Workload {
        rows: plan.replication_rows,
        batch_rows: plan.replication_batch_rows,
        with_updates_and_deletes,
    };
    let mut sections = Vec::new();
    sections.push(
        Section::new(
            "Decode",
            &["Single-thread pgoutput decode of a captured stream (inserts, updates, deletes)."],
        )
        .with(
            bench_decode::run(&DecodeOptions {
                workload: workload(true),
                runs: plan.repetitions.max(2),
                callgrind_changes: 0,
            })
            .map(|r| r.tables),
        ),
    );
    sections.push(
        Section::new(
            "Replication drain vs pg_recvlogical",
            &["Identical slots drained by `pg_recvlogical` and by Ampere's client (which also decodes every message); ratio = pg_recvlogical's time ÷ Ampere's (above 1: Ampere is faster)."],
        )
        .with(
            bench_drain::run(&DrainOptions {
                workload: workload(false),
                repetitions: plan.repetitions,
                drivers: options.drivers.clone(),
            })
            .map(|r| prepend(drain_ratios(&r), r.tables)),
        ),
    );
    sections.push(
        Section::new(
            "Catch-up serving vs nginx",
            &["The same chunk bodies served by Ampere and by nginx (sendfile), driven by `wrk`; ratio = Ampere's requests/s ÷ nginx's, same pattern."],
        )
        .with(
            catchup::run(&CatchupOptions {
                rows: plan.catchup_rows,
                chunk_bytes: 16_384,
                drivers: options.drivers.clone(),
                wrk: WrkSpec {
                    threads: 1,
                    connections: plan.wrk_connections,
                    duration: Duration::from_secs(plan.wrk_secs),
                },
                rounds: plan.repetitions,
                ampere_bin: options.ampere_bin.clone(),
                cores: options.cores,
            })
            .map(|r| prepend(catchup_ratios(&r), r.tables)),
        ),
    );
    sections.push(
        Section::new(
            "Held live requests (long-poll and SSE)",
            &["Server memory per held live request, then one write completing all of them."],
        )
        .with(
            longpoll::run(&LongPollOptions {
                connections: plan.held_connections,
                rows: 10,
                long_poll_ms: 120_000,
                drivers: options.drivers.clone(),
                ampere_bin: options.ampere_bin.clone(),
                cores: options.cores,
                modes: vec![LiveMode::LongPoll, LiveMode::Sse],
            })
            .map(|r| r.tables),
        ),
    );
    sections.push(
        Section::new(
            "Initial sync",
            &["One client syncs a whole table as one shape. Electric's published figure is 1M rows in ≈7.1 s (v0.9.4, 4 vCPU, separate machines); quick runs use far fewer rows, so the ratio is indicative only."],
        )
        .with(
            initial_sync::run(&InitialSyncOptions {
                rows: plan.initial_sync_rows,
                repetitions: plan.repetitions,
                drivers: options.drivers.clone(),
                ampere_bin: options.ampere_bin.clone(),
                cores: options.cores,
            })
            .map(|r| prepend(initial_sync_vs_electric(&r), r.tables)),
        ),
    );
    let route = Section::new(
        "Shape routing",
        &["Cost per change of routing to the matching shapes vs evaluating every shape (no database)."],
    );
    sections.push(match options.route {
        Some(bench) => route.with(bench(&plan.route_sizes)),
        None => route.with(Err(anyhow::anyhow!("not run (no routing benchmark given)"))),
    });
    sections
}

fn prepend(mut first: Vec<Table>, rest: Vec<Table>) -> Vec<Table> {
    first.extend(rest);
    first
}

/// Median drain time per contender and throughput ratio against `pg_recvlogical`.
pub fn drain_ratios(report: &DrainReport) -> Vec<Table> {
    let median_of = |contender: Contender| -> Option<Duration> {
        let times: Vec<Duration> = report
            .measurements
            .iter()
            .filter(|m| m.contender == contender)
            .map(|m| m.elapsed)
            .collect();
        (!times.is_empty()).then(|| median(&times))
    };
    let mut contenders: Vec<Contender> = Vec::new();
    for m in &report.measurements {
        if !contenders.contains(&m.contender) {
            contenders.push(m.contender);
        }
    }
    let baseline = median_of(Contender::PgRecvlogical);
    let mut table = Table::new(
        "Drain: ratio against pg_recvlogical (same run)",
        &["contender", "median s", "messages/s", "vs pg_recvlogical"],
    );
    for contender in contenders {
        let Some(elapsed) = median_of(contender) else {
            continue;
        };
        let ratio = baseline.map_or("—".into(), |b| {
            format!("{:.2}×", b.as_secs_f64() / elapsed.as_secs_f64().max(1e-9))
        });
        table.row(vec![
            contender.label(),
            format!("{:.3}", elapsed.as_secs_f64()),
            grouped(rate(report.stream.messages, elapsed)),
            ratio,
        ]);
    }
    vec![table]
}

/// Mean requests/s per target and pattern over the rounds, and the ratio against nginx.
pub fn catchup_ratios(report: &CatchupReport) -> Vec<Table> {
    let mean_rps = |target: Target, pattern: Pattern| -> Option<f64> {
        let rates: Vec<f64> = report
            .runs
            .iter()
            .filter(|r| r.target == target && r.pattern == pattern)
            .map(|r| r.wrk.requests_per_second())
            .collect();
        (!rates.is_empty()).then(|| rates.iter().sum::<f64>() / rates.len() as f64)
    };
    let mut targets: Vec<Target> = Vec::new();
    for run in &report.runs {
        if !targets.contains(&run.target) {
            targets.push(run.target);
        }
    }
    let mut table = Table::new(
        "Catch-up: ratio against nginx (same run, same bytes)",
        &["server", "pattern", "requests/s", "vs nginx"],
    );
    for pattern in [Pattern::Same, Pattern::Spread] {
        let nginx = mean_rps(Target::Nginx, pattern);
        for &target in &targets {
            let Some(rps) = mean_rps(target, pattern) else {
                continue;
            };
            let ratio = nginx.map_or("—".into(), |n| format!("{:.2}×", rps / n.max(1e-9)));
            table.row(vec![
                target.label(),
                pattern.label().into(),
                grouped(rps),
                ratio,
            ]);
        }
    }
    vec![table]
}

/// Rows per second per driver beside Electric's published initial-sync rate.
pub fn initial_sync_vs_electric(report: &InitialSyncReport) -> Vec<Table> {
    let mut table = Table::new(
        "Initial sync: beside Electric's published rate",
        &[
            "server",
            "rows",
            "median s",
            "rows/s",
            "Electric rows/s",
            "ours ÷ Electric",
        ],
    );
    let mut drivers: Vec<IoDriver> = Vec::new();
    for run in &report.runs {
        if !drivers.contains(&run.driver) {
            drivers.push(run.driver);
        }
    }
    for driver in drivers {
        let runs: Vec<_> = report.runs.iter().filter(|r| r.driver == driver).collect();
        let times: Vec<Duration> = runs.iter().map(|r| r.elapsed).collect();
        let elapsed = median(&times);
        let rows = runs.first().map_or(0, |r| r.rows);
        let ours = rate(rows, elapsed);
        table.row(vec![
            format!("ampere ({driver})"),
            grouped(rows as f64),
            format!("{:.3}", elapsed.as_secs_f64()),
            grouped(ours),
            grouped(electric::INITIAL_SYNC_ROWS_PER_SEC),
            format!("{:.2}×", ours / electric::INITIAL_SYNC_ROWS_PER_SEC),
        ]);
    }
    vec![table]
}
