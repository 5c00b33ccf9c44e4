//! Decodes and validates an arbitrary query string as every shape route does (`protocol`):
//! `parse_query_string`, `parse_shape_query` (GET/POST), `parse_delete_query` (DELETE),
//! `query_has_subset`, and `split_request` without a body (a GET subset request).
//!
//! Input layout: the whole input is the raw query (after `?`); bytes that are not UTF-8 are
//! replaced, as the request target is a `String` by then.
//! Oracle: no panic; every 400 body is a JSON object with `message` and `errors`; an
//! undecodable query fails every route the same way; `query_has_subset` never misses a
//! subset key; an accepted shape request keeps the rules it was validated by (a table, a
//! handle exactly when the offset is a position, no `live` with `-1`/`now`, `live_sse` only
//! with `live`) and its offset and table print back to the same values; without subset keys,
//! `split_request` accepts exactly what `parse_shape_query` accepts, with the same result.

#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::ident::{parse_table, quote_table};
use protocol::offset::OffsetParam;
use protocol::query_string::parse_query_string;
use protocol::request::{parse_delete_query, parse_shape_query, RequestError, ShapeQuery};
use protocol::subset::{query_has_subset, split_request, SplitError};

fuzz_target!(|data: &[u8]| {
    let raw = String::from_utf8_lossy(data);
    let decoded = parse_query_string(&raw);
    let has_subset_key = decoded.as_ref().is_ok_and(|params| {
        params
            .keys()
            .any(|key| key == "subset" || key.starts_with("subset__"))
    });
    if has_subset_key {
        assert!(
            query_has_subset(&raw),
            "query_has_subset missed a subset key"
        );
    }

    let shape = parse_shape_query(&raw);
    let delete = parse_delete_query(&raw);
    let split = split_request(&raw, None);
    if let Err(error) = &decoded {
        let malformed = RequestError::MalformedQueryString(error.clone());
        assert_eq!(shape.as_ref().err(), Some(&malformed));
        assert_eq!(delete.as_ref().err(), Some(&malformed));
        assert_eq!(split.as_ref().err(), Some(&SplitError::Request(malformed)));
        return;
    }

    match &shape {
        Ok(query) => check_shape(query),
        Err(error) => check_request_error(error),
    }
    match &delete {
        Ok(query) => assert!(query.table.is_some() || query.handle.is_some()),
        Err(error) => check_request_error(error),
    }
    match &split {
        Ok(request) => check_shape(&request.query),
        Err(SplitError::Request(error)) => check_request_error(error),
        Err(SplitError::Body(_)) => panic!("a body error without a body"),
    }
    if !has_subset_key {
        match (&shape, &split) {
            (Ok(query), Ok(request)) => {
                assert_eq!(query, &request.query, "GET and split disagree");
                assert_eq!(request.subset, None);
            }
            (Err(error), Err(SplitError::Request(split_error))) => {
                assert_eq!(error, split_error, "GET and split refuse differently");
            }
            (shape, split) => panic!("GET and split disagree: {shape:?} vs {split:?}"),
        }
    }
});

fn check_shape(query: &ShapeQuery) {
    let table = query
        .table
        .as_ref()
        .expect("an accepted request names its table");
    assert_eq!(parse_table(&quote_table(table)).as_ref(), Ok(table));
    let printed = query.offset.to_string();
    assert_eq!(printed.parse::<OffsetParam>(), Ok(query.offset));
    match query.offset {
        OffsetParam::BeforeAll | OffsetParam::Now => {
            assert!(query.handle.is_none() && !query.live);
        }
        OffsetParam::At(_) => assert!(query.handle.is_some()),
    }
    assert!(!query.live_sse || query.live);
    assert!(query.params_error.is_none() || query.params.is_empty());
    if let Some(errors) = query.unsupported_option() {
        check_body(&errors.body());
    }
}

fn check_request_error(error: &RequestError) {
    match error {
        RequestError::Invalid(errors) => {
            assert!(!errors.is_empty());
            assert_eq!(errors.status(), 400);
            check_body(&errors.body());
        }
        RequestError::MalformedQueryString(_) => panic!("decoding succeeded"),
    }
}

/// A 400 body is `{"message": …, "errors": {…}}`.
fn check_body(body: &str) {
    let value: serde_json::Value = serde_json::from_str(body).expect("error bodies are JSON");
    assert!(value["message"].is_string(), "{body}");
    assert!(value["errors"].is_object(), "{body}");
}
