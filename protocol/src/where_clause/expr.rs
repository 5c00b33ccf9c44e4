//! The typed expression tree a WHERE clause compiles to.
//!
//! Every node knows its result type; operands of comparisons have already been coerced to a
//! common type (with [`Expr::Cast`] nodes marked implicit), so evaluation never resolves types.
//! New operators and functions are added as new variants (or a future `Func` variant) without
//! touching the existing ones.

use super::arith::{ArithOp, UnaryOp};
use super::datum::Datum;
use super::func::Func;
use super::types::Type;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    pub(crate) fn from_sql(op: &str) -> Option<CmpOp> {
        Some(match op {
            "=" => CmpOp::Eq,
            "<>" | "!=" => CmpOp::Ne,
            "<" => CmpOp::Lt,
            "<=" => CmpOp::Le,
            ">" => CmpOp::Gt,
            ">=" => CmpOp::Ge,
            _ => return None,
        })
    }

    pub(crate) fn sql(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "<>",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }

    pub(crate) fn holds(self, ordering: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::{Equal, Greater, Less};
        match self {
            CmpOp::Eq => ordering == Equal,
            CmpOp::Ne => ordering != Equal,
            CmpOp::Lt => ordering == Less,
            CmpOp::Le => ordering != Greater,
            CmpOp::Gt => ordering == Greater,
            CmpOp::Ge => ordering != Less,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ArrayOp {
    /// Same dimensions, bounds and elements (two NULL elements count as equal).
    Eq,
    Ne,
    Contains,
    ContainedBy,
    Overlaps,
}

impl ArrayOp {
    pub(crate) fn from_sql(op: &str) -> Option<ArrayOp> {
        Some(match op {
            "@>" => ArrayOp::Contains,
            "<@" => ArrayOp::ContainedBy,
            "&&" => ArrayOp::Overlaps,
            _ => return None,
        })
    }

    pub(crate) fn sql(self) -> &'static str {
        match self {
            ArrayOp::Eq => "=",
            ArrayOp::Ne => "<>",
            ArrayOp::Contains => "@>",
            ArrayOp::ContainedBy => "<@",
            ArrayOp::Overlaps => "&&",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BoolTest {
    True,
    NotTrue,
    False,
    NotFalse,
    Unknown,
    NotUnknown,
}

impl BoolTest {
    pub(crate) fn sql(self) -> &'static str {
        match self {
            BoolTest::True => "IS TRUE",
            BoolTest::NotTrue => "IS NOT TRUE",
            BoolTest::False => "IS FALSE",
            BoolTest::NotFalse => "IS NOT FALSE",
            BoolTest::Unknown => "IS UNKNOWN",
            BoolTest::NotUnknown => "IS NOT UNKNOWN",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Expr {
    /// A typed constant (literals and `$n` parameters after typing); NULL is `Datum::Null`.
    Const {
        value: Datum<'static>,
        ty: Type,
    },
    /// A column of the row, by index into the column list given to `parse`.
    Column {
        index: usize,
        name: String,
        ty: Type,
    },
    /// A conversion; `implicit` ones were inserted by the type checker and are not rendered.
    Cast {
        arg: Box<Expr>,
        to: Type,
        implicit: bool,
    },
    /// `lhs op rhs`, both operands of type `ty`.
    Compare {
        op: CmpOp,
        ty: Type,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    /// `IS [NOT] DISTINCT FROM`, both operands of type `ty`.
    Distinct {
        negated: bool,
        ty: Type,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    NullTest {
        arg: Box<Expr>,
        negated: bool,
    },
    BoolTest {
        arg: Box<Expr>,
        test: BoolTest,
    },
    /// `[NOT] LIKE` / `[NOT] ILIKE` with backslash escapes; both sides are strings.
    Like {
        arg: Box<Expr>,
        pattern: Box<Expr>,
        negated: bool,
        case_insensitive: bool,
    },
    /// `arg [NOT] IN (items)`: an OR of `=` comparisons; `arg` and every item were coerced to
    /// one common type, as Postgres does for a list of constants.
    In {
        arg: Box<Expr>,
        items: Vec<Expr>,
        negated: bool,
    },
    /// `lhs op rhs` on numbers, of result type `ty`. Integer operands keep their own width
    /// (one representation); float operands were coerced to `ty`; shift counts are int4.
    Arith {
        op: ArithOp,
        ty: Type,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    /// A prefix operator on a number, of result type `ty`.
    Unary {
        op: UnaryOp,
        ty: Type,
        arg: Box<Expr>,
    },
    /// `lhs || rhs` on text (non-text operands were given an implicit cast to text).
    Concat {
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    /// `arg op ANY(array)` / `arg op ALL(array)`: `arg` has the comparison type `ty`; array
    /// elements are converted to `ty` when their type differs.
    AnyAll {
        op: CmpOp,
        all: bool,
        ty: Type,
        arg: Box<Expr>,
        array: Box<Expr>,
    },
    /// `@>`, `<@` or `&&` on two arrays of the same element type.
    ArrayOp {
        op: ArrayOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    /// `arg[i][j]...`, one integer subscript per dimension; `ty` is the element type.
    Subscript {
        arg: Box<Expr>,
        subscripts: Vec<Expr>,
        ty: Type,
    },
    /// `ARRAY[items]`, all of type `elem`.
    ArrayCtor {
        elem: Type,
        items: Vec<Expr>,
    },
    /// A supported function (or COALESCE/GREATEST/LEAST) of result type `ty`.
    Func {
        func: Func,
        ty: Type,
        args: Vec<Expr>,
    },
    /// `lhs IN (SELECT …)`: membership of the row's left-side value(s) in dependency `dep`
    /// of the predicate (`Predicate::subqueries`). Only evaluated through a subquery plan,
    /// which looks the values up in the dependency's materialized view.
    Sublink {
        dep: usize,
        lhs: Vec<SublinkColumn>,
        /// `SELECT "c" FROM "s"."t" [WHERE …]`, canonical.
        select_sql: String,
    },
}

/// One column on the left of `… IN (SELECT …)`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SublinkColumn {
    pub(crate) index: usize,
    pub(crate) name: String,
    pub(crate) ty: Type,
}

impl Expr {
    pub(crate) fn ty(&self) -> Type {
        match self {
            Expr::Const { ty, .. } | Expr::Column { ty, .. } => ty.clone(),
            Expr::Cast { to, .. } => to.clone(),
            Expr::Arith { ty, .. } | Expr::Unary { ty, .. } | Expr::Func { ty, .. } => ty.clone(),
            Expr::Concat { .. } => Type::Text,
            Expr::Subscript { ty, .. } => ty.clone(),
            Expr::ArrayCtor { elem, .. } => Type::Array(Box::new(elem.clone())),
            _ => Type::Bool,
        }
    }

    /// Calls `visit` on every column reference (a membership's left side included).
    pub(crate) fn for_each_column(&self, visit: &mut dyn FnMut(usize)) {
        self.visit(&mut |e| match e {
            Expr::Column { index, .. } => visit(*index),
            Expr::Sublink { lhs, .. } => lhs.iter().for_each(|c| visit(c.index)),
            _ => {}
        });
    }

    /// Calls `visit` on this node and every node below it.
    pub(crate) fn visit(&self, visit: &mut dyn FnMut(&Expr)) {
        visit(self);
        match self {
            Expr::Const { .. } => {}
            Expr::Column { .. } => {}
            Expr::Sublink { .. } => {}
            Expr::Cast { arg, .. }
            | Expr::Not(arg)
            | Expr::NullTest { arg, .. }
            | Expr::BoolTest { arg, .. }
            | Expr::Unary { arg, .. } => arg.visit(visit),
            Expr::Compare { lhs, rhs, .. }
            | Expr::Distinct { lhs, rhs, .. }
            | Expr::Arith { lhs, rhs, .. }
            | Expr::Concat { lhs, rhs }
            | Expr::ArrayOp { lhs, rhs, .. }
            | Expr::AnyAll {
                arg: lhs,
                array: rhs,
                ..
            } => {
                lhs.visit(visit);
                rhs.visit(visit);
            }
            Expr::Like { arg, pattern, .. } => {
                arg.visit(visit);
                pattern.visit(visit);
            }
            Expr::And(items)
            | Expr::Or(items)
            | Expr::Func { args: items, .. }
            | Expr::ArrayCtor { items, .. } => {
                items.iter().for_each(|e| e.visit(visit));
            }
            Expr::Subscript {
                arg,
                subscripts: items,
                ..
            }
            | Expr::In { arg, items, .. } => {
                arg.visit(visit);
                items.iter().for_each(|e| e.visit(visit));
            }
        }
    }
}
