//! The subquery plan of a clause (`electric-subqueries.md` §4): its DNF, each position either a
//! row literal (evaluated over the row) or a membership of the row's left-side values in a
//! dependency's view, and upstream's checks on it (one polarity per dependency, at most
//! [`MAX_DISJUNCTS`] disjuncts). Membership literals are whole positions: a subquery inside any
//! other expression (`(x IN (SELECT …)) IS TRUE`) is refused, as upstream cannot move it either.
//!
//! One NULL semantics, SQL's, everywhere: a position is true when its literal is TRUE (FALSE
//! for a negated one), so NULL counts as false on both sides of a negation, and a row is in the
//! shape exactly when the clause is TRUE (Kleene logic keeps De Morgan and distribution).

use super::coerce::invalid;
use super::datum::Datum;
use super::error::WhereError;
use super::expr::Expr;
use super::{eval, Predicate, Subquery};
use crate::subquery::dnf::{BoolExpr, Dnf, MAX_DISJUNCTS};

/// What a position tests.
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    /// An ordinary condition on the row.
    Row(Predicate),
    /// `columns IN (SELECT …)` of dependency `dep`: `columns` index the outer table, `names`
    /// are their names (a row membership's tag hashes them).
    Member {
        dep: usize,
        columns: Vec<usize>,
        names: Vec<String>,
        /// `("a", "b") IN (SELECT …)`.
        sql: String,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct PlanPosition {
    pub literal: Literal,
    pub negated: bool,
}

/// A clause with subqueries, decomposed.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub positions: Vec<PlanPosition>,
    pub disjuncts: Vec<std::ops::Range<usize>>,
    /// Whether each dependency is used negated (`NOT IN`); one polarity per dependency.
    pub dep_negated: Vec<bool>,
    /// The positions of each dependency, ascending.
    pub dep_positions: Vec<Vec<usize>>,
}

impl Literal {
    /// The literal's truth over a row: `Some(true/false)`, `None` for NULL or an evaluation
    /// error. `member` answers memberships (`Some` true/false, `None` for SQL's NULL).
    pub fn eval<'r>(
        &self,
        row: &(dyn Fn(usize) -> Option<&'r [u8]> + 'r),
        member: &mut dyn FnMut(usize, &[usize]) -> Option<bool>,
    ) -> Option<bool> {
        match self {
            Literal::Row(p) => match eval::eval(&p.expr, row) {
                Ok(Datum::Bool(b)) => Some(b),
                _ => None,
            },
            Literal::Member { dep, columns, .. } => member(*dep, columns),
        }
    }

    /// Columns on the left of a membership (0 for a row literal).
    pub fn member_width(&self) -> usize {
        match self {
            Literal::Row(_) => 0,
            Literal::Member { columns, .. } => columns.len(),
        }
    }

    /// The literal as SQL (canonical, as in the clause).
    pub fn to_sql(&self) -> String {
        match self {
            Literal::Row(p) => p.to_sql(),
            Literal::Member { sql, .. } => sql.clone(),
        }
    }
}

impl PlanPosition {
    /// Whether the position holds (`active_conditions`), given its literal's truth.
    pub fn active(&self, truth: Option<bool>) -> bool {
        truth == Some(!self.negated)
    }
}

impl Plan {
    /// Whether a row with these position truths is in the shape.
    pub fn includes(&self, active: &[bool]) -> bool {
        self.disjuncts
            .iter()
            .any(|d| active[d.clone()].iter().all(|&t| t))
    }
}

impl Predicate {
    /// The clause's subqueries (dependencies), in order of first appearance.
    pub fn subqueries(&self) -> &[Subquery] {
        &self.subqueries
    }

    /// The DNF plan of a clause with subqueries, with upstream's checks.
    pub fn plan(&self) -> Result<Plan, WhereError> {
        let tree = to_bool_expr(&self.expr)?;
        let dnf = Dnf::build(&tree, MAX_DISJUNCTS).map_err(|e| WhereError::Plain(e.to_string()))?;
        let mut dep_negated: Vec<Option<bool>> = vec![None; self.subqueries.len()];
        let mut dep_positions = vec![Vec::new(); self.subqueries.len()];
        let mut positions = Vec::with_capacity(dnf.positions.len());
        for (p, position) in dnf.positions.into_iter().enumerate() {
            let literal = match position.literal {
                Expr::Sublink { dep, lhs, .. } => {
                    let polarity = dep_negated[dep].get_or_insert(position.negated);
                    if *polarity != position.negated {
                        return Err(WhereError::Plain(
                            "a subquery dependency cannot be used with both positive and \
                             negative polarity in the same filter"
                                .into(),
                        ));
                    }
                    dep_positions[dep].push(p);
                    let expr = Expr::Sublink {
                        dep,
                        lhs: lhs.clone(),
                        select_sql: self.subqueries[dep].sql.clone(),
                    };
                    let mut sql = String::new();
                    super::render::render(&expr, &mut sql);
                    Literal::Member {
                        dep,
                        columns: lhs.iter().map(|c| c.index).collect(),
                        names: lhs.into_iter().map(|c| c.name).collect(),
                        sql,
                    }
                }
                expr => Literal::Row(Predicate {
                    expr,
                    subqueries: Vec::new(),
                }),
            };
            positions.push(PlanPosition {
                literal,
                negated: position.negated,
            });
        }
        Ok(Plan {
            positions,
            disjuncts: dnf.disjuncts,
            dep_negated: dep_negated
                .into_iter()
                .map(|n| n.unwrap_or(false))
                .collect(),
            dep_positions,
        })
    }

    /// A clause TRUE for every row some view could put in the shape: each membership taken
    /// as true (negated or not). `None` when that is every row. Routes the outer table's
    /// changes, whose exact inclusion the plan decides with the views.
    pub fn routing_superset(&self, plan: &Plan) -> Option<Predicate> {
        let mut disjuncts = Vec::with_capacity(plan.disjuncts.len());
        for d in &plan.disjuncts {
            let mut conjuncts = Vec::new();
            for position in &plan.positions[d.clone()] {
                if let Literal::Row(p) = &position.literal {
                    let expr = p.expr.clone();
                    conjuncts.push(if position.negated {
                        Expr::Not(Box::new(expr))
                    } else {
                        expr
                    });
                }
            }
            match conjuncts.len() {
                0 => return None,
                1 => disjuncts.push(conjuncts.remove(0)),
                _ => disjuncts.push(Expr::And(conjuncts)),
            }
        }
        let expr = match disjuncts.len() {
            1 => disjuncts.remove(0),
            _ => Expr::Or(disjuncts),
        };
        Some(Predicate {
            expr,
            subqueries: Vec::new(),
        })
    }
}

fn to_bool_expr(expr: &Expr) -> Result<BoolExpr<Expr>, WhereError> {
    Ok(match expr {
        Expr::And(items) => {
            BoolExpr::And(items.iter().map(to_bool_expr).collect::<Result<_, _>>()?)
        }
        Expr::Or(items) => BoolExpr::Or(items.iter().map(to_bool_expr).collect::<Result<_, _>>()?),
        Expr::Not(inner) => BoolExpr::Not(Box::new(to_bool_expr(inner)?)),
        Expr::Sublink { .. } => BoolExpr::Lit(expr.clone()),
        other => {
            if contains_sublink(other) {
                return Err(invalid(
                    0,
                    "a subquery can only be used as a condition of its own (combined with \
                     AND, OR and NOT), not inside another expression",
                ));
            }
            BoolExpr::Lit(other.clone())
        }
    })
}

fn contains_sublink(expr: &Expr) -> bool {
    let mut found = false;
    expr.visit(&mut |e| found |= matches!(e, Expr::Sublink { .. }));
    found
}
