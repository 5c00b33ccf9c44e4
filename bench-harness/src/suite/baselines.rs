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
    /// Summary tables first, then the benchmark's own tables.
    pub tables: Vec<Table>,
    /// This section's lines of the ratio summary at the top of RESULTS.md.
    pub ratios: Vec<Ratio>,
    /// Set when the benchmark failed; the suite goes on.
    pub error: Option<String>,
}

impl Section {
    fn new(title: &str, intro: &[&str]) -> Self {
        Self {
            title: title.into(),
            intro: intro.iter().map(|s| s.to_string()).collect(),
            tables: Vec::new(),
            ratios: Vec::new(),
            error: None,
        }
    }

    fn with(mut self, result: Result<(Vec<Ratio>, Vec<Table>)>) -> Self {
        match result {
            Ok((ratios, tables)) => (self.ratios, self.tables) = (ratios, tables),
            Err(error) => {
                eprintln!("suite: {} failed: {error:#}", self.title);
                self.error = Some(format!("{error:#}"));
            }
        }
        self
    }
}

/// One line of the ratio summary: ours against a baseline measured in the same run.
#[derive(Clone, Debug, PartialEq)]
pub struct Ratio {
    /// What was compared, e.g. `catch-up, same chunk: ampere (epoll) req/s`.
    pub what: String,
    pub baseline: String,
    pub ours: f64,
    pub theirs: f64,
}

impl Ratio {
    /// Ours ÷ baseline, for figures where higher is better.
    pub fn value(&self) -> f64 {
        self.ours / self.theirs.max(1e-12)
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
    let mut sections = vec![Section::new(
        "Decode",
        &["Single-thread pgoutput decode of a captured stream (inserts, updates, deletes)."],
    )
    .with(
        bench_decode::run(&DecodeOptions {
            workload: workload(true),
            runs: plan.repetitions.max(2),
            callgrind_changes: 0,
        })
        .map(|r| (Vec::new(), r.tables)),
    )];
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
            .map(|r| (drain_ratios(&r), r.tables)),
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
                working_set_ratio: None,
                cold: false,
            })
            .map(|r| (catchup_ratios(&r), r.tables)),
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
            .map(|r| (Vec::new(), r.tables)),
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
            .map(|r| (Vec::new(), prepend(initial_sync_vs_electric(&r), r.tables))),
        ),
    );
    let route = Section::new(
        "Shape routing",
        &["Cost per change of routing to the matching shapes vs evaluating every shape (no database)."],
    );
    sections.push(match options.route {
        Some(bench) => route.with(bench(&plan.route_sizes).map(|t| (Vec::new(), t))),
        None => route.with(Err(anyhow::anyhow!("not run (no routing benchmark given)"))),
    });
    sections
}

fn prepend(mut first: Vec<Table>, rest: Vec<Table>) -> Vec<Table> {
    first.extend(rest);
    first
}

/// Drain throughput of each Ampere driver against `pg_recvlogical` (medians over repetitions).
pub fn drain_ratios(report: &DrainReport) -> Vec<Ratio> {
    let median_of = |contender: Contender| -> Option<Duration> {
        let times: Vec<Duration> = report
            .measurements
            .iter()
            .filter(|m| m.contender == contender)
            .map(|m| m.elapsed)
            .collect();
        (!times.is_empty()).then(|| median(&times))
    };
    let Some(baseline) = median_of(Contender::PgRecvlogical) else {
        return Vec::new();
    };
    let mut ratios = Vec::new();
    for m in &report.measurements {
        let label = format!("replication drain, messages/s: {}", m.contender.label());
        if m.contender == Contender::PgRecvlogical || ratios.iter().any(|r: &Ratio| r.what == label)
        {
            continue;
        }
        if let Some(elapsed) = median_of(m.contender) {
            ratios.push(Ratio {
                what: label,
                baseline: "pg_recvlogical".into(),
                ours: rate(report.stream.messages, elapsed),
                theirs: rate(report.stream.messages, baseline),
            });
        }
    }
    ratios
}

/// Catch-up requests/s of each Ampere driver against nginx, per pattern (mean over rounds).
pub fn catchup_ratios(report: &CatchupReport) -> Vec<Ratio> {
    let mean_rps = |target: Target, pattern: Pattern| -> Option<f64> {
        let rates: Vec<f64> = report
            .runs
            .iter()
            .filter(|r| r.target == target && r.pattern == pattern)
            .map(|r| r.wrk.requests_per_second())
            .collect();
        (!rates.is_empty()).then(|| rates.iter().sum::<f64>() / rates.len() as f64)
    };
    let mut ratios = Vec::new();
    for pattern in [Pattern::Same, Pattern::Spread] {
        let Some(nginx) = mean_rps(Target::Nginx, pattern) else {
            continue;
        };
        for run in &report.runs {
            let label = format!(
                "catch-up, {}, requests/s: {}",
                pattern.label(),
                run.target.label()
            );
            if run.target == Target::Nginx
                || run.pattern != pattern
                || ratios.iter().any(|r: &Ratio| r.what == label)
            {
                continue;
            }
            if let Some(rps) = mean_rps(run.target, pattern) {
                ratios.push(Ratio {
                    what: label,
                    baseline: "nginx".into(),
                    ours: rps,
                    theirs: nginx,
                });
            }
        }
    }
    ratios
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
