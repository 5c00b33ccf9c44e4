//! Runs an arbitrary WHERE clause through the whole front end (`protocol::where_clause`):
//! `parse` (pg_query, lowering, typing, constant folding) against a fixed table with a column
//! of every supported type (and some unsupported ones), `to_sql`, and `eval` over rows.
//!
//! Input layout: fields separated by NUL bytes: the clause; its `params` (`$1`, `$2`, … split
//! by `\x1f`; an empty field is no params); then rows, each its column values in table order
//! split by `\x1f`, where `\x1e` alone or a missing value is NULL. Every clause is also
//! evaluated over three fixed rows (all NULL, ordinary values, edge values).
//! Oracle: no panic; an accepted clause's columns exist; its `to_sql` parses again (without
//! params) and renders to itself; both predicates agree on every row (the snapshot query runs
//! `to_sql` in Postgres while the live stream runs `eval`, so they must mean the same).

#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::where_clause::{parse, ColumnType, Predicate};

/// `(name, typname, is_array, is_enum)`: the differential test's table, the unit tests' names
/// and a few unsupported types (`jsonb`, `bytea`, `time`).
const COLUMNS: &[(&str, &str, bool, bool)] = &[
    ("id", "int8", false, false),
    ("i2", "int2", false, false),
    ("i4", "int4", false, false),
    ("i8", "int8", false, false),
    ("n", "numeric", false, false),
    ("f", "float8", false, false),
    ("f4", "float4", false, false),
    ("t", "text", false, false),
    ("title", "text", false, false),
    ("v", "varchar", false, false),
    ("c", "bpchar", false, false),
    ("nm", "name", false, false),
    ("b", "bool", false, false),
    ("done", "bool", false, false),
    ("d", "date", false, false),
    ("ts", "timestamptz", false, false),
    ("tsn", "timestamp", false, false),
    ("u", "uuid", false, false),
    ("iv", "interval", false, false),
    ("Mixed", "text", false, false),
    ("mood", "mood", false, true),
    ("j", "jsonb", false, false),
    ("by", "bytea", false, false),
    ("tm", "time", false, false),
    ("tags", "text", true, false),
    ("ta", "text", true, false),
    ("ia", "int4", true, false),
    ("na", "numeric", true, false),
    ("da", "date", true, false),
    ("ba", "bool", true, false),
];

/// Values in `COLUMNS` order, as pgoutput sends them (`None`: NULL).
const ORDINARY: &[Option<&str>] = &[
    Some("1"),
    Some("7"),
    Some("42"),
    Some("-5"),
    Some("3.14"),
    Some("1.5"),
    Some("2.5"),
    Some("abc"),
    Some("hello world"),
    Some("x"),
    Some("ab  "),
    Some("name"),
    Some("t"),
    Some("f"),
    Some("2024-01-31"),
    Some("2024-02-29 12:34:56.789+00"),
    Some("2024-02-29 12:34:56"),
    Some("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
    Some("1 year 2 mons 3 days 04:05:06"),
    Some("M"),
    Some("happy"),
    Some("{\"a\": 1}"),
    Some("\\x0102"),
    Some("12:00:00"),
    Some("{a,b,\"c d\"}"),
    Some("{x,NULL}"),
    Some("{1,2,3}"),
    Some("{1.5,NaN}"),
    Some("{2024-01-01}"),
    Some("{t,f}"),
];

const EDGES: &[Option<&str>] = &[
    Some("9223372036854775807"),
    Some("-32768"),
    Some("-2147483648"),
    Some("-9223372036854775808"),
    Some("NaN"),
    Some("Infinity"),
    Some("-0"),
    Some(""),
    Some("%_\\"),
    Some("\u{e9}\u{301}"),
    Some(""),
    Some(""),
    Some("f"),
    None,
    Some("infinity"),
    Some("-infinity"),
    Some("4713-01-01 00:00:00 BC"),
    Some("00000000-0000-0000-0000-000000000000"),
    Some("-178000000 years"),
    None,
    Some(""),
    Some("null"),
    Some("\\x"),
    Some("24:00:00"),
    Some("{}"),
    Some("{{a,b},{c,d}}"),
    Some("[0:1]={2147483647,-2147483648}"),
    Some("{NULL}"),
    Some("{infinity,-infinity}"),
    Some("{}"),
];

const _: () = assert!(COLUMNS.len() == ORDINARY.len() && COLUMNS.len() == EDGES.len());

fuzz_target!(|data: &[u8]| {
    let mut fields = data.split(|&b| b == 0);
    let clause = String::from_utf8_lossy(fields.next().unwrap_or_default());
    let params: Vec<String> = match fields.next() {
        None | Some([]) => Vec::new(),
        Some(field) => field
            .split(|&b| b == 0x1f)
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect(),
    };
    let columns = columns();
    let predicate = match parse(&clause, &params, &columns) {
        Ok(predicate) => predicate,
        Err(error) => {
            let _ = error.to_string();
            return;
        }
    };
    assert!(predicate.columns().iter().all(|&i| i < columns.len()));
    let sql = predicate.to_sql();
    let again = parse(&sql, &[], &columns)
        .unwrap_or_else(|error| panic!("{clause:?} renders as {sql:?}, which is refused: {error}"));
    assert_eq!(again.to_sql(), sql, "{clause:?}: to_sql is not canonical");

    let fixed = [
        vec![None; COLUMNS.len()],
        to_bytes(ORDINARY),
        to_bytes(EDGES),
    ];
    let input_rows: Vec<Vec<Option<&[u8]>>> = fields.take(16).map(row).collect();
    for values in fixed.iter().chain(&input_rows) {
        check_row(&clause, &sql, &predicate, &again, values);
    }
});

fn columns() -> Vec<ColumnType> {
    COLUMNS
        .iter()
        .map(|&(name, type_name, is_array, is_enum)| ColumnType {
            name: name.into(),
            type_name: type_name.into(),
            is_array,
            is_enum,
        })
        .collect()
}

fn to_bytes(values: &[Option<&'static str>]) -> Vec<Option<&'static [u8]>> {
    values.iter().map(|v| v.map(str::as_bytes)).collect()
}

/// One row from the input: values split by `\x1f`, `\x1e` is NULL, missing values are NULL.
fn row(field: &[u8]) -> Vec<Option<&[u8]>> {
    let mut values: Vec<Option<&[u8]>> = field
        .split(|&b| b == 0x1f)
        .take(COLUMNS.len())
        .map(|v| (v != b"\x1e").then_some(v))
        .collect();
    values.resize(COLUMNS.len(), None);
    values
}

fn check_row(
    clause: &str,
    sql: &str,
    predicate: &Predicate,
    again: &Predicate,
    values: &[Option<&[u8]>],
) {
    let get = |i: usize| values[i];
    let first = predicate.eval(&get);
    let second = again.eval(&get);
    assert_eq!(
        first, second,
        "{clause:?} and its rendering {sql:?} disagree on {values:?}"
    );
}
