//! Black-box tests of live mode and replicated changes (protocol §5.2, §5.5, §6.4): long-polls
//! under both I/O drivers and across cores, the timeout response, message headers, replica
//! modes, primary-key changes, WHERE move-in/move-out and column projection.

mod support;

use serde_json::{json, Value};
use support::{cluster, is_digits, up_to_date_lsn, Env, Follower, Opts, Resp, CC_LIVE};

const WIDE: &str = "CREATE TABLE wide (id bigint PRIMARY KEY, value1 text NOT NULL, \
                    value2 text NOT NULL, value3 text NOT NULL);
                    INSERT INTO wide VALUES (1, 'v1', 'v1', 'v1');";

/// `(lsn, op_position)` of a change message, checking the header types.
#[track_caller]
fn position(item: &Value) -> (String, u64) {
    let h = &item["headers"];
    let lsn = h["lsn"].as_str().expect("lsn is a string").to_string();
    assert!(is_digits(&lsn), "{item}");
    let op = h["op_position"]
        .as_u64()
        .expect("op_position is an integer");
    let txids = h["txids"].as_array().expect("txids is an array");
    assert_eq!(txids.len(), 1, "{item}");
    assert!(txids[0].is_u64(), "{item}");
    (lsn, op)
}

/// Checks the headers of a live response that carries data.
#[track_caller]
fn assert_live_data_headers(r: &Resp, handle: &str) {
    r.expect(200);
    assert_eq!(r.handle(), handle);
    assert!(is_digits(r.h("electric-cursor")), "{:?}", r.headers);
    assert_eq!(r.h("electric-has-data"), "true");
    assert_eq!(r.h("cache-control"), CC_LIVE);
    assert!(!r.has("electric-schema"));
}

/// A full live cycle: change arrives on a held long-poll, then the next long-poll times out.
fn live_round_trip(opts: Opts) {
    let cluster = cluster();
    let env = Env::start(
        &cluster,
        "CREATE TABLE items (id int PRIMARY KEY, v text); INSERT INTO items VALUES (1, 'a');
         CREATE TABLE other (id int PRIMARY KEY);",
        opts,
    );
    let (mut f, first) = Follower::start(env.client(), "table=items");
    assert_eq!(first.items().len(), 2);
    // Several shapes, so with two cores some are owned by a core other than the one accepting.
    let filters = [
        ("id > 0", true),
        ("id > 1", true),
        ("id > 2", false),
        ("id < 100", true),
        ("v = 'a'", false),
        ("v = 'b'", true),
    ];
    let mut others: Vec<(Follower, bool)> = filters
        .iter()
        .map(|(w, sees)| {
            let def = format!("table=items&where={}", support::enc(w));
            (Follower::start(env.client(), &def).0, *sees)
        })
        .collect();

    let r = f.live_during(&env.db, "INSERT INTO items VALUES (2, 'b')");
    assert_live_data_headers(&r, &f.handle);
    let items = r.items();
    assert_eq!(items.len(), 2, "{}", r.body_str());
    let (lsn, op) = position(&items[0]);
    assert_eq!(
        items[0]["headers"],
        json!({"operation": "insert", "relation": ["public", "items"], "lsn": lsn,
               "op_position": op, "txids": items[0]["headers"]["txids"], "last": true})
    );
    assert_eq!(items[0]["key"], r#""public"."items"/"2""#);
    assert_eq!(items[0]["value"], json!({"id": "2", "v": "b"}));
    // The live response's up-to-date carries the transaction's LSN.
    assert_eq!(up_to_date_lsn(&items[1]), lsn);
    assert_eq!(r.offset(), format!("{lsn}_{op}"));
    assert_eq!(r.h("electric-up-to-date"), "");
    assert_eq!(r.h("etag"), format!("\"{}:0_0:{lsn}_{op}\"", f.handle));

    // Every other shape sees the change (or not) consistently with its WHERE clause.
    for (o, sees) in &mut others {
        let r = o.next(false);
        r.expect(200);
        let items = r.items();
        assert_eq!(
            items.len(),
            if *sees { 2 } else { 1 },
            "{}: {}",
            o.def,
            r.body_str()
        );
        if *sees {
            assert_eq!(items[0]["value"], json!({"id": "2", "v": "b"}));
        }
    }

    // Nothing more: the long-poll ends after the timeout with an empty up-to-date.
    let before = f.offset.clone();
    let r = f.next(true);
    r.expect(200);
    let items = r.items();
    assert_eq!(items.len(), 1, "{}", r.body_str());
    up_to_date_lsn(&items[0]);
    assert_eq!(r.h("electric-has-data"), "false");
    assert_eq!(r.h("electric-up-to-date"), "");
    assert_eq!(r.h("cache-control"), CC_LIVE);
    assert!(is_digits(r.h("electric-cursor")));
    assert_eq!(r.offset(), before);
    let etag = r.h("etag");
    let prefix = format!("\"{}:{before}:{before}:", f.handle);
    assert!(etag.starts_with(&prefix), "{etag}");
    assert!(
        is_digits(etag[prefix.len()..].trim_end_matches('"')),
        "{etag}"
    );
    // A second timeout has a different (monotonic) suffix.
    let r2 = f.next(true);
    assert_ne!(r2.h("etag"), etag);
}

#[test]
fn live_epoll_one_core() {
    live_round_trip(Opts::default());
}

#[test]
fn live_uring_one_core() {
    live_round_trip(Opts {
        io_driver: "uring",
        ..Opts::default()
    });
}

#[test]
fn live_epoll_two_cores() {
    live_round_trip(Opts {
        cores: 2,
        ..Opts::default()
    });
}

#[test]
fn live_uring_two_cores() {
    live_round_trip(Opts {
        io_driver: "uring",
        cores: 2,
        ..Opts::default()
    });
}

#[test]
fn updates_are_diffs_and_deletes_carry_the_key() {
    let cluster = cluster();
    let env = Env::start(&cluster, WIDE, Opts::default());
    let (mut f, _) = Follower::start(env.client(), "table=wide");
    let key1 = r#""public"."wide"/"1""#;

    let r = f.live_during(&env.db, "UPDATE wide SET value2 = 'v2' WHERE id = 1");
    assert_live_data_headers(&r, &f.handle);
    let items = r.items();
    assert_eq!(items.len(), 2, "{}", r.body_str());
    assert_eq!(items[0]["key"], key1);
    assert_eq!(items[0]["value"], json!({"id": "1", "value2": "v2"}));
    assert_eq!(items[0]["headers"]["operation"], "update");
    assert!(items[0].get("old_value").is_none());

    // Several changes in one transaction: same lsn and txid, ops 2 apart, `last` on the last.
    let r = f.live_during(
        &env.db,
        "BEGIN;
         INSERT INTO wide VALUES (2, 'a', 'b', 'c');
         UPDATE wide SET value1 = 'x', value3 = 'y' WHERE id = 1;
         DELETE FROM wide WHERE id = 2;
         COMMIT;",
    );
    assert_live_data_headers(&r, &f.handle);
    let items = r.items();
    assert_eq!(items.len(), 4, "{}", r.body_str());
    let ops: Vec<_> = items[..3].iter().map(position).collect();
    assert!(ops.iter().all(|(l, _)| *l == ops[0].0));
    assert_eq!(ops[1].1, ops[0].1 + 2);
    assert_eq!(ops[2].1, ops[1].1 + 2);
    let txids: Vec<_> = items[..3]
        .iter()
        .map(|i| i["headers"]["txids"].clone())
        .collect();
    assert!(txids.iter().all(|t| *t == txids[0]));
    assert!(items[0]["headers"].get("last").is_none());
    assert!(items[1]["headers"].get("last").is_none());
    assert_eq!(items[2]["headers"]["last"], true);
    assert_eq!(items[0]["headers"]["operation"], "insert");
    assert_eq!(
        items[0]["value"],
        json!({"id": "2", "value1": "a", "value2": "b", "value3": "c"})
    );
    assert_eq!(items[1]["headers"]["operation"], "update");
    assert_eq!(
        items[1]["value"],
        json!({"id": "1", "value1": "x", "value3": "y"})
    );
    assert_eq!(items[2]["headers"]["operation"], "delete");
    assert_eq!(items[2]["key"], r#""public"."wide"/"2""#);
    assert_eq!(items[2]["value"], json!({"id": "2"}));
    assert_eq!(up_to_date_lsn(&items[3]), ops[2].0);
    assert_eq!(r.offset(), format!("{}_{}", ops[2].0, ops[2].1));

    // A replicated boolean is Postgres' `t`/`f`, unlike the snapshot's `true`/`false`.
    env.sql(
        "CREATE TABLE flags (id int PRIMARY KEY, b boolean); INSERT INTO flags VALUES (1, true);",
    );
    let (mut g, first) = Follower::start(env.client(), "table=flags");
    assert_eq!(first.items()[0]["value"]["b"], "true");
    let r = g.live_during(&env.db, "UPDATE flags SET b = false");
    assert_eq!(
        r.items()[0]["value"],
        json!({"id": "1", "b": "f"}),
        "{}",
        r.body_str()
    );
}

#[test]
fn replica_full_sends_whole_rows_and_old_values() {
    let cluster = cluster();
    let env = Env::start(&cluster, WIDE, Opts::default());
    let (mut f, first) = Follower::start(env.client(), "table=wide&replica=full");
    assert!(first.items()[0].get("old_value").is_none());

    let r = f.live_during(&env.db, "UPDATE wide SET value2 = 'v2' WHERE id = 1");
    let items = r.items();
    assert_eq!(items.len(), 2, "{}", r.body_str());
    assert_eq!(
        items[0]["value"],
        json!({"id": "1", "value1": "v1", "value2": "v2", "value3": "v1"})
    );
    assert_eq!(items[0]["old_value"], json!({"value2": "v1"}));

    let r = f.live_during(&env.db, "DELETE FROM wide WHERE id = 1");
    let items = r.items();
    assert_eq!(items[0]["headers"]["operation"], "delete");
    assert_eq!(
        items[0]["value"],
        json!({"id": "1", "value1": "v1", "value2": "v2", "value3": "v1"})
    );
    assert!(items[0].get("old_value").is_none());
}

#[test]
fn primary_key_change_is_delete_then_insert() {
    let cluster = cluster();
    let env = Env::start(&cluster, WIDE, Opts::default());
    let (mut f, _) = Follower::start(env.client(), "table=wide");
    let r = f.live_during(
        &env.db,
        "BEGIN;
         INSERT INTO wide VALUES (3, 'o', 'o', 'o');
         UPDATE wide SET id = 2, value2 = 'v2' WHERE id = 1;
         COMMIT;",
    );
    let items = r.items();
    assert_eq!(items.len(), 4, "{}", r.body_str());
    let key1 = r#""public"."wide"/"1""#;
    let key2 = r#""public"."wide"/"2""#;
    assert_eq!(items[0]["key"], r#""public"."wide"/"3""#);
    assert_eq!(items[1]["headers"]["operation"], "delete");
    assert_eq!(items[1]["key"], key1);
    assert_eq!(items[1]["value"], json!({"id": "1"}));
    assert_eq!(items[1]["headers"]["key_change_to"], key2);
    assert!(items[1]["headers"].get("last").is_none());
    assert_eq!(items[2]["headers"]["operation"], "insert");
    assert_eq!(items[2]["key"], key2);
    assert_eq!(
        items[2]["value"],
        json!({"id": "2", "value1": "v1", "value2": "v2", "value3": "v1"})
    );
    assert_eq!(items[2]["headers"]["key_change_from"], key1);
    assert_eq!(items[2]["headers"]["last"], true);
    let (l0, o0) = position(&items[0]);
    let (l1, o1) = position(&items[1]);
    let (l2, o2) = position(&items[2]);
    assert!(l0 == l1 && l1 == l2);
    assert_eq!(o1, o0 + 2);
    assert_eq!(o2, o1 + 1);
    assert_eq!(r.offset(), format!("{l2}_{o2}"));
}

#[test]
fn where_moves_rows_in_and_out() {
    let cluster = cluster();
    let env = Env::start(
        &cluster,
        "CREATE TABLE serial_ids (id int PRIMARY KEY, num int NOT NULL);
         INSERT INTO serial_ids VALUES (1, 1), (2, 10);",
        Opts::default(),
    );
    let (mut f, first) = Follower::start(
        env.client(),
        &format!("table=serial_ids&where={}", support::enc("num > 5")),
    );
    let items = first.items();
    assert_eq!(items.len(), 2, "{}", first.body_str());
    assert_eq!(
        items[0],
        json!({"key": r#""public"."serial_ids"/"2""#, "value": {"id": "2", "num": "10"},
               "headers": {"operation": "insert", "relation": ["public", "serial_ids"]}})
    );

    // Rows outside the filter, and a transaction touching only them, produce nothing; a
    // transaction mixing both produces only the matching row.
    let r = f.live_during(
        &env.db,
        "INSERT INTO serial_ids VALUES (3, 8), (4, 2), (5, 9)",
    );
    let items = r.items();
    assert_eq!(items.len(), 3, "{}", r.body_str());
    assert_eq!(items[0]["value"], json!({"id": "3", "num": "8"}));
    assert_eq!(items[1]["value"], json!({"id": "5", "num": "9"}));
    assert_eq!(items[1]["headers"]["last"], true);

    // Move-in (update into the filter) is an insert of the whole row; move-out is a delete.
    let r = f.live_during(
        &env.db,
        "BEGIN;
         UPDATE serial_ids SET num = 6 WHERE id = 1;
         UPDATE serial_ids SET num = 5 WHERE id = 3;
         COMMIT;",
    );
    let items = r.items();
    assert_eq!(items.len(), 3, "{}", r.body_str());
    assert_eq!(items[0]["headers"]["operation"], "insert");
    assert_eq!(items[0]["key"], r#""public"."serial_ids"/"1""#);
    assert_eq!(items[0]["value"], json!({"id": "1", "num": "6"}));
    assert_eq!(items[1]["headers"]["operation"], "delete");
    assert_eq!(items[1]["key"], r#""public"."serial_ids"/"3""#);
    assert_eq!(items[1]["value"], json!({"id": "3"}));
    assert_eq!(items[1]["headers"]["last"], true);
    let (l0, o0) = position(&items[0]);
    let (l1, o1) = position(&items[1]);
    assert_eq!(l0, l1);
    assert_eq!(o1, o0 + 2);
    assert_eq!(r.offset(), format!("{l1}_{o1}"));
}

#[test]
fn unselected_column_changes_produce_nothing() {
    let cluster = cluster();
    let env = Env::start(&cluster, WIDE, Opts::default());
    let (mut f, first) = Follower::start(env.client(), "table=wide&columns=id,value1");
    assert_eq!(
        first.items()[0]["value"],
        json!({"id": "1", "value1": "v1"})
    );
    // An update of value2 only is not part of this shape: the long-poll just times out.
    let r = f.live_during(&env.db, "UPDATE wide SET value2 = 'v2' WHERE id = 1");
    r.expect(200);
    let items = r.items();
    assert_eq!(items.len(), 1, "{}", r.body_str());
    up_to_date_lsn(&items[0]);
    assert_eq!(r.h("electric-has-data"), "false");

    let r = f.live_during(
        &env.db,
        "UPDATE wide SET value1 = 'v3', value3 = 'z' WHERE id = 1",
    );
    let items = r.items();
    assert_eq!(items.len(), 2, "{}", r.body_str());
    assert_eq!(items[0]["value"], json!({"id": "1", "value1": "v3"}));
}
