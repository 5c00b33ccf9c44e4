//! Published views (`app/views.rs`): on two cores, requests for whole closed chunks and for the
//! log end of a shape another core owns are answered by the core holding the connection. Every
//! answer must equal the owner's (bytes and headers), a handle named with another definition
//! and a deleted shape still get their 409s, and after a restart the restored shape's chunks
//! are answered the same.
//!
//! Each request carries a distinct `cursor` (ignored by catch-up requests), so no answer comes
//! from the per-core cache of repeated URLs (`closed_chunks`): each is the first of its URL.

mod support;

use std::time::Duration;
use support::crash::{CrashOpts, Restartable};
use support::{
    cluster, enc, metric, up_to_date_lsn, wait_until, Client, Env, Follower, Opts, Resp,
};

const VIEWS: &str = "ampere_view_answers_total";
/// Each catch-up URL is asked this many more times, each on a new connection (the kernel
/// spreads them over both cores).
const REPEATS: usize = 6;

fn stable(r: &Resp) -> Vec<(String, String)> {
    let mut headers = r.stable_headers();
    headers.sort();
    headers
}

/// A fresh follower's catch-up from `-1` to up-to-date: every non-live request and answer.
fn catch_up(client: Client, def: &str) -> (String, Vec<(String, Resp)>) {
    let (mut f, first) = Follower::start(client, def);
    let mut answers = vec![(format!("/v1/shape?{def}&offset=-1"), first)];
    loop {
        let url = f.url(false);
        let r = f.next(false);
        r.expect(200);
        let done = r.has("electric-up-to-date");
        answers.push((url, r));
        if done {
            // And one at the log end itself: `[up-to-date]`.
            let url = f.url(false);
            let r = f.next(false);
            r.expect(200);
            assert_eq!(r.items().len(), 1, "{url}: {}", r.body_str());
            answers.push((url, r));
            return (f.handle, answers);
        }
    }
}

/// Rows (inserts, updates, deletes) in one answer.
fn rows(r: &Resp) -> usize {
    r.items()
        .iter()
        .filter(|i| i["headers"]["operation"].is_string())
        .count()
}

/// Rows in a catch-up's answers.
fn changes(answers: &[(String, Resp)]) -> usize {
    answers.iter().map(|(_, r)| rows(r)).sum()
}

/// Follows `live` with long-polls until `n` more rows have arrived.
fn wait_for_rows(live: &mut Follower, n: usize) {
    let mut seen = 0;
    wait_until("the live rows arrived", Duration::from_secs(20), || {
        seen += rows(&live.next(true));
        seen >= n
    });
}

/// Asks every URL again (`REPEATS` times, a new `cursor` each) and checks each answer equals
/// the first; returns how many of them the views answered.
fn ask_again(client: Client, answers: &[(String, Resp)], metrics: u16, salt: &str) -> f64 {
    let before = metric(metrics, VIEWS);
    for (n, (url, first)) in answers.iter().enumerate() {
        if url.ends_with("offset=-1") {
            // No handle: the owner's (it may create the shape).
            continue;
        }
        for k in 0..REPEATS {
            let again = format!("{url}&cursor={salt}{n}x{k}");
            let r = client.get(&again);
            r.expect(200);
            if first.has("electric-up-to-date") {
                // The same entries, then up-to-date with the same LSN (every transaction of
                // this database reaches the shape, so owner and view agree on it).
                let (mut a, mut b) = (r.items(), first.items());
                let (ua, ub) = (a.pop().expect("up-to-date"), b.pop().expect("up-to-date"));
                assert_eq!(a, b, "{again}");
                assert_eq!(up_to_date_lsn(&ua), up_to_date_lsn(&ub), "{again}");
            } else {
                assert_eq!(r.body, first.body, "{again}");
            }
            assert_eq!(stable(&r), stable(first), "{again}");
        }
        let head = client.request("HEAD", &format!("{url}&cursor={salt}{n}h"), &[]);
        head.expect(200);
        assert!(head.body.is_empty());
        assert_eq!(head.h("etag"), first.h("etag"));
    }
    metric(metrics, VIEWS) - before
}

fn views_answer_as_the_owner(io_driver: &'static str) {
    let cluster = cluster();
    let metrics = support::lease_port();
    let env = Env::start(
        &cluster,
        "CREATE TABLE items (id int PRIMARY KEY, title text NOT NULL);
         INSERT INTO items SELECT i, repeat('x', 40) || i FROM generate_series(1, 300) i;",
        Opts {
            cores: 2,
            io_driver,
            chunk_bytes: Some(2048),
            env: vec![("ELECTRIC_PROMETHEUS_PORT", metrics.port().to_string())],
            ..Opts::default()
        },
    );
    let def = format!("table=items&where={}", enc("id > 0"));
    let (mut live, _) = Follower::start(env.client(), &def);
    while !live.next(false).has("electric-up-to-date") {}
    // Live changes close chunks of the real log too.
    for batch in 0..3 {
        let from = 1000 + batch * 40;
        env.sql(&format!(
            "INSERT INTO items SELECT i, repeat('z', 40) || i FROM generate_series({from}, {}) i;",
            from + 39
        ));
    }
    wait_for_rows(&mut live, 120);
    let (handle, answers) = catch_up(env.client(), &def);
    assert_eq!(handle, live.handle);
    assert_eq!(changes(&answers), 420);
    let real_chunks = answers
        .iter()
        .filter(|(_, r)| !r.offset().starts_with("0_"))
        .count();
    assert!(real_chunks >= 3, "{real_chunks} answers from the real log");

    let answered = ask_again(env.client(), &answers, metrics.port(), "a");
    let asked = (answers.len() - 1) * REPEATS;
    assert!(
        answered >= (asked / 4) as f64,
        "{answered} of {asked} answered from views"
    );

    // The handle with another definition: 409 naming that definition's own shape.
    let other = format!("table=items&where={}", enc("id > 1"));
    let (g, _) = Follower::start(env.client(), &other);
    for (n, (url, _)) in answers.iter().enumerate().skip(1) {
        let foreign = format!("{}&cursor=f{n}", url.replace(&def, &other));
        let r = env.client().get(&foreign);
        r.expect(409);
        assert_eq!(r.h("electric-handle"), g.handle);
    }
    // Deleted: the views go with the shape; every core answers 409.
    env.client()
        .request("DELETE", &format!("/v1/shape?{def}&handle={handle}"), &[])
        .expect(202);
    let mut k = 0;
    wait_until(
        "every core forgot the view",
        Duration::from_secs(10),
        || {
            (0..2 * REPEATS).all(|_| {
                k += 1;
                let url = &answers[1].0;
                env.client().get(&format!("{url}&cursor=d{k}")).status == 409
            })
        },
    );
    for (n, (url, _)) in answers.iter().enumerate().skip(1) {
        for j in 0..REPEATS {
            let r = env.client().get(&format!("{url}&cursor=e{n}x{j}"));
            r.expect(409);
        }
    }
}

#[test]
fn views_answer_as_the_owner_epoll() {
    views_answer_as_the_owner("epoll");
}

#[test]
fn views_answer_as_the_owner_uring() {
    views_answer_as_the_owner("uring");
}

/// A restored shape's chunks are checked by its owner when first read (lazy recovery), so
/// its view publishes them only then: before, they are the owner's; after one more change,
/// any core answers them, with the same bytes as before the restart.
#[test]
fn restored_chunks_are_answered_the_same_after_a_restart() {
    let cluster = cluster();
    let db = cluster.create_database().expect("database");
    db.psql(
        "CREATE TABLE items (id int PRIMARY KEY, title text NOT NULL);
         INSERT INTO items SELECT i, repeat('x', 40) || i FROM generate_series(1, 300) i;",
    )
    .expect("table");
    let metrics = support::lease_port();
    let mut server = Restartable::start(
        &db.url(),
        CrashOpts {
            env: vec![
                ("ELECTRIC_SHAPE_CHUNK_BYTES_THRESHOLD", "2048".to_string()),
                ("ELECTRIC_PROMETHEUS_PORT", metrics.port().to_string()),
            ],
            ..CrashOpts::default()
        },
    );
    let def = "table=items";
    let (mut live, _) = Follower::start(server.client(), def);
    while !live.next(false).has("electric-up-to-date") {}
    db.psql("INSERT INTO items SELECT i, repeat('z', 40) || i FROM generate_series(1000, 1079) i;")
        .expect("insert");
    wait_for_rows(&mut live, 80);
    let (handle, before) = catch_up(server.client(), def);
    assert_eq!(changes(&before), 380);
    server.stop();
    server.restart();

    // Closed chunks (all but the up-to-date answers: the open chunk's tail and the log end),
    // each read once more: the owner checks them.
    let closed = &before[..before.len() - 2];
    assert!(closed.len() >= 10, "{} closed chunks", closed.len());
    ask_again(server.client(), closed, metrics.port(), "r");
    // One more change: the owner publishes the chunks it has checked since.
    db.psql("INSERT INTO items VALUES (5000, 'after the restart');")
        .expect("insert");
    wait_until("the change arrived", Duration::from_secs(20), || {
        let (again, after) = catch_up(server.client(), def);
        assert_eq!(again, handle, "the handle survives the restart");
        changes(&after) == 381
    });
    let answered = ask_again(server.client(), closed, metrics.port(), "s");
    assert!(answered > 0.0, "no restored chunk was answered from a view");
    server.stop();
}
