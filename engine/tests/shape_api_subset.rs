//! Black-box tests of subset snapshots (protocol §2.6): GET `subset__*` and POST bodies against
//! a real `ampere` and Postgres. Each test states its goal; bodies of errors are compared byte
//! for byte with upstream's, rows with what Postgres holds.

mod support;

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use support::{cluster, enc, is_digits, is_handle, Env, Opts, JSON_CT, MUST_REFETCH};

const SETUP: &str = "CREATE TYPE mood AS ENUM ('sad', 'happy');
    CREATE TABLE items (id int8 PRIMARY KEY, title text NOT NULL, n int4, m mood);
    INSERT INTO items VALUES (1, 'a', 1, 'sad'), (2, 'b', 2, 'happy'), (3, 'c', 3, NULL),
                             (4, 'd', NULL, 'sad'), (5, 'e', 5, 'happy');";

/// A response to a hand-written request (the support client sends no bodies).
struct Posted {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Posted {
    fn h(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no header {name}: {:?}", self.headers))
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// Sends `POST <target>` with `body` (and any extra header lines) and reads the whole answer.
fn post(env: &Env<'_>, target: &str, extra: &str, body: &[u8]) -> Posted {
    let mut s = TcpStream::connect(("127.0.0.1", env.server.port)).expect("connect");
    let head = format!(
        "POST {target} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n{extra}\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).expect("write head");
    s.write_all(body).expect("write body");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    parse(&raw)
}

fn parse(raw: &[u8]) -> Posted {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("head end");
    let mut lines = head.split("\r\n");
    let status = lines.next().expect("status line")[9..12]
        .parse()
        .expect("status");
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect();
    Posted {
        status,
        headers,
        body: body.to_string(),
    }
}

/// The `id`s of a subset response's rows, in order.
fn ids(body: &Value) -> Vec<String> {
    body["data"]
        .as_array()
        .expect("data array")
        .iter()
        .map(|row| row["value"]["id"].as_str().expect("id").to_string())
        .collect()
}

fn wrapped(subset_errors: &str) -> String {
    format!(r#"{{"message":"Invalid request","errors":{{"subset":{subset_errors}}}}}"#)
}

/// Goal: a GET subset answers upstream's object body (metadata + insert rows carrying the
/// snapshot mark) with the subset headers, filtered, ordered and limited by Postgres.
#[test]
fn get_subset_with_params_order_and_limit() {
    let cluster = cluster();
    let env = Env::start(&cluster, SETUP, Opts::default());
    let c = env.client();
    let target = format!(
        "/v1/shape?table=items&offset=-1&subset__where={}&subset__params={}\
         &subset__order_by={}&subset__limit=2&subset__offset=1",
        enc("n >= $1 OR title = $2"),
        enc(r#"{"1":"2","2":"d"}"#),
        enc("n DESC NULLS FIRST"),
    );
    let r = c.get(&target);
    r.expect(200);
    assert_eq!(r.h("electric-snapshot"), "true");
    assert_eq!(r.h("cache-control"), "no-cache");
    assert_eq!(r.h("content-type"), JSON_CT);
    assert!(is_handle(r.h("electric-handle")));
    assert_eq!(r.h("electric-offset"), "0_0");
    assert!(!r.has("etag") && !r.has("electric-up-to-date") && !r.has("electric-cursor"));
    let schema: Value = serde_json::from_str(r.h("electric-schema")).expect("schema");
    assert_eq!(
        schema["id"],
        json!({"type": "int8", "pk_index": 0, "not_null": true})
    );
    assert!(r.body_str().contains(r#"}, "data": ["#), "{}", r.body_str());
    let body = r.json();
    let meta = &body["metadata"];
    for field in ["xmin", "xmax", "database_lsn"] {
        assert!(meta[field].as_str().is_some_and(is_digits), "{meta}");
    }
    assert!(meta["xip_list"].as_array().is_some(), "{meta}");
    let mark = meta["snapshot_mark"].as_u64().expect("mark is a number");
    assert!(mark < 1 << 31);
    // Matching rows ordered n DESC NULLS FIRST: 4 (NULL), 5, 3, 2; offset 1, limit 2.
    assert_eq!(ids(&body), ["5", "3"]);
    assert_eq!(
        body["data"][0],
        json!({
            "key": r#""public"."items"/"5""#,
            "value": {"id": "5", "title": "e", "n": "5", "m": "happy"},
            "headers": {"operation": "insert", "relation": ["public", "items"],
                        "snapshot_mark": mark},
        })
    );
    // Without subset keys the same shape still serves its log.
    let log = c.get("/v1/shape?table=items&offset=-1");
    log.expect(200);
    assert_eq!(log.h("electric-handle"), r.h("electric-handle"));
    let rows = log.items().iter().filter(|m| m["key"].is_string()).count();
    assert_eq!(rows, 5, "{}", log.body_str());
}

/// Goal: the POST body form (top-level keys, JSON numbers, a params map) gives the same rows;
/// POST responses are `no-cache`; a subset stays inside the shape's own `where`.
#[test]
fn post_subset_within_shape_where() {
    let cluster = cluster();
    let env = Env::start(&cluster, SETUP, Opts::default());
    let target = format!("/v1/shape?table=items&offset=-1&where={}", enc("n > 1"));
    let body = br#"{"where":"title <> $1","params":{"1":"c"},"order_by":"id","limit":10}"#;
    let r = post(&env, &target, "", body);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.h("cache-control"), "no-cache");
    assert_eq!(r.h("electric-snapshot"), "true");
    assert_eq!(ids(&r.json()), ["2", "5"]);
    // A `subset` object works too, merged over subset__ query keys.
    let r = post(
        &env,
        &format!("{target}&subset__order_by=id"),
        "",
        br#"{"subset":{"where":"id = ANY($1)","params":{"1":"{2,3,4}"}}}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(ids(&r.json()), ["2", "3"]);
    // A POST with an empty body is an ordinary shape request.
    let r = post(&env, &target, "", b"");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.h("cache-control"), "no-cache");
    assert!(r.json().is_array());
}

/// Goal: in `log=changes_only` mode the subset answers with the shape's log position
/// (`offset=now`: the log end) and returns rows the shape log itself never holds.
#[test]
fn changes_only_subset() {
    let cluster = cluster();
    let env = Env::start(&cluster, SETUP, Opts::default());
    let c = env.client();
    let now = c.get("/v1/shape?table=items&offset=now&log=changes_only");
    now.expect(200);
    let handle = now.handle();
    let r = c.get(&format!(
        "/v1/shape?table=items&offset=now&log=changes_only&handle={handle}\
         &subset__where={}&subset__order_by=id",
        enc("m = 'sad'")
    ));
    r.expect(200);
    assert_eq!(r.h("electric-handle"), handle);
    // The subset waited for the shape's own snapshot, so it answers with the log end after it.
    let end = c.get("/v1/shape?table=items&offset=now&log=changes_only");
    assert_eq!(r.h("electric-offset"), end.h("electric-offset"));
    assert_eq!(ids(&r.json()), ["1", "4"]);
    let log = c.get("/v1/shape?table=items&offset=-1&log=changes_only");
    assert!(
        log.items()
            .iter()
            .all(|m| m["headers"]["control"].is_string()),
        "{}",
        log.body_str()
    );
}

/// Goal: a subset request naming a handle that is not the shape's active one gets 409
/// must-refetch pointing at the active handle, as a log request would.
#[test]
fn stale_handle_gets_409() {
    let cluster = cluster();
    let env = Env::start(&cluster, SETUP, Opts::default());
    let c = env.client();
    let active = c.get("/v1/shape?table=items&offset=-1").handle();
    let r = c.get("/v1/shape?table=items&offset=0_0&handle=1-1&subset__where=id%3D1");
    r.expect(409);
    assert_eq!(r.body_str(), MUST_REFETCH);
    assert_eq!(r.h("electric-handle"), active);
    let r = post(
        &env,
        "/v1/shape?table=items&offset=0_0&handle=1-1",
        "",
        br#"{"where":"id = 1"}"#,
    );
    assert_eq!(r.status, 409);
    assert_eq!(r.h("electric-handle"), active);
    assert_eq!(r.h("cache-control"), "no-cache");
}

/// Goal: every validation failure answers upstream's exact 400 body.
#[test]
fn error_bodies_are_exact() {
    let cluster = cluster();
    let env = Env::start(&cluster, SETUP, Opts::default());
    let c = env.client();
    let base = "/v1/shape?table=items&offset=-1";
    let cases: Vec<(String, String)> = vec![
        (
            "&subset__limit=1".into(),
            wrapped(r#"{"order_by":["order_by is required when limit or offset is present"]}"#),
        ),
        (
            "&subset__limit=0&subset__order_by=id".into(),
            wrapped(r#"{"limit":["must be greater than 0"]}"#),
        ),
        (
            format!("&subset__order_by={}", enc("lower(title)")),
            wrapped(
                r#"{"order_by":["At location 18: FuncCall expressions are not allowed in ORDER BY clauses"]}"#,
            ),
        ),
        (
            format!("&subset__where={}", enc("id IN (SELECT 1)")),
            wrapped(r#"{"where":["Subqueries are not allowed in subsets"]}"#),
        ),
        (
            format!("&subset__where={}&subset__params=%7B", enc("id = $1")),
            wrapped(r#"{"params":["params must be valid JSON"]}"#),
        ),
        (
            format!("&subset__where={}", enc("nope = 1")),
            wrapped(r#"{"where":["At location 0: unknown reference nope"]}"#),
        ),
        // An enum literal is checked by Postgres when the query runs; its message is a string.
        (
            format!("&subset__where={}", enc("m = 'angry'")),
            wrapped(r#"{"where":"invalid input value for enum mood: \"angry\""}"#),
        ),
    ];
    for (query, expected) in cases {
        let r = c.get(&format!("{base}{query}"));
        assert_eq!(r.status, 400, "{query}: {}", r.body_str());
        assert_eq!(r.body_str(), expected, "{query}");
        assert_eq!(r.h("cache-control"), "no-store", "{query}");
    }
    let r = post(&env, base, "", b"[1]");
    assert_eq!(r.status, 400);
    assert_eq!(r.body, r#"{"error":"Request body must be a JSON object"}"#);
    assert_eq!(r.h("cache-control"), "no-cache");
    let r = post(&env, base, "", b"{nope");
    assert_eq!(r.status, 400);
    assert!(
        r.body
            .starts_with(r#"{"error":"Invalid JSON in request body","details":"#),
        "{}",
        r.body
    );
    // Shape parameters are still validated first (and the same way) for POST.
    let r = post(&env, "/v1/shape?offset=-1", "", br#"{"where":"id = 1"}"#);
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body,
        r#"{"message":"Invalid request","errors":{"table":["can't be blank"]}}"#
    );
}

/// Goal: a body past the 8 MB read limit is refused with 413 before it is read.
#[test]
fn oversized_body_is_413() {
    let cluster = cluster();
    let env = Env::start(&cluster, SETUP, Opts::default());
    let mut s = TcpStream::connect(("127.0.0.1", env.server.port)).expect("connect");
    let head = "POST /v1/shape?table=items&offset=-1 HTTP/1.1\r\nhost: x\r\n\
                content-type: application/json\r\ncontent-length: 9000000\r\n\r\n";
    s.write_all(head.as_bytes()).expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let r = parse(&raw);
    assert_eq!(r.status, 413);
    assert_eq!(r.body, r#"{"error":"Request body too large"}"#);
}
