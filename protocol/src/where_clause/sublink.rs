//! `… IN (SELECT …)` in a WHERE clause: the accepted forms and upstream's errors for the rest
//! (`electric-subqueries.md` §1). A subquery becomes a [`Subquery`] (a dependency of the
//! predicate: one table, plain columns, an optional WHERE of its own) and the membership test an
//! [`Expr::Sublink`] that names it. Identical subqueries of one clause share one dependency.
//!
//! The subquery's table is looked up through [`Tables`], synchronously: the engine answers from
//! the tables it already knows, records the ones it does not, looks those up (asynchronously)
//! and parses again; each pass reaches one more level of nesting.

use pg_query::protobuf::{node::Node as N, Node, RangeVar, SelectStmt, SubLink, SubLinkType};

use super::coerce::invalid;
use super::error::WhereError;
use super::expr::{Expr, SublinkColumn};
use super::lower::{user_location, Scope};
use super::render::quote_identifier;
use super::types::Type;
use super::{ColumnType, Predicate};

/// Resolves a subquery's table (`schema`, `name`, as written or defaulted to `public`) to its
/// columns in row order, `None` if it does not exist.
pub type Tables<'a> = dyn Fn(&str, &str) -> Option<Vec<ColumnType>> + 'a;

/// Most subqueries (dependencies) one clause may hold, nested ones included.
pub const SUBQUERIES_MAX: usize = 64;

/// One dependency of a clause: `SELECT columns FROM schema.table [WHERE predicate]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Subquery {
    pub schema: String,
    pub table: String,
    /// Selected columns, as indexes into the table's columns, in select-list order (paired
    /// positionally with the left side, as SQL does).
    pub columns: Vec<usize>,
    /// The subquery's own WHERE (which may hold further subqueries).
    pub predicate: Option<Predicate>,
    /// Canonical `SELECT "c" FROM "s"."t" [WHERE …]`: the dependency's identity and SQL.
    pub sql: String,
}

fn table_name(range: &RangeVar) -> (String, String) {
    let schema = if range.schemaname.is_empty() {
        "public".to_string()
    } else {
        range.schemaname.clone()
    };
    (schema, range.relname.clone())
}

impl Scope<'_> {
    /// Lowers a SubLink: only `lhs IN (SELECT …)` is accepted. The subquery is checked first,
    /// as upstream builds the dependency before it types the outer clause (so `EXISTS (SELECT
    /// 1 …)` reports the select list, not the sublink kind).
    pub(crate) fn lower_sublink(&mut self, sublink: &SubLink) -> Result<Expr, WhereError> {
        let location = user_location(sublink.location);
        let Some(tables) = self.tables else {
            return Err(invalid(location, "subqueries are not supported"));
        };
        let select = match sublink.subselect.as_deref().and_then(|n| n.node.as_ref()) {
            Some(N::SelectStmt(select)) => select,
            _ => return Err(invalid(location, "Expected a single table reference")),
        };
        let (schema, table, columns, predicate) = self.lower_subselect(select, tables)?;
        let is_in = SubLinkType::try_from(sublink.sub_link_type) == Ok(SubLinkType::AnySublink)
            && sublink.oper_name.is_empty();
        if !is_in {
            return Err(invalid(
                location,
                "only `value IN (SELECT ...)` sublinks are supported right now",
            ));
        }
        let lhs = self.sublink_lhs(sublink.testexpr.as_deref(), location)?;
        let inner_types: Vec<Type> = columns.iter().map(|(_, _, ty)| ty.clone()).collect();
        let lhs_types: Vec<Type> = lhs.iter().map(|c| c.ty.clone()).collect();
        if lhs_types != inner_types {
            return Err(invalid(
                location,
                format!(
                    "left side of `IN (SELECT ...)` has type {} but subquery returns {}[]",
                    type_list(&lhs_types),
                    type_list(&inner_types)
                ),
            ));
        }
        let mut sql = String::from("SELECT ");
        for (i, (_, name, _)) in columns.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            quote_identifier(name, &mut sql);
        }
        sql.push_str(" FROM ");
        quote_identifier(&schema, &mut sql);
        sql.push('.');
        quote_identifier(&table, &mut sql);
        if let Some(p) = &predicate {
            sql.push_str(" WHERE ");
            sql.push_str(&p.to_sql());
        }
        let dep = match self.subqueries.iter().position(|s| s.sql == sql) {
            Some(dep) => dep,
            None => {
                if self.subqueries.len() >= SUBQUERIES_MAX {
                    return Err(invalid(
                        location,
                        format!("at most {SUBQUERIES_MAX} distinct subqueries are supported"),
                    ));
                }
                self.subqueries.push(Subquery {
                    schema,
                    table,
                    columns: columns.iter().map(|(index, _, _)| *index).collect(),
                    predicate,
                    sql: sql.clone(),
                });
                self.subqueries.len() - 1
            }
        };
        Ok(Expr::Sublink {
            dep,
            lhs,
            select_sql: sql,
        })
    }

    /// The subquery: one table, plain columns, no clauses but WHERE.
    #[allow(clippy::type_complexity)]
    fn lower_subselect(
        &mut self,
        select: &SelectStmt,
        tables: &Tables<'_>,
    ) -> Result<
        (
            String,
            String,
            Vec<(usize, String, Type)>,
            Option<Predicate>,
        ),
        WhereError,
    > {
        let has_clauses = !select.distinct_clause.is_empty()
            || select.into_clause.is_some()
            || !select.group_clause.is_empty()
            || select.having_clause.is_some()
            || !select.window_clause.is_empty()
            || !select.values_lists.is_empty()
            || !select.sort_clause.is_empty()
            || select.limit_offset.is_some()
            || select.limit_count.is_some()
            || !select.locking_clause.is_empty()
            || select.with_clause.is_some();
        let is_set_operation = select.op > 1 || select.larg.is_some() || select.rarg.is_some();
        if is_set_operation {
            return Err(WhereError::Plain(
                "Expected a single table reference".into(),
            ));
        }
        if has_clauses {
            return Err(WhereError::Plain(
                "SELECT statement must not contain any clauses".to_string(),
            ));
        }
        let range = match select.from_clause.as_slice() {
            [only] => match only.node.as_ref() {
                Some(N::RangeVar(range)) => range,
                _ => {
                    return Err(WhereError::Plain(
                        "Expected a single table reference".into(),
                    ))
                }
            },
            _ => {
                return Err(WhereError::Plain(
                    "Expected a single table reference".into(),
                ))
            }
        };
        let (schema, table) = table_name(range);
        let Some(columns) = tables(&schema, &table) else {
            let mut shown = String::new();
            quote_identifier(&schema, &mut shown);
            shown.push('.');
            quote_identifier(&table, &mut shown);
            return Err(WhereError::Field {
                field: "table",
                message: format!(
                    "Table {shown} does not exist. If the table name contains capitals or \
                     special characters you must quote it."
                ),
            });
        };
        let mut selected = Vec::with_capacity(select.target_list.len());
        let mut missing = Vec::new();
        for target in &select.target_list {
            let Some(N::ResTarget(res)) = target.node.as_ref() else {
                return Err(WhereError::Plain(
                    "Expected a plain column reference".into(),
                ));
            };
            let name = match res.val.as_deref().and_then(|v| v.node.as_ref()) {
                Some(N::ColumnRef(c)) => match c.fields.as_slice() {
                    [field] => match field.node.as_ref() {
                        Some(N::String(s)) => Some(s.sval.clone()),
                        _ => None,
                    },
                    _ => None,
                },
                _ => None,
            };
            // Upstream reports this location counted from the start of the wrapped statement.
            let Some(name) = name else {
                return Err(WhereError::Invalid {
                    location: usize::try_from(res.location).unwrap_or(0),
                    message: "Expected a plain column reference".into(),
                });
            };
            match columns.iter().position(|c| c.name == name) {
                Some(index) => selected.push((index, name, columns[index].to_type())),
                None => missing.push(name),
            }
        }
        if !missing.is_empty() {
            return Err(WhereError::Field {
                field: "columns",
                message: format!(
                    "The following columns are not found on the table: {}",
                    missing.join(", ")
                ),
            });
        }
        let predicate = match select.where_clause.as_deref() {
            None => None,
            Some(node) => Some(self.lower_inner_where(node, &columns, tables)?),
        };
        Ok((schema, table, selected, predicate))
    }

    /// The subquery's WHERE, typed against its own table; `$n` are the clause's parameters.
    fn lower_inner_where(
        &mut self,
        node: &Node,
        columns: &[ColumnType],
        tables: &Tables<'_>,
    ) -> Result<Predicate, WhereError> {
        let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
        let types: Vec<Type> = columns.iter().map(ColumnType::to_type).collect();
        let mut inner = Scope {
            names: &names,
            types: &types,
            params: self.params,
            used_params: std::mem::take(&mut self.used_params),
            tables: Some(tables),
            subqueries: Vec::new(),
        };
        let lowered = inner.lower(node);
        self.used_params = std::mem::take(&mut inner.used_params);
        let subqueries = std::mem::take(&mut inner.subqueries);
        let expr = match lowered? {
            super::coerce::Operand::Typed { expr, .. } if expr.ty() == Type::Bool => expr,
            _ => return Err(WhereError::NotBoolean),
        };
        Predicate::finish(expr, subqueries)
    }

    /// The left side: a column of the outer table, or a row of them.
    fn sublink_lhs(
        &mut self,
        node: Option<&Node>,
        location: usize,
    ) -> Result<Vec<SublinkColumn>, WhereError> {
        let not_columns = || {
            invalid(
                location,
                "currently, left side of `IN (SELECT ...)` can only be a column reference or \
                 a list of column references",
            )
        };
        let items: Vec<&Node> = match node.and_then(|n| n.node.as_ref()) {
            Some(N::ColumnRef(_)) => vec![node.expect("matched")],
            Some(N::RowExpr(row)) => row.args.iter().collect(),
            _ => return Err(not_columns()),
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let Some(N::ColumnRef(_)) = item.node.as_ref() else {
                return Err(not_columns());
            };
            match self.lower(item)? {
                super::coerce::Operand::Typed {
                    expr: Expr::Column { index, name, ty },
                    ..
                } => out.push(SublinkColumn { index, name, ty }),
                _ => return Err(not_columns()),
            }
        }
        Ok(out)
    }
}

fn type_list(types: &[Type]) -> String {
    match types {
        [one] => one.to_string(),
        many => format!(
            "row of ({})",
            many.iter()
                .map(Type::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
