//! Candidate terms for clauses that have no access plan: like an access plan, a set of terms
//! that finds every row the clause accepts (one conjunct of an AND, every branch of an OR),
//! but a term may also be a LIKE pattern (found by the router's LIKE groups) or an
//! `expression OP constant` comparison (found by its template group), besides an index probe.
//! The router verifies the candidates with the whole predicate.

use super::super::expr::{BoolTest, Expr};
use super::super::Predicate;
use super::like::{like_term, LikeTerm};
use super::template::{template_of, Layout, Template};
use super::{access, Probe};

#[derive(Clone, Debug)]
pub(crate) enum Term {
    Index(Probe),
    Like(LikeTerm),
    /// A comparison whose group finds its TRUE members by key (layout `Equal`, `Less` or
    /// `Greater`: members are stored under their constant's key, never by position).
    Template(Template),
}

/// The terms finding every row `predicate` accepts, or `None` if some branch has none.
pub(crate) fn terms(predicate: &Predicate) -> Option<Vec<Term>> {
    terms_of(&predicate.expr).map(|(_, terms)| terms)
}

type Terms = (u64, Vec<Term>);

fn index_terms(expr: &Expr) -> Option<Terms> {
    access(expr).map(|(cost, probes)| (cost, probes.into_iter().map(Term::Index).collect()))
}

fn terms_of(expr: &Expr) -> Option<Terms> {
    match expr {
        Expr::Or(items) => {
            let mut cost = 0u64;
            let mut terms = Vec::new();
            for item in items {
                let (c, t) = terms_of(item)?;
                cost = cost.saturating_add(c);
                terms.extend(t);
            }
            Some((cost, terms))
        }
        Expr::And(items) => {
            // The whole AND first: it may combine two bounds into one interval probe.
            let mut best = index_terms(expr);
            for item in items {
                if let Some((cost, terms)) = terms_of(item) {
                    if best.as_ref().is_none_or(|(c, _)| cost < *c) {
                        best = Some((cost, terms));
                    }
                }
            }
            best
        }
        Expr::BoolTest {
            arg,
            test: BoolTest::True,
        } => terms_of(arg),
        _ => {
            if let Some(found) = index_terms(expr) {
                return Some(found);
            }
            if let Some(like) = like_term(expr) {
                return Some((like.pattern.cost(), vec![Term::Like(like)]));
            }
            let template = template_of(expr)?;
            template.constant_key()?;
            let cost = match template.layout() {
                Layout::Equal => 1,
                Layout::Less { .. } | Layout::Greater { .. } => 100,
                Layout::Unequal | Layout::Linear => return None,
            };
            Some((cost, vec![Term::Template(template)]))
        }
    }
}
