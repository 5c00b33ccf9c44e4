//! Black-box tests of subqueries in shape WHERE clauses (`electric-subqueries.md` §11,
//! scenarios 1–6, 8–13, 16–19, 21–24 and 27; the nested, timing-dependent and restart ones are
//! elsewhere). Where a test controls timing — one transaction per held long-poll — it asserts
//! exact bodies, with what differs per run masked (LSNs, op positions, a change's txids,
//! snapshot marks). Where moves may interleave, it asserts that a tag-tracking client
//! (`support::tags`, the reference's §7.1) converges to what Postgres selects.
//!
//! No test name contains "tags": `cargo test --test shape_api_subqueries tags` runs only the
//! tracker's own unit tests.

mod support;

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::tags::{tag_hash, TagTracker};
use support::{cluster, enc, Env, Follower, Opts, Resp};

/// Bound on waiting for a shape to show a change (not a timing claim).
const CONVERGE: Duration = Duration::from_secs(20);

/// One followed subquery shape and the client state built from everything it received.
struct Sub {
    f: Follower,
    t: TagTracker,
    stack: String,
    /// The table's name as in row keys and `relation` (unquoted).
    table: String,
}

impl Sub {
    /// The first request (`offset=-1`); its messages are fed to the tracker and returned.
    fn start(env: &Env<'_>, table: &str, w: &str, params: &[&str]) -> (Self, Vec<Value>) {
        let mut def = format!("table={}&where={}", enc(table), enc(w));
        for (i, p) in params.iter().enumerate() {
            def.push_str(&format!("&params%5B{}%5D={}", i + 1, enc(p)));
        }
        let (f, r) = Follower::start(env.client(), &def);
        let mut s = Self {
            f,
            t: TagTracker::new(),
            stack: stack_id(&env.server.opts),
            table: table.trim_matches('"').to_string(),
        };
        let items = r.items();
        s.t.feed_all(&items);
        (s, items)
    }

    /// The slot hash rows of this shape carry for `input` (`v:1`, `NULL`, …).
    fn h(&self, input: &str) -> String {
        tag_hash(&self.stack, &self.f.handle, input)
    }

    fn key(&self, id: &str) -> String {
        format!(r#""public"."{}"/"{id}""#, self.table)
    }

    /// A snapshot row: an insert with `tags` and `active_conditions` (keyed by its `id`).
    fn snap(&self, value: Value, tags: &[impl AsRef<str>], ac: &[bool]) -> Value {
        let id = value["id"].as_str().expect("id").to_string();
        let tags: Vec<&str> = tags.iter().map(AsRef::as_ref).collect();
        json!({
            "key": self.key(&id),
            "value": value,
            "headers": {"operation": "insert", "relation": ["public", self.table],
                        "tags": tags, "active_conditions": ac},
        })
    }

    /// A move-in query row: a snapshot row marked `is_move_in` (no lsn, op_position, txids).
    fn moved_in(&self, value: Value, tags: &[impl AsRef<str>], ac: &[bool]) -> Value {
        let mut m = self.snap(value, tags, ac);
        m["headers"]["is_move_in"] = json!(true);
        m
    }

    /// A replicated change alone in its transaction (so `last`); an update's `removed_tags`
    /// is empty here, a test expecting more sets it.
    fn change(&self, op: &str, value: Value, tags: &[impl AsRef<str>], ac: &[bool]) -> Value {
        let mut m = self.snap(value, tags, ac);
        let h = &mut m["headers"];
        h["operation"] = json!(op);
        for k in ["lsn", "op_position", "txids"] {
            h[k] = json!("*");
        }
        h["last"] = json!(true);
        if op == "update" {
            h["removed_tags"] = json!([]);
        }
        m
    }

    /// Runs `sql` (any number of transactions) while a long-poll is held; its messages.
    fn live(&mut self, env: &Env<'_>, sql: &str) -> Vec<Value> {
        let waiter = self.hold();
        env.sql(sql);
        self.take(waiter.join())
    }

    /// Runs `sql` as one transaction while a long-poll is held; its messages and the
    /// transaction's id (what a move event lists in `txids`).
    fn live_txn(&mut self, env: &Env<'_>, sql: &str) -> (Vec<Value>, u64) {
        let waiter = self.hold();
        let xid = txn(env, sql);
        (self.take(waiter.join()), xid)
    }

    fn hold(&self) -> support::Waiter<Resp> {
        let (client, url) = (self.f.client, self.f.url(true));
        support::spawn(move || client.get(&url))
    }

    /// A held long-poll's answer. On a loaded machine it may time out before the change is
    /// replicated; one more long-poll then returns as soon as it is there.
    fn take(&mut self, r: Resp) -> Vec<Value> {
        let r = if r.status == 200 && r.header("electric-has-data") == Some("false") {
            self.f.next(true)
        } else {
            r
        };
        r.expect(200);
        self.f.offset = r.offset();
        let items = r.items();
        self.t.feed_all(&items);
        items
    }

    /// Long-polls, feeding the tracker, until `done(tracker, messages so far)`; returns the
    /// messages of the responses that carried data (bounded).
    fn poll_until(
        &mut self,
        what: &str,
        done: impl Fn(&TagTracker, &[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + CONVERGE;
        let mut seen = Vec::new();
        while !done(&self.t, &seen) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; client rows {:#?}\nmessages {}",
                self.t.rows(),
                pretty(&seen)
            );
            let r = self.f.next(true);
            r.expect(200);
            if r.header("electric-has-data") != Some("false") {
                let items = r.items();
                self.t.feed_all(&items);
                seen.extend(items);
            }
        }
        seen
    }

    /// Polls until the client's rows equal `SELECT * FROM <table> WHERE w` in Postgres (`w`
    /// with parameters inlined).
    fn converge(&mut self, env: &Env<'_>, w: &str) -> Vec<Value> {
        let expected = pg_rows(env, &self.table, w);
        let what = format!("client rows = Postgres rows {expected:#?}");
        self.poll_until(&what, |t, _| t.rows() == expected)
    }
}

/// `ELECTRIC_DATABASE_ID` of the server, else upstream's default: the salt of every slot hash.
fn stack_id(opts: &Opts) -> String {
    opts.env
        .iter()
        .find(|(k, _)| *k == "ELECTRIC_DATABASE_ID")
        .map_or_else(|| "single_stack".to_string(), |(_, v)| v.clone())
}

/// Runs `sql` as one transaction; returns its id.
fn txn(env: &Env<'_>, sql: &str) -> u64 {
    let out = env
        .db
        .psql(&format!(
            "BEGIN; {sql}; SELECT pg_current_xact_id(); COMMIT;"
        ))
        .expect("transaction");
    out.lines()
        .rev()
        .find_map(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no transaction id in {out:?}"))
}

/// What a shape on `table` (primary key `id`) should hold: its rows under `w`, keyed as the
/// server keys them, every value as its text (NULL as null), as a client holds them. The
/// row alias must not be a column name, or `to_json` would read that column.
fn pg_rows(env: &Env<'_>, table: &str, w: &str) -> BTreeMap<String, Value> {
    pg_rows_db(&env.db, table, w)
}

/// [`pg_rows`] on a database the test holds directly.
fn pg_rows_db(db: &testkit::TestDb<'_>, table: &str, w: &str) -> BTreeMap<String, Value> {
    let sql = format!(
        "SELECT (SELECT json_object_agg(j.key, j.value #>> '{{}}')
                 FROM json_each(to_json(whole_row_)) j)
         FROM (SELECT * FROM \"{table}\" WHERE {w}) whole_row_"
    );
    let out = db.psql(&sql).expect("expected rows");
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("row JSON");
            let id = v["id"].as_str().expect("id column");
            (format!(r#""public"."{table}"/"{id}""#), v)
        })
        .collect()
}

fn event(kind: &str, patterns: &[(u64, String)], txid: u64) -> Value {
    let patterns: Vec<Value> = patterns
        .iter()
        .map(|(pos, value)| json!({"pos": pos, "value": value}))
        .collect();
    json!({"headers": {"event": kind, "patterns": patterns, "txids": [txid]}})
}

fn snapshot_end() -> Value {
    json!({"headers": {"control": "snapshot-end", "xmin": "*", "xmax": "*", "xip_list": "*"}})
}

fn up_to_date() -> Value {
    json!({"headers": {"control": "up-to-date", "global_last_seen_lsn": "*"}})
}

/// Messages with what differs per run replaced by `"*"`, and event patterns sorted (their
/// order is not significant).
fn mask(items: &[Value]) -> Vec<Value> {
    let mut items = items.to_vec();
    for m in &mut items {
        let Some(h) = m.get_mut("headers").and_then(Value::as_object_mut) else {
            continue;
        };
        let is_change = h.contains_key("operation");
        for (k, v) in h.iter_mut() {
            let k = k.as_str();
            if matches!(
                k,
                "lsn" | "op_position" | "global_last_seen_lsn" | "xmin" | "xmax" | "xip_list"
            ) || (is_change && k == "txids")
            {
                *v = json!("*");
            }
        }
        if let Some(p) = h.get_mut("patterns").and_then(Value::as_array_mut) {
            p.sort_by_key(|p| p.to_string());
        }
    }
    items
}

fn pretty(items: &[Value]) -> String {
    serde_json::to_string_pretty(items).unwrap_or_default()
}

#[track_caller]
fn assert_body(got: &[Value], expected: &[Value]) {
    let (got, expected) = (mask(got), mask(expected));
    assert!(
        got == expected,
        "body differs\n got: {}\nwant: {}",
        pretty(&got),
        pretty(&expected)
    );
}

fn is_event(m: &Value, kind: &str) -> bool {
    m["headers"]["event"] == kind
}

fn is_op(m: &Value, op: &str) -> bool {
    m["headers"]["operation"] == op
}

const PARENT_CHILD: &str = "
    CREATE TABLE parent (id int PRIMARY KEY, value int NOT NULL);
    CREATE TABLE child (id int PRIMARY KEY, parent_id int NOT NULL, value int NOT NULL);
    INSERT INTO parent VALUES (1, 1), (2, 2);
    INSERT INTO child VALUES (1, 1, 10), (2, 2, 20);";
const CHILD_OF_1: &str = "parent_id in (SELECT id FROM parent WHERE value = 1)";

const INNER_OUTER: &str = "
    CREATE TABLE inner_table (id int PRIMARY KEY, value int NOT NULL);
    CREATE TABLE outer_table (id int PRIMARY KEY, inner_id int NOT NULL, value int NOT NULL);
    INSERT INTO inner_table VALUES (1, 1), (2, 2);
    INSERT INTO outer_table VALUES (1, 1, 10), (2, 2, 20);";
const OUTER_OF_1: &str = "inner_id in (SELECT id FROM inner_table WHERE value = 1)";

/// Scenario 1: a snapshot row carries `tags` = [h(v:<link>)] and `active_conditions`; a live
/// insert matching the subquery is an ordinary insert with the same headers.
#[test]
fn s01_live_insert_matching_the_subquery() {
    let cluster = cluster();
    let env = Env::start(&cluster, PARENT_CHILD, Opts::default());
    let (mut s, first) = Sub::start(&env, "child", CHILD_OF_1, &[]);
    let v1 = [s.h("v:1")];
    let row1 = json!({"id": "1", "parent_id": "1", "value": "10"});
    assert_body(&first, &[s.snap(row1, &v1, &[true]), snapshot_end()]);
    let got = s.live(&env, "INSERT INTO child VALUES (3, 1, 30)");
    let row3 = json!({"id": "3", "parent_id": "1", "value": "30"});
    assert_body(
        &got,
        &[s.change("insert", row3, &v1, &[true]), up_to_date()],
    );
}

/// Scenario 1 with `ELECTRIC_DATABASE_ID` set: it replaces `single_stack` in every hash.
#[test]
fn s01_database_id_salts_the_hashes() {
    let cluster = cluster();
    let opts = Opts {
        env: vec![("ELECTRIC_DATABASE_ID", "my_database".to_string())],
        ..Opts::default()
    };
    let env = Env::start(&cluster, PARENT_CHILD, opts);
    let (s, first) = Sub::start(&env, "child", CHILD_OF_1, &[]);
    assert_eq!(s.stack, "my_database");
    let expected = json!([tag_hash("my_database", &s.f.handle, "v:1")]);
    assert_eq!(first[0]["headers"]["tags"], expected, "{}", pretty(&first));
}

/// Scenario 2: a value leaving the dependency is one move-out event and no delete; the
/// tag-tracking client deletes the row itself.
#[test]
fn s02_move_out_is_an_event_without_deletes() {
    let cluster = cluster();
    let env = Env::start(&cluster, INNER_OUTER, Opts::default());
    let (mut s, first) = Sub::start(&env, "outer_table", OUTER_OF_1, &[]);
    let h1 = s.h("v:1");
    let row1 = json!({"id": "1", "inner_id": "1", "value": "10"});
    assert_body(&first, &[s.snap(row1, &[&h1], &[true]), snapshot_end()]);
    let (got, x) = s.live_txn(&env, "UPDATE inner_table SET value = 3 WHERE id = 1");
    assert_body(&got, &[event("move-out", &[(0, h1)], x), up_to_date()]);
    assert!(s.t.rows().is_empty());
    assert_eq!(s.t.synthetic_deletes, [s.key("1")]);
    s.converge(&env, OUTER_OF_1);
}

/// Scenario 3: a value entering the dependency is a move-in event, the newly matching rows
/// (`is_move_in`) and a snapshot-end.
#[test]
fn s03_move_in_queries_the_new_rows() {
    let cluster = cluster();
    let env = Env::start(&cluster, INNER_OUTER, Opts::default());
    let (mut s, _) = Sub::start(&env, "outer_table", OUTER_OF_1, &[]);
    let h2 = s.h("v:2");
    let (got, x) = s.live_txn(&env, "UPDATE inner_table SET value = 1 WHERE id = 2");
    let row2 = json!({"id": "2", "inner_id": "2", "value": "20"});
    assert_body(
        &got,
        &[
            event("move-in", &[(0, h2.clone())], x),
            s.moved_in(row2, &[h2], &[true]),
            snapshot_end(),
            up_to_date(),
        ],
    );
    assert_eq!(s.t.rows().len(), 2);
    s.converge(&env, OUTER_OF_1);
}

const NOT_IN: &str = "inner_id NOT IN (SELECT id FROM inner_table WHERE excluded = true)";

fn not_in_setup(excluded_1: bool) -> String {
    format!(
        "CREATE TABLE inner_table (id int PRIMARY KEY, excluded boolean NOT NULL);
         CREATE TABLE outer_table (id int PRIMARY KEY, inner_id int NOT NULL);
         INSERT INTO inner_table VALUES (1, {excluded_1}), (2, true);
         INSERT INTO outer_table VALUES (1, 1), (2, 2);"
    )
}

/// Scenario 4: NOT IN; a value entering the dependency moves rows out.
#[test]
fn s04_not_in_value_entering_is_a_move_out() {
    let cluster = cluster();
    let env = Env::start(&cluster, &not_in_setup(false), Opts::default());
    let (mut s, first) = Sub::start(&env, "outer_table", NOT_IN, &[]);
    let h1 = s.h("v:1");
    let row1 = json!({"id": "1", "inner_id": "1"});
    assert_body(&first, &[s.snap(row1, &[&h1], &[true]), snapshot_end()]);
    let (got, x) = s.live_txn(&env, "UPDATE inner_table SET excluded = true WHERE id = 1");
    assert_body(&got, &[event("move-out", &[(0, h1)], x), up_to_date()]);
    assert!(s.t.rows().is_empty());
}

/// Scenario 5: NOT IN; a value leaving the dependency moves rows in.
#[test]
fn s05_not_in_value_leaving_is_a_move_in() {
    let cluster = cluster();
    let env = Env::start(&cluster, &not_in_setup(true), Opts::default());
    let (mut s, first) = Sub::start(&env, "outer_table", NOT_IN, &[]);
    assert_body(&first, &[snapshot_end()]);
    let h1 = s.h("v:1");
    let (got, x) = s.live_txn(&env, "UPDATE inner_table SET excluded = false WHERE id = 1");
    let row1 = json!({"id": "1", "inner_id": "1"});
    assert_body(
        &got,
        &[
            event("move-in", &[(0, h1.clone())], x),
            s.moved_in(row1, &[h1], &[true]),
            snapshot_end(),
            up_to_date(),
        ],
    );
    s.converge(&env, NOT_IN);
}

/// Scenario 6: the subquery selects a non-PK column, so a value stays in the view while any
/// dependency row has it: changes that keep a value present move nothing.
#[test]
fn s06_non_pk_subquery_column_counts_references() {
    let cluster = cluster();
    let env = Env::start(
        &cluster,
        "CREATE TABLE parent (id int PRIMARY KEY, value int NOT NULL, other_value int NOT NULL);
         CREATE TABLE child (id int PRIMARY KEY, value int NOT NULL, other_value int NOT NULL);
         INSERT INTO parent VALUES (1, 10, 10), (2, 20, 5);
         INSERT INTO child VALUES (1, 10, 10);",
        Opts::default(),
    );
    let w = "value in (SELECT value FROM parent WHERE other_value >= 10)";
    let (mut s, first) = Sub::start(&env, "child", w, &[]);
    let h10 = [s.h("v:10")];
    let row1 = json!({"id": "1", "value": "10", "other_value": "10"});
    assert_body(&first, &[s.snap(row1, &h10, &[true]), snapshot_end()]);
    // Each step: dependency changes that keep 10 in the view, then a child update, which is
    // all the held long-poll gets.
    for (n, dependency_sql) in [
        (2, "UPDATE parent SET other_value = 13 WHERE id = 1"),
        (3, "INSERT INTO parent VALUES (3, 10, 30)"),
        (4, "DELETE FROM parent WHERE id = 1"),
    ] {
        let sql = format!("{dependency_sql}; UPDATE child SET other_value = {n} WHERE id = 1;");
        let got = s.live(&env, &sql);
        let diff = json!({"id": "1", "other_value": n.to_string()});
        assert_body(
            &got,
            &[s.change("update", diff, &h10, &[true]), up_to_date()],
        );
    }
    // A child whose value is not in the view yet, then its value enters.
    env.sql("INSERT INTO child VALUES (2, 20, 4)");
    let h20 = s.h("v:20");
    let (got, x) = s.live_txn(&env, "UPDATE parent SET other_value = 10 WHERE id = 2");
    let row2 = json!({"id": "2", "value": "20", "other_value": "4"});
    assert_body(
        &got,
        &[
            event("move-in", &[(0, h20.clone())], x),
            s.moved_in(row2, &[h20], &[true]),
            snapshot_end(),
            up_to_date(),
        ],
    );
    s.converge(&env, w);
}

fn or_setup(include_parent: bool) -> String {
    format!(
        "CREATE TABLE parent (id int PRIMARY KEY, include_parent boolean NOT NULL);
         CREATE TABLE child (id int PRIMARY KEY, parent_id int NOT NULL,
                             include_child boolean NOT NULL);
         INSERT INTO parent VALUES (1, {include_parent});
         INSERT INTO child VALUES (1, 1, true);"
    )
}
const OR_W: &str =
    "parent_id in (SELECT id FROM parent WHERE include_parent = true) OR include_child = true";

/// Scenario 8: under OR, a move-out only flips a position; the row still matches through the
/// other disjunct, so the client keeps it.
#[test]
fn s08_or_move_out_keeps_the_row() {
    let cluster = cluster();
    let env = Env::start(&cluster, &or_setup(true), Opts::default());
    let (mut s, first) = Sub::start(&env, "child", OR_W, &[]);
    let h1 = s.h("v:1");
    let or_tags = [format!("{h1}/"), "/1".to_string()];
    let row1 = json!({"id": "1", "parent_id": "1", "include_child": "true"});
    assert_body(
        &first,
        &[s.snap(row1, &or_tags, &[true, true]), snapshot_end()],
    );
    let (got, x) = s.live_txn(
        &env,
        "UPDATE parent SET include_parent = false WHERE id = 1",
    );
    assert_body(&got, &[event("move-out", &[(0, h1)], x), up_to_date()]);
    assert!(s.t.rows().contains_key(&s.key("1")));
    assert_eq!(s.t.active_conditions(&s.key("1")), Some(vec![false, true]));
    assert!(s.t.synthetic_deletes.is_empty());
    s.converge(&env, OR_W);
}

/// Scenario 9: under OR, a move-in whose rows are already in the shape writes only events
/// (no rows, no snapshot-end); the client flips the position back to true.
#[test]
fn s09_or_move_in_without_rows() {
    let cluster = cluster();
    let env = Env::start(&cluster, &or_setup(false), Opts::default());
    let (mut s, first) = Sub::start(&env, "child", OR_W, &[]);
    let h1 = s.h("v:1");
    let or_tags = [format!("{h1}/"), "/1".to_string()];
    let row1 = json!({"id": "1", "parent_id": "1", "include_child": "true"});
    assert_body(
        &first,
        &[s.snap(row1, &or_tags, &[false, true]), snapshot_end()],
    );
    let got = s.live(&env, "UPDATE parent SET include_parent = true WHERE id = 1");
    let (last, events) = got.split_last().expect("messages");
    assert_body(std::slice::from_ref(last), &[up_to_date()]);
    assert!(!events.is_empty(), "{}", pretty(&got));
    assert!(
        events.iter().all(|m| is_event(m, "move-in")),
        "{}",
        pretty(&got)
    );
    let pattern = json!({"pos": 0, "value": h1});
    let has_pattern = |m: &Value| {
        m["headers"]["patterns"]
            .as_array()
            .is_some_and(|p| p.contains(&pattern))
    };
    assert!(events.iter().any(has_pattern), "{}", pretty(&got));
    assert_eq!(s.t.active_conditions(&s.key("1")), Some(vec![true, true]));
}

/// Scenario 10: the dependency table has a composite primary key; inserting and deleting one
/// of its rows moves a team in and out.
#[test]
fn s10_dependency_with_composite_pk() {
    let cluster = cluster();
    let env = Env::start(
        &cluster,
        "CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL);
         CREATE TABLE teams (id int PRIMARY KEY, name text NOT NULL);
         CREATE TABLE members (user_id int NOT NULL, team_id int NOT NULL,
                               PRIMARY KEY (user_id, team_id));
         INSERT INTO users VALUES (1, 'Alice'), (2, 'Bob');
         INSERT INTO teams VALUES (1, 'Team A'), (2, 'Team B');
         INSERT INTO members VALUES (1, 1), (2, 2);",
        Opts::default(),
    );
    let w = "id IN (SELECT team_id FROM members WHERE user_id = 1)";
    let (mut s, first) = Sub::start(&env, "teams", w, &[]);
    let (h1, h2) = (s.h("v:1"), s.h("v:2"));
    let team1 = json!({"id": "1", "name": "Team A"});
    assert_body(&first, &[s.snap(team1, &[&h1], &[true]), snapshot_end()]);

    let got = s.live(&env, "UPDATE teams SET name = 'Team A+' WHERE id = 1");
    let diff = json!({"id": "1", "name": "Team A+"});
    assert_body(
        &got,
        &[s.change("update", diff, &[h1], &[true]), up_to_date()],
    );

    let (got, x) = s.live_txn(&env, "INSERT INTO members VALUES (1, 2)");
    let team2 = json!({"id": "2", "name": "Team B"});
    assert_body(
        &got,
        &[
            event("move-in", &[(0, h2.clone())], x),
            s.moved_in(team2, &[&h2], &[true]),
            snapshot_end(),
            up_to_date(),
        ],
    );
    let (got, x) = s.live_txn(
        &env,
        "DELETE FROM members WHERE user_id = 1 AND team_id = 2",
    );
    assert_body(&got, &[event("move-out", &[(0, h2)], x), up_to_date()]);
    s.converge(&env, w);
}

/// Scenario 11: `(a, b) IN (SELECT x, y …)` hashes the outer column names with the values.
#[test]
fn s11_row_valued_in() {
    let cluster = cluster();
    let env = Env::start(
        &cluster,
        "CREATE TABLE members (user_id int NOT NULL, team_id int NOT NULL, flag boolean NOT NULL,
                               PRIMARY KEY (user_id, team_id));
         CREATE TABLE member_details (id serial PRIMARY KEY, user_id int NOT NULL,
                                      team_id int NOT NULL, role text NOT NULL);
         INSERT INTO members VALUES (1, 1, TRUE), (2, 2, FALSE);
         INSERT INTO member_details (user_id, team_id, role)
             VALUES (1, 1, 'Member'), (2, 2, 'Member');",
        Opts::default(),
    );
    let w = "(user_id, team_id) IN (SELECT user_id, team_id FROM members WHERE flag = TRUE)";
    let (mut s, first) = Sub::start(&env, "member_details", w, &[]);
    let h11 = s.h("user_id:v:1team_id:v:1");
    let h22 = s.h("user_id:v:2team_id:v:2");
    let detail = |id: &str| json!({"id": id, "user_id": id, "team_id": id, "role": "Member"});
    assert_body(
        &first,
        &[s.snap(detail("1"), &[h11], &[true]), snapshot_end()],
    );

    let flag_2 = |on: bool| format!("UPDATE members SET flag = {on} WHERE user_id = 2");
    let (got, x) = s.live_txn(&env, &flag_2(true));
    assert_body(
        &got,
        &[
            event("move-in", &[(0, h22.clone())], x),
            s.moved_in(detail("2"), &[&h22], &[true]),
            snapshot_end(),
            up_to_date(),
        ],
    );
    let (got, x) = s.live_txn(&env, &flag_2(false));
    assert_body(&got, &[event("move-out", &[(0, h22)], x), up_to_date()]);
    s.converge(&env, w);
}

/// Scenario 12: `$n` parameters inside the subquery and outside it; the row predicate after
/// the subquery gives tags a second slot.
#[test]
fn s12_params_inside_the_subquery() {
    let cluster = cluster();
    let env = Env::start(
        &cluster,
        "CREATE TABLE parent (id int PRIMARY KEY, value int NOT NULL, other_value int NOT NULL);
         CREATE TABLE child (id int PRIMARY KEY, value int NOT NULL, other_value int NOT NULL);
         INSERT INTO parent VALUES (1, 10, 10), (2, 20, 5);
         INSERT INTO child VALUES (1, 10, 10), (2, 10, 5), (3, 20, 20);",
        Opts::default(),
    );
    let w = "value in (SELECT value FROM parent WHERE other_value >= $2) AND other_value >= $1";
    let (mut s, first) = Sub::start(&env, "child", w, &["10", "6"]);
    let (h20, t10) = (s.h("v:20"), [format!("{}/1", s.h("v:10"))]);
    let t20 = [format!("{h20}/1")];
    let row = |id: &str, v: &str, o: &str| json!({"id": id, "value": v, "other_value": o});
    let both = [true, true];
    assert_body(
        &first,
        &[s.snap(row("1", "10", "10"), &t10, &both), snapshot_end()],
    );

    // The row predicate turns true: the old row was out, so this is an insert of the row.
    let got = s.live(&env, "UPDATE child SET other_value = 20 WHERE id = 2");
    let insert = s.change("insert", row("2", "10", "20"), &t10, &both);
    assert_body(&got, &[insert, up_to_date()]);

    let (got, x) = s.live_txn(&env, "UPDATE parent SET other_value = 10 WHERE id = 2");
    assert_body(
        &got,
        &[
            event("move-in", &[(0, h20)], x),
            s.moved_in(row("3", "20", "20"), &t20, &both),
            snapshot_end(),
            up_to_date(),
        ],
    );
    let inlined =
        "value in (SELECT value FROM parent WHERE other_value >= 6) AND other_value >= 10";
    s.converge(&env, inlined);
}

/// Scenario 13: quoted, case-sensitive identifiers in the outer table, the subquery and the
/// move-in query.
#[test]
fn s13_quoted_identifiers() {
    let cluster = cluster();
    let env = Env::start(
        &cluster,
        r#"CREATE TABLE "Parent" (id int PRIMARY KEY, "Value" int NOT NULL,
                                  "otherValue" int NOT NULL);
           CREATE TABLE "Child" (id int PRIMARY KEY, "Value" int NOT NULL,
                                 "parentId" int NOT NULL);
           INSERT INTO "Parent" VALUES (1, 10, 10), (2, 20, 5);
           INSERT INTO "Child" VALUES (1, 10, 1), (2, 20, 2), (3, 5, 1);"#,
        Opts::default(),
    );
    let w = r#""parentId" in (SELECT "id" FROM "Parent" WHERE "otherValue" >= $2)
               AND "Value" >= $1"#;
    let (mut s, first) = Sub::start(&env, r#""Child""#, w, &["10", "6"]);
    let (t1, h2) = ([format!("{}/1", s.h("v:1"))], s.h("v:2"));
    let row = |id: &str, v: &str| json!({"id": id, "parentId": id, "Value": v});
    assert_body(
        &first,
        &[s.snap(row("1", "10"), &t1, &[true, true]), snapshot_end()],
    );

    let (got, x) = s.live_txn(&env, r#"UPDATE "Parent" SET "otherValue" = 6 WHERE id = 2"#);
    assert_body(
        &got,
        &[
            event("move-in", &[(0, h2.clone())], x),
            s.moved_in(row("2", "20"), &[format!("{h2}/1")], &[true, true]),
            snapshot_end(),
            up_to_date(),
        ],
    );
}

/// Scenario 16: from empty tables, a move-in with no rows yet (event only), a row arriving by
/// replication, a move-out; then the same moves back to back, which must converge.
#[test]
fn s16_move_in_from_an_empty_shape() {
    let cluster = cluster();
    let env = Env::start(
        &cluster,
        "CREATE TABLE parent (id int PRIMARY KEY, value int NOT NULL);
         CREATE TABLE child (id int PRIMARY KEY, parent_id int NOT NULL, value int NOT NULL);",
        Opts::default(),
    );
    let (mut s, first) = Sub::start(&env, "child", CHILD_OF_1, &[]);
    assert_body(&first, &[snapshot_end()]);
    let h1 = s.h("v:1");
    // The query returns no row, so no snapshot-end follows the event.
    let (got, x) = s.live_txn(&env, "INSERT INTO parent VALUES (1, 1)");
    assert_body(
        &got,
        &[event("move-in", &[(0, h1.clone())], x), up_to_date()],
    );
    let got = s.live(&env, "INSERT INTO child VALUES (1, 1, 10)");
    let row1 = json!({"id": "1", "parent_id": "1", "value": "10"});
    let insert = s.change("insert", row1, &[&h1], &[true]);
    assert_body(&got, &[insert, up_to_date()]);
    let (got, x) = s.live_txn(&env, "UPDATE parent SET value = 2 WHERE id = 1");
    assert_body(&got, &[event("move-out", &[(0, h1)], x), up_to_date()]);
    assert!(s.t.rows().is_empty());

    // Back to back, one transaction each: only child 3 is left in the end.
    env.sql(
        "UPDATE parent SET value = 1 WHERE id = 1;
         INSERT INTO child VALUES (2, 1, 20);
         UPDATE parent SET value = 2 WHERE id = 1;
         INSERT INTO parent VALUES (2, 1);
         INSERT INTO child VALUES (3, 2, 30);",
    );
    s.converge(&env, CHILD_OF_1);
    assert_eq!(s.t.rows().keys().collect::<Vec<_>>(), [&s.key("3")]);
}

/// Scenario 17: two subqueries ANDed, one slot each; a row insert and a move-in of the second.
#[test]
fn s17_two_subqueries_anded() {
    let cluster = cluster();
    let env = Env::start(
        &cluster,
        "CREATE TABLE projects (id int PRIMARY KEY, workspace_id int NOT NULL);
         CREATE TABLE workspace_members (workspace_id int NOT NULL, user_id int NOT NULL,
                                         PRIMARY KEY (workspace_id, user_id));
         CREATE TABLE project_members (project_id int NOT NULL, user_id int NOT NULL,
                                       PRIMARY KEY (project_id, user_id));
         INSERT INTO projects VALUES (1, 1), (2, 1);
         INSERT INTO workspace_members VALUES (1, 100);
         INSERT INTO project_members VALUES (1, 100), (3, 100);",
        Opts::default(),
    );
    let w = "workspace_id IN (SELECT workspace_id FROM workspace_members WHERE user_id = 100) \
             AND id IN (SELECT project_id FROM project_members WHERE user_id = 100)";
    let (mut s, first) = Sub::start(&env, "projects", w, &[]);
    // Workspace 1 at position 0, the project's id at position 1.
    let tag = |id: &str| [format!("{}/{}", s.h("v:1"), s.h(&format!("v:{id}")))];
    let project = |id: &str| json!({"id": id, "workspace_id": "1"});
    let (t1, t2, t3, h2) = (tag("1"), tag("2"), tag("3"), s.h("v:2"));
    let both = [true, true];
    assert_body(&first, &[s.snap(project("1"), &t1, &both), snapshot_end()]);

    let got = s.live(&env, "INSERT INTO projects VALUES (3, 1)");
    let insert = s.change("insert", project("3"), &t3, &both);
    assert_body(&got, &[insert, up_to_date()]);

    // Only the second dependency moved: its position is 1.
    let (got, x) = s.live_txn(&env, "INSERT INTO project_members VALUES (2, 100)");
    assert_body(
        &got,
        &[
            event("move-in", &[(1, h2)], x),
            s.moved_in(project("2"), &t2, &both),
            snapshot_end(),
            up_to_date(),
        ],
    );
    s.converge(&env, w);
}

fn parents_children(parent_of_child: &str) -> String {
    format!(
        "CREATE TABLE parents (id text PRIMARY KEY, active boolean NOT NULL);
         CREATE TABLE children (id text PRIMARY KEY, parent_id text NOT NULL,
                                status text NOT NULL);
         INSERT INTO parents VALUES ('parent-a', true), ('parent-b', false);
         INSERT INTO children VALUES ('child-1', '{parent_of_child}', 'published');"
    )
}
const ACTIVE_PUBLISHED: &str =
    "parent_id IN (SELECT id FROM parents WHERE active = true) AND status = 'published'";

/// Scenario 18: one transaction activates a parent and moves a child to it while making the
/// child fail the row predicate: the server deletes the child (before the move-in event) and
/// the move-in query does not return it.
#[test]
fn s18_one_transaction_flips_the_dependency_and_drops_the_row() {
    let cluster = cluster();
    let env = Env::start(&cluster, &parents_children("parent-a"), Opts::default());
    let (mut s, first) = Sub::start(&env, "children", ACTIVE_PUBLISHED, &[]);
    let row = json!({"id": "child-1", "parent_id": "parent-a", "status": "published"});
    let ta = [format!("{}/1", s.h("v:parent-a"))];
    assert_body(&first, &[s.snap(row, &ta, &[true, true]), snapshot_end()]);
    env.sql(
        "BEGIN;
         UPDATE parents SET active = true WHERE id = 'parent-b';
         UPDATE children SET parent_id = 'parent-b', status = 'draft' WHERE id = 'child-1';
         COMMIT;",
    );
    let expected = pg_rows(&env, "children", ACTIVE_PUBLISHED);
    assert!(expected.is_empty());
    let seen = s.poll_until("the delete and the move-in", |t, seen| {
        t.rows() == expected && seen.iter().any(|m| is_event(m, "move-in"))
    });
    let k = s.key("child-1");
    let delete = seen
        .iter()
        .position(|m| is_op(m, "delete") && m["key"] == k.as_str());
    let move_in = seen.iter().position(|m| is_event(m, "move-in"));
    let ordered = matches!((delete, move_in), (Some(d), Some(e)) if d < e);
    assert!(ordered, "{}", pretty(&seen));
    assert!(
        !seen.iter().any(|m| is_op(m, "insert")),
        "{}",
        pretty(&seen)
    );
    assert!(s.t.synthetic_deletes.is_empty());
}

/// Scenario 19: activating the parent of a child that satisfies the row predicate moves it in.
#[test]
fn s19_dependency_activation_moves_the_row_in() {
    let cluster = cluster();
    let env = Env::start(&cluster, &parents_children("parent-b"), Opts::default());
    let (mut s, first) = Sub::start(&env, "children", ACTIVE_PUBLISHED, &[]);
    assert_body(&first, &[snapshot_end()]);
    let hb = s.h("v:parent-b");
    let (got, x) = s.live_txn(
        &env,
        "UPDATE parents SET active = true WHERE id = 'parent-b'",
    );
    let row = json!({"id": "child-1", "parent_id": "parent-b", "status": "published"});
    assert_body(
        &got,
        &[
            event("move-in", &[(0, hb.clone())], x),
            s.moved_in(row, &[format!("{hb}/1")], &[true, true]),
            snapshot_end(),
            up_to_date(),
        ],
    );
    s.converge(&env, ACTIVE_PUBLISHED);
}

const TWO_PARENTS: &str = "
    CREATE TABLE parents (id text PRIMARY KEY, active boolean NOT NULL);
    CREATE TABLE children (id text PRIMARY KEY, parent_id text NOT NULL);
    INSERT INTO parents VALUES ('parent-1', true), ('parent-2', true);
    INSERT INTO children VALUES ('child-1', 'parent-1');";
const ACTIVE: &str = "parent_id IN (SELECT id FROM parents WHERE active = true)";

/// Scenario 21: re-parenting a row is an update with the new tags and the old ones in
/// `removed_tags`, so the old parent's move-out no longer deletes it on the client.
#[test]
fn s21_reparented_row_survives_the_old_parents_move_out() {
    let cluster = cluster();
    let env = Env::start(&cluster, TWO_PARENTS, Opts::default());
    let (mut s, first) = Sub::start(&env, "children", ACTIVE, &[]);
    let (h1, h2) = (s.h("v:parent-1"), s.h("v:parent-2"));
    let row = json!({"id": "child-1", "parent_id": "parent-1"});
    assert_body(&first, &[s.snap(row, &[&h1], &[true]), snapshot_end()]);

    let got = s.live(&env, "UPDATE children SET parent_id = 'parent-2'");
    let diff = json!({"id": "child-1", "parent_id": "parent-2"});
    let mut update = s.change("update", diff, &[h2], &[true]);
    update["headers"]["removed_tags"] = json!([h1]);
    assert_body(&got, &[update, up_to_date()]);

    let (got, x) = s.live_txn(
        &env,
        "UPDATE parents SET active = false WHERE id = 'parent-1'",
    );
    assert_body(&got, &[event("move-out", &[(0, h1)], x), up_to_date()]);
    assert!(s.t.synthetic_deletes.is_empty());
    s.converge(&env, ACTIVE);
}

/// Scenario 22: one dependency used at two positions. Under AND a new value moves in every
/// row that now has both; under OR only the row that matched neither before.
#[test]
fn s22_dependency_used_twice() {
    let cluster = cluster();
    let env = Env::start(
        &cluster,
        "CREATE TABLE dep (id int PRIMARY KEY);
         CREATE TABLE child (id int PRIMARY KEY, x int NOT NULL, y int NOT NULL);
         INSERT INTO dep VALUES (1);
         INSERT INTO child VALUES (1, 1, 1), (2, 2, 1), (3, 1, 2), (4, 2, 2);",
        Opts::default(),
    );
    let and_w = "x IN (SELECT id FROM dep) AND y IN (SELECT id FROM dep)";
    let or_w = "x IN (SELECT id FROM dep) OR y IN (SELECT id FROM dep)";
    // Child `id` has x and y as written in the INSERT above.
    let row = |id: &str| {
        let (x, y) = match id {
            "1" => ("1", "1"),
            "2" => ("2", "1"),
            "3" => ("1", "2"),
            _ => ("2", "2"),
        };
        (
            json!({"id": id, "x": x, "y": y}),
            format!("v:{x}"),
            format!("v:{y}"),
        )
    };
    let (mut a, first) = Sub::start(&env, "child", and_w, &[]);
    let (mut o, first_or) = Sub::start(&env, "child", or_w, &[]);
    let and_row = |id: &str, move_in: bool| {
        let (value, x, y) = row(id);
        let tags = [format!("{}/{}", a.h(&x), a.h(&y))];
        match move_in {
            true => a.moved_in(value, &tags, &[true, true]),
            false => a.snap(value, &tags, &[true, true]),
        }
    };
    let or_row = |id: &str, move_in: bool, ac: &[bool]| {
        let (value, x, y) = row(id);
        let tags = [format!("{}/", o.h(&x)), format!("/{}", o.h(&y))];
        match move_in {
            true => o.moved_in(value, &tags, ac),
            false => o.snap(value, &tags, ac),
        }
    };
    assert_body(&first, &[and_row("1", false), snapshot_end()]);
    let or_snapshot = [
        or_row("1", false, &[true, true]),
        or_row("2", false, &[false, true]),
        or_row("3", false, &[true, false]),
        snapshot_end(),
    ];
    assert_body(&first_or, &or_snapshot);
    let (ha2, ho2) = (a.h("v:2"), o.h("v:2"));
    let mut want_and = vec![event("move-in", &[(0, ha2.clone()), (1, ha2)], 0)];
    want_and.extend(["2", "3", "4"].map(|id| and_row(id, true)));
    want_and.extend([snapshot_end(), up_to_date()]);
    let want_or_row = or_row("4", true, &[true, true]);

    let (mut got, x) = a.live_txn(&env, "INSERT INTO dep VALUES (2)");
    want_and[0]["headers"]["txids"] = json!([x]);
    assert_eq!(got.len(), 6, "{}", pretty(&got));
    // The query's rows come in no particular order.
    got[1..4].sort_by_key(|m| m["key"].to_string());
    assert_body(&got, &want_and);

    let got = o.poll_until("the move-in", |_, seen| {
        seen.iter().any(|m| is_event(m, "move-in"))
    });
    let move_in = event("move-in", &[(0, ho2.clone()), (1, ho2)], x);
    assert_body(&got, &[move_in, want_or_row, snapshot_end(), up_to_date()]);
    // The event re-activated the positions of the rows already there.
    assert_eq!(o.t.active_conditions(&o.key("2")), Some(vec![true, true]));
    assert_eq!(o.t.active_conditions(&o.key("3")), Some(vec![true, true]));
    a.converge(&env, and_w);
    o.converge(&env, or_w);
}

/// Scenario 23: a NULL link value hashes as `NULL` (not `v:`), in the snapshot and live.
#[test]
fn s23_null_link_value() {
    let cluster = cluster();
    let env = Env::start(
        &cluster,
        "CREATE TABLE parent (id int PRIMARY KEY);
         CREATE TABLE child (id int PRIMARY KEY, parent_id int, value int NOT NULL);
         INSERT INTO parent VALUES (1), (2);
         INSERT INTO child VALUES (1, 1, 10), (2, NULL, 20), (3, 3, 30);",
        Opts::default(),
    );
    let w = "parent_id IN (SELECT id FROM parent) OR parent_id IS NULL";
    let (mut s, first) = Sub::start(&env, "child", w, &[]);
    let t1 = [format!("{}/", s.h("v:1")), "/1".to_string()];
    let tnull = [format!("{}/", s.h("NULL")), "/1".to_string()];
    let row = |id: &str, p: Value, v: &str| json!({"id": id, "parent_id": p, "value": v});
    let expected = [
        s.snap(row("1", json!("1"), "10"), &t1, &[true, false]),
        s.snap(row("2", Value::Null, "20"), &tnull, &[false, true]),
        snapshot_end(),
    ];
    assert_body(&first, &expected);
    let got = s.live(&env, "INSERT INTO child VALUES (4, NULL, 40)");
    let insert = s.change(
        "insert",
        row("4", Value::Null, "40"),
        &tnull,
        &[false, true],
    );
    assert_body(&got, &[insert, up_to_date()]);
}

/// Scenario 24: the 400s of reference §1.2, exact bodies.
#[test]
fn s24_validation_errors() {
    let cluster = cluster();
    let env = Env::start(
        &cluster,
        "CREATE TABLE s (id int PRIMARY KEY);
         CREATE TABLE t (id int PRIMARY KEY, x int, a int, b int);",
        Opts::default(),
    );
    let c = env.client();
    let invalid =
        |field: &str, msg: &str| json!({"message": "Invalid request", "errors": {field: [msg]}});
    let polarity = invalid(
        "where",
        "a subquery dependency cannot be used with both positive and negative polarity in the \
         same filter",
    );
    let ors = |col: &str, n: usize| {
        let terms: Vec<String> = (1..=n).map(|i| format!("{col} = {i}")).collect();
        format!("({})", terms.join(" OR "))
    };
    let sq = "x IN (SELECT id FROM s)";
    let cases = [
        (
            format!("{sq} OR NOT x IN (SELECT id FROM s)"),
            "",
            polarity.clone(),
        ),
        (
            format!("{sq} AND NOT a IN (SELECT id FROM s)"),
            "",
            polarity,
        ),
        (
            "x IN (SELECT id FROM unknown_table)".to_string(),
            "",
            invalid(
                "table",
                "Table \"public\".\"unknown_table\" does not exist. If the table name contains \
                 capitals or special characters you must quote it.",
            ),
        ),
        (
            sq.to_string(),
            "&experimental_compaction=true",
            invalid(
                "experimental_compaction",
                "can't be enabled for shapes with subqueries",
            ),
        ),
        (
            format!("{} AND {} AND {sq}", ors("a", 11), ors("b", 10)),
            "",
            invalid(
                "where",
                "WHERE clause too complex for DNF decomposition (110 disjuncts exceeds limit of \
                 100)",
            ),
        ),
        (
            "EXISTS (SELECT id FROM s)".to_string(),
            "",
            invalid(
                "where",
                "At location 0: only `value IN (SELECT ...)` sublinks are supported right now",
            ),
        ),
        (
            sq.to_string(),
            "&subset__where=id%20IN%20(SELECT%20id%20FROM%20s)",
            json!({"message": "Invalid request",
                   "errors": {"subset": {"where": ["Subqueries are not allowed in subsets"]}}}),
        ),
    ];
    for (w, extra, expected) in cases {
        let r = c.get(&format!(
            "/v1/shape?table=t&offset=-1&where={}{extra}",
            enc(&w)
        ));
        assert_eq!(r.status, 400, "{w} {extra}: {}", r.body_str());
        assert_eq!(r.json(), expected, "{w} {extra}");
        assert_eq!(r.header("cache-control"), Some("no-store"), "{w} {extra}");
    }
    // The subquery alone is fine.
    c.get(&format!("/v1/shape?table=t&offset=-1&where={}", enc(sq)))
        .expect(200);
}

/// Scenario 27: a move-out that happened while the client was away still deletes the row
/// when it resumes from its offset with its tag state.
#[test]
fn s27_resume_after_move_out() {
    let cluster = cluster();
    let env = Env::start(&cluster, TWO_PARENTS, Opts::default());
    let (mut s, _) = Sub::start(&env, "children", ACTIVE, &[]);
    let r = s.f.next(false);
    r.expect(200);
    assert!(r.has("electric-up-to-date"), "{}", r.body_str());
    s.t.feed_all(&r.items());
    assert_eq!(s.t.rows().len(), 1);

    // Away: no request is open while the parent is deactivated.
    let x = txn(
        &env,
        "UPDATE parents SET active = false WHERE id = 'parent-1'",
    );
    let got = s.poll_until("the move-out", |_, seen| {
        seen.iter().any(|m| is_event(m, "move-out"))
    });
    let move_out = event("move-out", &[(0, s.h("v:parent-1"))], x);
    assert_body(&got, &[move_out, up_to_date()]);
    assert!(s.t.rows().is_empty());
    assert_eq!(s.t.synthetic_deletes, [s.key("child-1")]);
}

/// Scenario 7: three levels (a subquery inside the subquery). Moves below reach the outer
/// shape as its own move-in / move-out, with the outer row's tags.
#[test]
fn s07_three_levels() {
    let cluster = cluster();
    let setup = "CREATE TABLE grandparent (id int PRIMARY KEY, value int NOT NULL);
         CREATE TABLE parent (id int PRIMARY KEY, value int NOT NULL, grandparent_id int);
         CREATE TABLE child (id int PRIMARY KEY, value int NOT NULL, parent_id int);
         INSERT INTO grandparent VALUES (1, 10), (2, 20);
         INSERT INTO parent VALUES (1, 10, 1), (2, 20, 2);
         INSERT INTO child VALUES (1, 10, 1), (2, 20, 2);";
    let w = "parent_id in (SELECT id FROM parent WHERE grandparent_id in \
             (SELECT id FROM grandparent WHERE value = 10))";
    let env = Env::start(&cluster, setup, Opts::default());
    let (mut s, first) = Sub::start(&env, "child", w, &[]);
    let h1 = s.h("v:1");
    let row1 = json!({"id": "1", "value": "10", "parent_id": "1"});
    assert_body(&first, &[s.snap(row1, &[h1], &[true]), snapshot_end()]);
    let t = s.h("v:2");
    let (got, x) = s.live_txn(&env, "UPDATE grandparent SET value = 10 WHERE id = 2");
    let row2 = json!({"id": "2", "value": "20", "parent_id": "2"});
    assert_body(
        &got,
        &[
            event("move-in", &[(0, t.clone())], x),
            s.moved_in(row2, std::slice::from_ref(&t), &[true]),
            snapshot_end(),
            up_to_date(),
        ],
    );
    let (got, x) = s.live_txn(&env, "UPDATE grandparent SET value = 20 WHERE id = 2");
    assert_body(&got, &[event("move-out", &[(0, t)], x), up_to_date()]);
    s.converge(&env, w);
    // A middle row re-parented under a matching grandparent moves its children in.
    s.live(&env, "UPDATE parent SET grandparent_id = 1 WHERE id = 2");
    s.converge(&env, w);
    // A child moving between matching parents stays, with new tags.
    s.live(&env, "UPDATE child SET parent_id = 1 WHERE id = 2");
    s.converge(&env, w);
    assert_eq!(s.t.rows().len(), 2);
}

/// Scenario 20: four levels; re-parenting an intermediate row whose value stays in the view
/// above it changes nothing for the outer shape.
#[test]
fn s20_intermediate_reparenting() {
    let cluster = cluster();
    let setup = "CREATE TABLE organizations (id text PRIMARY KEY);
         CREATE TABLE organization_tags (id int PRIMARY KEY, organization_id text, tag text);
         CREATE TABLE teams (id text PRIMARY KEY, organization_id text);
         CREATE TABLE projects (id text PRIMARY KEY, team_id text);
         CREATE TABLE tasks (id text PRIMARY KEY, project_id text);
         INSERT INTO organizations VALUES ('acme'), ('globex');
         INSERT INTO organization_tags VALUES (1, 'acme', 'premium'), (2, 'globex', 'premium');
         INSERT INTO teams VALUES ('t1', 'acme');
         INSERT INTO projects VALUES ('p1', 't1');
         INSERT INTO tasks VALUES ('task1', 'p1');";
    let w = "project_id IN (SELECT id FROM projects WHERE team_id IN (SELECT id FROM teams \
             WHERE organization_id IN (SELECT organization_id FROM organization_tags \
             WHERE tag = 'premium')))";
    let env = Env::start(&cluster, setup, Opts::default());
    let (mut s, first) = Sub::start(&env, "tasks", w, &[]);
    assert_eq!(first.len(), 2, "task1 and snapshot-end: {}", pretty(&first));
    s.live(
        &env,
        "UPDATE teams SET organization_id = 'globex' WHERE id = 't1'",
    );
    s.live(
        &env,
        "DELETE FROM organization_tags WHERE organization_id = 'acme'",
    );
    s.converge(&env, w);
    assert_eq!(s.t.rows().len(), 1, "task1 stays");
    assert!(
        s.t.synthetic_deletes.is_empty(),
        "no move-out reached the tasks"
    );
    // Now the last premium tag goes: the task moves out.
    s.live(
        &env,
        "DELETE FROM organization_tags WHERE organization_id = 'globex'",
    );
    s.converge(&env, w);
    assert!(s.t.rows().is_empty());
}

/// Scenario 26: more transactions than `ELECTRIC_SUBQUERY_BUFFER_MAX_TRANSACTIONS` reach a
/// shape while one of its move-in queries runs: the shape is dropped, its handle gets 409.
#[test]
fn s26_buffer_overflow_during_a_move_in() {
    let cluster = cluster();
    let opts = Opts {
        env: vec![("ELECTRIC_SUBQUERY_BUFFER_MAX_TRANSACTIONS", "2".into())],
        ..Opts::default()
    };
    let env = Env::start(&cluster, INNER_OUTER, opts);
    let (s, _) = Sub::start(&env, "outer_table", OUTER_OF_1, &[]);
    // The move-in query waits behind this lock while transactions pile up.
    let mut lock = support::crash::Pg::connect(&env.db.url()).expect("connect");
    lock.exec("BEGIN; LOCK TABLE outer_table IN ACCESS EXCLUSIVE MODE");
    env.sql("UPDATE inner_table SET value = 1 WHERE id = 2");
    for id in 3..7 {
        env.sql(&format!("INSERT INTO inner_table VALUES ({id}, 1)"));
    }
    let deadline = Instant::now() + CONVERGE;
    loop {
        let r = env.client().get(&s.f.url(false));
        if r.status == 409 {
            assert_ne!(r.handle(), s.f.handle, "a new handle");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no 409 after the overflow: {}",
            r.status
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    lock.exec("COMMIT");
}

/// A subset of a subquery shape: the shape's clause (its real subquery) and the subset's,
/// rows with the same `tags` and `active_conditions` as the shape's own rows.
#[test]
fn subset_rows_of_a_subquery_shape_carry_tags() {
    let cluster = cluster();
    let env = Env::start(&cluster, INNER_OUTER, Opts::default());
    env.sql("INSERT INTO outer_table VALUES (3, 1, 30)");
    let (s, _) = Sub::start(&env, "outer_table", OUTER_OF_1, &[]);
    let url = format!(
        "/v1/shape?table=outer_table&where={}&handle={}&offset={}&subset__where={}",
        enc(OUTER_OF_1),
        s.f.handle,
        s.f.offset,
        enc("value > 15")
    );
    let r = env.client().get(&url);
    r.expect(200);
    let body: Value = serde_json::from_str(&r.body_str()).expect("JSON");
    let data = body["data"].as_array().expect("data");
    assert_eq!(data.len(), 1, "{body:#}");
    let h1 = s.h("v:1");
    assert_eq!(
        data[0]["value"],
        json!({"id": "3", "inner_id": "1", "value": "30"})
    );
    assert_eq!(data[0]["headers"]["tags"], json!([h1]));
    assert_eq!(data[0]["headers"]["active_conditions"], json!([true]));
}

/// On two cores: shapes of different definitions live on different cores, each core keeps
/// its own views; moves reach every shape, whichever core owns it.
#[test]
fn moves_on_two_cores() {
    let cluster = cluster();
    let opts = Opts {
        cores: 2,
        ..Opts::default()
    };
    let env = Env::start(&cluster, INNER_OUTER, opts);
    let clauses: Vec<String> = (1..=6)
        .map(|v| format!("inner_id in (SELECT id FROM inner_table WHERE value = {v})"))
        .collect();
    let mut subs: Vec<Sub> = clauses
        .iter()
        .map(|w| Sub::start(&env, "outer_table", w, &[]).0)
        .collect();
    env.sql(
        "UPDATE inner_table SET value = 3 WHERE id = 1;
         UPDATE inner_table SET value = 5 WHERE id = 2;
         INSERT INTO outer_table VALUES (3, 1, 30), (4, 2, 40);
         UPDATE inner_table SET value = 4 WHERE id = 1;",
    );
    for (s, w) in subs.iter_mut().zip(&clauses) {
        s.converge(&env, w);
    }
}

/// A subquery shape larger than a chunk: its snapshot and live log span several chunks, read
/// back by a client catching up from -1 (subquery shapes live in memory: no chunk files).
#[test]
fn many_chunks_catch_up() {
    let cluster = cluster();
    let opts = Opts {
        chunk_bytes: Some(2_000),
        ..Opts::default()
    };
    let env = Env::start(&cluster, INNER_OUTER, opts);
    env.sql("INSERT INTO outer_table SELECT g, 1 + g % 2, g FROM generate_series(10, 400) g");
    let (mut s, _) = Sub::start(&env, "outer_table", OUTER_OF_1, &[]);
    s.converge(&env, OUTER_OF_1);
    env.sql("UPDATE inner_table SET value = 1 WHERE id = 2");
    env.sql("INSERT INTO outer_table SELECT g, 1 + g % 2, g FROM generate_series(401, 600) g");
    s.converge(&env, OUTER_OF_1);
    // A second client from scratch reads every chunk, snapshot and live.
    let (mut late, _) = Sub::start(&env, "outer_table", OUTER_OF_1, &[]);
    assert_eq!(late.f.handle, s.f.handle);
    late.converge(&env, OUTER_OF_1);
    env.sql("UPDATE inner_table SET value = 3 WHERE id = 1");
    s.converge(&env, OUTER_OF_1);
    late.converge(&env, OUTER_OF_1);
}

/// `NULL NOT IN (empty)` is TRUE and `NULL NOT IN (non-empty)` is NULL: a row with a NULL link
/// leaves a NOT IN shape when the subquery's result stops being empty (a move-out of the NULL
/// slot) and comes back when it empties again (a move-in query).
#[test]
fn null_link_and_an_emptying_not_in() {
    let cluster = cluster();
    let setup = "CREATE TABLE parents (id int PRIMARY KEY, active bool NOT NULL);
         CREATE TABLE items (id int PRIMARY KEY, parent_id int);
         INSERT INTO parents VALUES (1, false);
         INSERT INTO items VALUES (1, NULL), (2, 1), (3, 5);";
    let w = "parent_id NOT IN (SELECT id FROM parents WHERE active)";
    let env = Env::start(&cluster, setup, Opts::default());
    let (mut s, _) = Sub::start(&env, "items", w, &[]);
    s.converge(&env, w);
    assert_eq!(s.t.rows().len(), 3);
    s.live(&env, "UPDATE parents SET active = true WHERE id = 1");
    s.converge(&env, w);
    assert_eq!(s.t.rows().len(), 1, "only item 3: {:?}", s.t.rows());
    s.live(&env, "UPDATE parents SET active = false WHERE id = 1");
    s.converge(&env, w);
    assert_eq!(s.t.rows().len(), 3);
}

/// Scenario 25, better than upstream: after a clean stop and after `kill -9` a subquery
/// shape comes back with its handle, and what changed while the server was down (inner and
/// outer tables) reaches a client resuming at its offset as moves.
#[test]
fn s25_subquery_shapes_survive_clean_restarts_and_crashes() {
    use support::crash::{CrashOpts, Restartable};
    let cluster = cluster();
    let db = cluster.create_database().expect("database");
    db.psql(INNER_OUTER).expect("setup");
    db.psql("INSERT INTO outer_table VALUES (3, 3, 30)")
        .expect("row");
    let opts = CrashOpts {
        env: vec![("ELECTRIC_SHAPE_CHUNK_BYTES_THRESHOLD", "300".into())],
        ..Default::default()
    };
    let mut server = Restartable::start(&db.url(), opts);
    let c = server.client();
    let def = format!("table=outer_table&where={}", enc(OUTER_OF_1));
    let (mut f, first) = Follower::start(c, &def);
    let mut t = TagTracker::new();
    t.feed_all(&first.items());
    // Moves and changes before the stop: a move-in, a move-out, live rows.
    db.psql("UPDATE inner_table SET value = 1 WHERE id = 2")
        .expect("move-in");
    db.psql("INSERT INTO outer_table VALUES (4, 1, 40)")
        .expect("row");
    let settle = |f: &mut Follower, t: &mut TagTracker| {
        let expected = pg_rows_db(&db, "outer_table", OUTER_OF_1);
        let deadline = Instant::now() + CONVERGE;
        while t.rows() != expected {
            assert!(
                Instant::now() < deadline,
                "rows {:#?} != {expected:#?}",
                t.rows()
            );
            let r = f.next(true);
            r.expect(200);
            t.feed_all(&r.items());
        }
    };
    settle(&mut f, &mut t);
    server.stop();
    // While the server is down: one value leaves, another enters, an outer row changes.
    db.psql(
        "UPDATE inner_table SET value = 9 WHERE id = 1;
         UPDATE inner_table SET value = 1 WHERE id = 3;
         UPDATE outer_table SET value = 21 WHERE id = 2;",
    )
    .expect("changes while down");
    server.restart();
    let c = server.client();
    f.client = c;
    let r = c.get(&f.url(false));
    assert_eq!(
        r.status,
        200,
        "the handle is still served: {}",
        r.body_str()
    );
    t.feed_all(&r.items());
    f.offset = r.offset();
    settle(&mut f, &mut t);
    // A crash right after moves the client may or may not have seen, then more while down.
    db.psql("UPDATE inner_table SET value = 1 WHERE id = 1")
        .expect("move-in");
    db.psql("UPDATE inner_table SET value = 7 WHERE id = 2")
        .expect("move-out");
    server.kill9();
    db.psql(
        "UPDATE inner_table SET value = 1 WHERE id = 2;
         INSERT INTO outer_table VALUES (5, 3, 50);
         UPDATE inner_table SET value = 5 WHERE id = 3;",
    )
    .expect("changes while down");
    server.restart();
    let c = server.client();
    f.client = c;
    let r = c.get(&f.url(false));
    assert_eq!(r.status, 200, "kept after a crash: {}", r.body_str());
    t.feed_all(&r.items());
    f.offset = r.offset();
    settle(&mut f, &mut t);
    // And a new client of the shape gets the same rows from scratch.
    let (mut f2, fresh) = Follower::start(c, &def);
    assert_eq!(fresh.handle(), f.handle, "the same shape");
    let mut t2 = TagTracker::new();
    t2.feed_all(&fresh.items());
    let mut r = fresh;
    while !r.has("electric-up-to-date") {
        r = f2.next(false);
        r.expect(200);
        t2.feed_all(&r.items());
    }
    assert_eq!(t2.rows(), t.rows());
}

/// TRUNCATE of the innermost table of a nested subquery rotates the outer shape (409): the
/// views built on it cannot follow it any more.
#[test]
fn truncating_an_inner_table_rotates_nested_shapes() {
    let cluster = cluster();
    let setup = "CREATE TABLE grandparent (id int PRIMARY KEY, value int NOT NULL);
         CREATE TABLE parent (id int PRIMARY KEY, grandparent_id int);
         CREATE TABLE child (id int PRIMARY KEY, parent_id int);
         INSERT INTO grandparent VALUES (1, 10);
         INSERT INTO parent VALUES (1, 1);
         INSERT INTO child VALUES (1, 1);";
    let w = "parent_id in (SELECT id FROM parent WHERE grandparent_id in \
             (SELECT id FROM grandparent WHERE value = 10))";
    let env = Env::start(&cluster, setup, Opts::default());
    let (s, first) = Sub::start(&env, "child", w, &[]);
    assert_eq!(first.len(), 2, "{}", pretty(&first));
    env.sql("TRUNCATE grandparent");
    let deadline = Instant::now() + CONVERGE;
    loop {
        let r = env.client().get(&s.f.url(false));
        if r.status == 409 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no 409 after the truncate: {}",
            r.status
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Link values SQL finds equal but spells differently (numeric scales) are one value: the
/// snapshot (SQL), live changes and move events agree.
#[test]
fn numeric_links_of_different_scales_are_one_value() {
    let cluster = cluster();
    let setup =
        "CREATE TABLE prices (id int PRIMARY KEY, amount numeric(10, 2), live bool NOT NULL);
         CREATE TABLE orders (id int PRIMARY KEY, amount numeric, note text);
         INSERT INTO prices VALUES (1, 1.5, true), (2, 2, false);
         INSERT INTO orders VALUES (1, 1.5, 'a'), (2, 1.500, 'b'), (3, 2.0, 'c');";
    let w = "amount IN (SELECT amount FROM prices WHERE live)";
    let env = Env::start(&cluster, setup, Opts::default());
    let (mut s, _) = Sub::start(&env, "orders", w, &[]);
    s.converge(&env, w);
    assert_eq!(s.t.rows().len(), 2);
    s.live(&env, "UPDATE orders SET note = 'b2' WHERE id = 2");
    s.converge(&env, w);
    s.live(&env, "UPDATE prices SET live = true WHERE id = 2");
    s.converge(&env, w);
    assert_eq!(s.t.rows().len(), 3);
    s.live(&env, "UPDATE prices SET live = false WHERE id = 1");
    s.converge(&env, w);
    assert_eq!(s.t.rows().len(), 1, "{:?}", s.t.rows());
}

/// A nested NOT IN with a NULL link: `NULL NOT IN ()` is TRUE and turns NULL once the inner
/// result is not empty, though no value of the middle row moved.
#[test]
fn nested_not_in_follows_the_inner_result_becoming_empty_or_not() {
    let cluster = cluster();
    let setup = "CREATE TABLE gp (id int PRIMARY KEY, active bool NOT NULL);
         CREATE TABLE p (id int PRIMARY KEY, g int);
         CREATE TABLE c (id int PRIMARY KEY, p_id int);
         INSERT INTO gp VALUES (1, false);
         INSERT INTO p VALUES (1, NULL), (2, 1);
         INSERT INTO c VALUES (1, 1), (2, 2);";
    let w = "p_id IN (SELECT id FROM p WHERE g NOT IN (SELECT id FROM gp WHERE active))";
    let env = Env::start(&cluster, setup, Opts::default());
    let (mut s, _) = Sub::start(&env, "c", w, &[]);
    s.converge(&env, w);
    assert_eq!(s.t.rows().len(), 2);
    s.live(&env, "UPDATE gp SET active = true WHERE id = 1");
    s.converge(&env, w);
    assert!(s.t.rows().is_empty(), "{:?}", s.t.rows());
    s.live(&env, "UPDATE gp SET active = false WHERE id = 1");
    s.converge(&env, w);
    assert_eq!(s.t.rows().len(), 2);
}
