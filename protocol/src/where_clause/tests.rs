//! Unit tests: parsing, typing, error messages (upstream `parser_test.exs` cases in the
//! supported set), rendering, and evaluation over text rows. Postgres itself is consulted by
//! the differential test in `protocol/tests/where_differential.rs`.

use super::*;

fn col(name: &str, type_name: &str) -> ColumnType {
    ColumnType {
        name: name.to_string(),
        type_name: type_name.to_string(),
        is_array: false,
        is_enum: false,
    }
}

fn table() -> Vec<ColumnType> {
    let mut cols = vec![
        col("id", "int8"),
        col("i4", "int4"),
        col("title", "text"),
        col("done", "bool"),
        col("n", "numeric"),
        col("f", "float8"),
        col("d", "date"),
        col("ts", "timestamptz"),
        col("u", "uuid"),
        col("c", "bpchar"),
        col("Mixed", "text"),
        col("j", "jsonb"),
    ];
    cols.push(ColumnType {
        name: "mood".into(),
        type_name: "mood".into(),
        is_array: false,
        is_enum: true,
    });
    cols.push(ColumnType {
        name: "tags".into(),
        type_name: "text".into(),
        is_array: true,
        is_enum: false,
    });
    cols.push(col("iv", "interval"));
    cols
}

fn sql(clause: &str) -> String {
    parse(clause, &[], &table())
        .unwrap_or_else(|e| panic!("{clause}: {e}"))
        .to_sql()
}

fn err(clause: &str) -> String {
    match parse(clause, &[], &table()) {
        Ok(p) => panic!("{clause} parsed as {}", p.to_sql()),
        Err(e) => e.to_string(),
    }
}

fn err_params(clause: &str, params: &[&str]) -> String {
    let params: Vec<String> = params.iter().map(|p| p.to_string()).collect();
    match parse(clause, &params, &table()) {
        Ok(p) => panic!("{clause} parsed as {}", p.to_sql()),
        Err(e) => e.to_string(),
    }
}

/// Evaluates a clause over one row given as (column name, text value) pairs.
fn eval_row(clause: &str, values: &[(&str, Option<&str>)]) -> bool {
    let cols = table();
    let predicate = parse(clause, &[], &cols).unwrap_or_else(|e| panic!("{clause}: {e}"));
    let row: Vec<Option<&str>> = cols
        .iter()
        .map(|c| {
            values
                .iter()
                .find(|(n, _)| *n == c.name)
                .and_then(|(_, v)| *v)
        })
        .collect();
    predicate.eval(&|i| row[i].map(str::as_bytes))
}

/// Evaluates a constant clause (no columns).
fn truth(clause: &str) -> bool {
    eval_row(clause, &[])
}

#[test]
fn syntax_errors_carry_the_cursor_position_in_the_wrapped_statement() {
    assert_eq!(
        err("1 x 1"),
        "At location 17: syntax error at or near \"x\""
    );
    assert_eq!(err("id ="), "At location 19: syntax error at end of input");
}

#[test]
fn statement_splits_and_trailing_clauses_are_rejected() {
    assert_eq!(
        err("id = 1; DELETE FROM x"),
        "unescaped \";\" causing statement split"
    );
    assert_eq!(
        err("id = 1 ORDER BY id"),
        "malformed query ending with SQL clauses"
    );
    assert_eq!(
        err("id = 1 LIMIT 1"),
        "malformed query ending with SQL clauses"
    );
    assert_eq!(
        err("id = 1 GROUP BY id"),
        "malformed query ending with SQL clauses"
    );
    assert_eq!(
        err("true UNION SELECT 2"),
        "malformed query ending with SQL clauses"
    );
    assert_eq!(
        err("true FOR UPDATE"),
        "malformed query ending with SQL clauses"
    );
}

#[test]
fn unknown_references_functions_and_nodes_are_reported_upstream_style() {
    assert_eq!(err("\"test\" = 1"), "At location 0: unknown reference test");
    assert_eq!(
        err("id = 1 AND \"Nope\" = 2"),
        "At location 11: unknown reference \"Nope\""
    );
    assert_eq!(err("t.id = 1"), "At location 0: unknown reference t.id");
    assert_eq!(
        err("foo(id) = 1"),
        "At location 0: unknown or unsupported function foo/1"
    );
    assert_eq!(
        err("now() > ts"),
        "At location 0: unknown or unsupported function now/0"
    );
    assert_eq!(
        err("count(DISTINCT id) > 1"),
        "At location 0: aggregation is not supported in this context"
    );
    assert_eq!(
        err("CASE WHEN done THEN true END"),
        "At location 0: CaseExpr is not supported in this context"
    );
    assert_eq!(
        err("id IN (SELECT 1)"),
        "At location 3: subqueries are not supported"
    );
    assert_eq!(
        err("EXISTS (SELECT 1)"),
        "At location 0: subqueries are not supported"
    );
    assert_eq!(err("id ?| 1"), "At location 3: unknown binary operator ?|");
}

#[test]
fn clauses_must_be_boolean() {
    assert_eq!(err("id"), "WHERE clause must return a boolean");
    assert_eq!(err("'test'"), "WHERE clause must return a boolean");
    assert_eq!(err("1"), "WHERE clause must return a boolean");
    assert_eq!(sql("done"), "\"done\"");
    assert_eq!(sql("TRUE"), "'true'::bool");
}

#[test]
fn literals_are_typed_by_context_with_postgres_input_errors() {
    assert_eq!(sql("i4 = '5'"), "(\"i4\" = '5'::int4)");
    assert_eq!(
        err("i4 = 'abc'"),
        "At location 5: invalid input syntax for type integer: \"abc\""
    );
    assert_eq!(
        err("i4 = '99999999999'"),
        "At location 5: value \"99999999999\" is out of range for type integer"
    );
    assert_eq!(
        err("u = 'x'"),
        "At location 4: invalid input syntax for type uuid: \"x\""
    );
    assert_eq!(
        err("1 IS TRUE"),
        "At location 2: argument of IS TRUE must be bool, not int4"
    );
    assert_eq!(
        err("title = 5"),
        "At location 6: Could not select an operator overload"
    );
    assert_eq!(
        err("mood < 'x'"),
        "At location 5: Could not select an operator overload"
    );
    assert_eq!(
        err("j = 'x'"),
        "At location 2: Could not select an operator overload"
    );
    assert_eq!(
        err("1::boolean::date IS NULL"),
        "At location 0: unknown cast from type bool to type date"
    );
    assert_eq!(err("id::foo = 1"), "At location 4: unsupported type foo");
}

#[test]
fn params_are_inlined_as_typed_constants() {
    let params = vec!["5".to_string(), "it's".to_string()];
    let p = parse("id > $1 AND title = $2", &params, &table()).expect("parses");
    assert_eq!(
        p.to_sql(),
        "((\"id\" > '5'::int8) AND (\"title\" = 'it''s'::text))"
    );
    assert_eq!(
        err_params("id > $2", &["1"]),
        "At location 5: parameter $2 was not provided"
    );
    assert_eq!(
        err_params("id > $1", &["1", "2"]),
        "At location 0: parameter value for $2 was not used"
    );
    assert_eq!(
        err_params("id > $1", &["x"]),
        "At location 5: invalid input syntax for type bigint: \"x\""
    );
}

#[test]
fn params_from_pairs_validates_keys() {
    assert_eq!(
        params_from_pairs([("2", "b"), ("1", "a")]).expect("valid"),
        vec!["a".to_string(), "b".to_string()]
    );
    let bad = params_from_pairs([("x", "a")]).expect_err("not a number");
    assert_eq!(bad.to_string(), "Parameters can only use numbers as keys");
    assert!(bad.is_params_error());
    let gap = params_from_pairs([("1", "a"), ("3", "b")]).expect_err("gap");
    assert_eq!(
        gap.to_string(),
        "Parameters must be numbered sequentially, starting from 1"
    );
}

#[test]
fn rendering_is_canonical_and_quotes_everything() {
    assert_eq!(sql("id != 1"), sql("ID   <>   1"));
    assert_eq!(sql("id = 1 and done"), sql("(ID = 1) AND (done)"));
    assert_eq!(
        sql("a1 is null or id = 1".replace("a1", "title").as_str()),
        "((\"title\" IS NULL) OR (\"id\" = '1'::int8))"
    );
    assert_eq!(
        sql("\"Mixed\" LIKE 'a\\%'"),
        "(\"Mixed\" LIKE E'a\\\\%'::text)"
    );
    assert_eq!(
        sql("title = 'x''; DROP TABLE t; --'"),
        "(\"title\" = 'x''; DROP TABLE t; --'::text)"
    );
    assert_eq!(sql("id IN (1, 2)"), "(\"id\" IN ('1'::int8, '2'::int8))");
    assert_eq!(
        sql("id NOT IN (1, 2)"),
        "(\"id\" NOT IN ('1'::int8, '2'::int8))"
    );
    assert_eq!(sql("mood = 'happy'"), "(\"mood\" = 'happy')");
    assert_eq!(sql("n = 1.50"), "(\"n\" = '1.50'::numeric)");
    assert_eq!(sql("i4 = 1.5"), "(\"i4\" = '1.5'::numeric)");
    assert_eq!(sql("id::text = '1'"), "(CAST(\"id\" AS text) = '1'::text)");
    assert_eq!(sql("d = '2024-1-5'"), "(\"d\" = '2024-01-05'::date)");
    assert_eq!(
        sql("ts > '2024-01-05 10:00:00.5+02'"),
        "(\"ts\" > '2024-01-05 08:00:00.5+00'::timestamptz)"
    );
    assert_eq!(sql("NOT done IS NOT TRUE"), "(NOT (\"done\" IS NOT TRUE))");
    assert_eq!(
        sql("id IS DISTINCT FROM NULL"),
        "(\"id\" IS DISTINCT FROM NULL::int8)"
    );
    assert_eq!(sql("tags IS NULL"), "(\"tags\" IS NULL)");
}

#[test]
fn columns_lists_referenced_indexes() {
    let p = parse("title = 'a' OR id > 2 OR id < 0", &[], &table()).expect("parses");
    assert_eq!(p.columns(), vec![0, 2]);
}

#[test]
fn constant_semantics_match_upstream_parser_tests() {
    assert!(truth("1 IS DISTINCT FROM 2"));
    assert!(truth("1 IS DISTINCT FROM NULL"));
    assert!(!truth("NULL IS DISTINCT FROM NULL"));
    assert!(!truth("1 IS NOT DISTINCT FROM 2"));
    assert!(!truth("'foo' IS NOT DISTINCT FROM NULL"));
    assert!(truth("NULL IS NOT DISTINCT FROM NULL"));
    assert!(!truth("true IS UNKNOWN"));
    assert!(truth("true IS NOT UNKNOWN"));
    assert!(truth("NULL::boolean IS UNKNOWN"));
    assert!(truth("NULL IS UNKNOWN"));
    assert!(truth("'hello' NOT LIKE 'hell\\%' AND 'hello' LIKE 'h%o'"));
    assert!(truth("2 BETWEEN 1 AND 3"));
    assert!(!truth("0 BETWEEN 1 AND 3"));
    assert!(truth(
        "'2024-07-31'::date BETWEEN '2024-07-01'::date AND '2024-07-31'::date"
    ));
    assert!(truth("1::boolean"));
    assert!(truth("1 IN (1, 2, 3)"));
    assert!(truth("'test' NOT IN ('hello', 'world')"));
    assert!(!truth("'test' IN ('hello', NULL)"));
    assert!(!truth("NOT ('test' IN ('hello', NULL))"));
    assert!(truth("null IS NULL"));
    assert!(truth("false IS NOT NULL"));
    assert!(truth("(1 = NULL) IS NULL"));
    assert!(truth("'true' IS TRUE"));
    assert!(truth("false IS NOT TRUE"));
    assert!(truth("null IS NOT FALSE"));
    assert!(!truth("null IS FALSE"));
}

#[test]
fn row_evaluation_follows_postgres_semantics() {
    assert!(eval_row("id = 5", &[("id", Some("5"))]));
    assert!(!eval_row("id = 5", &[("id", None)]));
    assert!(eval_row("(NOT (id = 5)) IS FALSE", &[("id", Some("5"))]));
    assert!(eval_row("i4 > 3000000000 OR i4 < 0", &[("i4", Some("-1"))]));
    assert!(eval_row("n = 1.5", &[("n", Some("1.500"))]));
    assert!(eval_row(
        "n > 'NaN'::numeric IS FALSE",
        &[("n", Some("NaN"))]
    ));
    assert!(eval_row("n = 'NaN'", &[("n", Some("NaN"))]));
    assert!(eval_row("f = 'NaN' AND f > 1e308", &[("f", Some("NaN"))]));
    assert!(eval_row("f = 0", &[("f", Some("-0"))]));
    assert!(eval_row("done", &[("done", Some("t"))]));
    assert!(!eval_row("done", &[("done", Some("f"))]));
    assert!(eval_row("done IS NOT TRUE", &[("done", None)]));
    assert!(eval_row("title ILIKE 'É%'", &[("title", Some("école"))]));
    assert!(eval_row("title LIKE '_cole'", &[("title", Some("école"))]));
    assert!(eval_row("title > 'Z'", &[("title", Some("a"))]));
    assert!(eval_row("c = 'ab'", &[("c", Some("ab   "))]));
    assert!(eval_row("c::text = 'ab'", &[("c", Some("ab   "))]));
    assert!(eval_row(
        "d < ts",
        &[
            ("d", Some("2024-01-01")),
            ("ts", Some("2024-01-01 00:00:00.000001+00"))
        ]
    ));
    assert!(eval_row(
        "d > '-infinity' AND d < 'infinity'",
        &[("d", Some("0044-03-15 BC"))]
    ));
    assert!(eval_row(
        "u = '{A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11}'",
        &[("u", Some("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"))]
    ));
    assert!(eval_row("mood = 'happy'", &[("mood", Some("happy"))]));
    assert!(eval_row("j IS NOT NULL", &[("j", Some("{}"))]));
    // A value that cannot be cast makes the row not match rather than failing.
    assert!(!eval_row("title::int4 = 1", &[("title", Some("x"))]));
    assert!(eval_row("title::int4 = 1", &[("title", Some(" 1"))]));
}

#[test]
fn arithmetic_has_postgres_result_types_and_errors() {
    assert_eq!(sql("id + 1 = 2"), "((\"id\" + '1'::int4) = '2'::int8)");
    assert_eq!(sql("i4 + '1' > 0"), "((\"i4\" + '1'::int4) > '0'::int4)");
    assert_eq!(sql("-i4 < 0"), "((- \"i4\") < '0'::int4)");
    assert_eq!(sql("f * 2 > 1"), "((\"f\" * '2'::float8) > '1'::float8)");
    assert!(truth("7 / 2 = 3") && truth("-7 / 2 = -3") && truth("-7 % 3 = -1"));
    assert!(truth("2 ^ 10 = 1024") && truth("|/ 16 = 4") && truth("@ -5 = 5"));
    assert!(truth("(5 & 3) = 1") && truth("(5 | 3) = 7") && truth("(5 # 3) = 6"));
    assert!(truth("(1 << 4) = 16") && truth("(-16 >> 2) = -4") && truth("~0 = -1"));
    // Overflow and division by zero are evaluation errors: the row is not in the shape.
    assert!(!eval_row("i4 + 1 > 0", &[("i4", Some("2147483647"))]));
    assert!(eval_row("i4 + 1 > 0", &[("i4", Some("2147483646"))]));
    assert!(eval_row("id + 1 > 0", &[("id", Some("2147483647"))]));
    assert!(!eval_row(
        "id * id > 0",
        &[("id", Some("9223372036854775807"))]
    ));
    assert!(!eval_row("NOT (10 / i4 > 0)", &[("i4", Some("0"))]));
    assert!(!eval_row("-i4 > 0", &[("i4", Some("-2147483648"))]));
    assert!(!eval_row("f * f > 0", &[("f", Some("1e300"))]));
    assert!(!eval_row("f / 0 > 0", &[("f", Some("1"))]));
    assert!(!eval_row("(i4 + 1) IS NULL", &[("i4", Some("2147483647"))]));
    assert!(eval_row("(i4 + 1) IS NULL", &[("i4", None)]));
    assert_eq!(
        err("title + 1 > 0"),
        "At location 6: Could not select an operator overload"
    );
    assert_eq!(
        err("'1' + '1' > 0"),
        "At location 4: Could not select an operator overload"
    );
}

#[test]
fn text_concatenation_and_functions() {
    assert_eq!(
        sql("title || 'x' = 'ax'"),
        "((\"title\" || 'x'::text) = 'ax'::text)"
    );
    assert!(eval_row(
        "title || i4 = 'a5'",
        &[("title", Some("a")), ("i4", Some("5"))]
    ));
    assert!(eval_row("done || '!' = 'true!'", &[("done", Some("t"))]));
    assert!(!eval_row("(title || 'x') IS NOT NULL", &[("title", None)]));
    assert!(eval_row("c || '|' = 'ab|'", &[("c", Some("ab  "))]));
    assert_eq!(
        err("i4 || 1 = 'x'"),
        "At location 3: Could not select an operator overload"
    );
    assert!(eval_row(
        "lower(title) = 'école'",
        &[("title", Some("ÉCOLE"))]
    ));
    assert!(eval_row(
        "upper(title) = 'ÉCOLE'",
        &[("title", Some("école"))]
    ));
    assert!(eval_row("length(title) = 5", &[("title", Some("école"))]));
    assert!(eval_row(
        "octet_length(title) = 6",
        &[("title", Some("école"))]
    ));
    assert!(eval_row(
        "starts_with(title, 'éc')",
        &[("title", Some("école"))]
    ));
    assert!(eval_row(
        "concat(title, NULL, done, 1) = 'xt1'",
        &[("title", Some("x")), ("done", Some("t"))]
    ));
    assert!(eval_row("coalesce(i4, id, 0) = 9", &[("id", Some("9"))]));
    assert!(eval_row("greatest(i4, id, 3) = 3", &[("id", Some("1"))]));
    assert!(eval_row("least(i4, id) IS NULL", &[]));
    assert_eq!(
        sql("coalesce(done, false)"),
        "COALESCE(\"done\", 'false'::bool)"
    );
    assert_eq!(
        err("lower(i4) = 'x'"),
        "At location 0: Could not select an operator overload"
    );
    assert_eq!(
        err("greatest(mood, 'a') = 'a'"),
        "At location 0: Could not select an operator overload"
    );
}

#[test]
fn arrays_parse_postgres_text_form() {
    use super::array::{parse as parse_array, to_text_form};
    let text = Type::Text;
    let a = parse_array(&text, r#"{1,"a b",NULL,"NULL","q\"x\\",  sp ace  ,\ lead}"#).unwrap();
    let shown: Vec<Option<String>> = a
        .elems
        .iter()
        .map(|d| match d {
            datum::Datum::Text(t) => Some(t.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(
        shown,
        vec![
            Some("1".into()),
            Some("a b".into()),
            None,
            Some("NULL".into()),
            Some("q\"x\\".into()),
            Some("sp ace".into()),
            Some(" lead".into()),
        ]
    );
    assert_eq!(
        to_text_form(&a, &text),
        r#"{1,"a b",NULL,"NULL","q\"x\\","sp ace"," lead"}"#
    );
    let m = parse_array(&Type::Int4, "{{1,2},{3,4}}").unwrap();
    assert_eq!(m.dims, vec![(1, 2), (1, 2)]);
    assert_eq!(to_text_form(&m, &Type::Int4), "{{1,2},{3,4}}");
    let b = parse_array(&Type::Int4, "[0:1]={5,6}").unwrap();
    assert_eq!(to_text_form(&b, &Type::Int4), "[0:1]={5,6}");
    assert!(parse_array(&Type::Int4, "{}").unwrap().elems.is_empty());
    for bad in [
        "{1,2",
        "{{1},2}",
        "{{1,2},{3}}",
        "1,2",
        "{1}x",
        "{,}",
        "{\"a}",
        "{a",
        "{{{{{{{1}}}}}}}",
    ] {
        assert!(parse_array(&Type::Int4, bad).is_err(), "{bad}");
    }
    assert!(parse_array(&Type::Int4, "{1,x}").is_err());
}

#[test]
fn array_operators_and_subscripts() {
    let row = |tags: Option<&'static str>| vec![("tags", tags), ("id", Some("2"))];
    assert_eq!(
        sql("id = ANY($1)".replace("$1", "'{1,2}'").as_str()),
        "(\"id\" = ANY ('{1,2}'::int8[]))"
    );
    let params = vec!["{1,2,3}".to_string()];
    let p = parse("id = ANY($1)", &params, &table()).unwrap();
    assert_eq!(p.to_sql(), "(\"id\" = ANY ('{1,2,3}'::int8[]))");
    assert!(eval_row("id = ANY('{1,2}')", &row(None)));
    assert!(!eval_row("id = ANY('{}')", &row(None)));
    assert!(eval_row("id <> ALL('{}')", &row(None)));
    assert!(!eval_row("(id = ANY('{1,NULL}')) IS NOT NULL", &row(None)));
    assert!(eval_row("id > ALL(ARRAY[1, 0])", &row(None)));
    assert!(eval_row("'b' = ANY(tags)", &row(Some("{a,b}"))));
    assert!(eval_row("tags @> '{a}'", &row(Some("{a,b}"))));
    assert!(!eval_row("tags @> '{NULL}'", &row(Some("{a,NULL}"))));
    assert!(eval_row(
        "tags <@ ARRAY['a', 'b', 'c']",
        &row(Some("{a,b}"))
    ));
    assert!(eval_row("tags && '{x,b}'", &row(Some("{a,b}"))));
    assert!(eval_row("tags[2] = 'b'", &row(Some("{a,b}"))));
    assert!(eval_row("tags[3] IS NULL", &row(Some("{a,b}"))));
    assert!(eval_row("tags[1] IS NULL", &row(Some("{{a,b}}"))));
    assert!(eval_row("tags[1][2] = 'b'", &row(Some("{{a,b}}"))));
    assert!(eval_row("tags[0] = 'x'", &row(Some("[0:1]={x,y}"))));
    assert!(eval_row("array_length(tags, 1) = 2", &row(Some("{a,b}"))));
    assert!(eval_row("array_length(tags, 1) IS NULL", &row(Some("{}"))));
    assert!(eval_row(
        "cardinality(tags) = 4",
        &row(Some("{{a,b},{c,d}}"))
    ));
    assert!(eval_row(
        "array_ndims(tags) = 2",
        &row(Some("{{a,b},{c,d}}"))
    ));
    assert!(eval_row("tags = '{a,NULL}'", &row(Some("{a,NULL}"))));
    assert!(eval_row("tags <> '[0:1]={a,b}'", &row(Some("{a,b}"))));
    assert!(eval_row("tags = ARRAY['a', 'b']", &row(Some("{a,b}"))));
    assert_eq!(sql("tags = '{a}'"), "(\"tags\" = '{a}'::text[])");
    assert_eq!(sql("tags[1] = 'a'"), "((\"tags\")['1'::int4] = 'a'::text)");
    assert_eq!(
        err("id = ANY(title)"),
        "At location 3: op ANY (array) requires array on right side"
    );
    assert_eq!(
        err("tags @> ARRAY[1]"),
        "At location 5: Could not select an operator overload"
    );
}

#[test]
fn constants_are_folded_as_the_planner_does() {
    // A constant error fails planning in Postgres, so the clause is rejected.
    assert!(err("i4 > 1 / 0").contains("constant subexpression raised an error"));
    assert!(err("i4 > 2147483647 + 1").contains("constant subexpression raised an error"));
    // A constant deciding arm wins wherever it is, so erroring rows still match.
    assert_eq!(sql("10 / i4 > 1 OR 1 < 2"), "'true'::bool");
    assert!(eval_row("10 / i4 > 1 OR 1 < 2", &[("i4", Some("0"))]));
    assert_eq!(sql("i4 > 1 AND 1 = 1"), "(\"i4\" > '1'::int4)");
    // A strict operator with a constant NULL is NULL without evaluating the other side.
    assert!(eval_row(
        "(NULL + (i4 + 1)) IS NULL",
        &[("i4", Some("2147483647"))]
    ));
    assert_eq!(sql("coalesce(NULL, 2, i4) = 2"), "'true'::bool");
}

/// Evaluates a clause, and its rendering parsed again, over one row: both must agree.
fn eval_both(clause: &str, values: &[(&str, Option<&str>)]) -> bool {
    let first = eval_row(clause, values);
    assert_eq!(
        eval_row(&sql(clause), values),
        first,
        "{clause} vs {}",
        sql(clause)
    );
    first
}

#[test]
fn folded_integer_constants_get_their_operator_width() {
    // Found by the `where_clause` fuzz target: a folded constant kept its own (narrower) type
    // where lowering widens literals, so `to_sql` was no fixed point (`'0'::int4` parses back
    // as int8) and a folded COALESCE changed the type of the arithmetic around it.
    for clause in [
        "id > 1 - 1",
        "id IS DISTINCT FROM 2 * 3",
        "i4 IN (1 - 1, 5000000000)",
        "id = ANY ('{1,2}'::int8[]) AND 1 - 1 = ANY (ARRAY[id])",
        "GREATEST(1 - 1, id) > 0 AND ARRAY[1 - 1, id] = '{0,1}'",
        "i4 + COALESCE(2000000000 + 0, id) > 0",
        // A COALESCE that keeps a column keeps its folded constants too: they are retyped.
        "COALESCE(id, +0) IN (1, 2, 3)",
        "COALESCE(id, 0 + 2) + 9 <> 0",
    ] {
        let rendered = sql(clause);
        assert_eq!(sql(&rendered), rendered, "{clause}");
    }
    assert_eq!(sql("id > 1 - 1"), "(\"id\" > '0'::int8)");
    assert_eq!(
        sql("COALESCE(id, +0) = 1"),
        "(COALESCE(\"id\", '0'::int8) = '1'::int8)"
    );
    // COALESCE(int4, int8) is int8: `i4 + <it>` adds in int8 and does not overflow.
    assert!(eval_both(
        "i4 + COALESCE(2000000000 + 0, id) > 0",
        &[("i4", Some("2000000000"))]
    ));
}

#[test]
fn numeric_arithmetic_is_exact() {
    assert_eq!(
        sql("i4 * 1.5 > 3"),
        "((\"i4\" * '1.5'::numeric) > '3'::numeric)"
    );
    assert!(eval_row("i4 * 1.5 = 4.5", &[("i4", Some("3"))]));
    assert!(eval_row(
        "(n / 3)::text = '0.33333333333333333333'",
        &[("n", Some("1"))]
    ));
    assert!(eval_row("(n - 0.10)::text = '1.40'", &[("n", Some("1.5"))]));
    assert!(eval_row("(-n)::text = '-1.5'", &[("n", Some("1.5"))]));
    assert!(!eval_row("n / 0 > 0", &[("n", Some("1.5"))]));
    assert!(eval_row("n % 2 = -1.5", &[("n", Some("-7.5"))]));
    assert!(eval_row(
        "f + n > 1",
        &[("n", Some("1")), ("f", Some("0.5"))]
    ));
    assert_eq!(
        err("n ^ 2 > 1"),
        "At location 2: Could not select an operator overload"
    );
}

#[test]
fn date_arithmetic_counts_days() {
    assert!(eval_row(
        "d + 1 = '2024-03-01'",
        &[("d", Some("2024-02-29"))]
    ));
    assert!(eval_row(
        "d - 366 = '2023-02-28'",
        &[("d", Some("2024-02-29"))]
    ));
    assert!(eval_row(
        "d - '2024-01-01' = 59",
        &[("d", Some("2024-02-29"))]
    ));
    assert!(eval_row("d + 1 = 'infinity'", &[("d", Some("infinity"))]));
    assert!(!eval_row(
        "d - '2024-01-01' > 0",
        &[("d", Some("infinity"))]
    ));
    assert!(!eval_row(
        "d + i4 > '2000-01-01'",
        &[("d", Some("2024-01-01")), ("i4", Some("2147483647"))]
    ));
    assert_eq!(
        err("d + id > '2000-01-01'"),
        "At location 2: Could not select an operator overload"
    );
    assert_eq!(
        err("d + '1' > '2000-01-01'"),
        "At location 2: Could not select an operator overload"
    );
}

mod properties {
    use super::super::array::{parse as parse_array, to_text_form};
    use super::super::numeric_arith::{binary, NumOp};
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Arbitrary input never panics, and whatever parses prints in a form that parses
        /// back to the same array.
        #[test]
        fn array_input_round_trips(text in "[{}\",\\\\ aN1UL:\\[\\]=-]{0,24}") {
            if let Ok(array) = parse_array(&Type::Text, &text) {
                let printed = to_text_form(&array, &Type::Text);
                let again = parse_array(&Type::Text, &printed).expect("output parses");
                prop_assert_eq!(again, array);
            }
        }

        /// Numeric `+`/`-` agree with i128 arithmetic on scaled integers.
        #[test]
        fn numeric_add_matches_integers(a in -10_000_000i64..10_000_000, b in -10_000_000i64..10_000_000) {
            let text = |v: i64| {
                let sign = if v < 0 { "-" } else { "" };
                format!("{sign}{}.{:02}", v.unsigned_abs() / 100, v.unsigned_abs() % 100)
            };
            prop_assert_eq!(binary(NumOp::Add, &text(a), &text(b)).unwrap(), text(a + b));
            prop_assert_eq!(binary(NumOp::Sub, &text(a), &text(b)).unwrap(), text(a - b));
        }
    }
}

#[test]
fn intervals_compare_and_combine_with_dates_and_timestamps() {
    assert!(truth("'1 mon'::interval = '30 days'"));
    assert!(truth("'1 day'::interval < '25 hours'"));
    assert!(truth(
        "'2024-01-31'::date + '1 mon'::interval = '2024-02-29'"
    ));
    assert!(truth(
        "'2024-03-31'::timestamptz - '1 mon'::interval = '2024-02-29'"
    ));
    assert!(truth("'2024-01-01'::timestamp + '1 day' = '2024-01-02'"));
    assert!(truth(
        "('2024-01-01'::date - '2023-01-01 10:00'::timestamp)::text = '364 days 14:00:00'"
    ));
    assert!(truth("('1 day'::interval * 1.5)::text = '1 day 12:00:00'"));
    assert!(truth(
        "('1 mon'::interval / 7)::text = '4 days 06:51:25.6896'"
    ));
    assert!(truth(
        "(-'1 year 2 mons'::interval)::text = '-1 years -2 mons'"
    ));
    assert!(eval_row("iv > '1 day'", &[("iv", Some("1 mon"))]));
    assert!(!eval_row(
        "ts + iv > ts",
        &[
            ("ts", Some("294276-12-31 00:00:00+00")),
            ("iv", Some("1 day"))
        ]
    ));
    assert_eq!(
        sql("ts + iv > '1 day'::interval + d"),
        r#"(("ts" + "iv") > ('1 day'::interval + "d"))"#
    );
    assert!(err("iv < 5").contains("Could not select an operator overload"));
    assert!(err("d + '1 day'").contains("Could not select an operator overload"));
    assert!(err("iv = '1 fortnight'").contains("invalid input syntax for type interval"));
    assert!(err("+iv > iv").contains("Could not select an operator overload"));
    // Overflow while folding constants rejects the clause.
    assert!(err("'2147483647 days'::interval * 2 > iv").contains("constant subexpression"));
}
