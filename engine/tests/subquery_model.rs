//! A randomized model test of subquery shapes (`electric-subqueries.md` §5–§7): concurrent
//! writers change an outer table and the two tables its subqueries read, while tag-tracking
//! clients (`support::tags`, the reference's §7.1) follow a dozen shapes by long-polling.
//! After each round the writers stop, a marker transaction is written and seen, and every
//! client must settle on exactly what Postgres selects for its shape.
//!
//! - Schema: `items` (outer), `parents` and `members` (inner), small value domains with NULLs
//!   so that moves, NULL memberships and empty views happen often.
//! - Writers: 2–3 threads, each running random batches through its own psql sessions: single
//!   statements, autocommit sequences, multi-statement transactions over inner and outer
//!   tables, transactions that flip a dependency and back, rolled-back transactions, PK
//!   changes. Statements that fail (a concurrent conflict, a deadlock) are logged and ignored.
//! - Clients: one per clause from the start; each later round starts, while the writers run,
//!   a client on a new shape (a clause with a no-op conjunct) and a second client on an
//!   existing shape. Any non-200 (a 409 included) fails the test.
//! - Restarts (`subquery_shapes_follow_postgres_across_restarts`): the same on a server
//!   (`support::crash::Restartable`) restarted in each later round while its writers run
//!   (they talk to Postgres only), alternately by SIGTERM and by `kill -9`; clients retry
//!   (bounded) while it is down or starting. After either a shape keeps its handle and its
//!   clients resume at their offsets (`docs/subqueries.md`, "Restarts"); only a shape that
//!   never completed a sync before a crash rotates, which the next start logs ("is not
//!   restored"), and its clients may get one 409 and resync from -1, the `must-refetch`
//!   clearing their trackers. Any other 409 fails.
//!
//! Seeds: `DEFAULT_SEEDS` (odd ones on a 2-core server), `RESTART_SEEDS` for the restart test
//! (the first restart clean on odd seeds, a crash on even ones). `AMPERE_MODEL_SEEDS=N` runs N
//! seeds (the defaults, then 100, 101, …), `AMPERE_MODEL_SEED=S` only seed S,
//! `AMPERE_MODEL_ROUNDS=R` sets the rounds per seed. For triage:
//! `AMPERE_MODEL_CLAUSES=in,not_in,…` follows only those clauses (by name),
//! `AMPERE_MODEL_NO_NULL_LINKS=1` keeps NULLs out of `parent_id` and `team_id`,
//! `AMPERE_MODEL_ALLOW_409=1` restarts a client from -1 on a 409 instead of failing,
//! `AMPERE_MODEL_CLEAN_STOP_IDLE=1` makes the clean stops right after a round's comparison,
//! before the writers start.
//! A failure names the seed, the clause, both sides, the messages the client got about the
//! first differing row, the committed changes of that row (an audit trigger records every
//! committed change with its xid), and writes the writers' SQL, every committed change and the
//! client's whole message log to a file. Writes are random but their interleaving is not
//! reproducible: rerunning a seed usually, not always, fails the same way.

mod support;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::crash::{CrashOpts, Restartable};
use support::tags::TagTracker;
use support::{cluster, enc, Client, Opts, Server};
use testkit::TestDb;

const DEFAULT_SEEDS: [u64; 4] = [1, 2, 3, 4];
/// Seeds of the restart test (5 on 2 cores, 6 on 1).
const RESTART_SEEDS: [u64; 2] = [5, 6];
const DEFAULT_ROUNDS: usize = 3;
/// Batches each writer runs per round.
const BATCHES: usize = 15;
/// Batches each writer runs once the server is back, in a round with a restart.
const BATCHES_AFTER_RESTART: usize = 3;
/// Bound on how long a client keeps retrying while the server does not answer (restart test).
const DOWN_MAX: Duration = Duration::from_secs(30);
/// Long-poll timeout of the server: short, since settling waits for an idle long-poll.
const LONG_POLL_MS: u64 = 500;
/// Bound on a round's settling (not a timing claim: a correct server settles in about a
/// second; only a failing run waits this long).
const SETTLE: Duration = Duration::from_secs(15);

/// The shapes: a WHERE clause and optionally `columns`.
struct Clause {
    name: &'static str,
    w: &'static str,
    columns: Option<&'static str>,
}

const CLAUSES: &[Clause] = &[
    Clause {
        name: "in",
        w: "parent_id IN (SELECT id FROM parents WHERE active)",
        columns: None,
    },
    Clause {
        name: "not_in",
        w: "parent_id NOT IN (SELECT id FROM parents WHERE active)",
        columns: None,
    },
    Clause {
        name: "row_in",
        w: "(parent_id, team_id) IN (SELECT user_id, team_id FROM members)",
        columns: None,
    },
    Clause {
        name: "row_not_in",
        w: "(parent_id, team_id) NOT IN (SELECT user_id, team_id FROM members)",
        columns: None,
    },
    Clause {
        name: "not_in_or_in",
        w: "parent_id NOT IN (SELECT id FROM parents WHERE active) \
            OR team_id IN (SELECT team_id FROM members WHERE user_id = 1)",
        columns: None,
    },
    Clause {
        name: "in_and_status",
        w: "parent_id IN (SELECT id FROM parents WHERE value > 5) AND status = 'open'",
        columns: None,
    },
    Clause {
        name: "in_or_status",
        w: "parent_id IN (SELECT id FROM parents WHERE active) OR status = 'open'",
        columns: None,
    },
    Clause {
        name: "not_or",
        w: "NOT (parent_id IN (SELECT id FROM parents WHERE active) OR flag)",
        columns: None,
    },
    Clause {
        name: "two_deps_and",
        w: "team_id IN (SELECT team_id FROM members WHERE user_id = 1) \
            AND parent_id IN (SELECT id FROM parents WHERE active)",
        columns: None,
    },
    Clause {
        name: "same_sq_or",
        w: "parent_id IN (SELECT id FROM parents WHERE active) \
            OR team_id IN (SELECT id FROM parents WHERE active)",
        columns: None,
    },
    Clause {
        name: "same_sq_and",
        w: "parent_id IN (SELECT id FROM parents WHERE active) \
            AND team_id IN (SELECT id FROM parents WHERE active)",
        columns: None,
    },
    Clause {
        name: "not_in_members_and_status",
        w: "status = 'open' AND NOT team_id IN (SELECT team_id FROM members WHERE user_id = 3)",
        columns: None,
    },
    Clause {
        name: "columns_mixed",
        w: "parent_id IN (SELECT id FROM parents WHERE value > 5) \
            OR (flag AND team_id IN (SELECT team_id FROM members WHERE user_id = 2))",
        columns: Some("id,status,team_id"),
    },
];

const SCHEMA: &str = "
    CREATE TABLE items (id int PRIMARY KEY, parent_id int, team_id int, status text, flag bool);
    CREATE TABLE parents (id int PRIMARY KEY, active bool, value int);
    CREATE TABLE members (user_id int, team_id int, PRIMARY KEY (user_id, team_id));
    CREATE TABLE marker (id int PRIMARY KEY, n int NOT NULL);
    INSERT INTO marker VALUES (1, 0);
    -- What committed, in order, for the failure report (not replicated: no shape reads it).
    CREATE TABLE audit (seq bigserial PRIMARY KEY, xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
                        tbl text NOT NULL, op text NOT NULL, old jsonb, new jsonb);
    CREATE FUNCTION audit() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO audit (tbl, op, old, new) VALUES (TG_TABLE_NAME, TG_OP,
            CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END,
            CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END);
        RETURN NULL;
    END $$;
    CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON items
        FOR EACH ROW EXECUTE FUNCTION audit();
    CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON parents
        FOR EACH ROW EXECUTE FUNCTION audit();
    CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON members
        FOR EACH ROW EXECUTE FUNCTION audit();";

/// splitmix64: small, seedable, good enough to pick operations.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        let mut r = Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03);
        r.next();
        r
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Inclusive.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

/// Value domains of one seed.
#[derive(Clone, Copy, Debug)]
struct Domain {
    items: i64,
    /// Parent ids are 1..=parents; items point at 1..=parents + 1.
    parents: i64,
    users: i64,
    teams: i64,
    null_p: f64,
    /// NULLs in `parent_id` and `team_id` (`AMPERE_MODEL_NO_NULL_LINKS=1` turns them off).
    null_links: bool,
    active_p: f64,
}

impl Domain {
    fn new(rng: &mut Rng) -> Self {
        Self {
            items: rng.range(10, 16),
            parents: rng.range(3, 7),
            users: rng.range(3, 6),
            teams: rng.range(2, 4),
            null_p: [0.1, 0.2, 0.3][rng.below(3) as usize],
            null_links: !env_flag("AMPERE_MODEL_NO_NULL_LINKS"),
            active_p: [0.2, 0.5, 0.7][rng.below(3) as usize],
        }
    }

    /// The chance of a NULL in `parent_id` / `team_id`.
    fn link_null_p(&self) -> f64 {
        if self.null_links {
            self.null_p
        } else {
            0.0
        }
    }

    fn item_id(&self, rng: &mut Rng) -> i64 {
        rng.range(1, self.items)
    }

    fn parent_id(&self, rng: &mut Rng) -> i64 {
        rng.range(1, self.parents)
    }

    fn link(&self, rng: &mut Rng) -> String {
        if rng.chance(self.link_null_p()) {
            "NULL".into()
        } else {
            rng.range(1, self.parents + 1).to_string()
        }
    }

    fn team(&self, rng: &mut Rng) -> String {
        if rng.chance(self.link_null_p()) {
            "NULL".into()
        } else {
            rng.range(1, self.teams).to_string()
        }
    }

    fn status(&self, rng: &mut Rng) -> String {
        if rng.chance(self.null_p) {
            "NULL".into()
        } else {
            format!("'{}'", rng.pick(&["open", "closed", "draft", "open"]))
        }
    }

    fn flag(&self, rng: &mut Rng) -> String {
        if rng.chance(self.null_p / 2.0) {
            "NULL".into()
        } else {
            rng.pick(&["true", "false"]).into()
        }
    }

    fn active(&self, rng: &mut Rng) -> String {
        if rng.chance(0.05) {
            "NULL".into()
        } else if rng.chance(self.active_p) {
            "true".into()
        } else {
            "false".into()
        }
    }

    fn value(&self, rng: &mut Rng) -> String {
        if rng.chance(0.05) {
            "NULL".into()
        } else {
            rng.range(0, 10).to_string()
        }
    }

    fn item_row(&self, rng: &mut Rng, id: i64) -> String {
        format!(
            "({id}, {}, {}, {}, {})",
            self.link(rng),
            self.team(rng),
            self.status(rng),
            self.flag(rng)
        )
    }

    fn initial_data(&self, rng: &mut Rng) -> String {
        let mut sql = String::new();
        for id in 1..=self.items {
            if rng.chance(0.7) {
                let row = self.item_row(rng, id);
                writeln!(sql, "INSERT INTO items VALUES {row};").unwrap();
            }
        }
        for id in 1..=self.parents {
            if rng.chance(0.8) {
                let (a, v) = (self.active(rng), self.value(rng));
                writeln!(sql, "INSERT INTO parents VALUES ({id}, {a}, {v});").unwrap();
            }
        }
        for u in 1..=self.users {
            for t in 1..=self.teams {
                if rng.chance(0.35) {
                    writeln!(sql, "INSERT INTO members VALUES ({u}, {t});").unwrap();
                }
            }
        }
        sql
    }

    /// One statement on `items`.
    fn item_stmt(&self, rng: &mut Rng) -> String {
        let id = self.item_id(rng);
        match rng.below(12) {
            0..=2 => format!(
                "INSERT INTO items VALUES {} ON CONFLICT (id) DO NOTHING",
                self.item_row(rng, id)
            ),
            3 => format!(
                "INSERT INTO items VALUES {} ON CONFLICT (id) DO UPDATE SET \
                 parent_id = EXCLUDED.parent_id, team_id = EXCLUDED.team_id, \
                 status = EXCLUDED.status, flag = EXCLUDED.flag",
                self.item_row(rng, id)
            ),
            4..=6 => {
                let n = rng.range(1, 2);
                let sets: Vec<String> = (0..n).map(|_| self.item_set(rng)).collect();
                let sets: BTreeMap<&str, &String> = sets
                    .iter()
                    .map(|s| (s.split(' ').next().unwrap_or(""), s))
                    .collect();
                let sets: Vec<&str> = sets.values().map(|s| s.as_str()).collect();
                format!("UPDATE items SET {} WHERE id = {id}", sets.join(", "))
            }
            7 => {
                let to = self.item_id(rng);
                format!(
                    "UPDATE items SET id = {to}{} WHERE id = {id} \
                     AND NOT EXISTS (SELECT 1 FROM items WHERE id = {to})",
                    if rng.chance(0.5) {
                        format!(", {}", self.item_set(rng))
                    } else {
                        String::new()
                    }
                )
            }
            8 => format!("DELETE FROM items WHERE id = {id}"),
            9 => match rng.below(4) {
                0 => format!(
                    "UPDATE items SET status = {} WHERE parent_id = {}",
                    self.status(rng),
                    self.parent_id(rng)
                ),
                1 => format!(
                    "UPDATE items SET flag = NOT flag WHERE team_id = {}",
                    self.team(rng)
                ),
                2 => format!(
                    "UPDATE items SET parent_id = {} WHERE parent_id = {}",
                    self.link(rng),
                    self.parent_id(rng)
                ),
                _ => format!("DELETE FROM items WHERE parent_id = {}", self.link(rng)),
            },
            10 => format!("UPDATE items SET status = status WHERE id = {id}"),
            _ => format!("UPDATE items SET parent_id = team_id WHERE id = {id}"),
        }
    }

    fn item_set(&self, rng: &mut Rng) -> String {
        match rng.below(5) {
            0 | 1 => format!("parent_id = {}", self.link(rng)),
            2 => format!("team_id = {}", self.team(rng)),
            3 => format!("status = {}", self.status(rng)),
            _ => format!("flag = {}", self.flag(rng)),
        }
    }

    /// One statement on `parents`.
    fn parent_stmt(&self, rng: &mut Rng) -> String {
        let id = self.parent_id(rng);
        match rng.below(9) {
            0..=2 => format!("UPDATE parents SET active = NOT active WHERE id = {id}"),
            3 => format!(
                "UPDATE parents SET active = {} WHERE id = {id}",
                self.active(rng)
            ),
            4 => format!(
                "UPDATE parents SET value = {} WHERE id = {id}",
                self.value(rng)
            ),
            5 => format!(
                "INSERT INTO parents VALUES ({id}, {}, {}) ON CONFLICT (id) DO NOTHING",
                self.active(rng),
                self.value(rng)
            ),
            6 => format!(
                "INSERT INTO parents VALUES ({id}, {}, {}) ON CONFLICT (id) DO UPDATE SET \
                 active = EXCLUDED.active, value = EXCLUDED.value",
                self.active(rng),
                self.value(rng)
            ),
            7 => format!("DELETE FROM parents WHERE id = {id}"),
            _ => {
                let to = self.parent_id(rng);
                format!(
                    "UPDATE parents SET id = {to} WHERE id = {id} \
                     AND NOT EXISTS (SELECT 1 FROM parents WHERE id = {to})"
                )
            }
        }
    }

    /// One statement on `members`.
    fn member_stmt(&self, rng: &mut Rng) -> String {
        let (u, t) = (rng.range(1, self.users), rng.range(1, self.teams));
        match rng.below(8) {
            0..=2 => format!("INSERT INTO members VALUES ({u}, {t}) ON CONFLICT DO NOTHING"),
            3 | 4 => format!("DELETE FROM members WHERE user_id = {u} AND team_id = {t}"),
            5 => format!(
                "DELETE FROM members WHERE team_id = {t} AND user_id > {}",
                u
            ),
            6 => {
                let t2 = rng.range(1, self.teams);
                format!(
                    "UPDATE members SET team_id = {t2} WHERE user_id = {u} AND team_id = {t} \
                     AND NOT EXISTS (SELECT 1 FROM members WHERE user_id = {u} AND team_id = {t2})"
                )
            }
            _ => {
                let u2 = rng.range(1, self.users);
                format!(
                    "UPDATE members SET user_id = {u2} WHERE user_id = {u} AND team_id = {t} \
                     AND NOT EXISTS (SELECT 1 FROM members WHERE user_id = {u2} AND team_id = {t})"
                )
            }
        }
    }

    fn any_stmt(&self, rng: &mut Rng) -> String {
        match rng.below(10) {
            0..=3 => self.item_stmt(rng),
            4..=6 => self.parent_stmt(rng),
            _ => self.member_stmt(rng),
        }
    }

    /// One psql run: statements, autocommit or in transactions.
    fn batch(&self, rng: &mut Rng) -> String {
        let stmts = |rng: &mut Rng, lo: i64, hi: i64| -> Vec<String> {
            let n = rng.range(lo, hi);
            (0..n).map(|_| self.any_stmt(rng)).collect()
        };
        match rng.below(14) {
            0..=2 => format!("{};", self.any_stmt(rng)),
            3 => format!("{};", stmts(rng, 2, 4).join(";\n")),
            12 | 13 => {
                // A burst of dependency transactions back to back, some on the same row:
                // moves queue up behind a move-in.
                let n = rng.range(3, 6);
                let s: Vec<String> = (0..n)
                    .map(|_| match rng.below(3) {
                        0 => self.member_stmt(rng),
                        1 => self.item_stmt(rng),
                        _ => format!(
                            "UPDATE parents SET active = NOT active WHERE id = {}",
                            rng.range(1, 2.min(self.parents))
                        ),
                    })
                    .collect();
                format!("{};", s.join(";\n"))
            }
            4..=7 => {
                // Inner and outer tables in one transaction.
                let mut s = stmts(rng, 1, 4);
                s.push(self.item_stmt(rng));
                s.push(match rng.below(2) {
                    0 => self.parent_stmt(rng),
                    _ => self.member_stmt(rng),
                });
                let n = s.len();
                for i in 0..n {
                    let j = rng.below(n as u64) as usize;
                    s.swap(i, j);
                }
                if rng.chance(0.3) {
                    // Held open a little: transactions overlap, commit out of start order,
                    // and snapshots have them in progress.
                    let at = rng.below(n as u64 + 1) as usize;
                    s.insert(at, format!("SELECT pg_sleep(0.0{})", rng.range(1, 5)));
                }
                format!("BEGIN;\n{};\nCOMMIT;", s.join(";\n"))
            }
            8 | 9 => format!("BEGIN;\n{};\nROLLBACK;", stmts(rng, 1, 4).join(";\n")),
            10 => {
                // A dependency flips and flips back within the transaction.
                let id = self.parent_id(rng);
                let flip = format!("UPDATE parents SET active = NOT active WHERE id = {id}");
                format!(
                    "BEGIN;\n{flip};\n{};\n{flip};\nCOMMIT;",
                    self.item_stmt(rng)
                )
            }
            _ => {
                let (u, t) = (rng.range(1, self.users), rng.range(1, self.teams));
                format!(
                    "BEGIN;\nINSERT INTO members VALUES ({u}, {t}) ON CONFLICT DO NOTHING;\n\
                     {};\nDELETE FROM members WHERE user_id = {u} AND team_id = {t};\nCOMMIT;",
                    self.item_stmt(rng)
                )
            }
        }
    }
}

/// What one client has received and made of it.
#[derive(Default)]
struct ClientState {
    tracker: TagTracker,
    /// Every message but `up-to-date`, with the number of the response that carried it, and
    /// notes of the client's own (`{"client": …}`: a 409 it went on from, an outage).
    history: Vec<(u64, Value)>,
    errors: Vec<String>,
    /// 409s other than the one a restart may give each handle.
    refetches: u32,
    /// 409s on a handle obtained before a restart that may rotate it (at most one per handle
    /// and restart).
    restart_refetches: u32,
    /// Handles that got a 409 after a restart (checked against the server's log).
    rotations: Vec<String>,
    /// Times the server did not answer for a while (restart test).
    outages: u32,
    handle: Option<String>,
    /// The latest response: when its request started and whether it carried data.
    last: Option<(Instant, bool)>,
}

/// What the test shares with its client threads.
#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    /// The server is restarted: connection errors and 502–504 are retried (up to `DOWN_MAX`)
    /// instead of failing.
    restarts: bool,
    /// Restarts so far after which a handle may rotate (if the start says it is not
    /// restored): every crash, and clean stops made while the writers run
    /// (`Restart::Clean`). Counted once the old process is gone and
    /// before the new one starts, so a request that starts after the count went up reaches
    /// the new process (or none), one that started before it the old one. A handle obtained
    /// before such a restart may get one 409 after it; any other 409 fails.
    may_rotate: AtomicU32,
    /// `kill -9`s so far (counted as `may_rotate`).
    crashes: AtomicU32,
}

struct Follow {
    label: String,
    w: String,
    columns: Option<&'static str>,
    state: Arc<Mutex<ClientState>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Follow {
    /// Starts following a shape on a thread of its own.
    fn start(
        client: Client,
        label: String,
        w: String,
        columns: Option<&'static str>,
        shared: Arc<Shared>,
    ) -> Self {
        let mut def = format!("table=items&where={}", enc(&w));
        if let Some(c) = columns {
            def.push_str(&format!("&columns={}", enc(c)));
        }
        let state = Arc::new(Mutex::new(ClientState::default()));
        let st = state.clone();
        let thread = std::thread::spawn(move || follow(client, &def, &st, &shared));
        Self {
            label,
            w,
            columns,
            state,
            thread: Some(thread),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ClientState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The client loop: `offset=-1`, catch-up requests until up to date, then long-polls, every
/// message fed to the tracker. Stops on `stop` or on anything unexpected (recorded): a non-200
/// other than the one 409 a restart may give each handle (`Shared::may_rotate`; the client
/// then resyncs from -1, its tracker cleared by the `must-refetch`), a handle from before a
/// crash served after it, or (restart test) a server that does not answer for `DOWN_MAX`.
fn follow(client: Client, def: &str, state: &Mutex<ClientState>, shared: &Shared) {
    let allow_409 = env_flag("AMPERE_MODEL_ALLOW_409");
    let mut handle: Option<String> = None;
    // `shared.may_rotate` and `shared.crashes` when the request that gave `handle` started.
    let mut handle_at = (0, 0);
    let mut offset = "-1".to_string();
    let mut live = false;
    let mut n = 0u64;
    // Since when the server has not answered (restart test).
    let mut down_since: Option<Instant> = None;
    let fail = |msg: String| {
        state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .errors
            .push(msg)
    };
    while !shared.stop.load(Ordering::Relaxed) {
        let mut url = format!("/v1/shape?{def}&offset={offset}");
        if let Some(h) = &handle {
            url.push_str(&format!("&handle={h}"));
        }
        if live {
            url.push_str("&live=true");
        }
        let at = (
            shared.may_rotate.load(Ordering::SeqCst),
            shared.crashes.load(Ordering::SeqCst),
        );
        let started = Instant::now();
        let r = match client.try_get(&url) {
            Ok(r) if shared.restarts && (502..=504).contains(&r.status) => {
                Err(format!("status {}: {}", r.status, r.body_str()))
            }
            r => r,
        };
        let r = match r {
            Ok(r) => r,
            Err(e) if shared.restarts => {
                // Down or starting: the same request again, a little later.
                let since = *down_since.get_or_insert(started);
                if since.elapsed() > DOWN_MAX {
                    return fail(format!("GET {url}: {e} (no answer for {DOWN_MAX:?})"));
                }
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            Err(e) => return fail(format!("GET {url}: {e}")),
        };
        n += 1;
        let items = if r.body.is_empty() {
            Vec::new()
        } else {
            match serde_json::from_slice::<Value>(&r.body) {
                Ok(Value::Array(v)) => v,
                _ => return fail(format!("GET {url}: body not an array: {}", r.body_str())),
            }
        };
        let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(since) = down_since.take() {
            st.outages += 1;
            let note = format!("no answer for {:.1?}", started.duration_since(since));
            st.history.push((n, serde_json::json!({ "client": note })));
        }
        match r.status {
            200 => {}
            409 if handle.is_some() && at.0 > handle_at.0 => {
                // The one 409 of a handle from before a restart: resync from -1.
                let new = r.header("electric-handle").map(str::to_string);
                let what = format!("409 on GET {url} after restart {}: {}", at.0, r.body_str());
                if new.is_none() || new == handle {
                    st.errors.push(format!("{what}: no new handle"));
                    return;
                }
                if !items
                    .iter()
                    .any(|m| m["headers"]["control"] == "must-refetch")
                {
                    st.errors.push(format!("{what}: no must-refetch"));
                    return;
                }
                st.restart_refetches += 1;
                // The start must say why it did not restore this shape.
                st.rotations.extend(handle.clone());
                st.history.push((n, serde_json::json!({ "client": what })));
                st.tracker.feed_all(&items);
                handle = new;
                handle_at = at;
                offset = "-1".into();
                live = false;
                continue;
            }
            409 => {
                // A client restarts from -1 with the new handle; this test expects none
                // (`AMPERE_MODEL_ALLOW_409=1` counts them and goes on).
                st.refetches += 1;
                let what = format!("409 on GET {url}: {}", r.body_str());
                if allow_409 {
                    st.history.push((n, serde_json::json!({ "client": what })));
                } else {
                    st.errors.push(what);
                }
                st.tracker.feed_all(&items);
                handle = r.header("electric-handle").map(str::to_string);
                handle_at = at;
                offset = "-1".into();
                live = false;
                continue;
            }
            s => {
                st.errors
                    .push(format!("status {s} on GET {url}: {}", r.body_str()));
                return;
            }
        }
        let (Some(h), Some(o)) = (r.header("electric-handle"), r.header("electric-offset")) else {
            st.errors
                .push(format!("GET {url}: no handle or offset: {:?}", r.headers));
            return;
        };
        if handle.as_deref() != Some(h) {
            handle_at = at;
        }
        handle = Some(h.to_string());
        offset = o.to_string();
        st.handle = handle.clone();
        for m in &items {
            if m["headers"]["control"] != "up-to-date" {
                st.history.push((n, m.clone()));
            }
            let fed = std::panic::catch_unwind(AssertUnwindSafe(|| st.tracker.feed(m)));
            if fed.is_err() {
                st.errors.push(format!("the tracker refused {m}"));
                return;
            }
        }
        if r.has("electric-up-to-date") {
            live = true;
        }
        let has_data = r.header("electric-has-data") != Some("false");
        st.last = Some((started, has_data));
    }
}

/// Runs SQL batches on a writer's own sessions: `BATCHES` of them, and in a round with a
/// restart as many more as it takes to run `BATCHES_AFTER_RESTART` once `restarted` is set.
fn writer(
    db: &TestDb<'_>,
    d: Domain,
    (seed, round, w): (u64, usize, usize),
    log: &Mutex<Vec<String>>,
    restarted: &AtomicBool,
) {
    let mut rng = Rng::new(seed ^ ((round as u64 + 1) << 20) ^ ((w as u64 + 1) << 40));
    let mut after = 0;
    for b in 0.. {
        if restarted.load(Ordering::SeqCst) {
            if b >= BATCHES && after >= BATCHES_AFTER_RESTART {
                break;
            }
            after += 1;
        }
        let sql = d.batch(&mut rng);
        // Short waits so that concurrent writers do not stall on deadlocks.
        let full = format!("SET deadlock_timeout = '50ms'; SET lock_timeout = '5s';\n{sql}");
        let res = db.psql(&full);
        let outcome = match &res {
            Ok(_) => "ok".to_string(),
            Err(e) => format!("error: {}", e.to_string().lines().last().unwrap_or("")),
        };
        log.lock().unwrap_or_else(|e| e.into_inner()).push(format!(
            "-- round {round} writer {w} batch {b}: {outcome}\n{sql}"
        ));
        if rng.chance(0.3) {
            std::thread::sleep(Duration::from_millis(rng.below(15)));
        }
    }
}

/// What a shape on `items` should hold, keyed as the server keys rows, values as text.
fn pg_rows(db: &TestDb<'_>, w: &str, columns: Option<&str>) -> BTreeMap<String, Value> {
    let cols = columns.unwrap_or("*");
    let sql = format!(
        "SELECT (SELECT json_object_agg(j.key, j.value #>> '{{}}') FROM json_each(to_json(x)) j)
         FROM (SELECT {cols} FROM items WHERE {w}) x"
    );
    let out = db.psql(&sql).expect("expected rows");
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("row JSON");
            let id = v["id"].as_str().expect("id column").to_string();
            (format!(r#""public"."items"/"{id}""#), v)
        })
        .collect()
}

/// The client's rows with booleans in the snapshot's spelling (replication sends `t`/`f`).
fn client_rows(t: &TagTracker) -> BTreeMap<String, Value> {
    let mut rows = t.rows();
    for v in rows.values_mut() {
        if let Some(f) = v.get_mut("flag") {
            match f.as_str() {
                Some("t") => *f = Value::from("true"),
                Some("f") => *f = Value::from("false"),
                _ => {}
            }
        }
    }
    rows
}

struct Run<'a> {
    /// The test function, for the rerun hint.
    test: &'static str,
    seed: u64,
    cores: usize,
    db: &'a TestDb<'a>,
    log: &'a Mutex<Vec<String>>,
    /// The restarts so far, with their rounds and timings.
    restarts: Mutex<Vec<String>>,
}

impl Run<'_> {
    /// Fails with everything needed to tell what went wrong.
    fn fail(&self, round: usize, f: &Follow, what: &str, expected: &BTreeMap<String, Value>) -> ! {
        let st = f.lock();
        let got = client_rows(&st.tracker);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "seed {} (cores {}), round {round}: client {:?} {what}\n\
             rerun: AMPERE_MODEL_SEED={} nice cargo nextest run -p engine --test subquery_model {}\n\
             where: {}\ncolumns: {}\nhandle: {:?}\nerrors: {:#?}",
            self.seed,
            self.cores,
            f.label,
            self.seed,
            self.test,
            f.w,
            f.columns.unwrap_or("(all)"),
            st.handle,
            st.errors
        );
        let restarts = self.restarts.lock().unwrap_or_else(|e| e.into_inner());
        if !restarts.is_empty() {
            let _ = writeln!(out, "restarts: {restarts:#?}");
        }
        drop(restarts);
        let keys: BTreeSet<&String> = got.keys().chain(expected.keys()).collect();
        let diffs: Vec<&String> = keys
            .into_iter()
            .filter(|k| got.get(*k) != expected.get(*k))
            .collect();
        let show = |v: Option<&Value>| v.map_or("(absent)".to_string(), Value::to_string);
        for k in &diffs {
            let _ = writeln!(
                out,
                "differs {k}:\n  client:   {}\n  postgres: {}",
                show(got.get(*k)),
                show(expected.get(*k))
            );
        }
        if let Some(k) = diffs.first() {
            // The row's messages, and the events whose patterns hit any slot it ever had.
            let mut slots = BTreeSet::new();
            for (_, m) in &st.history {
                if m["key"].as_str() == Some(k.as_str()) {
                    for t in ["tags", "removed_tags"] {
                        for tag in m["headers"][t].as_array().into_iter().flatten() {
                            for s in tag.as_str().unwrap_or("").split('/') {
                                if s.len() == 32 {
                                    slots.insert(s.to_string());
                                }
                            }
                        }
                    }
                }
            }
            let _ = writeln!(out, "messages about {k} (response number, message):");
            for (n, m) in &st.history {
                let hit = m["key"].as_str() == Some(k.as_str())
                    || m["headers"]["patterns"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|p| p["value"].as_str().is_some_and(|v| slots.contains(v)));
                if hit {
                    let _ = writeln!(out, "  #{n} {m}");
                }
            }
        }
        let history: Vec<String> = st
            .history
            .iter()
            .map(|(n, m)| format!("#{n} {m}"))
            .collect();
        let tail = st.history.len().saturating_sub(40);
        let _ = writeln!(out, "last {} messages:", st.history.len() - tail);
        for (n, m) in &st.history[tail..] {
            let _ = writeln!(out, "  #{n} {m}");
        }
        drop(st);
        if let Some(k) = diffs.first() {
            let id = k.rsplit('/').next().unwrap_or("").trim_matches('"');
            let _ = writeln!(
                out,
                "committed changes of items.id = {id} (xid, op, old, new):\n{}",
                self.db
                    .psql(&format!(
                        "SELECT xid, op, old, new FROM audit WHERE tbl = 'items' \
                         AND (old->>'id' = '{id}' OR new->>'id' = '{id}') ORDER BY seq"
                    ))
                    .unwrap_or_default()
            );
        }
        let audit = self
            .db
            .psql("SELECT xid, tbl, op, old, new FROM audit ORDER BY seq")
            .unwrap_or_default();
        let log = self
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join("\n");
        let log = format!(
            "{log}\n\n-- committed changes (xid|table|op|old|new):\n{audit}\n\n\
             -- messages client {:?} received (response number, message):\n{}",
            f.label,
            history.join("\n")
        );
        let path = std::env::temp_dir().join(format!(
            "subquery_model_seed{}_{}.sql",
            self.seed,
            std::process::id()
        ));
        let _ = std::fs::write(&path, &log);
        let _ = writeln!(
            out,
            "writers' SQL, committed changes and the client's messages: {}",
            path.display()
        );
        let _ = writeln!(
            out,
            "postgres now:\n{}",
            self.db
                .psql(
                    "SELECT 'items', json_agg(i ORDER BY id) FROM items i
                     UNION ALL SELECT 'parents', json_agg(p ORDER BY id) FROM parents p
                     UNION ALL SELECT 'members', json_agg(m ORDER BY user_id, team_id)
                               FROM members m"
                )
                .unwrap_or_default()
        );
        panic!("{out}");
    }

    /// Waits until the client holds `expected` and its latest long-poll, started after
    /// `since`, came back without data (nothing more to come); fails after `deadline`.
    fn settle(
        &self,
        round: usize,
        f: &Follow,
        expected: &BTreeMap<String, Value>,
        since: Instant,
        deadline: Instant,
    ) {
        loop {
            {
                let st = f.lock();
                if !st.errors.is_empty() {
                    drop(st);
                    self.fail(round, f, "got an error response", expected);
                }
                let idle = matches!(st.last, Some((started, false)) if started > since);
                if idle && client_rows(&st.tracker) == *expected {
                    return;
                }
            }
            if Instant::now() > deadline {
                let same = client_rows(&f.lock().tracker) == *expected;
                let what = if same {
                    "holds what Postgres selects but its long-polls never went idle"
                } else {
                    "did not settle on what Postgres selects"
                };
                self.fail(round, f, what, expected);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Polls the marker shape until it shows `n`.
fn await_marker(client: Client, n: usize) {
    let (mut f, r) = support::Follower::start(client, "table=marker");
    let mut t = TagTracker::new();
    t.feed_all(&r.items());
    let deadline = Instant::now() + SETTLE;
    let want = n.to_string();
    loop {
        let seen = t
            .rows()
            .values()
            .any(|v| v["n"].as_str() == Some(want.as_str()));
        if seen {
            return;
        }
        assert!(Instant::now() < deadline, "the marker {n} never arrived");
        // Live once past the snapshot.
        let live = f.offset != "-1";
        let r = f.next(live);
        r.expect(200);
        t.feed_all(&r.items());
    }
}

/// How a seed runs its server.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// One server process for the whole seed.
    Steady,
    /// A server restarted between rounds, alternately cleanly and by `kill -9`.
    Restarts,
}

/// A restart between two rounds: the server starts again while the second one's writers run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Restart {
    /// SIGTERM while the writers run: every shape comes back with its handle
    /// (`docs/subqueries.md`, "Restarts").
    Clean,
    /// SIGTERM right after the previous round's comparison, before the writers start
    /// (`AMPERE_MODEL_CLEAN_STOP_IDLE=1`): any 409 fails.
    CleanIdle,
    /// `kill -9` while the writers run: every shape comes back with its handle, but one that
    /// never completed a sync (the start says it is not restored; its clients get one 409).
    Crash,
}

/// The server of a seed.
enum Ampere {
    Steady(Server),
    Restartable(Restartable),
}

impl Ampere {
    fn start(db: &TestDb<'_>, cores: usize, mode: Mode) -> Self {
        match mode {
            Mode::Steady => Self::Steady(Server::start(
                &db.url(),
                Opts {
                    cores,
                    long_poll_ms: LONG_POLL_MS,
                    ..Opts::default()
                },
            )),
            Mode::Restarts => Self::Restartable(Restartable::start(
                &db.url(),
                CrashOpts {
                    cores,
                    long_poll_ms: LONG_POLL_MS,
                    ..CrashOpts::default()
                },
            )),
        }
    }

    /// The same on every start (`Restartable` keeps its port).
    fn client(&self) -> Client {
        match self {
            Self::Steady(s) => s.client(),
            Self::Restartable(s) => s.client(),
        }
    }

    fn restartable(&mut self) -> &mut Restartable {
        match self {
            Self::Steady(_) => panic!("a steady server is not restarted"),
            Self::Restartable(s) => s,
        }
    }

    /// Stops the server as `how` says; returns how long that took.
    fn stop(&mut self, how: Restart, shared: &Shared) -> Duration {
        let s = self.restartable();
        let t0 = Instant::now();
        match how {
            Restart::Clean | Restart::CleanIdle => s.stop(),
            Restart::Crash => s.kill9(),
        }
        // Gone: from now on requests reach the next process (`Shared::may_rotate`).
        if let Restart::Crash = how {
            shared.crashes.fetch_add(1, Ordering::SeqCst);
        }
        if let Restart::Crash | Restart::Clean = how {
            shared.may_rotate.fetch_add(1, Ordering::SeqCst);
        }
        t0.elapsed()
    }
}

/// Sets the flag when dropped (so the writers end even if a restart fails).
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn run_seed(cluster: &testkit::Cluster, test: &'static str, seed: u64, rounds: usize, mode: Mode) {
    let t0 = Instant::now();
    let cores = if seed % 2 == 1 { 2 } else { 1 };
    let mut rng = Rng::new(seed);
    let d = Domain::new(&mut rng);
    let setup = format!("{SCHEMA}\n{}", d.initial_data(&mut rng));
    let db = cluster.create_database().expect("create database");
    db.psql(&setup).expect("setup SQL");
    let mut server = Ampere::start(&db, cores, mode);
    let client = server.client();
    let log = Mutex::new(vec![format!("-- seed {seed}, domain {d:?}\n{setup}")]);
    let run = Run {
        test,
        seed,
        cores,
        db: &db,
        log: &log,
        restarts: Mutex::new(Vec::new()),
    };
    let shared = Arc::new(Shared {
        restarts: mode == Mode::Restarts,
        ..Shared::default()
    });
    let clauses: Vec<&Clause> = match std::env::var("AMPERE_MODEL_CLAUSES") {
        Ok(names) if !names.is_empty() => CLAUSES
            .iter()
            .filter(|c| names.split(',').any(|n| n == c.name))
            .collect(),
        _ => CLAUSES.iter().collect(),
    };
    assert!(!clauses.is_empty(), "AMPERE_MODEL_CLAUSES names no clause");
    let mut clients: Vec<Follow> = clauses
        .iter()
        .map(|c| {
            Follow::start(
                client,
                c.name.to_string(),
                c.w.to_string(),
                c.columns,
                shared.clone(),
            )
        })
        .collect();
    let writers = 2 + (rng.below(2) as usize);
    for round in 0..rounds {
        // Restarts alternate, the first one clean on odd seeds, a crash on even ones.
        let restart = (mode == Mode::Restarts && round > 0).then(|| {
            if !(seed + round as u64).is_multiple_of(2) {
                Restart::Crash
            } else if env_flag("AMPERE_MODEL_CLEAN_STOP_IDLE") {
                Restart::CleanIdle
            } else {
                Restart::Clean
            }
        });
        let restarted = AtomicBool::new(restart.is_none());
        let refetches_before: u32 = clients.iter().map(|f| f.lock().restart_refetches).sum();
        // A clean stop before the writers start (the last round's comparison left every
        // shape idle); the others while they run.
        let mut stopped = None;
        if restart == Some(Restart::CleanIdle) {
            stopped = Some((Instant::now(), server.stop(Restart::CleanIdle, &shared)));
        }
        std::thread::scope(|s| {
            for w in 0..writers {
                let (db, log, restarted) = (&db, &log, &restarted);
                s.spawn(move || writer(db, d, (seed, round, w), log, restarted));
            }
            // The writers end once the server is back, or the restart failed.
            let _restarted = SetOnDrop(&restarted);
            if round > 0 {
                // While the writers run: a new shape, and a second client of an old one.
                std::thread::sleep(Duration::from_millis(rng.below(300)));
                let c = clauses[rng.below(clauses.len() as u64) as usize];
                clients.push(Follow::start(
                    client,
                    format!("{} (new shape, round {round})", c.name),
                    format!("({}) AND id <> {}", c.w, 900 + round),
                    c.columns,
                    shared.clone(),
                ));
                let c = clauses[rng.below(clauses.len() as u64) as usize];
                clients.push(Follow::start(
                    client,
                    format!("{} (second client, round {round})", c.name),
                    c.w.to_string(),
                    c.columns,
                    shared.clone(),
                ));
            }
            if let Some(how) = restart {
                std::thread::sleep(Duration::from_millis(rng.below(400)));
                let (at, stop_took) =
                    *stopped.get_or_insert_with(|| (Instant::now(), server.stop(how, &shared)));
                std::thread::sleep(Duration::from_millis(rng.below(300)));
                let down = at.elapsed();
                let active = server.restartable().restart();
                restarted.store(true, Ordering::SeqCst);
                let what = format!(
                    "round {round}: {how:?}: stopped in {stop_took:.1?}, down {down:.1?}, \
                     active {active:.1?} after the start"
                );
                log.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(format!("-- {what}"));
                run.restarts
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(what);
            }
        });
        db.psql(&format!("UPDATE marker SET n = {} WHERE id = 1", round + 1))
            .expect("SQL");
        await_marker(client, round + 1);
        let since = Instant::now();
        let deadline = since + SETTLE;
        let last = round + 1 == rounds;
        let expected: Vec<BTreeMap<String, Value>> = clients
            .iter()
            .map(|f| pg_rows(&db, &f.w, f.columns))
            .collect();
        for (f, e) in clients.iter().zip(&expected) {
            run.settle(round, f, e, since, deadline);
        }
        if last {
            // Still the same after one more idle long-poll each.
            let since = Instant::now();
            for (f, e) in clients.iter().zip(&expected) {
                run.settle(round, f, e, since, since + SETTLE);
            }
        }
        if let Some(how) = restart {
            let n = clients
                .iter()
                .map(|f| f.lock().restart_refetches)
                .sum::<u32>()
                - refetches_before;
            let log = server.restartable().log();
            let log = log.rsplit("==== start #").next().unwrap_or("");
            eprintln!(
                "seed {seed}: {}; {} shapes not restored, {n} 409s",
                run.restarts
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .last()
                    .map_or("", String::as_str),
                log.matches(" is not restored ").count()
            );
            // Only shapes the start reports as not restored rotate (one that never completed
            // a sync before a crash); every other keeps its handle.
            for (f, e) in clients.iter().zip(&expected) {
                let rotated = std::mem::take(&mut f.lock().rotations);
                for h in rotated {
                    if !log.contains(&format!("shape {h} is not restored (")) {
                        let what =
                            format!("got a 409 for {h} after a {how:?} restart that kept it");
                        run.fail(round, f, &what, e);
                    }
                }
            }
        }
    }
    shared.stop.store(true, Ordering::Relaxed);
    let (mut restart_refetches, mut outages) = (0, 0);
    for f in &mut clients {
        if let Some(t) = f.thread.take() {
            let _ = t.join();
        }
        let st = f.lock();
        restart_refetches += st.restart_refetches;
        outages += st.outages;
        if st.refetches > 0 {
            eprintln!(
                "seed {seed}: client {:?} had {} 409s",
                f.label, st.refetches
            );
        }
    }
    let batches = log.lock().map(|l| l.len()).unwrap_or(0);
    let restarts = match mode {
        Mode::Steady => String::new(),
        Mode::Restarts => {
            format!(", {restart_refetches} 409s after restarts, {outages} client outages")
        }
    };
    eprintln!(
        "seed {seed}: cores {cores}, {writers} writers, {rounds} rounds, {} clients, \
         {batches} batches{restarts}, domain {d:?}, {:.1?}",
        clients.len(),
        t0.elapsed()
    );
}

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// `AMPERE_MODEL_SEED`, else the first `AMPERE_MODEL_SEEDS` of `defaults` then 100, 101, ….
fn seeds(defaults: &[u64]) -> Vec<u64> {
    if let Some(s) = std::env::var("AMPERE_MODEL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return vec![s];
    }
    let n = std::env::var("AMPERE_MODEL_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(defaults.len());
    defaults.iter().copied().chain(100..).take(n).collect()
}

fn rounds() -> usize {
    std::env::var("AMPERE_MODEL_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_ROUNDS)
}

#[test]
fn subquery_shapes_follow_postgres_under_concurrent_writes() {
    let cluster = cluster();
    for seed in seeds(&DEFAULT_SEEDS) {
        run_seed(
            &cluster,
            "subquery_shapes_follow_postgres_under_concurrent_writes",
            seed,
            rounds(),
            Mode::Steady,
        );
    }
}

/// The same model with the server restarted between rounds while the writers run: once
/// cleanly (subquery shapes keep their handles: any 409 fails) and once by `kill -9` (they
/// rotate: each client gets one 409 per crash and resyncs from -1).
#[test]
fn subquery_shapes_follow_postgres_across_restarts() {
    let cluster = cluster();
    for seed in seeds(&RESTART_SEEDS) {
        run_seed(
            &cluster,
            "subquery_shapes_follow_postgres_across_restarts",
            seed,
            rounds(),
            Mode::Restarts,
        );
    }
}
