//! The reference's worked examples (`electric-subqueries.md` §4, §5.2–5.3).

use super::dnf::{BoolExpr, Dnf, DnfError, Position, MAX_DISJUNCTS};
use super::tags::{removed_tags, row_tags, value_hash, Slot, DEFAULT_STACK_ID};

fn lit(name: &'static str) -> BoolExpr<&'static str> {
    BoolExpr::Lit(name)
}
fn and(items: Vec<BoolExpr<&'static str>>) -> BoolExpr<&'static str> {
    BoolExpr::And(items)
}
fn or(items: Vec<BoolExpr<&'static str>>) -> BoolExpr<&'static str> {
    BoolExpr::Or(items)
}
fn not(e: BoolExpr<&'static str>) -> BoolExpr<&'static str> {
    BoolExpr::Not(Box::new(e))
}

/// Disjuncts as lists of (literal, negated).
fn plan(e: &BoolExpr<&'static str>) -> Vec<Vec<(&'static str, bool)>> {
    let dnf = Dnf::build(e, MAX_DISJUNCTS).expect("plan");
    dnf.disjuncts
        .iter()
        .map(|d| {
            dnf.positions[d.clone()]
                .iter()
                .map(|p| (p.literal, p.negated))
                .collect()
        })
        .collect()
}

#[test]
fn worked_examples_of_the_reference() {
    assert_eq!(plan(&lit("x∈sq")), [vec![("x∈sq", false)]]);
    assert_eq!(
        plan(&and(vec![lit("x∈sq"), lit("open")])),
        [vec![("x∈sq", false), ("open", false)]]
    );
    assert_eq!(
        plan(&or(vec![lit("x∈sq1"), lit("y∈sq2")])),
        [vec![("x∈sq1", false)], vec![("y∈sq2", false)]]
    );
    assert_eq!(
        plan(&or(vec![
            and(vec![lit("x∈sq1"), lit("open")]),
            lit("y∈sq2")
        ])),
        [
            vec![("x∈sq1", false), ("open", false)],
            vec![("y∈sq2", false)]
        ]
    );
    // a=1 AND (x IN sq OR b=2): the left alternatives vary slowest; a=1 gets two positions.
    assert_eq!(
        plan(&and(vec![lit("a=1"), or(vec![lit("x∈sq"), lit("b=2")])])),
        [
            vec![("a=1", false), ("x∈sq", false)],
            vec![("a=1", false), ("b=2", false)]
        ]
    );
    assert_eq!(plan(&not(lit("x∈sq"))), [vec![("x∈sq", true)]]);
    // NOT (x = 7 OR y IN sq): one disjunct, both negated.
    assert_eq!(
        plan(&not(or(vec![lit("x=7"), lit("y∈sq")]))),
        [vec![("x=7", true), ("y∈sq", true)]]
    );
    // Double negation cancels; NOT over AND becomes an OR.
    assert_eq!(plan(&not(not(lit("a")))), [vec![("a", false)]]);
    assert_eq!(
        plan(&not(and(vec![lit("a"), lit("b")]))),
        [vec![("a", true)], vec![("b", true)]]
    );
    // (A OR B) AND (C OR D): A's alternatives slowest.
    assert_eq!(
        plan(&and(vec![
            or(vec![lit("A"), lit("B")]),
            or(vec![lit("C"), lit("D")])
        ])),
        [
            vec![("A", false), ("C", false)],
            vec![("A", false), ("D", false)],
            vec![("B", false), ("C", false)],
            vec![("B", false), ("D", false)]
        ]
    );
}

#[test]
fn positions_are_numbered_disjunct_by_disjunct() {
    let e = and(vec![lit("a=1"), or(vec![lit("x∈sq"), lit("b=2")])]);
    let dnf = Dnf::build(&e, MAX_DISJUNCTS).expect("plan");
    assert_eq!(dnf.disjuncts, [0..2, 2..4]);
    assert_eq!(
        dnf.positions[1],
        Position {
            literal: "x∈sq",
            negated: false
        }
    );
    assert!(dnf.holds(&[true, false, true, true]));
    assert!(!dnf.holds(&[true, false, true, false]));
}

#[test]
fn more_than_a_hundred_disjuncts_is_refused_without_building_them() {
    // (a1 OR b1) AND … AND (a7 OR b7): 128 disjuncts.
    let e = and((0..7).map(|_| or(vec![lit("a"), lit("b")])).collect());
    assert_eq!(
        Dnf::build(&e, MAX_DISJUNCTS),
        Err(DnfError::TooComplex {
            count: 128,
            limit: 100
        })
    );
    assert_eq!(
        DnfError::TooComplex {
            count: 128,
            limit: 100
        }
        .to_string(),
        "WHERE clause too complex for DNF decomposition (128 disjuncts exceeds limit of 100)"
    );
    // 2^64 would overflow: counted saturating, still refused at once.
    let huge = and((0..70).map(|_| or(vec![lit("a"), lit("b")])).collect());
    assert!(matches!(
        Dnf::build(&huge, MAX_DISJUNCTS),
        Err(DnfError::TooComplex {
            count: u64::MAX,
            ..
        })
    ));
    let six = and((0..6).map(|_| or(vec![lit("a"), lit("b")])).collect());
    assert_eq!(
        Dnf::build(&six, MAX_DISJUNCTS).expect("64").disjuncts.len(),
        64
    );
}

#[test]
fn slot_hashes_follow_the_formula() {
    use md5::{Digest, Md5};
    let md5 = |s: &str| {
        Md5::digest(s.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let h = "12345-1700000000000000";
    assert_eq!(
        value_hash(DEFAULT_STACK_ID, h, Slot::Value(Some("1"))),
        md5(&format!("single_stack{h}v:1"))
    );
    assert_eq!(
        value_hash(DEFAULT_STACK_ID, h, Slot::Value(None)),
        md5(&format!("single_stack{h}NULL"))
    );
    // A NULL and the text "NULL" differ.
    assert_ne!(
        value_hash(DEFAULT_STACK_ID, h, Slot::Value(None)),
        value_hash(DEFAULT_STACK_ID, h, Slot::Value(Some("NULL")))
    );
    assert_eq!(
        value_hash(
            DEFAULT_STACK_ID,
            h,
            Slot::Values(&[("user_id", Some("2")), ("team_id", Some("2"))])
        ),
        md5(&format!("single_stack{h}user_id:v:2team_id:v:2"))
    );
    assert_eq!(value_hash(DEFAULT_STACK_ID, h, Slot::Row), "1");
    // Fixed vectors (Python's hashlib), independent of the crate used above.
    assert_eq!(
        value_hash(DEFAULT_STACK_ID, h, Slot::Value(Some("1"))),
        "abb41d905fb23bd4578ee800af62b01a"
    );
    assert_eq!(
        value_hash(
            DEFAULT_STACK_ID,
            h,
            Slot::Values(&[("user_id", Some("2")), ("team_id", None)])
        ),
        "b93f8e612a880ca1c3569f84abeba454"
    );
    assert_eq!(value_hash("s", "h", Slot::Value(Some("x"))).len(), 32);
}

#[test]
fn tags_have_one_slot_per_position_in_each_disjunct() {
    // (x IN sq1 AND status='open') OR y IN sq2 → ["h(x)/1/", "//h(y)"].
    let e = or(vec![and(vec![lit("x∈sq1"), lit("open")]), lit("y∈sq2")]);
    let dnf = Dnf::build(&e, MAX_DISJUNCTS).expect("plan");
    let tags = row_tags(dnf.positions.len(), &dnf.disjuncts, |p| {
        match dnf.positions[p].literal {
            "x∈sq1" => "hx".to_string(),
            "y∈sq2" => "hy".to_string(),
            _ => "1".to_string(),
        }
    });
    assert_eq!(tags, ["hx/1/", "//hy"]);
    // a=1 AND (x IN sq OR b=2) → ["1/h(x)//", "//1/1"].
    let e = and(vec![lit("a=1"), or(vec![lit("x∈sq"), lit("b=2")])]);
    let dnf = Dnf::build(&e, MAX_DISJUNCTS).expect("plan");
    let tags = row_tags(dnf.positions.len(), &dnf.disjuncts, |p| {
        if dnf.positions[p].literal == "x∈sq" {
            "hx".to_string()
        } else {
            "1".to_string()
        }
    });
    assert_eq!(tags, ["1/hx//", "//1/1"]);
    let old = vec!["a".to_string(), "b".to_string()];
    let new = vec!["b".to_string(), "c".to_string()];
    assert_eq!(removed_tags(&old, &new), ["a"]);
    assert!(removed_tags(&new, &new).is_empty());
}
