use super::*;

#[test]
fn renders_reference_body() {
    assert_eq!(
        ValidationErrors::single("offset", "can't be blank").body(),
        r#"{"message":"Invalid request","errors":{"offset":["can't be blank"]}}"#
    );
}

#[test]
fn fields_are_sorted_and_messages_kept_in_order() {
    let mut errors = ValidationErrors::new();
    errors.add("replica", "is invalid");
    errors.add("offset", "can't be blank");
    errors.add("log", "is invalid");
    errors.add("log", "second");
    assert_eq!(
        errors.body(),
        r#"{"message":"Invalid request","errors":{"log":["is invalid","second"],"offset":["can't be blank"],"replica":["is invalid"]}}"#
    );
    assert_eq!(errors.status(), 400);
    assert_eq!(errors.get("log").unwrap().len(), 2);
    assert!(errors.has("replica"));
}

#[test]
fn db_dependent_messages() {
    assert_eq!(
        table_not_found("public", "x").body(),
        r#"{"message":"Invalid request","errors":{"table":["Table \"public\".\"x\" does not exist. If the table name contains capitals or special characters you must quote it."]}}"#
    );
    assert_eq!(
        missing_pk_columns(&["id".to_owned()])
            .get("columns")
            .unwrap(),
        ["The list of columns must include all primary key columns, missing: id"]
    );
    assert_eq!(
        columns_not_found(&["x".to_owned(), "y".to_owned()])
            .get("columns")
            .unwrap(),
        ["The following columns are not found on the table: x, y"]
    );
    assert_eq!(
        empty_columns().get("columns").unwrap(),
        ["The list of columns must not be empty"]
    );
    assert_eq!(
        generated_columns(&["id".to_owned()], false)
            .get("columns")
            .unwrap(),
        ["The following columns are generated and cannot be included in the shape: id"]
    );
    assert_eq!(
        generated_columns(&["g".to_owned()], true)
            .get("columns")
            .unwrap(),
        [
            "The following columns are generated and cannot be included in the shape: g. You can \
          exclude them from the shape by explicitly listing which columns to fetch in the \
          'columns' query param"
        ]
    );
    assert_eq!(
        queryable_missing_pk_columns(&["id".to_owned()])
            .get("queryable_columns")
            .unwrap(),
        ["The list of queryable columns must include all primary key columns, missing: id"]
    );
    assert_eq!(
        queryable_columns_not_found(&["x".to_owned(), "y".to_owned()]).body(),
        r#"{"message":"Invalid request","errors":{"queryable_columns":["The following queryable columns are not found on the table: x, y"]}}"#
    );
    assert_eq!(
        queryable_columns_empty().get("queryable_columns").unwrap(),
        ["The list of queryable columns must not be empty"]
    );
    assert_eq!(
        compaction_not_supported().body(),
        r#"{"message":"Invalid request","errors":{"experimental_compaction":["is not supported by this server"]}}"#
    );
    assert_eq!(
        offset_out_of_bounds().body(),
        r#"{"message":"Invalid request","errors":{"offset":["out of bounds for this shape"]}}"#
    );
    assert_eq!(
        where_error("At location 17: syntax error at or near \"x\"").body(),
        r#"{"message":"Invalid request","errors":{"where":["At location 17: syntax error at or near \"x\""]}}"#
    );
}

#[test]
fn inspect_matches_elixir() {
    assert_eq!(elixir_inspect_string("items"), r#""items""#);
    assert_eq!(elixir_inspect_string(r#"a"b\c"#), r#""a\"b\\c""#);
    assert_eq!(elixir_inspect_string("#{x} #y"), r##""\#{x} #y""##);
    assert_eq!(elixir_inspect_string("a\nb"), r#""a\nb""#);
    assert_eq!(elixir_inspect_string("日本"), "\"日本\"");
    assert_eq!(elixir_inspect_string("a\u{1}"), "<<97, 1>>");
}
