//! Unit tests: where typical clauses are placed (so the indexes are really used) and exact
//! results for the Postgres equality cases keys must respect. The brute-force property test
//! is `protocol/tests/routing_props.rs`.

use super::*;
use crate::where_clause::{parse, ColumnType};

fn col(name: &str, type_name: &str, is_array: bool) -> ColumnType {
    ColumnType {
        name: name.to_string(),
        type_name: type_name.to_string(),
        is_array,
        is_enum: false,
    }
}

fn table() -> Vec<ColumnType> {
    vec![
        col("id", "int8", false),
        col("name", "text", false),
        col("n", "numeric", false),
        col("f", "float8", false),
        col("u", "uuid", false),
        col("tags", "text", true),
        col("c", "bpchar", false),
        col("ts", "timestamptz", false),
    ]
}

pub(super) fn predicate(sql: &str) -> Predicate {
    parse(sql, &[], &table()).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[derive(Debug, PartialEq)]
pub(super) enum Kind {
    Everything,
    Scan,
    Template,
    Like,
    Indexed(usize),
}

pub(super) fn placed(sql: &str) -> Kind {
    let mut router = Router::new();
    router.insert(7, Some(&predicate(sql)));
    let slot = router.ids[&7];
    match &router.slots[slot as usize].shape.as_ref().map(|s| &s.place) {
        Some(Place::Everything(_)) => Kind::Everything,
        Some(Place::Scan(_)) => Kind::Scan,
        Some(Place::Template { .. }) => Kind::Template,
        Some(Place::Like { .. }) => Kind::Like,
        Some(Place::Indexed(probes)) => Kind::Indexed(probes.len()),
        None => panic!("not placed"),
    }
}

#[test]
fn typical_clauses_use_indexes() {
    for sql in [
        "id = 5",
        "id = '5'",
        "5 = id",
        "id IN (1, 2, 3)",
        "id = ANY('{1,2}')",
        "id BETWEEN 1 AND 9",
        "id > 3",
        "name ILIKE 'ab%'",
        "name LIKE 'a\\%b%'",
        "tags @> '{a}'",
        "tags <@ '{a,b}'",
        "tags && '{a,b}'",
        "u = 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'",
        "n = 1.0",
        "id = 5 AND lower(name) <> 'x'",
        "lower(name) <> 'x' AND name LIKE 'q%'",
    ] {
        assert_eq!(placed(sql), Kind::Indexed(1), "{sql}");
    }
    assert_eq!(placed("id = 1 OR name = 'x'"), Kind::Indexed(2));
    assert_eq!(placed("tags @> '{NULL}'"), Kind::Indexed(0));
    for sql in [
        "lower(name) <> 'x'",
        "length(name) > 3",
        "id + 1 = 5",
        "id::text = '5'",
    ] {
        assert_eq!(placed(sql), Kind::Template, "{sql}");
    }
    for sql in [
        "name ILIKE '%ab%'",
        "name LIKE '%ab'",
        "lower(name) LIKE 'ab%'",
        "upper(name) ILIKE '%a_b%'",
        "name LIKE '_'",
        "name NOT LIKE '%ab%'",
        "lower(name) NOT ILIKE 'ab%'",
    ] {
        assert_eq!(placed(sql), Kind::Like, "{sql}");
    }
    assert_eq!(placed("id = 1 OR lower(name) = 'x'"), Kind::Indexed(2));
    assert_eq!(
        placed("name ILIKE '%a%' OR lower(name) > 'x'"),
        Kind::Indexed(2)
    );
    assert_eq!(
        placed("name ILIKE '%a%' AND lower(name) <> 'x'"),
        Kind::Indexed(1)
    );
    for sql in [
        "NOT (id = 5)",
        "name NOT LIKE '%ab%' OR id = 1",
        "id = 1 OR lower(name) <> 'x'",
    ] {
        assert_eq!(placed(sql), Kind::Scan, "{sql}");
    }
    let mut router = Router::new();
    router.insert(1, None);
    assert_eq!(router.route_vec(&[]), vec![1]);
}

impl Router {
    pub(super) fn route_vec(&self, row: &[Option<&str>]) -> Vec<u64> {
        let get = |i: usize| row.get(i).copied().flatten().map(str::as_bytes);
        let mut out = Vec::new();
        self.route(&get, &mut out);
        out.sort_unstable();
        out
    }
}

/// Each clause with the row values (column → text) it must and must not route to.
#[test]
fn keys_follow_postgres_equality() {
    let cases: &[(&str, usize, &[&str], &[&str])] = &[
        ("n = 1.0", 2, &["1", "1.00", "01.0"], &["1.01", "10"]),
        ("n = -0.0", 2, &["0", "0.000", "-0"], &["1"]),
        ("f = '-0'", 3, &["0", "-0", "0.0"], &["1e-300"]),
        ("f = 'NaN'", 3, &["NaN", "nan"], &["Infinity"]),
        ("f > 'Infinity'", 3, &["NaN"], &["Infinity"]),
        ("id = '5'", 0, &["5", " 5", "+5", "005"], &["6", "x"]),
        (
            "u = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
            4,
            &[
                "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
                "{a0eebc999c0b4ef8bb6d6bb9bd380a11}",
            ],
            &["00000000-0000-0000-0000-000000000001"],
        ),
        ("c = 'ab'", 6, &["ab", "ab   "], &["abc", " ab"]),
        (
            "name ILIKE 'ÁB%'",
            1,
            &["ábc", "ÁBC", "áB"],
            &["a", "ab", "xáb"],
        ),
        ("name ILIKE 'ǅ%'", 1, &["ǆ", "Ǆ", "ǅz"], &["d"]),
        (
            "ts = '2024-01-01 00:00:00+00'",
            7,
            &["2024-01-01 01:00:00+01", "2023-12-31 23:00:00-01"],
            &["2024-01-01 00:00:01+00"],
        ),
        (
            "tags <@ '{a,b}'",
            5,
            &["{}", "{a}", "{b,a,a}"],
            &["{a,c}", "{NULL}"],
        ),
        ("tags @> '{}'", 5, &["{}", "{x}"], &[]),
    ];
    for &(sql, column, hits, misses) in cases {
        let mut router = Router::new();
        router.insert(1, Some(&predicate(sql)));
        let mut row = vec![None; table().len()];
        for &value in hits {
            row[column] = Some(value);
            assert_eq!(router.route_vec(&row), vec![1], "{sql} on {value}");
        }
        for &value in misses {
            row[column] = Some(value);
            assert_eq!(
                router.route_vec(&row),
                Vec::<u64>::new(),
                "{sql} on {value}"
            );
        }
        row[column] = None;
        assert_eq!(router.route_vec(&row), Vec::<u64>::new(), "{sql} on NULL");
    }
}

#[test]
fn remove_and_reinsert_leave_no_stale_matches() {
    let mut router = Router::new();
    for id in 0..100u64 {
        let sql = format!("id BETWEEN {id} AND {}", id + 2);
        router.insert(id, Some(&predicate(&sql)));
    }
    let row = |v: &'static str| vec![Some(v)];
    assert_eq!(router.route_vec(&row("50")), vec![48, 49, 50]);
    for id in 0..100u64 {
        if id != 49 {
            router.remove(id);
        }
    }
    router.insert(50, Some(&predicate("name = 'x'")));
    assert_eq!(router.len(), 2);
    assert_eq!(router.route_vec(&row("50")), vec![49]);
    router.remove(49);
    router.remove(49);
    assert!(router.route_vec(&row("50")).is_empty());
    assert_eq!(router.route_vec(&[None, Some("x")]), vec![50]);
}

/// Scanned shapes run compiled programs kept in one array, compacted when most of it belongs
/// to removed shapes: after removals and re-inserts, each row routes exactly as evaluation.
#[test]
fn scanned_programs_survive_removals_and_compaction() {
    let clause = |i: u64| match i % 4 {
        0 => format!("NOT (id = {} OR name = 'n{i}')", i % 5),
        1 => format!("(id > {}) IS NOT TRUE", i % 7),
        2 => format!("NOT (n = {}.0) AND lower(name) <> 'x'", i % 3),
        _ => format!("NOT (u IS NULL) OR id = {}", i % 2),
    };
    let mut router = Router::new();
    let mut shapes = Vec::new();
    for i in 0..400u64 {
        router.insert(i, Some(&predicate(&clause(i))));
        shapes.push((i, predicate(&clause(i))));
    }
    let rows: Vec<[Option<String>; 5]> = (0..40u64)
        .map(|r| {
            let some = |v: String| (r % 9 != 0).then_some(v);
            [
                some((r % 8).to_string()),
                some(format!("n{}", r * 10)),
                some(format!("{}.00", r % 4)),
                None,
                (r % 3 == 0).then(|| "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".to_string()),
            ]
        })
        .collect();
    let check = |router: &Router, shapes: &[(u64, Predicate)]| {
        for row in &rows {
            let row: Vec<Option<&str>> = row.iter().map(|v| v.as_deref()).collect();
            assert_routes_as_evaluated(router, shapes, &row);
        }
    };
    check(&router, &shapes);
    for i in (0..400u64).filter(|i| i % 5 != 0) {
        router.remove(i);
    }
    shapes.retain(|(id, _)| id % 5 == 0);
    check(&router, &shapes);
    for i in (0..400u64).filter(|i| i % 5 == 1) {
        router.insert(i, Some(&predicate(&clause(i + 2))));
        shapes.push((i, predicate(&clause(i + 2))));
    }
    shapes.sort_by_key(|(id, _)| *id);
    check(&router, &shapes);
}

/// `row` routes to exactly the shapes (in id order of `shapes`) whose predicate accepts it.
pub(super) fn assert_routes_as_evaluated(
    router: &Router,
    shapes: &[(u64, Predicate)],
    row: &[Option<&str>],
) {
    let get = |i: usize| row.get(i).copied().flatten().map(str::as_bytes);
    let want: Vec<u64> = shapes
        .iter()
        .filter(|(_, p)| p.eval(&get))
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(router.route_vec(row), want, "row {row:?}");
}
