//! Subset casting, validation and request splitting: exact upstream messages, and SQL that is
//! rebuilt from parse trees (never copied from the input).

use super::*;
use serde_json::json;

fn columns() -> Vec<ColumnType> {
    let column = |name: &str, type_name: &str| ColumnType {
        name: name.into(),
        type_name: type_name.into(),
        is_array: false,
        is_enum: false,
    };
    vec![
        column("id", "int8"),
        column("title", "text"),
        column("Mixed", "int4"),
    ]
}

/// Upstream's 400 body around the `errors.subset` value.
fn wrapped(subset_errors: &str) -> String {
    format!(r#"{{"message":"Invalid request","errors":{{"subset":{subset_errors}}}}}"#)
}

fn error(subset: serde_json::Value) -> String {
    prepare(&subset, &columns()).unwrap_err().body()
}

#[test]
fn limit_or_offset_without_order_by() {
    assert_eq!(
        error(json!({"limit": "10"})),
        wrapped(r#"{"order_by":["order_by is required when limit or offset is present"]}"#)
    );
    assert_eq!(
        error(json!({"offset": 0})),
        wrapped(r#"{"order_by":["order_by is required when limit or offset is present"]}"#)
    );
}

#[test]
fn number_checks_collect_together() {
    assert_eq!(
        error(json!({"limit": "0", "offset": "-1", "order_by": "id"})),
        wrapped(
            r#"{"limit":["must be greater than 0"],"offset":["must be greater than or equal to 0"]}"#
        )
    );
    assert_eq!(
        error(json!({"limit": "ten", "offset": 1.5, "where": 3, "order_by": "id"})),
        wrapped(r#"{"limit":["is invalid"],"offset":["is invalid"],"where":["is invalid"]}"#)
    );
    assert_eq!(
        error(json!({"limit": "99999999999999999999", "order_by": "id"})),
        wrapped(r#"{"limit":["is invalid"]}"#)
    );
    assert_eq!(error(json!("nope")), wrapped(r#"["is invalid"]"#));
}

#[test]
fn params_forms() {
    let ok = |params: serde_json::Value| {
        prepare(
            &json!({"where": "id = $1 AND title = $2", "params": params}),
            &columns(),
        )
        .unwrap()
        .where_sql
        .unwrap()
    };
    let from_string = ok(json!(r#"{"1":"5","2":"it's"}"#));
    let from_map = ok(json!({"1": 5, "2": "it's"}));
    assert_eq!(from_string, from_map);
    assert!(from_string.contains("'it''s'"), "{from_string}");
    assert_eq!(
        error(json!({"where": "id = $1", "params": "{"})),
        wrapped(r#"{"params":["params must be valid JSON"]}"#)
    );
    assert_eq!(
        error(json!({"where": "id = $1", "params": "[1]"})),
        wrapped(r#"{"params":["params must be a JSON object"]}"#)
    );
    assert_eq!(
        error(json!({"where": "id = $1", "params": {"a": "1"}})),
        wrapped(r#"{"params":["Parameters can only use numbers as keys"]}"#)
    );
    assert_eq!(
        error(json!({"where": "id = $1", "params": {"2": "1"}})),
        wrapped(r#"{"params":["Parameters must be numbered sequentially, starting from 1"]}"#)
    );
}

#[test]
fn where_errors() {
    assert_eq!(
        error(json!({"where": "id IN (SELECT 1)"})),
        wrapped(r#"{"where":["Subqueries are not allowed in subsets"]}"#)
    );
    assert_eq!(
        error(json!({"where": "nope = 1"})),
        wrapped(r#"{"where":["At location 0: unknown reference nope"]}"#)
    );
    assert_eq!(
        error(json!({"where": "id + 1"})),
        wrapped(r#"{"where":["WHERE clause must return a boolean"]}"#)
    );
}

#[test]
fn order_by_renders_from_the_tree() {
    let subset = prepare(
        &json!({"order_by": "title desc nulls last, \"Mixed\", id ASC", "limit": 5, "offset": "2"}),
        &columns(),
    )
    .unwrap();
    assert_eq!(
        subset.order_by_sql.as_deref(),
        Some(r#""title" DESC NULLS LAST, "Mixed", "id" ASC"#)
    );
    assert_eq!(
        subset.tail_sql(),
        r#" ORDER BY "title" DESC NULLS LAST, "Mixed", "id" ASC LIMIT 5 OFFSET 2"#
    );
}

#[test]
fn order_by_refuses_expressions() {
    let order_by_error = |text: &str| error(json!({"order_by": text}));
    assert_eq!(
        order_by_error("lower(title)"),
        wrapped(
            r#"{"order_by":["At location 18: FuncCall expressions are not allowed in ORDER BY clauses"]}"#
        )
    );
    assert_eq!(
        order_by_error("$1"),
        wrapped(
            r#"{"order_by":["At location 18: parameter $1 is not supported in ORDER BY clauses"]}"#
        )
    );
    assert_eq!(
        order_by_error("nope"),
        wrapped(r#"{"order_by":["At location 18: unknown reference nope"]}"#)
    );
    assert!(order_by_error("id; DROP TABLE x").contains("Unexpected `;` in order by"));
    assert!(order_by_error("id LIMIT 1").contains("malformed query"));
    assert!(order_by_error("id::text").contains("TypeCast expressions are not allowed"));
    assert!(order_by_error("(SELECT 1)").contains("SubLink expressions are not allowed"));
    assert!(order_by_error("1").contains("A_Const expressions are not allowed"));
}

#[test]
fn get_subset_keys_are_gathered() {
    let split = split_request(
        "table=items&offset=-1&subset__where=id%3E1&subset__limit=2&subset__order_by=id&subset__where_expr=x",
        None,
    )
    .unwrap();
    assert_eq!(
        split.subset,
        Some(json!({"where": "id>1", "limit": "2", "order_by": "id", "where_expr": "x"}))
    );
    assert_eq!(split.query.table.unwrap().name, "items");
    assert!(!split.query.has_subset);
    let plain = split_request("table=items&offset=-1", None).unwrap();
    assert_eq!(plain.subset, None);
    let wants =
        |query: &str| wants_subset(&crate::query_string::parse_query_string(query).unwrap());
    assert!(wants("a=1&subset__limit=1"));
    assert!(wants("a=1&%73ubset__limit=1"));
    assert!(wants("a=1&subset[limit]=1"));
    assert!(!wants("table=items&offset=-1"));
    assert!(!wants("table=subset&subsetx=1&where=subset__x"));
}

#[test]
fn post_body_merges_over_the_query() {
    let body =
        br#"{"where":"id > 1","limit":3,"order_by":"id","params":{"1":"x"},"log":"changes_only"}"#;
    let split = split_request("table=items&offset=now&subset__offset=1", Some(body)).unwrap();
    assert_eq!(
        split.subset,
        Some(
            json!({"where": "id > 1", "limit": 3, "order_by": "id", "params": {"1": "x"}, "offset": "1"})
        )
    );
    assert_eq!(split.query.log, crate::request::LogMode::ChangesOnly);
    // A `subset` object: every other body key is a shape parameter (here: the shape's where).
    let body = br#"{"subset":{"limit":1},"where":"id > 0"}"#;
    let split = split_request("table=items&offset=-1", Some(body)).unwrap();
    assert_eq!(split.subset, Some(json!({"limit": 1})));
    assert_eq!(split.query.where_clause.as_deref(), Some("id > 0"));
    // No subset keys at all: an ordinary shape request.
    let split = split_request("offset=-1", Some(br#"{"table":"items"}"#)).unwrap();
    assert_eq!(split.subset, None);
    assert_eq!(split.query.table.unwrap().name, "items");
}

/// Found by the `shape_query` fuzz target: the shape parameters of a split request were
/// encoded back into a query string and decoded again, which nested keys with brackets (the
/// plain query key `params]` came back as `params`), so GET and POST validated differently.
#[test]
fn split_keeps_bracketed_keys_literal() {
    for query in [
        "params]]=a&table=t&offset=-1",
        "table=t&offset=-1&where]=x&params[1]]=2",
        "params]]=a",
    ] {
        let split = split_request(query, None).map(|r| r.query);
        let get = crate::request::parse_shape_query(query).map_err(SplitError::Request);
        assert_eq!(split, get, "{query}");
    }
    // A body key is a key: `params[1]` is not the `params` map.
    let body = br#"{"params[1]":"5","table]":"x"}"#;
    let split = split_request("table=items&offset=-1", Some(body)).unwrap();
    assert!(split.query.params.is_empty());
    assert_eq!(split.query.table.unwrap().name, "items");
    // Body scalars are text; null and empty containers are absent, as before.
    let body = br#"{"table":"items","replica":null,"columns":[],"params":{}}"#;
    let split = split_request("offset=-1", Some(body)).unwrap();
    assert_eq!(split.query.columns, None);
    assert!(split.query.params.is_empty());
}

#[test]
fn bad_bodies() {
    let body_error = |body: &[u8]| match split_request("table=t&offset=-1", Some(body)) {
        Err(SplitError::Body(e)) => (e.status, e.body),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        body_error(b"[1]"),
        (
            400,
            r#"{"error":"Request body must be a JSON object"}"#.to_owned()
        )
    );
    let (status, body) = body_error(b"{nope");
    assert_eq!(status, 400);
    assert!(body.starts_with(r#"{"error":"Invalid JSON in request body","details":"#));
}

#[test]
fn query_error_body_is_a_bare_string() {
    assert_eq!(
        query_error_body("where", "invalid input value for enum mood: \"x\""),
        wrapped(r#"{"where":"invalid input value for enum mood: \"x\""}"#)
    );
}

#[test]
fn response_head_and_marked_rows() {
    let metadata = SnapshotMetadata {
        xmin: 740,
        xmax: 745,
        xip_list: vec![740, 742],
        snapshot_mark: 7,
        database_lsn: 24_615_304,
    };
    let mut body = metadata.response_head();
    body.push(b'[');
    push_row_with_mark(
        &mut body,
        br#"{"key":"k","value":{},"headers":{"operation":"insert","relation":["public","t"]}}"#,
        7,
    );
    body.push(b']');
    body.extend_from_slice(RESPONSE_TAIL);
    let text = String::from_utf8(body).unwrap();
    assert_eq!(
        text,
        concat!(
            r#"{"metadata":{"database_lsn":"24615304","snapshot_mark":7,"#,
            r#""xip_list":["740","742"],"xmax":"745","xmin":"740"}, "data": "#,
            r#"[{"key":"k","value":{},"headers":{"operation":"insert","#,
            r#""relation":["public","t"],"snapshot_mark":7}}]}"#
        )
    );
    let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(parsed["data"][0]["headers"]["snapshot_mark"], 7);
}

#[test]
fn columns_outside_the_allow_list_are_unknown() {
    // The engine passes only the `queryable_columns` of the table; the others fail as unknown.
    let queryable: Vec<ColumnType> = columns()
        .into_iter()
        .filter(|c| c.name != "title")
        .collect();
    let refused = |subset: serde_json::Value| prepare(&subset, &queryable).unwrap_err().body();
    assert_eq!(
        refused(json!({"where": "title = 'x'"})),
        wrapped(r#"{"where":["At location 0: unknown reference title"]}"#)
    );
    assert_eq!(
        refused(json!({"order_by": "title", "limit": 1})),
        wrapped(r#"{"order_by":["At location 18: unknown reference title"]}"#)
    );
    let allowed = prepare(
        &json!({"where": "\"Mixed\" > 1", "order_by": "id DESC"}),
        &queryable,
    )
    .expect("queryable columns are usable");
    assert_eq!(allowed.order_by_sql.as_deref(), Some("\"id\" DESC"));
}
