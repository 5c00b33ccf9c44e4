//! Command-line arguments of the shape-serving and snapshot benchmarks, kept apart from
//! `main.rs` so each benchmark family owns its flags.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use engine::runtime::IoDriver;

use crate::report::Table;
use crate::serving::server::locate_ampere;
use crate::serving::wrk::WrkSpec;
use crate::serving::{catchup, catchup_callgrind, cdn, initial_sync, longpoll, subqueries};
use crate::snapshot_bench;

/// Flags every serving benchmark shares.
#[derive(Args, Debug)]
pub struct ServingCommon {
    /// The `ampere` binary (default: next to this executable, else target/release/ampere).
    #[arg(long, env = "AMPERE_BIN")]
    pub ampere_bin: Option<PathBuf>,
    /// Server io drivers to measure.
    #[arg(long, value_delimiter = ',', default_value = "epoll,uring")]
    pub drivers: Vec<IoDriver>,
    /// Ampere's cores (and nginx's workers). Default: all available.
    #[arg(long)]
    pub cores: Option<usize>,
    /// Tiny sizes, for a smoke run.
    #[arg(long)]
    pub quick: bool,
    /// Append the tables as markdown to this file.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
}

impl ServingCommon {
    fn cores(&self) -> usize {
        self.cores.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
    }
}

#[derive(Args, Debug)]
pub struct CatchupArgs {
    #[command(flatten)]
    pub common: ServingCommon,
    #[arg(long, default_value_t = 200_000)]
    pub rows: u64,
    /// ELECTRIC_SHAPE_CHUNK_BYTES_THRESHOLD.
    #[arg(long, default_value_t = 65_536)]
    pub chunk_bytes: u64,
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Seconds per wrk run.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Sets AMPERE_CHUNK_CACHE_BYTES to the working set (all chunk bodies) divided by this, so
    /// that most chunks are served from their files (e.g. 4).
    #[arg(long)]
    pub working_set_ratio: Option<f64>,
    /// Drops the page cache before every measured run (needs root).
    #[arg(long)]
    pub cold: bool,
}

#[derive(Args, Debug)]
pub struct CatchupCallgrindArgs {
    /// The `ampere` binary (default: next to this executable, else target/release/ampere).
    #[arg(long, env = "AMPERE_BIN")]
    pub ampere_bin: Option<PathBuf>,
    #[arg(long, default_value_t = 100_000)]
    pub rows: u64,
    /// ELECTRIC_SHAPE_CHUNK_BYTES_THRESHOLD values to compare.
    #[arg(long, value_delimiter = ',', default_value = "10240,102400")]
    pub chunk_bytes: Vec<u64>,
    /// Requests counted per measurement.
    #[arg(long, default_value_t = 1_000)]
    pub requests: u64,
    /// Append the tables as markdown to this file.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Keep the callgrind dumps in this directory.
    #[arg(long)]
    pub keep_dumps: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct LongPollArgs {
    #[command(flatten)]
    pub common: ServingCommon,
    #[arg(long, default_value_t = 10_000)]
    pub connections: u64,
    #[arg(long, default_value_t = 1_000)]
    pub rows: u64,
    /// ELECTRIC_LONG_POLL_TIMEOUT (and AMPERE_SSE_TIMEOUT) in ms.
    #[arg(long, default_value_t = 120_000)]
    pub long_poll_ms: u64,
    /// Live modes to measure.
    #[arg(long, value_delimiter = ',', default_value = "long-poll,sse")]
    pub modes: Vec<longpoll::LiveMode>,
}

#[derive(Args, Debug)]
pub struct InitialSyncArgs {
    #[command(flatten)]
    pub common: ServingCommon,
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: u64,
    #[arg(long, default_value_t = 3)]
    pub repetitions: usize,
}

#[derive(Args, Debug)]
pub struct SubqueriesArgs {
    #[command(flatten)]
    pub common: ServingCommon,
    /// Users, each with one doc and one subquery shape.
    #[arg(long, default_value_t = 10_000)]
    pub shapes: u64,
    /// Rows in `docs`.
    #[arg(long, default_value_t = 20_000)]
    pub docs: u64,
    /// Users whose move-in and move-out latency is measured.
    #[arg(long, default_value_t = 200)]
    pub samples: usize,
    /// Membership changes in the CPU burst (half inserts, then their deletes).
    #[arg(long, default_value_t = 2_000)]
    pub burst: u64,
    /// Docs of the user whose initial sync is compared with a literal IN list.
    #[arg(long, default_value_t = 1_000)]
    pub sync_docs: u64,
    #[arg(long, default_value_t = 5)]
    pub repetitions: usize,
    /// Clients creating the shapes at once.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
}

#[derive(Args, Debug)]
pub struct CdnArgs {
    /// Client counts; each is measured through the proxy and directly, alternating.
    #[arg(long, value_delimiter = ',', default_value = "5000,18000,50000")]
    pub clients: Vec<usize>,
    /// Modes to measure, in this order at each client count.
    #[arg(long, value_delimiter = ',', default_value = "proxy,direct")]
    pub modes: Vec<cdn::Mode>,
    /// Writes per point (1-row transactions to the one shape).
    #[arg(long, default_value_t = 20)]
    pub writes: u64,
    #[arg(long, default_value_t = 0.2)]
    pub writes_per_sec: f64,
    #[arg(long, default_value_t = 1)]
    pub rows_per_write: u32,
    /// Each write is sent up to this much after its slot (loadgen --write-jitter-ms): nginx
    /// wakes requests waiting on a cache lock every 500 ms, and periodic writes would keep
    /// one phase against that.
    #[arg(long, default_value_t = 1000)]
    pub write_jitter_ms: u64,
    /// Clients start this many per second.
    #[arg(long, default_value_t = 5000.0)]
    pub spawn_per_sec: f64,
    /// Time for every client to sync and catch up, after the start ramp.
    #[arg(long, default_value_t = 300)]
    pub ready_timeout_secs: u64,
    /// Time after the last write for the last deliveries.
    #[arg(long, default_value_t = 60)]
    pub grace_secs: u64,
    /// nginx listening ports the proxy clients are spread over.
    #[arg(long, default_value_t = 4)]
    pub listen_ports: usize,
    /// Loopback source addresses the clients connect from (loadgen --source-addrs).
    #[arg(long, default_value = "127.0.0.2-127.0.0.5")]
    pub source_addrs: String,
    /// loadgen processes per point: the open-file limit is per process, and each client
    /// holds one connection. The first writes; the others follow its table.
    #[arg(long, default_value_t = 4)]
    pub loadgen_procs: usize,
    /// Threads (cores) per loadgen process.
    #[arg(long, default_value_t = 1)]
    pub loadgen_cores: usize,
    /// AMPERE_CORES (default: all).
    #[arg(long)]
    pub ampere_cores: Option<usize>,
    /// nginx worker processes. deploy/nginx/run gives each worker half the open-file hard
    /// limit in connections (10,000 at a 20,000 limit), so 50,000 clients need more workers
    /// than cores; 0 keeps nginx's `auto` (one per core).
    #[arg(long, default_value_t = 8)]
    pub nginx_workers: usize,
    /// Ampere's io driver.
    #[arg(long, default_value = "epoll")]
    pub ampere_driver: IoDriver,
    /// loadgen's io driver.
    #[arg(long, default_value = "epoll")]
    pub loadgen_driver: IoDriver,
    /// The `ampere` binary (default: next to this executable, else target/release/ampere).
    #[arg(long, env = "AMPERE_BIN")]
    pub ampere_bin: Option<PathBuf>,
    /// The `loadgen` binary (default: next to this executable, else target/release/loadgen).
    #[arg(long, env = "LOADGEN_BIN")]
    pub loadgen_bin: Option<PathBuf>,
    /// The proxy's run script (default: deploy/nginx/run of this workspace).
    #[arg(long)]
    pub nginx_run: Option<PathBuf>,
    /// Directory for loadgen's JSON reports and logs, one pair per point.
    #[arg(long, default_value = "target/cdn-bench")]
    pub out: PathBuf,
    /// Keep nginx's access log of every proxy point in --out (costs nginx CPU; for diagnosis).
    #[arg(long)]
    pub access_log: bool,
    /// Direct points with more clients are skipped (default: the open-file limit less
    /// 1,000, since Ampere holds one descriptor per client).
    #[arg(long)]
    pub direct_max_clients: Option<usize>,
    /// Append the tables as markdown to this file.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct SnapshotArgs {
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: u64,
    #[arg(long, default_value_t = 5)]
    pub repetitions: usize,
    /// The client's monoio driver.
    #[arg(long, default_value = "epoll")]
    pub driver: IoDriver,
    /// Tiny sizes, for a smoke run.
    #[arg(long)]
    pub quick: bool,
    /// Append the tables as markdown to this file.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
}

pub fn catchup(args: &CatchupArgs) -> Result<Vec<Table>> {
    let quick = args.common.quick;
    let options = catchup::CatchupOptions {
        rows: if quick { 3_000 } else { args.rows },
        chunk_bytes: if quick { 16_384 } else { args.chunk_bytes },
        drivers: args.common.drivers.clone(),
        wrk: WrkSpec {
            threads: args.threads,
            connections: if quick { 8 } else { args.connections },
            duration: Duration::from_secs(if quick { 1 } else { args.seconds }),
        },
        rounds: if quick { 1 } else { args.rounds },
        ampere_bin: locate_ampere(args.common.ampere_bin.as_deref())?,
        cores: args.common.cores(),
        working_set_ratio: args.working_set_ratio,
        cold: args.cold,
    };
    Ok(catchup::run(&options)?.tables)
}

pub fn catchup_callgrind(args: &CatchupCallgrindArgs) -> Result<Vec<Table>> {
    catchup_callgrind::run(&catchup_callgrind::CallgrindOptions {
        rows: args.rows,
        chunk_sizes: args.chunk_bytes.clone(),
        requests: args.requests,
        ampere_bin: locate_ampere(args.ampere_bin.as_deref())?,
        keep_dumps: args.keep_dumps.clone(),
    })
}

pub fn long_poll(args: &LongPollArgs) -> Result<Vec<Table>> {
    let quick = args.common.quick;
    let options = longpoll::LongPollOptions {
        connections: if quick { 100 } else { args.connections },
        rows: if quick { 10 } else { args.rows },
        long_poll_ms: args.long_poll_ms,
        drivers: args.common.drivers.clone(),
        ampere_bin: locate_ampere(args.common.ampere_bin.as_deref())?,
        cores: args.common.cores(),
        modes: args.modes.clone(),
    };
    Ok(longpoll::run(&options)?.tables)
}

pub fn initial_sync(args: &InitialSyncArgs) -> Result<Vec<Table>> {
    let quick = args.common.quick;
    let options = initial_sync::InitialSyncOptions {
        rows: if quick { 5_000 } else { args.rows },
        repetitions: if quick { 1 } else { args.repetitions },
        drivers: args.common.drivers.clone(),
        ampere_bin: locate_ampere(args.common.ampere_bin.as_deref())?,
        cores: args.common.cores(),
    };
    Ok(initial_sync::run(&options)?.tables)
}

pub fn subqueries(args: &SubqueriesArgs) -> Result<Vec<Table>> {
    let quick = args.common.quick;
    let options = subqueries::SubqueryOptions {
        shapes: if quick { 300 } else { args.shapes },
        docs: if quick { 2_000 } else { args.docs },
        samples: if quick { 20 } else { args.samples },
        burst: if quick { 200 } else { args.burst },
        sync_docs: if quick { 200 } else { args.sync_docs },
        repetitions: if quick { 2 } else { args.repetitions },
        concurrency: args.concurrency,
        drivers: args.common.drivers.clone(),
        ampere_bin: locate_ampere(args.common.ampere_bin.as_deref())?,
        cores: args.common.cores(),
    };
    Ok(subqueries::run(&options)?.tables)
}

pub fn cdn(args: &CdnArgs) -> Result<Vec<Table>> {
    use crate::suite::load::locate_binary;
    let options = cdn::CdnOptions {
        clients: args.clients.clone(),
        modes: args.modes.clone(),
        writes: args.writes,
        writes_per_sec: args.writes_per_sec,
        rows_per_write: args.rows_per_write,
        write_jitter_ms: args.write_jitter_ms,
        spawn_per_sec: args.spawn_per_sec,
        ready_timeout_secs: args.ready_timeout_secs,
        grace_secs: args.grace_secs,
        listen_ports: args.listen_ports,
        source_addrs: args.source_addrs.clone(),
        loadgen_procs: args.loadgen_procs,
        loadgen_cores: args.loadgen_cores,
        ampere_cores: args.ampere_cores,
        nginx_workers: (args.nginx_workers > 0).then_some(args.nginx_workers),
        ampere_driver: args.ampere_driver,
        loadgen_driver: args.loadgen_driver,
        ampere_bin: locate_ampere(args.ampere_bin.as_deref())?,
        loadgen_bin: locate_binary("loadgen", args.loadgen_bin.as_deref())?,
        nginx_run: cdn::locate_nginx_run(args.nginx_run.as_deref())?,
        out: args.out.clone(),
        access_log: args.access_log,
        direct_max_clients: args.direct_max_clients,
    };
    Ok(cdn::run(&options)?.tables)
}

pub fn snapshot(args: &SnapshotArgs) -> Result<Vec<Table>> {
    let options = snapshot_bench::SnapshotOptions {
        rows: if args.quick { 5_000 } else { args.rows },
        repetitions: if args.quick { 1 } else { args.repetitions },
        driver: args.driver,
    };
    Ok(snapshot_bench::run(&options)?.tables)
}
