//! A transaction larger than `ELECTRIC_EXPERIMENTAL_MAX_TXN_SIZE` is not held in memory: the
//! shapes of the tables it changed are rebuilt (409, then a fresh snapshot with its rows), and
//! replication goes on. Before, replication stopped at such a transaction for good (it
//! reconnected, met it again, and stopped again), so no shape saw any later change.

mod support;

use support::{cluster, Client, Env, Follower, Opts};

/// Syncs a shape from scratch; returns the number of rows and the follower at its end.
fn sync(c: Client, def: &str) -> (usize, Follower) {
    let (mut f, r) = Follower::start(c, def);
    let mut rows = r.items().iter().filter(|m| m["value"].is_object()).count();
    for _ in 0..10_000 {
        let r = f.next(false);
        assert_eq!(r.status, 200, "{}", r.body_str());
        rows += r.items().iter().filter(|m| m["value"].is_object()).count();
        if r.has("electric-up-to-date") {
            return (rows, f);
        }
    }
    panic!("{def}: not up to date");
}

#[test]
fn an_oversized_transaction_rebuilds_its_tables_shapes_and_replication_goes_on() {
    let cluster = cluster();
    let env = Env::start(
        &cluster,
        "CREATE TABLE big (id int PRIMARY KEY, pad text NOT NULL);
         CREATE TABLE small (id int PRIMARY KEY, v text NOT NULL);
         INSERT INTO big VALUES (0, 'first');
         INSERT INTO small VALUES (0, 'first');",
        Opts {
            env: vec![("ELECTRIC_EXPERIMENTAL_MAX_TXN_SIZE", "100000".into())],
            ..Opts::default()
        },
    );
    let c = env.client();
    let (rows, mut big) = sync(c, "table=big");
    assert_eq!(rows, 1);
    let (_, mut small) = sync(c, "table=small");

    // About 600 KB of changes in one transaction on `big`, over the 100 KB limit.
    env.sql("INSERT INTO big SELECT g, repeat('x', 300) FROM generate_series(1, 2000) g");
    // A later transaction on `small`: replication must get past the big one to deliver it.
    let r = small.live_during(&env.db, "INSERT INTO small VALUES (1, 'after')");
    assert_eq!(r.status, 200, "{}", r.body_str());
    let mut seen = r.body_str();
    for _ in 0..20 {
        if seen.contains("after") {
            break;
        }
        let r = small.next(true);
        assert_eq!(r.status, 200, "small was rebuilt: {}", r.body_str());
        seen.push_str(&r.body_str());
    }
    assert!(seen.contains("after"), "replication stopped: {seen}");

    // `big`'s shape is rebuilt: its clients get 409, and the new shape has every row.
    let mut refetch = None;
    for _ in 0..20 {
        let r = big.next(true);
        if r.status == 409 {
            refetch = Some(r);
            break;
        }
        assert_eq!(r.status, 200, "{}", r.body_str());
        assert!(
            !r.body_str().contains("xxx"),
            "part of the oversized transaction was served"
        );
    }
    let r = refetch.expect("no 409 for the shape of the oversized transaction's table");
    assert_ne!(r.handle(), big.handle);
    let (rows, _) = sync(c, "table=big");
    assert_eq!(rows, 2001);
    // And it follows later changes.
    let (_, mut again) = sync(c, "table=big");
    let r = again.live_during(&env.db, "UPDATE big SET pad = 'later' WHERE id = 0");
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert!(r.body_str().contains("later"), "{}", r.body_str());
    assert!(
        env.server
            .stderr_text()
            .contains("larger than 100000 bytes"),
        "the oversized transaction is not logged"
    );
}
