//! Black-box tests of `queryable_columns` (protocol §2.1, §2.3, §2.6) and of the parameters
//! Ampere refuses instead of ignoring, against a real `ampere` and Postgres. Each test states
//! its goal; error bodies are compared byte for byte with upstream's (or, for the refusals that
//! are Ampere's own, with upstream's error-body shape).

mod support;

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use support::{cluster, enc, Env, Opts, JSON_CT};

/// `g.b` is generated: Postgres 15 cannot publish it, so a shape may not select it.
const SETUP: &str = "CREATE TABLE items (id int8 PRIMARY KEY, title text NOT NULL, n int4);
    INSERT INTO items VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', 3), (4, 'b', NULL);
    CREATE TABLE g (id int4 PRIMARY KEY, a int4, b int4 GENERATED ALWAYS AS (a * 2) STORED);
    INSERT INTO g (id, a) VALUES (1, 10);";

const BASE: &str = "/v1/shape?table=items&offset=-1";

/// Upstream's 400 body with one message on one field (`message` first, as upstream sends).
fn invalid(field: &str, message: &str) -> String {
    format!(
        r#"{{"message":"Invalid request","errors":{{{}:[{}]}}}}"#,
        json!(field),
        json!(message)
    )
}

/// [`invalid`] nested under `subset`.
fn subset_invalid(field: &str, message: &str) -> String {
    format!(
        r#"{{"message":"Invalid request","errors":{{"subset":{{{}:[{}]}}}}}}"#,
        json!(field),
        json!(message)
    )
}

/// Status, selected headers and body of a `POST` (the support client sends no bodies).
struct Posted {
    status: u16,
    cache_control: Option<String>,
    body: String,
}

fn post(env: &Env<'_>, target: &str, body: &[u8]) -> Posted {
    let mut s = TcpStream::connect(("127.0.0.1", env.server.port)).expect("connect");
    let head = format!(
        "POST {target} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).expect("write head");
    s.write_all(body).expect("write body");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("head end");
    let status = head[9..12].parse().expect("status");
    let cache_control = head
        .split("\r\n")
        .filter_map(|l| l.split_once(": "))
        .find(|(k, _)| k.eq_ignore_ascii_case("cache-control"))
        .map(|(_, v)| v.to_string());
    Posted {
        status,
        cache_control,
        body: body.to_string(),
    }
}

/// The sorted column names of a log response's rows, and the ids in key order.
fn row_columns_and_ids(items: &[Value]) -> (Vec<Vec<String>>, Vec<String>) {
    let rows: Vec<&Value> = items.iter().filter(|m| m["key"].is_string()).collect();
    let mut columns: Vec<Vec<String>> = rows
        .iter()
        .map(|m| {
            let mut names: Vec<String> = m["value"]
                .as_object()
                .expect("value object")
                .keys()
                .cloned()
                .collect();
            names.sort();
            names
        })
        .collect();
    columns.dedup();
    let mut ids: Vec<String> = rows
        .iter()
        .map(|m| m["value"]["id"].as_str().expect("id").to_string())
        .collect();
    ids.sort();
    (columns, ids)
}

/// Goal: every `queryable_columns` (and `columns`) failure answers upstream's exact 400, in
/// upstream's order: the allow-list is checked before `columns`, and a `columns` list missing
/// its PK reports that before unknown names. DELETE validates the allow-list the same way.
#[test]
fn validation_errors_are_exact() {
    let cluster = cluster();
    let env = Env::start(&cluster, SETUP, Opts::default());
    let c = env.client();
    let missing_pk = invalid(
        "queryable_columns",
        "The list of queryable columns must include all primary key columns, missing: id",
    );
    let cases: Vec<(String, String)> = vec![
        ("&queryable_columns=title,n".into(), missing_pk.clone()),
        (
            "&queryable_columns=id,nope,Zed".into(),
            invalid(
                "queryable_columns",
                "The following queryable columns are not found on the table: nope, zed",
            ),
        ),
        (
            "&queryable_columns=id,a@b".into(),
            invalid(
                "queryable_columns",
                "Invalid unquoted identifier contains special characters: a@b",
            ),
        ),
        (
            "&queryable_columns=id,".into(),
            invalid(
                "queryable_columns",
                "Invalid zero-length delimited identifier",
            ),
        ),
        // The allow-list is checked before the projection.
        (
            "&queryable_columns=title&columns=nope".into(),
            missing_pk.clone(),
        ),
        // `columns` may only name allowed columns, with upstream's not-found message.
        (
            "&queryable_columns=id,n&columns=id,title".into(),
            invalid(
                "columns",
                "The following columns are not found on the table: title",
            ),
        ),
        (
            "&queryable_columns=id,n&columns=n".into(),
            invalid(
                "columns",
                "The list of columns must include all primary key columns, missing: id",
            ),
        ),
        // Without an allow-list: the missing PK wins over the unknown name, as upstream.
        (
            "&columns=title,nope".into(),
            invalid(
                "columns",
                "The list of columns must include all primary key columns, missing: id",
            ),
        ),
    ];
    for (query, expected) in cases {
        let r = c.get(&format!("{BASE}{query}"));
        assert_eq!(r.status, 400, "{query}: {}", r.body_str());
        assert_eq!(r.body_str(), expected, "{query}");
        assert_eq!(r.h("content-type"), JSON_CT, "{query}");
        assert_eq!(r.h("cache-control"), "no-store", "{query}");
    }
    // Generated columns count as columns of the table in the allow-list, but become the
    // projection when `columns` is absent, which Postgres 15 cannot publish.
    let r = c.get("/v1/shape?table=g&offset=-1&queryable_columns=id,b");
    assert_eq!(r.status, 400, "{}", r.body_str());
    assert_eq!(
        r.body_str(),
        invalid(
            "columns",
            "The following columns are generated and cannot be included in the shape: b. You \
             can exclude them from the shape by explicitly listing which columns to fetch in \
             the 'columns' query param"
        )
    );
    // ...and leaving them out of the allow-list, or out of `columns`, serves the table.
    for query in [
        "queryable_columns=id,a",
        "queryable_columns=id,a,b&columns=id,a",
    ] {
        let r = c.get(&format!("/v1/shape?table=g&offset=-1&{query}"));
        assert_eq!(r.status, 200, "{query}: {}", r.body_str());
        let (columns, ids) = row_columns_and_ids(&r.items());
        assert_eq!(columns, [["a", "id"]], "{query}");
        assert_eq!(ids, ["1"], "{query}");
    }
    let r = c.request(
        "DELETE",
        "/v1/shape?table=items&queryable_columns=title",
        &[],
    );
    assert_eq!(r.status, 400, "{}", r.body_str());
    assert_eq!(r.body_str(), missing_pk);
}

/// Goal: without `columns` the allow-list is the projection (rows and `electric-schema`), it
/// is not part of the shape's identity (the same selection shares one handle), and the main
/// `where` may still use any column.
#[test]
fn allow_list_projects_and_shares_shapes() {
    let cluster = cluster();
    let env = Env::start(&cluster, SETUP, Opts::default());
    let c = env.client();
    let r = c.get(&format!("{BASE}&queryable_columns=title,id"));
    r.expect(200);
    let (columns, ids) = row_columns_and_ids(&r.items());
    assert_eq!(columns, [["id", "title"]]);
    assert_eq!(ids, ["1", "2", "3", "4"]);
    let schema: Value = serde_json::from_str(r.h("electric-schema")).expect("schema");
    assert_eq!(
        schema,
        json!({"id": {"type": "int8", "pk_index": 0, "not_null": true},
               "title": {"type": "text", "not_null": true}})
    );
    let handle = r.handle();
    // Same selected columns, same shape: explicitly, or narrowed from a wider allow-list.
    for query in [
        "columns=id,title",
        "queryable_columns=id,title,n&columns=title,id",
    ] {
        let same = c.get(&format!("{BASE}&{query}"));
        same.expect(200);
        assert_eq!(same.handle(), handle, "{query}");
    }
    // A different selection is a different shape.
    let other = c.get(&format!("{BASE}&queryable_columns=id,n"));
    other.expect(200);
    assert_ne!(other.handle(), handle);
    // The main `where` is not restricted by the allow-list.
    let r = c.get(&format!(
        "{BASE}&queryable_columns=id,title&where={}",
        enc("n >= 2")
    ));
    r.expect(200);
    let (columns, ids) = row_columns_and_ids(&r.items());
    assert_eq!(columns, [["id", "title"]]);
    assert_eq!(ids, ["2", "3"]);
}

/// Goal: a subset's `where` and `order_by` may reference only allowed columns (upstream then
/// reports the others as unknown references), even columns outside the projection; a subset
/// that keeps to the allow-list is served, by GET and by POST.
#[test]
fn subsets_are_bounded_by_the_allow_list() {
    let cluster = cluster();
    let env = Env::start(&cluster, SETUP, Opts::default());
    let c = env.client();
    let shape = format!("{BASE}&queryable_columns=id,title&columns=id");
    let refused = [
        (
            format!("&subset__where={}", enc("n > 1")),
            subset_invalid("where", "At location 0: unknown reference n"),
        ),
        (
            "&subset__order_by=n&subset__limit=1".to_string(),
            subset_invalid("order_by", "At location 18: unknown reference n"),
        ),
    ];
    for (query, expected) in &refused {
        let r = c.get(&format!("{shape}{query}"));
        assert_eq!(r.status, 400, "{query}: {}", r.body_str());
        assert_eq!(&r.body_str(), expected, "{query}");
        assert_eq!(r.h("cache-control"), "no-store", "{query}");
    }
    // Without the allow-list the same subset is fine.
    let r = c.get(&format!("{BASE}&columns=id&subset__where={}", enc("n > 1")));
    r.expect(200);
    // Filtering and ordering on an allowed column outside the projection.
    let r = c.get(&format!(
        "{shape}&subset__where={}&subset__order_by={}",
        enc("title = 'b'"),
        enc("title DESC, id DESC")
    ));
    r.expect(200);
    assert_eq!(r.h("electric-snapshot"), "true");
    let body = r.json();
    let rows: Vec<Value> = body["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|row| row["value"].clone())
        .collect();
    assert_eq!(rows, [json!({"id": "4"}), json!({"id": "2"})]);
    // POST: the same refusal (no-cache, as every POST) and the same rows.
    let p = post(&env, &shape, br#"{"where":"n = 2"}"#);
    assert_eq!(p.status, 400, "{}", p.body);
    assert_eq!(
        p.body,
        subset_invalid("where", "At location 0: unknown reference n")
    );
    assert_eq!(p.cache_control.as_deref(), Some("no-cache"));
    let p = post(
        &env,
        &shape,
        br#"{"where":"title = $1","params":{"1":"a"}}"#,
    );
    assert_eq!(p.status, 200, "{}", p.body);
    let body: Value = serde_json::from_str(&p.body).expect("json");
    assert_eq!(body["data"][0]["value"], json!({"id": "1"}));
    assert_eq!(body["data"].as_array().map(Vec::len), Some(1));
}

/// Goal: `experimental_compaction=true`, which Ampere cannot honour, is a 400 in upstream's
/// error shape (after the shape itself validated, as upstream orders its checks) rather than
/// silently ignored; `false`, unknown parameters (cache busters) are accepted; on a shape with
/// a subquery it is refused with upstream's message for that case.
#[test]
fn unsupported_parameters_are_refused() {
    let cluster = cluster();
    let env = Env::start(&cluster, SETUP, Opts::default());
    let c = env.client();
    let refused = invalid("experimental_compaction", "is not supported by this server");
    for query in [
        "&experimental_compaction=true",
        "&experimental_compaction=1&live_sse=false",
        "&experimental_compaction=true&subset__where=id%3D1",
    ] {
        let r = c.get(&format!("{BASE}{query}"));
        assert_eq!(r.status, 400, "{query}: {}", r.body_str());
        assert_eq!(r.body_str(), refused, "{query}");
        assert_eq!(r.h("cache-control"), "no-store", "{query}");
    }
    let p = post(&env, BASE, br#"{"experimental_compaction":true}"#);
    assert_eq!(p.status, 400, "{}", p.body);
    assert_eq!(p.body, refused);
    assert_eq!(p.cache_control.as_deref(), Some("no-cache"));
    // Shape errors come first.
    let r = c.get("/v1/shape?table=nope&offset=-1&experimental_compaction=true");
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body_str(),
        invalid(
            "table",
            "Table \"public\".\"nope\" does not exist. If the table name contains capitals or \
             special characters you must quote it."
        )
    );
    // A malformed value is still a cast error.
    let r = c.get(&format!("{BASE}&experimental_compaction=yes"));
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body_str(),
        invalid("experimental_compaction", "is invalid")
    );
    let r = c.get(&format!(
        "{BASE}&experimental_compaction=false&cache-buster=42&expired_handle=1-2&nonsense=x"
    ));
    r.expect(200);
    // On a shape with a subquery, compaction is refused with upstream's own message.
    let r = c.get(&format!(
        "{BASE}&where={}&experimental_compaction=true",
        enc("id IN (SELECT id FROM items)")
    ));
    assert_eq!(r.status, 400, "{}", r.body_str());
    assert_eq!(
        r.body_str(),
        invalid(
            "experimental_compaction",
            "can't be enabled for shapes with subqueries"
        )
    );
}
