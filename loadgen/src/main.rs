//! `loadgen`: drives an Electric-compatible sync server (ampere or Electric) with simulated
//! shape clients and a Postgres writer, and reports latency and throughput.
//!
//! Runs on monoio thread-per-core like the engine; see `docs/loadgen.md` for usage.

mod clock;
mod http;
mod runner;
mod scenario;
mod shape;
mod stats;
mod target;
mod writer;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::{Args, Parser, Subcommand};
use engine::pg::ConnectConfig;
use engine::runtime::IoDriver;

use crate::runner::{run_once, Context};
use crate::scenario::fanout::{self, FanoutParams};
use crate::scenario::shape_creation::{self, ShapeCreationParams};
use crate::target::Target;

/// Upper bounds on user-given sizes, so a typo cannot exhaust the machine.
const MAX_CLIENTS: usize = 50_000;
const MAX_WRITES: u64 = 1_000_000;
const MAX_ROWS_PER_WRITE: u32 = 10_000;
const MAX_TOTAL_ROWS: u64 = 50_000_000;
/// Each client keeps a latency slot per write: bounds that memory (≈12 bytes per slot).
const MAX_CLIENT_WRITES: u64 = 20_000_000;
const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
const MAX_SECS: u64 = 3_600;
const MAX_RATE: f64 = 1_000_000.0;

#[derive(Parser, Debug)]
#[command(
    name = "loadgen",
    about = "Load generator for Electric-compatible sync servers"
)]
struct Cli {
    /// The server, `http://host:port`.
    #[arg(long, env = "LOADGEN_TARGET", default_value = "http://127.0.0.1:3000")]
    target: String,
    /// The Postgres the server replicates from (the writer connects here).
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// Cores (threads) for clients; the writer runs on core 0.
    #[arg(long, default_value_t = 1)]
    cores: usize,
    /// monoio driver: uring, epoll or auto.
    #[arg(long, default_value = "auto")]
    io_driver: IoDriver,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Table to create for the run (default `loadgen_<pid>`); dropped afterwards.
    #[arg(long)]
    table: Option<String>,
    /// Leave the table in place after the run.
    #[arg(long)]
    keep_table: bool,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// N clients on one shape, W writes/s; latency for the mean and the last client.
    WriteFanout {
        #[arg(long, default_value_t = 100)]
        clients: usize,
        #[arg(long, default_value_t = 10.0)]
        writes_per_sec: f64,
        #[arg(long, default_value_t = 10)]
        duration_secs: u64,
        /// Number of writes (default: writes_per_sec × duration_secs).
        #[arg(long)]
        writes: Option<u64>,
        /// Rows per write transaction (Electric's grid uses 50).
        #[arg(long, default_value_t = 1)]
        rows_per_write: u32,
        #[command(flatten)]
        run: RunOpts,
    },
    /// N distinct shapes created at once over a seeded table; time until all are up-to-date.
    ConcurrentShapeCreation {
        #[arg(long, default_value_t = 50)]
        shapes: usize,
        /// Rows in the table (every shape matches all of them).
        #[arg(long, default_value_t = 500)]
        rows: u64,
        #[arg(long, default_value_t = 30)]
        timeout_secs: u64,
    },
    /// Insert rate the server keeps up with: rows/s written vs rows/s received by one client.
    ReplicationThroughput {
        #[arg(long, default_value_t = 2_000)]
        rows_per_sec: u64,
        #[arg(long, default_value_t = 50)]
        rows_per_write: u32,
        #[arg(long, default_value_t = 10)]
        duration_secs: u64,
        #[arg(long, default_value_t = 1)]
        clients: usize,
        #[command(flatten)]
        run: RunOpts,
    },
}

#[derive(Args, Debug)]
struct RunOpts {
    /// Bytes of filler per row.
    #[arg(long, default_value_t = 16)]
    payload_bytes: usize,
    /// Time allowed for the clients' initial sync.
    #[arg(long, default_value_t = 30)]
    ready_timeout_secs: u64,
    /// Time allowed after the planned end of writing for the last rows to arrive.
    #[arg(long, default_value_t = 10)]
    grace_secs: u64,
}

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
    let (text, json, complete) = match &cli.scenario {
        Scenario::WriteFanout {
            clients,
            writes_per_sec,
            duration_secs,
            writes,
            rows_per_write,
            run,
        } => {
            let writes = writes.unwrap_or((writes_per_sec * *duration_secs as f64).ceil() as u64);
            let params = fanout_params(*clients, writes, *writes_per_sec, *rows_per_write, run)?;
            let report = with_table(&ctx, 0, cli.keep_table, || {
                fanout::run(&ctx, &params, "write-fanout")
            })?;
            let json = serde_json::to_string_pretty(&report)?;
            (report.text(), json, report.complete)
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
            let params = fanout_params(*clients, writes, writes_per_sec, *rows_per_write, run)?;
            let report = with_table(&ctx, 0, cli.keep_table, || {
                fanout::run(&ctx, &params, "replication-throughput")
            })?;
            let json = serde_json::to_string_pretty(&report)?;
            (report.text(), json, report.complete)
        }
        Scenario::ConcurrentShapeCreation {
            shapes,
            rows,
            timeout_secs,
        } => {
            if *shapes == 0 || *shapes > MAX_CLIENTS {
                bail!("--shapes must be 1..={MAX_CLIENTS}");
            }
            if *rows > MAX_TOTAL_ROWS || *timeout_secs == 0 || *timeout_secs > MAX_SECS {
                bail!("--rows must be at most {MAX_TOTAL_ROWS}, --timeout-secs 1..={MAX_SECS}");
            }
            let params = ShapeCreationParams {
                shapes: *shapes,
                rows: *rows,
                timeout_secs: *timeout_secs,
            };
            let report = with_table(&ctx, *rows, cli.keep_table, || {
                shape_creation::run(&ctx, &params)
            })?;
            let json = serde_json::to_string_pretty(&report)?;
            (report.text(), json, report.complete)
        }
    };
    print!("{text}");
    if let Some(path) = &cli.json {
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(complete)
}

fn fanout_params(
    clients: usize,
    writes: u64,
    writes_per_sec: f64,
    rows_per_write: u32,
    run: &RunOpts,
) -> anyhow::Result<FanoutParams> {
    if clients == 0 || clients > MAX_CLIENTS {
        bail!("client count must be 1..={MAX_CLIENTS}");
    }
    if writes == 0 || writes > MAX_WRITES {
        bail!("write count must be 1..={MAX_WRITES}");
    }
    if !(writes_per_sec > 0.0 && writes_per_sec <= MAX_RATE) {
        bail!("write rate must be in (0, {MAX_RATE}] per second");
    }
    if rows_per_write == 0 || rows_per_write > MAX_ROWS_PER_WRITE {
        bail!("--rows-per-write must be 1..={MAX_ROWS_PER_WRITE}");
    }
    if writes * u64::from(rows_per_write) > MAX_TOTAL_ROWS {
        bail!("at most {MAX_TOTAL_ROWS} rows per run");
    }
    if writes * clients as u64 > MAX_CLIENT_WRITES {
        bail!("clients × writes must be at most {MAX_CLIENT_WRITES}");
    }
    if run.payload_bytes > MAX_PAYLOAD_BYTES {
        bail!("--payload-bytes must be at most {MAX_PAYLOAD_BYTES}");
    }
    if run.ready_timeout_secs == 0
        || run.ready_timeout_secs > MAX_SECS
        || run.grace_secs > MAX_SECS
        || writes as f64 / writes_per_sec > MAX_SECS as f64
    {
        bail!("timeouts and the write span must each be at most {MAX_SECS} s");
    }
    Ok(FanoutParams {
        clients,
        writes,
        writes_per_sec,
        rows_per_write,
        payload_bytes: run.payload_bytes,
        ready_timeout_secs: run.ready_timeout_secs,
        grace_secs: run.grace_secs,
    })
}

/// Creates the run's table (with `seed_rows`), runs `body`, then drops the table unless kept.
fn with_table<T>(
    ctx: &Context,
    seed_rows: u64,
    keep: bool,
    body: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let (database, table) = (ctx.database.clone(), ctx.table.clone());
    run_once(ctx.driver, move || async move {
        writer::create_table(&database, &table, seed_rows).await
    })?
    .context("creating the load table")?;
    let result = body();
    if !keep {
        let (database, table) = (ctx.database.clone(), ctx.table.clone());
        let dropped = run_once(ctx.driver, move || async move {
            writer::drop_table(&database, &table).await
        });
        if let Err(error) = dropped.and_then(|r| r.map_err(anyhow::Error::from)) {
            eprintln!("loadgen: could not drop table {}: {error:#}", ctx.table);
        }
    }
    result
}
