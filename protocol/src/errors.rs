//! Non-validation error responses (§1.3, §2.3, §3). Each constructor returns the status, the
//! exact body and the headers specific to that error; the caller adds the common headers
//! (`electric-server`, CORS, `content-type: application/json; charset=utf-8`, and the
//! cache headers from [`crate::headers::cache_control`]).

use crate::headers::{CACHE_CONTROL, ELECTRIC_HANDLE, ELECTRIC_KNOWN_ERROR, NO_STORE, RETRY_AFTER};
use crate::headers::{CONTENT_TYPE, SURROGATE_CONTROL};
use crate::json::json_string;
use crate::message::MUST_REFETCH_BODY;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorResponse {
    pub status: u16,
    pub body: String,
    pub extra_headers: Vec<(&'static str, String)>,
}

impl ErrorResponse {
    fn new(status: u16, body: String) -> ErrorResponse {
        ErrorResponse {
            status,
            body,
            extra_headers: Vec::new(),
        }
    }

    fn with_header(mut self, name: &'static str, value: impl Into<String>) -> ErrorResponse {
        self.extra_headers.push((name, value.into()));
        self
    }

    fn retry_after(self, seconds: u64) -> ErrorResponse {
        self.with_header(RETRY_AFTER, seconds.to_string())
    }

    fn known_error(self) -> ErrorResponse {
        self.with_header(ELECTRIC_KNOWN_ERROR, "true")
    }

    /// The value of an extra header, if set.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.extra_headers
            .iter()
            .find(|(header, _)| *header == name)
            .map(|(_, value)| value.as_str())
    }
}

/// `{"message":"<text>"}`.
fn message_body(text: &str) -> String {
    format!("{{\"message\":{}}}", json_string(text))
}

/// 401 for a wrong or missing secret. Upstream sets no content type here and sends no CORS
/// headers (authentication runs before them).
pub fn unauthorized() -> ErrorResponse {
    ErrorResponse::new(401, message_body("Unauthorized - Invalid API secret"))
}

/// 404 for unknown routes: plain text, not JSON.
pub fn route_not_found() -> ErrorResponse {
    ErrorResponse::new(404, "Not found".to_owned())
}

/// 405 when shape deletion is disabled.
pub fn delete_not_allowed() -> ErrorResponse {
    ErrorResponse::new(405, message_body("DELETE not allowed"))
}

/// 404 from DELETE when no shape matches the handle or definition.
pub fn no_existing_shape() -> ErrorResponse {
    ErrorResponse::new(404, message_body("No existing shape found"))
}

/// 400 from DELETE when both a definition and a different handle were given.
pub fn shape_definition_mismatch() -> ErrorResponse {
    ErrorResponse::new(
        400,
        message_body(
            "The specified shape definition and handle do not match. Please ensure the shape \
             definition is correct or omit the shape handle from the request to obtain a new one.",
        ),
    )
}

/// 409 must-refetch, pointing at the active handle for the definition when known. Upstream
/// also sends an etag `"<handle>::"` (see [`crate::headers::etag`]) and the 409 cache rule.
pub fn must_refetch(active_handle: Option<&str>) -> ErrorResponse {
    let response = ErrorResponse::new(409, MUST_REFETCH_BODY.to_owned());
    match active_handle {
        Some(handle) => response.with_header(ELECTRIC_HANDLE, handle),
        None => response,
    }
}

/// 503 when the database cannot be reached while validating the shape.
pub fn connection_not_available() -> ErrorResponse {
    ErrorResponse::new(
        503,
        message_body("Cannot connect to the database to verify the shape. Please try again later."),
    )
    .retry_after(1)
}

/// 503 when the stack is not ready within the wait timeout; `message` is the status
/// monitor's reason, e.g. `Timeout waiting for Postgres lock acquisition`.
pub fn stack_not_ready(message: &str) -> ErrorResponse {
    ErrorResponse::new(503, message_body(message)).retry_after(5)
}

/// 503 from admission control. `kind` is `initial` or `existing`; `retry_after_secs` is
/// 5 + uniform 1..=5 upstream. The explicit no-store headers are set on this path even though
/// it runs before the general cache rules.
pub fn admission_limit_exceeded(kind: &str, limit: u64, retry_after_secs: u64) -> ErrorResponse {
    let message =
        format!("Concurrent {kind} request limit exceeded (limit: {limit}), please retry");
    let body = format!(
        "{{\"code\":\"concurrent_request_limit_exceeded\",\"message\":{}}}",
        json_string(&message)
    );
    ErrorResponse::new(503, body)
        .with_header(CACHE_CONTROL, NO_STORE)
        .with_header(SURROGATE_CONTROL, NO_STORE)
        .known_error()
        .retry_after(retry_after_secs)
}

/// 503 when the shape could not be created or looked up.
pub fn shape_creation_failed() -> ErrorResponse {
    ErrorResponse::new(503, message_body("Failed to create shape, please retry")).retry_after(1)
}

/// 503 for a known snapshot failure (lock timeout, pool timeout, slow query…).
pub fn snapshot_failed(message: &str) -> ErrorResponse {
    ErrorResponse::new(503, message_body(message))
        .known_error()
        .retry_after(10)
}

/// Message of [`snapshot_failed`] for a table-lock timeout.
pub const SNAPSHOT_LOCK_TIMEOUT_MESSAGE: &str = "Snapshot timed out while waiting for a table lock";
/// Message of [`snapshot_failed`] for a connection-pool queue timeout.
pub const SNAPSHOT_QUEUE_TIMEOUT_MESSAGE: &str =
    "Snapshot creation failed because of a connection pool queue timeout";
/// Message of [`snapshot_failed`] when the snapshot query is slow to start.
pub const SNAPSHOT_SLOW_START_MESSAGE: &str =
    "Snapshot query took too long to start reading from the database";

/// Message of [`snapshot_failed`] for a snapshot query cancelled after `ttf_ms`.
pub fn slow_snapshot_query_message(ttf_ms: u64) -> String {
    format!(
        "Snapshot query took too long to return data (cancelled after {ttf_ms}ms). Please ensure \
         snapshot queries are using an index to avoid taking up all database connections."
    )
}

/// 500 for an unexpected snapshot failure; `detail` is the Postgres error message.
pub fn snapshot_unexpected(detail: &str) -> ErrorResponse {
    ErrorResponse::new(
        500,
        message_body(&format!(
            "Unexpected error while creating snapshot: {detail}"
        )),
    )
}

/// 503 when a long poll times out while the stack is degraded.
pub fn long_poll_degraded(message: &str) -> ErrorResponse {
    ErrorResponse::new(503, message_body(message)).retry_after(10)
}

/// 503 for any database connection failure escaping a handler. Like admission control, this
/// path sets the no-store headers itself.
pub fn database_unreachable() -> ErrorResponse {
    ErrorResponse::new(
        503,
        r#"{"code":"database_unreachable","error":"Database is unreachable"}"#.to_owned(),
    )
    .with_header(CACHE_CONTROL, NO_STORE)
    .with_header(SURROGATE_CONTROL, NO_STORE)
    .retry_after(10)
}

/// 500 for any other failure; never leaks details.
pub fn internal_error() -> ErrorResponse {
    ErrorResponse::new(500, r#"{"error":"Internal server error"}"#.to_owned())
}

/// 400 for a POST body that is not JSON; `details` describes the parse error.
pub fn invalid_json_body(details: &str) -> ErrorResponse {
    ErrorResponse::new(
        400,
        format!(
            "{{\"error\":\"Invalid JSON in request body\",\"details\":{}}}",
            json_string(details)
        ),
    )
}

/// 400 for a POST body that is JSON but not an object.
pub fn body_not_object() -> ErrorResponse {
    ErrorResponse::new(
        400,
        r#"{"error":"Request body must be a JSON object"}"#.to_owned(),
    )
}

/// 400 when reading the POST body failed.
pub fn body_read_failed() -> ErrorResponse {
    ErrorResponse::new(400, r#"{"error":"Failed to read request body"}"#.to_owned())
}

/// 413 for a POST body above the read limit (8 MB upstream).
pub fn body_too_large() -> ErrorResponse {
    ErrorResponse::new(413, r#"{"error":"Request body too large"}"#.to_owned())
}

/// 400 for a query string that cannot be decoded (bad `%` escape, not UTF-8). Upstream raises
/// Plug's `InvalidQueryError` here and the HTTP server writes a bare 400; Ampere answers with a
/// small JSON body instead.
pub fn malformed_query_string() -> ErrorResponse {
    ErrorResponse::new(400, r#"{"error":"Malformed query string"}"#.to_owned())
        .with_header(CONTENT_TYPE, crate::headers::CONTENT_TYPE_JSON)
}

#[cfg(test)]
#[path = "errors_tests.rs"]
mod tests;
