//! Held long-polls wait on the core holding their connection and share one rendered answer
//! (`app/live.rs`): on two cores, every held request gets the same bytes; a shape removed while
//! requests are held answers them 409; a handle named with another definition is refused.

mod support;

use std::time::Duration;
use support::{cluster, enc, metric, spawn, wait_until, Env, Follower, Opts, Resp};
use testkit::ports::PortLease;

const HELD: &str = "ampere_live_connections{mode=\"long_poll\"}";

/// Two cores, and the metrics endpoint on the leased port.
fn opts(io_driver: &'static str, metrics: &PortLease) -> Opts {
    Opts {
        cores: 2,
        io_driver,
        // Long enough that no held request times out before the write.
        long_poll_ms: 30_000,
        env: vec![("ELECTRIC_PROMETHEUS_PORT", metrics.port().to_string())],
        ..Opts::default()
    }
}

/// Follows the shape to its log end (the next request would be a live one).
fn caught_up(env: &Env<'_>, def: &str) -> Follower {
    let (mut f, mut r) = Follower::start(env.client(), def);
    while !r.has("electric-up-to-date") {
        r = f.next(false);
        r.expect(200);
    }
    f
}

/// `n` live requests from the follower's position, each on its own connection (so the kernel
/// spreads them over both cores), held until the server counts them all.
fn hold(metrics: &PortLease, f: &Follower, n: usize) -> Vec<support::Waiter<Resp>> {
    let waiters: Vec<_> = (0..n)
        .map(|_| {
            let client = f.client;
            let url = f.url(true);
            spawn(move || client.get(&url))
        })
        .collect();
    wait_until("every long-poll held", Duration::from_secs(20), || {
        metric(metrics.port(), HELD) >= n as f64
    });
    waiters
}

fn fan_out(io_driver: &'static str) {
    let cluster = cluster();
    let metrics = support::lease_port();
    let env = Env::start(
        &cluster,
        "CREATE TABLE items (id int PRIMARY KEY, title text);
         INSERT INTO items VALUES (1, 'one');",
        opts(io_driver, &metrics),
    );
    let f = caught_up(&env, "table=items");
    let waiters = hold(&metrics, &f, 40);
    env.sql("INSERT INTO items VALUES (2, 'fan-out row');");
    let responses: Vec<Resp> = waiters.into_iter().map(|w| w.join()).collect();
    let first = &responses[0];
    first.expect(200);
    assert!(
        first.body_str().contains("fan-out row"),
        "{}",
        first.body_str()
    );
    assert!(first.has("electric-up-to-date"));
    assert_eq!(first.h("electric-has-data"), "true");
    assert_eq!(first.handle(), f.handle);
    for r in &responses {
        r.expect(200);
        assert_eq!(r.body, first.body, "one answer for every held request");
        for name in [
            "etag",
            "electric-offset",
            "electric-handle",
            "cache-control",
            "content-type",
        ] {
            assert_eq!(r.h(name), first.h(name), "{name}");
        }
        assert!(
            support::is_digits(r.h("electric-cursor")),
            "per-response cursor"
        );
        assert!(r.has("x-request-id") && r.has("access-control-allow-origin"));
        assert!(!r.has("electric-schema"), "live responses carry no schema");
    }
    let ids: std::collections::HashSet<&str> =
        responses.iter().map(|r| r.h("x-request-id")).collect();
    assert_eq!(ids.len(), responses.len(), "request ids stay per response");
    // Followed from the shared answer, the next long-poll waits for the next change.
    let mut next = Follower {
        client: f.client,
        def: f.def.clone(),
        handle: f.handle.clone(),
        offset: first.offset(),
    };
    let r = next.live_during(&env.db, "UPDATE items SET title = 'later' WHERE id = 1;");
    r.expect(200);
    assert!(r.body_str().contains("later"), "{}", r.body_str());
    wait_until("no long-poll left held", Duration::from_secs(10), || {
        metric(metrics.port(), HELD) == 0.0
    });
}

#[test]
fn held_long_polls_share_one_answer_epoll() {
    fan_out("epoll");
}

#[test]
fn held_long_polls_share_one_answer_uring() {
    fan_out("uring");
}

#[test]
fn held_long_polls_get_409_when_their_shape_is_deleted() {
    let cluster = cluster();
    let metrics = support::lease_port();
    let env = Env::start(
        &cluster,
        "CREATE TABLE items (id int PRIMARY KEY, title text);
         INSERT INTO items VALUES (1, 'one');",
        opts("epoll", &metrics),
    );
    let f = caught_up(&env, "table=items");
    let waiters = hold(&metrics, &f, 12);
    env.client()
        .request(
            "DELETE",
            &format!("/v1/shape?table=items&handle={}", f.handle),
            &[],
        )
        .expect(202);
    for w in waiters {
        let r = w.join();
        r.expect(409);
        assert_ne!(
            r.header("electric-handle"),
            Some(f.handle.as_str()),
            "a 409 names the new handle, if any"
        );
    }
}

#[test]
fn a_handle_named_with_another_definition_gets_409_while_its_own_are_held() {
    let cluster = cluster();
    let metrics = support::lease_port();
    let env = Env::start(
        &cluster,
        "CREATE TABLE items (id int PRIMARY KEY, title text);
         INSERT INTO items VALUES (1, 'one'), (2, 'two');",
        opts("epoll", &metrics),
    );
    let a = caught_up(&env, &format!("table=items&where={}", enc("id > 0")));
    let b = caught_up(&env, &format!("table=items&where={}", enc("id > 1")));
    assert_ne!(a.handle, b.handle);
    let waiters = hold(&metrics, &a, 8);
    // B's definition with A's handle and offset: never A's rows, on whichever core it lands.
    for _ in 0..8 {
        let url = format!(
            "/v1/shape?{}&handle={}&offset={}&live=true",
            b.def, a.handle, a.offset
        );
        let r = env.client().get(&url);
        r.expect(409);
        assert_eq!(r.h("electric-handle"), b.handle);
    }
    env.sql("INSERT INTO items VALUES (3, 'three');");
    for w in waiters {
        let r = w.join();
        r.expect(200);
        assert!(r.body_str().contains("three"), "{}", r.body_str());
        assert_eq!(r.handle(), a.handle);
    }
}

/// A transaction reaching many shapes applies those with waiting requests first and yields
/// before the passive ones (`Core::on_txn`): the waiting client gets the change, and every
/// passive shape still gets it too, once, in order with the next transaction.
#[test]
fn a_transaction_reaching_many_passive_shapes_reaches_all_of_them() {
    let cluster = cluster();
    let metrics = support::lease_port();
    let env = Env::start(
        &cluster,
        "CREATE TABLE items (id int PRIMARY KEY, title text);
         INSERT INTO items VALUES (1, 'one');",
        opts("epoll", &metrics),
    );
    // 200 distinct definitions that all match every row (more than the 64 passive shapes
    // after which a core yields, on either core).
    let followers: Vec<Follower> = (0..200)
        .map(|i| {
            caught_up(
                &env,
                &format!("table=items&where={}", enc(&format!("id > -{i}"))),
            )
        })
        .collect();
    let waiting = hold(&metrics, &followers[7], 3);
    env.sql("INSERT INTO items VALUES (2, 'first'), (3, 'first too');");
    env.sql("UPDATE items SET title = 'second' WHERE id = 2;");
    for w in waiting {
        let r = w.join();
        r.expect(200);
        assert!(r.body_str().contains("first"), "{}", r.body_str());
    }
    for f in &followers {
        // Everything after the follower's up-to-date offset: both transactions, in order,
        // each change once.
        let mut g = Follower {
            client: f.client,
            def: f.def.clone(),
            handle: f.handle.clone(),
            offset: f.offset.clone(),
        };
        let mut ops = Vec::new();
        for _ in 0..10 {
            if ops.len() >= 3 {
                break;
            }
            let r = g.next(true);
            r.expect(200);
            for item in r.items() {
                if let Some(op) = item["headers"]["operation"].as_str() {
                    ops.push((
                        op.to_string(),
                        item["key"].as_str().unwrap_or("").to_string(),
                    ));
                }
            }
        }
        assert_eq!(ops.len(), 3, "{}: {ops:?}", f.def);
        assert_eq!(ops[0].0, "insert");
        assert_eq!(ops[1].0, "insert");
        assert_eq!(ops[2].0, "update", "{}: {ops:?}", f.def);
    }
}
