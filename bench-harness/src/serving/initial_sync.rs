//! Initial sync of a large shape: one client asks for `offset=-1` on a table nobody has
//! requested yet and follows the chunks to up-to-date, reading every body and counting rows.
//!
//! Each repetition starts a fresh server (so the snapshot query runs inside the timed span, as
//! it does for Electric's published figure) with the default chunk threshold (10 MiB, as
//! Electric). The server's peak RSS is its VmHWM once the client is done.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{ensure, Context as _, Result};
use engine::runtime::{uring_available, IoDriver};
use testkit::Cluster;

use super::items;
use super::server::{AmpereServer, ServerSpec};
use super::shape_fetch::fetch_shape;
use crate::report::{grouped, rate, Table};

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
            runs.push(InitialSyncRun {
                driver,
                rows: fetch.rows,
                responses: fetch.chunks.len(),
                body_bytes: fetch.body_bytes,
                elapsed: fetch.elapsed,
                first_response: fetch.first_response,
                rss_idle_kib,
                peak_rss_kib: server.hwm_kib()?,
                server_cpu,
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
            format!("{:.1}×", electric / run.elapsed.as_secs_f64().max(1e-9)),
        ]);
    }
    table.note(format!(
        "time: from sending `offset=-1` until the up-to-date response was read in full, over one keep-alive connection; the snapshot query runs inside it. Ampere with {} core(s), default chunk threshold (10 MiB).",
        options.cores
    ));
    table.note(
        "peak RSS is the server's VmHWM after the sync (the whole shape log is held in memory).",
    );
    table.note(
        "speed-up = Electric's published 7.1 s per 1M rows (v0.9.4, ≈140k rows/s, RSS ≈125 MB; other hardware), scaled to the row count, divided by the time measured here: indicative only.",
    );
    table
}
