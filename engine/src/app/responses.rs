//! Fixed responses of the Shape API (§2.3, §3): bodies and headers byte for byte as upstream.

use crate::http::{Body, Response};
use bytes::Bytes;
use protocol::headers as h;

pub const JSON: &str = "application/json; charset=utf-8";

pub fn json(status: u16, body: impl Into<Bytes>) -> Response {
    Response::new(status)
        .with_header("content-type", JSON)
        .with_body(Body::Full(body.into()))
}

/// A 4xx/5xx error: `no-store` for both browsers and CDNs.
pub fn error(status: u16, body: impl Into<Bytes>) -> Response {
    json(status, body)
        .with_header("cache-control", "no-store".to_string())
        .with_header("surrogate-control", "no-store".to_string())
}

pub fn validation(errors: &protocol::validation::ValidationErrors) -> Response {
    error(400, errors.body())
}

/// One of the protocol crate's fixed error responses, with the error cache headers. A header
/// the protocol response sets itself (content-type, cache-control) replaces the default one.
/// The answer to a request for a shape whose snapshot failed (the shape is gone; a retry
/// creates it again).
pub fn snapshot_failed(failure: &crate::shapes::snapshot::SnapshotFailure) -> Response {
    use crate::shapes::snapshot::SnapshotFailure;
    fixed(match failure {
        SnapshotFailure::Unreachable => protocol::errors::database_unreachable(),
        SnapshotFailure::Refused(message) => protocol::errors::snapshot_failed(message),
        SnapshotFailure::Failed => protocol::errors::snapshot_failed("Snapshot creation failed"),
    })
}

pub fn fixed(e: protocol::errors::ErrorResponse) -> Response {
    let mut r = error(e.status, e.body);
    for (k, v) in e.extra_headers {
        r.headers.retain(|(name, _)| name != k);
        r.headers.push((k.into(), v.into()));
    }
    r
}

pub fn request_error(e: &protocol::request::RequestError) -> Response {
    match e {
        protocol::request::RequestError::Invalid(v) => validation(v),
        protocol::request::RequestError::MalformedQueryString(_) => {
            fixed(protocol::errors::malformed_query_string())
        }
    }
}

/// 409 must-refetch, pointing at the shape's current handle.
pub fn must_refetch(handle: Option<&str>) -> Response {
    let mut r = json(
        409,
        Bytes::from_static(protocol::message::MUST_REFETCH_BODY.as_bytes()),
    );
    match handle {
        Some(handle) => {
            r = r
                .with_header(
                    "cache-control",
                    "public, max-age=60, must-revalidate".to_string(),
                )
                .with_header(h::ELECTRIC_HANDLE, handle.to_string())
                // Error responses are built from default params upstream, hence the empty
                // offsets in this etag.
                .with_header("etag", format!("\"{handle}::\""));
        }
        None => {
            r = r.with_header(
                "cache-control",
                "public, max-age=1, must-revalidate".to_string(),
            )
        }
    }
    r
}

pub fn unauthorized() -> Response {
    // Upstream sets no content-type on this path and no CORS headers (401 precedes CORS).
    Response::new(401)
        .with_header(
            "cache-control",
            "max-age=0, private, must-revalidate".to_string(),
        )
        .with_body(Body::Full(protocol::errors::unauthorized().body.into()))
}

pub fn not_found() -> Response {
    Response::new(404)
        .with_header("content-type", "text/plain; charset=utf-8".to_string())
        .with_header(
            "cache-control",
            "max-age=0, private, must-revalidate".to_string(),
        )
        .with_body(Body::Full(protocol::errors::route_not_found().body.into()))
}

/// A `DELETE /v1/shape` answer: non-GET responses are never cached (§4.2 rule 1).
fn delete_answer(e: protocol::errors::ErrorResponse) -> Response {
    json(e.status, e.body).with_header("cache-control", "no-cache".to_string())
}

pub fn delete_not_allowed() -> Response {
    delete_answer(protocol::errors::delete_not_allowed())
}

pub fn delete_not_found() -> Response {
    delete_answer(protocol::errors::no_existing_shape())
}

pub fn delete_mismatch() -> Response {
    delete_answer(protocol::errors::shape_definition_mismatch())
}

pub fn deleted() -> Response {
    Response::new(202).with_header("cache-control", "no-cache".to_string())
}

pub fn unavailable(body: &str, retry_after: u32) -> Response {
    error(503, body.to_string()).with_header("retry-after", retry_after.to_string())
}

/// A live request (or one that would wait) arriving while the server shuts down: answering it
/// "nothing new" at once would make the client ask again at once, in a loop, until the process
/// exits; a 503 makes it back off and retry (by then, against the restarted server).
pub fn shutting_down() -> Response {
    unavailable("{\"message\":\"The server is shutting down\"}", 1)
        .with_header("connection", "close".to_string())
}

pub fn database_unreachable() -> Response {
    fixed(protocol::errors::database_unreachable())
}

pub fn internal_error() -> Response {
    fixed(protocol::errors::internal_error())
}
