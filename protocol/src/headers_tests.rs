use super::*;
use crate::offset::LogOffset;

fn get(offset: OffsetParam) -> CacheCase {
    CacheCase {
        method_is_get: true,
        status: 200,
        has_handle: true,
        offset: Some(offset),
        live: false,
        live_sse: false,
        max_age_secs: 60,
        stale_age_secs: 300,
        sse_timeout_ms: 60_000,
        send_cache_headers: true,
    }
}

fn cc(case: CacheCase) -> String {
    cache_control(&case).expect("header set")
}

const AT: OffsetParam = OffsetParam::At(LogOffset::new(0, 0));

#[test]
fn cache_control_matrix() {
    assert_eq!(
        cc(get(OffsetParam::BeforeAll)),
        "public, max-age=604800, s-maxage=3600, stale-while-revalidate=2629746"
    );
    assert_eq!(
        cc(get(AT)),
        "public, max-age=60, stale-while-revalidate=300"
    );
    assert_eq!(
        cc(get(OffsetParam::Now)),
        "public, max-age=60, stale-while-revalidate=300"
    );
    let dev = CacheCase {
        max_age_secs: 1,
        stale_age_secs: 3,
        ..get(AT)
    };
    assert_eq!(cc(dev), "public, max-age=1, stale-while-revalidate=3");
    let live = CacheCase {
        live: true,
        ..get(AT)
    };
    assert_eq!(cc(live), "public, max-age=5, stale-while-revalidate=5");
    let sse = CacheCase {
        live_sse: true,
        ..live
    };
    assert_eq!(cc(sse), "public, max-age=59");
    let short_sse = CacheCase {
        sse_timeout_ms: 1500,
        ..sse
    };
    assert_eq!(cc(short_sse), "public, max-age=1");
    // `live_sse` without `live` cannot pass validation; the rule needs both anyway.
    let sse_only = CacheCase {
        live_sse: true,
        ..get(AT)
    };
    assert_eq!(
        cc(sse_only),
        "public, max-age=60, stale-while-revalidate=300"
    );
}

#[test]
fn errors_and_methods() {
    let conflict = CacheCase {
        status: 409,
        offset: None,
        ..get(AT)
    };
    assert_eq!(cc(conflict), "public, max-age=60, must-revalidate");
    let conflict_without_handle = CacheCase {
        has_handle: false,
        ..conflict
    };
    assert_eq!(
        cc(conflict_without_handle),
        "public, max-age=1, must-revalidate"
    );
    assert_eq!(surrogate_control(&conflict), None);

    let bad = CacheCase {
        status: 400,
        has_handle: false,
        ..get(OffsetParam::BeforeAll)
    };
    assert_eq!(cc(bad), "no-store");
    assert_eq!(surrogate_control(&bad), Some("no-store"));
    let unavailable = CacheCase { status: 503, ..bad };
    assert_eq!(cc(unavailable), "no-store");

    for status in [200, 202, 400, 409, 503] {
        let post = CacheCase {
            method_is_get: false,
            status,
            ..get(OffsetParam::BeforeAll)
        };
        assert_eq!(cc(post), "no-cache");
        assert_eq!(surrogate_control(&post), None);
    }
    assert_eq!(surrogate_control(&get(AT)), None);

    let embedded = CacheCase {
        send_cache_headers: false,
        ..bad
    };
    assert_eq!(cache_control(&embedded), None);
    assert_eq!(surrogate_control(&embedded), None);
}

#[test]
fn etag_formats() {
    assert_eq!(
        etag("3833821-1721812114261", "-1", "0_0", None),
        r#""3833821-1721812114261:-1:0_0""#
    );
    assert_eq!(
        etag("h", "26800584_4", "26800584_4", None),
        r#""h:26800584_4:26800584_4""#
    );
    assert_eq!(etag("h", "0_0", "0_0", Some(123)), r#""h:0_0:0_0:123""#);
    assert_eq!(etag("h", "", "", None), r#""h::""#);
}

#[test]
fn if_none_match_parsing() {
    let tag = "h:-1:0_0";
    assert!(if_none_match_matches(&[r#""h:-1:0_0""#], tag));
    assert!(if_none_match_matches(&["h:-1:0_0"], tag));
    assert!(if_none_match_matches(&[r#""a", "h:-1:0_0""#], tag));
    assert!(if_none_match_matches(&["\"x\"", " \"h:-1:0_0\" "], tag));
    assert!(if_none_match_matches(&[r#"""h:-1:0_0"""#], tag));
    assert!(!if_none_match_matches(&[r#"W/"h:-1:0_0""#], tag));
    assert!(!if_none_match_matches(&["*"], tag));
    assert!(!if_none_match_matches(&[], tag));
    assert!(!if_none_match_matches(&[r#""h:-1:0_1""#], tag));
}

#[test]
fn cors_helpers() {
    assert_eq!(
        allow_origin(&["https://app.example"]),
        "https://app.example"
    );
    assert_eq!(allow_origin(&[]), "*");
    assert_eq!(allow_origin(&["a", "b"]), "*");
    assert_eq!(allow_methods(true), "GET, POST, HEAD, DELETE, OPTIONS");
    assert_eq!(allow_methods(false), "GET, HEAD");
    assert_eq!(
        EXPOSE_HEADERS,
        "electric-cursor,electric-handle,electric-has-data,electric-offset,electric-schema,\
         electric-up-to-date,electric-internal-known-error,retry-after"
            .replace(' ', "")
    );
    assert!(!EXPOSE_HEADERS.contains(' '));
    assert_eq!(ELECTRIC_SERVER_VALUE, "ElectricSQL/1.7.12");
}

#[test]
fn options_allow_headers_filtering() {
    assert_eq!(options_allow_headers(&[]), None);
    assert_eq!(options_allow_headers(&["content-type"]), None);
    assert_eq!(
        options_allow_headers(&["If-None-Match", "x-custom", "traceparent"]),
        Some("If-None-Match,traceparent".to_owned())
    );
    // Values are not split on commas: a combined value is not an allowed name.
    assert_eq!(options_allow_headers(&["if-none-match, traceparent"]), None);
}
