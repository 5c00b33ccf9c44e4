//! Writes delivered to subscriptions: the engine behind every scenario that writes while
//! clients listen (`write-fanout`, `replication-throughput`, `unrelated-shapes-latency`,
//! `many-shapes-one-client`, `diverse-shape-fanout`, `controlled-load`, and `plan`).
//!
//! A [`FanoutPlan`] names the live subscriptions (one shape client each, with its where clause
//! and which writes it should see), the passive shapes (created once and left without a
//! client, so the server holds them while the live clients are measured), and the row values
//! each write carries. Flow: passive shapes are created and live subscriptions sync to
//! up-to-date; once all are, the writer (on core 0) issues `writes` transactions at a fixed
//! rate, each stamped with its send time; each subscription records, per write it expects, the
//! time at which it had all of that write's rows.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use engine::runtime::run_per_core;
use serde::Serialize;

use crate::body::{Change, Op};
use crate::clock::now_ns;
use crate::http::HttpConn;
use crate::progress::{self, COUNTERS};
use crate::resources;
use crate::runner::{lock, Context, Peering};
use crate::scenario::fanout_report::{self, FanoutReport};
use crate::shape::{ShapeClient, ShapeError};
use crate::writer::{RowValues, Writer};

/// Distinct errors kept per run; further ones are only counted.
const MAX_KEPT_ERRORS: usize = 20;
/// Pause after a failed request, so a dead server is not hammered in a loop.
const ERROR_BACKOFF: Duration = Duration::from_millis(100);
/// Concurrent creators of passive shapes per core, each with its own keep-alive connection:
/// enough to keep the server busy without opening a connection per shape.
const CREATORS_PER_CORE: usize = 16;

/// Rate and size of the writes (validated by the CLI).
#[derive(Clone, Debug, Serialize)]
pub struct FanoutParams {
    pub writes: u64,
    pub writes_per_sec: f64,
    pub rows_per_write: u32,
    pub payload_bytes: usize,
    /// How long shape creation and the clients' initial sync may take before the run is
    /// abandoned.
    pub ready_timeout_secs: u64,
    /// How long after the planned end of writing clients may still receive.
    pub grace_secs: u64,
    /// Width of the latency-over-time buckets, by write send time.
    pub interval_secs: f64,
    /// Each write is sent up to this much later than its slot in the fixed schedule (uniform,
    /// from a fixed-seed generator), so that writes do not keep one phase against anything
    /// periodic on the way (e.g. nginx's 500 ms cache-lock polling). 0: none.
    pub jitter_ms: u64,
}

impl FanoutParams {
    pub fn write_span(&self) -> Duration {
        Duration::from_secs_f64(self.writes as f64 / self.writes_per_sec)
            + Duration::from_millis(self.jitter_ms)
    }
}

/// One live shape client.
#[derive(Clone, Debug)]
pub struct Subscription {
    /// `None` follows the whole table.
    pub where_clause: Option<String>,
    /// The index into [`FanoutPlan::targets`] of the writes this shape matches; `None`: every
    /// write.
    pub target: Option<usize>,
    /// Wait this long before the first request (staggered client arrival).
    pub start_delay_ms: u64,
}

/// Everything a fan-out run does.
#[derive(Clone, Debug)]
pub struct FanoutPlan {
    pub params: FanoutParams,
    pub subscriptions: Vec<Subscription>,
    /// Where clauses of shapes created (synced once to up-to-date) but not followed.
    pub passive_shapes: Vec<String>,
    /// Write k (from 1) carries `targets[(k - 1) % targets.len()]`.
    pub targets: Vec<RowValues>,
}

impl FanoutPlan {
    /// The target index of write `write_id` (from 1).
    pub fn target_of(&self, write_id: u64) -> usize {
        assert!(!self.targets.is_empty() && write_id >= 1);
        ((write_id - 1) % self.targets.len() as u64) as usize
    }

    /// Whether subscription `sub` should receive write `write_id`.
    pub fn expects(&self, sub: usize, write_id: u64) -> bool {
        self.subscriptions[sub]
            .target
            .is_none_or(|t| t == self.target_of(write_id))
    }

    /// How many of the first `writes` writes subscription `sub` should receive.
    fn expected_count(&self, sub: usize, writes: u64) -> u64 {
        match self.subscriptions[sub].target {
            None => writes,
            Some(t) => {
                let n = self.targets.len() as u64;
                // Writes t+1, t+1+n, t+1+2n, … up to `writes`.
                if writes > t as u64 {
                    (writes - t as u64 - 1) / n + 1
                } else {
                    0
                }
            }
        }
    }
}

#[derive(Default)]
pub(crate) struct WriterOutcome {
    pub writes_done: u64,
    /// Per write id (index 0 unused): the stamp (send time) and send → commit acknowledged.
    pub sent_ns: Vec<u64>,
    pub commit_ns: Vec<u64>,
    pub first_sent_ns: u64,
    pub finished_ns: u64,
}

/// What one subscription saw.
pub(crate) struct ClientOutcome {
    pub sub: usize,
    /// Latency per write id (index 0 unused); 0 = never fully received.
    pub latency_ns: Vec<u64>,
    pub rows_received: u64,
    /// When the last write completed at this client.
    pub last_complete_ns: u64,
    pub resets: u64,
    pub body_bytes: u64,
}

pub(crate) struct Shared {
    pub plan: FanoutPlan,
    pub ctx: Context,
    ready: AtomicUsize,
    next_passive: AtomicUsize,
    passive_done: AtomicUsize,
    pub passive_ok: AtomicUsize,
    pub setup_done_ns: Mutex<u64>,
    abort: AtomicBool,
    /// Cores whose tasks have all finished.
    cores_done: AtomicUsize,
    /// The end of the write phase has been marked: parked connections may close.
    phase_marked: AtomicBool,
    pub start_ns: u64,
    ready_deadline_ns: u64,
    end_deadline_ns: u64,
    pub errors: Mutex<(Vec<String>, u64)>,
    pub writer: Mutex<WriterOutcome>,
    pub clients: Mutex<Vec<ClientOutcome>>,
    /// Per write id, the send stamp of its rows as first seen by a client (a follower has no
    /// writer of its own to ask).
    sent_seen: Vec<AtomicU64>,
}

impl Shared {
    fn error(&self, message: String) {
        progress::add(&COUNTERS.errors, 1);
        let mut errors = lock(&self.errors);
        errors.1 += 1;
        // Many clients fail the same way; keep distinct messages so the writer's is not crowded out.
        if errors.0.len() < MAX_KEPT_ERRORS && !errors.0.contains(&message) {
            errors.0.push(message);
        }
    }

    fn all_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) >= self.plan.subscriptions.len()
            && self.passive_done.load(Ordering::Acquire) >= self.plan.passive_shapes.len()
    }
}

/// Runs the plan on `ctx.cores` cores; the table must already exist.
pub fn run(ctx: &Context, plan: &FanoutPlan, scenario: &str) -> anyhow::Result<FanoutReport> {
    let params = &plan.params;
    assert!(!plan.targets.is_empty(), "a plan writes somewhere");
    assert!(plan
        .subscriptions
        .iter()
        .all(|s| s.target.is_none_or(|t| t < plan.targets.len())));
    match &ctx.peering {
        Some(peering @ Peering::Leader { .. }) => peering
            .signal(TABLE_SIGNAL)
            .map_err(|e| anyhow::anyhow!("writing to the sync directory: {e}"))?,
        Some(peering @ Peering::Follower { .. }) => {
            // The leader creates the table; its clients start once it exists.
            let give_up = now_ns() + params.ready_timeout_secs * 1_000_000_000;
            while !peering.signalled(TABLE_SIGNAL) {
                if now_ns() > give_up {
                    anyhow::bail!(
                        "the leader did not create the table within {} s",
                        params.ready_timeout_secs
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        None => {}
    }
    let start = now_ns();
    let ready_deadline_ns = start + params.ready_timeout_secs * 1_000_000_000;
    let end_deadline_ns = ready_deadline_ns
        + u64::try_from(params.write_span().as_nanos()).unwrap_or(u64::MAX / 4)
        + params.grace_secs * 1_000_000_000;
    let shared = Arc::new(Shared {
        plan: plan.clone(),
        ctx: ctx.clone(),
        ready: AtomicUsize::new(0),
        next_passive: AtomicUsize::new(0),
        passive_done: AtomicUsize::new(0),
        passive_ok: AtomicUsize::new(0),
        setup_done_ns: Mutex::new(0),
        abort: AtomicBool::new(false),
        cores_done: AtomicUsize::new(0),
        phase_marked: AtomicBool::new(false),
        start_ns: start,
        ready_deadline_ns,
        end_deadline_ns,
        errors: Mutex::new((Vec::new(), 0)),
        writer: Mutex::new(WriterOutcome::default()),
        clients: Mutex::new(Vec::with_capacity(plan.subscriptions.len())),
        sent_seen: (0..=params.writes).map(|_| AtomicU64::new(0)).collect(),
    });
    let cores = ctx.cores;
    let per_core = Arc::clone(&shared);
    run_per_core(cores, ctx.driver, move |core| {
        let shared = Arc::clone(&per_core);
        async move {
            let mut tasks = Vec::new();
            let follower = shared
                .ctx
                .peering
                .as_ref()
                .is_some_and(Peering::is_follower);
            if core == 0 && follower {
                tasks.push(monoio::spawn(follower_ready_task(Arc::clone(&shared))));
            } else if core == 0 {
                tasks.push(monoio::spawn(writer_task(Arc::clone(&shared))));
            }
            if !shared.plan.passive_shapes.is_empty() {
                for _ in 0..CREATORS_PER_CORE {
                    tasks.push(monoio::spawn(creator_task(Arc::clone(&shared))));
                }
            }
            for sub in (core..shared.plan.subscriptions.len()).step_by(cores) {
                tasks.push(monoio::spawn(client_task(Arc::clone(&shared), sub)));
            }
            for task in tasks {
                task.await;
            }
            // Every client here is done; its connection is parked, still open, so that the end
            // of the write phase is marked before any client closes (a server may count or
            // work on closed long-polls). Core 0 marks once all cores are done.
            shared.cores_done.fetch_add(1, Ordering::AcqRel);
            if core == 0 {
                wait_for_cores(&shared, cores);
                finish_phase(&shared);
                shared.phase_marked.store(true, Ordering::Release);
            } else {
                wait_for_mark(&shared);
            }
            PARKED.with(|parked| parked.borrow_mut().clear());
        }
    })?;
    if follower_of(ctx) {
        fill_writer_from_clients(&shared);
    }
    Ok(fanout_report::build(&shared, scenario))
}

/// The leader's signal that the table exists.
const TABLE_SIGNAL: &str = "table";
/// The leader's signal that the write phase is marked.
const MARKED_SIGNAL: &str = "marked";

fn follower_of(ctx: &Context) -> bool {
    ctx.peering.as_ref().is_some_and(Peering::is_follower)
}

/// Ends the write phase once every client here is done: a leader waits for its followers'
/// clients, marks the end and tells them; a follower tells the leader and waits for the mark
/// (its connections stay open until then).
fn finish_phase(shared: &Shared) {
    let give_up = shared.end_deadline_ns + CORE_WAIT_SLACK.as_nanos() as u64;
    match &shared.ctx.peering {
        None => resources::mark_write_phase_end(),
        Some(peering @ Peering::Leader { .. }) => {
            while !peering.all_followers("done") && now_ns() < give_up {
                std::thread::sleep(Duration::from_millis(1));
            }
            resources::mark_write_phase_end();
            if let Err(e) = peering.signal(MARKED_SIGNAL) {
                shared.error(format!("signalling the followers: {e}"));
            }
        }
        Some(peering @ Peering::Follower { id, .. }) => {
            if let Err(e) = peering.signal(&format!("done.{id}")) {
                shared.error(format!("signalling the leader: {e}"));
            }
            let give_up = give_up + CORE_WAIT_SLACK.as_nanos() as u64;
            while !peering.signalled(MARKED_SIGNAL) && now_ns() < give_up {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

/// A follower's stand-in for the writer: tells the leader once every client here is up to
/// date (the leader writes only once all processes' clients are).
async fn follower_ready_task(shared: Arc<Shared>) {
    let Some(peering @ Peering::Follower { id, .. }) = shared.ctx.peering.clone() else {
        return;
    };
    while !shared.all_ready() {
        if now_ns() > shared.ready_deadline_ns || shared.abort.load(Ordering::Acquire) {
            shared.error(format!(
                "only {} of {} clients caught up within {} s",
                shared.ready.load(Ordering::Acquire),
                shared.plan.subscriptions.len(),
                shared.plan.params.ready_timeout_secs
            ));
            return;
        }
        monoio::time::sleep(Duration::from_millis(5)).await;
    }
    *lock(&shared.setup_done_ns) = now_ns();
    if let Err(e) = peering.signal(&format!("ready.{id}")) {
        shared.error(format!("signalling the leader: {e}"));
    }
}

/// A follower makes no writes: it counts those up to the highest write id its clients saw
/// (the leader's report says how many were made), stamped as their rows said.
fn fill_writer_from_clients(shared: &Shared) {
    let sent: Vec<u64> = shared
        .sent_seen
        .iter()
        .map(|s| s.load(Ordering::Acquire))
        .collect();
    let mut writer = lock(&shared.writer);
    writer.writes_done = sent.iter().rposition(|&ns| ns > 0).unwrap_or(0) as u64;
    writer.commit_ns = vec![0; sent.len()];
    writer.first_sent_ns = sent
        .iter()
        .skip(1)
        .copied()
        .filter(|&ns| ns > 0)
        .min()
        .unwrap_or(0);
    writer.finished_ns = sent.iter().copied().max().unwrap_or(0);
    writer.sent_ns = sent;
}

/// How long past the run's end deadline a core waits for the others before marking anyway.
const CORE_WAIT_SLACK: Duration = Duration::from_secs(10);

thread_local! {
    /// Connections of finished clients on this core, closed once the write phase is marked.
    static PARKED: std::cell::RefCell<Vec<HttpConn>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Blocks (nothing else runs on this core any more) until `cores` cores are done, or the run's
/// deadline has long passed (a core whose thread died never reports).
fn wait_for_cores(shared: &Shared, cores: usize) {
    let give_up = shared.end_deadline_ns + CORE_WAIT_SLACK.as_nanos() as u64;
    while shared.cores_done.load(Ordering::Acquire) < cores && now_ns() < give_up {
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn wait_for_mark(shared: &Shared) {
    let give_up = shared.end_deadline_ns + 2 * CORE_WAIT_SLACK.as_nanos() as u64;
    while !shared.phase_marked.load(Ordering::Acquire) && now_ns() < give_up {
        std::thread::sleep(Duration::from_millis(1));
    }
}

async fn writer_task(shared: Arc<Shared>) {
    let params = &shared.plan.params;
    let mut writer = match Writer::connect(
        &shared.ctx.database,
        &shared.ctx.table,
        params.payload_bytes,
    )
    .await
    {
        Ok(writer) => writer,
        Err(error) => {
            shared.error(format!("writer connect: {error}"));
            shared.abort.store(true, Ordering::Release);
            return;
        }
    };
    let peers_ready = || {
        shared
            .ctx
            .peering
            .as_ref()
            .is_none_or(|p| p.all_followers("ready"))
    };
    while !shared.all_ready() || !peers_ready() {
        if now_ns() > shared.ready_deadline_ns || shared.abort.load(Ordering::Acquire) {
            shared.error(format!(
                "only {} of {} clients caught up and {} of {} shapes created within {} s{}; \
                 no writes made",
                shared.ready.load(Ordering::Acquire),
                shared.plan.subscriptions.len(),
                shared.passive_done.load(Ordering::Acquire),
                shared.plan.passive_shapes.len(),
                params.ready_timeout_secs,
                if peers_ready() {
                    ""
                } else {
                    " (or not every follower process is ready)"
                }
            ));
            shared.abort.store(true, Ordering::Release);
            return;
        }
        monoio::time::sleep(Duration::from_millis(5)).await;
    }
    *lock(&shared.setup_done_ns) = now_ns();
    // CPU, RSS and server counters from here (blocks this core briefly; every client is
    // idle, long-polling, at this point).
    resources::mark_write_phase_start();
    let interval_ns = 1e9 / params.writes_per_sec;
    let mut jitter = SplitMix64(0x5eed_cafe);
    let start = now_ns();
    for write_id in 1..=params.writes {
        // A fixed schedule: a write delayed by a slow one is sent at once, not skipped.
        let jitter_ns = match params.jitter_ms {
            0 => 0,
            ms => jitter.next() % (ms * 1_000_000),
        };
        let due = start + ((write_id - 1) as f64 * interval_ns) as u64 + jitter_ns;
        let now = now_ns();
        if due > now {
            monoio::time::sleep(Duration::from_nanos(due - now)).await;
        }
        if shared.abort.load(Ordering::Acquire) {
            return;
        }
        if write_id > 1 {
            // Server counters per write (`--server-metrics`), before this write's stamp.
            resources::before_next_write();
        }
        let values = &shared.plan.targets[shared.plan.target_of(write_id)];
        match writer.write(write_id, params.rows_per_write, values).await {
            Ok((sent_ns, acked_ns)) => {
                progress::add(&COUNTERS.writes, 1);
                let mut outcome = lock(&shared.writer);
                if write_id == 1 {
                    outcome.first_sent_ns = sent_ns;
                    outcome.commit_ns.push(0);
                    outcome.sent_ns.push(0);
                }
                outcome.commit_ns.push(acked_ns.saturating_sub(sent_ns));
                outcome.sent_ns.push(sent_ns);
                outcome.writes_done = write_id;
                outcome.finished_ns = now_ns();
            }
            Err(error) => {
                shared.error(format!("write {write_id}: {error}"));
                shared.abort.store(true, Ordering::Release);
                return;
            }
        }
    }
}

/// SplitMix64: a tiny deterministic generator for write jitter (same sequence every run).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Creates passive shapes one after another over one connection until none are left.
async fn creator_task(shared: Arc<Shared>) {
    let mut conn = None;
    loop {
        let index = shared.next_passive.fetch_add(1, Ordering::AcqRel);
        let Some(where_clause) = shared.plan.passive_shapes.get(index) else {
            return;
        };
        let mut client = ShapeClient::new(
            shared.ctx.target.clone(),
            &shared.ctx.table,
            Some(where_clause),
        )
        .with_conn(conn.take());
        match sync_to_up_to_date(&mut client, shared.ready_deadline_ns, &shared.abort).await {
            Ok(()) => {
                shared.passive_ok.fetch_add(1, Ordering::AcqRel);
                progress::add(&COUNTERS.shapes_ready, 1);
            }
            Err(message) => shared.error(format!("creating shape {index}: {message}")),
        }
        shared.passive_done.fetch_add(1, Ordering::AcqRel);
        conn = client.take_conn();
    }
}

/// Polls until the shape is up-to-date, the deadline passes or the run is aborted.
async fn sync_to_up_to_date(
    client: &mut ShapeClient,
    deadline_ns: u64,
    abort: &AtomicBool,
) -> Result<(), String> {
    while !client.is_up_to_date() {
        let now = now_ns();
        if now >= deadline_ns || abort.load(Ordering::Acquire) {
            return Err("not up-to-date before the ready timeout".to_owned());
        }
        match monoio::time::timeout(Duration::from_nanos(deadline_ns - now), client.poll()).await {
            Err(_elapsed) => return Err("timed out".to_owned()),
            Ok(Err(error)) => return Err(error.to_string()),
            Ok(Ok(_batch)) => {}
        }
    }
    Ok(())
}

async fn client_task(shared: Arc<Shared>, sub: usize) {
    let plan = &shared.plan;
    let subscription = &plan.subscriptions[sub];
    let delay = Duration::from_millis(subscription.start_delay_ms);
    if !delay.is_zero() {
        monoio::time::sleep(delay).await;
    }
    let mut client = ShapeClient::new(
        shared.ctx.client_target(sub),
        &shared.ctx.table,
        subscription.where_clause.as_deref(),
    );
    let slots = usize::try_from(plan.params.writes).unwrap_or(usize::MAX) + 1;
    let mut rows_per_write = vec![0u32; slots];
    let mut outcome = ClientOutcome {
        sub,
        latency_ns: vec![0; slots],
        rows_received: 0,
        last_complete_ns: 0,
        resets: 0,
        body_bytes: 0,
    };
    let expected = plan.expected_count(sub, plan.params.writes);
    let mut completed = 0u64;
    let mut counted_ready = false;
    while (completed < expected || !counted_ready) && !shared.abort.load(Ordering::Acquire) {
        let deadline = if counted_ready {
            shared.end_deadline_ns
        } else {
            shared.ready_deadline_ns
        };
        let now = now_ns();
        if now >= deadline {
            break;
        }
        let polled =
            monoio::time::timeout(Duration::from_nanos(deadline - now), client.poll()).await;
        match polled {
            Err(_elapsed) => break,
            Ok(Err(error)) => {
                shared.error(format!("client: {}", short(&error)));
                monoio::time::sleep(ERROR_BACKOFF).await;
            }
            Ok(Ok(batch)) => {
                if batch.reset {
                    // The shape restarts from scratch, so its rows will be delivered again;
                    // latencies already measured stand.
                    rows_per_write.fill(0);
                }
                completed += apply(
                    &batch.changes,
                    plan.params.rows_per_write,
                    &mut rows_per_write,
                    &mut outcome,
                    &shared.sent_seen,
                );
            }
        }
        if !counted_ready && client.is_up_to_date() {
            counted_ready = true;
            shared.ready.fetch_add(1, Ordering::AcqRel);
            progress::add(&COUNTERS.shapes_ready, 1);
        }
    }
    outcome.rows_received = rows_per_write.iter().map(|&n| u64::from(n)).sum();
    outcome.resets = client.resets;
    outcome.body_bytes = client.body_bytes;
    lock(&shared.clients).push(outcome);
    if let Some(conn) = client.take_conn() {
        PARKED.with(|parked| parked.borrow_mut().push(conn));
    }
}

/// An error message cut to a bounded length (a status error carries part of the body).
fn short(error: &ShapeError) -> String {
    error.to_string().chars().take(300).collect()
}

/// Counts the changes' rows per write; returns how many writes became complete.
fn apply(
    changes: &[Change],
    rows_per_write_planned: u32,
    rows_per_write: &mut [u32],
    outcome: &mut ClientOutcome,
    sent_seen: &[AtomicU64],
) -> u64 {
    let now = now_ns();
    let mut completed = 0;
    let mut rows = 0;
    for change in changes.iter().filter(|c| c.op == Op::Insert) {
        let (Some(write_id), Some(sent_ns)) = (change.write_id, change.sent_ns) else {
            continue;
        };
        // Seed rows carry write id 0; ids beyond the plan cannot come from this run.
        let Some(index) = usize::try_from(write_id)
            .ok()
            .filter(|&i| i >= 1 && i < rows_per_write.len())
        else {
            continue;
        };
        rows += 1;
        rows_per_write[index] = rows_per_write[index].saturating_add(1);
        if rows_per_write[index] == rows_per_write_planned && outcome.latency_ns[index] == 0 {
            outcome.latency_ns[index] = now.saturating_sub(sent_ns).max(1);
            if let Some(seen) = sent_seen.get(index) {
                let _ = seen.compare_exchange(0, sent_ns, Ordering::AcqRel, Ordering::Acquire);
            }
            outcome.last_complete_ns = now;
            completed += 1;
        }
    }
    progress::add(&COUNTERS.rows, rows);
    progress::add(&COUNTERS.deliveries, completed);
    completed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(targets: usize, subs: Vec<Option<usize>>) -> FanoutPlan {
        FanoutPlan {
            params: FanoutParams {
                writes: 10,
                writes_per_sec: 1.0,
                rows_per_write: 1,
                payload_bytes: 1,
                ready_timeout_secs: 1,
                grace_secs: 1,
                interval_secs: 1.0,
                jitter_ms: 0,
            },
            subscriptions: subs
                .into_iter()
                .map(|target| Subscription {
                    where_clause: None,
                    target,
                    start_delay_ms: 0,
                })
                .collect(),
            passive_shapes: Vec::new(),
            targets: (0..targets)
                .map(|i| RowValues::new(format!("s{i}"), i as i64))
                .collect(),
        }
    }

    #[test]
    fn jitter_covers_its_range() {
        let mut g = SplitMix64(0x5eed_cafe);
        let draws: Vec<u64> = (0..1_000).map(|_| g.next() % 1_000).collect();
        assert!(draws.iter().any(|&d| d < 100) && draws.iter().any(|&d| d >= 900));
        let mut again = SplitMix64(0x5eed_cafe);
        assert_eq!(
            again.next() % 1_000,
            draws[0],
            "the same sequence every run"
        );
    }

    #[test]
    fn expected_counts_match_expects() {
        let plan = plan(3, vec![None, Some(0), Some(1), Some(2)]);
        for writes in 0..10 {
            for sub in 0..4 {
                let counted = (1..=writes).filter(|&w| plan.expects(sub, w)).count() as u64;
                assert_eq!(plan.expected_count(sub, writes), counted, "{sub} {writes}");
            }
        }
    }
}
