use super::*;

fn column(name: &str, type_name: &str, type_mod: i32) -> ColumnInfo {
    ColumnInfo {
        name: name.to_owned(),
        type_oid: 0,
        type_name: type_name.to_owned(),
        dims: 0,
        is_array: false,
        pk_index: None,
        not_null: false,
        type_mod,
        type_kind: TypeKind::Base,
        element_kind: None,
        is_generated: false,
        formatted_type: String::new(),
    }
}

/// Schema entry of a single column named `value`.
fn entry(col: ColumnInfo) -> String {
    let header = schema_header(&[col]);
    let prefix = r#"{"value":"#;
    assert!(
        header.starts_with(prefix) && header.ends_with('}'),
        "{header}"
    );
    header[prefix.len()..header.len() - 1].to_owned()
}

fn interval_mod(range: i32, precision: i32) -> i32 {
    (range << 16) | (precision & 0xffff)
}

#[test]
fn reference_example() {
    let id = ColumnInfo {
        pk_index: Some(0),
        ..column("id", "int8", -1)
    };
    assert_eq!(
        schema_header(&[column("value", "text", -1), id]),
        r#"{"id":{"pk_index":0,"type":"int8"},"value":{"type":"text"}}"#
    );
    assert_eq!(schema_header(&[]), "{}");
}

#[test]
fn character_types() {
    assert_eq!(
        entry(column("value", "varchar", -1)),
        r#"{"type":"varchar"}"#
    );
    let varchar_2d = ColumnInfo {
        dims: 2,
        is_array: true,
        ..column("value", "varchar", 127)
    };
    assert_eq!(
        entry(varchar_2d),
        r#"{"dims":2,"max_length":123,"type":"varchar"}"#
    );
    assert_eq!(
        entry(column("value", "bpchar", 5)),
        r#"{"length":1,"type":"bpchar"}"#
    );
    assert_eq!(entry(column("value", "bpchar", -1)), r#"{"type":"bpchar"}"#);
    assert_eq!(
        entry(column("value", "bpchar", 13)),
        r#"{"length":9,"type":"bpchar"}"#
    );
    assert_eq!(entry(column("value", "text", -1)), r#"{"type":"text"}"#);
    assert_eq!(
        entry(column("value", "bit", 1)),
        r#"{"length":1,"type":"bit"}"#
    );
    assert_eq!(
        entry(column("value", "varbit", 5)),
        r#"{"length":5,"type":"varbit"}"#
    );
    // Upstream has no guard for bit types.
    assert_eq!(
        entry(column("value", "varbit", -1)),
        r#"{"length":-1,"type":"varbit"}"#
    );
}

#[test]
fn time_and_numeric_types() {
    assert_eq!(
        entry(column("value", "time", 3)),
        r#"{"precision":3,"type":"time"}"#
    );
    assert_eq!(entry(column("value", "timetz", -1)), r#"{"type":"timetz"}"#);
    assert_eq!(
        entry(column("value", "timestamptz", 3)),
        r#"{"precision":3,"type":"timestamptz"}"#
    );
    // Precision 0 is not "> 0", so upstream falls through to the raw type_mod.
    assert_eq!(
        entry(column("value", "timestamp", 0)),
        r#"{"type":"timestamp","type_mod":0}"#
    );
    assert_eq!(
        entry(column("value", "numeric", (5 << 16) + 3 + 4)),
        r#"{"precision":5,"scale":3,"type":"numeric"}"#
    );
    assert_eq!(
        entry(column("value", "numeric", (5 << 16) + 4)),
        r#"{"precision":5,"scale":0,"type":"numeric"}"#
    );
    assert_eq!(
        entry(column("value", "numeric", -1)),
        r#"{"type":"numeric"}"#
    );
}

#[test]
fn interval_fields_and_precision() {
    let full = INTERVAL_FULL_RANGE;
    assert_eq!(
        entry(column("value", "interval", -1)),
        r#"{"type":"interval"}"#
    );
    let cases = [
        (
            interval_mod(4, -1),
            r#"{"fields":"YEAR","type":"interval"}"#,
        ),
        (
            interval_mod(2, -1),
            r#"{"fields":"MONTH","type":"interval"}"#,
        ),
        (
            interval_mod(6, -1),
            r#"{"fields":"YEAR TO MONTH","type":"interval"}"#,
        ),
        (
            interval_mod(8 | 1024 | 2048 | 4096, -1),
            r#"{"fields":"DAY TO SECOND","type":"interval"}"#,
        ),
        (
            interval_mod(2048 | 4096, -1),
            r#"{"fields":"MINUTE TO SECOND","type":"interval"}"#,
        ),
        (
            interval_mod(full, 4),
            r#"{"precision":4,"type":"interval"}"#,
        ),
        (
            interval_mod(4096, 4),
            r#"{"fields":"SECOND","precision":4,"type":"interval"}"#,
        ),
        (
            interval_mod(0, -1),
            r#"{"fields":" TO ","type":"interval"}"#,
        ),
    ];
    for (type_mod, expected) in cases {
        assert_eq!(
            entry(column("value", "interval", type_mod)),
            expected,
            "{type_mod}"
        );
    }
    let array = ColumnInfo {
        dims: 1,
        is_array: true,
        ..column("value", "interval", interval_mod(4096, 4))
    };
    assert_eq!(
        entry(array),
        r#"{"dims":1,"fields":"SECOND","precision":4,"type":"interval"}"#
    );
}

#[test]
fn flags_and_unknown_modifiers() {
    let serial = ColumnInfo {
        not_null: true,
        ..column("value", "int4", -1)
    };
    assert_eq!(entry(serial), r#"{"not_null":true,"type":"int4"}"#);
    assert_eq!(
        entry(column("value", "geometry", 10)),
        r#"{"type":"geometry","type_mod":10}"#
    );
    assert_eq!(
        entry(column("value", "we\"ird", -1)),
        r#"{"type":"we\"ird"}"#
    );
}

#[test]
fn parses_query_rows() {
    let row = [
        Some("tags"),
        Some("1016"),
        Some("int8"),
        Some("int8"),
        Some("t"),
        Some("b"),
        Some("b"),
        Some("1"),
        Some("-1"),
        Some("f"),
        Some("f"),
        None,
        Some("bigint[]"),
    ];
    let col = parse_column_row(&row).unwrap();
    assert_eq!(col.name, "tags");
    assert_eq!(col.type_oid, 1016);
    assert_eq!(col.type_name, "int8");
    assert_eq!(col.dims, 1);
    assert!(col.is_array);
    assert_eq!(col.pk_index, None);
    assert_eq!(col.element_kind, Some(TypeKind::Base));
    assert_eq!(parse_column_row(&row[..12]), Err(ColumnRowError::Width(12)));
    let mut bad = row;
    bad[9] = Some("yes");
    assert!(matches!(
        parse_column_row(&bad),
        Err(ColumnRowError::Value { index: 9, .. })
    ));
    bad = row;
    bad[0] = None;
    assert_eq!(parse_column_row(&bad), Err(ColumnRowError::Null(0)));
}

#[test]
fn query_builders_quote_literals() {
    let query = columns_query_for_table("public", "it's\\").unwrap();
    assert!(query.contains("n.nspname = E'public'"));
    assert!(query.contains("c.relname = E'it''s\\\\'"));
    assert!(!query.contains("$1"));
    assert_eq!(columns_query_for_table("a\0", "b"), None);
    assert!(columns_query_for_oid(16384).contains("c.oid = 16384::oid"));
}
