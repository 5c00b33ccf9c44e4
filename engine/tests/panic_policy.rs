//! The panic policy (`engine::panic_policy`, docs/error-handling.md) on the real binary: a panic
//! in a request served on another core than the one that accepted it (a task spawned on the
//! shape's owner core) stops the whole process — no 500, no core serving on with state the
//! panic may have corrupted — with one log line that says where and why; and a restart on the
//! same storage brings back the shapes with their handles and everything committed meanwhile.
//!
//! The panic is injected with `AMPERE_FAULT=forwarded:<table>` (debug builds only,
//! `engine::fault`).

mod support;

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;
use support::crash::{CrashOpts, Pg, Restartable};
use support::enc;

#[test]
fn a_panic_on_an_owner_core_stops_the_process_and_restart_recovers() {
    let cluster = support::cluster();
    let db = cluster.create_database().expect("database");
    db.psql(
        "CREATE TABLE items (id int PRIMARY KEY, v text NOT NULL);
         INSERT INTO items VALUES (1, 'a');
         CREATE TABLE boom (id int PRIMARY KEY);
         INSERT INTO boom SELECT generate_series(1, 64);",
    )
    .expect("setup");
    let mut server = Restartable::start(
        &db.url(),
        CrashOpts {
            cores: 2,
            env: vec![("AMPERE_FAULT", "forwarded:boom".to_owned())],
            ..Default::default()
        },
    );
    let c = server.client();
    let first = c.get("/v1/shape?table=items&offset=-1");
    first.expect(200);
    let handle = first.handle();
    // Wait until the shape's snapshot is durable, so that what survives is what was acknowledged.
    let snap = c.get(&format!("/v1/shape?table=items&handle={handle}&offset=0_0"));
    snap.expect(200);

    // Each request opens a new connection, which the kernel hands to either core; the owner
    // of `boom where id = k` is one of the two by its definition hash. The first request that
    // is forwarded to its owner panics there.
    let mut outcome = None;
    for k in 1..=64 {
        let target = format!(
            "/v1/shape?table=boom&offset=-1&where={}",
            enc(&format!("id = {k}"))
        );
        match c.try_get(&target) {
            Ok(r) => assert_eq!(r.status, 200, "{target}: {}", r.body_str()),
            Err(e) => {
                outcome = Some(e);
                break;
            }
        }
    }
    let error = outcome.expect("some boom request was forwarded to its owner core (64 tries)");
    let status = server.wait_exit(Duration::from_secs(30));
    assert_eq!(
        status.signal(),
        Some(libc::SIGABRT),
        "the process aborts ({status}); client saw: {error}"
    );
    let log = server.log();
    assert!(
        log.contains("panicked: injected fault forwarded:boom")
            && log.contains("stopping the process"),
        "the log names the panic:\n{}",
        server.log_tail(40)
    );
    // The log went to a file: plain text, no terminal colour codes.
    assert!(!log.contains('\x1b'), "colour codes in a log file");
    assert!(
        !log.contains("answering 500"),
        "no request is answered after the panic"
    );

    // Committed while the server is down; it must arrive after the restart.
    let mut pg = Pg::connect(&db.url()).expect("connect");
    pg.exec("INSERT INTO items VALUES (2, 'b')");
    server.restart();
    let c = server.client();
    let again = c.get(&format!(
        "/v1/shape?table=items&handle={handle}&offset={}",
        snap.offset()
    ));
    again.expect(200);
    let mut got = again.body_str();
    let mut offset = again.offset();
    // The change may need one more (live) request to arrive after replication resumes.
    for _ in 0..20 {
        if got.contains("\"b\"") {
            break;
        }
        let next = c.get(&format!(
            "/v1/shape?table=items&handle={handle}&offset={offset}&live=true"
        ));
        next.expect(200);
        got = next.body_str();
        offset = next.offset();
    }
    assert!(
        got.contains(r#""id":"2""#) && got.contains(r#""v":"b""#),
        "the insert made while the server was down arrives on the same handle: {got}"
    );
}
