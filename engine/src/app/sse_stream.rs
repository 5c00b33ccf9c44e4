//! A streaming SSE live response (§5.7, §6.5), used for every live SSE request (`serve_from`
//! says why also when a batch is ready): the response head goes out at once and a producer task
//! on the shape's owner core sends each batch after the request's offset as events (ending with
//! an up-to-date event when the batch reaches the log end), a `: keep-alive` comment after
//! `sse_keepalive` of silence, and ends the stream after `sse_timeout`, or when the shape is
//! invalidated (the client's next request gets the 409).
//!
//! Cost per subscriber: one producer future (waiting on the core's coarse timers, like a
//! long-poll) and a channel of at most `QUEUE` batches. Every subscriber at the same offset
//! shares one framed buffer (`Shape::sse_batch`), so a write to a shape with many subscribers is
//! framed once. A slow client fills its queue and then stalls only its own producer; the
//! connection's write timeout ends a client that stops reading.

use super::core::{Core, ShapeRef};
use super::sse;
use crate::shapes::shape::FramedBatch;
use bytes::Bytes;
use protocol::offset::LogOffset;
use std::rc::Rc;
use std::time::Instant;

/// Batches queued for one connection before the producer waits for it.
const QUEUE: usize = 4;

/// Starts streaming the shape's entries after `after`; the stream ends `sse_timeout` after
/// `started`.
pub fn start(
    core: &Rc<Core>,
    shape: ShapeRef,
    after: LogOffset,
    started: Instant,
) -> flume::Receiver<Vec<Bytes>> {
    let (tx, rx) = flume::bounded(QUEUE);
    // Boxed so the spawned task's size does not depend on the future's layout details.
    monoio::spawn(Box::pin(produce(core.clone(), shape, after, started, tx)));
    rx
}

/// What the producer found in the log.
enum Next {
    Batch(Bytes),
    Nothing,
    Ended,
    /// A chunk on disk is not what was written: the shape must go (its clients get 409).
    Corrupt(String),
}

async fn produce(
    core: Rc<Core>,
    shape: ShapeRef,
    mut after: LogOffset,
    started: Instant,
    tx: flume::Sender<Vec<Bytes>>,
) {
    let _held = crate::metrics::HeldGuard::new(&core.stats().held_sse);
    let cfg = &core.shared.config;
    let end = started + cfg.sse_timeout;
    let mut quiet_until = Instant::now() + cfg.sse_keepalive;
    loop {
        let (listener, next) = {
            let mut s = shape.borrow_mut();
            let listener = s.changed.listen();
            let next = next_batch(&mut s, &mut after);
            (listener, next)
        };
        let send = match next {
            Next::Ended => return,
            Next::Corrupt(why) => {
                let handle = shape.borrow().handle.clone();
                tracing::error!("shape {handle}: {why}; dropping the shape");
                core.remove(&handle);
                return;
            }
            Next::Batch(bytes) => bytes,
            Next::Nothing => {
                let now = Instant::now();
                if now >= end || core.timers.ended() {
                    return;
                }
                if now < quiet_until {
                    // Woken by a change, or at the keep-alive or end time: look again.
                    core.timers.wait_until(listener, quiet_until.min(end)).await;
                    continue;
                }
                Bytes::from_static(sse::KEEP_ALIVE)
            }
        };
        if tx.send_async(vec![send]).await.is_err() {
            // The client is gone.
            return;
        }
        quiet_until = Instant::now() + cfg.sse_keepalive;
    }
}

/// The next batch after `after` (moving `after` past it), framed once per shape and offset.
fn next_batch(s: &mut crate::shapes::shape::Shape, after: &mut LogOffset) -> Next {
    if s.invalidated || s.snapshot_error.is_some() {
        return Next::Ended;
    }
    let last = s.log.last_offset();
    if *after >= last {
        return Next::Nothing;
    }
    if let Some(b) = &s.sse_batch {
        if b.after == *after {
            // The batch a previous subscriber at this offset got. If the log has grown since,
            // its up-to-date event is merely early (as a long-poll answered then would be); the
            // next batch follows at once.
            *after = b.end;
            return Next::Batch(b.bytes.clone());
        }
    }
    let slice = match s.log.read(Some(*after)) {
        Ok(Some(slice)) => slice,
        Ok(None) => return Next::Nothing,
        Err(e) => return Next::Corrupt(e.to_string()),
    };
    if slice.entries == 0 {
        return Next::Nothing;
    }
    // SSE frames every entry as its own event, so the bytes are needed in memory (a chunk on
    // disk is read: only a live SSE request inside the snapshot part gets here with one).
    let parts: Result<Vec<Bytes>, _> = slice.parts.iter().map(|p| p.to_bytes()).collect();
    let parts = match parts {
        Ok(parts) => parts,
        Err(e) => return Next::Corrupt(format!("read a snapshot chunk: {e}")),
    };
    let up_to_date = slice.chunk_end >= last;
    let utd = up_to_date.then(|| protocol::message::up_to_date(slice.chunk_end.sse_resume_lsn()));
    let bytes = sse::frame(&parts, utd);
    s.sse_batch = Some(FramedBatch {
        after: *after,
        end: slice.chunk_end,
        bytes: bytes.clone(),
    });
    *after = slice.chunk_end;
    Next::Batch(bytes)
}
