//! Black-box tests of request validation (protocol §2.1–§2.3): every 400 has the exact upstream
//! body, JSON content type, `cache-control: no-store` + `surrogate-control: no-store`, and no
//! shape headers.

mod support;

use serde_json::{json, Value};
use support::{cluster, enc, Env, Opts, JSON_CT};

const SETUP: &str = r#"
CREATE TABLE t (id int PRIMARY KEY, v text, "Val" text, n int);
INSERT INTO t VALUES (1, 'a', 'A', 1), (2, 'b', 'B', 2);
"#;

fn invalid(field: &str, msg: &str) -> Value {
    json!({"message": "Invalid request", "errors": {field: [msg]}})
}

#[track_caller]
fn assert_400(c: &support::Client, query: &str, expected: &Value) {
    let r = c.get(&format!("/v1/shape?{query}"));
    assert_eq!(r.status, 400, "{query}: {}", r.body_str());
    assert_eq!(&r.json(), expected, "{query}");
    assert_eq!(r.header("content-type"), Some(JSON_CT), "{query}");
    assert_eq!(r.header("cache-control"), Some("no-store"), "{query}");
    assert_eq!(r.header("surrogate-control"), Some("no-store"), "{query}");
    for h in [
        "electric-handle",
        "electric-offset",
        "electric-schema",
        "electric-has-data",
        "electric-up-to-date",
        "electric-cursor",
        "etag",
    ] {
        assert!(!r.has(h), "{query}: unexpected {h}");
    }
}

#[test]
fn offset_handle_live_table_and_enum_errors() {
    let cluster = cluster();
    let env = Env::start(&cluster, SETUP, Opts::default());
    let c = env.client();

    assert_400(&c, "table=t", &invalid("offset", "can't be blank"));
    for bad in [
        "10", "1_2_3", "0_-1", "10_32.1", "invalid", "0_1%20", "-2", "_1", "1_", "0_inf0",
    ] {
        assert_400(
            &c,
            &format!("table=t&offset={bad}&handle=1-1"),
            &invalid("offset", "has invalid format"),
        );
    }
    assert_400(
        &c,
        "table=t&offset=0_0",
        &invalid("handle", "can't be blank when offset != -1"),
    );
    for live in ["true", "1", "yes", ""] {
        assert_400(
            &c,
            &format!("table=t&offset=-1&live={live}"),
            &invalid("live", "can't be true when offset == -1"),
        );
    }
    assert_400(
        &c,
        "table=t&offset=now&live=true",
        &invalid("live", "can't be true when offset is 'now'"),
    );
    assert_400(&c, "offset=-1", &invalid("table", "can't be blank"));
    assert_400(
        &c,
        "table=nope&offset=-1",
        &invalid(
            "table",
            r#"Table "public"."nope" does not exist. If the table name contains capitals or special characters you must quote it."#,
        ),
    );
    // Unquoted names are lower-cased before the lookup.
    assert_400(
        &c,
        "table=Nope&offset=-1",
        &invalid(
            "table",
            r#"Table "public"."nope" does not exist. If the table name contains capitals or special characters you must quote it."#,
        ),
    );
    assert_400(
        &c,
        "table=.t&offset=-1",
        &invalid("table", "Invalid zero-length delimited identifier"),
    );
    assert_400(
        &c,
        "table=t&offset=-1&replica=half",
        &invalid("replica", "is invalid"),
    );
    assert_400(
        &c,
        "table=t&offset=-1&log=partial",
        &invalid("log", "is invalid"),
    );

    // The valid spellings are accepted.
    c.get("/v1/shape?table=t&offset=-1&replica=full")
        .expect(200);
    c.get("/v1/shape?table=t&offset=-1&log=changes_only")
        .expect(200);
    c.get("/v1/shape?table=public.t&offset=-1").expect(200);
    c.get("/v1/shape?table=%22t%22&offset=-1").expect(200);
    // `live=false` is not live, so it is allowed with -1.
    c.get("/v1/shape?table=t&offset=-1&live=false").expect(200);
}

#[test]
fn columns_where_and_params_errors() {
    let cluster = cluster();
    let env = Env::start(&cluster, SETUP, Opts::default());
    let c = env.client();

    assert_400(
        &c,
        "table=t&offset=-1&columns=id,nope",
        &invalid(
            "columns",
            "The following columns are not found on the table: nope",
        ),
    );
    assert_400(
        &c,
        "table=t&offset=-1&columns=v",
        &invalid(
            "columns",
            "The list of columns must include all primary key columns, missing: id",
        ),
    );
    for empty in ["id,", ",id", "id,,v", "%22%22"] {
        assert_400(
            &c,
            &format!("table=t&offset=-1&columns={empty}"),
            &invalid("columns", "Invalid zero-length delimited identifier"),
        );
    }
    // Unquoted `Val` is `val`, which does not exist; quoted it does.
    assert_400(
        &c,
        "table=t&offset=-1&columns=id,Val",
        &invalid(
            "columns",
            "The following columns are not found on the table: val",
        ),
    );
    assert_400(
        &c,
        &format!("table=t&offset=-1&columns={}", enc(r#""id,"v""#)),
        &invalid(
            "columns",
            r#"Invalid unquoted identifier contains special characters: "id"#,
        ),
    );
    let ok = c.get(&format!(
        "/v1/shape?table=t&offset=-1&columns={}",
        enc(r#"id,"Val""#)
    ));
    ok.expect(200);
    assert_eq!(
        ok.items()[0]["value"],
        json!({"id": "1", "Val": "A"}),
        "{}",
        ok.body_str()
    );
    let schema: Value = serde_json::from_str(ok.h("electric-schema")).expect("schema JSON");
    assert_eq!(
        schema,
        json!({"id": {"type": "int4", "pk_index": 0, "not_null": true}, "Val": {"type": "text"}})
    );

    assert_400(
        &c,
        &format!("table=t&offset=-1&where={}", enc("1 x 1")),
        &invalid("where", r#"At location 17: syntax error at or near "x""#),
    );
    assert_400(
        &c,
        &format!("table=t&offset=-1&where={}&params%5Ba%5D=1", enc("id > 0")),
        &invalid("params", "Parameters can only use numbers as keys"),
    );
    assert_400(
        &c,
        &format!("table=t&offset=-1&where={}&params%5B2%5D=1", enc("id > 0")),
        &invalid(
            "params",
            "Parameters must be numbered sequentially, starting from 1",
        ),
    );
    assert_400(
        &c,
        &format!("table=t&offset=-1&where={}", enc("v")),
        &invalid("where", "WHERE clause must return a boolean"),
    );

    // Parameters are typed values, never SQL: an injection attempt matches nothing.
    let ok = c.get(&format!(
        "/v1/shape?table=t&offset=-1&where={}&params%5B1%5D={}",
        enc("v = $1"),
        enc("'nope' OR TRUE")
    ));
    ok.expect(200);
    let items = ok.items();
    assert_eq!(items.len(), 1, "{}", ok.body_str());
    assert_eq!(items[0]["headers"]["control"], "snapshot-end");
    let ok = c.get(&format!(
        "/v1/shape?table=t&offset=-1&where={}&params%5B1%5D=2",
        enc("id = $1")
    ));
    ok.expect(200);
    assert_eq!(ok.items()[0]["value"]["id"], "2");
    assert_eq!(ok.items().len(), 2);
}

#[test]
fn arithmetic_in_where_is_supported() {
    let cluster = cluster();
    let env = Env::start(&cluster, SETUP, Opts::default());
    let c = env.client();
    let r = c.get(&format!(
        "/v1/shape?table=t&offset=-1&where={}",
        enc("id + 1 > 2")
    ));
    r.expect(200);
    let items = r.items();
    assert_eq!(items.len(), 2, "{}", r.body_str());
    assert_eq!(items[0]["value"]["id"], "2");
    let r = c.get(&format!(
        "/v1/shape?table=t&offset=-1&where={}",
        enc("v || 'x' = 'ax'")
    ));
    r.expect(200);
    assert_eq!(r.items()[0]["value"]["id"], "1");
}

/// A WHERE that decodes to a NUL byte followed by `none` once shared the definition cache's key
/// for "no WHERE": after an unfiltered request, it was answered with the whole table instead
/// of a 400.
#[test]
fn a_where_spelling_the_cache_marker_is_not_the_shape_without_where() {
    let cluster = cluster();
    let env = Env::start(&cluster, SETUP, Opts::default());
    let c = env.client();
    let all = c.get("/v1/shape?table=t&offset=-1");
    assert_eq!(all.status, 200, "{}", all.body_str());
    for w in ["\0none", "\0", "none"] {
        let r = c.get(&format!("/v1/shape?table=t&offset=-1&where={}", enc(w)));
        assert_eq!(r.status, 400, "where={w:?}: {}", r.body_str());
        assert!(!r.has("electric-handle"), "where={w:?} resolved to a shape");
    }
}
