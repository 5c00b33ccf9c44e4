//! Catch-up serving against nginx: the same chunk bodies served by Ampere (from its in-memory
//! shape log) and by nginx (from files, with sendfile), driven by the same `wrk` client.
//!
//! Method: load `rows` rows, start Ampere with a small chunk threshold so the shape has many
//! chunks, follow it once to learn every chunk URL and save each body to a file, then run wrk
//! with a Lua script that either asks every connection for one middle chunk (`same`) or cycles
//! through all chunks (`spread`). nginx serves the saved files under `/c/<i>.json` with the same
//! worker count as Ampere's cores. Each round starts every target fresh; the ratio is taken
//! against nginx within the same round, and the table shows the median over rounds.
//!
//! `working_set_ratio` sets Ampere's chunk memory budget (`AMPERE_CHUNK_CACHE_BYTES`) to the
//! total body bytes divided by it, so most chunks leave from the page cache with `sendfile`.
//! `cold` empties the page cache (`sync; echo 3 > /proc/sys/vm/drop_caches`, root only) before
//! every measured run, Ampere's and nginx's alike, so each run starts reading from the disk.

use anyhow::{ensure, Context as _, Result};
use engine::runtime::{uring_available, IoDriver};
use std::path::PathBuf;
use testkit::Cluster;

use super::items;
use super::nginx::Nginx;
use super::scratch::Scratch;
use super::server::{free_port, AmpereServer, ServerSpec};
use super::shape_fetch::{fetch_shape, ShapeFetch};
use super::wrk::{self, Pattern, WrkResult, WrkSpec};
use crate::report::{grouped, Table};

#[derive(Clone, Debug)]
pub struct CatchupOptions {
    pub rows: u64,
    pub chunk_bytes: u64,
    pub drivers: Vec<IoDriver>,
    pub wrk: WrkSpec,
    pub rounds: usize,
    pub ampere_bin: PathBuf,
    /// Ampere's cores and nginx's worker processes.
    pub cores: usize,
    /// Working set (all chunk bodies) ÷ Ampere's chunk memory budget; `None` leaves the budget
    /// to the environment (default 64 MiB).
    pub working_set_ratio: Option<f64>,
    /// Drop the page cache before every measured run.
    pub cold: bool,
}

/// Who served a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Ampere(IoDriver),
    Nginx,
}

impl Target {
    pub fn label(self) -> String {
        match self {
            Self::Ampere(driver) => format!("ampere ({driver})"),
            Self::Nginx => "nginx".to_string(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct CatchupRun {
    pub round: usize,
    pub target: Target,
    pub pattern: Pattern,
    pub wrk: WrkResult,
    /// Mean body bytes of the URLs requested (weights equal: wrk cycles uniformly).
    pub body_bytes_per_request: f64,
    /// 1-minute load average read just before the run.
    pub load_before: f64,
    /// The server's CPU time per response, user and system, in µs (nginx: its workers).
    pub cpu_us_per_request: (f64, f64),
}

impl CatchupRun {
    pub fn body_mb_per_second(&self) -> f64 {
        self.wrk.requests_per_second() * self.body_bytes_per_request / 1e6
    }
}

#[derive(Debug)]
pub struct CatchupReport {
    /// Chunks (responses) of one catch-up, up-to-date one included.
    pub chunks: usize,
    /// Rows counted in the first catch-up's bodies.
    pub rows_fetched: u64,
    pub runs: Vec<CatchupRun>,
    pub tables: Vec<crate::report::Table>,
}

pub fn run(options: &CatchupOptions) -> Result<CatchupReport> {
    ensure!(options.rounds > 0, "at least one round");
    let cluster = Cluster::start().context("start Postgres")?;
    let db = cluster.create_database().context("create database")?;
    items::create_and_fill(&db, options.rows)?;
    let scratch = Scratch::new("catchup")?;
    let www = scratch.dir("www")?;
    let chunk_dir = scratch.dir("www/c")?;
    let drivers: Vec<IoDriver> = options
        .drivers
        .iter()
        .copied()
        .filter(|d| *d != IoDriver::Uring || uring_available())
        .collect();
    let spec_for = |driver, budget: Option<u64>| ServerSpec {
        binary: options.ampere_bin.clone(),
        database_url: db.url(),
        driver,
        chunk_bytes: Some(options.chunk_bytes),
        long_poll_ms: None,
        cores: Some(options.cores),
        env: budget
            .map(|b| vec![("AMPERE_CHUNK_CACHE_BYTES", b.to_string())])
            .unwrap_or_default(),
    };

    // The reference catch-up: its bodies become nginx's files.
    let reference = {
        let server = AmpereServer::start(&spec_for(IoDriver::Epoll, None), "catchup_ref")?;
        fetch_shape(server.port, items::TABLE, true)?
    };
    let budget = options
        .working_set_ratio
        .map(|ratio| (reference.body_bytes as f64 / ratio) as u64);
    ensure!(
        reference.rows == options.rows,
        "catch-up returned {} rows, the table holds {}",
        reference.rows,
        options.rows
    );
    ensure!(
        reference.chunks.len() >= 2,
        "the shape needs at least two chunks"
    );
    let mut nginx_paths = Vec::with_capacity(reference.chunks.len());
    for (i, chunk) in reference.chunks.iter().enumerate() {
        let body = chunk.body.as_deref().context("reference bodies are kept")?;
        std::fs::write(chunk_dir.join(format!("{i}.json")), body).context("save chunk")?;
        nginx_paths.push(format!("/c/{i}.json"));
    }
    let sizes: Vec<usize> = reference.chunks.iter().map(|c| c.body_len).collect();
    // The same-chunk case asks for a full chunk from the middle of the snapshot.
    let same_index = reference.chunks.len() / 2;

    let mut runs = Vec::new();
    let mut stream_counter = 0;
    let mut targets: Vec<Target> = drivers.iter().map(|d| Target::Ampere(*d)).collect();
    targets.push(Target::Nginx);
    for round in 0..options.rounds {
        // Every target of the round is up at once (idle ones cost nothing) and their runs
        // alternate, so the load of this shared machine moves between them as little as
        // possible; the order rotates each round so no target always goes first.
        let mut servers = Vec::new();
        for &driver in &drivers {
            stream_counter += 1;
            let server = AmpereServer::start(
                &spec_for(driver, budget),
                &format!("catchup_{stream_counter}"),
            )?;
            let fetch = fetch_shape(server.port, items::TABLE, true)?;
            check_same_bodies(&reference, &fetch)?;
            let paths: Vec<String> = fetch.chunks.iter().map(|c| c.path.clone()).collect();
            servers.push((Target::Ampere(driver), server, paths));
        }
        let prefix = scratch.dir(&format!("nginx{round}"))?;
        let nginx = Nginx::start(&prefix, &www, options.cores, free_port()?)?;
        check_nginx_serves(&nginx, &nginx_paths[same_index], &reference, same_index)?;
        let mut order = targets.clone();
        order.rotate_left(round % targets.len());
        for pattern in [Pattern::Same, Pattern::Spread] {
            for &target in &order {
                let (port, paths, pids) = match target {
                    Target::Nginx => (nginx.port, &nginx_paths, nginx_pids(nginx.pid())),
                    Target::Ampere(_) => {
                        let (_, server, paths) = servers
                            .iter()
                            .find(|(t, _, _)| *t == target)
                            .context("a server per driver")?;
                        (server.port, paths, vec![server.pid()])
                    }
                };
                let cpu_before = cpu_seconds(&pids)?;
                let run = drive(options, &scratch, port, paths, &sizes, same_index, pattern)?;
                let cpu = cpu_seconds(&pids)?;
                let requests = run.wrk.requests.max(1) as f64;
                let cpu_us_per_request = (
                    (cpu.0 - cpu_before.0) * 1e6 / requests,
                    (cpu.1 - cpu_before.1) * 1e6 / requests,
                );
                runs.push(CatchupRun {
                    round,
                    target,
                    cpu_us_per_request,
                    ..run
                });
            }
        }
    }
    let tables = vec![
        table(options, &reference, &runs, &drivers, same_index, budget),
        rounds_table(&runs, &drivers),
    ];
    Ok(CatchupReport {
        chunks: reference.chunks.len(),
        rows_fetched: reference.rows,
        runs,
        tables,
    })
}

fn drive(
    options: &CatchupOptions,
    scratch: &Scratch,
    port: u16,
    paths: &[String],
    sizes: &[usize],
    same_index: usize,
    pattern: Pattern,
) -> Result<CatchupRun> {
    if options.cold {
        drop_page_cache()?;
    }
    let load_before = load_average()?;
    let (urls, body_bytes_per_request) = match pattern {
        Pattern::Same => (vec![paths[same_index].clone()], sizes[same_index] as f64),
        Pattern::Spread => (
            paths.to_vec(),
            sizes.iter().sum::<usize>() as f64 / sizes.len() as f64,
        ),
    };
    let script = scratch.path().join(format!("{port}-{pattern:?}.lua"));
    wrk::write_script(&script, &urls, pattern)?;
    let result = wrk::run(&options.wrk, port, &script)?;
    ensure!(
        result.non_2xx == 0,
        "{} non-2xx responses on port {port}:\n{}",
        result.non_2xx,
        result.output
    );
    Ok(CatchupRun {
        round: 0,
        target: Target::Nginx,
        pattern,
        wrk: result,
        body_bytes_per_request,
        load_before,
        cpu_us_per_request: (0.0, 0.0),
    })
}

/// nginx's worker processes (the master's children): they serve, the master only waits.
fn nginx_pids(master: u32) -> Vec<u32> {
    let path = format!("/proc/{master}/task/{master}/children");
    std::fs::read_to_string(path)
        .map(|text| {
            text.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// User and system CPU seconds used so far by `pids` (every thread), from `/proc/<pid>/stat`.
/// Server CPU per response is what bounds throughput here, as wrk shares the cores, and it
/// varies far less with other jobs' load than requests/s.
fn cpu_seconds(pids: &[u32]) -> Result<(f64, f64)> {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let (mut user, mut system) = (0u64, 0u64);
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .with_context(|| format!("read /proc/{pid}/stat"))?;
        // The fields after the command name, which ends with the line's last `)`.
        let rest = stat.rsplit_once(')').context("stat format")?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the line: 12th and 13th after the `)`.
        user += fields
            .get(11)
            .and_then(|f| f.parse::<u64>().ok())
            .context("utime")?;
        system += fields
            .get(12)
            .and_then(|f| f.parse::<u64>().ok())
            .context("stime")?;
    }
    Ok((user as f64 / ticks, system as f64 / ticks))
}

/// Writes dirty pages out and empties the page cache (needs root), so the next run reads
/// every file from the disk.
fn drop_page_cache() -> Result<()> {
    // SAFETY: sync has no preconditions.
    unsafe { libc::sync() };
    std::fs::write("/proc/sys/vm/drop_caches", "3")
        .context("drop the page cache (--cold needs root)")
}

/// The 1-minute load average.
fn load_average() -> Result<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").context("read /proc/loadavg")?;
    text.split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .context("parse /proc/loadavg")
}

/// Every run: req/s of each target, the ratio to nginx in the same round and pattern, and the
/// load average before each run.
fn rounds_table(runs: &[CatchupRun], drivers: &[IoDriver]) -> Table {
    let mut targets: Vec<Target> = drivers.iter().map(|d| Target::Ampere(*d)).collect();
    targets.push(Target::Nginx);
    let mut table = Table::new(
        "Catch-up serving, every round",
        &[
            "round",
            "pattern",
            "server",
            "req/s",
            "× nginx",
            "CPU µs/resp (user+sys)",
            "load before",
        ],
    );
    let rounds = runs.iter().map(|r| r.round).max().map_or(0, |m| m + 1);
    for round in 0..rounds {
        for pattern in [Pattern::Same, Pattern::Spread] {
            let base = runs
                .iter()
                .find(|b| b.target == Target::Nginx && b.pattern == pattern && b.round == round)
                .map(|b| b.wrk.requests_per_second());
            for &target in &targets {
                let Some(run) = runs
                    .iter()
                    .find(|r| r.target == target && r.pattern == pattern && r.round == round)
                else {
                    continue;
                };
                let rps = run.wrk.requests_per_second();
                table.row(vec![
                    (round + 1).to_string(),
                    pattern.label().to_string(),
                    target.label(),
                    grouped(rps),
                    base.map_or_else(|| "-".to_string(), |b| format!("{:.2}", rps / b)),
                    format!(
                        "{:.1} ({:.1}+{:.1})",
                        run.cpu_us_per_request.0 + run.cpu_us_per_request.1,
                        run.cpu_us_per_request.0,
                        run.cpu_us_per_request.1
                    ),
                    format!("{:.2}", run.load_before),
                ]);
            }
        }
    }
    table
}

/// Every chunk but the last (whose up-to-date message carries a moving LSN) must be
/// byte-identical across server starts: the comparison with nginx relies on it.
fn check_same_bodies(reference: &ShapeFetch, fetch: &ShapeFetch) -> Result<()> {
    ensure!(
        fetch.chunks.len() == reference.chunks.len(),
        "{} chunks now, {} in the reference",
        fetch.chunks.len(),
        reference.chunks.len()
    );
    let last = reference.chunks.len() - 1;
    for (i, (a, b)) in reference
        .chunks
        .iter()
        .zip(&fetch.chunks)
        .enumerate()
        .take(last)
    {
        ensure!(a.body == b.body, "chunk {i} differs between server starts");
    }
    Ok(())
}

fn check_nginx_serves(nginx: &Nginx, path: &str, reference: &ShapeFetch, i: usize) -> Result<()> {
    let mut client = super::http::HttpClient::connect(nginx.port)?;
    let response = client.get(path)?;
    ensure!(response.status == 200, "nginx answered {}", response.status);
    ensure!(
        Some(response.body.as_slice()) == reference.chunks[i].body.as_deref(),
        "nginx serves different bytes for {path}"
    );
    Ok(())
}

/// The median (lower middle) of `values`.
fn median_f64(values: &mut [f64]) -> f64 {
    assert!(!values.is_empty(), "median of nothing");
    values.sort_by(f64::total_cmp);
    values[(values.len() - 1) / 2]
}

fn table(
    options: &CatchupOptions,
    reference: &ShapeFetch,
    runs: &[CatchupRun],
    drivers: &[IoDriver],
    same_index: usize,
    budget: Option<u64>,
) -> Table {
    let mut table = Table::new(
        "Catch-up serving: Ampere vs nginx on the same chunk bodies",
        &[
            "server",
            "pattern",
            "req/s",
            "body MB/s",
            "wrk read MB/s",
            "avg latency",
            "× nginx (req/s)",
            "server CPU µs/resp",
        ],
    );
    let mut targets: Vec<Target> = drivers.iter().map(|d| Target::Ampere(*d)).collect();
    targets.push(Target::Nginx);
    for pattern in [Pattern::Same, Pattern::Spread] {
        for &target in &targets {
            let mine: Vec<&CatchupRun> = runs
                .iter()
                .filter(|r| r.target == target && r.pattern == pattern)
                .collect();
            if mine.is_empty() {
                continue;
            }
            let mut rps: Vec<f64> = mine.iter().map(|r| r.wrk.requests_per_second()).collect();
            let mut mbps: Vec<f64> = mine.iter().map(|r| r.body_mb_per_second()).collect();
            let mut read: Vec<f64> = mine
                .iter()
                .map(|r| r.wrk.bytes_read as f64 / r.wrk.seconds / 1e6)
                .collect();
            // Ratios within each round, so a noisy round moves both sides together.
            let mut ratios: Vec<f64> = mine
                .iter()
                .filter_map(|r| {
                    let base = runs.iter().find(|b| {
                        b.target == Target::Nginx && b.pattern == pattern && b.round == r.round
                    })?;
                    Some(r.wrk.requests_per_second() / base.wrk.requests_per_second())
                })
                .collect();
            let latency = mine[mine.len() / 2].wrk.latency_avg.clone();
            table.row(vec![
                target.label(),
                pattern.label().to_string(),
                grouped(median_f64(&mut rps)),
                format!("{:.0}", median_f64(&mut mbps)),
                format!("{:.0}", median_f64(&mut read)),
                latency,
                if target == Target::Nginx {
                    "1.00".to_string()
                } else {
                    format!("{:.2}", median_f64(&mut ratios))
                },
                {
                    let mut cpu: Vec<f64> = mine
                        .iter()
                        .map(|r| r.cpu_us_per_request.0 + r.cpu_us_per_request.1)
                        .collect();
                    format!("{:.1}", median_f64(&mut cpu))
                },
            ]);
        }
    }
    let mean_body = reference.body_bytes as f64 / reference.chunks.len() as f64;
    table.note(format!(
        "{} rows, chunk threshold {} B: {} responses per catch-up, mean body {:.0} B, the same-chunk case asks for chunk {same_index} ({} B).",
        grouped(options.rows as f64),
        options.chunk_bytes,
        reference.chunks.len(),
        mean_body,
        reference.chunks[same_index].body_len,
    ));
    table.note(format!(
        "wrk -t{} -c{} -d{}s; median of {} round(s); Ampere with {} core(s), nginx with {} worker(s); wrk shares the same cores.",
        options.wrk.threads,
        options.wrk.connections,
        options.wrk.duration.as_secs(),
        options.rounds,
        options.cores,
        options.cores,
    ));
    table.note(
        "body MB/s = req/s × body bytes per request (10^6 B); wrk read MB/s includes response heads.",
    );
    table.note(match budget {
        Some(b) => format!(
            "AMPERE_CHUNK_CACHE_BYTES={b}: the working set ({} B) is {:.1}× the budget.",
            reference.body_bytes,
            reference.body_bytes as f64 / b.max(1) as f64
        ),
        None => "AMPERE_CHUNK_CACHE_BYTES as in the environment (default 64 MiB).".to_string(),
    });
    table.note(if options.cold {
        "cold: the page cache was dropped before every measured run (Ampere's and nginx's)."
    } else {
        "warm: the files were just written or read, so they are in the page cache."
    });
    let errors: u64 = runs.iter().map(|r| r.wrk.socket_errors).sum();
    table.note(format!(
        "every response was 2xx; socket errors over all runs: {errors}"
    ));
    table
}
