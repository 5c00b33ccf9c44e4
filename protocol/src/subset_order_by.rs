//! `subset.order_by`: parsed with the Postgres grammar as `SELECT 1 ORDER BY <order_by>` (as
//! upstream's `Parser.validate_order_by/2` does, so error locations count from that wrapper)
//! and accepted only as a list of plain column references with optional `ASC`/`DESC` and
//! `NULLS FIRST`/`NULLS LAST`. The result is rendered from the parse tree, never copied from
//! the input, so nothing but quoted column names and keywords reaches SQL.
//!
//! This is a second, deliberately tiny user of `pg_query` beside `where_clause`: an ORDER BY
//! list shares nothing with expression lowering, and its parse-tree types stay in this file.
//! Differences from upstream: constants (`ORDER BY 1`) and `USING <op>` are refused (upstream
//! passes them to Postgres), and syntax errors carry no `At location N:` prefix.

use pg_query::protobuf::{node::Node as N, Node, SortByDir, SortByNulls};

use crate::ident::quote_ident;
use crate::where_clause::ColumnType;

/// The wrapper the list is parsed in.
const PREFIX: &str = "SELECT 1 ORDER BY ";

/// Longest `order_by` accepted, in bytes.
pub(crate) const ORDER_BY_BYTES_MAX: usize = 16 * 1024;

/// Parses and renders `text`; the error is the message for `errors.subset.order_by`.
pub(crate) fn parse_order_by(text: &str, columns: &[ColumnType]) -> Result<String, String> {
    if text.len() > ORDER_BY_BYTES_MAX {
        return Err(format!(
            "order_by is longer than {ORDER_BY_BYTES_MAX} bytes"
        ));
    }
    if text.contains('\0') {
        return Err("order_by must not contain NUL bytes".to_owned());
    }
    let wrapped = format!("{PREFIX}{text}");
    let parsed = match pg_query::parse(&wrapped, 0) {
        Ok(parsed) => parsed,
        Err(pg_query::Error::Parse(message)) => return Err(message),
        Err(pg_query::Error::Decode(_)) => return Err("order_by is nested too deeply".to_owned()),
        Err(other) => return Err(other.to_string()),
    };
    let mut stmts = parsed.protobuf.stmts;
    if stmts.len() != 1 {
        return Err("Unexpected `;` in order by".to_owned());
    }
    let stmt = stmts
        .pop()
        .and_then(|raw| raw.stmt)
        .and_then(|node| node.node);
    let Some(N::SelectStmt(select)) = stmt else {
        return Err("Unexpected `;` in order by".to_owned());
    };
    let only_order_by = select.limit_count.is_none()
        && select.limit_offset.is_none()
        && select.locking_clause.is_empty()
        && select.larg.is_none()
        && select.with_clause.is_none()
        && !select.sort_clause.is_empty();
    if !only_order_by {
        return Err("malformed query ending with SQL clauses".to_owned());
    }
    let mut items = Vec::with_capacity(select.sort_clause.len());
    for item in &select.sort_clause {
        items.push(render_item(item, columns)?);
    }
    Ok(items.join(", "))
}

fn render_item(item: &Node, columns: &[ColumnType]) -> Result<String, String> {
    let Some(N::SortBy(sort)) = item.node.as_ref() else {
        return Err(not_allowed(item.node.as_ref()));
    };
    if !sort.use_op.is_empty() || sort.sortby_dir == SortByDir::SortbyUsing as i32 {
        return Err(format!(
            "At location {}: USING is not allowed in ORDER BY clauses",
            sort.location
        ));
    }
    let mut sql = column(sort.node.as_deref(), columns)?;
    if sort.sortby_dir == SortByDir::SortbyAsc as i32 {
        sql.push_str(" ASC");
    } else if sort.sortby_dir == SortByDir::SortbyDesc as i32 {
        sql.push_str(" DESC");
    }
    if sort.sortby_nulls == SortByNulls::SortbyNullsFirst as i32 {
        sql.push_str(" NULLS FIRST");
    } else if sort.sortby_nulls == SortByNulls::SortbyNullsLast as i32 {
        sql.push_str(" NULLS LAST");
    }
    Ok(sql)
}

/// The quoted name of a plain, known column; anything else is refused with its location.
fn column(node: Option<&Node>, columns: &[ColumnType]) -> Result<String, String> {
    let inner = node.and_then(|n| n.node.as_ref());
    match inner {
        Some(N::ColumnRef(reference)) => {
            let path: Vec<&str> = reference
                .fields
                .iter()
                .map(|field| match &field.node {
                    Some(N::String(s)) => s.sval.as_str(),
                    _ => "*",
                })
                .collect();
            let known = match path.as_slice() {
                [name] => columns.iter().find(|c| c.name == *name),
                _ => None,
            };
            match known {
                Some(c) => Ok(quote_ident(&c.name)),
                None => {
                    let shown: Vec<String> = path.iter().map(|p| shown_name(p)).collect();
                    Err(format!(
                        "At location {}: unknown reference {}",
                        reference.location,
                        shown.join(".")
                    ))
                }
            }
        }
        Some(N::ParamRef(param)) => Err(format!(
            "At location {}: parameter ${} is not supported in ORDER BY clauses",
            param.location, param.number
        )),
        other => Err(not_allowed(other)),
    }
}

/// Names print bare when Postgres would not need quotes for them, quoted otherwise (as the
/// WHERE front end shows them).
fn shown_name(name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit();
    if plain {
        name.to_owned()
    } else {
        quote_ident(name)
    }
}

fn not_allowed(node: Option<&N>) -> String {
    let (name, location) = match node {
        Some(node) => (node_type_name(node), node_location(node)),
        None => ("unknown".to_owned(), 0),
    };
    format!("At location {location}: {name} expressions are not allowed in ORDER BY clauses")
}

/// The libpg_query struct name of a node (`FuncCall`, `A_Expr`, `TypeCast`, ...).
fn node_type_name(node: &N) -> String {
    let debug = format!("{node:?}");
    let rust_name = debug.split(['(', ' ', '{']).next().unwrap_or("Node");
    let bytes = rust_name.as_bytes();
    if bytes.len() > 1 && bytes[0] == b'A' && bytes[1].is_ascii_uppercase() {
        format!("A_{}", &rust_name[1..])
    } else {
        rust_name.to_owned()
    }
}

/// Location (in the wrapped statement) of the nodes an ORDER BY commonly holds.
fn node_location(node: &N) -> i32 {
    match node {
        N::FuncCall(n) => n.location,
        N::TypeCast(n) => n.location,
        N::AExpr(n) => n.location,
        N::AConst(n) => n.location,
        N::SubLink(n) => n.location,
        N::CollateClause(n) => n.location,
        N::BoolExpr(n) => n.location,
        N::CaseExpr(n) => n.location,
        N::NullTest(n) => n.location,
        N::ColumnRef(n) => n.location,
        N::ParamRef(n) => n.location,
        N::AArrayExpr(n) => n.location,
        N::RowExpr(n) => n.location,
        N::CoalesceExpr(n) => n.location,
        _ => 0,
    }
}
