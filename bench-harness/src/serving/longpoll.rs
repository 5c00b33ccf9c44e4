//! Memory per held live request: many idle `live=true` requests against one shape — long-polls,
//! or SSE streams (`live_sse=true`) — the server's RSS before and while they are held, then one
//! write that must reach every one of them.
//!
//! Method: load a small table, start Ampere with a long long-poll timeout, catch the shape up to
//! learn its handle and up-to-date offset, read VmRSS; open `connections` live requests from a
//! one-thread monoio client; once the server holds them all (its open descriptors grew by that
//! many) and its RSS is steady, read VmRSS again. Then insert one row and count the responses
//! that carry it.
//!
//! Latency: the INSERT (autocommit) runs over a Postgres connection opened before the live
//! requests, so no process start or connection set-up is timed. The instant its reply
//! (CommandComplete, ReadyForQuery) has been read is the commit instant; each client notes the
//! instant it had read its complete response carrying the row (SSE: the insert event). The
//! clients share the process, hence the `Instant` clock, with the writer, so "answered after
//! commit" is a plain difference. The issue's target: 10,000 held long-polls on one shape,
//! one INSERT, every client answered ≤ 50 ms after commit.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _, Result};
use engine::runtime::{uring_available, IoDriver};
use testkit::Cluster;

use super::held_polls::{self, Progress};
use super::items;
use super::server::{process_cpu_time, raise_nofile_limit, AmpereServer, ServerSpec};
use super::shape_fetch::fetch_shape;
use super::writer::Writer;
use crate::report::{grouped, Table};

/// Bound on every wait of this benchmark (connecting, settling, fan-out).
const WAIT_BOUND: Duration = Duration::from_secs(90);

#[derive(Clone, Debug)]
pub struct LongPollOptions {
    pub connections: u64,
    /// Rows in the table before the polls start.
    pub rows: u64,
    pub long_poll_ms: u64,
    pub drivers: Vec<IoDriver>,
    pub ampere_bin: PathBuf,
    pub cores: usize,
    pub modes: Vec<LiveMode>,
}

/// How the held clients follow the shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LiveMode {
    LongPoll,
    Sse,
}

impl std::fmt::Display for LiveMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::LongPoll => "long-poll",
            Self::Sse => "SSE",
        })
    }
}

#[derive(Clone, Debug)]
pub struct LongPollRun {
    pub driver: IoDriver,
    pub mode: LiveMode,
    pub rss_before_kib: u64,
    pub rss_held_kib: u64,
    pub rss_after_kib: u64,
    /// Responses read, and how many of them carried the new row, and failures.
    pub completed: u64,
    pub with_row: u64,
    pub failed: u64,
    /// Time to open every connection and send every request.
    pub open_time: Duration,
    /// From sending the INSERT until its reply (the commit) was read.
    pub commit_round_trip: Duration,
    /// Each client's answer relative to the commit instant, in ms, ascending (negative if a
    /// client had its row before the writer had read the commit's reply); one per client that
    /// received the row.
    pub answered_after_commit_ms: Vec<f64>,
    /// Server CPU time (user + system) from just before the INSERT until every client was
    /// answered (sampled by a 10 ms poll, so it can include up to ~10 ms of idle time).
    pub fan_out_cpu: Duration,
    /// This process's CPU time over the same span: the client thread reading the answers,
    /// plus the writer's few hundred microseconds.
    pub client_cpu: Duration,
}

impl LongPollRun {
    pub fn kib_per_connection(&self, connections: u64) -> f64 {
        self.rss_held_kib.saturating_sub(self.rss_before_kib) as f64 / connections.max(1) as f64
    }

    /// Clients answered with the row (the number of latency samples).
    pub fn answered(&self) -> u64 {
        self.answered_after_commit_ms.len() as u64
    }

    /// Nearest-rank percentile (`p` in 0..=100) of the answers after commit, in ms.
    pub fn after_commit_percentile_ms(&self, p: f64) -> f64 {
        percentile(&self.answered_after_commit_ms, p)
    }

    /// The slowest answer after commit, in ms.
    pub fn after_commit_max_ms(&self) -> f64 {
        self.answered_after_commit_ms
            .last()
            .copied()
            .unwrap_or(f64::NAN)
    }

    /// From sending the INSERT until the last client was answered, in ms.
    pub fn send_to_all_answered_ms(&self) -> f64 {
        self.commit_round_trip.as_secs_f64() * 1e3 + self.after_commit_max_ms()
    }
}

/// Nearest-rank percentile of ascending `sorted` (NaN when empty).
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `later - earlier` in ms, negative when `later` is the earlier one.
fn signed_ms(later: Instant, earlier: Instant) -> f64 {
    if later >= earlier {
        (later - earlier).as_secs_f64() * 1e3
    } else {
        -((earlier - later).as_secs_f64() * 1e3)
    }
}

#[derive(Debug)]
pub struct LongPollReport {
    pub runs: Vec<LongPollRun>,
    pub tables: Vec<Table>,
}

pub fn run(options: &LongPollOptions) -> Result<LongPollReport> {
    let nofile = raise_nofile_limit()?;
    ensure!(
        nofile > options.connections + 256,
        "open-file limit {nofile} is too low for {} connections",
        options.connections
    );
    let cluster = Cluster::start().context("start Postgres")?;
    let db = cluster.create_database().context("create database")?;
    items::create_and_fill(&db, options.rows)?;
    let mut next_id = options.rows + 1;
    let mut runs = Vec::new();
    for (i, &driver) in options.drivers.iter().enumerate() {
        if driver == IoDriver::Uring && !uring_available() {
            continue;
        }
        for (j, &mode) in options.modes.iter().enumerate() {
            let spec = ServerSpec {
                binary: options.ampere_bin.clone(),
                database_url: db.url(),
                driver,
                chunk_bytes: None,
                long_poll_ms: Some(options.long_poll_ms),
                cores: Some(options.cores),
                // Streams must outlive the measurement, like the long-polls.
                env: vec![("AMPERE_SSE_TIMEOUT", options.long_poll_ms.to_string())],
            };
            let server = AmpereServer::start(&spec, &format!("longpoll_{i}_{j}"))?;
            let run = measure(options, &server, driver, mode, &db, next_id)?;
            next_id += 1;
            runs.push(run);
        }
    }
    let tables = vec![table(options, &runs)];
    Ok(LongPollReport { runs, tables })
}

fn measure(
    options: &LongPollOptions,
    server: &AmpereServer,
    driver: IoDriver,
    mode: LiveMode,
    db: &testkit::TestDb<'_>,
    new_id: u64,
) -> Result<LongPollRun> {
    let fetch = fetch_shape(server.port, items::TABLE, false)?;
    ensure!(
        fetch.rows == new_id - 1,
        "catch-up returned {} rows, expected {}",
        fetch.rows,
        new_id - 1
    );
    let mut writer = Writer::connect(&db.url())?;
    let rss_before_kib = settled_rss(server)?;
    let fds_before = server.open_fds()?;
    let path = format!(
        "/v1/shape?table={}&handle={}&offset={}&live=true{}",
        items::TABLE,
        fetch.handle,
        fetch.offset,
        if mode == LiveMode::Sse {
            "&live_sse=true"
        } else {
            ""
        }
    );
    let timeout = Duration::from_millis(options.long_poll_ms) + WAIT_BOUND;
    let opened = Instant::now();
    let (progress, client) = held_polls::hold(server.port, path, options.connections, timeout);
    wait_until("every request written", || {
        let failed = Progress::get(&progress.failed);
        ensure!(failed == 0, "{failed} long-polls failed while connecting");
        Ok(Progress::get(&progress.written) == options.connections)
    })?;
    let open_time = opened.elapsed();
    wait_until("the server to hold every connection", || {
        Ok(server.open_fds()? as u64 >= fds_before as u64 + options.connections)
    })?;
    ensure!(
        Progress::get(&progress.completed) == 0,
        "live requests returned before any write (is the long-poll timeout too short?)"
    );
    let rss_held_kib = settled_rss(server)?;
    let insert = items::insert_sql(new_id, new_id);
    let cpu_before = server.cpu_time()?;
    let client_cpu_before = process_cpu_time(std::process::id())?;
    let commit = writer.execute(&insert, "INSERT 0 1")?;
    wait_until("every long-poll to complete", || {
        let done = Progress::get(&progress.completed) + Progress::get(&progress.failed);
        Ok(done == options.connections)
    })?;
    let fan_out_cpu = server.cpu_time()?.saturating_sub(cpu_before);
    let client_cpu = process_cpu_time(std::process::id())?.saturating_sub(client_cpu_before);
    writer.close()?;
    let answers = client
        .join()
        .map_err(|_| anyhow::anyhow!("the client thread panicked"))??;
    let completed = Progress::get(&progress.completed);
    let with_row = Progress::get(&progress.with_row);
    let failed = Progress::get(&progress.failed);
    let what = format!("{driver} {mode}");
    ensure!(
        answers.len() as u64 == with_row,
        "{what}: {} answer instants for {with_row} responses with the row",
        answers.len()
    );
    if failed > 0 || with_row < options.connections {
        bail!(
            "{what}: {} of {} clients did not receive the new row ({failed} failed, {} \
             responses without the row)",
            options.connections - with_row,
            options.connections,
            completed - with_row
        );
    }
    let mut answered_after_commit_ms: Vec<f64> = answers
        .iter()
        .map(|&at| signed_ms(at, commit.committed))
        .collect();
    answered_after_commit_ms.sort_by(f64::total_cmp);
    Ok(LongPollRun {
        driver,
        mode,
        rss_before_kib,
        rss_held_kib,
        rss_after_kib: server.rss_kib()?,
        completed,
        with_row,
        failed,
        open_time,
        commit_round_trip: commit.committed - commit.sent,
        answered_after_commit_ms,
        fan_out_cpu,
        client_cpu,
    })
}

/// VmRSS once two samples 300 ms apart differ by less than 64 KiB (bounded wait).
pub(crate) fn settled_rss(server: &AmpereServer) -> Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = server.rss_kib()?;
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = server.rss_kib()?;
        if now.abs_diff(last) < 64 || Instant::now() > deadline {
            return Ok(now);
        }
        last = now;
    }
}

pub(crate) fn wait_until(what: &str, mut done: impl FnMut() -> Result<bool>) -> Result<()> {
    let deadline = Instant::now() + WAIT_BOUND;
    while !done()? {
        ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

fn table(options: &LongPollOptions, runs: &[LongPollRun]) -> Table {
    let mut table = Table::new(
        format!(
            "Memory per held live request ({} idle long-polls or SSE streams on one shape)",
            grouped(options.connections as f64)
        ),
        &[
            "driver",
            "mode",
            "RSS before (KiB)",
            "RSS held (KiB)",
            "KiB / connection",
            "open all (s)",
            "responses",
            "with the row",
            "failed",
            "INSERT round trip (ms)",
            "answered after commit p50 (ms)",
            "p99 (ms)",
            "max (ms)",
            "≤ 50 ms",
            "send → all answered (ms)",
            "server CPU meanwhile (s)",
            "client CPU meanwhile (s)",
            "RSS after (KiB)",
        ],
    );
    for run in runs {
        table.row(vec![
            run.driver.to_string(),
            run.mode.to_string(),
            grouped(run.rss_before_kib as f64),
            grouped(run.rss_held_kib as f64),
            format!("{:.2}", run.kib_per_connection(options.connections)),
            format!("{:.2}", run.open_time.as_secs_f64()),
            grouped(run.completed as f64),
            grouped(run.with_row as f64),
            grouped(run.failed as f64),
            format!("{:.2}", run.commit_round_trip.as_secs_f64() * 1e3),
            format!("{:.2}", run.after_commit_percentile_ms(50.0)),
            format!("{:.2}", run.after_commit_percentile_ms(99.0)),
            format!("{:.2}", run.after_commit_max_ms()),
            grouped(
                run.answered_after_commit_ms
                    .iter()
                    .filter(|&&ms| ms <= 50.0)
                    .count() as f64,
            ),
            format!("{:.2}", run.send_to_all_answered_ms()),
            format!("{:.3}", run.fan_out_cpu.as_secs_f64()),
            format!("{:.3}", run.client_cpu.as_secs_f64()),
            grouped(run.rss_after_kib as f64),
        ]);
    }
    table.note(format!(
        "{} rows in the table; ELECTRIC_LONG_POLL_TIMEOUT and AMPERE_SSE_TIMEOUT {} ms; Ampere with {} core(s); the client is one monoio (epoll) thread on the same machine.",
        grouped(options.rows as f64),
        options.long_poll_ms,
        options.cores
    ));
    table.note(
        "RSS is the server's VmRSS (user-space memory); kernel socket buffers are not in it.",
    );
    table.note(
        "The INSERT (one row, autocommit) runs over a Postgres connection opened beforehand; \
         INSERT round trip = from sending it until its reply (CommandComplete, ReadyForQuery) \
         was read = the commit instant.",
    );
    table.note(
        "answered after commit: per client, from the commit instant until it had read its whole \
         response carrying the row (SSE: the whole insert event); \"≤ 50 ms\" counts the clients \
         within the issue's target; send → all answered = INSERT round trip + max. One \
         std::time::Instant clock: the clients run in the same process.",
    );
    table.note(
        "All clients share one client thread, so a late answer includes the time that thread \
         spent reading the earlier ones; the client and the server share the machine's cores. \
         CPU meanwhile: from just before the INSERT until a 10 ms poll saw every client \
         answered, in clock ticks (10 ms).",
    );
    table
}
