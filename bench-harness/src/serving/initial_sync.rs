//! Initial sync of a large shape: one client asks for `offset=-1` on a table nobody has
//! requested yet and follows the chunks to up-to-date, reading every body and counting rows.
//!
//! Each repetition starts a fresh server (so the snapshot query runs inside the timed span, as
//! it does for Electric's published figure) with the default chunk threshold (10 MiB, as
//! Electric). The server's peak RSS is its VmHWM once the client is done.
//!
//! Two baselines are measured in the same repetition, right after the sync, so that a figure
//! from a loaded or slow machine can be read as a ratio:
//! - **COPY**: `psql -c "\copy (<the snapshot's SELECT>) to '/dev/null'"`, what Postgres needs
//!   to produce the rows at all;
//! - **fresh write**: writing as many bytes as the sync served to a new file beside the
//!   server's storage directory (10 MiB writes, no fsync), what the page cache needs to take
//!   the snapshot's log. On a VM whose fresh guest memory is slow to fault in this is far from
//!   free, and every snapshot byte goes through it once.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _, Result};
use engine::runtime::{uring_available, IoDriver};
use testkit::Cluster;

use super::items;
use super::server::{AmpereServer, ServerSpec};
use super::shape_fetch::fetch_shape;
use crate::report::{grouped, rate, Table};

/// Pause between runs (see the loop in [`run`]).
const SETTLE: Duration = Duration::from_secs(5);

/// Electric's published initial sync of a 1M-row shape (v0.9.4, `single-shape-single-client`).
pub const ELECTRIC_1M_SECONDS: f64 = 7.1;

#[derive(Clone, Debug)]
pub struct InitialSyncOptions {
    pub rows: u64,
    pub repetitions: usize,
    pub drivers: Vec<IoDriver>,
    pub ampere_bin: PathBuf,
    pub cores: usize,
}

#[derive(Clone, Debug)]
pub struct InitialSyncRun {
    pub driver: IoDriver,
    pub rows: u64,
    pub responses: usize,
    pub body_bytes: u64,
    pub elapsed: Duration,
    pub first_response: Duration,
    pub rss_idle_kib: u64,
    pub peak_rss_kib: u64,
    /// Server CPU (user + system, all threads) over the sync.
    pub server_cpu: Duration,
    /// A second client reading the whole shape after the sync (served from the files).
    pub reread: Duration,
    /// Same-run baseline: `\copy` of the snapshot's SELECT to /dev/null with psql.
    pub copy: Duration,
    /// Same-run baseline: writing `body_bytes` to a fresh file on the storage file system.
    pub fresh_write: Duration,
    /// 1-minute load average before the repetition.
    pub load_before: f64,
}

#[derive(Debug)]
pub struct InitialSyncReport {
    pub runs: Vec<InitialSyncRun>,
    pub tables: Vec<Table>,
}

pub fn run(options: &InitialSyncOptions) -> Result<InitialSyncReport> {
    ensure!(options.repetitions > 0, "at least one repetition");
    let cluster = Cluster::start().context("start Postgres")?;
    let db = cluster.create_database().context("create database")?;
    items::create_and_fill(&db, options.rows)?;
    let drivers: Vec<IoDriver> = options
        .drivers
        .iter()
        .copied()
        .filter(|d| *d != IoDriver::Uring || uring_available())
        .collect();
    let mut runs = Vec::new();
    let mut stream = 0;
    for _ in 0..options.repetitions {
        for &driver in &drivers {
            stream += 1;
            if stream > 1 {
                // Memory freed by the previous run (its page cache) is handed back to the
                // hypervisor after a few seconds on VMs with free page reporting; until then
                // reusing it is cheaper than fresh memory. Let every run start alike.
                std::thread::sleep(SETTLE);
            }
            let load_before = load_average();
            let spec = ServerSpec {
                binary: options.ampere_bin.clone(),
                database_url: db.url(),
                driver,
                chunk_bytes: None,
                long_poll_ms: None,
                cores: Some(options.cores),
                env: Vec::new(),
            };
            let server = AmpereServer::start(&spec, &format!("sync_{stream}"))?;
            let rss_idle_kib = server.rss_kib()?;
            let cpu_before = server.cpu_time()?;
            let fetch = fetch_shape(server.port, items::TABLE, false)?;
            let server_cpu = server.cpu_time()?.saturating_sub(cpu_before);
            ensure!(
                fetch.rows == options.rows,
                "initial sync returned {} rows, the table holds {}",
                fetch.rows,
                options.rows
            );
            // A second client catching up on the same shape: what serving the stored log
            // costs (page cache → socket, and this client), with no snapshot to wait for.
            let reread = fetch_shape(server.port, items::TABLE, false)?;
            ensure!(
                reread.rows == options.rows,
                "re-read returned {} rows",
                reread.rows
            );
            let peak_rss_kib = server.hwm_kib()?;
            // With the server (and its snapshot in the page cache) still there, so the
            // baseline's pages are as fresh as the sync's were.
            let copy = copy_baseline(&db)?;
            let fresh_write = fresh_write_baseline(&std::env::temp_dir(), fetch.body_bytes)?;
            drop(server);
            runs.push(InitialSyncRun {
                driver,
                rows: fetch.rows,
                responses: fetch.chunks.len(),
                body_bytes: fetch.body_bytes,
                elapsed: fetch.elapsed,
                first_response: fetch.first_response,
                rss_idle_kib,
                peak_rss_kib,
                server_cpu,
                reread: reread.elapsed,
                copy,
                fresh_write,
                load_before,
            });
        }
    }
    let tables = vec![table(options, &runs)];
    Ok(InitialSyncReport { runs, tables })
}

fn table(options: &InitialSyncOptions, runs: &[InitialSyncRun]) -> Table {
    let mut table = Table::new(
        format!(
            "Initial sync of a {}-row table (fresh server each run)",
            grouped(options.rows as f64)
        ),
        &[
            "driver",
            "rows",
            "responses",
            "body MB",
            "time (s)",
            "rows/s",
            "first response (s)",
            "server CPU (s)",
            "RSS idle (MiB)",
            "peak RSS (MiB)",
            "re-read (s)",
            "COPY (s)",
            "÷ COPY",
            "fresh write (s)",
            "load",
            "speed-up vs Electric",
        ],
    );
    for run in runs {
        // Electric's figure is for 1M rows; scale it linearly for other sizes.
        let electric = ELECTRIC_1M_SECONDS * run.rows as f64 / 1e6;
        table.row(vec![
            run.driver.to_string(),
            grouped(run.rows as f64),
            run.responses.to_string(),
            format!("{:.1}", run.body_bytes as f64 / 1e6),
            format!("{:.3}", run.elapsed.as_secs_f64()),
            grouped(rate(run.rows, run.elapsed)),
            format!("{:.3}", run.first_response.as_secs_f64()),
            format!("{:.2}", run.server_cpu.as_secs_f64()),
            format!("{:.1}", run.rss_idle_kib as f64 / 1024.0),
            format!("{:.1}", run.peak_rss_kib as f64 / 1024.0),
            format!("{:.3}", run.reread.as_secs_f64()),
            format!("{:.3}", run.copy.as_secs_f64()),
            format!(
                "{:.2}",
                run.elapsed.as_secs_f64() / run.copy.as_secs_f64().max(1e-9)
            ),
            format!("{:.3}", run.fresh_write.as_secs_f64()),
            format!("{:.2}", run.load_before),
            format!("{:.1}×", electric / run.elapsed.as_secs_f64().max(1e-9)),
        ]);
    }
    table.note(format!(
        "time: from sending `offset=-1` until the up-to-date response was read in full, over one keep-alive connection; the snapshot query runs inside it. Ampere with {} core(s), default chunk threshold (10 MiB).",
        options.cores
    ));
    table.note(
        "peak RSS is the server's VmHWM after the sync (closed snapshot chunks are in snapshot.data and sent from the page cache; memory holds the open chunk and the chunk cache).",
    );
    table.note(
        "re-read: a second client then reads the whole shape from offset=-1 (closed chunks from the files, no snapshot to wait for).",
    );
    table.note(format!(
        "same-run baselines, measured right after each sync: COPY = `psql -c \"\\copy ({COPY_SELECT}) to '/dev/null'\"` (the rows the snapshot reads, produced and sent to a client that discards them; ÷ COPY = time / COPY); fresh write = writing the served byte count to a new file on the storage file system in 10 MiB writes (no fsync), the page-cache work every snapshot byte costs once. load = 1-minute load average before the run."
    ));
    table.note(
        "speed-up = Electric's published 7.1 s per 1M rows (v0.9.4, ≈140k rows/s, RSS ≈125 MB; other hardware), scaled to the row count, divided by the time measured here: indicative only.",
    );
    table
}

/// The SELECT the snapshot of `items` runs (`engine::shapes::snapshot::snapshot_select`: all
/// columns in table order, booleans as `::text`).
const COPY_SELECT: &str = r#"SELECT "id", "title", "n", "ts", "flag"::text FROM "public"."items""#;

/// Time of `\copy (COPY_SELECT) to '/dev/null'` through psql.
fn copy_baseline(db: &testkit::TestDb<'_>) -> Result<Duration> {
    let started = Instant::now();
    db.psql(&format!("\\copy ({COPY_SELECT}) to '/dev/null'"))
        .context("COPY baseline")?;
    Ok(started.elapsed())
}

/// Time to write `bytes` to a new file in `dir` in 10 MiB writes (no fsync); the file is removed.
fn fresh_write_baseline(dir: &Path, bytes: u64) -> Result<Duration> {
    const WRITE: usize = 10 << 20;
    let path = dir.join(format!("bench-fresh-write-{}", std::process::id()));
    let buf = vec![b'x'; WRITE];
    let started = Instant::now();
    let mut file =
        std::fs::File::create(&path).with_context(|| format!("create {}", path.display()))?;
    let mut left = bytes;
    while left > 0 {
        let n = left.min(WRITE as u64) as usize;
        file.write_all(&buf[..n]).context("fresh write baseline")?;
        left -= n as u64;
    }
    drop(file);
    let elapsed = started.elapsed();
    std::fs::remove_file(&path).with_context(|| format!("remove {}", path.display()))?;
    Ok(elapsed)
}

/// The 1-minute load average (0 when unreadable).
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}
