//! Serving a validated shape request on the core that owns the shape (§2.4–§2.5, §4, §6).

use super::core::{Core, ShapeRef};
use super::responses;
use super::ShapeCall;
use crate::http::{Body, Response};
use crate::shapes::log::Slice;
use bytes::Bytes;
use protocol::headers as h;
use protocol::offset::{LogOffset, OffsetParam};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Longest wait for the first snapshot chunk before answering 503.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(60);

/// What a wait ended with.
enum Woken {
    Changed,
    TimedOut,
}

/// Waits for the shape to change, until `until` (coarse per-core timers: see `Timers`).
async fn wait(core: &Core, listener: crate::event::Listener, until: Instant) -> Woken {
    if core.timers.wait_until(listener, until).await {
        Woken::Changed
    } else {
        Woken::TimedOut
    }
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Answers one shape request. The handle is resolved first (409 on mismatch), then the log is
/// read, waiting when the request is live and there is nothing new, or when the snapshot chunk
/// it needs is still being written.
pub async fn serve_shape(core: &Rc<Core>, call: ShapeCall) -> Response {
    if super::dormant::wake_for_def(core, call.def.hash)
        .await
        .is_err()
    {
        // Its stored shape could not be loaded (catalog lookup failed): creating a second
        // shape of the definition instead would split its clients.
        return responses::fixed(protocol::errors::database_unreachable());
    }
    let shape = match active_shape(core, &call.def, call.query.handle.as_deref()) {
        Ok(s) => s,
        Err(r) => return r,
    };
    // HEAD gets the same response; the HTTP layer drops the body and keeps content-length.
    serve_from(core, &call, &shape).await
}

/// The definition's active shape (created if needed, marked used), or the response for a
/// request that names another handle (409) or whose shape cannot be created (503).
pub(super) fn active_shape(
    core: &Rc<Core>,
    def: &std::sync::Arc<crate::shapes::def::ShapeDef>,
    requested: Option<&str>,
) -> Result<ShapeRef, Response> {
    let shape = core
        .get_or_create(def)
        .map_err(|_| responses::fixed(protocol::errors::shape_creation_failed()))?;
    let mut s = shape.borrow_mut();
    s.last_used = Instant::now();
    match requested {
        Some(h) if h != s.handle => Err(responses::must_refetch(Some(&s.handle))),
        _ => {
            drop(s);
            Ok(shape)
        }
    }
}

async fn serve_from(core: &Rc<Core>, call: &ShapeCall, shape: &ShapeRef) -> Response {
    let cfg = &core.shared.config;
    let q = &call.query;
    let started = Instant::now();
    let live_deadline = started + cfg.long_poll_timeout;
    let oob_deadline = started + cfg.long_poll_timeout / 2;
    let mut after: Option<LogOffset> = match q.offset {
        OffsetParam::BeforeAll => None,
        OffsetParam::At(o) => Some(o),
        OffsetParam::Now => {
            let (handle, last, served) = {
                let s = shape.borrow();
                (s.handle.clone(), s.log.last_offset(), s.log.served_lsn())
            };
            return no_changes(core, call, &handle, last, served);
        }
    };
    let mut checked_etag = false;
    loop {
        let (listener, handle, last, slice, served) = {
            let s = shape.borrow();
            if let Some(err) = &s.snapshot_error {
                return responses::snapshot_failed(err);
            }
            if s.invalidated {
                drop(s);
                return match core.get_or_create(&call.def) {
                    Ok(next) => responses::must_refetch(Some(&next.borrow().handle)),
                    Err(_) => responses::fixed(protocol::errors::shape_creation_failed()),
                };
            }
            let last = s.log.last_offset();
            if let Some(a) = after {
                if a.resumes_after(&last) {
                    // An SSE client resuming after its last up-to-date event.
                    after = Some(last);
                }
            }
            (
                s.changed.listen(),
                s.handle.clone(),
                last,
                s.log.read(after),
                s.log.served_lsn(),
            )
        };
        let slice = match slice {
            Ok(slice) => slice,
            Err(e) => {
                // Never serve bytes that are not what was written: drop the shape, and this
                // client (like every other) resyncs from a new one.
                tracing::error!("shape {handle}: {e}; dropping the shape");
                core.remove(&handle);
                return match core.get_or_create(&call.def) {
                    Ok(next) => responses::must_refetch(Some(&next.borrow().handle)),
                    Err(_) => responses::fixed(protocol::errors::shape_creation_failed()),
                };
            }
        };
        let Some(slice) = slice else {
            // The snapshot chunk this request needs is still being written.
            if let Woken::TimedOut = wait(core, listener, started + SNAPSHOT_WAIT).await {
                if core.timers.ended() {
                    return responses::shutting_down();
                }
                return responses::unavailable(
                    "{\"message\":\"Snapshot query took too long to return data\"}",
                    10,
                );
            }
            continue;
        };
        if let Some(a) = after {
            if a > last {
                // Out of bounds: a client briefly ahead of us (e.g. after a restart) gets half a
                // long-poll for the log to catch up.
                if let Woken::TimedOut = wait(core, listener, oob_deadline).await {
                    if core.timers.ended() {
                        // Shutting down: the client may well be right; let it retry.
                        return responses::shutting_down();
                    }
                    return responses::validation(&protocol::validation::offset_out_of_bounds());
                }
                continue;
            }
        }
        if !checked_etag && !call.if_none_match.is_empty() {
            checked_etag = true;
            let tag = chunk_etag(&handle, after, slice.chunk_end);
            let inm: Vec<&str> = call.if_none_match.iter().map(String::as_str).collect();
            if h::if_none_match_matches(&inm, tag.trim_matches('"')) {
                let mut r = Response::new(304);
                add_shape_headers(
                    core,
                    call,
                    &mut r,
                    &handle,
                    slice.chunk_end.to_string(),
                    None,
                    true,
                    false,
                );
                r.headers.push(("etag".into(), tag.into()));
                return r;
            }
        }
        if q.live && q.live_sse {
            // Always a stream, also when there is something to send at once: the client keeps
            // the head's `electric-offset` as its position but applies events only when their
            // batch's up-to-date arrives, so a head naming the end of a ready batch would let a
            // stream cut before that event (a refresh, a proxy timeout) resume after rows the
            // client never applied. And a response that ends at once counts as a "short" SSE
            // connection: after three in a row the client backs off and falls back to long
            // polling for good, which a shape written to every second would cause.
            if let Some(a) = after {
                if core.timers.ended() {
                    return responses::shutting_down();
                }
                return stream_response(core, call, shape, &handle, a, started);
            }
        }
        if q.live && slice.entries == 0 {
            if core.timers.ended() {
                return responses::shutting_down();
            }
            let _held = crate::metrics::HeldGuard::new(&core.stats().held_long_polls);
            match wait(core, listener, live_deadline).await {
                Woken::Changed => continue,
                Woken::TimedOut => return no_changes(core, call, &handle, last, served),
            }
        }
        let global_lsn = if q.live && slice.chunk_end.tx > 0 {
            slice.chunk_end.tx
        } else {
            claimable_lsn(core, served).max(slice.chunk_end.tx)
        };
        return log_response(core, call, &handle, after, last, slice, global_lsn);
    }
}

/// The 200 answering `call` with `slice` of a log whose end is `last` (up to date when the
/// slice reaches it, with `global_lsn` as its `global_last_seen_lsn`). The owner answers this
/// way (`serve_from`), and so does another core from its view of the shape (`views`).
pub(super) fn log_response(
    core: &Core,
    call: &ShapeCall,
    handle: &str,
    after: Option<LogOffset>,
    last: LogOffset,
    slice: Slice,
    global_lsn: u64,
) -> Response {
    let q = &call.query;
    let up_to_date = match after {
        None => false,
        Some(a) => slice.chunk_end >= last.max(a),
    };
    let chunk_end = slice.chunk_end;
    // `[` entries (`,` up-to-date) `]`: a whole closed chunk on disk is one file range.
    let tail = up_to_date.then(|| Bytes::from(protocol::message::up_to_date(global_lsn)));
    let parts = slice.into_body(tail);
    if !q.live && !call.post && !up_to_date {
        // A catch-up response: the same head for every client (`head_cache`).
        let head = core
            .heads
            .borrow_mut()
            .get_or_render(handle, after, chunk_end, || {
                catch_up_head(core, call, handle, after, chunk_end)
            });
        let mut r = Response::new_bare(200).with_body(Body::Shared(parts.into()));
        r.head_block = Some(head);
        // Not up to date: the chunk is closed and these bytes are final for this handle.
        r.reusable = true;
        return r;
    }
    let mut r = responses::json(200, Bytes::new()).with_body(Body::Mixed(parts));
    // The chunk end is formatted once, for `electric-offset` and the etag.
    let end = chunk_end.to_string();
    let tag = h::etag(handle, &offset_param_str(after), &end, None);
    add_shape_headers(
        core,
        call,
        &mut r,
        handle,
        end,
        Some(up_to_date),
        true,
        true,
    );
    r.headers.push(("etag".into(), tag.into()));
    r
}

/// A live SSE request: the head now (naming the request's offset), then events as they come
/// (`sse_stream`), starting with anything already after that offset.
fn stream_response(
    core: &Rc<Core>,
    call: &ShapeCall,
    shape: &ShapeRef,
    handle: &str,
    after: LogOffset,
    started: Instant,
) -> Response {
    let rx = super::sse_stream::start(core, shape.clone(), after, started);
    let mut r = Response::new(200)
        .with_header("content-type", h::CONTENT_TYPE_SSE.to_string())
        .with_body(Body::Stream(rx));
    add_shape_headers(
        core,
        call,
        &mut r,
        handle,
        after.to_string(),
        Some(false),
        true,
        true,
    );
    // Never revalidated into another response: a monotonic suffix, as for empty live responses.
    let tag = h::etag(
        handle,
        &after.to_string(),
        &after.to_string(),
        Some(core.monotonic_micros()),
    );
    r.headers.push(("etag".into(), tag.into()));
    r
}

/// The head of a non-live GET 200 that is not up to date: what `add_shape_headers` writes for
/// it, plus content type and etag, rendered once (see `head_cache`).
fn catch_up_head(
    core: &Core,
    call: &ShapeCall,
    handle: &str,
    after: Option<LogOffset>,
    chunk_end: LogOffset,
) -> Bytes {
    let cfg = &core.shared.config;
    let end = chunk_end.to_string();
    let mut head = Vec::with_capacity(256 + call.def.schema_header.len());
    let mut line = |name: &str, value: &str| super::head_cache::line(&mut head, name, value);
    line(h::CONTENT_TYPE, responses::JSON);
    line(h::ELECTRIC_HANDLE, handle);
    line(h::ELECTRIC_OFFSET, &end);
    line(h::ELECTRIC_SCHEMA, &call.def.schema_header);
    line(h::ELECTRIC_HAS_DATA, "true");
    let cache_control = h::cache_control(&h::CacheCase {
        method_is_get: true,
        status: 200,
        has_handle: true,
        offset: Some(call.query.offset),
        live: false,
        live_sse: false,
        max_age_secs: cfg.cache_max_age,
        stale_age_secs: cfg.cache_stale_age,
        sse_timeout_ms: cfg.sse_timeout.as_millis() as u64,
        send_cache_headers: true,
    });
    if let Some(cc) = &cache_control {
        line(h::CACHE_CONTROL, cc);
    }
    line(
        h::ETAG,
        &h::etag(handle, &offset_param_str(after), &end, None),
    );
    Bytes::from(head)
}

/// The `global_last_seen_lsn` an answer may claim: the core's last commit, but for a capped
/// log (a subquery shape, `shapes::log::Cap`) no more than it serves (`served`).
pub(super) fn claimable_lsn(core: &Core, served: Option<u64>) -> u64 {
    let last = core.last_lsn.get();
    served.map_or(last, |s| s.min(last))
}

/// `offset=now`, and a live request that timed out: just an up-to-date, `has-data: false`.
/// `served`: see [`claimable_lsn`].
pub(super) fn no_changes(
    core: &Rc<Core>,
    call: &ShapeCall,
    handle: &str,
    last: LogOffset,
    served: Option<u64>,
) -> Response {
    // SSE requests never get here: a live one always streams (`stream_response`).
    let global = claimable_lsn(core, served).max(last.tx);
    let body = format!(
        "[{}]",
        String::from_utf8_lossy(&protocol::message::up_to_date(global))
    );
    let mut r = responses::json(200, body);
    add_shape_headers(
        core,
        call,
        &mut r,
        handle,
        last.to_string(),
        Some(true),
        false,
        true,
    );
    let after = call.query.offset.log_offset();
    let req_offset = match call.query.offset {
        OffsetParam::Now => "now".to_string(),
        _ => offset_param_str(after),
    };
    // A monotonic suffix: an empty response must never be revalidated into a cached one.
    let tag = h::etag(
        handle,
        &req_offset,
        &last.to_string(),
        Some(core.monotonic_micros()),
    );
    r.headers.push(("etag".into(), tag.into()));
    r
}

/// The etag of a response serving `(after, chunk_end]` of the shape's log (§4.3).
fn chunk_etag(handle: &str, after: Option<LogOffset>, chunk_end: LogOffset) -> String {
    h::etag(
        handle,
        &offset_param_str(after),
        &chunk_end.to_string(),
        None,
    )
}

fn offset_param_str(after: Option<LogOffset>) -> String {
    match after {
        None => "-1".to_string(),
        Some(o) => o.to_string(),
    }
}

/// The `electric-cursor` of a live response (§4.4): the same request gets the same cursor, so
/// clients a cache collapsed stay on one URL (`protocol::cursor`).
pub(super) fn next_cursor(core: &Core, q: &protocol::request::ShapeQuery) -> u64 {
    let jump = protocol::cursor::cursor_jump(
        q.handle.as_deref(),
        &q.offset.to_string(),
        q.cursor.as_deref(),
    );
    protocol::cursor::next_cursor(
        unix_secs(),
        core.shared.config.long_poll_timeout.as_millis() as u64,
        q.cursor.as_deref(),
        jump,
    )
}

#[allow(clippy::too_many_arguments)]
fn add_shape_headers(
    core: &Core,
    call: &ShapeCall,
    r: &mut Response,
    handle: &str,
    offset: String,
    up_to_date: Option<bool>,
    has_data: bool,
    status_200: bool,
) {
    let cfg = &core.shared.config;
    let q = &call.query;
    let hs = &mut r.headers;
    hs.push((h::ELECTRIC_HANDLE.into(), handle.to_string().into()));
    hs.push((h::ELECTRIC_OFFSET.into(), offset.into()));
    if !q.live && status_200 {
        hs.push((
            h::ELECTRIC_SCHEMA.into(),
            call.def.schema_header.clone().into(),
        ));
    }
    if up_to_date == Some(true) {
        hs.push((h::ELECTRIC_UP_TO_DATE.into(), "".into()));
    }
    if q.live {
        hs.push((
            h::ELECTRIC_CURSOR.into(),
            next_cursor(core, q).to_string().into(),
        ));
    }
    hs.push((
        h::ELECTRIC_HAS_DATA.into(),
        if has_data { "true" } else { "false" }.into(),
    ));
    if let Some(cc) = h::cache_control(&h::CacheCase {
        method_is_get: !call.post,
        status: if status_200 { 200 } else { 304 },
        has_handle: true,
        offset: Some(q.offset),
        live: q.live,
        live_sse: q.live_sse,
        max_age_secs: cfg.cache_max_age,
        stale_age_secs: cfg.cache_stale_age,
        sse_timeout_ms: cfg.sse_timeout.as_millis() as u64,
        send_cache_headers: true,
    }) {
        hs.push(("cache-control".into(), cc.into()));
    }
}

#[cfg(test)]
mod future_size {
    use super::*;
    use crate::catalog::{TableColumn, TableInfo};
    use crate::shapes::def::{DefParams, ShapeDef};
    use std::sync::Arc;

    /// A held long-poll keeps one `serve_shape` future alive on the owner core.
    #[test]
    fn serve_future_is_small() {
        let (tx, _rx) = flume::bounded(1);
        let core = Core::for_tests(vec![tx]);
        let q = protocol::request::parse_shape_query("table=t&offset=-1").expect("query");
        let table = Arc::new(TableInfo {
            oid: 1,
            schema: "public".into(),
            name: "t".into(),
            columns: vec![TableColumn {
                info: protocol::schema::ColumnInfo {
                    name: "id".into(),
                    type_oid: 23,
                    type_name: "int4".into(),
                    dims: 0,
                    is_array: false,
                    pk_index: Some(0),
                    not_null: true,
                    type_mod: -1,
                    type_kind: protocol::schema::TypeKind::Base,
                    element_kind: None,
                    is_generated: false,
                    formatted_type: "integer".into(),
                },
                type_oid: 23,
                is_enum: false,
            }],
            pk: vec![0],
            generated: Vec::new(),
        });
        let def = ShapeDef::build(&DefParams::of_shape(&q).expect("table"), table).expect("def");
        let call = ShapeCall {
            def: Arc::new(def),
            query: q,
            if_none_match: Vec::new(),
            head: false,
            post: false,
        };
        let fut = serve_shape(&core, call);
        let size = std::mem::size_of_val(&fut);
        eprintln!("serve_shape future: {size} bytes");
        assert!(size < 2048, "serve_shape future is {size} bytes");
    }
}
