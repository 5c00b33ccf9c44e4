//! `bench-harness`: runs one benchmark and prints (and optionally appends) its tables.
//! `docs/benchmarks/pgwire.md` lists the exact commands and the figures they produced.

mod bench_route;

use std::path::PathBuf;

use anyhow::Result;
use bench_harness::bench_decode::{self, DecodeOptions};
use bench_harness::bench_drain::{self, DrainOptions};
use bench_harness::serving_cli::{
    self, CatchupArgs, CatchupCallgrindArgs, CdnArgs, InitialSyncArgs, LongPollArgs, SnapshotArgs,
    SubqueriesArgs,
};
use bench_harness::workload::Workload;
use bench_harness::{callgrind, machine, report};
use clap::{Args, Parser, Subcommand};
use engine::runtime::IoDriver;
use testkit::Cluster;

#[derive(Parser)]
#[command(about = "Ampere replication benchmarks against a throwaway Postgres")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Decode throughput of a captured pgoutput stream (inserts, updates, deletes).
    Decode(DecodeArgs),
    /// Drain identical slots with pg_recvlogical and with Ampere's client.
    Drain(DrainArgs),
    /// Catch-up chunk serving: Ampere vs nginx on the same bytes, driven by wrk.
    Catchup(CatchupArgs),
    /// Instructions per catch-up response by component, under callgrind (file vs memory, by
    /// chunk size): shows that body bytes are not copied.
    CatchupCallgrind(CatchupCallgrindArgs),
    /// Server memory per held live long-poll, then one write completing them all.
    Longpoll(LongPollArgs),
    /// Initial sync of a large table: time, rows/s, peak RSS.
    InitialSync(InitialSyncArgs),
    /// Snapshot read: COPY text + Rust JSON vs JSON built in SQL.
    Snapshot(SnapshotArgs),
    /// Subquery shapes: creating many, move-in/move-out latency, CPU per membership change,
    /// initial sync vs a literal IN list.
    Subqueries(SubqueriesArgs),
    /// Fan-out to tens of thousands of clients on one shape through nginx (request
    /// collapsing) and directly: write → last client, origin requests per write, CPU and RSS
    /// of nginx and Ampere (docs/benchmarks/cdn.md).
    Cdn(CdnArgs),
    /// Shape routing cost per change: the router vs evaluating every shape (no database).
    Route(RouteArgs),
    /// Everything: the benchmarks above with their baselines plus the loadgen scenarios, written
    /// to RESULTS.md with SVG plots.
    Suite(SuiteArgs),
    /// Internal: decode a recording file (what runs under callgrind).
    #[command(hide = true)]
    DecodeReplay {
        #[arg(long)]
        file: PathBuf,
        #[arg(long, default_value_t = 1)]
        passes: u32,
    },
}

#[derive(Args)]
struct Common {
    /// Rows inserted by the burst.
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// Rows per insert transaction.
    #[arg(long, default_value_t = 100_000)]
    batch_rows: u64,
    /// Tiny sizes, for a smoke run.
    #[arg(long)]
    quick: bool,
    /// Append the tables as markdown to this file.
    #[arg(long)]
    markdown: Option<PathBuf>,
}

impl Common {
    fn workload(&self, with_updates_and_deletes: bool) -> Workload {
        let (rows, batch_rows) = if self.quick {
            (2_000, 500)
        } else {
            (self.rows, self.batch_rows)
        };
        Workload {
            rows,
            batch_rows,
            with_updates_and_deletes,
        }
    }
}

#[derive(Args)]
struct DecodeArgs {
    #[command(flatten)]
    common: Common,
    /// Timed decode passes over the whole stream.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Changes decoded under callgrind (whole rounds, at least this many); 0 skips it.
    #[arg(long, default_value_t = 100_000)]
    callgrind_changes: u64,
}

#[derive(Args)]
struct DrainArgs {
    #[command(flatten)]
    common: Common,
    /// Repetitions; the drain order rotates between them.
    #[arg(long, default_value_t = 3)]
    repetitions: usize,
    /// monoio drivers for Ampere's client.
    #[arg(long, value_delimiter = ',', default_value = "uring,epoll")]
    drivers: Vec<IoDriver>,
}

#[derive(Args)]
struct RouteArgs {
    /// Shape counts.
    #[arg(long, value_delimiter = ',', default_value = "100,1000,10000,100000")]
    sizes: Vec<u64>,
    /// Append the tables as markdown to this file.
    #[arg(long)]
    markdown: Option<PathBuf>,
}

#[derive(Args)]
struct SuiteArgs {
    /// Tiny grids: finishes in a couple of minutes.
    #[arg(long)]
    quick: bool,
    /// One point per scenario (the smoke test's size).
    #[arg(long, hide = true)]
    smallest: bool,
    /// Ampere io drivers to measure.
    #[arg(long, value_delimiter = ',', default_value = "epoll,uring")]
    drivers: Vec<IoDriver>,
    /// Directory for RESULTS.md and the SVG plots.
    #[arg(long, default_value = "docs/benchmarks")]
    out: PathBuf,
    /// The `ampere` binary (default: next to this executable, else target/release/ampere).
    #[arg(long, env = "AMPERE_BIN")]
    ampere_bin: Option<PathBuf>,
    /// The `loadgen` binary (default: next to this executable, else target/release/loadgen).
    #[arg(long, env = "LOADGEN_BIN")]
    loadgen_bin: Option<PathBuf>,
    /// Ampere's cores (AMPERE_CORES) and nginx's workers. Default: all available.
    #[arg(long)]
    cores: Option<usize>,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Decode(args) => {
            let options = DecodeOptions {
                workload: args.common.workload(true),
                runs: if args.common.quick { 2 } else { args.runs },
                callgrind_changes: if args.common.quick {
                    0
                } else {
                    args.callgrind_changes
                },
            };
            let result = bench_decode::run(&options)?;
            let preamble = preamble("decode");
            report::emit(&result.tables, &preamble, args.common.markdown.as_deref())
        }
        Command::Drain(args) => {
            let options = DrainOptions {
                workload: args.common.workload(false),
                repetitions: if args.common.quick {
                    1
                } else {
                    args.repetitions
                },
                drivers: args.drivers,
            };
            let result = bench_drain::run(&options)?;
            let preamble = preamble("drain");
            report::emit(&result.tables, &preamble, args.common.markdown.as_deref())
        }
        Command::Catchup(args) => {
            let tables = serving_cli::catchup(&args)?;
            report::emit(
                &tables,
                &preamble("catchup"),
                args.common.markdown.as_deref(),
            )
        }
        Command::CatchupCallgrind(args) => {
            let tables = serving_cli::catchup_callgrind(&args)?;
            report::emit(
                &tables,
                &preamble("catchup-callgrind"),
                args.markdown.as_deref(),
            )
        }
        Command::Longpoll(args) => {
            let tables = serving_cli::long_poll(&args)?;
            report::emit(
                &tables,
                &preamble("longpoll"),
                args.common.markdown.as_deref(),
            )
        }
        Command::InitialSync(args) => {
            let tables = serving_cli::initial_sync(&args)?;
            let preamble = preamble("initial-sync");
            report::emit(&tables, &preamble, args.common.markdown.as_deref())
        }
        Command::Snapshot(args) => {
            let tables = serving_cli::snapshot(&args)?;
            report::emit(&tables, &preamble("snapshot"), args.markdown.as_deref())
        }
        Command::Subqueries(args) => {
            let tables = serving_cli::subqueries(&args)?;
            report::emit(
                &tables,
                &preamble("subqueries"),
                args.common.markdown.as_deref(),
            )
        }
        Command::Cdn(args) => {
            let tables = serving_cli::cdn(&args)?;
            report::emit(&tables, &preamble("cdn"), args.markdown.as_deref())
        }
        Command::Route(args) => {
            let tables = bench_route::run(&args.sizes)?;
            report::emit(&tables, &preamble("route"), args.markdown.as_deref())
        }
        Command::Suite(args) => suite(args),
        Command::DecodeReplay { file, passes } => {
            let tally = callgrind::replay(&file, passes)?;
            println!("{tally:?}");
            Ok(())
        }
    }
}

fn suite(args: SuiteArgs) -> Result<()> {
    use bench_harness::suite::{self, load::locate_binary, plan};
    let size = match (args.smallest, args.quick) {
        (true, _) => plan::Size::Smallest,
        (false, true) => plan::Size::Quick,
        (false, false) => plan::Size::Full,
    };
    let mut drivers = args.drivers;
    if !engine::runtime::uring_available() && drivers.contains(&IoDriver::Uring) {
        eprintln!("suite: io_uring is not available here; measuring the other drivers only");
        drivers.retain(|d| *d != IoDriver::Uring);
    }
    let route = |sizes: &[u64]| bench_route::run(sizes);
    let output = suite::run(&suite::SuiteOptions {
        plan: plan::Plan::new(size),
        drivers,
        out: args.out,
        ampere_bin: locate_binary("ampere", args.ampere_bin.as_deref())?,
        loadgen_bin: locate_binary("loadgen", args.loadgen_bin.as_deref())?,
        cores: args.cores,
        command: format!(
            "bench-harness {}",
            std::env::args().skip(1).collect::<Vec<_>>().join(" ")
        ),
        route: Some(&route),
    })?;
    for file in &output.files {
        println!("wrote {}", file.display());
    }
    Ok(())
}

/// The heading above appended markdown: what ran, where, when.
fn preamble(name: &str) -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    format!(
        "### `bench-harness {}` ({name})\n\nMachine: {}.\n\n",
        args.join(" "),
        machine::describe(&Cluster::pg_bin())
    )
}
