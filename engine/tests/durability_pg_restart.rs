//! Postgres going away under a running server: the walsender killed with
//! `pg_terminate_backend`, and Postgres stopped and started again. A live reader keeps
//! following its shape throughout; afterwards it must equal Postgres, with its handle kept and
//! no change delivered twice.

mod support;

use std::time::{Duration, Instant};
use support::crash::{assert_reader_matches, pg_ctl, CrashOpts, Pg, Reader, Restartable};
use support::enc;

const ROWS_SQL: &str = "SELECT id, id::text AS id, v FROM t";

fn fence(pg: &mut Pg) -> u64 {
    pg.value(
        "BEGIN; UPDATE t SET v = v || '.' WHERE id = 1; SELECT pg_current_wal_lsn()::text; COMMIT;",
    )
    .map(|s| support::crash::parse_pg_lsn(&s))
    .expect("fence")
}

/// Waits (bounded) until health is no longer `active`, and returns what it said (or that it
/// did not answer). Only observed, never asserted: how fast the loss is noticed is timing.
fn observe_not_active(server: &Restartable) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        match server.health() {
            Some(s) if s == "active" => std::thread::sleep(Duration::from_millis(10)),
            Some(s) => return s,
            None => return "no answer".into(),
        }
    }
    "still active after 20 s".into()
}

#[test]
fn walsender_killed_and_postgres_restarted_lose_and_duplicate_nothing() {
    let cluster = support::cluster();
    if cluster.dir().is_none() {
        eprintln!("SKIPPED: needs a private cluster (AMPERE_TEST_DATABASE_URL is set)");
        return;
    }
    let db = cluster.create_database().expect("database");
    db.psql(
        "CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL);
         INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 50) g;",
    )
    .expect("setup");
    let server = Restartable::start(&db.url(), CrashOpts::default());
    let def = format!("table=t&where={}", enc("id <= 1000"));
    let reader = Reader::spawn("t", server.port, &def);
    reader.wait_past(0, Duration::from_secs(30));
    let handle = reader.snapshot().handle;

    // 1. The walsender is terminated while the reader's long-poll is open.
    let mut pg = Pg::connect(&db.url()).expect("connect");
    let killed = pg
        .value(
            "SELECT count(pg_terminate_backend(active_pid))::text FROM pg_replication_slots \
             WHERE active_pid IS NOT NULL AND database = current_database()",
        )
        .expect("terminate");
    assert_eq!(killed, "1", "one walsender to terminate");
    eprintln!(
        "after pg_terminate_backend: health {}",
        observe_not_active(&server)
    );
    for i in 0..10 {
        pg.exec(&format!("INSERT INTO t VALUES ({}, 'w{i}')", 100 + i));
    }
    pg.exec("UPDATE t SET v = 'moved' WHERE id BETWEEN 1 AND 5; DELETE FROM t WHERE id = 6;");
    let lsn = fence(&mut pg);
    reader.wait_past(lsn, Duration::from_secs(60));
    let s = reader.snapshot();
    assert_reader_matches(
        "after walsender kill",
        &s,
        &pg.expected_rows("t", 1, ROWS_SQL),
    );

    // 2. Postgres stops (fast: every connection dropped) while the reader waits; a change is
    // made right after it comes back, then Postgres is restarted once more.
    drop(pg);
    pg_ctl(&cluster, &["-m", "fast", "-w", "stop"]);
    eprintln!("Postgres stopped: health {}", observe_not_active(&server));
    // Requests meanwhile: an existing shape must not answer with wrong data or a new handle.
    let r = server.client().get(&format!(
        "/v1/shape?{def}&handle={}&offset=-1",
        handle.clone().unwrap_or_default()
    ));
    eprintln!("shape request while Postgres is down: {}", r.status);
    assert!(
        r.status == 200 || r.status == 503,
        "while Postgres is down: {} {}",
        r.status,
        r.body_str()
    );
    pg_ctl(&cluster, &["-w", "-t", "30", "start"]);
    let mut pg = Pg::connect(&db.url()).expect("reconnect");
    for i in 0..10 {
        pg.exec(&format!("UPDATE t SET v = 'r{i}' WHERE id = {}", 10 + i));
    }
    drop(pg);
    cluster.restart().expect("restart Postgres");
    let mut pg = Pg::connect(&db.url()).expect("reconnect");
    pg.exec("INSERT INTO t VALUES (500, 'after restart'); DELETE FROM t WHERE id = 7;");
    let lsn = fence(&mut pg);
    reader.wait_past(lsn, Duration::from_secs(90));

    // 3. A fast shutdown while a write transaction is open (after a commit Ampere has
    // acknowledged): the WAL sender has sent past the last commit and waits for the client to
    // confirm all of it before Postgres may stop. `pg_ctl -t 60` fails if it never does.
    drop(pg);
    let mut open = Pg::connect(&db.url()).expect("connect");
    open.exec(
        "BEGIN; INSERT INTO t VALUES (600, 'never committed'); UPDATE t SET v = 'x' WHERE id = 8;",
    );
    std::thread::sleep(Duration::from_millis(300));
    let stopping = Instant::now();
    pg_ctl(&cluster, &["-m", "fast", "-w", "-t", "60", "stop"]);
    eprintln!(
        "fast shutdown with a transaction open took {:?}",
        stopping.elapsed()
    );
    drop(open);
    pg_ctl(&cluster, &["-w", "-t", "30", "start"]);
    let mut pg = Pg::connect(&db.url()).expect("reconnect");
    pg.exec("INSERT INTO t VALUES (700, 'after the third stop');");
    let lsn = fence(&mut pg);
    reader.wait_past(lsn, Duration::from_secs(90));
    let s = reader.stop();
    eprintln!(
        "reader: {} responses, statuses {:?}, {} connection errors, refetches {:?}",
        s.responses, s.statuses, s.conn_errors, s.refetches
    );
    assert_reader_matches(
        "after Postgres restarts",
        &s,
        &pg.expected_rows("t", 1, ROWS_SQL),
    );
    assert_eq!(s.handle, handle, "the shape keeps its handle");
    assert!(s.refetches.is_empty(), "{:?}", s.refetches);
}
