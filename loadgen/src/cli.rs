//! Command-line interface: global options and one subcommand per scenario, with Electric's
//! parameter grids named in each subcommand's help (defaults are sized for a 2-core machine
//! and a run of at most about 30 s).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use engine::runtime::IoDriver;

use crate::scenario::shapes::Predicate;

#[derive(Parser, Debug)]
#[command(
    name = "loadgen",
    about = "Load generator for Electric-compatible sync servers (ampere, Electric)",
    long_about = "Load generator for Electric-compatible sync servers (ampere, Electric).\n\n\
        Simulated shape clients follow the same request sequence as @electric-sql/client; a \
        Postgres writer stamps every row with its send time on the machine's monotonic clock \
        (in the same process, or in a leader process: write-fanout --followers), so latency \
        (write -> client, including Postgres's commit) needs no clock synchronisation.\n\n\
        Each run creates its own table and drops it afterwards. Exit status: 0 when every \
        expectation was met, 2 when the run finished incomplete, 1 on a setup error. \
        See docs/loadgen.md."
)]
pub struct Cli {
    /// The server, `http://host:port`. Repeatable (or comma-separated): the live clients of
    /// the fan-out scenarios are spread round-robin over the targets (e.g. several listening
    /// ports of one proxy); setup requests and the other scenarios use the first.
    #[arg(
        long = "target",
        env = "LOADGEN_TARGET",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:3000"
    )]
    pub targets: Vec<String>,
    /// Local addresses to connect from, e.g. `127.0.0.2-127.0.0.9,127.0.0.20` (IP addresses
    /// and inclusive IPv4 ranges): clients are spread over every (source, target) pair. One
    /// source address reaches one target with at most as many connections as the ephemeral
    /// port range holds (net.ipv4.ip_local_port_range, 28,232 by default); on Linux every
    /// 127.x.y.z address is loopback, so more sources need no setup.
    #[arg(long)]
    pub source_addrs: Option<String>,
    /// The Postgres the server replicates from (the writer connects here).
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    /// Cores (threads) for clients; the writer runs on core 0.
    #[arg(long, default_value_t = 1)]
    pub cores: usize,
    /// monoio driver: uring, epoll or auto.
    #[arg(long, default_value = "auto")]
    pub io_driver: IoDriver,
    /// Also write the report, with every figure, as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Table to create for the run (default `loadgen_<pid>`); dropped afterwards.
    #[arg(long)]
    pub table: Option<String>,
    /// Leave the table in place after the run.
    #[arg(long)]
    pub keep_table: bool,
    /// A server's process id, when it runs on this machine: its CPU seconds and RSS (sampled
    /// every 100 ms), summed with its descendants' (e.g. nginx's workers), are reported beside
    /// loadgen's own, over the run and over the write phase. Repeatable (e.g. the origin and a
    /// proxy in front of it).
    #[arg(long)]
    pub server_pid: Vec<u32>,
    /// The server's Prometheus endpoint, `http://host:port/metrics`: scraped just before the
    /// first write, before every later write and once every client has its last write; the
    /// report lists how every counter (`*_total`) moved in between, in all and per write, e.g.
    /// the requests that reached the origin.
    #[arg(long)]
    pub server_metrics: Option<String>,
    #[command(subcommand)]
    pub scenario: Scenario,
}

#[derive(Subcommand, Debug)]
pub enum Scenario {
    /// S1: N clients create N distinct shapes at the same instant over a seeded table; time
    /// until each and the last is up-to-date. Electric grid: --shapes 50, 450 … 3650.
    ConcurrentShapeCreation {
        #[arg(long, default_value_t = 50)]
        shapes: usize,
        /// Rows in the table (every shape matches all of them; Electric uses 500).
        #[arg(long, default_value_t = 500)]
        rows: u64,
        #[arg(long, default_value_t = 30)]
        timeout_secs: u64,
        /// Variant S1b: every client requests the same shape.
        #[arg(long)]
        same_shape: bool,
        /// Shape i selects the one row `id = i + 1` instead of the whole table (Electric's S1
        /// shapes select one row each); needs --rows ≥ --shapes.
        #[arg(long, conflicts_with = "same_shape")]
        one_row: bool,
    },
    /// S2: one client syncs a shape of --rows rows, then further clients sync it again, one
    /// after another. Electric grid: --rows 1000, 10000, 100000, 1000000; --payload-bytes 16
    /// and 1024.
    LargeShapeSync {
        #[arg(long, default_value_t = 100_000)]
        rows: u64,
        #[arg(long, default_value_t = 16)]
        payload_bytes: usize,
        /// Clients that sync the shape one after another (the first creates it).
        #[arg(long, default_value_t = 2)]
        clients: usize,
        /// Time allowed per client.
        #[arg(long, default_value_t = 120)]
        timeout_secs: u64,
    },
    /// S3: --shapes disjoint shapes exist; --clients clients follow one of them, and every
    /// write (--rows-per-write rows) hits only that one: write -> client latency while the
    /// others are held. Electric grid: --shapes 100, 300 … 3100, 10000; --predicate eq and
    /// ilike; 50-row writes at 1/s.
    UnrelatedShapesLatency {
        #[arg(long, default_value_t = 1_000)]
        shapes: usize,
        #[arg(long, value_enum, default_value_t = Predicate::Eq)]
        predicate: Predicate,
        /// Clients on the written shape.
        #[arg(long, default_value_t = 1)]
        clients: usize,
        #[command(flatten)]
        writes: UnrelatedWrites,
        #[command(flatten)]
        run: RunOpts,
    },
    /// S4: N clients on one shape (the whole table), W writes/s; latency for every, the mean
    /// and the last client. Electric grid: --clients 5, 105 … 1005, --rows-per-write 50,
    /// --writes-per-sec 0.5.
    WriteFanout {
        #[arg(long, default_value_t = 100)]
        clients: usize,
        /// Clients start this many per second instead of all at once (spares the server's
        /// listen backlog with tens of thousands of clients); the ready timeout is extended by
        /// the ramp's length.
        #[arg(long)]
        spawn_per_sec: Option<f64>,
        /// Send each write up to this many ms after its slot in the fixed schedule (uniform,
        /// the same sequence every run), so that writes take every phase against something
        /// periodic between writer and clients (nginx polls a cache lock every 500 ms).
        #[arg(long, default_value_t = 0)]
        write_jitter_ms: u64,
        #[command(flatten)]
        peers: PeerOpts,
        #[command(flatten)]
        writes: FanoutWrites,
        #[command(flatten)]
        run: RunOpts,
    },
    /// S5: N distinct overlapping shapes, one client each; every write hits all of them.
    /// Electric grid: --shapes 50, 450 … 3650 (published up to 750); one 50-row write.
    DiverseShapeFanout {
        #[arg(long, default_value_t = 50)]
        shapes: usize,
        #[arg(long, value_enum, default_value_t = Predicate::Range)]
        predicate: Predicate,
        #[command(flatten)]
        writes: OverlapWrites,
        #[command(flatten)]
        run: RunOpts,
    },
    /// S6: N overlapping shapes, one client on one of them; every write hits all shapes.
    /// Electric grid: --shapes 100, 300 … 3100 (v1.1 published 100 … 1500); one 50-row write.
    ManyShapesOneClient {
        #[arg(long, default_value_t = 100)]
        shapes: usize,
        #[arg(long, value_enum, default_value_t = Predicate::Range)]
        predicate: Predicate,
        #[command(flatten)]
        writes: OverlapWrites,
        #[command(flatten)]
        run: RunOpts,
    },
    /// S7: rows/s written vs rows/s received by the client(s); raise --rows-per-sec until
    /// received < written or the lag grows.
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
    /// S8a: a fixed write rate and client count for a duration, latency over time. Electric's
    /// load test: --clients 1000 --shapes-per-client 3 --writes-per-sec 50 --rows 50000
    /// --spawn-per-sec 20 for 30 minutes.
    ControlledLoad {
        #[arg(long, default_value_t = 100)]
        clients: usize,
        #[arg(long, default_value_t = 3)]
        shapes_per_client: usize,
        /// Distinct shapes the clients' subscriptions are spread over; writes cycle through
        /// them.
        #[arg(long, default_value_t = 100)]
        shapes: usize,
        /// Seed rows in the table (matched by no shape).
        #[arg(long, default_value_t = 50_000)]
        rows: u64,
        /// Clients start this many per second.
        #[arg(long, default_value_t = 20.0)]
        spawn_per_sec: f64,
        /// Width of the latency-over-time buckets.
        #[arg(long, default_value_t = 1.0)]
        interval_secs: f64,
        #[arg(long, value_enum, default_value_t = Predicate::Eq)]
        predicate: Predicate,
        #[command(flatten)]
        writes: ControlledWrites,
        #[command(flatten)]
        run: RunOpts,
    },
    /// Capacity planning: ramps write-fanout clients, then the write rate, until the p99
    /// write -> client latency exceeds --slo-p99-ms; reports the sustainable load per server
    /// core (see docs/loadgen.md for the projection model).
    Plan(PlanOpts),
}

/// The write options, resolved.
#[derive(Debug, Clone, Copy)]
pub struct Writes {
    pub writes_per_sec: f64,
    /// writes_per_sec × duration_secs unless `--writes` was given.
    pub count: u64,
    pub rows_per_write: u32,
}

/// Declares a write-options struct with a scenario's own defaults. (One struct per default set:
/// clap's derive keeps rendered defaults in statics shared by all instances of a generic
/// struct, so const generic parameters would all show the first instance's defaults.)
macro_rules! write_opts {
    ($name:ident, $rate:expr, $secs:expr, $rows:expr) => {
        /// Write rate and size.
        #[derive(Args, Debug, Clone)]
        pub struct $name {
            /// Write transactions per second.
            #[arg(long, default_value_t = $rate)]
            pub writes_per_sec: f64,
            #[arg(long, default_value_t = $secs)]
            pub duration_secs: u64,
            /// Number of writes (default: writes_per_sec × duration_secs).
            #[arg(long)]
            pub writes: Option<u64>,
            /// Rows per write transaction (Electric's grids use 50).
            #[arg(long, default_value_t = $rows)]
            pub rows_per_write: u32,
        }

        impl $name {
            pub fn resolve(&self) -> Writes {
                Writes {
                    writes_per_sec: self.writes_per_sec,
                    count: self
                        .writes
                        .unwrap_or((self.writes_per_sec * self.duration_secs as f64).ceil() as u64),
                    rows_per_write: self.rows_per_write,
                }
            }
        }
    };
}

write_opts!(UnrelatedWrites, 1.0, 10, 50);
write_opts!(FanoutWrites, 10.0, 10, 1);
write_opts!(OverlapWrites, 1.0, 5, 50);
write_opts!(ControlledWrites, 50.0, 30, 1);

#[derive(Args, Debug, Clone)]
pub struct RunOpts {
    /// Bytes of filler per written row.
    #[arg(long, default_value_t = 16)]
    pub payload_bytes: usize,
    /// Time allowed for shape creation and the clients' initial sync.
    #[arg(long, default_value_t = 30)]
    pub ready_timeout_secs: u64,
    /// Time allowed after the planned end of writing for the last rows to arrive.
    #[arg(long, default_value_t = 10)]
    pub grace_secs: u64,
    /// Rows in the table before the run, matched by no shape except whole-table ones
    /// (default: 500, Electric's row_count, or 0 where clients follow the whole table).
    #[arg(long)]
    pub seed_rows: Option<u64>,
}

/// Several loadgen processes in one `write-fanout` run, for more clients than one process may
/// open files for: the leader (`--followers N`) creates `--table` and writes; each follower
/// (`--follower-id I`, started first) runs its clients on that table. Latency stays exact:
/// every process reads the machine's one monotonic clock. Each report covers its own
/// clients; `per_write` and `latency_every_client_histogram` let them be combined.
#[derive(Args, Debug, Clone, Default)]
pub struct PeerOpts {
    /// An empty directory the processes of one run meet in (signal files).
    #[arg(long)]
    pub sync_dir: Option<std::path::PathBuf>,
    /// Leader: wait for this many follower processes before writing, and for their clients
    /// before ending the write phase.
    #[arg(long, requires = "sync_dir", conflicts_with = "follower_id")]
    pub followers: Option<usize>,
    /// Follower number (1 …): run clients only, on the leader's `--table`; make no writes.
    #[arg(long, requires = "sync_dir")]
    pub follower_id: Option<usize>,
}

#[derive(Args, Debug, Clone)]
pub struct PlanOpts {
    /// The service-level objective: p99 write -> client latency, in milliseconds.
    #[arg(long)]
    pub slo_p99_ms: f64,
    #[arg(long, default_value_t = 10)]
    pub start_clients: usize,
    #[arg(long, default_value_t = 2_000)]
    pub max_clients: usize,
    /// The write rate while clients are ramped; the second phase doubles it from here.
    #[arg(long, default_value_t = 5.0)]
    pub writes_per_sec: f64,
    #[arg(long, default_value_t = 1_000.0)]
    pub max_writes_per_sec: f64,
    #[arg(long, default_value_t = 1)]
    pub rows_per_write: u32,
    /// Length of each step's write phase.
    #[arg(long, default_value_t = 5)]
    pub step_secs: u64,
    /// CPU cores the server uses (its `--cores`), for the per-core figure when --server-pid
    /// is not given.
    #[arg(long, default_value_t = 1)]
    pub server_cores: usize,
    #[command(flatten)]
    pub run: RunOpts,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writes_of(args: &[&str]) -> Writes {
        let mut argv = vec!["loadgen", "--database-url", "postgresql://x@h/db"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).expect("valid arguments").scenario {
            Scenario::UnrelatedShapesLatency { writes, .. } => writes.resolve(),
            Scenario::WriteFanout { writes, .. } => writes.resolve(),
            Scenario::DiverseShapeFanout { writes, .. }
            | Scenario::ManyShapesOneClient { writes, .. } => writes.resolve(),
            Scenario::ControlledLoad { writes, .. } => writes.resolve(),
            other => panic!("no write options: {other:?}"),
        }
    }

    #[test]
    fn each_scenario_has_its_own_write_defaults() {
        let w = writes_of(&["unrelated-shapes-latency"]);
        assert_eq!((w.writes_per_sec, w.count, w.rows_per_write), (1.0, 10, 50));
        let w = writes_of(&["write-fanout"]);
        assert_eq!(
            (w.writes_per_sec, w.count, w.rows_per_write),
            (10.0, 100, 1)
        );
        let w = writes_of(&["many-shapes-one-client"]);
        assert_eq!((w.writes_per_sec, w.count, w.rows_per_write), (1.0, 5, 50));
        let w = writes_of(&["controlled-load"]);
        assert_eq!(
            (w.writes_per_sec, w.count, w.rows_per_write),
            (50.0, 1500, 1)
        );
        let w = writes_of(&["write-fanout", "--writes", "7", "--writes-per-sec", "2"]);
        assert_eq!((w.writes_per_sec, w.count), (2.0, 7));
    }

    fn parse(args: &[&str]) -> Cli {
        let mut argv = vec!["loadgen", "--database-url", "postgresql://x@h/db"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).expect("valid arguments")
    }

    #[test]
    fn targets_sources_and_server_pids_repeat() {
        let cli = parse(&["write-fanout"]);
        assert_eq!(cli.targets, vec!["http://127.0.0.1:3000"]);
        assert!(cli.server_pid.is_empty() && cli.source_addrs.is_none());
        let cli = parse(&[
            "--target",
            "http://127.0.0.1:3001",
            "--target",
            "http://127.0.0.1:3002,http://127.0.0.1:3003",
            "--source-addrs",
            "127.0.0.2-127.0.0.5",
            "--server-pid",
            "10",
            "--server-pid",
            "20",
            "--server-metrics",
            "http://127.0.0.1:9100/metrics",
            "write-fanout",
            "--spawn-per-sec",
            "5000",
        ]);
        assert_eq!(
            cli.targets,
            vec![
                "http://127.0.0.1:3001",
                "http://127.0.0.1:3002",
                "http://127.0.0.1:3003"
            ]
        );
        assert_eq!(cli.source_addrs.as_deref(), Some("127.0.0.2-127.0.0.5"));
        assert_eq!(cli.server_pid, vec![10, 20]);
        assert!(cli.server_metrics.is_some());
        assert!(matches!(
            cli.scenario,
            Scenario::WriteFanout {
                spawn_per_sec: Some(rate),
                ..
            } if rate == 5000.0
        ));
    }

    #[test]
    fn peer_options_go_together() {
        let peers = |args: &[&str]| match parse(args).scenario {
            Scenario::WriteFanout { peers, .. } => peers,
            other => panic!("{other:?}"),
        };
        let leader = peers(&["write-fanout", "--sync-dir", "/tmp/x", "--followers", "2"]);
        assert_eq!(leader.followers, Some(2));
        let follower = peers(&["write-fanout", "--sync-dir", "/tmp/x", "--follower-id", "1"]);
        assert_eq!(follower.follower_id, Some(1));
        let mut argv = vec![
            "loadgen",
            "--database-url",
            "postgresql://x@h/db",
            "write-fanout",
        ];
        for bad in [
            &["--followers", "2"][..],
            &["--follower-id", "1"],
            &["--sync-dir", "/x", "--followers", "1", "--follower-id", "1"],
        ] {
            argv.truncate(4);
            argv.extend_from_slice(bad);
            assert!(Cli::try_parse_from(&argv).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }
}
