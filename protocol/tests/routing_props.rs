//! Property test of the shape router: for random sets of shapes (inserted, some removed and
//! re-inserted with other clauses) and random rows, `Router::route` returns exactly the shapes
//! whose `Predicate::eval` is true — brute force over every shape is the oracle.
//!
//! Values are chosen to stress Postgres equality rather than text equality: integers with
//! spaces and signs, numeric `1.0`/`1.00`/`-0`, float `-0`/`NaN`/`1e3`, uuids in both cases and
//! with braces, timestamps with offsets naming the same instant, bpchar padding, non-ASCII text
//! for ILIKE folding, arrays with NULL elements, NULLs everywhere, and unparsable values.

use std::collections::BTreeSet;

use proptest::prelude::*;
use protocol::routing::Router;
use protocol::where_clause::{parse, ColumnType, Predicate};

fn column(name: &str, type_name: &str, is_array: bool) -> ColumnType {
    ColumnType {
        name: name.to_string(),
        type_name: type_name.to_string(),
        is_array,
        is_enum: false,
    }
}

fn table() -> Vec<ColumnType> {
    vec![
        column("id", "int8", false),
        column("i4", "int4", false),
        column("name", "text", false),
        column("n", "numeric", false),
        column("f", "float8", false),
        column("u", "uuid", false),
        column("ts", "timestamptz", false),
        column("tags", "text", true),
        column("c", "bpchar", false),
        column("ints", "int4", true),
        column("d", "date", false),
        column("v", "varchar", false),
    ]
}

/// Row values per column (`None` is NULL), including spellings Postgres would not send.
const VALUES: &[&[Option<&str>]] = &[
    &[
        None,
        Some("1"),
        Some("2"),
        Some("3"),
        Some(" 2"),
        Some("+3"),
        Some("x"),
    ],
    &[
        None,
        Some("1"),
        Some("2"),
        Some("5"),
        Some("-1"),
        Some("9999999999"),
    ],
    &[
        None,
        Some("abc"),
        Some("ABC"),
        Some("Ábc"),
        Some("ábc"),
        Some("straße"),
        Some("STRASSE"),
        Some("ǅx"),
        Some("ǆx"),
        Some(""),
        Some("ab"),
        Some("a%b"),
        Some("İx"),
        Some("xabcx"),
        Some("a_b"),
        Some("Straße-ǅ"),
        Some("ab  "),
    ],
    &[
        None,
        Some("1"),
        Some("1.0"),
        Some("1.00"),
        Some("2.5"),
        Some("-0"),
        Some("0.0"),
        Some("NaN"),
        Some("Infinity"),
        Some("1e0"),
        Some("abc"),
    ],
    &[
        None,
        Some("0"),
        Some("-0"),
        Some("NaN"),
        Some("1.5"),
        Some("-1.5"),
        Some("Infinity"),
        Some("-Infinity"),
        Some("1e3"),
        Some("1000"),
    ],
    &[
        None,
        Some("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
        Some("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"),
        Some("{a0eebc999c0b4ef8bb6d6bb9bd380a11}"),
        Some("00000000-0000-0000-0000-000000000001"),
        Some("nope"),
    ],
    &[
        None,
        Some("2024-01-01 00:00:00+00"),
        Some("2024-01-01 01:00:00+01"),
        Some("2024-01-02 00:00:00+00"),
        Some("2023-12-31 23:00:00-01"),
        Some("2024-01-01 12:30:00.5+00"),
    ],
    &[
        None,
        Some("{}"),
        Some("{a}"),
        Some("{a,b}"),
        Some("{b,NULL}"),
        Some("{NULL}"),
        Some("{A,c}"),
        Some("{c,a,c}"),
    ],
    &[None, Some("ab"), Some("ab  "), Some("abc"), Some("AB")],
    &[
        None,
        Some("{}"),
        Some("{1}"),
        Some("{1,2}"),
        Some("{2,3}"),
        Some("{NULL,1}"),
        Some("{3}"),
    ],
    &[
        None,
        Some("2024-01-01"),
        Some("2024-01-02"),
        Some("2023-12-31"),
    ],
    &[
        None,
        Some("abc"),
        Some("ab"),
        Some("x"),
        Some("XAB"),
        Some("ǅ"),
    ],
];

/// Clause templates; `{}` is replaced by a constant from the pool named after the `#`.
const CLAUSES: &[&str] = &[
    "id = {}#int",
    "id IN ({}, {})#int",
    "id = ANY('{{}}')#int",
    "id > {}#int",
    "id <= {}#int",
    "id BETWEEN {} AND {}#int",
    "i4 >= {} AND i4 < {}#int",
    "{} < i4#int",
    "i4 = {}#int",
    "i4 IN ({})#int",
    "name = '{}'#text",
    "name LIKE '{}%'#text",
    "name ILIKE '{}%'#text",
    "name ILIKE '{}_%'#text",
    "name ILIKE '%{}'#text",
    "name > '{}'#text",
    "lower(name) <> '{}'#text",
    "lower(name) = '{}'#text",
    "upper(name) < '{}'#text",
    "length(name) > {}#int",
    "n = {}#num",
    "n > {}#num",
    "n IN ({}, {})#num",
    "f = '{}'#float",
    "f BETWEEN '{}' AND '{}'#float",
    "f >= '{}'#float",
    "u = '{}'#uuid",
    "u IN ('{}')#uuid",
    "ts > '{}'#ts",
    "ts = '{}'#ts",
    "ts BETWEEN '{}' AND '{}'#ts",
    "tags @> '{{}}'#elems",
    "tags <@ '{{}}'#elems",
    "tags && '{{}}'#elems",
    "'{}' = ANY(tags)#text",
    "ints @> '{{}}'#ints",
    "ints <@ '{{}}'#ints",
    "ints && '{{}}'#ints",
    "c = '{}'#bpchar",
    "c LIKE '{}%'#bpchar",
    "d = '{}'#date",
    "d < '{}'#date",
    "v = '{}'#text",
    "v = name",
    "name IS NOT NULL",
    "id IS NULL",
    "id + i4 = {}#int",
    "n + 1 > {}#num",
    "f * 2 <= '{}'#float",
    "lower(name) >= '{}'#text",
    "{} > i4 - 1#int",
    "name ILIKE '%{}%'#text",
    "name LIKE '%{}%'#text",
    "name LIKE '%{}'#text",
    "name ILIKE '%{}'#text",
    "name LIKE '{}'#text",
    "name ILIKE '%{}_'#text",
    "name LIKE '_%{}%{}'#text",
    "name LIKE '%'",
    "name ILIKE '_'",
    "lower(name) LIKE '%{}%'#text",
    "upper(name) ILIKE '{}%'#text",
    "lower(name) LIKE '%{}'#text",
    "v ILIKE '%{}%'#text",
    "c LIKE '%{}'#bpchar",
    "c ILIKE '%{}%'#bpchar",
    "name || v LIKE '%{}%'#text",
    "id * 2 + i4 > {}#int",
    "lower(v) = '{}'#text",
    "(name ILIKE '%{}%') IS TRUE#text",
    "name NOT ILIKE '%{}%'#text",
    "lower(name) NOT LIKE '{}%'#text",
    "v NOT LIKE '%{}'#text",
];

const POOLS: &[(&str, &[&str])] = &[
    ("int", &["1", "2", "3", "'2'", "0", "NULL", "5"]),
    (
        "text",
        &[
            "abc", "ab", "a", "ÁB", "STRA", "straße", "ǆ", "\\%", "x", "İ", "i", "B", "\\_", "SSE",
            "b ", "",
        ],
    ),
    ("num", &["1", "1.00", "2.50", "0", "-0.0", "'NaN'", "NULL"]),
    ("float", &["0", "-0", "NaN", "1.5", "1000", "-Infinity"]),
    (
        "uuid",
        &[
            "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "00000000000000000000000000000001",
        ],
    ),
    (
        "ts",
        &[
            "2024-01-01 00:00:00+00",
            "2024-01-01 00:00:00",
            "2024-01-01 02:00:00+02",
            "2023-12-31",
        ],
    ),
    ("elems", &["a", "a,b", "", "A", "b,NULL", "c,a", "NULL"]),
    ("ints", &["1", "1,2", "", "3,2,1", "NULL", "2"]),
    ("bpchar", &["ab", "ab  ", "a", "abc"]),
    ("date", &["2024-01-01", "2024-01-02"]),
];

/// Renders clause `template` with constants picked by `picks`.
fn render(template: usize, picks: &[usize]) -> String {
    let spec = CLAUSES[template];
    let (text, pool) = match spec.split_once('#') {
        Some((text, pool)) => (text, pool),
        None => return spec.to_string(),
    };
    let values = POOLS
        .iter()
        .find(|(name, _)| *name == pool)
        .map(|(_, values)| *values)
        .expect("pool exists");
    let mut out = String::new();
    let mut rest = text;
    let mut n = 0;
    while let Some(at) = rest.find("{}") {
        // `{{}}` is a literal array brace around a constant.
        out.push_str(&rest[..at]);
        out.push_str(values[picks[n % picks.len()] % values.len()]);
        n += 1;
        rest = &rest[at + 2..];
    }
    out.push_str(rest);
    out.replace("{{", "{").replace("}}", "}")
}

#[derive(Clone, Debug)]
enum Clause {
    Leaf(usize, Vec<usize>),
    And(Box<Clause>, Box<Clause>),
    Or(Box<Clause>, Box<Clause>),
    Not(Box<Clause>),
}

impl Clause {
    fn sql(&self) -> String {
        match self {
            Clause::Leaf(t, picks) => render(*t, picks),
            Clause::And(a, b) => format!("({}) AND ({})", a.sql(), b.sql()),
            Clause::Or(a, b) => format!("({}) OR ({})", a.sql(), b.sql()),
            Clause::Not(a) => format!("NOT ({})", a.sql()),
        }
    }
}

fn clause() -> impl Strategy<Value = Clause> {
    let leaf = (0..CLAUSES.len(), prop::collection::vec(0usize..64, 2))
        .prop_map(|(t, picks)| Clause::Leaf(t, picks));
    leaf.prop_recursive(2, 6, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Clause::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Clause::Or(Box::new(a), Box::new(b))),
            inner.prop_map(|a| Clause::Not(Box::new(a))),
        ]
    })
}

type RowPicks = Vec<usize>;

fn row_values(picks: &RowPicks) -> Vec<Option<&'static str>> {
    VALUES
        .iter()
        .zip(picks)
        .map(|(values, &p)| values[p % values.len()])
        .collect()
}

/// Parses clauses; ones the front end rejects (a type mismatch in a random pairing) are
/// replaced by "no clause", which the router must also handle.
fn predicate(clause: &Option<Clause>) -> Option<Predicate> {
    let clause = clause.as_ref()?;
    parse(&clause.sql(), &[], &table()).ok()
}

fn brute_force(shapes: &[(u64, Option<Predicate>)], row: &[Option<&str>]) -> BTreeSet<u64> {
    let get = |i: usize| row.get(i).copied().flatten().map(str::as_bytes);
    shapes
        .iter()
        .filter(|(_, p)| p.as_ref().is_none_or(|p| p.eval(&get)))
        .map(|(id, _)| *id)
        .collect()
}

fn routed(router: &Router, row: &[Option<&str>]) -> Vec<u64> {
    let get = |i: usize| row.get(i).copied().flatten().map(str::as_bytes);
    let mut out = vec![u64::MAX];
    router.route(&get, &mut out);
    assert_eq!(out[0], u64::MAX, "route appends");
    out.remove(0);
    out
}

fn check(router: &Router, shapes: &[(u64, Option<Predicate>)], rows: &[RowPicks]) {
    assert_eq!(router.len(), shapes.len());
    for picks in rows {
        let row = row_values(picks);
        let got = routed(router, &row);
        let unique: BTreeSet<u64> = got.iter().copied().collect();
        assert_eq!(unique.len(), got.len(), "duplicates in {got:?}");
        let want = brute_force(shapes, &row);
        if unique != want {
            let sql: Vec<String> = shapes
                .iter()
                .filter(|(id, _)| unique.contains(id) != want.contains(id))
                .map(|(id, p)| format!("{id}: {:?}", p.as_ref().map(Predicate::to_sql)))
                .collect();
            panic!("row {row:?}: routed {unique:?}, expected {want:?}; differing: {sql:#?}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

    #[test]
    fn routed_set_equals_brute_force(
        clauses in prop::collection::vec(prop::option::weighted(0.95, clause()), 1..48),
        replacements in prop::collection::vec((0usize..48, prop::option::of(clause())), 0..24),
        rows in prop::collection::vec(
            prop::collection::vec(0usize..64, VALUES.len()), 1..12),
    ) {
        let mut router = Router::new();
        let mut shapes: Vec<(u64, Option<Predicate>)> = Vec::new();
        for (id, clause) in clauses.iter().enumerate() {
            let p = predicate(clause);
            router.insert(id as u64, p.as_ref());
            shapes.push((id as u64, p));
        }
        check(&router, &shapes, &rows);
        // Remove some shapes, and give others new clauses (re-insert replaces).
        for (at, clause) in &replacements {
            let at = at % shapes.len().max(1);
            if shapes.is_empty() {
                break;
            }
            match clause {
                None => {
                    let (id, _) = shapes.swap_remove(at);
                    router.remove(id);
                }
                Some(_) => {
                    let p = predicate(clause);
                    router.insert(shapes[at].0, p.as_ref());
                    shapes[at].1 = p;
                }
            }
        }
        check(&router, &shapes, &rows);
    }
}

/// Many shapes of one kind (so indexes hold more than a few entries, interval levels merge
/// and rebuild after removals) against every row combination of the touched columns.
#[test]
fn many_ranges_with_removals() {
    let columns = table();
    let mut router = Router::new();
    let mut shapes = Vec::new();
    for i in 0..300u64 {
        let (lo, hi) = (i % 7, i % 7 + i % 3);
        let sql = match i % 4 {
            0 => format!("id BETWEEN {lo} AND {hi}"),
            1 => format!("i4 > {lo} AND i4 <= {hi}"),
            2 => format!("f BETWEEN {lo} AND {hi} OR id = {i}"),
            _ => format!("ts BETWEEN '2024-01-01 00:00:0{lo}+00' AND '2024-01-01 00:00:0{hi}+00'"),
        };
        let p = parse(&sql, &[], &columns).expect(&sql);
        router.insert(i, Some(&p));
        shapes.push((i, Some(p)));
    }
    let rows: Vec<RowPicks> = (0..64)
        .map(|i| vec![i % 7, i / 7, 0, 0, i % 10, 0, i % 6])
        .collect();
    check(&router, &shapes, &rows);
    for i in (0..300u64).filter(|i| i % 3 != 0) {
        router.remove(i);
    }
    shapes.retain(|(id, _)| id % 3 == 0);
    check(&router, &shapes, &rows);
}
