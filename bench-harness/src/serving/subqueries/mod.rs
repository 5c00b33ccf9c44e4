//! Subquery shapes (`id IN (SELECT doc_id FROM memberships WHERE user_id = $1)`, one per
//! user): what creating many of them costs, how soon a held long-poll sees a move-in or a
//! move-out after the membership change commits, the server CPU per membership change against
//! a change on a table nobody subscribes to, and the initial sync of such a shape against the
//! same rows selected by a literal `IN` list. `docs/benchmarks/subqueries.md` has the method,
//! the commands and the figures.
//!
//! One Postgres and one data set serve every io driver; each driver gets a fresh server (own
//! slot, own storage), so every phase starts from the same memberships: each phase undoes its
//! own changes.

mod burst;
mod cpu;
mod moves;
mod setup;
mod sync;
mod tables;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result};
use engine::runtime::{uring_available, IoDriver};
use serde_json::Value;
use testkit::Cluster;

use super::http::HttpResponse;
use super::server::{AmpereServer, ServerSpec};
use super::writer::Writer;
use crate::report::Table;

/// The clause every user's shape has; `$1` is the user.
const WHERE_SUBQUERY: &str = "id IN (SELECT doc_id FROM memberships WHERE user_id = $1)";

#[derive(Clone, Debug)]
pub struct SubqueryOptions {
    /// Users, each with one doc and one outer shape.
    pub shapes: u64,
    /// Rows in `docs` (raised to `shapes + 1000` so move-ins have docs no user holds).
    pub docs: u64,
    /// Users whose move-in and move-out latency is measured, one after the other.
    pub samples: usize,
    /// Membership changes of the CPU burst: half inserts, then the matching deletes.
    pub burst: u64,
    /// Docs of the one user whose initial sync is compared with a literal `IN` list.
    pub sync_docs: u64,
    pub repetitions: usize,
    /// Clients creating the shapes at once.
    pub concurrency: usize,
    pub drivers: Vec<IoDriver>,
    pub ampere_bin: PathBuf,
    pub cores: usize,
}

impl SubqueryOptions {
    fn docs(&self) -> u64 {
        self.docs.max(self.shapes + 1_000).max(self.sync_docs)
    }

    /// A doc no user holds initially (the `i`-th, cycling).
    fn spare_doc(&self, i: u64) -> u64 {
        self.shapes + 1 + i % (self.docs() - self.shapes)
    }

    /// The user holding `sync_docs` docs; no shape of the first phases is about them.
    fn sync_user(&self) -> u64 {
        self.shapes + 1
    }
}

/// Everything measured against one server.
#[derive(Debug)]
pub struct DriverRun {
    pub driver: IoDriver,
    /// Idle server CPU before any shape existed.
    pub empty_floor: cpu::Floor,
    pub setup: setup::Setup,
    pub moves: moves::Moves,
    pub burst: burst::Burst,
    pub sync: sync::SyncComparison,
}

#[derive(Debug)]
pub struct SubqueryReport {
    pub runs: Vec<DriverRun>,
    pub tables: Vec<Table>,
}

pub fn run(options: &SubqueryOptions) -> Result<SubqueryReport> {
    let cluster = Cluster::start().context("start Postgres")?;
    let db = cluster.create_database().context("create database")?;
    setup::create_tables(&db, options)?;
    let mut runs = Vec::new();
    for (i, &driver) in options.drivers.iter().enumerate() {
        if driver == IoDriver::Uring && !uring_available() {
            eprintln!("subqueries: io_uring is not available here; skipping it");
            continue;
        }
        let stream_id = format!("subq_{i}");
        let spec = ServerSpec {
            binary: options.ampere_bin.clone(),
            database_url: db.url(),
            driver,
            chunk_bytes: None,
            long_poll_ms: None,
            cores: Some(options.cores),
            env: vec![
                // Setup's concurrent creations must not be refused, nor the shapes evicted.
                (
                    "ELECTRIC_MAX_CONCURRENT_REQUESTS",
                    r#"{"initial":2000,"existing":20000}"#.to_string(),
                ),
                // `DELETE /v1/shape`, so each initial-sync repetition starts from nothing.
                ("ELECTRIC_ENABLE_INTEGRATION_TESTING", "true".to_string()),
            ],
        };
        let server = AmpereServer::start(&spec, &stream_id)?;
        eprintln!("subqueries: {driver}: server up, creating shapes");
        let mut writer = Writer::connect(&db.url())?;
        burst::publish_baseline_table(&mut writer, &stream_id)?;
        let backend: u32 = writer
            .query_value("SELECT pg_backend_pid()")?
            .parse()
            .context("pg_backend_pid")?;
        let postmaster = cpu::postmaster_of(backend);
        // For comparison with the floor once the shapes exist.
        let empty_floor = cpu::idle_floor(&server, None)?;
        let sessions_before = pg_sessions(&mut writer)?;
        let (mut setup, mut follows) = setup::create_shapes(&server, options, postmaster)?;
        setup.pg_sessions = pg_sessions(&mut writer)? - sessions_before;
        eprintln!(
            "subqueries: {driver}: {} shapes in {:.1?} ({} failed, {} 503s)",
            setup.created, setup.elapsed, setup.failed, setup.unavailable
        );
        let moves = moves::measure(server.port, &mut writer, &mut follows, options)?;
        eprintln!("subqueries: {driver}: moves measured");
        let burst = burst::measure(&server, &mut writer, postmaster, &mut follows, options)?;
        eprintln!("subqueries: {driver}: bursts measured");
        let sync = sync::measure(server.port, options)?;
        writer.close()?;
        runs.push(DriverRun {
            driver,
            empty_floor,
            setup,
            moves,
            burst,
            sync,
        });
    }
    let tables = tables::all(options, &runs);
    Ok(SubqueryReport { runs, tables })
}

/// Sessions Postgres has started for this database so far (`pg_stat_database.sessions`):
/// shows whether the server reuses its pooled connections. A backend publishes its counts at
/// most once a second, hence the pause.
fn pg_sessions(writer: &mut Writer) -> Result<u64> {
    std::thread::sleep(Duration::from_millis(1_100));
    writer
        .query_value("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")?
        .parse()
        .context("pg_stat_database.sessions")
}

/// Where a client following one shape is: what its next request names.
#[derive(Clone, Debug)]
pub struct Follow {
    pub user: u64,
    pub handle: String,
    pub offset: String,
    pub cursor: Option<String>,
}

impl Follow {
    /// The request after `response` (a 200 of this shape).
    fn advance(&mut self, response: &HttpResponse) -> Result<()> {
        self.handle = response
            .header("electric-handle")
            .context("no electric-handle")?
            .to_string();
        self.offset = response
            .header("electric-offset")
            .context("no electric-offset")?
            .to_string();
        self.cursor = response.header("electric-cursor").map(str::to_string);
        Ok(())
    }

    /// The next request's path, live (long-poll) or a plain catch-up read.
    fn path(&self, live: bool) -> String {
        let mut path = format!(
            "/v1/shape?{}&handle={}&offset={}",
            user_definition(self.user),
            self.handle,
            self.offset
        );
        if live {
            path.push_str("&live=true");
            if let Some(cursor) = &self.cursor {
                path.push_str(&format!("&cursor={cursor}"));
            }
        }
        path
    }
}

/// The query string defining `user`'s shape.
fn user_definition(user: u64) -> String {
    format!(
        "table=docs&where={}&params%5B1%5D={user}",
        encode(WHERE_SUBQUERY)
    )
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The messages of a 200's body (a JSON array).
fn messages(response: &HttpResponse) -> Result<Vec<Value>> {
    let value: Value = serde_json::from_slice(&response.body).context("body is JSON")?;
    match value {
        Value::Array(items) => Ok(items),
        other => anyhow::bail!("body is not an array: {other}"),
    }
}

fn header<'a>(message: &'a Value, name: &str) -> Option<&'a Value> {
    message.get("headers")?.get(name)
}

fn is_event(message: &Value, event: &str) -> bool {
    header(message, "event").and_then(Value::as_str) == Some(event)
}

/// A move-in query row (`is_move_in: true`) of doc `id` (`None`: any doc).
fn is_move_in_row(message: &Value, id: Option<u64>) -> bool {
    let moved = header(message, "is_move_in").and_then(Value::as_bool) == Some(true);
    let doc = message.get("value").and_then(|v| v.get("id"));
    moved && id.is_none_or(|id| doc.and_then(Value::as_str) == Some(id.to_string().as_str()))
}

/// Nearest-rank percentile of ascending millisecond samples.
fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    let ms: Vec<f64> = sorted.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    super::longpoll::percentile(&ms, p)
}

/// A deterministic generator (splitmix64): the same users every run, no extra dependency.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// `count` distinct values of `0..n` (a partial Fisher–Yates shuffle).
    fn sample(&mut self, n: u64, count: u64) -> Vec<u64> {
        let mut all: Vec<u64> = (0..n).collect();
        let count = count.min(n) as usize;
        for i in 0..count {
            let j = i + (self.next() % (n - i as u64)) as usize;
            all.swap(i, j);
        }
        all.truncate(count);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_a_clause() {
        assert_eq!(encode("id IN ($1)"), "id%20IN%20%28%241%29");
    }

    #[test]
    fn samples_are_distinct() {
        let mut s = SplitMix(7).sample(100, 50);
        s.sort_unstable();
        s.dedup();
        assert_eq!(s.len(), 50);
    }
}
