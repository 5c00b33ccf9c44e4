//! Stored shapes belong to one Postgres system, timeline and slot. When the stored
//! `replication_state` names another one (the database was replaced, or the slot recreated),
//! every stored shape is purged at start: old handles answer 409 and resync to correct data.

mod support;

use std::time::Duration;
use support::crash::{CrashOpts, Restartable};

#[test]
fn a_different_database_system_purges_every_stored_shape() {
    let cluster = support::cluster();
    let db = cluster.create_database().expect("database");
    db.psql(
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a'), (2, 'b');",
    )
    .expect("setup");
    let mut server = Restartable::start(&db.url(), CrashOpts::default());
    let c = server.client();
    let first = c.get("/v1/shape?table=t&offset=-1");
    assert_eq!(first.status, 200, "{}", first.body_str());
    let handle = first.handle();
    // A clean restart keeps the shape: same handle, no 409.
    server.stop();
    server.restart();
    let again = c.get(&format!("/v1/shape?table=t&offset=0_0&handle={handle}"));
    assert_eq!(again.status, 200, "{}", again.body_str());

    // Pretend the stored shapes came from another database system.
    server.stop();
    let state = server.storage.join("replication_state");
    let old = std::fs::read_to_string(&state).expect("replication_state is written");
    let mut parts: Vec<&str> = old.split_whitespace().collect();
    assert_eq!(parts.len(), 3, "system id, timeline, slot: {old:?}");
    parts[0] = "1";
    std::fs::write(&state, format!("{}\n", parts.join(" "))).expect("rewrite state");
    server.restart();
    server.wait_active(Duration::from_secs(30));
    let after = c.get(&format!("/v1/shape?table=t&offset=0_0&handle={handle}"));
    assert_eq!(after.status, 409, "{}", after.body_str());
    let new_handle = after.handle();
    assert_ne!(new_handle, handle);
    let resync = c.get(&format!("/v1/shape?table=t&offset=-1&handle={new_handle}"));
    assert_eq!(resync.status, 200);
    assert_eq!(resync.items().len(), 3, "two rows and snapshot-end");
    // The state now names this system again, so the next restart keeps the new shape.
    server.stop();
    server.restart();
    let kept = c.get(&format!("/v1/shape?table=t&offset=0_0&handle={new_handle}"));
    assert_eq!(kept.status, 200, "{}", kept.body_str());
}
