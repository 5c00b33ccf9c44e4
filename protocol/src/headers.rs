//! Response header names and values (§1.4, §4.1–§4.3).

use crate::offset::OffsetParam;

pub const ELECTRIC_CURSOR: &str = "electric-cursor";
pub const ELECTRIC_HANDLE: &str = "electric-handle";
pub const ELECTRIC_HAS_DATA: &str = "electric-has-data";
pub const ELECTRIC_OFFSET: &str = "electric-offset";
pub const ELECTRIC_SCHEMA: &str = "electric-schema";
pub const ELECTRIC_UP_TO_DATE: &str = "electric-up-to-date";
pub const ELECTRIC_KNOWN_ERROR: &str = "electric-internal-known-error";
pub const ELECTRIC_SNAPSHOT: &str = "electric-snapshot";
pub const ELECTRIC_SERVER: &str = "electric-server";
pub const RETRY_AFTER: &str = "retry-after";
pub const ETAG: &str = "etag";
pub const IF_NONE_MATCH: &str = "if-none-match";
pub const CACHE_CONTROL: &str = "cache-control";
pub const SURROGATE_CONTROL: &str = "surrogate-control";
pub const CONTENT_TYPE: &str = "content-type";
pub const CONNECTION: &str = "connection";
pub const X_REQUEST_ID: &str = "x-request-id";
pub const ORIGIN: &str = "origin";
pub const ACCESS_CONTROL_ALLOW_ORIGIN: &str = "access-control-allow-origin";
pub const ACCESS_CONTROL_EXPOSE_HEADERS: &str = "access-control-expose-headers";
pub const ACCESS_CONTROL_ALLOW_METHODS: &str = "access-control-allow-methods";
pub const ACCESS_CONTROL_ALLOW_HEADERS: &str = "access-control-allow-headers";
pub const ACCESS_CONTROL_MAX_AGE: &str = "access-control-max-age";
pub const ACCESS_CONTROL_REQUEST_HEADERS: &str = "access-control-request-headers";

/// `electric-server` value: the upstream version whose behaviour Ampere reproduces.
pub const ELECTRIC_SERVER_VALUE: &str = "ElectricSQL/1.7.12";

/// `access-control-expose-headers`: comma-joined, no spaces, in upstream's order.
pub const EXPOSE_HEADERS: &str = "electric-cursor,electric-handle,electric-has-data,\
electric-offset,electric-schema,electric-up-to-date,electric-internal-known-error,retry-after";

pub const CONTENT_TYPE_JSON: &str = "application/json; charset=utf-8";
pub const CONTENT_TYPE_SSE: &str = "text/event-stream";
pub const KEEP_ALIVE: &str = "keep-alive";
/// Plug's default for responses that never set `cache-control` (401, 404, `/`).
pub const DEFAULT_CACHE_CONTROL: &str = "max-age=0, private, must-revalidate";
pub const NO_CACHE: &str = "no-cache";
pub const NO_STORE: &str = "no-store";
/// `cache-control` of `/v1/health`.
pub const HEALTH_CACHE_CONTROL: &str = "no-cache, no-store, must-revalidate";
/// `access-control-max-age` on OPTIONS preflights.
pub const OPTIONS_MAX_AGE: &str = "86400";

pub const SHAPE_ROUTE_METHODS: &str = "GET, POST, HEAD, DELETE, OPTIONS";
pub const OTHER_ROUTE_METHODS: &str = "GET, HEAD";

/// Request headers a preflight may ask for that upstream allows.
const ALLOWED_REQUEST_HEADERS: [&str; 2] = ["if-none-match", "traceparent"];

/// Inputs to the cache-control decision of §4.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheCase {
    /// `true` for GET, HEAD (served as GET) and OPTIONS; POST and DELETE get `no-cache`.
    pub method_is_get: bool,
    pub status: u16,
    /// The response carries an `electric-handle`.
    pub has_handle: bool,
    /// The request's offset; `None` for error responses built before it was parsed (upstream
    /// builds those with default params, so they never match the `-1` rule).
    pub offset: Option<OffsetParam>,
    pub live: bool,
    pub live_sse: bool,
    /// `ELECTRIC_CACHE_MAX_AGE`, default 60.
    pub max_age_secs: u64,
    /// `ELECTRIC_CACHE_STALE_AGE`, default 300.
    pub stale_age_secs: u64,
    /// SSE stream lifetime, default 60 000 ms.
    pub sse_timeout_ms: u64,
    /// Upstream's `send_cache_headers?` embedding option; `false` suppresses the header.
    pub send_cache_headers: bool,
}

/// The `cache-control` value, or `None` when it must not be set.
pub fn cache_control(case: &CacheCase) -> Option<String> {
    if !case.send_cache_headers {
        return None;
    }
    let value = if !case.method_is_get {
        NO_CACHE.to_owned()
    } else if case.status == 409 {
        // Brief caching lets a CDN coalesce the redirect storm after a shape rotation; without a
        // handle the redirect is poor, so it is cached only long enough to collapse requests.
        let age = if case.has_handle { 60 } else { 1 };
        format!("public, max-age={age}, must-revalidate")
    } else if case.status >= 400 {
        NO_STORE.to_owned()
    } else if case.offset == Some(OffsetParam::BeforeAll) {
        // Initial responses are immutable per handle: browsers keep them a week, shared caches
        // revalidate hourly.
        "public, max-age=604800, s-maxage=3600, stale-while-revalidate=2629746".to_owned()
    } else if case.live && case.live_sse {
        let age = (case.sse_timeout_ms / 1000).saturating_sub(1).max(1);
        format!("public, max-age={age}")
    } else if case.live {
        "public, max-age=5, stale-while-revalidate=5".to_owned()
    } else {
        format!(
            "public, max-age={}, stale-while-revalidate={}",
            case.max_age_secs, case.stale_age_secs
        )
    };
    Some(value)
}

/// `surrogate-control: no-store` accompanies `no-store` on non-409 errors of GET requests.
pub fn surrogate_control(case: &CacheCase) -> Option<&'static str> {
    let applies =
        case.send_cache_headers && case.method_is_get && case.status != 409 && case.status >= 400;
    applies.then_some(NO_STORE)
}

/// The quoted etag `"<handle>:<request offset>:<response offset>[:<suffix>]"`. Upstream adds a
/// monotonic-clock suffix to empty live/`now` responses so they can never be revalidated.
/// Error responses with a handle pass empty offsets (upstream's `"<handle>::"`).
pub fn etag(
    handle: &str,
    request_offset: &str,
    response_offset: &str,
    no_changes_suffix: Option<u64>,
) -> String {
    // Pushed piece by piece: every shape response carries one, and `format!` costs several
    // times as much.
    let mut value =
        String::with_capacity(handle.len() + request_offset.len() + response_offset.len() + 26);
    value.push('"');
    value.push_str(handle);
    value.push(':');
    value.push_str(request_offset);
    value.push(':');
    value.push_str(response_offset);
    if let Some(suffix) = no_changes_suffix {
        value.push(':');
        value.push_str(&suffix.to_string());
    }
    value.push('"');
    value
}

/// `If-None-Match` check of §4.3: every header value is split on `,`, trimmed, and stripped of
/// surrounding `"` (a `W/` prefix is not removed, so weak validators never match).
pub fn if_none_match_matches(header_values: &[&str], etag_unquoted: &str) -> bool {
    header_values
        .iter()
        .flat_map(|value| value.split(','))
        .map(|candidate| trim_quotes(candidate.trim()))
        .any(|candidate| candidate == etag_unquoted)
}

/// Strips leading and trailing `"` characters, like Elixir's `String.trim(s, "\"")`.
fn trim_quotes(text: &str) -> &str {
    text.trim_matches('"')
}

/// `access-control-allow-origin`: the request's `Origin` when exactly one was sent, else `*`.
pub fn allow_origin<'a>(origin_values: &[&'a str]) -> &'a str {
    match origin_values {
        [origin] => origin,
        _ => "*",
    }
}

/// `access-control-allow-methods` for a resolved route.
pub fn allow_methods(is_shape_route: bool) -> &'static str {
    if is_shape_route {
        SHAPE_ROUTE_METHODS
    } else {
        OTHER_ROUTE_METHODS
    }
}

/// `access-control-allow-headers` for an OPTIONS preflight: each `access-control-request-headers`
/// value is kept whole (not split on commas) if it is `if-none-match` or `traceparent` in any
/// case, and the kept values are joined with `,`. `None` means omit the header.
pub fn options_allow_headers(request_header_values: &[&str]) -> Option<String> {
    let kept: Vec<&str> = request_header_values
        .iter()
        .copied()
        .filter(|value| {
            let lower = value.to_lowercase();
            ALLOWED_REQUEST_HEADERS.contains(&lower.as_str())
        })
        .collect();
    (!kept.is_empty()).then(|| kept.join(","))
}

#[cfg(test)]
#[path = "headers_tests.rs"]
mod tests;
