//! `loadgen`: drives an Electric-compatible sync server (ampere or Electric) with simulated
//! shape clients and a Postgres writer, and reports latency and throughput.
//!
//! Runs on monoio thread-per-core like the engine; see `docs/loadgen.md` for usage.

mod body;
mod cli;
mod clock;
mod http;
mod limits;
mod progress;
mod resources;
mod runner;
mod scenario;
mod shape;
mod stats;
mod target;
mod writer;

use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::Parser;
use engine::pg::ConnectConfig;
use serde::Serialize;

use crate::cli::{Cli, RunOpts, Scenario};
use crate::resources::{Monitor, Resources};
use crate::runner::{with_table, Context};
use crate::scenario::fanout::{self, FanoutPlan};
use crate::scenario::large_shape::{self, LargeShapeParams};
use crate::scenario::shape_creation::{self, ShapeCreationParams};
use crate::scenario::{capacity, shapes};
use crate::target::Target;

/// Electric's fleet seeds 500 rows (`row_count`) that no measured shape matches.
const DEFAULT_SEED_ROWS: u64 = 500;

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(error) => {
            eprintln!("loadgen: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// What a scenario hands back for printing.
struct Outcome {
    text: String,
    json: serde_json::Value,
    complete: bool,
}

impl Outcome {
    fn new<R: Serialize>(report: &R, text: String, complete: bool) -> anyhow::Result<Self> {
        Ok(Self {
            text,
            json: serde_json::to_value(report)?,
            complete,
        })
    }
}

/// Runs the chosen scenario; `Ok(false)` when it finished but not every expectation was met.
fn run(cli: Cli) -> anyhow::Result<bool> {
    clock::now_ns(); // fix the epoch before any thread starts
    let target = Target::parse(&cli.target)?;
    let mut database =
        ConnectConfig::from_url(&cli.database_url).context("parsing --database-url")?;
    database.application_name = Some("loadgen".to_owned());
    if cli.cores == 0 || cli.cores > 256 {
        bail!("--cores must be 1..=256");
    }
    let table = cli
        .table
        .clone()
        .unwrap_or_else(|| format!("loadgen_{}", std::process::id()));
    writer::validate_table_name(&table)?;
    let ctx = Context {
        target,
        database,
        cores: cli.cores,
        driver: cli.io_driver,
        table,
    };
    let label = scenario_name(&cli.scenario);
    let display = progress::Display::start(label);
    let outcome = run_scenario(&ctx, &cli);
    drop(display);
    let mut outcome = outcome?;
    print!("{}", outcome.text);
    if let Some(path) = &cli.json {
        if let serde_json::Value::Object(map) = &mut outcome.json {
            map.insert("complete".to_owned(), outcome.complete.into());
        }
        let text = serde_json::to_string_pretty(&outcome.json)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(outcome.complete)
}

fn scenario_name(scenario: &Scenario) -> &'static str {
    match scenario {
        Scenario::ConcurrentShapeCreation { .. } => "concurrent-shape-creation",
        Scenario::LargeShapeSync { .. } => "large-shape-sync",
        Scenario::UnrelatedShapesLatency { .. } => "unrelated-shapes-latency",
        Scenario::WriteFanout { .. } => "write-fanout",
        Scenario::DiverseShapeFanout { .. } => "diverse-shape-fanout",
        Scenario::ManyShapesOneClient { .. } => "many-shapes-one-client",
        Scenario::ReplicationThroughput { .. } => "replication-throughput",
        Scenario::ControlledLoad { .. } => "controlled-load",
        Scenario::Plan(_) => "plan",
    }
}

fn run_scenario(ctx: &Context, cli: &Cli) -> anyhow::Result<Outcome> {
    let name = scenario_name(&cli.scenario);
    let keep = cli.keep_table;
    let pid = cli.server_pid;
    match &cli.scenario {
        Scenario::WriteFanout {
            clients,
            writes,
            run,
        } => {
            let params = {
                let w = writes.resolve();
                limits::fanout_params(w.count, w.writes_per_sec, w.rows_per_write, 1.0, run)?
            };
            let plan = shapes::whole_table(params, *clients);
            run_fanout(
                ctx,
                &plan,
                name,
                run.seed_rows.unwrap_or(0),
                keep,
                pid,
                false,
            )
        }
        Scenario::ReplicationThroughput {
            rows_per_sec,
            rows_per_write,
            duration_secs,
            clients,
            run,
        } => {
            if *rows_per_write == 0 || *rows_per_sec < u64::from(*rows_per_write) {
                bail!("--rows-per-sec must be at least --rows-per-write (and that at least 1)");
            }
            let writes_per_sec = *rows_per_sec as f64 / f64::from(*rows_per_write);
            let writes = (writes_per_sec * *duration_secs as f64).ceil() as u64;
            let params = limits::fanout_params(writes, writes_per_sec, *rows_per_write, 1.0, run)?;
            let plan = shapes::whole_table(params, *clients);
            run_fanout(
                ctx,
                &plan,
                name,
                run.seed_rows.unwrap_or(0),
                keep,
                pid,
                false,
            )
        }
        Scenario::UnrelatedShapesLatency {
            shapes: count,
            predicate,
            clients,
            writes,
            run,
        } => {
            limits::check_shapes(*count)?;
            let params = {
                let w = writes.resolve();
                limits::fanout_params(w.count, w.writes_per_sec, w.rows_per_write, 1.0, run)?
            };
            let plan = shapes::unrelated(params, *count, *clients, *predicate);
            run_fanout(ctx, &plan, name, seed_rows(run), keep, pid, false)
        }
        Scenario::DiverseShapeFanout {
            shapes: count,
            predicate,
            writes,
            run,
        }
        | Scenario::ManyShapesOneClient {
            shapes: count,
            predicate,
            writes,
            run,
        } => {
            limits::check_shapes(*count)?;
            let params = {
                let w = writes.resolve();
                limits::fanout_params(w.count, w.writes_per_sec, w.rows_per_write, 1.0, run)?
            };
            let followed = if matches!(cli.scenario, Scenario::DiverseShapeFanout { .. }) {
                *count
            } else {
                1
            };
            let plan = shapes::overlapping(params, *count, followed, *predicate)?;
            run_fanout(ctx, &plan, name, seed_rows(run), keep, pid, false)
        }
        Scenario::ControlledLoad {
            clients,
            shapes_per_client,
            shapes: count,
            rows,
            spawn_per_sec,
            interval_secs,
            predicate,
            writes,
            run,
        } => {
            limits::check_shapes(*count)?;
            if *shapes_per_client == 0 || *shapes_per_client > *count {
                bail!("--shapes-per-client must be 1..=--shapes");
            }
            if *clients == 0 || clients.saturating_mul(*shapes_per_client) > limits::MAX_CLIENTS {
                bail!(
                    "clients × shapes per client must be 1..={}",
                    limits::MAX_CLIENTS
                );
            }
            if !(*spawn_per_sec >= 0.01 && *spawn_per_sec <= 100_000.0) {
                bail!("--spawn-per-sec must be in [0.01, 100000]");
            }
            // Clients arrive over clients / spawn rate seconds: the ready timeout starts after.
            let spawn_secs = (*clients as f64 / spawn_per_sec).ceil() as u64;
            let mut run = run.clone();
            run.ready_timeout_secs = run.ready_timeout_secs.saturating_add(spawn_secs);
            let params = {
                let w = writes.resolve();
                limits::fanout_params(
                    w.count,
                    w.writes_per_sec,
                    w.rows_per_write,
                    *interval_secs,
                    &run,
                )?
            };
            let plan = shapes::controlled(
                params,
                *clients,
                *shapes_per_client,
                *count,
                *spawn_per_sec,
                *predicate,
            );
            let seed = run.seed_rows.unwrap_or(*rows);
            run_fanout(ctx, &plan, name, seed, keep, pid, true)
        }
        Scenario::ConcurrentShapeCreation {
            shapes: count,
            rows,
            timeout_secs,
            same_shape,
        } => {
            if *count == 0 || *count > limits::MAX_CLIENTS {
                bail!("--shapes must be 1..={}", limits::MAX_CLIENTS);
            }
            limits::check_seed(*rows, 4)?;
            limits::check_secs("timeout-secs", *timeout_secs)?;
            let params = ShapeCreationParams {
                shapes: *count,
                rows: *rows,
                timeout_secs: *timeout_secs,
                same_shape: *same_shape,
            };
            let (report, resources) = with_table(ctx, *rows, 4, keep, || {
                measured(pid, || shape_creation::run(ctx, &params))
            })?;
            finish(&report, report.text(), report.complete, resources)
        }
        Scenario::LargeShapeSync {
            rows,
            payload_bytes,
            clients,
            timeout_secs,
        } => {
            if *rows == 0 {
                bail!("--rows must be at least 1");
            }
            limits::check_seed(*rows, *payload_bytes)?;
            limits::check_secs("timeout-secs", *timeout_secs)?;
            if *clients == 0 || *clients > 100 {
                bail!("--clients must be 1..=100 (they run one after another)");
            }
            let params = LargeShapeParams {
                rows: *rows,
                payload_bytes: *payload_bytes,
                clients: *clients,
                timeout_secs: *timeout_secs,
            };
            let (report, resources) = with_table(ctx, *rows, *payload_bytes, keep, || {
                measured(pid, || large_shape::run(ctx, &params))
            })?;
            finish(&report, report.text(), report.complete, resources)
        }
        Scenario::Plan(opts) => {
            let report = capacity::run(ctx, opts, keep, pid)?;
            Outcome::new(&report, report.text(), report.complete)
        }
    }
}

fn seed_rows(run: &RunOpts) -> u64 {
    run.seed_rows.unwrap_or(DEFAULT_SEED_ROWS)
}

/// Runs `body` with CPU and memory accounting.
fn measured<T>(
    server_pid: Option<u32>,
    body: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<(T, Resources)> {
    let monitor = Monitor::start(server_pid);
    let value = body()?;
    Ok((value, monitor.finish()))
}

fn run_fanout(
    ctx: &Context,
    plan: &FanoutPlan,
    name: &str,
    seed_rows: u64,
    keep: bool,
    server_pid: Option<u32>,
    with_timeline: bool,
) -> anyhow::Result<Outcome> {
    limits::check_plan(plan)?;
    limits::check_seed(seed_rows, plan.params.payload_bytes)?;
    let (report, resources) = with_table(ctx, seed_rows, plan.params.payload_bytes, keep, || {
        measured(server_pid, || fanout::run(ctx, plan, name))
    })?;
    finish(
        &report,
        report.text(with_timeline),
        report.complete,
        resources,
    )
}

/// Adds the resource figures to the text and the JSON.
fn finish<R: Serialize>(
    report: &R,
    mut text: String,
    complete: bool,
    resources: Resources,
) -> anyhow::Result<Outcome> {
    text.push_str(&resources_text(&resources));
    let mut outcome = Outcome::new(report, text, complete)?;
    if let serde_json::Value::Object(map) = &mut outcome.json {
        map.insert("resources".to_owned(), serde_json::to_value(&resources)?);
    }
    Ok(outcome)
}

fn resources_text(r: &Resources) -> String {
    let mut out = format!(
        "loadgen: {:.2} s CPU ({:.2} user, {:.2} sys) over {:.2} s wall = {:.2} cores, \
         max RSS {:.1} MB\n",
        r.loadgen_cpu_secs,
        r.loadgen_cpu_user_secs,
        r.loadgen_cpu_sys_secs,
        r.wall_secs,
        if r.wall_secs > 0.0 {
            r.loadgen_cpu_secs / r.wall_secs
        } else {
            0.0
        },
        r.loadgen_max_rss_mb
    );
    if let Some(s) = &r.server {
        out.push_str(&format!(
            "server (pid {}): {:.2} s CPU ({:.2} user, {:.2} sys) = {:.2} cores; RSS start \
             {:.1} MB, median {:.1}, peak {:.1}, end {:.1}\n",
            s.pid,
            s.cpu_secs,
            s.cpu_user_secs,
            s.cpu_sys_secs,
            if r.wall_secs > 0.0 {
                s.cpu_secs / r.wall_secs
            } else {
                0.0
            },
            s.rss_mb_start,
            s.rss_mb_median,
            s.rss_mb_peak,
            s.rss_mb_end
        ));
    }
    out
}
