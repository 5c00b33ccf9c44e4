//! Disjunctive normal form of a boolean expression, with upstream's ordering: NOT is pushed to
//! the literals (De Morgan; a double negation cancels), OR concatenates its operands'
//! disjuncts, and AND takes the cross product with the left operand's alternatives varying
//! slowest (`A AND (B OR C)` gives `[A, B]`, `[A, C]`). Positions number every literal
//! occurrence, disjunct by disjunct and left to right within one: a literal repeated in two
//! disjuncts has two positions. Each position keeps its literal as written and a `negated` flag.

/// A boolean expression over literals `L` (comparisons, function calls, `IN` lists and
/// subquery memberships are all literals here).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BoolExpr<L> {
    And(Vec<BoolExpr<L>>),
    Or(Vec<BoolExpr<L>>),
    Not(Box<BoolExpr<L>>),
    Lit(L),
}

/// One position of the plan: a literal occurrence and whether it appears negated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position<L> {
    pub literal: L,
    pub negated: bool,
}

/// The plan: positions, and per disjunct the positions it holds (ascending, contiguous).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dnf<L> {
    pub positions: Vec<Position<L>>,
    pub disjuncts: Vec<std::ops::Range<usize>>,
}

/// Upstream's bound on the disjuncts of a clause with subqueries.
pub const MAX_DISJUNCTS: usize = 100;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DnfError {
    /// Upstream's message (`where` field, 400).
    #[error("WHERE clause too complex for DNF decomposition ({count} disjuncts exceeds limit of {limit})")]
    TooComplex { count: u64, limit: usize },
}

impl<L: Clone> Dnf<L> {
    /// Decomposes `expr`; more than `limit` disjuncts is an error (counted without building
    /// them, so a clause that would explode costs nothing).
    pub fn build(expr: &BoolExpr<L>, limit: usize) -> Result<Self, DnfError> {
        let count = count(expr, false);
        if count > limit as u64 {
            return Err(DnfError::TooComplex { count, limit });
        }
        let mut positions = Vec::new();
        let mut disjuncts = Vec::new();
        for conjunction in expand(expr, false) {
            let start = positions.len();
            positions.extend(conjunction);
            disjuncts.push(start..positions.len());
        }
        Ok(Self {
            positions,
            disjuncts,
        })
    }

    /// Whether a row is in the shape: some disjunct with every position true, given
    /// `active[p]` (the truth of position `p` as it appears, negation applied).
    pub fn holds(&self, active: &[bool]) -> bool {
        assert_eq!(active.len(), self.positions.len(), "one truth per position");
        self.disjuncts
            .iter()
            .any(|d| active[d.clone()].iter().all(|&t| t))
    }
}

/// Disjuncts of `expr` (negated when `neg`), saturating.
fn count<L>(expr: &BoolExpr<L>, neg: bool) -> u64 {
    match (expr, neg) {
        (BoolExpr::Lit(_), _) => 1,
        (BoolExpr::Not(inner), _) => count(inner, !neg),
        // AND, or a negated OR (De Morgan): a product.
        (BoolExpr::And(items), false) | (BoolExpr::Or(items), true) => items
            .iter()
            .fold(1u64, |n, e| n.saturating_mul(count(e, neg))),
        (BoolExpr::Or(items), false) | (BoolExpr::And(items), true) => items
            .iter()
            .fold(0u64, |n, e| n.saturating_add(count(e, neg))),
    }
}

/// The conjunctions of `expr` (negated when `neg`), in upstream's order.
fn expand<L: Clone>(expr: &BoolExpr<L>, neg: bool) -> Vec<Vec<Position<L>>> {
    match (expr, neg) {
        (BoolExpr::Lit(l), negated) => vec![vec![Position {
            literal: l.clone(),
            negated,
        }]],
        (BoolExpr::Not(inner), _) => expand(inner, !neg),
        (BoolExpr::And(items), false) | (BoolExpr::Or(items), true) => {
            let mut acc: Vec<Vec<Position<L>>> = vec![Vec::new()];
            for item in items {
                let right = expand(item, neg);
                let mut next = Vec::with_capacity(acc.len() * right.len());
                // The left alternatives vary slowest.
                for l in &acc {
                    for r in &right {
                        let mut c = l.clone();
                        c.extend(r.iter().cloned());
                        next.push(c);
                    }
                }
                acc = next;
            }
            acc
        }
        (BoolExpr::Or(items), false) | (BoolExpr::And(items), true) => {
            items.iter().flat_map(|e| expand(e, neg)).collect()
        }
    }
}
