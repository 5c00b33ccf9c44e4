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

use crate::cli::{Cli, PeerOpts, RunOpts, Scenario};
use crate::resources::{MetricsUrl, Monitor, Resources, Watch};
use crate::runner::{with_table, Context, Peering};
use crate::scenario::fanout::{self, FanoutPlan};
use crate::scenario::large_shape::{self, LargeShapeParams};
use crate::scenario::shape_creation::{self, ShapeCreationParams};
use crate::scenario::{capacity, shapes};
use crate::target::{self as targets, Target};

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
    let parsed: Vec<Target> = cli
        .targets
        .iter()
        .map(|t| Target::parse(t))
        .collect::<Result<_, _>>()?;
    if parsed.is_empty() || parsed.len() > targets::MAX_SOURCE_ADDRS {
        bail!("give 1..={} --target values", targets::MAX_SOURCE_ADDRS);
    }
    let sources = match &cli.source_addrs {
        Some(text) => targets::parse_source_addrs(text)?,
        None => Vec::new(),
    };
    let endpoints = targets::endpoints(&parsed, &sources)?;
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
        target: endpoints[0].clone(),
        endpoints,
        database,
        cores: cli.cores,
        driver: cli.io_driver,
        table,
        peering: None,
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
    let watch = Watch {
        server_pids: cli.server_pid.clone(),
        metrics: cli
            .server_metrics
            .as_deref()
            .map(MetricsUrl::parse)
            .transpose()?,
    };
    match &cli.scenario {
        Scenario::WriteFanout {
            clients,
            spawn_per_sec,
            write_jitter_ms,
            peers,
            writes,
            run,
        } => {
            let mut ctx = ctx.clone();
            ctx.peering = peering(peers, cli.table.is_some())?;
            let ctx = &ctx;
            let mut run = run.clone();
            if let Some(rate) = spawn_per_sec {
                if !(*rate >= 0.01 && *rate <= 1_000_000.0) {
                    bail!("--spawn-per-sec must be in [0.01, 1000000]");
                }
                // Clients arrive over clients / rate seconds: the ready timeout starts after.
                let ramp_secs = (*clients as f64 / rate).ceil() as u64;
                run.ready_timeout_secs = run.ready_timeout_secs.saturating_add(ramp_secs);
            }
            let run = &run;
            let params = {
                let w = writes.resolve();
                limits::fanout_params(w.count, w.writes_per_sec, w.rows_per_write, 1.0, run)?
            };
            if *write_jitter_ms > limits::MAX_SECS * 1_000 {
                bail!(
                    "--write-jitter-ms must be at most {}",
                    limits::MAX_SECS * 1_000
                );
            }
            let mut plan = shapes::whole_table(params, *clients);
            plan.params.jitter_ms = *write_jitter_ms;
            if let Some(rate) = spawn_per_sec {
                shapes::stagger(&mut plan, *rate);
            }
            run_fanout(
                ctx,
                &plan,
                name,
                run.seed_rows.unwrap_or(0),
                keep,
                &watch,
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
                &watch,
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
            run_fanout(ctx, &plan, name, seed_rows(run), keep, &watch, false)
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
            run_fanout(ctx, &plan, name, seed_rows(run), keep, &watch, false)
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
            run_fanout(ctx, &plan, name, seed, keep, &watch, true)
        }
        Scenario::ConcurrentShapeCreation {
            shapes: count,
            rows,
            timeout_secs,
            same_shape,
            one_row,
        } => {
            if *count == 0 || *count > limits::MAX_CLIENTS {
                bail!("--shapes must be 1..={}", limits::MAX_CLIENTS);
            }
            if *one_row && (*count as u64) > *rows {
                bail!("--one-row needs --rows ({rows}) at least --shapes ({count})");
            }
            limits::check_seed(*rows, 4)?;
            limits::check_secs("timeout-secs", *timeout_secs)?;
            let params = ShapeCreationParams {
                shapes: *count,
                rows: *rows,
                timeout_secs: *timeout_secs,
                same_shape: *same_shape,
                one_row: *one_row,
            };
            let (report, resources) = with_table(ctx, *rows, 4, keep, || {
                measured(&watch, || shape_creation::run(ctx, &params))
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
                measured(&watch, || large_shape::run(ctx, &params))
            })?;
            finish(&report, report.text(), report.complete, resources)
        }
        Scenario::Plan(opts) => {
            let report = capacity::run(ctx, opts, keep, &watch)?;
            Outcome::new(&report, report.text(), report.complete)
        }
    }
}

/// The peer role from the `--sync-dir`/`--followers`/`--follower-id` flags.
fn peering(peers: &PeerOpts, table_given: bool) -> anyhow::Result<Option<Peering>> {
    let Some(dir) = &peers.sync_dir else {
        return Ok(None);
    };
    if !dir.is_dir() {
        bail!("--sync-dir {} is not a directory", dir.display());
    }
    match (peers.followers, peers.follower_id) {
        (Some(followers), None) if (1..=256).contains(&followers) => Ok(Some(Peering::Leader {
            dir: dir.clone(),
            followers,
        })),
        (None, Some(id)) if (1..=256).contains(&id) => {
            if !table_given {
                bail!("a follower needs the leader's --table");
            }
            Ok(Some(Peering::Follower {
                dir: dir.clone(),
                id,
            }))
        }
        _ => bail!("--sync-dir needs --followers 1..=256 or --follower-id 1..=256"),
    }
}

fn seed_rows(run: &RunOpts) -> u64 {
    run.seed_rows.unwrap_or(DEFAULT_SEED_ROWS)
}

/// Runs `body` with CPU and memory accounting.
fn measured<T>(
    watch: &Watch,
    body: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<(T, Resources)> {
    let monitor = Monitor::start(watch);
    let value = body()?;
    Ok((value, monitor.finish()))
}

fn run_fanout(
    ctx: &Context,
    plan: &FanoutPlan,
    name: &str,
    seed_rows: u64,
    keep: bool,
    watch: &Watch,
    with_timeline: bool,
) -> anyhow::Result<Outcome> {
    limits::check_plan(plan)?;
    limits::check_seed(seed_rows, plan.params.payload_bytes)?;
    limits::check_connections(plan.subscriptions.len(), &ctx.endpoints)?;
    let follower = ctx.peering.as_ref().is_some_and(Peering::is_follower);
    let (report, resources) = if follower {
        // The leader creates (and drops) the table.
        measured(watch, || fanout::run(ctx, plan, name))?
    } else {
        with_table(ctx, seed_rows, plan.params.payload_bytes, keep, || {
            measured(watch, || fanout::run(ctx, plan, name))
        })?
    };
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
    for s in &r.servers {
        out.push_str(&format!(
            "server {} (pid {}, {} processes): {:.2} s CPU ({:.2} user, {:.2} sys) = {:.2} \
             cores; RSS start {:.1} MB, median {:.1}, peak {:.1}, end {:.1}\n",
            s.name,
            s.pid,
            s.processes,
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
    if let Some(phase) = &r.write_phase {
        out.push_str(&format!(
            "write phase ({:.2} s, first write to last delivery): loadgen {:.2} s CPU\n",
            phase.wall_secs, phase.loadgen_cpu_secs
        ));
        for s in &phase.servers {
            out.push_str(&format!(
                "  server pid {}: {:.2} s CPU ({:.2} user, {:.2} sys); RSS {:.1} -> {:.1} MB\n",
                s.pid, s.cpu_secs, s.cpu_user_secs, s.cpu_sys_secs, s.rss_mb_start, s.rss_mb_end
            ));
        }
        if let Some(m) = &phase.server_metrics {
            match &m.error {
                Some(error) => out.push_str(&format!("  server metrics: {error}\n")),
                None => {
                    out.push_str(&format!("  server counters moved ({}):\n", m.url));
                    for (sample, delta) in &m.counters {
                        out.push_str(&format!("    {sample} +{delta}\n"));
                    }
                }
            }
        }
    }
    out
}
