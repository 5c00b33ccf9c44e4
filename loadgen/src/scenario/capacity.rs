//! `plan`: capacity planning. Ramps `write-fanout` steps — first the client count (doubling at
//! a fixed write rate), then the write rate (doubling at the largest passing client count) —
//! until the p99 write → client latency exceeds the SLO or a step is incomplete, and reports
//! the last passing load and what it means per server core. `docs/loadgen.md` describes how
//! the per-core figure projects to more cores and to a CDN-fronted deployment.

use serde::Serialize;

use crate::cli::PlanOpts;
use crate::limits;
use crate::resources::{Monitor, Resources, Watch};
use crate::runner::{with_table, Context};
use crate::scenario::{fanout, shapes};

/// Most steps per phase (doubling from 1 reaches the limits well before this).
const MAX_STEPS_PER_PHASE: usize = 24;

/// One load level tried.
#[derive(Debug, Serialize)]
pub struct Step {
    pub phase: &'static str,
    pub clients: usize,
    pub writes_per_sec: f64,
    pub rows_per_write: u32,
    pub complete: bool,
    /// p99 of every (client, write) latency.
    pub p99_ms: f64,
    pub mean_ms: f64,
    pub last_client_p99_ms: f64,
    /// complete and p99 within the SLO.
    pub pass: bool,
    pub deliveries: u64,
    pub deliveries_per_sec: f64,
    pub errors: Vec<String>,
    pub resources: Resources,
}

/// The load that met the SLO, normalised per core.
#[derive(Debug, Serialize)]
pub struct Sustainable {
    pub clients: usize,
    pub writes_per_sec: f64,
    pub rows_per_write: u32,
    pub p99_ms: f64,
    /// (client, write) pairs delivered per second.
    pub deliveries_per_sec: f64,
    pub rows_delivered_per_sec: f64,
    /// Deliveries per second one server core sustains; see `per_core_basis`.
    pub per_core_deliveries_per_sec: f64,
    /// `server_cpu` (deliveries per second of server CPU time, from `--server-pid`) or
    /// `server_cores` (deliveries/s divided by `--server-cores`, which assumes the server kept
    /// its cores busy).
    pub per_core_basis: &'static str,
    pub server_cpu_secs_per_1k_deliveries: Option<f64>,
    pub loadgen_cpu_secs_per_1k_deliveries: f64,
}

#[derive(Debug, Serialize)]
pub struct PlanReport {
    pub scenario: String,
    pub target: String,
    pub slo_p99_ms: f64,
    pub server_cores: usize,
    pub steps: Vec<Step>,
    /// The last passing step, if any passed.
    pub sustainable: Option<Sustainable>,
    pub complete: bool,
}

/// Runs the ramp. Each step gets its own table, `<table>_<step>`.
pub fn run(
    ctx: &Context,
    opts: &PlanOpts,
    keep_table: bool,
    watch: &Watch,
) -> anyhow::Result<PlanReport> {
    check(opts)?;
    let mut steps: Vec<Step> = Vec::new();
    let mut best: Option<usize> = None;
    let mut clients = opts.start_clients;
    for _ in 0..MAX_STEPS_PER_PHASE {
        let step = run_step(
            ctx,
            opts,
            "clients",
            clients,
            opts.writes_per_sec,
            steps.len(),
            keep_table,
            watch,
        )?;
        let pass = step.pass;
        steps.push(step);
        if !pass {
            break;
        }
        best = Some(steps.len() - 1);
        if clients >= opts.max_clients {
            break;
        }
        clients = (clients * 2).min(opts.max_clients);
    }
    if let Some(index) = best {
        let clients = steps[index].clients;
        let mut rate = opts.writes_per_sec * 2.0;
        for _ in 0..MAX_STEPS_PER_PHASE {
            if rate > opts.max_writes_per_sec {
                break;
            }
            let step = run_step(
                ctx,
                opts,
                "rate",
                clients,
                rate,
                steps.len(),
                keep_table,
                watch,
            )?;
            let pass = step.pass;
            steps.push(step);
            if !pass {
                break;
            }
            best = Some(steps.len() - 1);
            rate *= 2.0;
        }
    }
    let sustainable = best.map(|index| sustainable(&steps[index], opts.server_cores));
    Ok(PlanReport {
        scenario: "plan".to_owned(),
        target: ctx.target.host.clone(),
        slo_p99_ms: opts.slo_p99_ms,
        server_cores: opts.server_cores,
        complete: sustainable.is_some(),
        steps,
        sustainable,
    })
}

fn check(opts: &PlanOpts) -> anyhow::Result<()> {
    if !(opts.slo_p99_ms > 0.0 && opts.slo_p99_ms <= 600_000.0) {
        anyhow::bail!("--slo-p99-ms must be in (0, 600000]");
    }
    if opts.start_clients == 0 || opts.start_clients > opts.max_clients {
        anyhow::bail!("--start-clients must be 1..=--max-clients");
    }
    if opts.max_clients > limits::MAX_CLIENTS {
        anyhow::bail!("--max-clients must be at most {}", limits::MAX_CLIENTS);
    }
    if !(opts.writes_per_sec > 0.0 && opts.writes_per_sec <= opts.max_writes_per_sec) {
        anyhow::bail!("--writes-per-sec must be in (0, --max-writes-per-sec]");
    }
    if opts.max_writes_per_sec > limits::MAX_RATE {
        anyhow::bail!("--max-writes-per-sec must be at most {}", limits::MAX_RATE);
    }
    if opts.server_cores == 0 || opts.server_cores > 1024 {
        anyhow::bail!("--server-cores must be 1..=1024");
    }
    limits::check_secs("step-secs", opts.step_secs)
}

#[allow(clippy::too_many_arguments)]
fn run_step(
    ctx: &Context,
    opts: &PlanOpts,
    phase: &'static str,
    clients: usize,
    writes_per_sec: f64,
    index: usize,
    keep_table: bool,
    watch: &Watch,
) -> anyhow::Result<Step> {
    let writes = (writes_per_sec * opts.step_secs as f64).ceil() as u64;
    let params =
        limits::fanout_params(writes, writes_per_sec, opts.rows_per_write, 1.0, &opts.run)?;
    let plan = shapes::whole_table(params, clients);
    limits::check_plan(&plan)?;
    let mut step_ctx = ctx.clone();
    step_ctx.table = format!("{}_{index}", ctx.table);
    let seed = opts.run.seed_rows.unwrap_or(0);
    let (report, resources) =
        with_table(&step_ctx, seed, opts.run.payload_bytes, keep_table, || {
            let monitor = Monitor::start(watch);
            let report = fanout::run(&step_ctx, &plan, "plan-step")?;
            Ok((report, monitor.finish()))
        })?;
    let p99_ms = report.latency_every_client.p99_ms;
    let step = Step {
        phase,
        clients,
        writes_per_sec,
        rows_per_write: opts.rows_per_write,
        complete: report.complete,
        p99_ms,
        mean_ms: report.latency_every_client.mean_ms,
        last_client_p99_ms: report.latency_last_client.p99_ms,
        pass: report.complete && p99_ms <= opts.slo_p99_ms,
        deliveries: report.client_writes_received,
        deliveries_per_sec: clients as f64 * writes_per_sec,
        errors: report.errors,
        resources,
    };
    eprintln!(
        "plan: {phase} step {index}: {clients} clients x {writes_per_sec}/s -> p99 {p99_ms:.2} ms, {}",
        if step.pass { "pass" } else { "FAIL" }
    );
    Ok(step)
}

fn sustainable(step: &Step, server_cores: usize) -> Sustainable {
    let per_1k = |secs: f64| {
        if step.deliveries > 0 {
            Some(secs / step.deliveries as f64 * 1000.0)
        } else {
            None
        }
    };
    let server_cpu = step
        .resources
        .server
        .as_ref()
        .map(|s| s.cpu_secs)
        .filter(|&secs| secs > 0.0);
    let (per_core, basis) = match server_cpu {
        Some(secs) => (step.deliveries as f64 / secs, "server_cpu"),
        None => (
            step.deliveries_per_sec / server_cores as f64,
            "server_cores",
        ),
    };
    Sustainable {
        clients: step.clients,
        writes_per_sec: step.writes_per_sec,
        rows_per_write: step.rows_per_write,
        p99_ms: step.p99_ms,
        deliveries_per_sec: step.deliveries_per_sec,
        rows_delivered_per_sec: step.deliveries_per_sec * f64::from(step.rows_per_write),
        per_core_deliveries_per_sec: per_core.round(),
        per_core_basis: basis,
        server_cpu_secs_per_1k_deliveries: server_cpu.and_then(per_1k),
        loadgen_cpu_secs_per_1k_deliveries: per_1k(step.resources.loadgen_cpu_secs).unwrap_or(0.0),
    }
}

impl PlanReport {
    pub fn text(&self) -> String {
        let mut out = format!(
            "plan against {}: SLO p99 <= {} ms, server cores {}\n\
             {:<8} {:>8} {:>9} {:>10} {:>10} {:>12} {:>10} {:>10} {:>6}\n",
            self.target,
            self.slo_p99_ms,
            self.server_cores,
            "phase",
            "clients",
            "writes/s",
            "p99 ms",
            "mean ms",
            "deliveries/s",
            "lg cpu s",
            "srv cpu s",
            "pass"
        );
        for step in &self.steps {
            out.push_str(&format!(
                "{:<8} {:>8} {:>9} {:>10.2} {:>10.2} {:>12.0} {:>10.2} {:>10} {:>6}\n",
                step.phase,
                step.clients,
                step.writes_per_sec,
                step.p99_ms,
                step.mean_ms,
                step.deliveries_per_sec,
                step.resources.loadgen_cpu_secs,
                step.resources
                    .server
                    .as_ref()
                    .map_or("-".to_owned(), |s| format!("{:.2}", s.cpu_secs)),
                if step.pass { "yes" } else { "no" },
            ));
        }
        match &self.sustainable {
            Some(s) => out.push_str(&format!(
                "sustainable: {} clients x {}/s x {} rows = {:.0} deliveries/s at p99 {:.2} ms; \
                 per core: {:.0} deliveries/s (basis: {})\n",
                s.clients,
                s.writes_per_sec,
                s.rows_per_write,
                s.deliveries_per_sec,
                s.p99_ms,
                s.per_core_deliveries_per_sec,
                s.per_core_basis
            )),
            None => out.push_str("sustainable: no step met the SLO\n"),
        }
        out
    }
}
