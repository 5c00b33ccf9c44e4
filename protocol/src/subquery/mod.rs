//! Building blocks for subqueries in shape WHERE clauses (issue 15; the compatibility target is
//! `electric-subqueries.md`): the DNF plan of a clause ([`dnf`]) and the row tags clients
//! match move events against ([`tags`]). Pure functions over an abstract literal type, so the
//! planner is tested apart from parsing and serving.

pub mod dnf;
pub mod tags;

#[cfg(test)]
mod parse_tests;
#[cfg(test)]
mod tests;
