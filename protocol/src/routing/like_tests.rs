//! Unit tests of LIKE groups and candidate terms: each pattern kind against rows it must and
//! must not route to (Postgres ILIKE folding, escapes, `_`, empty strings, NULL), and removal
//! and re-insertion across the needle levels. The brute-force property test is
//! `protocol/tests/routing_props.rs`.

use super::tests::{assert_routes_as_evaluated, predicate, Kind};
use super::Router;

/// Each clause with values of `name` it must and must not route to.
#[test]
fn patterns_route_exactly() {
    let cases: &[(&str, &[&str], &[&str])] = &[
        (
            "name LIKE '%bc%'",
            &["abcd", "bc", "xbc"],
            &["BC", "b c", ""],
        ),
        ("name ILIKE '%BC%'", &["abcd", "xBc", "bC"], &["b", "cb"]),
        ("name ILIKE '%ǅ%'", &["ǆx", "Ǆ", "aǅ"], &["d", "dž"]),
        ("name ILIKE '%straße'", &["STRAßE", "straße"], &["STRASSE"]),
        ("name LIKE '%c'", &["abc", "c"], &["ca", "C", ""]),
        ("name ILIKE 'É%'", &["école", "École"], &["ecole"]),
        ("name LIKE 'a\\%b'", &["a%b"], &["axb", "a%bc"]),
        ("name LIKE '%\\_%'", &["a_b", "_"], &["ab"]),
        ("name LIKE 'a_c'", &["abc", "aéc"], &["ac", "abbc"]),
        ("name LIKE '%a%c%'", &["abc", "ac", "xaxcx"], &["ca", "a"]),
        ("name LIKE '%'", &["", "x"], &[]),
        ("name LIKE ''", &[""], &["x"]),
        ("name LIKE '_%'", &["x", "xy"], &[""]),
        ("lower(name) LIKE '%ab%'", &["xABy", "ab"], &["a b"]),
        ("upper(name) LIKE 'AB%'", &["abc", "ABx"], &["xab"]),
        ("lower(name) ILIKE '%Ab%'", &["xaBy", "AB"], &["a"]),
        ("name NOT LIKE '%bc%'", &["x", "", "BC"], &["abc", "bc"]),
        ("name NOT ILIKE 'ǅ%'", &["d", "xǆ"], &["ǆx", "Ǆ"]),
        ("upper(name) NOT LIKE '%'", &[], &["", "x"]),
    ];
    for &(sql, hits, misses) in cases {
        let mut router = Router::new();
        router.insert(1, Some(&predicate(sql)));
        assert_ne!(super::tests::placed(sql), Kind::Scan, "{sql}");
        let p = predicate(sql);
        for &value in hits {
            let row = [None, Some(value)];
            let get = |i: usize| row.get(i).copied().flatten().map(str::as_bytes);
            assert!(p.eval(&get), "{sql} on {value}: the evaluator disagrees");
            assert_eq!(router.route_vec(&row), vec![1], "{sql} on {value}");
        }
        for &value in misses {
            let row = [None, Some(value)];
            let get = |i: usize| row.get(i).copied().flatten().map(str::as_bytes);
            assert!(!p.eval(&get), "{sql} on {value}: the evaluator disagrees");
            assert!(router.route_vec(&row).is_empty(), "{sql} on {value}");
        }
        assert!(router.route_vec(&[None, None]).is_empty(), "{sql} on NULL");
    }
}

/// Many patterns of every kind in one group, removed and re-inserted so needle levels merge,
/// go stale and rebuild; each row must route to exactly the shapes the evaluator accepts.
#[test]
fn many_patterns_with_removals() {
    let patterns = |i: u64| match i % 6 {
        _ if i.is_multiple_of(5) => format!("name NOT ILIKE '%-{i}%'"),
        0 => format!("name ILIKE '%-{i}-%'"),
        1 => format!("name ILIKE '%-{i}'"),
        2 => format!("name ILIKE 'u{i}-%'"),
        3 => format!("name ILIKE 'u{i}'"),
        4 => format!("name ILIKE '%{i}_%'"),
        _ => format!("name ILIKE '%{}%' OR id = {i}", i % 10),
    };
    let mut router = Router::new();
    let mut shapes = Vec::new();
    for i in 0..600u64 {
        let p = predicate(&patterns(i));
        router.insert(i, Some(&p));
        shapes.push((i, p));
    }
    let rows: Vec<String> = (0..600u64)
        .step_by(7)
        .flat_map(|i| {
            [
                format!("U{i}-{}-", i + 1),
                format!("x-{i}"),
                format!("u{i}"),
            ]
        })
        .collect();
    let check = |router: &Router, shapes: &[(u64, crate::where_clause::Predicate)]| {
        for name in &rows {
            assert_routes_as_evaluated(router, shapes, &[Some("3"), Some(name.as_str())]);
        }
    };
    check(&router, &shapes);
    for i in (0..600u64).filter(|i| i % 3 != 0) {
        router.remove(i);
    }
    shapes.retain(|(id, _)| id % 3 == 0);
    check(&router, &shapes);
    for i in (0..600u64).filter(|i| i % 3 == 1) {
        let p = predicate(&patterns(i + 1));
        router.insert(i, Some(&p));
        shapes.push((i, p));
    }
    shapes.sort_by_key(|(id, _)| *id);
    check(&router, &shapes);
}

/// Shapes of many distinct source expressions come and go: the groups and compiled
/// expressions they leave behind are dropped by a rebuild once removals outnumber the live
/// shapes, and routing stays exact through it.
#[test]
fn churn_leaves_nothing_behind() {
    let mut router = Router::new();
    let keep = [
        (1u64, "name ILIKE '%zz%'"),
        (2, "NOT (lower(name) = 'xk')"),
        (3, "name LIKE 'ab%'"),
    ];
    for (id, sql) in keep {
        router.insert(id, Some(&predicate(sql)));
    }
    // Exactly as many removals as trigger a rebuild (3 live shapes: the minimum applies).
    for i in 0..super::REBUILD_AFTER_MIN as u64 {
        let sql = if i % 2 == 0 {
            format!("(name || '{i}') ILIKE '%a{i}%'")
        } else {
            format!("NOT (name || '{i}' = 'x{i}')")
        };
        router.insert(100 + i, Some(&predicate(&sql)));
        router.remove(100 + i);
    }
    assert!(
        router.likes.list.len() + router.checked_likes.list.len() <= 3,
        "{} LIKE groups left after churn",
        router.likes.list.len() + router.checked_likes.list.len()
    );
    for (value, expected) in [
        ("xzzx", vec![1, 2]),
        ("xk", vec![]),
        ("abc", vec![2, 3]),
        ("XK", vec![]),
        ("Zz", vec![1, 2]),
    ] {
        let mut got = router.route_vec(&[None, Some(value)]);
        got.sort_unstable();
        assert_eq!(got, expected, "{value}");
    }
    assert_eq!(router.len(), 3);
}
