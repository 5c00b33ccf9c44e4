//! Stored shapes after a restart are dormant (only their metadata read) until needed
//! (`app/dormant.rs`). Each way of waking one must behave as if it had been loaded at start:
//! a transaction on its table reaches it although nobody asked for it, a request by
//! definition finds the stored handle instead of creating a new one, a DELETE by handle
//! deletes it, and the shape limit counts and evicts dormant shapes.

mod support;

use std::time::Duration;
use support::crash::{CrashOpts, Pg, Restartable};
use support::{enc, Client, Resp};

fn get(c: &Client, table: &str, where_: &str, rest: &str) -> Resp {
    c.get(&format!(
        "/v1/shape?table={table}&where={}{rest}",
        enc(where_)
    ))
}

/// Runs one statement and waits until the server has stored it (the slot is acknowledged past
/// the start of its transaction: the WAL end may lie beyond every transaction).
fn exec_stored(pg: &mut Pg, sql: &str) {
    let lsn = pg.current_lsn();
    pg.exec(sql);
    pg.wait_confirmed(lsn + 1, Duration::from_secs(30));
}

/// Follows a shape from `offset` until up to date; returns the bodies read.
fn catch_up(c: &Client, table: &str, where_: &str, handle: &str, offset: &str) -> String {
    let mut offset = offset.to_string();
    let mut out = String::new();
    for _ in 0..1000 {
        let r = get(
            c,
            table,
            where_,
            &format!("&handle={handle}&offset={offset}"),
        );
        assert_eq!(r.status, 200, "{}", r.body_str());
        out.push_str(&r.body_str());
        if r.header("electric-up-to-date").is_some() {
            return out;
        }
        offset = r.header("electric-offset").expect("offset").to_string();
    }
    panic!("not up to date");
}

/// The last offset of a shape after syncing it from the start.
fn synced(c: &Client, table: &str, where_: &str) -> (String, String) {
    let r = get(c, table, where_, "&offset=-1");
    assert_eq!(r.status, 200, "{}", r.body_str());
    let handle = r.handle();
    let mut offset = r.header("electric-offset").expect("offset").to_string();
    loop {
        let r = get(
            c,
            table,
            where_,
            &format!("&handle={handle}&offset={offset}"),
        );
        assert_eq!(r.status, 200, "{}", r.body_str());
        offset = r.header("electric-offset").expect("offset").to_string();
        if r.header("electric-up-to-date").is_some() {
            return (handle, offset);
        }
    }
}

#[test]
fn dormant_shapes_wake_on_transactions_requests_and_deletes() {
    let cluster = support::cluster();
    let db = cluster.create_database().expect("database");
    db.psql(
        "CREATE TABLE a (id int PRIMARY KEY, v text NOT NULL);
         CREATE TABLE b (id int PRIMARY KEY, v text NOT NULL);
         INSERT INTO a VALUES (1, 'one'), (2, 'two');
         INSERT INTO b VALUES (1, 'b-one'), (2, 'b-two');",
    )
    .expect("setup");
    // Small chunks: the shapes have closed chunks on disk and an open tail.
    let opts = CrashOpts {
        env: vec![
            ("ELECTRIC_SHAPE_CHUNK_BYTES_THRESHOLD", "200".into()),
            ("ELECTRIC_ENABLE_INTEGRATION_TESTING", "true".into()),
        ],
        ..Default::default()
    };
    let mut server = Restartable::start(&db.url(), opts);
    let c = server.client();
    let (ha, _) = synced(&c, "a", "id = 1");
    let (hb, _) = synced(&c, "b", "id = 1");
    let (hb2, ob2) = synced(&c, "b", "id = 2");
    let (hd, od) = synced(&c, "a", "id = 2");
    let mut pg = Pg::connect(&db.url()).expect("connect");
    for i in 0..10 {
        exec_stored(
            &mut pg,
            &format!("UPDATE a SET v = 'before-{i}' WHERE id = 1"),
        );
    }
    let (_, oa) = synced(&c, "a", "id = 1");
    server.stop();

    server.restart();
    assert!(
        server.log().contains("found 4 stored shapes"),
        "{}",
        server.log_tail(20)
    );
    // A transaction on table a while nobody asks for its shapes: it must still reach the
    // stored shape (loaded before the transaction is applied), and the slot must move past it
    // only once it is stored.
    exec_stored(&mut pg, "UPDATE a SET v = 'while-dormant' WHERE id = 1");
    let c = server.client();
    let body = catch_up(&c, "a", "id = 1", &ha, &oa);
    assert!(body.contains("while-dormant"), "change missed: {body}");
    // The whole log from the start, served from closed chunks recovered lazily.
    let all = catch_up(&c, "a", "id = 1", &ha, "-1");
    for i in 0..10 {
        assert!(
            all.contains(&format!("before-{i}")),
            "before-{i} missing: {all}"
        );
    }
    // By definition, without a handle: the stored handle, not a new shape.
    let r = get(&c, "b", "id = 1", "&offset=-1");
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(r.handle(), hb, "a stored shape was created anew");
    // DELETE by handle and definition (the shape was loaded with table a's transaction):
    // deleted, then 409 for its clients.
    let del = c.request(
        "DELETE",
        &format!("/v1/shape?table=a&where={}&handle={hd}", enc("id = 2")),
        &[],
    );
    assert_eq!(del.status, 202, "{}", del.body_str());
    let r = get(&c, "a", "id = 2", &format!("&handle={hd}&offset={od}"));
    assert_eq!(r.status, 409, "{}", r.body_str());
    // DELETE by handle alone of a shape nothing has loaded: deleted, then 409.
    let del = c.request("DELETE", &format!("/v1/shape?handle={hb2}"), &[]);
    assert_eq!(del.status, 202, "{}", del.body_str());
    let r = get(&c, "b", "id = 2", &format!("&handle={hb2}&offset={ob2}"));
    assert_eq!(r.status, 409, "{}", r.body_str());
}

#[test]
fn the_shape_limit_counts_and_evicts_dormant_shapes_first() {
    let cluster = support::cluster();
    let db = cluster.create_database().expect("database");
    db.psql(
        "CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL);
         INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 4) g;",
    )
    .expect("setup");
    let opts = CrashOpts {
        cores: 1,
        env: vec![("ELECTRIC_MAX_SHAPES", "3".into())],
        ..Default::default()
    };
    let mut server = Restartable::start(&db.url(), opts);
    let c = server.client();
    let synced_shapes: Vec<(String, String)> = (1..=3)
        .map(|k| synced(&c, "t", &format!("id = {k}")))
        .collect();
    server.stop();
    server.restart();
    let c = server.client();
    // Shape 3 is used after the restart; a fourth shape then needs room: a dormant shape goes
    // (the oldest, shape 1), not the one in use.
    let url = |k: usize| {
        let (h, o) = &synced_shapes[k - 1];
        format!("&handle={h}&offset={o}")
    };
    let r = get(&c, "t", "id = 3", &url(3));
    assert_eq!(r.status, 200, "{}", r.body_str());
    synced(&c, "t", "id = 4");
    for k in [2usize, 3] {
        let r = get(&c, "t", &format!("id = {k}"), &url(k));
        assert_eq!(r.status, 200, "shape {k}: {}", r.body_str());
    }
    let r = get(&c, "t", "id = 1", &url(1));
    assert_eq!(r.status, 409, "the oldest dormant shape was not evicted");
}

/// A column type change (a table rewrite: no row changes are replicated) must invalidate a
/// shape, as it does for a loaded one ("relation changed"). A shape dormant at the time is
/// loaded by the next transaction on its table against the catalog *after* the change, so the
/// Relation message matches it: the columns stored with the shape tell the change instead.
#[test]
fn a_type_change_while_dormant_invalidates_like_a_live_shape() {
    let cluster = support::cluster();
    let db = cluster.create_database().expect("database");
    db.psql(
        "CREATE TABLE live (id int PRIMARY KEY, v int NOT NULL);
         CREATE TABLE sleepy (id int PRIMARY KEY, v int NOT NULL);
         INSERT INTO live VALUES (1, 1), (2, 2);
         INSERT INTO sleepy VALUES (1, 1), (2, 2);",
    )
    .expect("setup");
    let mut server = Restartable::start(&db.url(), CrashOpts::default());
    let c = server.client();
    let (hl, _) = synced(&c, "live", "id > 0");
    let (hs, os) = synced(&c, "sleepy", "id > 0");
    server.stop();
    server.restart();
    let c = server.client();
    // `live` is loaded by a request; `sleepy` stays dormant.
    let (hl2, ol) = synced(&c, "live", "id > 0");
    assert_eq!(hl, hl2);
    std::thread::sleep(Duration::from_millis(2500));
    let mut pg = Pg::connect(&db.url()).expect("connect");
    pg.exec("ALTER TABLE live ALTER COLUMN v TYPE bigint USING v * 10");
    pg.exec("ALTER TABLE sleepy ALTER COLUMN v TYPE bigint USING v * 10");
    pg.exec("UPDATE live SET v = 99 WHERE id = 2");
    exec_stored(&mut pg, "UPDATE sleepy SET v = 99 WHERE id = 2");
    let r = get(&c, "live", "id > 0", &format!("&handle={hl}&offset={ol}"));
    assert_eq!(r.status, 409, "live shape: {}", r.body_str());
    let r = get(&c, "sleepy", "id > 0", &format!("&handle={hs}&offset={os}"));
    assert_eq!(
        r.status,
        409,
        "the shape woken after the type change still serves rows from before it: {}",
        r.body_str()
    );
}

fn shapes_gauge(port: u16) -> f64 {
    let r = Client::new(port).get("/metrics");
    assert_eq!(r.status, 200);
    r.body_str()
        .lines()
        .filter(|l| l.starts_with("ampere_shapes{"))
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
        .sum()
}

/// `ampere_shapes` counts each shape once: dormant or loaded.
#[test]
fn the_shape_gauge_counts_a_woken_shape_once() {
    let cluster = support::cluster();
    let db = cluster.create_database().expect("database");
    db.psql("CREATE TABLE m (id int PRIMARY KEY); INSERT INTO m VALUES (1);")
        .expect("setup");
    let lease = testkit::ports::lease();
    let metrics_port = lease.port();
    let opts = CrashOpts {
        env: vec![("ELECTRIC_PROMETHEUS_PORT", metrics_port.to_string())],
        ..Default::default()
    };
    let mut server = Restartable::start(&db.url(), opts);
    let c = server.client();
    let (h, _) = synced(&c, "m", "id > 0");
    assert_eq!(shapes_gauge(metrics_port), 1.0);
    server.stop();
    server.restart();
    assert_eq!(shapes_gauge(metrics_port), 1.0, "dormant");
    let c = server.client();
    let (h2, _) = synced(&c, "m", "id > 0");
    assert_eq!(h, h2);
    assert_eq!(
        shapes_gauge(metrics_port),
        1.0,
        "after the request loaded it"
    );
}

/// One transaction touching the table of many stored shapes (more than one batch of loads)
/// reaches every one of them.
#[test]
fn a_transaction_wakes_every_stored_shape_of_its_table() {
    let cluster = support::cluster();
    let db = cluster.create_database().expect("database");
    db.psql(
        "CREATE TABLE c (id int PRIMARY KEY, v text NOT NULL);
         INSERT INTO c SELECT g, 'v' || g FROM generate_series(1, 20) g;",
    )
    .expect("setup");
    let mut server = Restartable::start(&db.url(), CrashOpts::default());
    let c = server.client();
    let shapes: Vec<(String, String)> = (1..=20)
        .map(|k| synced(&c, "c", &format!("id = {k}")))
        .collect();
    server.stop();
    server.restart();
    let mut pg = Pg::connect(&db.url()).expect("connect");
    exec_stored(&mut pg, "UPDATE c SET v = 'changed-' || id");
    let c = server.client();
    for (k, (handle, offset)) in shapes.iter().enumerate() {
        let body = catch_up(&c, "c", &format!("id = {}", k + 1), handle, offset);
        assert!(
            body.contains(&format!("changed-{}", k + 1)),
            "shape {} missed the change: {body}",
            k + 1
        );
    }
}
