//! Subset snapshots (§2.6): `GET /v1/shape?…&subset__*=…` and `POST /v1/shape` with a JSON body.
//!
//! A subset request still names its shape (table, where, columns, handle…): the shape is
//! resolved (or created) on its owner core exactly as for a log request, including the 409 on
//! a stale handle. Then, once the shape's own snapshot is in place, the subset query runs in
//! its own transaction on the owner's pool and the rows come back as
//! `{"metadata":{…}, "data":[…]}`, with `electric-snapshot: true` and `cache-control: no-cache`.
//!
//! Why wait for the shape's snapshot: a client in `log=changes_only` mode follows the shape's
//! log from the returned `electric-offset` and drops the changes the subset already contains
//! (by xid). That is only sound if the subset's Postgres snapshot is taken after the shape's
//! (every change the log skips is then in the subset) and the offset is read before the
//! subset's snapshot (every change after the offset is either in the subset, and dropped by its
//! xid, or after it).

use super::core::{Core, ShapeRef};
use super::{responses, router, CoreMsg};
use crate::http::{Body, Response};
use crate::shapes::def::{DefParams, ShapeDef};
use crate::shapes::subset_query::{self, SubsetQueryError, SubsetRows};
use bytes::Bytes;
use protocol::headers as h;
use protocol::offset::{LogOffset, OffsetParam};
use protocol::request::ShapeQuery;
use protocol::subset::{ShapeRequest, SplitError, Subset};
use protocol::where_clause::ColumnType;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest wait for the shape's own snapshot before answering 503 (as `serve`).
const SNAPSHOT_WAIT: Duration = Duration::from_secs(60);

/// A validated subset request, forwarded to the core that owns its shape.
pub struct SubsetCall {
    pub def: Arc<ShapeDef>,
    pub query: ShapeQuery,
    pub subset: Subset,
}

/// Serves a request the router split into shape parameters and subset (it goes here for
/// subset query keys or a POST body), forwarding it to the owner. POST responses are never
/// cached (§4.2 rule 1).
pub async fn serve(
    core: &Rc<Core>,
    split: Result<ShapeRequest, SplitError>,
    if_none_match: Vec<String>,
    head: bool,
    post: bool,
) -> Response {
    let response = match split {
        Ok(split) => validate_and_forward(core, split, if_none_match, head, post).await,
        Err(SplitError::Request(e)) => responses::request_error(&e),
        Err(SplitError::Body(e)) => responses::fixed(e),
    };
    if post {
        router::no_cache(response)
    } else {
        response
    }
}

async fn validate_and_forward(
    core: &Rc<Core>,
    split: ShapeRequest,
    if_none_match: Vec<String>,
    head: bool,
    post: bool,
) -> Response {
    let Some(raw_subset) = split.subset else {
        // A POST body with no subset keys: an ordinary shape request with merged parameters.
        return router::serve_query(core, split.query, if_none_match, head, post).await;
    };
    if let Some(r) = Box::pin(router::wait_ready(core)).await {
        return r;
    }
    let q = split.query;
    let Some(params) = DefParams::of_shape(&q) else {
        return responses::validation(&protocol::validation::ValidationErrors::single(
            "table",
            "can't be blank",
        ));
    };
    let def = match router::definition(core, &params, q.queryable_columns.as_deref()).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let columns = subset_columns(&def);
    let subset = match protocol::subset::prepare(&raw_subset, &columns) {
        Ok(s) => s,
        Err(e) => return responses::error(e.status(), e.body()),
    };
    // After the subset, as upstream validates it with the other parameters.
    if let Some(e) = q.unsupported_option() {
        return responses::validation(&e);
    }
    let owner = def.owner_core(core.shared.cores);
    let call = SubsetCall {
        def,
        query: q,
        subset,
    };
    if owner == core.id {
        return Box::pin(serve_on_owner(core, call)).await;
    }
    router::ask_owner(core, owner, |reply| CoreMsg::Subset {
        call: Box::new(call),
        reply,
    })
    .await
}

/// The columns a subset's `where` and `order_by` may use: the table's, narrowed to the
/// request's validated `queryable_columns` when it lists them (upstream's `Subset.new/3`).
/// A reference to any other column fails like an unknown column.
fn subset_columns(def: &ShapeDef) -> Vec<ColumnType> {
    def.table
        .columns
        .iter()
        .enumerate()
        .filter(|(i, _)| def.queryable.as_ref().is_none_or(|q| q.contains(i)))
        .map(|(_, c)| c.where_type())
        .collect()
}

/// Answers a subset request on the core that owns its shape.
pub async fn serve_on_owner(core: &Rc<Core>, call: SubsetCall) -> Response {
    if super::dormant::wake_for_def(core, call.def.hash)
        .await
        .is_err()
    {
        // Its stored shape could not be loaded (catalog lookup failed): creating a second
        // shape of the definition instead would split its clients.
        return responses::fixed(protocol::errors::database_unreachable());
    }
    let shape = match super::serve::active_shape(core, &call.def, call.query.handle.as_deref()) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let active = shape.borrow().handle.clone();
    let offset = match shape_position(core, &call, &shape).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    // 31 bits, as upstream's `Enum.random(0..(2 ** 31 - 1))`.
    let mark = (core.random() % (1 << 31)) as u32;
    // A subquery shape's rows carry its tags (stack id and handle hash into them).
    let tags = shape
        .borrow()
        .sub
        .as_ref()
        .map(|sub| (sub.stack_id.clone(), active.clone()));
    let rows = match run_query(core, &call, mark, tags).await {
        Ok(rows) => rows,
        Err(r) => return r,
    };
    tracing::debug!("subset of {active}: {} rows", rows.rows);
    respond(&call, &active, offset, rows)
}

/// Waits for the shape's own snapshot, then returns the `electric-offset` to answer with (what
/// a log request at the same offset would get; the log end for `offset=now`).
async fn shape_position(
    core: &Rc<Core>,
    call: &SubsetCall,
    shape: &ShapeRef,
) -> Result<LogOffset, Response> {
    let deadline = Instant::now() + SNAPSHOT_WAIT;
    loop {
        let listener = {
            let s = shape.borrow();
            if let Some(err) = &s.snapshot_error {
                return Err(responses::snapshot_failed(err));
            }
            if s.invalidated {
                drop(s);
                return Err(match core.get_or_create(&call.def) {
                    Ok(next) => responses::must_refetch(Some(&next.borrow().handle)),
                    Err(_) => responses::fixed(protocol::errors::shape_creation_failed()),
                });
            }
            if s.log.snapshot_done() {
                let last = s.log.last_offset();
                let chunk_end = |after: Option<LogOffset>| {
                    // An unreadable chunk answers with the log end; the shape request that
                    // reads it drops the shape.
                    s.log
                        .read(after)
                        .ok()
                        .flatten()
                        .map_or(last, |slice| slice.chunk_end)
                };
                return Ok(match call.query.offset {
                    OffsetParam::Now => last,
                    OffsetParam::BeforeAll => chunk_end(None),
                    OffsetParam::At(o) if o > last => last,
                    OffsetParam::At(o) => chunk_end(Some(o)),
                });
            }
            s.changed.listen()
        };
        if !core.timers.wait_until(listener, deadline).await {
            if core.timers.ended() {
                return Err(responses::shutting_down());
            }
            return Err(responses::unavailable(
                "{\"message\":\"Snapshot query took too long to return data\"}",
                10,
            ));
        }
    }
}

async fn run_query(
    core: &Rc<Core>,
    call: &SubsetCall,
    mark: u32,
    tags: Option<(Rc<str>, String)>,
) -> Result<SubsetRows, Response> {
    let mut conn = match core.conn().await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("subset query: no database connection: {e}");
            return Err(responses::database_unreachable());
        }
    };
    match subset_query::run(&mut conn, &call.def, &call.subset, mark, tags).await {
        Ok(rows) => {
            core.put_conn(conn);
            Ok(rows)
        }
        Err(e) => {
            if !conn.is_broken() {
                core.put_conn(conn);
            }
            Err(query_error_response(&e))
        }
    }
}

fn query_error_response(e: &SubsetQueryError) -> Response {
    match e {
        // A data exception (class 22): a value in `where` Postgres rejects, such as an unknown
        // enum label (upstream: invalid_text_representation), or a row it cannot evaluate on.
        SubsetQueryError::Pg(pg) if pg.code().is_some_and(|c| c.starts_with("22")) => {
            let message = pg.db_fields().map_or("", |f| f.message.as_str());
            responses::error(400, protocol::subset::query_error_body("where", message))
        }
        SubsetQueryError::Pg(pg) if pg.code().is_none() => {
            tracing::warn!("subset query failed: {e}");
            responses::database_unreachable()
        }
        SubsetQueryError::TooLarge => responses::error(
            400,
            protocol::subset::query_error_body("limit", &format!("{e}: add a limit")),
        ),
        _ => {
            tracing::warn!("subset query failed: {e}");
            responses::internal_error()
        }
    }
}

fn respond(call: &SubsetCall, handle: &str, offset: LogOffset, rows: SubsetRows) -> Response {
    let parts = vec![
        Bytes::from(rows.metadata.response_head()),
        Bytes::from(rows.data),
        Bytes::from_static(protocol::subset::RESPONSE_TAIL),
    ];
    responses::json(200, Bytes::new())
        .with_body(Body::Parts(parts))
        .with_header("cache-control", h::NO_CACHE.to_string())
        .with_header(h::ELECTRIC_SNAPSHOT, "true".to_string())
        .with_header(h::ELECTRIC_HANDLE, handle.to_string())
        .with_header(h::ELECTRIC_SCHEMA, call.def.schema_header.clone())
        .with_header(h::ELECTRIC_OFFSET, offset.to_string())
}
