//! The column catalog query and the `electric-schema` header against a real Postgres.
//!
//! Goal: prove that `COLUMNS_QUERY` reads the right catalog facts (element types, dimensions,
//! type modifiers, PK positions, nullability) and that `schema_header` turns them into exactly
//! the entries upstream's schema test expects for each Postgres type.
//! Method: create one table with a column per type on a throwaway cluster, run the query through
//! `psql` (NULLs rendered as a marker), parse the rows with `parse_column_row`, and compare each
//! column's header entry with the expected JSON.

use protocol::schema::{columns_query_for_table, parse_column_row, schema_header, ColumnInfo};
use serde_json::{json, Value};

const NULL_MARKER: &str = "<null>";
const SEPARATOR: &str = "|~|";

/// Runs the column query for `public.<table>` and parses its rows.
fn load_columns(db: &testkit::TestDb<'_>, table: &str) -> Vec<ColumnInfo> {
    let query = columns_query_for_table("public", table).expect("no NUL");
    let script = format!("\\pset null '{NULL_MARKER}'\n\\pset fieldsep '{SEPARATOR}'\n{query};\n");
    let output = db.psql(&script).expect("column query");
    output
        .lines()
        .filter(|line| !line.is_empty())
        .map(|line| {
            let fields: Vec<Option<&str>> = line
                .split(SEPARATOR)
                .map(|field| (field != NULL_MARKER).then_some(field))
                .collect();
            parse_column_row(&fields).expect("well-formed row")
        })
        .collect()
}

fn header(columns: &[ColumnInfo]) -> Value {
    serde_json::from_str(&schema_header(columns)).expect("header is JSON")
}

/// `(SQL type, expected schema entry)`, the cases of upstream's `schema_test.exs`.
fn type_cases() -> Vec<(&'static str, Value)> {
    vec![
        ("SMALLINT", json!({"type": "int2"})),
        ("INT2", json!({"type": "int2"})),
        ("INTEGER", json!({"type": "int4"})),
        ("SERIAL", json!({"type": "int4", "not_null": true})),
        ("BIGINT", json!({"type": "int8"})),
        ("MONEY", json!({"type": "money"})),
        ("VARCHAR", json!({"type": "varchar"})),
        (
            "VARCHAR(123)",
            json!({"type": "varchar", "max_length": 123}),
        ),
        (
            "VARCHAR(123)[]",
            json!({"type": "varchar", "max_length": 123, "dims": 1}),
        ),
        (
            "VARCHAR(123)[][]",
            json!({"type": "varchar", "max_length": 123, "dims": 2}),
        ),
        (
            "CHARACTER VARYING(123)",
            json!({"type": "varchar", "max_length": 123}),
        ),
        ("CHAR", json!({"type": "bpchar", "length": 1})),
        (
            "CHARACTER[]",
            json!({"type": "bpchar", "dims": 1, "length": 1}),
        ),
        ("BPCHAR", json!({"type": "bpchar"})),
        ("BPCHAR[]", json!({"type": "bpchar", "dims": 1})),
        ("TEXT", json!({"type": "text"})),
        ("BPCHAR(9)", json!({"type": "bpchar", "length": 9})),
        (
            "BPCHAR(9)[]",
            json!({"type": "bpchar", "dims": 1, "length": 9}),
        ),
        ("BYTEA", json!({"type": "bytea"})),
        ("DATE", json!({"type": "date"})),
        ("TIME", json!({"type": "time"})),
        ("TIME(3)", json!({"type": "time", "precision": 3})),
        ("TIME WITH TIME ZONE", json!({"type": "timetz"})),
        (
            "TIME(3) WITH TIME ZONE",
            json!({"type": "timetz", "precision": 3}),
        ),
        ("TIMESTAMP", json!({"type": "timestamp"})),
        ("TIMESTAMP(3)", json!({"type": "timestamp", "precision": 3})),
        ("TIMESTAMP WITH TIME ZONE", json!({"type": "timestamptz"})),
        (
            "TIMESTAMP(3) WITH TIME ZONE",
            json!({"type": "timestamptz", "precision": 3}),
        ),
        ("INTERVAL", json!({"type": "interval"})),
        (
            "INTERVAL YEAR",
            json!({"type": "interval", "fields": "YEAR"}),
        ),
        (
            "INTERVAL MONTH",
            json!({"type": "interval", "fields": "MONTH"}),
        ),
        ("INTERVAL DAY", json!({"type": "interval", "fields": "DAY"})),
        (
            "INTERVAL HOUR",
            json!({"type": "interval", "fields": "HOUR"}),
        ),
        (
            "INTERVAL MINUTE",
            json!({"type": "interval", "fields": "MINUTE"}),
        ),
        (
            "INTERVAL SECOND",
            json!({"type": "interval", "fields": "SECOND"}),
        ),
        (
            "INTERVAL YEAR TO MONTH",
            json!({"type": "interval", "fields": "YEAR TO MONTH"}),
        ),
        (
            "INTERVAL DAY TO HOUR",
            json!({"type": "interval", "fields": "DAY TO HOUR"}),
        ),
        (
            "INTERVAL DAY TO MINUTE",
            json!({"type": "interval", "fields": "DAY TO MINUTE"}),
        ),
        (
            "INTERVAL DAY TO SECOND",
            json!({"type": "interval", "fields": "DAY TO SECOND"}),
        ),
        (
            "INTERVAL HOUR TO MINUTE",
            json!({"type": "interval", "fields": "HOUR TO MINUTE"}),
        ),
        (
            "INTERVAL HOUR TO SECOND",
            json!({"type": "interval", "fields": "HOUR TO SECOND"}),
        ),
        (
            "INTERVAL MINUTE TO SECOND",
            json!({"type": "interval", "fields": "MINUTE TO SECOND"}),
        ),
        ("INTERVAL(4)", json!({"type": "interval", "precision": 4})),
        (
            "INTERVAL SECOND(4)",
            json!({"type": "interval", "precision": 4, "fields": "SECOND"}),
        ),
        (
            "INTERVAL SECOND(4)[]",
            json!({"type": "interval", "dims": 1, "precision": 4, "fields": "SECOND"}),
        ),
        (
            "INTERVAL MINUTE TO SECOND[][]",
            json!({"type": "interval", "dims": 2, "fields": "MINUTE TO SECOND"}),
        ),
        ("BOOLEAN", json!({"type": "bool"})),
        ("NUMERIC", json!({"type": "numeric"})),
        ("REAL", json!({"type": "float4"})),
        ("DOUBLE PRECISION", json!({"type": "float8"})),
        ("BIT", json!({"type": "bit", "length": 1})),
        ("BIT[]", json!({"type": "bit", "dims": 1, "length": 1})),
        ("BIT(5)", json!({"type": "bit", "length": 5})),
        ("BIT VARYING(5)", json!({"type": "varbit", "length": 5})),
        (
            "BIT VARYING(5)[]",
            json!({"type": "varbit", "dims": 1, "length": 5}),
        ),
        (
            "NUMERIC(5,3)",
            json!({"type": "numeric", "precision": 5, "scale": 3}),
        ),
        (
            "NUMERIC(5,3)[]",
            json!({"type": "numeric", "dims": 1, "precision": 5, "scale": 3}),
        ),
        (
            "NUMERIC(5)",
            json!({"type": "numeric", "precision": 5, "scale": 0}),
        ),
        ("POINT", json!({"type": "point"})),
        ("LINE", json!({"type": "line"})),
        ("CIDR", json!({"type": "cidr"})),
        ("MACADDR8", json!({"type": "macaddr8"})),
        ("TSVECTOR", json!({"type": "tsvector"})),
        ("UUID", json!({"type": "uuid"})),
        ("XML", json!({"type": "xml"})),
        ("JSON", json!({"type": "json"})),
        ("JSONB", json!({"type": "jsonb"})),
        ("JSONPATH", json!({"type": "jsonpath"})),
        ("INT4RANGE", json!({"type": "int4range"})),
        ("INT8MULTIRANGE", json!({"type": "int8multirange"})),
        ("TSTZRANGE", json!({"type": "tstzrange"})),
        ("OID", json!({"type": "oid"})),
        ("REGCLASS", json!({"type": "regclass"})),
        ("REGCOLLATION", json!({"type": "regcollation"})),
        ("PG_LSN", json!({"type": "pg_lsn"})),
        ("MOOD", json!({"type": "mood"})),
        ("MOOD[]", json!({"type": "mood", "dims": 1})),
        ("COMPLEX", json!({"type": "complex"})),
        ("COMPLEX[]", json!({"type": "complex", "dims": 1})),
        ("POSINT", json!({"type": "posint"})),
        ("POSINT[]", json!({"type": "posint", "dims": 1})),
    ]
}

#[test]
fn pg_schema_header_matches_upstream_for_each_type() {
    let cluster = testkit::Cluster::start().expect("cluster");
    let db = cluster.create_database().expect("database");
    let cases = type_cases();
    let column_defs: Vec<String> = cases
        .iter()
        .enumerate()
        .map(|(index, (sql_type, _))| format!("c{index} {sql_type}"))
        .collect();
    db.psql(&format!(
        "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
         CREATE TYPE complex AS (r double precision, i double precision);
         CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
         CREATE TABLE items (id INTEGER PRIMARY KEY, {});",
        column_defs.join(", ")
    ))
    .expect("create table");

    let columns = load_columns(&db, "items");
    assert_eq!(columns.len(), cases.len() + 1);
    let schema = header(&columns);
    assert_eq!(
        schema["id"],
        json!({"type": "int4", "pk_index": 0, "not_null": true})
    );
    for (index, (sql_type, expected)) in cases.iter().enumerate() {
        assert_eq!(&schema[format!("c{index}")], expected, "{sql_type}");
    }
}

#[test]
fn pg_composite_keys_nullability_and_missing_tables() {
    let cluster = testkit::Cluster::start().expect("cluster");
    let db = cluster.create_database().expect("database");
    db.psql(
        "CREATE TABLE items (i INTEGER, name VARCHAR, value BOOLEAN, dropped TEXT,
                             PRIMARY KEY (i, value));
         ALTER TABLE items DROP COLUMN dropped;
         CREATE TABLE gen (id INT PRIMARY KEY, twice INT GENERATED ALWAYS AS (id * 2) STORED);",
    )
    .expect("create tables");

    let columns = load_columns(&db, "items");
    let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["i", "name", "value"], "dropped columns are skipped");
    assert_eq!(
        header(&columns),
        json!({
            "i": {"type": "int4", "pk_index": 0, "not_null": true},
            "name": {"type": "varchar"},
            "value": {"type": "bool", "pk_index": 1, "not_null": true}
        })
    );

    let generated = load_columns(&db, "gen");
    assert!(!generated[0].is_generated);
    assert!(generated[1].is_generated);

    assert!(load_columns(&db, "missing").is_empty());
    assert!(load_columns(&db, "it's").is_empty());
}
