//! Server CPU per membership change. A burst inserts one membership for each of `burst / 2`
//! random users (each in its own transaction, over one connection opened beforehand), then
//! deletes them again: every insert is a move-in of one outer shape (a move-in query against
//! Postgres), every delete a move-out. No client is attached meanwhile. The server's CPU time
//! (utime + stime) is read once it is idle before the burst and once it is idle after.
//!
//! Baseline, same server, same run: the identical burst on `memberships_base`, which is in the
//! publication (added by hand, as Ampere would when a shape needed it) but read by no shape —
//! the cost of merely receiving and discarding a replicated change.
//!
//! Then each burst user's shape is read from where it was up to date: it must hold one
//! move-in event, one move-in row and one move-out event.

use std::time::{Duration, Instant};

use anyhow::Result;

use super::super::http::HttpClient;
use super::super::server::AmpereServer;
use super::super::writer::Writer;
use super::cpu::{idle_floor, run_time_by_thread, wait_idle, Floor};
use super::{is_event, is_move_in_row, messages, Follow, SplitMix, SubqueryOptions};

/// The table of the baseline burst.
const BASELINE_TABLE: &str = "memberships_base";

/// Puts the baseline table in the server's publication, with the replica identity Ampere
/// gives the tables it publishes.
pub fn publish_baseline_table(writer: &mut Writer, stream_id: &str) -> Result<()> {
    writer.execute(
        &format!("ALTER PUBLICATION electric_publication_{stream_id} ADD TABLE {BASELINE_TABLE}"),
        "ALTER PUBLICATION",
    )?;
    writer.execute(
        &format!("ALTER TABLE {BASELINE_TABLE} REPLICA IDENTITY FULL"),
        "ALTER TABLE",
    )?;
    Ok(())
}

/// One burst's cost.
#[derive(Clone, Copy, Debug)]
pub struct BurstCost {
    pub changes: u64,
    /// From the first statement sent to the last one's reply.
    pub write_time: Duration,
    /// From the idle mark before to the idle mark after.
    pub span: Duration,
    /// Run time of the server's threads.
    pub server_cpu: Duration,
    /// utime + stime (clock ticks): a cross-check of the above.
    pub server_ticks: Duration,
    pub postgres_cpu: Option<Duration>,
    /// The idle floor's share of the span (server, Postgres), subtracted below.
    pub floor: (Duration, Duration),
    /// Both waits for idleness ended within their bound.
    pub settled: bool,
    /// Postgres sessions started by the server meanwhile (move-in queries' connections).
    pub pg_sessions: u64,
}

impl BurstCost {
    /// Server CPU per change, net of the idle floor, µs.
    pub fn server_us_per_change(&self) -> f64 {
        let net = self.server_cpu.saturating_sub(self.floor.0);
        net.as_secs_f64() * 1e6 / self.changes.max(1) as f64
    }

    /// Postgres CPU per change, net of its idle floor, µs.
    pub fn postgres_us_per_change(&self) -> Option<f64> {
        self.postgres_cpu.map(|d| {
            let net = d.saturating_sub(self.floor.1);
            net.as_secs_f64() * 1e6 / self.changes.max(1) as f64
        })
    }
}

#[derive(Debug)]
pub struct Burst {
    pub subquery: BurstCost,
    pub baseline: BurstCost,
    /// Idle CPU before the bursts (with every shape created).
    pub floor: Floor,
    /// Burst users whose shape was read back, and of those: as expected, answered non-200.
    pub checked: u64,
    pub as_expected: u64,
    pub not_ok: u64,
    pub mismatches: Vec<String>,
}

pub fn measure(
    server: &AmpereServer,
    writer: &mut Writer,
    postmaster: Option<u32>,
    follows: &mut [Option<Follow>],
    options: &SubqueryOptions,
) -> Result<Burst> {
    let users: Vec<u64> = SplitMix(0x5eed)
        .sample(options.shapes, options.burst / 2)
        .into_iter()
        .map(|u| u + 1)
        .collect();
    let pairs: Vec<(u64, u64)> = users
        .iter()
        .enumerate()
        .map(|(i, &u)| (u, options.spare_doc(i as u64)))
        .collect();
    let (threads_before, started) = (run_time_by_thread(server.pid()), Instant::now());
    let floor = idle_floor(server, postmaster)?;
    log_threads(server, &threads_before, started.elapsed());
    let subquery = one_burst(server, writer, postmaster, floor, "memberships", &pairs)?;
    let baseline = one_burst(server, writer, postmaster, floor, BASELINE_TABLE, &pairs)?;
    let mut burst = Burst {
        subquery,
        baseline,
        floor,
        checked: 0,
        as_expected: 0,
        not_ok: 0,
        mismatches: Vec::new(),
    };
    check_shapes(server.port, follows, &pairs, &mut burst)?;
    Ok(burst)
}

/// Where the server's time went while it settled and idled (stderr): the idle floor is
/// worth explaining.
fn log_threads(server: &AmpereServer, before: &[(String, u64, u64)], span: Duration) {
    let secs = span.as_secs_f64();
    let threads: Vec<String> = run_time_by_thread(server.pid())
        .into_iter()
        .map(|(name, ns, sw)| {
            let (ns0, sw0) = before
                .iter()
                .find(|(n, _, _)| *n == name)
                .map_or((0, 0), |(_, ns, sw)| (*ns, *sw));
            format!(
                "{name} {:.1} ms/s, {:.0} wakeups/s",
                ns.saturating_sub(ns0) as f64 / 1e6 / secs,
                sw.saturating_sub(sw0) as f64 / secs
            )
        })
        .collect();
    eprintln!(
        "subqueries: settling and idle floor, by thread: {}",
        threads.join("; ")
    );
}

fn one_burst(
    server: &AmpereServer,
    writer: &mut Writer,
    postmaster: Option<u32>,
    floor: Floor,
    table: &str,
    pairs: &[(u64, u64)],
) -> Result<BurstCost> {
    let sessions_before = super::pg_sessions(writer)?;
    let (before, settled_before) = wait_idle(server, postmaster, floor)?;
    let started = Instant::now();
    for &(user, doc) in pairs {
        writer.execute(
            &format!("INSERT INTO {table} VALUES ({user}, {doc})"),
            "INSERT 0 1",
        )?;
    }
    for &(user, doc) in pairs {
        writer.execute(
            &format!("DELETE FROM {table} WHERE user_id = {user} AND doc_id = {doc}"),
            "DELETE 1",
        )?;
    }
    let write_time = started.elapsed();
    let (after, settled_after) = wait_idle(server, postmaster, floor)?;
    let span = after.at - before.at;
    let pg_sessions = super::pg_sessions(writer)? - sessions_before;
    Ok(BurstCost {
        changes: pairs.len() as u64 * 2,
        write_time,
        span,
        floor: floor.over(span),
        server_cpu: after.server.saturating_sub(before.server),
        server_ticks: after.server_ticks.saturating_sub(before.server_ticks),
        postgres_cpu: after
            .postgres
            .zip(before.postgres)
            .map(|(a, b)| a.saturating_sub(b)),
        settled: settled_before && settled_after,
        pg_sessions,
    })
}

/// Reads each burst user's shape from where it was up to date before the burst.
fn check_shapes(
    port: u16,
    follows: &mut [Option<Follow>],
    pairs: &[(u64, u64)],
    burst: &mut Burst,
) -> Result<()> {
    let mut client = HttpClient::connect(port)?;
    for &(user, doc) in pairs {
        let Some(follow) = follows[user as usize - 1].as_mut() else {
            continue;
        };
        burst.checked += 1;
        let (mut ins, mut rows, mut outs) = (0, 0, 0);
        loop {
            let response = client.get(&follow.path(false))?;
            if response.status != 200 {
                burst.not_ok += 1;
                if burst.mismatches.len() < 5 {
                    burst.mismatches.push(format!(
                        "user {user}: status {} {}",
                        response.status,
                        response.body_str()
                    ));
                }
                follows[user as usize - 1] = None;
                break;
            }
            follow.advance(&response)?;
            for m in messages(&response)? {
                ins += u32::from(is_event(&m, "move-in"));
                rows += u32::from(is_move_in_row(&m, Some(doc)));
                outs += u32::from(is_event(&m, "move-out"));
            }
            if response.header("electric-up-to-date").is_some() {
                if (ins, rows, outs) == (1, 1, 1) {
                    burst.as_expected += 1;
                } else if burst.mismatches.len() < 5 {
                    burst.mismatches.push(format!(
                        "user {user}: {ins} move-in events, {rows} move-in rows, {outs} move-out events"
                    ));
                }
                break;
            }
        }
    }
    Ok(())
}
