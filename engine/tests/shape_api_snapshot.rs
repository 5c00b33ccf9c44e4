//! Black-box tests of the initial sync (protocol §2.5, §4, §5, §6.6, §6.7): snapshot bodies and
//! headers, keys, the schema header, value text forms, the first catch-up request, ETag/304,
//! `offset=now` and `log=changes_only`.

mod support;

use serde_json::{json, Value};
use support::{
    cluster, is_digits, is_handle, up_to_date_lsn, Env, Follower, Opts, CC_CATCH_UP, CC_INITIAL,
    JSON_CT,
};

#[track_caller]
fn assert_snapshot_end(item: &Value) {
    let h = item["headers"].as_object().expect("snapshot-end headers");
    assert_eq!(item.as_object().map(|o| o.len()), Some(1), "{item}");
    assert_eq!(h["control"], "snapshot-end", "{item}");
    assert_eq!(h.len(), 4, "{item}");
    assert!(h["xmin"].as_str().is_some_and(is_digits), "{item}");
    assert!(h["xmax"].as_str().is_some_and(is_digits), "{item}");
    let xip = h["xip_list"].as_array().expect("xip_list array");
    assert!(
        xip.iter().all(|x| x.as_str().is_some_and(is_digits)),
        "{item}"
    );
}

fn insert(key: &str, relation: [&str; 2], value: Value) -> Value {
    json!({
        "key": key,
        "value": value,
        "headers": {"operation": "insert", "relation": relation},
    })
}

#[test]
fn snapshot_then_up_to_date_then_304() {
    let cluster = cluster();
    let env = Env::start(
        &cluster,
        "CREATE TABLE items (id int8 PRIMARY KEY, title text NOT NULL, note text);
         INSERT INTO items VALUES (1, 'one', NULL), (2, 'two/2', 'x');",
        Opts::default(),
    );
    let c = env.client();
    let r = c.get("/v1/shape?table=items&offset=-1");
    r.expect(200);
    assert_eq!(r.status_line, "HTTP/1.1 200 OK");
    let handle = r.handle();
    assert!(is_handle(&handle), "{handle}");
    assert_eq!(r.h("electric-offset"), "0_0");
    assert!(!r.has("electric-up-to-date"));
    assert!(!r.has("electric-cursor"));
    assert_eq!(r.h("electric-has-data"), "true");
    assert_eq!(r.h("cache-control"), CC_INITIAL);
    assert!(!r.has("surrogate-control"));
    assert_eq!(r.h("content-type"), JSON_CT);
    assert_eq!(r.h("etag"), format!("\"{handle}:-1:0_0\""));
    let schema: Value = serde_json::from_str(r.h("electric-schema")).expect("schema JSON");
    assert_eq!(
        schema,
        json!({
            "id": {"type": "int8", "pk_index": 0, "not_null": true},
            "title": {"type": "text", "not_null": true},
            "note": {"type": "text"},
        })
    );
    let items = r.items();
    assert_eq!(items.len(), 3, "{}", r.body_str());
    assert_eq!(
        items[0],
        insert(
            r#""public"."items"/"1""#,
            ["public", "items"],
            json!({"id": "1", "title": "one", "note": null})
        )
    );
    assert_eq!(
        items[1],
        insert(
            r#""public"."items"/"2""#,
            ["public", "items"],
            json!({"id": "2", "title": "two/2", "note": "x"})
        )
    );
    assert_snapshot_end(&items[2]);

    // The same request again is served from the same shape, byte for byte.
    let again = c.get("/v1/shape?table=items&offset=-1");
    assert_eq!(again.handle(), handle);
    assert_eq!(again.body, r.body);

    // Catch-up from 0_0: nothing new, so just up-to-date.
    let r = c.get(&format!("/v1/shape?table=items&offset=0_0&handle={handle}"));
    r.expect(200);
    let items = r.items();
    assert_eq!(items.len(), 1, "{}", r.body_str());
    up_to_date_lsn(&items[0]);
    assert_eq!(r.h("electric-up-to-date"), "");
    assert_eq!(r.h("electric-has-data"), "true");
    assert_eq!(r.h("cache-control"), CC_CATCH_UP);
    assert_eq!(r.handle(), handle);
    let offset = r.offset();
    assert!(offset == "0_0" || offset == "0_inf", "{offset}");
    let etag = r.h("etag").to_string();
    assert_eq!(etag, format!("\"{handle}:0_0:{offset}\""));
    assert!(r.has("electric-schema"));

    // Revalidation: 304, no body, the same cache headers, no schema.
    for inm in [etag.clone(), format!("\"other\", {etag}")] {
        let nm = c.get_with(
            &format!("/v1/shape?table=items&offset=0_0&handle={handle}"),
            &[("if-none-match", &inm)],
        );
        nm.expect(304);
        assert_eq!(nm.status_line, "HTTP/1.1 304 Not Modified");
        assert!(nm.body.is_empty());
        assert_eq!(nm.h("cache-control"), CC_CATCH_UP);
        assert_eq!(nm.h("etag"), etag);
        assert_eq!(nm.handle(), handle);
        assert_eq!(nm.offset(), offset);
        assert!(!nm.has("electric-schema"));
    }
    // A 304 of the initial response keeps its week-long cache headers.
    let nm = c.get_with(
        "/v1/shape?table=items&offset=-1",
        &[("if-none-match", &format!("\"{handle}:-1:0_0\""))],
    );
    nm.expect(304);
    assert_eq!(nm.h("cache-control"), CC_INITIAL);
    // A different tag is a normal 200.
    c.get_with(
        &format!("/v1/shape?table=items&offset=0_0&handle={handle}"),
        &[("if-none-match", "\"nope\"")],
    )
    .expect(200);
}

#[test]
fn schema_keys_and_value_text_forms() {
    let cluster = cluster();
    let env = Env::start(
        &cluster,
        r#"
        CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
        CREATE TABLE all_types (
            i2 int2 PRIMARY KEY, i4 int4, i8 int8, f8 float8, b boolean, js json, jsb jsonb,
            blob bytea, ints int8[], ints2 int8[][], doubles float8[], bools boolean[],
            moods mood[], ts timestamptz, d date, n numeric(5,2), vc varchar(10) NOT NULL,
            ch char(3), u uuid, txt text[]
        );
        INSERT INTO all_types VALUES (
            1, 2147483647, 9223372036854775807, 4.5, true, '{"foo":"bar"}', '{"foo":"bar"}',
            '\x0001fffe', '{1,2,3}', '{{1,2,3},{4,5,6}}', '{1.2,-3.2,Infinity,-Infinity,NaN}',
            '{t,f,t}', '{sad,ok,happy}', '2024-01-02 03:04:05.123+02', '2024-02-29', 3.5, 'vc',
            'ab', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{foo,"b r",NULL}'
        );
        CREATE TABLE foo (second text NOT NULL, first text NOT NULL, fourth text,
                          third text NOT NULL, PRIMARY KEY (first, second, third));
        INSERT INTO foo VALUES ('b', 'a', 'd', 'c/"x"');
        CREATE SCHEMA "we.ird";
        CREATE TABLE "we.ird"."Ta/ble" (id text PRIMARY KEY);
        INSERT INTO "we.ird"."Ta/ble" VALUES ('p/q');
        "#,
        Opts::default(),
    );
    let c = env.client();

    let r = c.get("/v1/shape?table=all_types&offset=-1");
    r.expect(200);
    let items = r.items();
    assert_eq!(items.len(), 2, "{}", r.body_str());
    assert_eq!(items[0]["key"], r#""public"."all_types"/"1""#);
    assert_eq!(
        items[0]["value"],
        json!({
            "i2": "1",
            "i4": "2147483647",
            "i8": "9223372036854775807",
            "f8": "4.5",
            "b": "true",
            "js": "{\"foo\":\"bar\"}",
            "jsb": "{\"foo\": \"bar\"}",
            "blob": "\\x0001fffe",
            "ints": "{1,2,3}",
            "ints2": "{{1,2,3},{4,5,6}}",
            "doubles": "{1.2,-3.2,Infinity,-Infinity,NaN}",
            "bools": "{t,f,t}",
            "moods": "{sad,ok,happy}",
            "ts": "2024-01-02 01:04:05.123+00",
            "d": "2024-02-29",
            "n": "3.50",
            "vc": "vc",
            "ch": "ab ",
            "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "txt": "{foo,\"b r\",NULL}",
        }),
        "{}",
        r.body_str()
    );
    let schema: Value = serde_json::from_str(r.h("electric-schema")).expect("schema JSON");
    assert_eq!(
        schema,
        json!({
            "i2": {"type": "int2", "pk_index": 0, "not_null": true},
            "i4": {"type": "int4"},
            "i8": {"type": "int8"},
            "f8": {"type": "float8"},
            "b": {"type": "bool"},
            "js": {"type": "json"},
            "jsb": {"type": "jsonb"},
            "blob": {"type": "bytea"},
            "ints": {"type": "int8", "dims": 1},
            "ints2": {"type": "int8", "dims": 2},
            "doubles": {"type": "float8", "dims": 1},
            "bools": {"type": "bool", "dims": 1},
            "moods": {"type": "mood", "dims": 1},
            "ts": {"type": "timestamptz"},
            "d": {"type": "date"},
            "n": {"type": "numeric", "precision": 5, "scale": 2},
            "vc": {"type": "varchar", "max_length": 10, "not_null": true},
            "ch": {"type": "bpchar", "length": 3},
            "u": {"type": "uuid"},
            "txt": {"type": "text", "dims": 1},
        })
    );

    // Composite key in PK order; `/` in a key value is doubled.
    let r = c.get("/v1/shape?table=foo&offset=-1");
    r.expect(200);
    let items = r.items();
    assert_eq!(
        items[0],
        insert(
            r#""public"."foo"/"a"/"b"/"c//"x"""#,
            ["public", "foo"],
            json!({"first": "a", "second": "b", "third": "c/\"x\"", "fourth": "d"})
        )
    );
    let schema: Value = serde_json::from_str(r.h("electric-schema")).expect("schema JSON");
    assert_eq!(schema["first"]["pk_index"], 0);
    assert_eq!(schema["second"]["pk_index"], 1);
    assert_eq!(schema["third"]["pk_index"], 2);
    assert!(schema["fourth"].get("pk_index").is_none());

    // Schema and table names: `.` doubled and `/` doubled inside the quotes.
    let r = c.get(&format!(
        "/v1/shape?table={}&offset=-1",
        support::enc(r#""we.ird"."Ta/ble""#)
    ));
    r.expect(200);
    assert_eq!(
        r.items()[0],
        insert(
            r#""we..ird"."Ta//ble"/"p//q""#,
            ["we.ird", "Ta/ble"],
            json!({"id": "p/q"})
        )
    );
}

#[test]
fn offset_now_skips_data() {
    let cluster = cluster();
    let env = Env::start(
        &cluster,
        "CREATE TABLE items (id int PRIMARY KEY, v text); INSERT INTO items VALUES (1, 'a');",
        Opts::default(),
    );
    let c = env.client();

    // A brand-new shape: up-to-date at 0_inf, no data.
    let r = c.get("/v1/shape?table=items&offset=now");
    r.expect(200);
    let items = r.items();
    assert_eq!(items.len(), 1, "{}", r.body_str());
    up_to_date_lsn(&items[0]);
    let handle = r.handle();
    assert!(is_handle(&handle));
    assert_eq!(r.h("electric-has-data"), "false");
    assert_eq!(r.h("electric-up-to-date"), "");
    assert_eq!(r.h("cache-control"), CC_CATCH_UP);
    assert!(!r.has("electric-cursor"));
    let etag = r.h("etag");
    assert!(etag.starts_with(&format!("\"{handle}:")), "{etag}");
    assert_eq!(etag.matches(':').count(), 3, "monotonic suffix: {etag}");
    assert_eq!(r.offset(), "0_inf");
    // `handle` is ignored with `now`.
    c.get("/v1/shape?table=items&offset=now&handle=123-456")
        .expect(200);
}

#[test]
fn offset_now_after_changes_points_at_the_log_end() {
    let cluster = cluster();
    let env = Env::start(
        &cluster,
        "CREATE TABLE items (id int PRIMARY KEY, v text); INSERT INTO items VALUES (1, 'a');",
        Opts::default(),
    );
    let (mut f, _) = Follower::start(env.client(), "table=items");
    let live = f.live_during(&env.db, "INSERT INTO items VALUES (2, 'b')");
    live.expect(200);
    let r = env.client().get("/v1/shape?table=items&offset=now");
    r.expect(200);
    assert_eq!(r.items().len(), 1, "{}", r.body_str());
    up_to_date_lsn(&r.items()[0]);
    assert_eq!(r.handle(), f.handle);
    assert_eq!(r.offset(), live.offset());
    assert_eq!(r.h("electric-has-data"), "false");
}

#[test]
fn changes_only_has_just_snapshot_end_then_live_changes() {
    let cluster = cluster();
    let env = Env::start(
        &cluster,
        "CREATE TABLE items (id int PRIMARY KEY, v text); INSERT INTO items VALUES (1, 'a');",
        Opts::default(),
    );
    let (mut f, r) = Follower::start(env.client(), "table=items&log=changes_only");
    let items = r.items();
    assert_eq!(items.len(), 1, "{}", r.body_str());
    assert_snapshot_end(&items[0]);
    assert_eq!(r.offset(), "0_0");
    // A full-log shape of the same table is a different shape.
    let full = env.client().get("/v1/shape?table=items&offset=-1");
    assert_ne!(full.handle(), f.handle);
    assert_eq!(full.items().len(), 2);

    let r = f.live_during(&env.db, "UPDATE items SET v = 'b' WHERE id = 1");
    r.expect(200);
    let items = r.items();
    assert_eq!(items.len(), 2, "{}", r.body_str());
    assert_eq!(items[0]["headers"]["operation"], "update");
    assert_eq!(items[0]["value"], json!({"id": "1", "v": "b"}));
    up_to_date_lsn(&items[1]);
}
