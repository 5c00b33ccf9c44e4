//! Held live long-polls wait on the core that holds their connection, and every long-poll woken
//! at the same offset of a shape gets the same rendered response.
//!
//! Two roles, two types:
//! - [`Waits`] (every core, for the connections it holds): live GET requests of a known handle
//!   are grouped by `(handle, offset)`. The first request of a group sends one `Watch` to the
//!   shape's owner; the rest only wait on the group's event. No request is forwarded, and a group
//!   of thousands costs the owner one message.
//! - [`Watchers`] (the owner, for the shapes it owns): which cores wait at which offset of which
//!   shape. When a transaction grows the shape, the owner renders the answer for each waiting
//!   offset once (body parts and one pre-rendered block of headers) and sends it, as an
//!   immutable [`Batch`], to each waiting core. Only the cursor, date and request id are
//!   written per response.
//!
//! Anything a batch cannot answer (an unknown or replaced handle, an offset past the log, a
//! snapshot still running, a shape removed while requests wait) is an `AskOwner` batch: the
//! waiting requests are then forwarded to the owner and served as before (`serve::serve_shape`),
//! which gives the 409s, out-of-bounds waits and snapshot waits their exact behaviour.
//!
//! A watch is not cancelled when its requests time out: the next change answers it and the
//! waiting core drops the batch. Watches per shape are bounded ([`MAX_WATCHED_OFFSETS`]).

use super::core::Core;
use super::{responses, router, CoreMsg, ShapeCall};
use crate::event::Event;
use crate::fast_map::FastMap;
use crate::http::{Body, Part, Response};
use crate::shapes::def::ShapeDef;
use crate::shapes::shape::Shape;
use bytes::Bytes;
use protocol::headers as h;
use protocol::offset::{LogOffset, OffsetParam};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

/// Distinct `(core, offset)` watches one shape keeps; past it requests go to the owner.
const MAX_WATCHED_OFFSETS: usize = 64;

/// The owner's answer for every live request of `handle` at `after`.
pub struct Batch {
    pub handle: String,
    pub after: LogOffset,
    pub answer: Answer,
}

pub enum Answer {
    Ready(Rendered),
    /// The requests must ask the owner (see the module comment).
    AskOwner,
}

/// A live 200 response, without the per-response headers.
pub struct Rendered {
    /// `name: value\r\n` lines: content type, handle, offset, up-to-date, has-data,
    /// cache-control, etag.
    pub head: Bytes,
    pub body: Arc<[Part]>,
}

/// Whether a request is held through [`hold`]: a live long-poll GET of a known handle, past
/// the snapshot's first chunk. SSE streams, POSTs and revalidations keep the owner path.
pub fn eligible(call: &ShapeCall) -> bool {
    let q = &call.query;
    q.live
        && !q.live_sse
        && !call.post
        && call.if_none_match.is_empty()
        && q.handle.is_some()
        && matches!(q.offset, OffsetParam::At(_))
}

// ---------------------------------------------------------------------------------------------
// Connection side.

/// One group of held requests: same handle, same offset (and same definition).
struct Group {
    def: Arc<ShapeDef>,
    event: Event,
    batch: RefCell<Option<Arc<Batch>>>,
}

/// Held live requests of this core's connections, by `(handle, offset)`.
#[derive(Default)]
pub struct Waits {
    groups: RefCell<FastMap<(String, LogOffset), Rc<Group>>>,
}

impl Waits {
    /// Number of groups (distinct handle and offset) waiting.
    pub fn groups(&self) -> usize {
        self.groups.borrow().len()
    }
}

/// Leaves the group on every exit (answered, timed out, connection gone): the last request of
/// an unanswered group removes it.
struct Member<'a> {
    waits: &'a Waits,
    key: &'a (String, LogOffset),
    group: Rc<Group>,
}

impl Drop for Member<'_> {
    fn drop(&mut self) {
        let mut groups = self.waits.groups.borrow_mut();
        // Held by the map and this member only: nobody else waits.
        let last = Rc::strong_count(&self.group) == 2;
        if last
            && groups
                .get(self.key)
                .is_some_and(|g| Rc::ptr_eq(g, &self.group))
        {
            groups.remove(self.key);
        }
    }
}

/// Serves an [`eligible`] request: waits here for the owner's batch, then answers from it.
pub async fn hold(core: &Rc<Core>, call: ShapeCall, owner: usize) -> Response {
    let OffsetParam::At(after) = call.query.offset else {
        unreachable!("eligible requests name an offset");
    };
    if core.timers.ended() {
        // Do not start a wait that would end at once (see `responses::shutting_down`).
        return responses::shutting_down();
    }
    let key = (call.query.handle.clone().unwrap_or_default(), after);
    let joined = {
        let mut groups = core.waits.groups.borrow_mut();
        match groups.get(&key) {
            Some(g) if ShapeDef::same(&g.def, &call.def) => Some((g.clone(), false)),
            // A handle named with another definition: the owner answers it (409).
            Some(_) => None,
            None => {
                let g = Rc::new(Group {
                    def: call.def.clone(),
                    event: Event::new(),
                    batch: RefCell::new(None),
                });
                groups.insert(key.clone(), g.clone());
                Some((g, true))
            }
        }
    };
    let Some((group, first)) = joined else {
        return Box::pin(ask(core, call, owner)).await;
    };
    let member = Member {
        waits: &core.waits,
        key: &key,
        group,
    };
    let listener = member.group.event.listen();
    if first {
        watch(core, owner, &call.def, key.0.clone(), after);
    }
    let deadline = Instant::now() + core.shared.config.long_poll_timeout;
    let _held = crate::metrics::HeldGuard::new(&core.stats().held_long_polls);
    let answered = core.timers.wait_until(listener, deadline).await;
    let batch = member.group.batch.borrow().clone();
    drop(member);
    match batch {
        Some(b) => match &b.answer {
            Answer::Ready(r) => respond(core, &call, r),
            Answer::AskOwner => Box::pin(ask(core, call, owner)).await,
        },
        None if answered => Box::pin(ask(core, call, owner)).await,
        // Nothing changed within the long-poll: up to date at the request's own offset.
        None => {
            // Another core's shape: a capped one (subquery) claims only the request's offset.
            let served = call.def.subquery.is_some().then_some(0);
            super::serve::no_changes(core, &call, &key.0, after, served)
        }
    }
}

/// The response for one request from a shared render: only the cursor is its own.
fn respond(core: &Core, call: &ShapeCall, r: &Rendered) -> Response {
    let mut resp = Response::new_bare(200).with_body(Body::Shared(r.body.clone()));
    resp.head_block = Some(r.head.clone());
    resp.headers.push((
        h::ELECTRIC_CURSOR.into(),
        super::serve::next_cursor(core, &call.query)
            .to_string()
            .into(),
    ));
    resp
}

async fn ask(core: &Rc<Core>, call: ShapeCall, owner: usize) -> Response {
    if owner == core.id {
        return Box::pin(super::serve::serve_shape(core, call)).await;
    }
    router::ask_owner(core, owner, |reply| CoreMsg::Shape {
        call: Box::new(call),
        reply,
    })
    .await
}

fn watch(core: &Rc<Core>, owner: usize, def: &Arc<ShapeDef>, handle: String, after: LogOffset) {
    if owner == core.id {
        on_watch(core, def, handle, after, core.id);
    } else {
        send(
            core,
            owner,
            CoreMsg::Watch {
                def: def.clone(),
                handle,
                after,
                from: core.id,
            },
        );
    }
}

/// A batch from the owner: wakes its group (a batch nobody waits for any more is dropped).
pub fn on_batch(core: &Core, batch: Arc<Batch>) {
    let group = core
        .waits
        .groups
        .borrow_mut()
        .remove(&(batch.handle.clone(), batch.after));
    if let Some(g) = group {
        *g.batch.borrow_mut() = Some(batch);
        g.event.notify();
    }
}

// ---------------------------------------------------------------------------------------------
// Owner side.

/// Watches of the shapes this core owns: handle → (waiting core, offset).
#[derive(Default)]
pub struct Watchers {
    by_handle: RefCell<FastMap<String, Vec<(usize, LogOffset)>>>,
}

impl Watchers {
    pub fn is_empty(&self) -> bool {
        self.by_handle.borrow().is_empty()
    }

    /// Whether some core waits for this shape.
    pub fn contains(&self, handle: &str) -> bool {
        self.by_handle.borrow().contains_key(handle)
    }
}

/// A core waits at `after` of `handle`: answer now if the log is past it, else remember it.
pub fn on_watch(core: &Core, def: &Arc<ShapeDef>, handle: String, after: LogOffset, from: usize) {
    let answer = match core.shape(&handle) {
        // Unknown here (removed, or stored and not loaded yet), or the handle of another
        // definition: the owner path answers (409, or loads the stored shape).
        None => Some(Answer::AskOwner),
        Some(shape) if !ShapeDef::same(&shape.borrow().def, def) => Some(Answer::AskOwner),
        Some(shape) => {
            let mut s = shape.borrow_mut();
            s.last_used = Instant::now();
            let last = s.log.last_offset();
            if s.invalidated || s.snapshot_error.is_some() || !s.log.snapshot_done() {
                Some(Answer::AskOwner)
            } else if after < last {
                Some(render(core, &s, after))
            } else if after > last {
                // Out of bounds: the owner path waits half a long-poll, then answers 400.
                Some(Answer::AskOwner)
            } else {
                let mut watchers = core.watchers.by_handle.borrow_mut();
                let list = watchers.entry(handle.clone()).or_default();
                if list.contains(&(from, after)) {
                    None
                } else if list.len() >= MAX_WATCHED_OFFSETS {
                    Some(Answer::AskOwner)
                } else {
                    list.push((from, after));
                    None
                }
            }
        }
    };
    if let Some(answer) = answer {
        deliver(
            core,
            from,
            Arc::new(Batch {
                handle,
                after,
                answer,
            }),
        );
    }
}

/// After a transaction grew `s`: every watch of it is answered, one render per offset.
pub fn shape_changed(core: &Core, s: &Shape) {
    let Some(list) = core.watchers.by_handle.borrow_mut().remove(&s.handle) else {
        return;
    };
    answer_all(core, &s.handle, list, |after| render(core, s, after));
}

/// The shape is gone (removed, invalidated): its watchers ask the owner, which answers 409.
pub fn shape_removed(core: &Core, handle: &str) {
    let Some(list) = core.watchers.by_handle.borrow_mut().remove(handle) else {
        return;
    };
    answer_all(core, handle, list, |_| Answer::AskOwner);
}

fn answer_all(
    core: &Core,
    handle: &str,
    mut list: Vec<(usize, LogOffset)>,
    mut answer: impl FnMut(LogOffset) -> Answer,
) {
    list.sort_unstable_by_key(|&(from, after)| (after, from));
    let mut current: Option<Arc<Batch>> = None;
    for (from, after) in list {
        let batch = match &current {
            Some(b) if b.after == after => b.clone(),
            _ => {
                let b = Arc::new(Batch {
                    handle: handle.to_string(),
                    after,
                    answer: answer(after),
                });
                current = Some(b.clone());
                b
            }
        };
        deliver(core, from, batch);
    }
}

/// The answer to a live GET at `after` (which is before the log end), as `serve` gives it.
fn render(core: &Core, s: &Shape, after: LogOffset) -> Answer {
    let last = s.log.last_offset();
    let slice = match s.log.read(Some(after)) {
        Ok(Some(slice)) if slice.entries > 0 => slice,
        // A snapshot chunk still being written, or a chunk that cannot be read: the owner
        // path waits or drops the shape.
        _ => return Answer::AskOwner,
    };
    let chunk_end = slice.chunk_end;
    let up_to_date = chunk_end >= last;
    let global_lsn = if chunk_end.tx > 0 {
        chunk_end.tx
    } else {
        super::serve::claimable_lsn(core, s.log.served_lsn()).max(chunk_end.tx)
    };
    let tail = up_to_date.then(|| Bytes::from(protocol::message::up_to_date(global_lsn)));
    let body: Arc<[Part]> = slice.into_body(tail).into();
    let end = chunk_end.to_string();
    let cfg = &core.shared.config;
    let cache_control = h::cache_control(&h::CacheCase {
        method_is_get: true,
        status: 200,
        has_handle: true,
        offset: Some(OffsetParam::At(after)),
        live: true,
        live_sse: false,
        max_age_secs: cfg.cache_max_age,
        stale_age_secs: cfg.cache_stale_age,
        sse_timeout_ms: cfg.sse_timeout.as_millis() as u64,
        send_cache_headers: true,
    });
    let mut head = Vec::with_capacity(256);
    let mut line = |name: &str, value: &str| super::head_cache::line(&mut head, name, value);
    line(h::CONTENT_TYPE, responses::JSON);
    line(h::ELECTRIC_HANDLE, &s.handle);
    line(h::ELECTRIC_OFFSET, &end);
    if up_to_date {
        line(h::ELECTRIC_UP_TO_DATE, "");
    }
    line(h::ELECTRIC_HAS_DATA, "true");
    if let Some(cc) = &cache_control {
        line(h::CACHE_CONTROL, cc);
    }
    line(h::ETAG, &h::etag(&s.handle, &after.to_string(), &end, None));
    Answer::Ready(Rendered {
        head: Bytes::from(head),
        body,
    })
}

fn deliver(core: &Core, to: usize, batch: Arc<Batch>) {
    if to == core.id {
        on_batch(core, batch);
    } else {
        send(core, to, CoreMsg::Batch(batch));
    }
}

/// Sends without waiting (callers run inside a transaction's processing), in order: when the
/// inbox is full the message joins this core's queue for that inbox, which one task drains,
/// and every later message to that inbox queues behind it until the queue is empty. Order
/// matters: a view's introduction must not arrive after its shape's `Forget` (`views`).
pub(super) fn send(core: &Core, to: usize, msg: CoreMsg) {
    let overflow = &core.overflow[to];
    if overflow.draining.get() {
        overflow.queue.borrow_mut().push_back(msg);
        return;
    }
    match core.shared.inboxes[to].try_send(msg) {
        Ok(()) => {}
        Err(flume::TrySendError::Full(msg)) => {
            overflow.queue.borrow_mut().push_back(msg);
            overflow.draining.set(true);
            let tx = core.shared.inboxes[to].clone();
            let overflow = overflow.clone();
            monoio::spawn(async move {
                loop {
                    let next = overflow.queue.borrow_mut().pop_front();
                    let Some(msg) = next else { break };
                    if tx.send_async(msg).await.is_err() {
                        overflow.queue.borrow_mut().clear();
                        break;
                    }
                }
                overflow.draining.set(false);
            });
        }
        Err(flume::TrySendError::Disconnected(_)) => {}
    }
}

/// Messages for one other core's inbox that waited for room (see [`send`]).
#[derive(Default)]
pub struct Overflow {
    queue: RefCell<std::collections::VecDeque<CoreMsg>>,
    draining: std::cell::Cell<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Messages to a full inbox wait in order, and later ones queue behind them instead of
    /// overtaking when room appears.
    #[test]
    fn sends_to_a_full_inbox_keep_their_order() {
        let (tx0, _rx0) = flume::bounded(1);
        let (tx1, rx1) = flume::bounded(1);
        let core = Core::for_tests(vec![tx0, tx1]);
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("runtime")
            .block_on(async move {
                let touch = |h: &str| CoreMsg::Touch(h.to_string());
                send(&core, 1, touch("a"));
                send(&core, 1, touch("b"));
                send(&core, 1, touch("c"));
                let mut got = Vec::new();
                // Take one, let the drain task refill, then send more: they must not overtake.
                if let Ok(CoreMsg::Touch(h)) = rx1.recv_async().await {
                    got.push(h);
                }
                send(&core, 1, touch("d"));
                for _ in 0..3 {
                    if let Ok(CoreMsg::Touch(h)) = rx1.recv_async().await {
                        got.push(h);
                    }
                }
                assert_eq!(got, ["a", "b", "c", "d"]);
                assert!(!core.overflow[1].draining.get(), "the queue drained");
            });
    }
}
