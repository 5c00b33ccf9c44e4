//! Admission control (`ELECTRIC_MAX_CONCURRENT_REQUESTS`, §2.3): at most N shape requests in
//! flight per node without a handle ("initial": they may start snapshots) and M with one
//! ("existing": catch-up reads and live requests). One node-wide atomic per kind: a request
//! costs one increment and one decrement, no lock.
//!
//! Past the existing limit a request gets upstream's 503 at once, before any work. Past the
//! initial limit, unlike upstream, it first **queues** (FIFO per core, at most
//! [`QUEUE_PER_LIMIT`] × the limit and at least [`QUEUE_MIN`] across the cores, for at most
//! [`QUEUE_WAIT`]) and gets the
//! 503 only if no slot frees meanwhile: new shapes share snapshots (`snapshot_batch`), so an
//! initial request holds its slot briefly, and a storm of thousands of new shapes is served in
//! about a second where 503s with `retry-after` (6–10 s) would spread it over tens of seconds.
//! A pump task per core hands freed slots to the queue's head, checking every millisecond
//! while the queue is not empty (slots free on every core).
//!
//! Differences from upstream, on purpose: a request that names a handle counts as existing even
//! if the handle is unknown (upstream looks it up; such requests end in a 409 at once), and the
//! permit is held until the handler returns, so an SSE stream holds it for its head only (its
//! producer is accounted in `ampere_live_connections`).

use super::core::Core;
use crate::http::Response;
use crate::metrics::AdmissionKind;
use protocol::query_string::QueryParams;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// Initial requests that may queue, as a multiple of the initial limit, and at least
/// [`QUEUE_MIN`] (split over the cores).
pub const QUEUE_PER_LIMIT: u64 = 10;
pub const QUEUE_MIN: u64 = 10_000;
/// Longest an initial request queues before its 503.
pub const QUEUE_WAIT: Duration = Duration::from_secs(10);
/// How often the pump looks for freed slots while requests queue.
const PUMP_EVERY: Duration = Duration::from_millis(1);

/// The initial requests queued on one core, oldest first: each is told over its channel that
/// a slot was counted for it.
#[derive(Default)]
pub struct Queue {
    waiting: RefCell<VecDeque<flume::Sender<()>>>,
    pumping: Cell<bool>,
}

/// Holds one admission slot until dropped.
pub struct Permit<'a>(&'a AtomicI64);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The kind of a shape request, from its decoded query parameters: a `handle` key, whatever
/// its value, makes it existing. An undecodable query (`None`, answered 400 once admitted)
/// names no handle.
pub fn kind_of(params: Option<&QueryParams<'_>>) -> AdmissionKind {
    if params.is_some_and(|params| params.contains("handle")) {
        AdmissionKind::Existing
    } else {
        AdmissionKind::Initial
    }
}

/// Counts a slot if one is free.
fn take(gauge: &AtomicI64, limit: u64) -> bool {
    let now = gauge.fetch_add(1, Ordering::AcqRel) + 1;
    if u64::try_from(now).unwrap_or(0) <= limit {
        return true;
    }
    gauge.fetch_sub(1, Ordering::AcqRel);
    false
}

/// Takes a slot; an initial request past the limit queues for one (see the module doc);
/// otherwise upstream's 503.
pub async fn acquire(core: &Rc<Core>, kind: AdmissionKind) -> Result<Permit<'_>, Response> {
    let metrics = &core.shared.metrics;
    let limits = core.shared.config.max_concurrent_requests;
    let (gauge, limit, name) = match kind {
        AdmissionKind::Initial => (&metrics.admitted_initial, limits.initial, "initial"),
        AdmissionKind::Existing => (&metrics.admitted_existing, limits.existing, "existing"),
    };
    if take(gauge, limit) {
        return Ok(Permit(gauge));
    }
    let queue = &core.admission;
    let room = (QUEUE_PER_LIMIT * limit)
        .max(QUEUE_MIN)
        .div_ceil(core.shared.cores as u64);
    if kind == AdmissionKind::Initial && (queue.waiting.borrow().len() as u64) < room {
        let (tx, rx) = flume::bounded(1);
        queue.waiting.borrow_mut().push_back(tx);
        if !queue.pumping.replace(true) {
            let core = core.clone();
            monoio::spawn(async move { pump(&core, limit).await });
        }
        let counted = match monoio::time::timeout(QUEUE_WAIT, rx.recv_async()).await {
            Ok(r) => r.is_ok(),
            // The pump may have counted a slot just as the wait ended (same thread: no race
            // past this check).
            Err(_) => rx.try_recv().is_ok(),
        };
        if counted {
            return Ok(Permit(gauge));
        }
    }
    refuse(core, kind, name, limit)
}

/// Hands freed initial slots to the core's queue, oldest first, until it is empty. A waiter
/// gone (timed out) gives its slot back.
async fn pump(core: &Core, limit: u64) {
    let gauge = &core.shared.metrics.admitted_initial;
    let queue = &core.admission;
    loop {
        loop {
            let front_gone = match queue.waiting.borrow().front() {
                None => break,
                Some(tx) => tx.is_disconnected(),
            };
            if front_gone {
                queue.waiting.borrow_mut().pop_front();
                continue;
            }
            if !take(gauge, limit) {
                break;
            }
            let tx = queue
                .waiting
                .borrow_mut()
                .pop_front()
                .expect("front checked");
            if tx.send(()).is_err() {
                gauge.fetch_sub(1, Ordering::AcqRel);
            }
        }
        if queue.waiting.borrow().is_empty() {
            queue.pumping.set(false);
            return;
        }
        monoio::time::sleep(PUMP_EVERY).await;
    }
}

/// Upstream's 503 for a request past the limit.
fn refuse(
    core: &Core,
    kind: AdmissionKind,
    name: &str,
    limit: u64,
) -> Result<Permit<'static>, Response> {
    core.shared.metrics.core(core.id).record_rejection(kind);
    // Jittered, so refused clients do not all come back at once (upstream: 5 + 1..=5 s).
    let retry_after = 5 + 1 + core.random() % 5;
    let body = format!(
        "{{\"code\":\"concurrent_request_limit_exceeded\",\"message\":\"Concurrent {name} request limit exceeded (limit: {limit}), please retry\"}}"
    );
    Err(Response::json(503, body)
        .with_header("retry-after", retry_after.to_string())
        .with_header("cache-control", "no-store".to_string())
        .with_header("surrogate-control", "no-store".to_string())
        .with_header("electric-internal-known-error", "true".to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_from_query() {
        let kind = |query: &str| {
            let params = protocol::query_string::parse_query_string(query);
            kind_of(params.as_ref().ok())
        };
        assert_eq!(kind("table=t&offset=-1"), AdmissionKind::Initial);
        assert_eq!(
            kind("table=t&handle=1-2&offset=0_0"),
            AdmissionKind::Existing
        );
        assert_eq!(kind("handle=&table=t"), AdmissionKind::Existing);
        assert_eq!(kind("table=t&xhandle=1"), AdmissionKind::Initial);
        assert_eq!(kind("h%61ndle=1-2&table=t"), AdmissionKind::Existing);
        assert_eq!(kind("handle=1-2&table=%zz"), AdmissionKind::Initial);
    }
}
