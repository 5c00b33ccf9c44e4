//! SQL of subquery shapes: the initial snapshot (the clause with its real subqueries, plus one
//! boolean per plan position and the raw left-side columns tags are hashed from) and the
//! move-in query (rows that a move makes newly match, the views bound as array literals so the
//! query agrees with the view the shape is at, not with the table's state at query time).
//!
//! Every query selects, after the columns the row's JSON needs ([`snapshot::filtered_select`]),
//! `positions` booleans (`active_conditions`) and then the distinct outer columns of the
//! memberships, uncast (booleans as `t`/`f`, the form replicated rows carry).

use super::def::ShapeDef;
use super::snapshot::{select_from, select_list};
use super::subquery::{decode_value, SubqueryDef, Value};
use protocol::ident::quote_ident;
use protocol::where_clause::Literal;

/// A query of a subquery shape and how to read its rows.
pub struct SubSelect {
    pub sql: String,
    /// COPY fields of the row itself (see `snapshot::RowEncoder`).
    pub needed: Vec<usize>,
    /// Outer columns whose raw text follows the position booleans, in this order.
    pub lhs_columns: Vec<usize>,
}

/// The outer columns memberships read, ascending.
pub fn lhs_columns(sub: &SubqueryDef) -> Vec<usize> {
    let mut cols: Vec<usize> = sub
        .plan
        .positions
        .iter()
        .filter_map(|p| match &p.literal {
            Literal::Member { columns, .. } => Some(columns.iter().copied()),
            Literal::Row(_) => None,
        })
        .flatten()
        .collect();
    cols.sort_unstable();
    cols.dedup();
    cols
}

/// `position SQL` → `COALESCE((…), false)`, negated ones `COALESCE((NOT (…)), false)`: NULL is
/// not active on either side of a negation (SQL's semantics, as the live evaluation).
fn active_sql(negated: bool, literal: &str) -> String {
    if negated {
        format!("COALESCE((NOT {literal}), false)")
    } else {
        format!("COALESCE({literal}, false)")
    }
}

/// The snapshot's select list followed by the position booleans and the raw left-side
/// columns.
fn columns_with_extras(
    def: &ShapeDef,
    sub: &SubqueryDef,
    active: Vec<String>,
) -> (String, Vec<usize>) {
    let (mut cols, needed) = select_list(def);
    for a in active {
        cols.push_str(", ");
        cols.push_str(&a);
    }
    for c in lhs_columns(sub) {
        cols.push_str(", ");
        cols.push_str(&quote_ident(&def.table.columns[c].info.name));
    }
    (cols, needed)
}

/// The initial snapshot's SELECT.
pub fn snapshot_select(def: &ShapeDef, sub: &SubqueryDef) -> SubSelect {
    select_with(def, sub, None)
}

/// [`snapshot_select`] with a subset's `where` ANDed.
pub fn select_with(def: &ShapeDef, sub: &SubqueryDef, extra_where: Option<&str>) -> SubSelect {
    let active = sub
        .plan
        .positions
        .iter()
        .map(|p| active_sql(p.negated, &p.literal.to_sql()))
        .collect();
    let (cols, needed) = columns_with_extras(def, sub, active);
    SubSelect {
        sql: select_from(def, &cols, extra_where),
        needed,
        lhs_columns: lhs_columns(sub),
    }
}

/// A text as an escape-string literal (safe whatever `standard_conforming_strings`).
fn literal(text: &[u8]) -> String {
    let text = String::from_utf8_lossy(text);
    let mut out = String::with_capacity(text.len() + 4);
    out.push_str("E'");
    for ch in text.chars() {
        match ch {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// `ARRAY[…]::text[]::<type>[]` of column `k` of every value.
fn array_of(values: &[Value], k: usize, type_sql: &str) -> String {
    let mut out = String::from("ARRAY[");
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match decode_value(v).get(k).copied().flatten() {
            Some(text) => out.push_str(&literal(text)),
            None => out.push_str("NULL"),
        }
    }
    out.push_str(&format!("]::text[]::{type_sql}[]"));
    out
}

/// A membership of `columns` in `values`, as SQL.
fn member_sql(def: &ShapeDef, columns: &[usize], values: &[Value]) -> String {
    let ty = |c: usize| def.table.columns[c].info.formatted_type.clone();
    let name = |c: usize| quote_ident(&def.table.columns[c].info.name);
    if let [c] = columns {
        return format!("({} = ANY ({}))", name(*c), array_of(values, 0, &ty(*c)));
    }
    let names: Vec<String> = columns.iter().map(|&c| name(c)).collect();
    let arrays: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(k, &c)| array_of(values, k, &ty(c)))
        .collect();
    format!(
        "(({}) IN (SELECT * FROM unnest({})))",
        names.join(", "),
        arrays.join(", ")
    )
}

/// The clause's disjuncts (`which` of them) with memberships bound to `views` (per
/// dependency), OR-ed.
fn disjuncts_sql(
    def: &ShapeDef,
    sub: &SubqueryDef,
    views: &[Vec<Value>],
    which: impl Fn(usize) -> bool,
) -> String {
    let mut out = Vec::new();
    for (d, range) in sub.plan.disjuncts.iter().enumerate() {
        if !which(d) {
            continue;
        }
        let conj: Vec<String> = sub.plan.positions[range.clone()]
            .iter()
            .map(|p| {
                let lit = match &p.literal {
                    Literal::Member { dep, columns, .. } => member_sql(def, columns, &views[*dep]),
                    other => other.to_sql(),
                };
                if p.negated {
                    format!("(NOT {lit})")
                } else {
                    lit
                }
            })
            .collect();
        out.push(format!("({})", conj.join(" AND ")));
    }
    if out.is_empty() {
        return "false".into();
    }
    format!("({})", out.join(" OR "))
}

/// The move-in query of dependency `dep`: rows TRUE under `after` (in a disjunct that uses the
/// dependency) and not TRUE under `before` (in any disjunct): exactly the rows the move brings
/// into the shape.
pub fn move_in_select(
    def: &ShapeDef,
    sub: &SubqueryDef,
    dep: usize,
    after: &[Vec<Value>],
    before: &[Vec<Value>],
) -> SubSelect {
    let uses = |d: usize| {
        sub.plan.dep_positions[dep]
            .iter()
            .any(|p| sub.plan.disjuncts[d].contains(p))
    };
    let candidate = disjuncts_sql(def, sub, after, uses);
    let exclusion = disjuncts_sql(def, sub, before, |_| true);
    let active = sub
        .plan
        .positions
        .iter()
        .map(|p| {
            let lit = match &p.literal {
                Literal::Member { dep, columns, .. } => member_sql(def, columns, &after[*dep]),
                other => other.to_sql(),
            };
            active_sql(p.negated, &lit)
        })
        .collect();
    let (cols, needed) = columns_with_extras(def, sub, active);
    let sql = format!(
        "SELECT {cols} FROM {} WHERE {candidate} AND ({exclusion}) IS NOT TRUE",
        def.table.quoted()
    );
    SubSelect {
        sql,
        needed,
        lhs_columns: lhs_columns(sub),
    }
}

/// Turns the COPY rows of a [`SubSelect`] into insert messages with `tags` and
/// `active_conditions` (and `is_move_in` for move-in rows).
pub struct SubRows {
    encoder: super::snapshot::RowEncoder,
    sub: std::sync::Arc<SubqueryDef>,
    lhs_columns: Vec<usize>,
    stack_id: std::rc::Rc<str>,
    handle: String,
    is_move_in: bool,
    out: Vec<u8>,
}

impl SubRows {
    pub fn new(
        def: &ShapeDef,
        select: &SubSelect,
        stack_id: std::rc::Rc<str>,
        handle: String,
        is_move_in: bool,
    ) -> Self {
        let sub = def.subquery.clone().expect("a subquery shape");
        let extra = sub.plan.positions.len() + select.lhs_columns.len();
        Self {
            encoder: super::snapshot::RowEncoder::with_extra(def, select.needed.clone(), extra),
            sub,
            lhs_columns: select.lhs_columns.clone(),
            stack_id,
            handle,
            is_move_in,
            out: Vec::with_capacity(512),
        }
    }

    pub fn encode(&mut self, row: &[u8]) -> Result<&[u8], super::snapshot::SnapshotError> {
        let json = self.encoder.encode(row)?;
        self.out.clear();
        self.out.extend_from_slice(json);
        let positions = self.sub.plan.positions.len();
        let active: Vec<bool> = (0..positions)
            .map(|i| self.encoder.field(row, i) == Some(b"t"))
            .collect();
        let lhs: Vec<(usize, Option<&[u8]>)> = self
            .lhs_columns
            .iter()
            .enumerate()
            .map(|(k, &c)| (c, self.encoder.field(row, positions + k)))
            .collect();
        let get = |c: usize| lhs.iter().find(|(i, _)| *i == c).and_then(|(_, v)| *v);
        let tags = self.sub.tags(&self.stack_id, &self.handle, &get);
        protocol::message::push_subquery_headers(
            &mut self.out,
            &tags,
            None,
            &active,
            self.is_move_in,
        );
        Ok(&self.out)
    }
}
