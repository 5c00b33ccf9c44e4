mod support;

use serde_json::Value;
use std::time::{Duration, Instant};
use support::tags::TagTracker;
use support::{cluster, enc, Env, Follower, Opts};

fn follow(env: &Env<'_>, w: &str) -> (Follower, TagTracker, Vec<Value>) {
    let (f, r) = Follower::start(env.client(), &format!("table=items&where={}", enc(w)));
    let mut t = TagTracker::new();
    let items = r.items();
    t.feed_all(&items);
    (f, t, items)
}

fn drain(f: &mut Follower, t: &mut TagTracker, seen: &mut Vec<Value>, dur: Duration) {
    let end = Instant::now() + dur;
    while Instant::now() < end {
        let r = f.next(true);
        r.expect(200);
        if r.header("electric-has-data") != Some("false") {
            let items = r.items();
            t.feed_all(&items);
            seen.extend(items);
        }
    }
}

fn expected(env: &Env<'_>, w: &str) -> Vec<String> {
    env.db
        .psql(&format!("SELECT id FROM items WHERE {w} ORDER BY id"))
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| format!(r#""public"."items"/"{l}""#))
        .collect()
}

fn run(setup: &str, w: &str, sql: &str) {
    let cluster = cluster();
    let env = Env::start(&cluster, setup, Opts { long_poll_ms: 300, ..Opts::default() });
    let (mut f, mut t, first) = follow(&env, w);
    let mut seen = first.clone();
    drain(&mut f, &mut t, &mut seen, Duration::from_millis(400));
    env.sql(sql);
    drain(&mut f, &mut t, &mut seen, Duration::from_millis(2500));
    for m in &seen {
        if m["headers"]["control"] != "up-to-date" {
            eprintln!("  {m}");
        }
    }
    let got: Vec<String> = t.rows().keys().cloned().collect();
    let want = expected(&env, w);
    eprintln!("client: {got:?}\npostgres: {want:?}");
    assert_eq!(got, want);
}

const SETUP: &str = "
    CREATE TABLE items (id int PRIMARY KEY, parent_id int);
    CREATE TABLE parents (id int PRIMARY KEY, active bool);
    INSERT INTO parents VALUES (1, false), (2, false);
    INSERT INTO items VALUES (1, 1), (2, 2);";

#[test]
fn repro_flip_during_move_in() {
    run(
        SETUP,
        "parent_id IN (SELECT id FROM parents WHERE active)",
        "BEGIN;
         UPDATE parents SET active = true WHERE id = 1;
         INSERT INTO items SELECT g, NULL FROM generate_series(100, 20099) g;
         COMMIT;
         UPDATE parents SET active = true WHERE id = 2;
         UPDATE parents SET active = false WHERE id = 2;
         SELECT pg_sleep(1);
         INSERT INTO items VALUES (3, 2);",
    );
}

#[test]
fn repro_null_not_in() {
    run(
        "CREATE TABLE items (id int PRIMARY KEY, parent_id int);
         CREATE TABLE parents (id int PRIMARY KEY, active bool);
         INSERT INTO parents VALUES (1, false);
         INSERT INTO items VALUES (1, NULL);",
        "parent_id NOT IN (SELECT id FROM parents WHERE active)",
        "UPDATE parents SET active = true WHERE id = 1;",
    );
}
