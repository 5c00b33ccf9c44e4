//! `route`: per-change cost of finding the shapes a row belongs to, with the shape router
//! (`protocol::routing::Router`) against the naive way (evaluate every shape's predicate, what
//! Electric does for clauses it cannot index), for N shapes on one table.
//!
//! No database is involved: columns are described by hand, clauses parsed with
//! `where_clause::parse`, rows given in pgoutput text form. For each clause kind and N, one
//! row hits exactly one shape and another hits none (for `<>`, the rows hit all shapes but one
//! and all shapes). Each measurement repeats the call until 100 ms have passed (at least 3
//! times) and reports the mean per call. Every routed set is checked against the naive set.
//! `ROUTE_KINDS=ILIKE,LIKE` keeps only the kinds whose name contains one of the words.

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _, Result};
use bench_harness::report::{grouped, Table};
use protocol::routing::Router;
use protocol::where_clause::{parse, ColumnType, Predicate};

/// Each measurement's least duration (short in tests, which check the routed sets only).
const MIN_TIME: Duration = Duration::from_millis(if cfg!(test) { 1 } else { 100 });

fn column(name: &str, type_name: &str, is_array: bool) -> ColumnType {
    ColumnType {
        name: name.to_string(),
        type_name: type_name.to_string(),
        is_array,
        is_enum: false,
    }
}

/// Values of the table's columns, in order: id, name, tags, a, b, email.
type Values = [String; 6];

/// The clause kinds: name, clause of shape `i` of `n`, the row hitting one (or all but one)
/// and the row hitting none (or all).
struct Kind {
    name: &'static str,
    clause: fn(u64) -> String,
    hit: fn(u64) -> Values,
    miss: fn(u64) -> Values,
}

fn row(id: u64, name: &str, tags: &str) -> Values {
    full_row(id, name, tags, (0, 0), "x")
}

fn full_row(id: u64, name: &str, tags: &str, (a, b): (i64, i64), email: &str) -> Values {
    [
        id.to_string(),
        name.to_string(),
        tags.to_string(),
        a.to_string(),
        b.to_string(),
        email.to_string(),
    ]
}

const KINDS: &[Kind] = &[
    Kind {
        name: "id = c",
        clause: |i| format!("id = {i}"),
        hit: |n| row(n / 2, "x", "{}"),
        miss: |n| row(n + 7, "x", "{}"),
    },
    Kind {
        name: "id IN (c1, c2, c3)",
        clause: |i| format!("id IN ({}, {}, {})", 3 * i, 3 * i + 1, 3 * i + 2),
        hit: |n| row(3 * (n / 2) + 1, "x", "{}"),
        miss: |n| row(3 * n + 5, "x", "{}"),
    },
    Kind {
        name: "name ILIKE 'c%'",
        clause: |i| format!("name ILIKE 'user-{i}-%'"),
        hit: |n| row(0, &format!("USER-{}-Smith", n / 2), "{}"),
        miss: |_| row(0, "someone-else", "{}"),
    },
    Kind {
        name: "id BETWEEN c AND c+5",
        clause: |i| format!("id BETWEEN {} AND {}", 10 * i, 10 * i + 5),
        hit: |n| row(10 * (n / 2) + 3, "x", "{}"),
        miss: |n| row(10 * (n / 2) + 7, "x", "{}"),
    },
    Kind {
        name: "tags @> '{c}'",
        clause: |i| format!("tags @> '{{t{i}}}'"),
        hit: |n| row(0, "x", &format!("{{a,t{},b}}", n / 2)),
        miss: |_| row(0, "x", "{a,b,c}"),
    },
    Kind {
        name: "lower(name) <> c (template)",
        clause: |i| format!("lower(name) <> 'user-{i}'"),
        hit: |n| row(0, &format!("User-{}", n / 2), "{}"),
        miss: |_| row(0, "someone-else", "{}"),
    },
    Kind {
        name: "name ILIKE '%c%'",
        clause: |i| format!("name ILIKE '%-{i}-%'"),
        hit: |n| row(0, &format!("user-{}-smith", n / 2), "{}"),
        miss: |_| row(0, "someone-else", "{}"),
    },
    Kind {
        name: "name LIKE '%c'",
        clause: |i| format!("name LIKE '%-{i}'"),
        hit: |n| row(0, &format!("user-{}", n / 2), "{}"),
        miss: |_| row(0, "someone-else", "{}"),
    },
    Kind {
        name: "lower(name) LIKE '%c%'",
        clause: |i| format!("lower(name) LIKE '%-{i}-%'"),
        hit: |n| row(0, &format!("USER-{}-SMITH", n / 2), "{}"),
        miss: |_| row(0, "SOMEONE-ELSE", "{}"),
    },
    Kind {
        name: "a * 2 + b > c",
        clause: |i| format!("a * 2 + b > {i}"),
        hit: |_| full_row(0, "x", "{}", (0, 1), "x"),
        miss: |_| full_row(0, "x", "{}", (0, 0), "x"),
    },
    Kind {
        name: "name ILIKE '%c%' OR email ILIKE '%c%'",
        clause: |i| format!("name ILIKE '%-{i}-%' OR email ILIKE '%-{i}-%'"),
        hit: |n| full_row(0, "x", "{}", (0, 0), &format!("mail-{}-x", n / 2)),
        miss: |_| full_row(0, "someone-else", "{}", (0, 0), "someone-else"),
    },
    Kind {
        name: "id = c OR lower(email) = c",
        clause: |i| format!("id = {i} OR lower(email) = 'mail-{i}'"),
        hit: |n| full_row(n + 7, "x", "{}", (0, 0), &format!("MAIL-{}", n / 2)),
        miss: |n| full_row(n + 7, "x", "{}", (0, 0), "someone-else"),
    },
    Kind {
        name: "name NOT ILIKE '%c%'",
        clause: |i| format!("name NOT ILIKE '%-{i}-%'"),
        hit: |n| row(0, &format!("user-{}-smith", n / 2), "{}"),
        miss: |_| row(0, "someone-else", "{}"),
    },
    Kind {
        name: "NOT (a = c OR b = c)",
        clause: |i| format!("NOT (a = {i} OR b = {i})"),
        hit: |n| full_row(0, "x", "{}", (n as i64 / 2, n as i64 / 3), "x"),
        miss: |n| full_row(0, "x", "{}", (n as i64, n as i64), "x"),
    },
    Kind {
        name: "NOT (lower(email) = c)",
        clause: |i| format!("NOT (lower(email) = 'mail-{i}')"),
        hit: |n| full_row(0, "x", "{}", (0, 0), &format!("MAIL-{}", n / 2)),
        miss: |_| full_row(0, "x", "{}", (0, 0), "someone-else"),
    },
];

/// Whether kind `name` is selected by `ROUTE_KINDS` (a comma-separated list of words).
fn selected(name: &str) -> bool {
    match std::env::var("ROUTE_KINDS") {
        Ok(words) if !words.is_empty() => words.split(',').any(|w| name.contains(w)),
        _ => true,
    }
}

/// Mean time per call of `f`, repeating it for at least [`MIN_TIME`].
fn time_per_call(mut f: impl FnMut()) -> Duration {
    let start = Instant::now();
    let mut calls = 0u32;
    while calls < 3 || start.elapsed() < MIN_TIME {
        f();
        calls += 1;
    }
    start.elapsed() / calls
}

fn nanos(d: Duration) -> String {
    grouped(d.as_nanos() as f64)
}

struct Measured {
    routed: Duration,
    naive: Duration,
    matched: usize,
}

fn measure(router: &Router, predicates: &[Predicate], values: &Values) -> Result<Measured> {
    let get = |i: usize| values.get(i).map(String::as_bytes);
    let mut out = Vec::new();
    router.route(&get, &mut out);
    let mut routed: Vec<u64> = out.clone();
    routed.sort_unstable();
    let naive: Vec<u64> = (0..predicates.len() as u64)
        .filter(|&i| predicates[i as usize].eval(&get))
        .collect();
    ensure!(
        routed == naive,
        "routed set differs from evaluation on {values:?}"
    );
    let routed_time = time_per_call(|| {
        out.clear();
        router.route(black_box(&get), &mut out);
        black_box(&out);
    });
    let naive_time = time_per_call(|| {
        out.clear();
        for (i, p) in predicates.iter().enumerate() {
            if p.eval(black_box(&get)) {
                out.push(i as u64);
            }
        }
        black_box(&out);
    });
    Ok(Measured {
        routed: routed_time,
        naive: naive_time,
        matched: naive.len(),
    })
}

pub fn run(sizes: &[u64]) -> Result<Vec<Table>> {
    let columns = [
        column("id", "int8", false),
        column("name", "text", false),
        column("tags", "text", true),
        column("a", "int8", false),
        column("b", "int8", false),
        column("email", "text", false),
    ];
    let mut per_change = Table::new(
        "Routing cost per change (one table, N shapes)",
        &[
            "clause kind",
            "N",
            "insert µs/shape",
            "row",
            "matched",
            "router ns/change",
            "naive ns/change",
            "naive / router",
            "router ns/shape",
        ],
    );
    for kind in KINDS.iter().filter(|k| selected(k.name)) {
        for &n in sizes {
            let predicates: Vec<Predicate> = (0..n)
                .map(|i| {
                    let sql = (kind.clause)(i);
                    parse(&sql, &[], &columns).with_context(|| sql.clone())
                })
                .collect::<Result<_>>()?;
            let mut router = Router::new();
            let start = Instant::now();
            for (i, p) in predicates.iter().enumerate() {
                router.insert(i as u64, Some(p));
            }
            let insert = start.elapsed();
            eprintln!("route: {} × {n}", kind.name);
            for (label, values) in [("hit", (kind.hit)(n)), ("miss", (kind.miss)(n))] {
                let m = measure(&router, &predicates, &values)?;
                per_change.row(vec![
                    kind.name.to_string(),
                    grouped(n as f64),
                    format!("{:.2}", insert.as_secs_f64() * 1e6 / n as f64),
                    label.to_string(),
                    grouped(m.matched as f64),
                    nanos(m.routed),
                    nanos(m.naive),
                    format!("{:.0}×", m.naive.as_secs_f64() / m.routed.as_secs_f64()),
                    format!("{:.2}", m.routed.as_nanos() as f64 / n as f64),
                ]);
            }
        }
    }
    per_change.note(
        "router = Router::route (candidates from indexes, each verified with its predicate); \
         naive = Predicate::eval on every shape. Both build the same id list.",
    );
    per_change.note(
        "hit = a row in exactly one shape (for `<>`: in all shapes but one); miss = in none \
         (for `<>`: in all).",
    );
    Ok(vec![per_change])
}

#[cfg(test)]
mod tests {
    /// Goal: the benchmark cannot rot. Method: every kind at tiny sizes; `run` fails if a
    /// routed set differs from evaluating every shape.
    #[test]
    fn every_kind_routes_as_evaluation_at_tiny_sizes() {
        let tables = super::run(&[3, 40]).expect("routed sets equal evaluation");
        assert_eq!(tables.len(), 1);
    }
}
