//! The data set and the many outer shapes.
//!
//! `docs (id int primary key, title text)`; `memberships (user_id, doc_id)` gives user `u`
//! doc `u`, and the sync user `sync_docs` docs; `memberships_base` is an identical copy that no
//! shape reads (the CPU baseline). Autovacuum is off on the membership tables so that a burst's
//! dead rows do not start background work inside a CPU measurement.
//!
//! Shapes are created by `concurrency` blocking clients, each over its own keep-alive
//! connection, each following one shape from `offset=-1` to up-to-date before the next.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _, Result};
use testkit::TestDb;

use super::super::http::HttpClient;
use super::super::server::AmpereServer;
use super::cpu::{user_and_system, CpuMark};
use super::{messages, user_definition, Follow, SubqueryOptions};

/// Attempts per shape (503s and reconnects) before giving up on it.
const MAX_ATTEMPTS: u32 = 50;
/// Error messages kept for the report (the count is kept too).
const KEPT_ERRORS: usize = 5;

pub fn create_tables(db: &TestDb<'_>, options: &SubqueryOptions) -> Result<()> {
    let (docs, users) = (options.docs(), options.shapes);
    let sql = format!(
        "CREATE TABLE docs (id int PRIMARY KEY, title text NOT NULL);
         INSERT INTO docs SELECT i, md5(i::text) FROM generate_series(1, {docs}) AS i;
         CREATE TABLE memberships (user_id int, doc_id int, PRIMARY KEY (user_id, doc_id))
           WITH (autovacuum_enabled = false);
         INSERT INTO memberships SELECT u, u FROM generate_series(1, {users}) AS u;
         INSERT INTO memberships SELECT {sync_user}, d FROM generate_series(1, {sync_docs}) AS d;
         CREATE TABLE memberships_base (LIKE memberships INCLUDING ALL)
           WITH (autovacuum_enabled = false);
         INSERT INTO memberships_base SELECT * FROM memberships;
         VACUUM ANALYZE docs, memberships, memberships_base;",
        sync_user = options.sync_user(),
        sync_docs = options.sync_docs,
    );
    db.psql(&sql).context("create and fill docs, memberships")?;
    Ok(())
}

/// What creating the shapes cost.
#[derive(Debug)]
pub struct Setup {
    pub created: u64,
    pub elapsed: Duration,
    /// Per shape, from its first request to its up-to-date, ascending.
    pub per_shape: Vec<Duration>,
    /// Requests answered 503 (admission) and retried.
    pub unavailable: u64,
    /// Requests that failed at the connection level and were retried on a new connection.
    pub reconnects: u64,
    /// Shapes whose catch-up did not hold exactly their one doc.
    pub wrong_rows: u64,
    pub failed: u64,
    pub errors: Vec<String>,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    /// CPU time the server and Postgres spent from the first request to the last up-to-date:
    /// less sensitive than wall time to other load on the machine.
    pub server_cpu: Duration,
    /// The server's stime share of utime + stime: storage work is system calls.
    pub server_system_share: f64,
    pub postgres_cpu: Option<Duration>,
    /// Postgres sessions started meanwhile (set by the caller).
    pub pg_sessions: u64,
}

#[derive(Default)]
struct Shared {
    next: AtomicU64,
    unavailable: AtomicU64,
    reconnects: AtomicU64,
    wrong_rows: AtomicU64,
    failed: AtomicU64,
    errors: Mutex<Vec<String>>,
}

/// Creates every user's shape; returns what it cost and each user's follow position
/// (index `user - 1`; `None` where creation failed).
pub fn create_shapes(
    server: &AmpereServer,
    options: &SubqueryOptions,
    postmaster: Option<u32>,
) -> Result<(Setup, Vec<Option<Follow>>)> {
    let rss_before_kib = server.rss_kib()?;
    let cpu_before = CpuMark::read(server, postmaster)?;
    let split_before = user_and_system(server.pid()).unwrap_or_default();
    let shared = Arc::new(Shared::default());
    let started = Instant::now();
    let workers: Vec<_> = (0..options.concurrency.max(1))
        .map(|_| {
            let (shared, port, users) = (shared.clone(), server.port, options.shapes);
            std::thread::spawn(move || worker(port, users, &shared))
        })
        .collect();
    let mut follows: Vec<Option<Follow>> = vec![None; options.shapes as usize];
    let mut per_shape = Vec::with_capacity(follows.len());
    for w in workers {
        let done = w
            .join()
            .map_err(|_| anyhow::anyhow!("a creator panicked"))?;
        for (follow, took) in done {
            per_shape.push(took);
            let i = follow.user as usize - 1;
            follows[i] = Some(follow);
        }
    }
    let elapsed = started.elapsed();
    let cpu_after = CpuMark::read(server, postmaster)?;
    let split_after = user_and_system(server.pid()).unwrap_or_default();
    let user = split_after.0.saturating_sub(split_before.0).as_secs_f64();
    let system = split_after.1.saturating_sub(split_before.1).as_secs_f64();
    per_shape.sort_unstable();
    let errors = std::mem::take(&mut *shared.errors.lock().expect("errors lock"));
    let setup = Setup {
        created: per_shape.len() as u64,
        elapsed,
        per_shape,
        unavailable: shared.unavailable.load(Ordering::Acquire),
        reconnects: shared.reconnects.load(Ordering::Acquire),
        wrong_rows: shared.wrong_rows.load(Ordering::Acquire),
        failed: shared.failed.load(Ordering::Acquire),
        errors,
        rss_before_kib,
        rss_after_kib: super::super::longpoll::settled_rss(server)?,
        server_cpu: cpu_after.server.saturating_sub(cpu_before.server),
        server_system_share: system / (user + system).max(f64::MIN_POSITIVE),
        postgres_cpu: cpu_after
            .postgres
            .zip(cpu_before.postgres)
            .map(|(a, b)| a.saturating_sub(b)),
        pg_sessions: 0,
    };
    ensure!(
        setup.created > 0,
        "no shape was created: {:?}",
        setup.errors
    );
    Ok((setup, follows))
}

/// One creator: takes the next user until none is left.
fn worker(port: u16, users: u64, shared: &Shared) -> Vec<(Follow, Duration)> {
    let mut client: Option<HttpClient> = None;
    let mut done = Vec::new();
    loop {
        let user = shared.next.fetch_add(1, Ordering::AcqRel) + 1;
        if user > users {
            return done;
        }
        let started = Instant::now();
        match create_one(port, user, &mut client, shared) {
            Ok(follow) => done.push((follow, started.elapsed())),
            Err(e) => {
                shared.failed.fetch_add(1, Ordering::AcqRel);
                let mut errors = shared.errors.lock().expect("errors lock");
                if errors.len() < KEPT_ERRORS {
                    errors.push(format!("user {user}: {e:#}"));
                }
            }
        }
    }
}

/// Follows `user`'s shape to up-to-date, retrying 503s (after their `retry-after`, capped at
/// a second so one busy moment does not stall the whole setup) and broken connections.
fn create_one(
    port: u16,
    user: u64,
    client: &mut Option<HttpClient>,
    shared: &Shared,
) -> Result<Follow> {
    let def = user_definition(user);
    let mut path = format!("/v1/shape?{def}&offset=-1");
    let mut rows = 0u64;
    for _ in 0..MAX_ATTEMPTS {
        if client.is_none() {
            *client = Some(HttpClient::connect(port)?);
        }
        let response = match client.as_mut().map(|c| c.get(&path)) {
            Some(Ok(r)) => r,
            _ => {
                *client = None;
                shared.reconnects.fetch_add(1, Ordering::AcqRel);
                continue;
            }
        };
        match response.status {
            200 => {}
            503 => {
                shared.unavailable.fetch_add(1, Ordering::AcqRel);
                let secs: f64 = response
                    .header("retry-after")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1.0);
                std::thread::sleep(Duration::from_secs_f64(secs.min(1.0)));
                continue;
            }
            status => bail!("status {status}: {}", response.body_str()),
        }
        let items = messages(&response)?;
        rows += items.iter().filter(|m| m.get("value").is_some()).count() as u64;
        let mut follow = Follow {
            user,
            handle: String::new(),
            offset: String::new(),
            cursor: None,
        };
        follow.advance(&response)?;
        if response.header("electric-up-to-date").is_some() {
            if rows != 1 {
                shared.wrong_rows.fetch_add(1, Ordering::AcqRel);
            }
            return Ok(follow);
        }
        path = follow.path(false);
    }
    bail!("no up-to-date after {MAX_ATTEMPTS} attempts")
}
