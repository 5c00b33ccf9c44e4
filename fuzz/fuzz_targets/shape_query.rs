//! Decodes and validates an arbitrary query string as every shape route does (`protocol`): the
//! router decodes once (`parse_query_string`) and hands those parameters to
//! `validate_shape_query` (GET/POST), `validate_delete_query` (DELETE), `wants_subset`, and
//! `split_params` without a body (a GET subset request); the one-call wrappers
//! (`parse_shape_query`, `parse_delete_query`, `split_request`) decode themselves.
//!
//! Input layout: the whole input is the raw query (after `?`); bytes that are not UTF-8 are
//! replaced, as the request target is a `String` by then.
//! Oracle: no panic; every 400 body is a JSON object with `message` and `errors`; an
//! undecodable query fails every wrapper the same way; the decoded keys are sorted and unique
//! and each is found by lookup; `wants_subset` is true exactly for a `subset` or `subset__*`
//! key; an accepted shape request keeps the rules it was validated by (a table, a handle
//! exactly when the offset is a position, no `live` with `-1`/`now`, `live_sse` only with
//! `live`) and its offset and table print back to the same values; validating the decoded
//! parameters gives what the wrappers give; without subset keys, `split_params` (which
//! rebuilds the parameters as a POST body merge does) accepts exactly what GET validation
//! accepts, with the same result.

#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::ident::{parse_table, quote_table};
use protocol::offset::OffsetParam;
use protocol::query_string::{parse_query_string, QueryParams};
use protocol::request::{
    parse_delete_query, parse_shape_query, validate_delete_query, validate_shape_query,
    RequestError, ShapeQuery,
};
use protocol::subset::{split_params, split_request, wants_subset, SplitError};

fuzz_target!(|data: &[u8]| {
    let raw = String::from_utf8_lossy(data);
    let params = match parse_query_string(&raw) {
        Ok(params) => params,
        Err(error) => {
            let malformed = RequestError::MalformedQueryString(error);
            assert_eq!(parse_shape_query(&raw).err(), Some(malformed.clone()));
            assert_eq!(parse_delete_query(&raw).err(), Some(malformed.clone()));
            assert_eq!(
                split_request(&raw, None).err(),
                Some(SplitError::Request(malformed))
            );
            return;
        }
    };
    check_lookup(&params);
    let has_subset_key = params
        .keys()
        .any(|key| key == "subset" || key.starts_with("subset__"));
    assert_eq!(wants_subset(&params), has_subset_key, "wants_subset");

    let shape = validate_shape_query(&params).map_err(RequestError::Invalid);
    let delete = validate_delete_query(&params).map_err(RequestError::Invalid);
    let split = split_params(&params, None);
    assert_eq!(parse_shape_query(&raw), shape, "GET wrapper");
    assert_eq!(parse_delete_query(&raw), delete, "DELETE wrapper");
    assert_eq!(split_request(&raw, None), split, "split wrapper");

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

/// Keys come sorted and once each (lookups are a binary search), and each is found.
fn check_lookup(params: &QueryParams<'_>) {
    let keys: Vec<&str> = params.keys().collect();
    assert!(keys.windows(2).all(|pair| pair[0] < pair[1]), "{keys:?}");
    for (key, value) in params.iter() {
        assert_eq!(params.get(key), Some(value));
        assert!(params.has_key_starting_with(key));
    }
}

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
