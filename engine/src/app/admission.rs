//! Admission control (`ELECTRIC_MAX_CONCURRENT_REQUESTS`, §2.3): at most N shape requests in
//! flight per node without a handle ("initial": they may start snapshots) and M with one
//! ("existing": catch-up reads and live requests). Past a limit the request gets upstream's 503
//! at once, before any work. One node-wide atomic per kind: a request costs one increment and
//! one decrement, no lock.
//!
//! Differences from upstream, on purpose: a request that names a handle counts as existing even
//! if the handle is unknown (upstream looks it up; such requests end in a 409 at once), and the
//! permit is held until the handler returns, so an SSE stream holds it for its head only (its
//! producer is accounted in `ampere_live_connections`).

use super::core::Core;
use crate::http::Response;
use crate::metrics::AdmissionKind;
use protocol::query_string::QueryParams;
use std::sync::atomic::{AtomicI64, Ordering};

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

/// Takes a slot, or answers upstream's 503.
pub fn try_acquire(core: &Core, kind: AdmissionKind) -> Result<Permit<'_>, Response> {
    let metrics = &core.shared.metrics;
    let limits = core.shared.config.max_concurrent_requests;
    let (gauge, limit, name) = match kind {
        AdmissionKind::Initial => (&metrics.admitted_initial, limits.initial, "initial"),
        AdmissionKind::Existing => (&metrics.admitted_existing, limits.existing, "existing"),
    };
    let now = gauge.fetch_add(1, Ordering::AcqRel) + 1;
    let permit = Permit(gauge);
    if u64::try_from(now).unwrap_or(0) <= limit {
        return Ok(permit);
    }
    drop(permit);
    metrics.core(core.id).record_rejection(kind);
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
