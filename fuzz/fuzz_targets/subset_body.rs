//! Splits an arbitrary subset request (`protocol::subset::split_request` with a POST body) and
//! casts and prepares its `subset` (`cast`, `prepare`) against a fixed table, as
//! `engine::app::subset` does; the body is also cast and prepared directly as a `subset` value.
//!
//! Input layout: the query string (up to the first `\n`, lossily UTF-8), then the JSON body.
//! Oracle: no panic; every error body is JSON (a subset error: `{"message", "errors":
//! {"subset": …}}`); `prepare` fails exactly when `cast` does, with the same error; a cast
//! keeps `limit > 0`, `offset >= 0` and `order_by` when either is set; the rendered `where`
//! and `order_by` are canonical: they parse again and render to themselves.

#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::request::RequestError;
use protocol::subset::{cast, prepare, split_request, SplitError, Subset, SubsetError};
use protocol::where_clause::{self, ColumnType};
use serde_json::{json, Value};

fuzz_target!(|data: &[u8]| {
    let (query, body) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let query = String::from_utf8_lossy(query);
    let columns = columns();
    match split_request(&query, Some(body)) {
        Ok(request) => {
            if let Some(subset) = &request.subset {
                check_subset(subset, &columns);
            }
        }
        Err(SplitError::Request(RequestError::Invalid(errors))) => {
            check_json(&errors.body());
        }
        Err(SplitError::Request(RequestError::MalformedQueryString(_))) => {}
        Err(SplitError::Body(response)) => {
            assert_eq!(response.status, 400);
            check_json(&response.body);
        }
    }
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        check_subset(&value, &columns);
    }
});

/// The table subsets are checked against: every kind of column a clause can compare.
fn columns() -> Vec<ColumnType> {
    let column = |name: &str, type_name: &str, is_array: bool, is_enum: bool| ColumnType {
        name: name.into(),
        type_name: type_name.into(),
        is_array,
        is_enum,
    };
    vec![
        column("id", "int8", false, false),
        column("title", "text", false, false),
        column("Mixed", "int4", false, false),
        column("n", "numeric", false, false),
        column("done", "bool", false, false),
        column("ts", "timestamptz", false, false),
        column("u", "uuid", false, false),
        column("tags", "text", true, false),
        column("mood", "mood", false, true),
    ]
}

fn check_subset(subset: &Value, columns: &[ColumnType]) {
    let cast = cast(subset);
    let prepared = prepare(subset, columns);
    match &cast {
        Ok(cast) => {
            assert!(cast.limit.is_none_or(|limit| limit > 0));
            assert!(cast.offset.is_none_or(|offset| offset >= 0));
            if cast.limit.is_some() || cast.offset.is_some() {
                assert!(cast.order_by.is_some());
            }
        }
        Err(error) => {
            assert_eq!(
                prepared.as_ref().err(),
                Some(error),
                "prepare skipped the cast"
            );
        }
    }
    match prepared {
        Ok(subset) => check_prepared(&subset, columns),
        Err(error) => check_subset_error(&error),
    }
}

fn check_prepared(subset: &Subset, columns: &[ColumnType]) {
    let _ = subset.tail_sql();
    if let Some(sql) = &subset.where_sql {
        let again = where_clause::parse(sql, &[], columns)
            .unwrap_or_else(|error| panic!("rendered where {sql:?} refused: {error}"));
        assert_eq!(&again.to_sql(), sql, "rendered where is not canonical");
    }
    if let Some(sql) = &subset.order_by_sql {
        let again = prepare(&json!({ "order_by": sql }), columns)
            .unwrap_or_else(|error| panic!("rendered order_by {sql:?} refused: {error}"));
        assert_eq!(
            again.order_by_sql.as_ref(),
            Some(sql),
            "order_by not canonical"
        );
    }
}

fn check_subset_error(error: &SubsetError) {
    assert_eq!(error.status(), 400);
    let body = error.body();
    let value = check_json(&body);
    assert_eq!(value["message"], "Invalid request", "{body}");
    let subset = &value["errors"]["subset"];
    assert!(subset.is_object() || subset.is_array(), "{body}");
}

fn check_json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|error| panic!("{body:?} is not JSON: {error}"))
}
