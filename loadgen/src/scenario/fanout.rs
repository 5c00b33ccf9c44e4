//! Writes fanned out to clients following one shape: the engine of both `write-fanout`
//! (many clients, latency) and `replication-throughput` (one client, many rows/s).
//!
//! Flow: every client syncs the shape until up-to-date; once all are, the writer (on core 0)
//! issues `writes` transactions at a fixed rate, each stamped with the send time; each client
//! records, per write, the time at which it had received all of that write's rows.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use engine::runtime::run_per_core;
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::clock::now_ns;
use crate::runner::{lock, Context};
use crate::shape::{value_u64, Batch, ShapeClient};
use crate::stats::{new_histogram, record, Summary};
use crate::writer::Writer;

/// Distinct errors kept per run; further ones are only counted.
const MAX_KEPT_ERRORS: usize = 20;
/// Pause after a failed request, so a dead server is not hammered in a loop.
const ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// Parameters of one fan-out run (already validated by the CLI).
#[derive(Clone, Debug, Serialize)]
pub struct FanoutParams {
    pub clients: usize,
    pub writes: u64,
    pub writes_per_sec: f64,
    pub rows_per_write: u32,
    pub payload_bytes: usize,
    /// How long clients get for the initial sync before the run is abandoned.
    pub ready_timeout_secs: u64,
    /// How long after the planned end of writing clients may still receive.
    pub grace_secs: u64,
}

impl FanoutParams {
    fn write_span(&self) -> Duration {
        Duration::from_secs_f64(self.writes as f64 / self.writes_per_sec)
    }
}

#[derive(Default)]
struct WriterOutcome {
    writes_done: u64,
    /// Per write id (index 0 unused): send → commit acknowledged, in ns.
    commit_ns: Vec<u64>,
    first_sent_ns: u64,
    finished_ns: u64,
}

/// What one client saw.
struct ClientOutcome {
    /// Latency per write id (index 0 unused); 0 = never fully received.
    latency_ns: Vec<u64>,
    rows_received: u64,
    /// When the last write completed at this client.
    last_complete_ns: u64,
    resets: u64,
}

struct Shared {
    params: FanoutParams,
    ctx: Context,
    ready: AtomicUsize,
    abort: AtomicBool,
    ready_deadline_ns: u64,
    end_deadline_ns: u64,
    errors: Mutex<(Vec<String>, u64)>,
    writer: Mutex<WriterOutcome>,
    clients: Mutex<Vec<ClientOutcome>>,
}

impl Shared {
    fn error(&self, message: String) {
        let mut errors = lock(&self.errors);
        errors.1 += 1;
        // Many clients fail the same way; keep distinct messages so the writer's is not crowded out.
        if errors.0.len() < MAX_KEPT_ERRORS && !errors.0.contains(&message) {
            errors.0.push(message);
        }
    }
}

/// The result of a fan-out run.
#[derive(Debug, Serialize)]
pub struct FanoutReport {
    pub scenario: String,
    pub target: String,
    pub params: FanoutParams,
    pub writes_done: u64,
    pub rows_written: u64,
    pub write_secs: f64,
    pub rows_written_per_sec: f64,
    /// clients × writes_done.
    pub client_writes_expected: u64,
    pub client_writes_received: u64,
    /// Every client received every write that was made, and all planned writes were made.
    pub complete: bool,
    /// Rows received by the first client per second, from the first write's send to the last
    /// write's arrival there.
    pub rows_received_per_sec_first_client: f64,
    pub resets: u64,
    pub error_count: u64,
    pub errors: Vec<String>,
    /// Every (client, write) latency.
    pub latency_every_client: Summary,
    /// Per write, the mean over clients.
    pub latency_mean_client: Summary,
    /// Per write, the slowest client (only writes every client received).
    pub latency_last_client: Summary,
    /// The writer's send → commit acknowledged (Postgres's share of the latency).
    pub commit: Summary,
    /// Mean client, counted from the commit acknowledgement instead of the send (server only).
    pub after_commit_mean_client: Summary,
    /// Last client, counted from the commit acknowledgement.
    pub after_commit_last_client: Summary,
}

/// Runs the scenario on `ctx.cores` cores; the table must already exist.
pub fn run(ctx: &Context, params: &FanoutParams, scenario: &str) -> anyhow::Result<FanoutReport> {
    let start = now_ns();
    let ready_deadline_ns = start + params.ready_timeout_secs * 1_000_000_000;
    let end_deadline_ns = ready_deadline_ns
        + u64::try_from(params.write_span().as_nanos()).unwrap_or(u64::MAX / 4)
        + params.grace_secs * 1_000_000_000;
    let shared = Arc::new(Shared {
        params: params.clone(),
        ctx: ctx.clone(),
        ready: AtomicUsize::new(0),
        abort: AtomicBool::new(false),
        ready_deadline_ns,
        end_deadline_ns,
        errors: Mutex::new((Vec::new(), 0)),
        writer: Mutex::new(WriterOutcome::default()),
        clients: Mutex::new(Vec::with_capacity(params.clients)),
    });
    let cores = ctx.cores;
    let per_core = Arc::clone(&shared);
    run_per_core(cores, ctx.driver, move |core| {
        let shared = Arc::clone(&per_core);
        async move {
            let mut tasks = Vec::new();
            if core == 0 {
                tasks.push(monoio::spawn(writer_task(Arc::clone(&shared))));
            }
            for _ in (core..shared.params.clients).step_by(cores) {
                tasks.push(monoio::spawn(client_task(Arc::clone(&shared))));
            }
            for task in tasks {
                task.await;
            }
        }
    })?;
    Ok(report(&shared, scenario))
}

async fn writer_task(shared: Arc<Shared>) {
    let params = &shared.params;
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
    while shared.ready.load(Ordering::Acquire) < params.clients {
        if now_ns() > shared.ready_deadline_ns || shared.abort.load(Ordering::Acquire) {
            shared.error(format!(
                "only {} of {} clients caught up within {} s; no writes made",
                shared.ready.load(Ordering::Acquire),
                params.clients,
                params.ready_timeout_secs
            ));
            shared.abort.store(true, Ordering::Release);
            return;
        }
        monoio::time::sleep(Duration::from_millis(5)).await;
    }
    let interval_ns = 1e9 / params.writes_per_sec;
    let start = now_ns();
    for write_id in 1..=params.writes {
        // A fixed schedule: a write delayed by a slow one is sent at once, not skipped.
        let due = start + ((write_id - 1) as f64 * interval_ns) as u64;
        let now = now_ns();
        if due > now {
            monoio::time::sleep(Duration::from_nanos(due - now)).await;
        }
        match writer.write(write_id, params.rows_per_write).await {
            Ok((sent_ns, acked_ns)) => {
                let mut outcome = lock(&shared.writer);
                if write_id == 1 {
                    outcome.first_sent_ns = sent_ns;
                    outcome.commit_ns.push(0);
                }
                outcome.commit_ns.push(acked_ns.saturating_sub(sent_ns));
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

async fn client_task(shared: Arc<Shared>) {
    let params = &shared.params;
    let mut client = ShapeClient::new(shared.ctx.target.clone(), &shared.ctx.table, None);
    let slots = usize::try_from(params.writes).unwrap_or(usize::MAX) + 1;
    let mut rows_per_write = vec![0u32; slots];
    let mut outcome = ClientOutcome {
        latency_ns: vec![0; slots],
        rows_received: 0,
        last_complete_ns: 0,
        resets: 0,
    };
    let mut completed = 0u64;
    let mut counted_ready = false;
    while completed < params.writes && !shared.abort.load(Ordering::Acquire) {
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
                shared.error(format!("client: {error}"));
                monoio::time::sleep(ERROR_BACKOFF).await;
            }
            Ok(Ok(batch)) => {
                completed += apply(&batch, params, &mut rows_per_write, &mut outcome);
            }
        }
        if !counted_ready && client.is_up_to_date() {
            counted_ready = true;
            shared.ready.fetch_add(1, Ordering::AcqRel);
        }
    }
    outcome.rows_received = rows_per_write.iter().map(|&n| u64::from(n)).sum();
    outcome.resets = client.resets;
    lock(&shared.clients).push(outcome);
}

/// Counts the batch's rows per write; returns how many writes became complete.
fn apply(
    batch: &Batch,
    params: &FanoutParams,
    rows_per_write: &mut [u32],
    outcome: &mut ClientOutcome,
) -> u64 {
    if batch.reset {
        // The shape restarts from scratch, so its rows will be delivered again; latencies
        // already measured stand.
        rows_per_write.fill(0);
    }
    let now = now_ns();
    let mut completed = 0;
    for change in batch.changes.iter().filter(|c| c.operation == "insert") {
        let (Some(write_id), Some(sent_ns)) = (
            value_u64(&change.value, "write_id"),
            value_u64(&change.value, "sent_ns"),
        ) else {
            continue;
        };
        // Seed rows carry write id 0; ids beyond the plan cannot come from this run.
        let Some(index) = usize::try_from(write_id)
            .ok()
            .filter(|&i| i >= 1 && i < rows_per_write.len())
        else {
            continue;
        };
        rows_per_write[index] = rows_per_write[index].saturating_add(1);
        if rows_per_write[index] == params.rows_per_write && outcome.latency_ns[index] == 0 {
            outcome.latency_ns[index] = now.saturating_sub(sent_ns).max(1);
            outcome.last_complete_ns = now;
            completed += 1;
        }
    }
    completed
}

fn report(shared: &Shared, scenario: &str) -> FanoutReport {
    let params = &shared.params;
    let writer = lock(&shared.writer);
    let clients = lock(&shared.clients);
    let (errors, error_count) = lock(&shared.errors).clone();
    let writes_done = writer.writes_done;
    let mut every: Histogram<u64> = new_histogram();
    let mut mean = new_histogram();
    let mut last = new_histogram();
    let mut commit = new_histogram();
    let mut mean_after = new_histogram();
    let mut last_after = new_histogram();
    let mut received = 0u64;
    for write in 1..=usize::try_from(writes_done).unwrap_or(0) {
        let latencies: Vec<u64> = clients
            .iter()
            .filter_map(|c| c.latency_ns.get(write).copied().filter(|&ns| ns > 0))
            .collect();
        received += latencies.len() as u64;
        // A client can see the row before the writer sees its commit acknowledged: clamp at 0.
        let commit_ns = writer.commit_ns.get(write).copied().unwrap_or(0);
        record(&mut commit, commit_ns);
        for &ns in &latencies {
            record(&mut every, ns);
        }
        if !latencies.is_empty() {
            let mean_ns = latencies.iter().sum::<u64>() / latencies.len() as u64;
            record(&mut mean, mean_ns);
            record(&mut mean_after, mean_ns.saturating_sub(commit_ns));
        }
        if latencies.len() == clients.len() {
            if let Some(&max) = latencies.iter().max() {
                record(&mut last, max);
                record(&mut last_after, max.saturating_sub(commit_ns));
            }
        }
    }
    let rows_written = writes_done * u64::from(params.rows_per_write);
    let write_secs = writer.finished_ns.saturating_sub(writer.first_sent_ns) as f64 / 1e9;
    let first_client_rate = clients.first().map_or(0.0, |c| {
        let secs = c.last_complete_ns.saturating_sub(writer.first_sent_ns) as f64 / 1e9;
        if secs > 0.0 {
            c.rows_received as f64 / secs
        } else {
            0.0
        }
    });
    let expected = clients.len() as u64 * writes_done;
    FanoutReport {
        scenario: scenario.to_owned(),
        target: shared.ctx.target.host.clone(),
        params: params.clone(),
        writes_done,
        rows_written,
        write_secs,
        rows_written_per_sec: if write_secs > 0.0 {
            rows_written as f64 / write_secs
        } else {
            0.0
        },
        client_writes_expected: expected,
        client_writes_received: received,
        complete: writes_done == params.writes
            && clients.len() == params.clients
            && received == expected,
        rows_received_per_sec_first_client: first_client_rate,
        resets: clients.iter().map(|c| c.resets).sum(),
        error_count,
        errors,
        latency_every_client: Summary::of(&every),
        latency_mean_client: Summary::of(&mean),
        latency_last_client: Summary::of(&last),
        commit: Summary::of(&commit),
        after_commit_mean_client: Summary::of(&mean_after),
        after_commit_last_client: Summary::of(&last_after),
    }
}

impl FanoutReport {
    /// The human-readable table.
    pub fn text(&self) -> String {
        let mut out = format!(
            "{} against {}: {} clients, {} of {} writes x {} rows at {}/s\n\
             written: {} rows in {:.2} s = {:.0} rows/s; first client received {:.0} rows/s\n\
             received: {} of {} client-writes ({}), {} resets, {} errors\n",
            self.scenario,
            self.target,
            self.params.clients,
            self.writes_done,
            self.params.writes,
            self.params.rows_per_write,
            self.params.writes_per_sec,
            self.rows_written,
            self.write_secs,
            self.rows_written_per_sec,
            self.rows_received_per_sec_first_client,
            self.client_writes_received,
            self.client_writes_expected,
            if self.complete {
                "complete"
            } else {
                "INCOMPLETE"
            },
            self.resets,
            self.error_count,
        );
        out.push_str(&Summary::header());
        out.push('\n');
        for (label, summary) in [
            ("every client", &self.latency_every_client),
            ("mean client", &self.latency_mean_client),
            ("last client", &self.latency_last_client),
            ("pg commit", &self.commit),
            ("mean - commit", &self.after_commit_mean_client),
            ("last - commit", &self.after_commit_last_client),
        ] {
            out.push_str(&summary.row(label));
            out.push('\n');
        }
        for error in &self.errors {
            out.push_str(&format!("error: {error}\n"));
        }
        out
    }
}
