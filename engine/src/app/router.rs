//! HTTP routing on every core (§1): health, CORS preflight, authentication, and shape requests,
//! which are validated here and handed to the core that owns the shape.
//!
//! A shape request goes one way through here: its query string is decoded once ([`accept`]),
//! and authorization, admission, subset detection and validation read those parameters; the
//! validated request is owned, the request itself is dropped, and the shape is served.

use super::admission::{self, Permit};
use super::core::Core;
use super::{responses, CoreMsg, DeleteTarget, ShapeCall, Status};
use crate::http::{Handler, Method, Request, Response};
use crate::pg::PgError;
use crate::shapes::def::{DefParams, ShapeDef};
use protocol::headers as h;
use protocol::offset::OffsetParam;
use protocol::query_string::{parse_query_string, QueryParams};
use protocol::request::{DeleteQuery, RequestError, ShapeQuery};
use protocol::subset::{ShapeRequest, SplitError};
use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

/// How long a shape request waits for replication to become active before a 503.
const READY_WAIT: Duration = Duration::from_secs(5);

pub struct App {
    pub core: Rc<Core>,
}

impl Handler for App {
    fn handle(&self, req: Request) -> Pin<Box<dyn Future<Output = Response>>> {
        let core = self.core.clone();
        Box::pin(async move { route(&core, req).await })
    }
}

#[derive(PartialEq, Eq)]
enum Route {
    Root,
    Health,
    Shape,
    Other,
}

/// Resolves the path as Plug does: percent-decoded, empty segments dropped, so `/v1//shape`,
/// `/v1/shape/` and `/v1/%73hape` are all the shape route (and all need the secret).
fn resolve(path: &str) -> Route {
    // Decoded into a copy only when escaped (rare): every request comes through here.
    let decoded;
    let bytes = if path.contains('%') {
        decoded = percent_decode(path.as_bytes());
        &decoded[..]
    } else {
        path.as_bytes()
    };
    let mut segs = bytes.split(|b| *b == b'/').filter(|s| !s.is_empty());
    let route = match (segs.next(), segs.next()) {
        (None, _) => Route::Root,
        (Some(b"v1"), Some(b"health")) => Route::Health,
        (Some(b"v1"), Some(b"shape")) => Route::Shape,
        _ => Route::Other,
    };
    if route != Route::Root && segs.next().is_some() {
        return Route::Other;
    }
    route
}

fn percent_decode(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' && i + 2 < s.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(a), Some(b)) = (hex(s[i + 1]), hex(s[i + 2])) {
                out.push((a * 16 + b) as u8);
                i += 3;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

async fn route(core: &Rc<Core>, req: Request) -> Response {
    let started = Instant::now();
    let route = resolve(req.path());
    let method = req.method.clone();
    let label = metrics_label(&route, &method);
    // Take what the final headers need now: the request (its headers and strings) is dropped
    // before a long-poll waits, keeping held connections small.
    let origins: Vec<&str> = req.headers_all("origin").collect();
    // Owned only when it echoes the request's origin.
    let allow_origin: Cow<'static, str> = match h::allow_origin(&origins) {
        "*" => Cow::Borrowed("*"),
        origin => Cow::Owned(origin.to_string()),
    };
    let preflight_route = method == Method::Options && route == Route::Shape;
    let mut resp = match (&route, &method) {
        (Route::Root, Method::Get | Method::Head) => Response::new(200),
        (Route::Health, Method::Get | Method::Head) => health(core),
        (Route::Shape, Method::Options) => preflight(&req),
        (Route::Shape, Method::Get | Method::Head | Method::Post | Method::Delete) => {
            shape(core, req).await
        }
        _ => responses::not_found(),
    };
    finish(core, allow_origin, preflight_route, &route, &mut resp);
    core.shared
        .metrics
        .core(core.id)
        .record_request(label, resp.status, started.elapsed());
    resp
}

fn metrics_label(route: &Route, method: &Method) -> crate::metrics::RouteLabel {
    use crate::metrics::RouteLabel as L;
    match (route, method) {
        (Route::Shape, Method::Get | Method::Head) => L::ShapeGet,
        (Route::Shape, Method::Post) => L::ShapePost,
        (Route::Shape, Method::Delete) => L::ShapeDelete,
        (Route::Shape, Method::Options) => L::ShapeOptions,
        (Route::Health, _) => L::Health,
        (Route::Root, _) => L::Root,
        _ => L::Other,
    }
}

/// Headers on every response: server, request id, CORS (not on 401), default cache-control.
fn finish(
    core: &Rc<Core>,
    allow_origin: Cow<'static, str>,
    preflight: bool,
    route: &Route,
    resp: &mut Response,
) {
    resp.request_id = std::num::NonZeroU64::new(core.random() | 1);
    let cors = resp.status != 401;
    let any_origin = allow_origin == "*";
    resp.prelude = Some(prelude(cors, any_origin, *route == Route::Shape));
    let hs = &mut resp.headers;
    if cors && !any_origin {
        hs.push(("access-control-allow-origin".into(), allow_origin));
    }
    let has_cc = resp.head_block.is_some() || hs.iter().any(|(k, _)| k == "cache-control");
    if !has_cc && !preflight {
        hs.push((
            "cache-control".into(),
            "max-age=0, private, must-revalidate".into(),
        ));
    }
}

/// The constant lines `finish` gives a response, rendered once: `electric-server`, and with
/// `cors` the CORS lines (`access-control-allow-origin: *` only when `any_origin`; another
/// origin is a header of its own).
fn prelude(cors: bool, any_origin: bool, shape_route: bool) -> &'static String {
    static PRELUDES: LazyLock<[String; 5]> = LazyLock::new(|| {
        let server = format!("{}: {}\r\n", h::ELECTRIC_SERVER, h::ELECTRIC_SERVER_VALUE);
        let cors = |any_origin: bool, shape_route: bool| {
            format!(
                "{server}{}access-control-expose-headers: {}\r\naccess-control-allow-methods: {}\r\n",
                if any_origin {
                    "access-control-allow-origin: *\r\n"
                } else {
                    ""
                },
                h::EXPOSE_HEADERS,
                h::allow_methods(shape_route),
            )
        };
        [
            server.clone(),
            cors(true, true),
            cors(true, false),
            cors(false, true),
            cors(false, false),
        ]
    });
    let index = match (cors, any_origin, shape_route) {
        (false, _, _) => 0,
        (true, true, true) => 1,
        (true, true, false) => 2,
        (true, false, true) => 3,
        (true, false, false) => 4,
    };
    &PRELUDES[index]
}

fn health(core: &Rc<Core>) -> Response {
    let (status, word) = match core.shared.status() {
        // Upstream's answer while its connections sleep: the service is up.
        Status::Active | Status::Sleeping => (200, "active"),
        Status::Waiting => (202, "waiting"),
        Status::Starting => (202, "starting"),
    };
    responses::json(status, format!("{{\"status\":\"{word}\"}}")).with_header(
        "cache-control",
        "no-cache, no-store, must-revalidate".to_string(),
    )
}

fn preflight(req: &Request) -> Response {
    let mut r = Response::new(204)
        .with_header("access-control-max-age", "86400".to_string())
        .with_header("connection", "keep-alive".to_string());
    let asked: Vec<&str> = req.headers_all("access-control-request-headers").collect();
    if let Some(allowed) = h::options_allow_headers(&asked) {
        r.headers
            .push(("access-control-allow-headers".into(), allowed.into()));
    }
    r
}

/// Constant-time comparison of the `secret` (or legacy `api_secret`) param; `params` is `None`
/// when the query string is undecodable. Runs before any other validation: a 401 wins over a
/// 400.
fn authorized(core: &Core, params: Option<&QueryParams<'_>>) -> bool {
    let Some(secret) = core.shared.config.secret.as_deref() else {
        return true;
    };
    let Some(params) = params else {
        return false;
    };
    let given = params.secret().unwrap_or_default();
    constant_time_eq(given.as_bytes(), secret.as_bytes())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // Length is not secret-dependent information worth hiding (the secret length is fixed), but
    // the content comparison must not stop at the first difference.
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

/// Whether [`wait_ready`] would return at once with nothing to say.
fn ready_now(core: &Core) -> bool {
    core.shared.ever_active() || core.shared.status() == Status::Active
}

pub(super) async fn wait_ready(core: &Rc<Core>) -> Option<Response> {
    if core.shared.ever_active() {
        // Shapes were restored: keep serving what the cores hold while replication reconnects
        // (health reports the outage); only new snapshots need the database.
        return None;
    }
    let until = Instant::now() + READY_WAIT;
    while core.shared.status() != Status::Active {
        if Instant::now() >= until {
            let msg = match core.shared.status() {
                Status::Waiting => "Timeout waiting for Postgres lock acquisition",
                _ => "Timeout waiting for database connection",
            };
            return Some(responses::unavailable(
                &format!("{{\"message\":\"{msg}\"}}"),
                5,
            ));
        }
        monoio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// Resolves the definition against the catalog; errors are final responses. `queryable` is the
/// request's `queryable_columns` (see [`ShapeDef::build_with_queryable`]).
pub(super) async fn definition(
    core: &Rc<Core>,
    q: &DefParams<'_>,
    queryable: Option<&[String]>,
) -> Result<Arc<ShapeDef>, Response> {
    // The common case (catalog entry and definition cached) without a future: a held request
    // keeps its caller's future alive, and this one's state would be part of it.
    if let Some(def) = cached_definition(core, q, queryable) {
        return Ok(def);
    }
    Box::pin(resolve_definition(core, q, queryable)).await
}

/// The definition from the per-core caches, if both the catalog entry it was built on and the
/// definition itself are there.
fn cached_definition(
    core: &Core,
    q: &DefParams<'_>,
    queryable: Option<&[String]>,
) -> Option<Arc<ShapeDef>> {
    let table = core.cached_table(&q.table.schema, &q.table.name)?;
    let asked = super::def_cache::Asked::of(q, queryable);
    let defs = core.defs.borrow();
    let def = defs.get(&asked)?;
    Arc::ptr_eq(&def.table, &table).then(|| def.clone())
}

/// [`definition`] past the caches: the catalog lookup may query Postgres.
async fn resolve_definition(
    core: &Rc<Core>,
    q: &DefParams<'_>,
    queryable: Option<&[String]>,
) -> Result<Arc<ShapeDef>, Response> {
    let table_name = q.table;
    // Boxed: the lookup (which may connect to Postgres) has a large future that would
    // otherwise be part of every held request's state.
    let cached = core.cached_table(&table_name.schema, &table_name.name);
    let looked_up = match cached {
        Some(t) => Ok(Some(t)),
        None => Box::pin(core.table(&table_name.schema, &table_name.name)).await,
    };
    let table = match looked_up {
        Ok(Some(t)) => t,
        Ok(None) => {
            return Err(responses::validation(
                &protocol::validation::table_not_found(&table_name.schema, &table_name.name),
            ))
        }
        Err(e) => return Err(pg_error_response(&e)),
    };
    let asked = super::def_cache::Asked::of(q, queryable);
    if let Some(d) = core.defs.borrow().get(&asked) {
        // Valid while the catalog entry it was built on is the current one.
        if Arc::ptr_eq(&d.table, &table) {
            return Ok(d.clone());
        }
    }
    let def = super::subqueries::build_definition(core, q, queryable, table)
        .await
        .map_err(|e| pg_error_response(&e))?
        .map(Arc::new)
        .map_err(|e| responses::validation(&e))?;
    core.defs.borrow_mut().insert(&asked, def.clone());
    Ok(def)
}

fn pg_error_response(e: &PgError) -> Response {
    tracing::warn!("database error while resolving a shape: {e}");
    if e.code().is_some() {
        responses::unavailable(
            "{\"message\":\"Cannot connect to the database to verify the shape. Please try again later.\"}",
            1,
        )
    } else {
        responses::database_unreachable()
    }
}

/// A shape request whose parameters validated; its admission permit, if any, is held until
/// the response is ready (see `admission`).
enum Accepted<'c> {
    /// A log request (catch-up or live): the hot path.
    Log(ShapeQuery, Permit<'c>),
    /// A subset snapshot or a POST with a body (`subset.rs`), split or refused.
    Subset(Result<ShapeRequest, SplitError>, Permit<'c>),
    Delete(DeleteQuery),
}

/// A shape request once validated and resolved: what remains is to answer it.
enum Next<'c> {
    Done(Response),
    /// A log request with its definition and owner; `keep_as` is the URL its answer may be
    /// kept under (`closed_chunks`).
    Log {
        call: ShapeCall,
        owner: usize,
        keep_as: Option<Box<str>>,
        permit: Permit<'c>,
    },
    Subset {
        split: Result<ShapeRequest, SplitError>,
        if_none_match: Vec<String>,
        head: bool,
        post: bool,
        permit: Permit<'c>,
    },
    Delete(DeleteQuery),
}

/// `GET`, `HEAD`, `POST` and `DELETE` of the shape route.
async fn shape(core: &Rc<Core>, req: Request) -> Response {
    // Any shape request wakes a sleeping replication (`Status::Sleeping`).
    core.shared.wake();
    if let Some(r) = closed_chunk(core, &req) {
        return r;
    }
    // Boxed, and finished before the answer is awaited: validation and resolution have large
    // states, which every held long-poll would otherwise keep for its whole wait.
    let next = Box::pin(prepare(core, req)).await;
    // Admission permits are held until the response is ready (see `admission`).
    match next {
        Next::Done(r) => r,
        Next::Log {
            call,
            owner,
            keep_as,
            permit: _permit,
        } => {
            if super::live::eligible(&call) {
                // Held here, woken by the owner's batch (`live`): not forwarded.
                return Box::pin(super::live::hold(core, call, owner)).await;
            }
            Box::pin(answer_log(core, call, owner, keep_as)).await
        }
        Next::Subset {
            split,
            if_none_match,
            head,
            post,
            permit: _permit,
        } => Box::pin(super::subset::serve(core, split, if_none_match, head, post)).await,
        Next::Delete(q) => Box::pin(delete(core, q)).await,
    }
}

/// Reads the request once (`accept`), then resolves a log request's definition and owner.
async fn prepare(core: &Rc<Core>, req: Request) -> Next<'_> {
    let accepted = match accept(core, &req).await {
        Ok(accepted) => accepted,
        Err(refused) => return Next::Done(refused),
    };
    let keep_as = match &accepted {
        Accepted::Log(q, _) => reusable_as(&req, q),
        _ => None,
    };
    let if_none_match: Vec<String> = req
        .headers_all("if-none-match")
        .map(str::to_string)
        .collect();
    let (head, post) = (req.method == Method::Head, req.method == Method::Post);
    drop(req);
    match accepted {
        Accepted::Log(q, permit) => match resolve_log(core, q, if_none_match, head, post).await {
            Ok((call, owner)) => Next::Log {
                call,
                owner,
                keep_as,
                permit,
            },
            Err(r) => Next::Done(r),
        },
        Accepted::Subset(split, permit) => Next::Subset {
            split,
            if_none_match,
            head,
            post,
            permit,
        },
        Accepted::Delete(q) => Next::Delete(q),
    }
}

/// Decodes the query string once; then, reading those parameters, authorization (a 401 wins
/// over everything, even an undecodable query), admission, subset detection and validation.
async fn accept<'c>(core: &'c Rc<Core>, req: &Request) -> Result<Accepted<'c>, Response> {
    let decoded = parse_query_string(req.query());
    if !authorized(core, decoded.as_ref().ok()) {
        return Err(responses::unauthorized());
    }
    let malformed = |e| responses::request_error(&RequestError::MalformedQueryString(e));
    if req.method == Method::Delete {
        if !core.shared.config.enable_integration_testing {
            return Err(responses::delete_not_allowed());
        }
        return match decoded {
            Ok(params) => protocol::request::validate_delete_query(&params)
                .map(Accepted::Delete)
                .map_err(|e| no_cache(responses::validation(&e))),
            Err(e) => Err(no_cache(malformed(e))),
        };
    }
    let permit = admission::acquire(core, admission::kind_of(decoded.as_ref().ok())).await?;
    let post = req.method == Method::Post;
    let body = (post && !req.body.is_empty()).then_some(&req.body[..]);
    let params = match decoded {
        Ok(params) => params,
        // The subset path answers a POST with a body, and never caches a POST.
        Err(e) if body.is_some() => return Err(no_cache(malformed(e))),
        Err(e) => return Err(malformed(e)),
    };
    if body.is_some() || protocol::subset::wants_subset(&params) {
        let split = protocol::subset::split_params(&params, body);
        return Ok(Accepted::Subset(split, permit));
    }
    match protocol::request::validate_shape_query(&params) {
        Ok(q) => Ok(Accepted::Log(q, permit)),
        Err(e) => Err(responses::validation(&e)),
    }
}

/// Serves a validated shape (log) request: resolves its definition and hands it to the owner
/// (a POST body without subset keys comes here from `subset`).
pub(super) async fn serve_query(
    core: &Rc<Core>,
    q: ShapeQuery,
    if_none_match: Vec<String>,
    head: bool,
    post: bool,
) -> Response {
    match resolve_log(core, q, if_none_match, head, post).await {
        Ok((call, owner)) => answer_log(core, call, owner, None).await,
        Err(r) => r,
    }
}

/// A validated log request's definition and owner, or the response that ends it (not ready,
/// unknown table, invalid definition, unsupported option).
async fn resolve_log(
    core: &Rc<Core>,
    q: ShapeQuery,
    if_none_match: Vec<String>,
    head: bool,
    post: bool,
) -> Result<(ShapeCall, usize), Response> {
    // Boxed (past the synchronous check): its sleep would otherwise be part of every caller's
    // state.
    if !ready_now(core) {
        if let Some(r) = Box::pin(wait_ready(core)).await {
            return Err(r);
        }
    }
    let Some(params) = DefParams::of_shape(&q) else {
        return Err(responses::validation(
            &protocol::validation::ValidationErrors::single("table", "can't be blank"),
        ));
    };
    let def = definition(core, &params, q.queryable_columns.as_deref()).await?;
    // Upstream refuses unsupported options only once the shape itself validated.
    if q.experimental_compaction && def.subquery.is_some() {
        return Err(responses::validation(
            &protocol::validation::compaction_with_subqueries(),
        ));
    }
    if let Some(e) = q.unsupported_option() {
        return Err(responses::validation(&e));
    }
    let owner = def.owner_core(core.shared.cores);
    let call = ShapeCall {
        def,
        if_none_match,
        head,
        post,
        query: q,
    };
    Ok((call, owner))
}

/// Answers a resolved log request: held here when it is a live long-poll (`live`), answered
/// here from the owner's published view when it asks for immutable data (`views`), otherwise
/// served by the owner; a reusable answer is kept under `keep_as` (`closed_chunks`).
async fn answer_log(
    core: &Rc<Core>,
    call: ShapeCall,
    owner: usize,
    keep_as: Option<Box<str>>,
) -> Response {
    if super::live::eligible(&call) {
        // Held here, woken by the owner's batch (`live`): not forwarded.
        return Box::pin(super::live::hold(core, call, owner)).await;
    }
    let handle = keep_as
        .is_some()
        .then(|| call.query.handle.clone())
        .flatten();
    let response = if owner == core.id {
        Box::pin(super::serve::serve_shape(core, call)).await
    } else if let Some(r) = super::views::answer(core, &call) {
        // Immutable data of the owner's published view, answered here (`views`).
        r
    } else {
        // Boxed, as the branch above: held requests keep this future alive.
        Box::pin(ask_owner(core, owner, |reply| CoreMsg::Shape {
            call: Box::new(call),
            reply,
        }))
        .await
    };
    if let (Some(query), Some(handle)) = (keep_as, handle) {
        core.closed
            .borrow_mut()
            .insert(&query, &handle, owner, &response);
    }
    response
}

/// A `GET`/`HEAD` answered from the closed chunks this core keeps (`closed_chunks`), if its
/// URL was answered with one before. Revalidation (`if-none-match`) is left to the owner.
fn closed_chunk(core: &Core, req: &Request) -> Option<Response> {
    if !matches!(req.method, Method::Get | Method::Head) || req.header("if-none-match").is_some() {
        return None;
    }
    let hit = core.closed.borrow_mut().get(req.query())?;
    core.stats()
        .closed_chunk_hits
        .fetch_add(1, Ordering::Relaxed);
    if let Some((owner, handle)) = hit.touch {
        touch(core, owner, &handle);
    }
    Some(hit.response)
}

/// The raw query a log request's response may be kept under (`closed_chunks`): a catch-up
/// request (not live, not a POST, no revalidation) from an offset of a known handle.
fn reusable_as(req: &Request, q: &ShapeQuery) -> Option<Box<str>> {
    let candidate = req.method != Method::Post
        && !q.live
        && q.handle.is_some()
        && matches!(q.offset, OffsetParam::At(_))
        && req.header("if-none-match").is_none();
    candidate.then(|| req.query().into())
}

/// Tells the owner that a shape answered from `closed_chunks` is in use (least recently used
/// eviction would otherwise not see these clients).
fn touch(core: &Core, owner: usize, handle: &str) {
    if owner == core.id {
        if let Some(shape) = core.shape(handle) {
            shape.borrow_mut().last_used = Instant::now();
        }
    } else {
        super::live::send(core, owner, CoreMsg::Touch(handle.to_owned()));
    }
}

/// Hands a request to the core that owns its shape and waits for that core's response.
pub(super) async fn ask_owner(
    core: &Core,
    owner: usize,
    msg: impl FnOnce(flume::Sender<Response>) -> CoreMsg,
) -> Response {
    let (tx, rx) = flume::bounded(1);
    if core.shared.inboxes[owner]
        .send_async(msg(tx))
        .await
        .is_err()
    {
        return responses::internal_error();
    }
    rx.recv_async()
        .await
        .unwrap_or_else(|_| responses::internal_error())
}

/// A validated `DELETE` (allowed only with integration testing enabled, see [`accept`]).
async fn delete(core: &Rc<Core>, q: DeleteQuery) -> Response {
    if let Some(r) = Box::pin(wait_ready(core)).await {
        return r;
    }
    let (owner, target) = if let Some(params) = DefParams::of_delete(&q) {
        let def = match definition(core, &params, q.queryable_columns.as_deref()).await {
            Ok(d) => d,
            Err(r) => return no_cache(r),
        };
        (
            def.owner_core(core.shared.cores),
            DeleteTarget::Definition {
                def,
                handle: q.handle.clone(),
            },
        )
    } else {
        let handle = q.handle.clone().unwrap_or_default();
        let Some((hash, _)) = protocol::handle::parse_handle(&handle) else {
            return responses::delete_not_found();
        };
        (
            hash as usize % core.shared.cores,
            DeleteTarget::Handle(handle),
        )
    };
    ask_owner(core, owner, |reply| CoreMsg::Delete { target, reply }).await
}

/// Non-GET requests always get `cache-control: no-cache` (§4.2 rule 1).
pub(super) fn no_cache(mut r: Response) -> Response {
    r.headers
        .retain(|(k, _)| k != "cache-control" && k != "surrogate-control");
    r.headers.push(("cache-control".into(), "no-cache".into()));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_variants_resolve_to_the_shape_route() {
        for p in [
            "/v1/shape",
            "/v1//shape",
            "/v1/shape/",
            "/v1/%73hape",
            "//v1/shape",
        ] {
            assert!(resolve(p) == Route::Shape, "{p}");
        }
        assert!(resolve("/v1/shapes") == Route::Other);
        assert!(resolve("/") == Route::Root);
        assert!(resolve("/v1/health") == Route::Health);
    }

    #[test]
    fn secret_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}

#[cfg(test)]
mod future_size {
    use super::*;

    /// Every held long-poll keeps one `route` future alive: keep it small.
    #[test]
    fn route_future_is_small() {
        let (tx, _rx) = flume::bounded(1);
        let core = Core::for_tests(vec![tx]);
        let req = Request::new(Method::Get, "/v1/shape", "", &[]);
        let fut = route(&core, req);
        let size = std::mem::size_of_val(&fut);
        eprintln!("route future: {size} bytes");
        assert!(size < 1400, "route future is {size} bytes");
    }
}
