//! Subqueries through the WHERE front end: accepted forms, upstream's errors (§1.2), the plan
//! (§4) and the routing clause.

use crate::where_clause::{parse, parse_with, ColumnType, Literal, Predicate, WhereError};

fn col(name: &str, type_name: &str) -> ColumnType {
    ColumnType {
        name: name.into(),
        type_name: type_name.into(),
        is_array: false,
        is_enum: false,
    }
}

fn outer() -> Vec<ColumnType> {
    vec![
        col("id", "int4"),
        col("parent_id", "int4"),
        col("status", "text"),
        col("name", "text"),
        col("big", "int8"),
    ]
}

fn tables(schema: &str, name: &str) -> Option<Vec<ColumnType>> {
    match (schema, name) {
        ("public", "parent") => Some(vec![
            col("id", "int4"),
            col("value", "int4"),
            col("active", "bool"),
        ]),
        ("public", "members") => Some(vec![col("user_id", "int4"), col("team_id", "int4")]),
        ("s", "T") => Some(vec![col("Id", "int4")]),
        _ => None,
    }
}

fn ok(clause: &str, params: &[&str]) -> Predicate {
    let params: Vec<String> = params.iter().map(|p| p.to_string()).collect();
    parse_with(clause, &params, &outer(), Some(&tables)).unwrap_or_else(|e| panic!("{clause}: {e}"))
}

fn err(clause: &str) -> (String, String) {
    match parse_with(clause, &[], &outer(), Some(&tables)).and_then(|p| p.plan().map(|_| p)) {
        Ok(p) => panic!("{clause} parsed as {}", p.to_sql()),
        Err(e) => (e.field().to_string(), e.to_string()),
    }
}

#[test]
fn accepted_forms_render_canonically_and_share_identical_subqueries() {
    let p = ok(
        "parent_id IN (SELECT id FROM parent WHERE value = $1) AND status = $2",
        &["1", "open"],
    );
    assert_eq!(
        p.to_sql(),
        r#"(("parent_id" IN (SELECT "id" FROM "public"."parent" WHERE ("value" = '1'::int4))) AND ("status" = 'open'::text))"#
    );
    assert_eq!(p.subqueries().len(), 1);
    assert_eq!(p.subqueries()[0].columns, vec![0]);
    let p = ok(
        "parent_id IN (SELECT id FROM parent) OR id IN (SELECT id FROM parent)",
        &[],
    );
    assert_eq!(p.subqueries().len(), 1, "one dependency, two positions");
    let plan = p.plan().unwrap();
    assert_eq!(plan.dep_positions, vec![vec![0, 1]]);
    let p = ok(
        "(id, parent_id) IN (SELECT team_id, user_id FROM members)",
        &[],
    );
    assert_eq!(p.subqueries()[0].columns, vec![1, 0], "paired positionally");
    let p = ok(r#"id IN (SELECT "Id" FROM s."T" AS alias)"#, &[]);
    assert!(p.to_sql().contains(r#"FROM "s"."T""#), "{}", p.to_sql());
    let p = ok("NOT parent_id IN (SELECT id FROM parent)", &[]);
    assert_eq!(p.plan().unwrap().dep_negated, vec![true]);
    let p = ok("parent_id NOT IN (SELECT id FROM parent)", &[]);
    assert_eq!(p.plan().unwrap().dep_negated, vec![true]);
}

#[test]
fn rejections_carry_upstreams_field_and_message() {
    assert_eq!(
        err("parent_id IN (SELECT id FROM parent) OR NOT id IN (SELECT id FROM parent)"),
        ("where".into(), "a subquery dependency cannot be used with both positive and negative polarity in the same filter".into())
    );
    assert_eq!(
        err("EXISTS (SELECT id FROM parent)"),
        (
            "where".into(),
            "At location 0: only `value IN (SELECT ...)` sublinks are supported right now".into()
        )
    );
    assert_eq!(
        err("id = ANY (SELECT id FROM parent)").1,
        "At location 3: only `value IN (SELECT ...)` sublinks are supported right now"
    );
    assert_eq!(
        err("lower(name) IN (SELECT id FROM parent)").1,
        "At location 12: currently, left side of `IN (SELECT ...)` can only be a column reference or a list of column references"
    );
    assert_eq!(
        err("big IN (SELECT id FROM parent)").1,
        "At location 4: left side of `IN (SELECT ...)` has type int8 but subquery returns int4[]"
    );
    assert_eq!(
        err("(id, name) IN (SELECT user_id, team_id FROM members)").1,
        "At location 11: left side of `IN (SELECT ...)` has type row of (int4, text) but subquery returns row of (int4, int4)[]"
    );
    assert_eq!(
        err("id IN (SELECT id FROM parent LIMIT 1)").1,
        "SELECT statement must not contain any clauses"
    );
    assert_eq!(
        err("id IN (SELECT DISTINCT id FROM parent)").1,
        "SELECT statement must not contain any clauses"
    );
    assert_eq!(
        err("id IN (SELECT p.id FROM parent p JOIN members m ON true)").1,
        "Expected a single table reference"
    );
    assert_eq!(
        err("id IN (SELECT id FROM parent UNION SELECT id FROM parent)").1,
        "Expected a single table reference"
    );
    // Upstream's location here counts the `SELECT 1 WHERE ` wrapper (15 bytes).
    assert_eq!(
        err("id IN (SELECT 1 FROM parent)").1,
        "At location 29: Expected a plain column reference"
    );
    assert_eq!(
        err("id IN (SELECT id FROM parent WHERE status = 'x')").1,
        "At location 35: unknown reference status"
    );
    assert_eq!(
        err("id IN (SELECT id FROM unknown_table)"),
        ("table".into(), r#"Table "public"."unknown_table" does not exist. If the table name contains capitals or special characters you must quote it."#.into())
    );
    assert_eq!(
        err("id IN (SELECT nope FROM parent)"),
        (
            "columns".into(),
            "The following columns are not found on the table: nope".into()
        )
    );
    assert!(err("(id IN (SELECT id FROM parent)) IS TRUE")
        .1
        .contains("not inside another expression"));
    let many: Vec<String> = (0..11).map(|i| format!("status = '{i}'")).collect();
    let more: Vec<String> = (0..10).map(|i| format!("name = '{i}'")).collect();
    let clause = format!(
        "({}) AND ({}) AND id IN (SELECT id FROM parent)",
        many.join(" OR "),
        more.join(" OR ")
    );
    assert_eq!(
        err(&clause).1,
        "WHERE clause too complex for DNF decomposition (110 disjuncts exceeds limit of 100)"
    );
    // Without a table lookup (subsets), subqueries stay unsupported.
    assert_eq!(
        parse("id IN (SELECT id FROM parent)", &[], &outer()).unwrap_err(),
        WhereError::Invalid {
            location: 3,
            message: "subqueries are not supported".into()
        }
    );
}

#[test]
fn params_are_shared_with_the_subquery_and_must_all_be_used() {
    let p = ok(
        "id IN (SELECT id FROM parent WHERE value >= $2) AND big >= $1",
        &["10", "6"],
    );
    assert!(
        p.to_sql().contains(r#"("value" >= '6'::int4)"#),
        "{}",
        p.to_sql()
    );
    let params = vec!["1".to_string(), "2".to_string()];
    let e = parse_with(
        "id IN (SELECT id FROM parent WHERE value = $1)",
        &params,
        &outer(),
        Some(&tables),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "At location 0: parameter value for $2 was not used"
    );
}

#[test]
fn plan_positions_evaluate_with_sql_null_semantics() {
    let p = ok(
        "(parent_id IN (SELECT id FROM parent) AND status = 'open') OR parent_id IS NULL",
        &[],
    );
    let plan = p.plan().unwrap();
    assert_eq!(plan.positions.len(), 3);
    assert_eq!(plan.disjuncts, vec![0..2, 2..3]);
    assert!(matches!(
        plan.positions[0].literal,
        Literal::Member { dep: 0, .. }
    ));
    assert_eq!(
        plan.positions[0].literal.to_sql(),
        r#"("parent_id" IN (SELECT "id" FROM "public"."parent"))"#
    );
    let row = [Some("1"), None, Some("open"), None, None];
    let get = |i: usize| row[i].map(str::as_bytes);
    let truths: Vec<Option<bool>> = plan
        .positions
        .iter()
        .map(|pos| pos.literal.eval(&get, &mut |_, _| None))
        .collect();
    assert_eq!(truths, vec![None, Some(true), Some(true)]);
    let active: Vec<bool> = plan
        .positions
        .iter()
        .zip(&truths)
        .map(|(p, t)| p.active(*t))
        .collect();
    assert_eq!(active, vec![false, true, true]);
    assert!(plan.includes(&active));
    // NOT of NULL is NULL: a negated position with an unknown literal is not active.
    let p = ok(
        "NOT (status = 'x' OR parent_id IN (SELECT id FROM parent))",
        &[],
    );
    let plan = p.plan().unwrap();
    assert!(plan.positions.iter().all(|p| p.negated));
    assert!(!plan.positions[0].active(None));
    // Routing: memberships relaxed to true.
    let routing = p.routing_superset(&plan).expect("a row condition remains");
    assert_eq!(routing.to_sql(), r#"(NOT ("status" = 'x'::text))"#);
    let p = ok("parent_id IN (SELECT id FROM parent) OR status = 'x'", &[]);
    assert!(
        p.routing_superset(&p.plan().unwrap()).is_none(),
        "the first disjunct is all membership"
    );
}
