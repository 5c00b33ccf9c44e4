//! The report of a fan-out run: latency for every/mean/last subscription, the Postgres commit
//! share, throughput, and latency over time.

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::runner::lock;
use crate::scenario::fanout::{FanoutParams, Shared};
use crate::stats::{new_histogram, record, Summary};

/// Most latency-over-time buckets; the bucket width grows to stay within this.
const MAX_BUCKETS: usize = 600;
/// Most writes listed one by one in `per_write`.
const MAX_PER_WRITE: u64 = 10_000;

/// The result of a fan-out run.
#[derive(Debug, Serialize)]
pub struct FanoutReport {
    pub scenario: String,
    pub target: String,
    pub params: FanoutParams,
    /// Live subscriptions (one shape client each).
    pub clients: usize,
    /// Shapes created without a live client.
    pub passive_shapes: usize,
    pub passive_shapes_created: usize,
    /// From the run's start until every shape was created and every client up-to-date.
    pub setup_secs: f64,
    pub writes_done: u64,
    pub rows_written: u64,
    pub write_secs: f64,
    pub rows_written_per_sec: f64,
    /// Σ over writes made of the subscriptions that should receive them.
    pub client_writes_expected: u64,
    pub client_writes_received: u64,
    /// client_writes_received per second of the write span (deliveries/s).
    pub deliveries_per_sec: f64,
    /// Every subscription received every write it should, all planned writes were made and
    /// every passive shape was created.
    pub complete: bool,
    /// Rows received by the first subscription per second, from the first write's send to the
    /// last write's arrival there.
    pub rows_received_per_sec_first_client: f64,
    /// Response body bytes received by all subscriptions.
    pub body_bytes: u64,
    pub resets: u64,
    pub error_count: u64,
    pub errors: Vec<String>,
    /// Every (subscription, write) latency.
    pub latency_every_client: Summary,
    /// Per write, the mean over subscriptions that received it.
    pub latency_mean_client: Summary,
    /// Per write, the slowest subscription (only writes every expecting subscription received).
    pub latency_last_client: Summary,
    /// The writer's send → commit acknowledged (Postgres's share of the latency).
    pub commit: Summary,
    /// Mean client, counted from the commit acknowledgement instead of the send (server only).
    pub after_commit_mean_client: Summary,
    /// Last client, counted from the commit acknowledgement.
    pub after_commit_last_client: Summary,
    /// Every-client latency by write send time.
    pub timeline: Vec<Interval>,
    /// Per write (up to 10,000 writes; else empty): the subscriptions expecting it, those
    /// that received it, their mean and max latency — what several loadgen processes of one
    /// run (`--followers`) need to combine their last and mean client.
    pub per_write: Vec<PerWrite>,
    /// The every-client histogram as `[latency ms (bucket's upper end), count]` pairs, to
    /// combine the percentiles of several processes.
    pub latency_every_client_histogram: Vec<(f64, u64)>,
}

/// One write as the subscriptions of this process saw it.
#[derive(Debug, Serialize)]
pub struct PerWrite {
    pub write_id: u64,
    pub expecting: u64,
    pub received: u64,
    pub mean_ms: f64,
    pub max_ms: f64,
    /// The writer's send → commit acknowledged (0 in a follower's report: it did not write).
    pub commit_ms: f64,
}

/// One latency-over-time bucket.
#[derive(Debug, Serialize)]
pub struct Interval {
    /// Bucket start, seconds after the first write's send.
    pub start_secs: f64,
    pub writes: u64,
    pub deliveries: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

pub(crate) fn build(shared: &Shared, scenario: &str) -> FanoutReport {
    let plan = &shared.plan;
    let params = &plan.params;
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
    let mut timeline = Timeline::new(params, writer.first_sent_ns);
    let mut received = 0u64;
    let mut expected = 0u64;
    let mut per_write = Vec::new();
    // Subscriptions that should see a write of each target, counting those that never reported
    // (they failed to start) as expecting too.
    let expecting_per_target: Vec<usize> = (0..plan.targets.len())
        .map(|t| {
            plan.subscriptions
                .iter()
                .filter(|s| s.target.is_none_or(|own| own == t))
                .count()
        })
        .collect();
    for write in 1..=writes_done {
        let index = usize::try_from(write).unwrap_or(usize::MAX);
        let expecting: Vec<_> = clients
            .iter()
            .filter(|c| plan.expects(c.sub, write))
            .collect();
        let latencies: Vec<u64> = expecting
            .iter()
            .filter_map(|c| c.latency_ns.get(index).copied().filter(|&ns| ns > 0))
            .collect();
        let all_expecting = expecting_per_target[plan.target_of(write)];
        expected += all_expecting as u64;
        received += latencies.len() as u64;
        // A client can see the row before the writer sees its commit acknowledged: clamp at 0.
        let commit_ns = writer.commit_ns.get(index).copied().unwrap_or(0);
        let sent_ns = writer.sent_ns.get(index).copied().unwrap_or(0);
        record(&mut commit, commit_ns);
        timeline.write(sent_ns, &latencies);
        for &ns in &latencies {
            record(&mut every, ns);
        }
        if write <= MAX_PER_WRITE {
            let ms = |ns: u64| round3(ns as f64 / 1e6);
            per_write.push(PerWrite {
                write_id: write,
                expecting: all_expecting as u64,
                received: latencies.len() as u64,
                mean_ms: if latencies.is_empty() {
                    0.0
                } else {
                    round3(latencies.iter().sum::<u64>() as f64 / latencies.len() as f64 / 1e6)
                },
                max_ms: ms(latencies.iter().copied().max().unwrap_or(0)),
                commit_ms: ms(commit_ns),
            });
        }
        if !latencies.is_empty() {
            let mean_ns = latencies.iter().sum::<u64>() / latencies.len() as u64;
            record(&mut mean, mean_ns);
            record(&mut mean_after, mean_ns.saturating_sub(commit_ns));
        }
        if !latencies.is_empty() && latencies.len() == all_expecting {
            if let Some(&max) = latencies.iter().max() {
                record(&mut last, max);
                record(&mut last_after, max.saturating_sub(commit_ns));
            }
        }
    }
    let rows_written = writes_done * u64::from(params.rows_per_write);
    let write_secs = writer.finished_ns.saturating_sub(writer.first_sent_ns) as f64 / 1e9;
    let first_client_rate = clients.iter().find(|c| c.sub == 0).map_or(0.0, |c| {
        let secs = c.last_complete_ns.saturating_sub(writer.first_sent_ns) as f64 / 1e9;
        per_sec(c.rows_received as f64, secs)
    });
    let last_delivery_ns = clients
        .iter()
        .map(|c| c.last_complete_ns)
        .max()
        .unwrap_or(0);
    let delivery_secs = last_delivery_ns.saturating_sub(writer.first_sent_ns) as f64 / 1e9;
    let passive_created = shared.passive_ok.load(std::sync::atomic::Ordering::Acquire);
    let setup_done_ns = *lock(&shared.setup_done_ns);
    FanoutReport {
        scenario: scenario.to_owned(),
        target: shared.ctx.targets_label(),
        params: params.clone(),
        clients: plan.subscriptions.len(),
        passive_shapes: plan.passive_shapes.len(),
        passive_shapes_created: passive_created,
        setup_secs: round3(setup_done_ns.saturating_sub(shared.start_ns) as f64 / 1e9),
        writes_done,
        rows_written,
        write_secs: round3(write_secs),
        rows_written_per_sec: round3(per_sec(rows_written as f64, write_secs)),
        client_writes_expected: expected,
        client_writes_received: received,
        deliveries_per_sec: round3(per_sec(received as f64, delivery_secs)),
        complete: writes_done == params.writes
            && clients.len() == plan.subscriptions.len()
            && received == expected
            && passive_created == plan.passive_shapes.len(),
        rows_received_per_sec_first_client: round3(first_client_rate),
        body_bytes: clients.iter().map(|c| c.body_bytes).sum(),
        resets: clients.iter().map(|c| c.resets).sum(),
        error_count,
        errors,
        latency_every_client: Summary::of(&every),
        latency_mean_client: Summary::of(&mean),
        latency_last_client: Summary::of(&last),
        commit: Summary::of(&commit),
        after_commit_mean_client: Summary::of(&mean_after),
        after_commit_last_client: Summary::of(&last_after),
        timeline: timeline.finish(),
        per_write,
        latency_every_client_histogram: every
            .iter_recorded()
            .map(|v| {
                (
                    round3(v.value_iterated_to() as f64 / 1e6),
                    v.count_at_value(),
                )
            })
            .collect(),
    }
}

fn per_sec(count: f64, secs: f64) -> f64 {
    if secs > 0.0 {
        count / secs
    } else {
        0.0
    }
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// Latency histograms by write send time, in fixed-width buckets.
struct Timeline {
    first_sent_ns: u64,
    width_ns: u64,
    buckets: Vec<(u64, Histogram<u64>)>,
}

impl Timeline {
    fn new(params: &FanoutParams, first_sent_ns: u64) -> Self {
        let span_ns = params.write_span().as_nanos() as f64;
        let width_ns = (params.interval_secs * 1e9)
            .max(span_ns / MAX_BUCKETS as f64)
            .max(1e6) as u64;
        Self {
            first_sent_ns,
            width_ns,
            buckets: Vec::new(),
        }
    }

    fn write(&mut self, sent_ns: u64, latencies: &[u64]) {
        let offset = sent_ns.saturating_sub(self.first_sent_ns) / self.width_ns;
        // A slow writer can run past the planned span; late writes share the last bucket.
        let index = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(MAX_BUCKETS - 1);
        while self.buckets.len() <= index {
            // Two significant digits keep each bucket small (≈60 KB) while p99 stays within 1%.
            let histogram = Histogram::new_with_bounds(1_000, 600_000_000_000, 2)
                .expect("valid histogram bounds");
            self.buckets.push((0, histogram));
        }
        let (writes, histogram) = &mut self.buckets[index];
        *writes += 1;
        for &ns in latencies {
            record(histogram, ns);
        }
    }

    fn finish(self) -> Vec<Interval> {
        let width_secs = self.width_ns as f64 / 1e9;
        self.buckets
            .into_iter()
            .enumerate()
            .map(|(i, (writes, histogram))| {
                let summary = Summary::of(&histogram);
                Interval {
                    start_secs: round3(i as f64 * width_secs),
                    writes,
                    deliveries: summary.count,
                    p50_ms: summary.p50_ms,
                    p99_ms: summary.p99_ms,
                    max_ms: summary.max_ms,
                }
            })
            .collect()
    }
}

impl FanoutReport {
    /// The human-readable table; `with_timeline` adds latency over time.
    pub fn text(&self, with_timeline: bool) -> String {
        let mut out = format!(
            "{} against {}: {} clients, {} passive shapes ({} created, setup {:.2} s), \
             {} of {} writes x {} rows at {}/s\n\
             written: {} rows in {:.2} s = {:.0} rows/s; first client received {:.0} rows/s\n\
             received: {} of {} client-writes ({}), {:.0} deliveries/s, {} resets, {} errors\n",
            self.scenario,
            self.target,
            self.clients,
            self.passive_shapes,
            self.passive_shapes_created,
            self.setup_secs,
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
            self.deliveries_per_sec,
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
        if with_timeline {
            out.push_str(&format!(
                "{:>8} {:>7} {:>10} {:>10} {:>10} {:>10}\n",
                "t (s)", "writes", "delivered", "p50 ms", "p99 ms", "max ms"
            ));
            for interval in &self.timeline {
                out.push_str(&format!(
                    "{:>8.1} {:>7} {:>10} {:>10.2} {:>10.2} {:>10.2}\n",
                    interval.start_secs,
                    interval.writes,
                    interval.deliveries,
                    interval.p50_ms,
                    interval.p99_ms,
                    interval.max_ms
                ));
            }
        }
        for error in &self.errors {
            out.push_str(&format!("error: {error}\n"));
        }
        out
    }
}
