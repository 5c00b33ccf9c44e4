//! The WHERE-clause front end: parses a shape's `where` (with `$n` `params`) using the real
//! Postgres grammar (`pg_query`), type-checks it against the table's columns, renders it back
//! as canonical SQL for snapshot queries and shape identity, and evaluates it over replicated
//! rows in pgoutput text form.
//!
//! Supported now: comparisons on integers, floats, numeric (exact), strings (byte order, the C
//! collation), bool, uuid, date, timestamp, timestamptz, interval (30-day months and 24-hour
//! days, so `'1 mon' = '30 days'`) and enums (`=`/`<>`); AND/OR/NOT with
//! three-valued logic; `[NOT] IN (list)`; `[NOT] BETWEEN [SYMMETRIC]`; `IS [NOT] NULL`;
//! `IS [NOT] TRUE/FALSE/UNKNOWN`; `IS [NOT] DISTINCT FROM`; `[NOT] LIKE/ILIKE`; arithmetic
//! (`+ - * / % ^ |/ @`, unary `+`/`-`) on integers, floats and numeric (exact; no numeric
//! `^`) and bitwise operators (`& | # ~ << >>`) on integers, where overflow and division by
//! zero are evaluation errors (the row is not in the shape); `date ± int4`, `date - date`;
//! date/time arithmetic with Postgres 15's results and errors: `timestamp[tz] ± interval`,
//! `date ± interval` (→ timestamp; months clamp the day, `'2024-01-31' + '1 mon'` is
//! 2024-02-29), `timestamp[tz] - timestamp[tz]` (→ interval), `interval ± interval`,
//! `- interval`, `interval * number`, `number * interval`, `interval / number`;
//! `||` on text (other operands through their `::text` cast); `lower`, `upper`,
//! `length`/`char_length`, `octet_length`, `starts_with`, `concat`, `COALESCE`, `GREATEST`,
//! `LEAST`; arrays of the supported types (columns, `'{...}'` literals and parameters,
//! `ARRAY[...]`): `op ANY/ALL (array)`, `=`/`<>` between arrays, `@>`, `<@`, `&&`,
//! subscripts `a[i][j]`, `array_length`, `array_ndims`, `cardinality`; literals, parameters
//! and casts between those types. Constant subexpressions are folded as Postgres's planner
//! folds them (see `fold`). Everything else is rejected with Electric's messages. Date/time
//! input accepts ISO forms only (what Postgres outputs with `DateStyle=ISO`); interval input
//! accepts Postgres's output (`IntervalStyle=postgres`), unit forms (`'90 minutes'`,
//! `'1.5 days'`, `'1 year 2 months ago'`) and ISO 8601 designators (`'P1DT2H'`), and rejects
//! the rarer forms (`'1-2'`, ISO alternative format) as invalid input (see `interval`).
//! Sessions are assumed to run with `TimeZone=UTC`, `DateStyle=ISO` and
//! `IntervalStyle=postgres`. `time`/`timetz` and interval arrays are not supported.

pub(crate) mod analyze;
mod arith;
mod array;
mod cast;
mod coerce;
mod datetime;
mod datum;
mod error;
mod eval;
mod eval_array;
mod expr;
mod fold;
mod func;
mod input;
mod interval;
mod like;
mod lower;
mod lower_array;
mod lower_func;
mod numeric;
mod numeric_arith;
mod plan;
mod render;
mod sublink;
mod syntax;
mod types;

#[cfg(test)]
mod tests;

pub use error::WhereError;
pub use plan::{Literal, Plan, PlanPosition};
pub use sublink::{Subquery, Tables, SUBQUERIES_MAX};
pub use types::Type;

pub(crate) use eval::Columns;
use expr::Expr;

/// Most `$n` parameters accepted (Postgres's own limit for a statement).
pub const PARAMS_MAX: usize = 65_535;

/// One column of the shape's table, in row order (the index in the slice given to [`parse`] is
/// the column's index in a row).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnType {
    pub name: String,
    /// `pg_type.typname`; for arrays, the element type's name.
    pub type_name: String,
    pub is_array: bool,
    pub is_enum: bool,
}

impl ColumnType {
    fn to_type(&self) -> Type {
        let base = if self.is_enum {
            Type::Enum(self.type_name.clone())
        } else {
            Type::from_typname(&self.type_name)
                .unwrap_or_else(|| Type::Other(self.type_name.clone()))
        };
        if self.is_array {
            Type::Array(Box::new(base))
        } else {
            base
        }
    }
}

/// A type-checked WHERE clause.
#[derive(Clone, Debug, PartialEq)]
pub struct Predicate {
    expr: Expr,
    /// The clause's subqueries (dependencies), indexed by its `Expr::Sublink` nodes.
    subqueries: Vec<Subquery>,
}

/// Parses and type-checks `where_sql` against `columns`, with `params[i]` the value of
/// `$(i + 1)`. Subqueries are rejected.
pub fn parse(
    where_sql: &str,
    params: &[String],
    columns: &[ColumnType],
) -> Result<Predicate, WhereError> {
    parse_with(where_sql, params, columns, None)
}

/// [`parse`], with subqueries allowed when `tables` resolves the tables they read.
pub fn parse_with(
    where_sql: &str,
    params: &[String],
    columns: &[ColumnType],
    tables: Option<&Tables<'_>>,
) -> Result<Predicate, WhereError> {
    if params.len() > PARAMS_MAX {
        return Err(WhereError::Params(format!(
            "at most {PARAMS_MAX} parameters are supported"
        )));
    }
    if let Some(position) = params.iter().position(|p| p.contains('\0')) {
        return Err(WhereError::Params(format!(
            "parameter ${} must not contain NUL bytes",
            position + 1
        )));
    }
    let node = syntax::parse_where(where_sql)?;
    let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
    let types: Vec<Type> = columns.iter().map(ColumnType::to_type).collect();
    let mut scope = lower::Scope {
        names: &names,
        types: &types,
        params,
        used_params: vec![false; params.len()],
        tables,
        subqueries: Vec::new(),
    };
    let lowered = scope.lower(&node)?;
    if let Some(unused) = scope.used_params.iter().position(|used| !used) {
        return Err(WhereError::Invalid {
            location: 0,
            message: format!("parameter value for ${} was not used", unused + 1),
        });
    }
    let expr = match lowered {
        coerce::Operand::Typed { expr, .. } if expr.ty() == Type::Bool => expr,
        _ => return Err(WhereError::NotBoolean),
    };
    Predicate::finish(expr, scope.subqueries)
}

impl Predicate {
    pub(crate) fn finish(expr: Expr, subqueries: Vec<Subquery>) -> Result<Self, WhereError> {
        // Postgres folds constant subexpressions when it plans the query; where that fails, the
        // query would fail, so the clause is rejected now.
        let expr = fold::fold(expr).map_err(|_| WhereError::Invalid {
            location: 0,
            message: "a constant subexpression raised an error (overflow, division by zero or \
                  an invalid value)"
                .to_string(),
        })?;
        Ok(Predicate { expr, subqueries })
    }
}

/// Validates `params[n]=value` pairs from a request and orders them as `$1, $2, ...`.
/// Keys must be decimal numbers, numbered sequentially from 1.
pub fn params_from_pairs<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<Vec<String>, WhereError> {
    let mut numbered: Vec<(usize, &str)> = Vec::new();
    for (key, value) in pairs {
        if numbered.len() >= PARAMS_MAX {
            return Err(WhereError::Params(format!(
                "at most {PARAMS_MAX} parameters are supported"
            )));
        }
        let is_number =
            !key.is_empty() && key.len() <= 5 && key.bytes().all(|b| b.is_ascii_digit());
        let number = key
            .parse::<usize>()
            .ok()
            .filter(|_| is_number)
            .ok_or_else(|| {
                WhereError::Params("Parameters can only use numbers as keys".to_string())
            })?;
        numbered.push((number, value));
    }
    numbered.sort_by_key(|(number, _)| *number);
    let sequential = numbered
        .iter()
        .enumerate()
        .all(|(i, (number, _))| *number == i + 1);
    if !sequential {
        return Err(WhereError::Params(
            "Parameters must be numbered sequentially, starting from 1".to_string(),
        ));
    }
    Ok(numbered.into_iter().map(|(_, v)| v.to_string()).collect())
}

impl Predicate {
    /// Canonical SQL for the clause (params inlined as typed literals, identifiers quoted,
    /// fully parenthesized), for `SELECT ... WHERE <to_sql>` and for the shape's identity.
    pub fn to_sql(&self) -> String {
        let mut out = String::with_capacity(64);
        render::render(&self.expr, &mut out);
        out
    }

    /// Whether a row is in the shape: `row(i)` is column `i` in Postgres text form (`None` for
    /// NULL). True only if the clause is TRUE; NULL, false and evaluation errors give false.
    pub fn eval<'r>(&self, row: &(dyn Fn(usize) -> Option<&'r [u8]> + 'r)) -> bool {
        matches!(eval::eval(&self.expr, row), Ok(datum::Datum::Bool(true)))
    }

    /// [`Predicate::eval`], reading decoded columns from (and adding them to) `columns`,
    /// which other predicates evaluated on the same row share.
    pub(crate) fn eval_shared<'r>(
        &self,
        row: &(dyn Fn(usize) -> Option<&'r [u8]> + 'r),
        columns: &Columns<'r>,
    ) -> bool {
        matches!(
            eval::eval_shared(&self.expr, row, columns),
            Ok(datum::Datum::Bool(true))
        )
    }

    /// Indexes of the columns the clause reads, ascending, without duplicates.
    pub fn columns(&self) -> Vec<usize> {
        let mut out = Vec::new();
        self.expr.for_each_column(&mut |i| out.push(i));
        out.sort_unstable();
        out.dedup();
        out
    }
}
