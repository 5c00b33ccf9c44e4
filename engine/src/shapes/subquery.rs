//! The subquery side of a shape definition (`electric-subqueries.md`): the DNF plan of its
//! WHERE, one [`DepDef`] per `IN (SELECT …)` dependency, and what a row of the outer table
//! carries because of them: `active_conditions` (per position) and `tags` (per disjunct).
//!
//! Membership values are tuples of column texts in the output functions' form (what pgoutput
//! and COPY send), except booleans, kept as `t`/`f` everywhere: the snapshot renders selected
//! booleans as `true`/`false` (upstream's form), but a tag must hash the same value the same
//! way in snapshot rows, replicated rows and move events (upstream's quirk 3, fixed).

use crate::catalog::TableInfo;
use protocol::subquery::tags::{self, Slot};
use protocol::where_clause::{Literal, Plan, Predicate};
use std::sync::Arc;

/// One value of a dependency's view, encoded as one byte string (see [`encode_value`]) so
/// that a lookup borrows a reused buffer instead of building a tuple.
pub type Value = Box<[u8]>;

/// Appends the encoding of a value tuple to `out`: per column `0` for NULL, or `1`, the
/// length (4 bytes, little endian) and the text.
pub fn encode_value(values: &[Option<&[u8]>], out: &mut Vec<u8>) {
    for v in values {
        match v {
            None => out.push(0),
            Some(text) => {
                out.push(1);
                out.extend_from_slice(&(text.len() as u32).to_le_bytes());
                out.extend_from_slice(text);
            }
        }
    }
}

/// The column texts of an encoded value.
pub fn decode_value(mut bytes: &[u8]) -> Vec<Option<&[u8]>> {
    let mut out = Vec::new();
    while let Some((&tag, rest)) = bytes.split_first() {
        if tag == 0 {
            out.push(None);
            bytes = rest;
            continue;
        }
        let (len, rest) = rest.split_at(4);
        let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
        out.push(Some(&rest[..len]));
        bytes = &rest[len..];
    }
    out
}

/// A dependency: `SELECT columns FROM table [WHERE predicate]`.
#[derive(Debug)]
pub struct DepDef {
    pub table: Arc<TableInfo>,
    /// Selected columns (indexes into `table.columns`), in select-list order.
    pub columns: Vec<usize>,
    pub predicate: Option<Predicate>,
    /// The canonical subquery SQL.
    pub sql: String,
    /// Identity of the dependency on a core: the table's oid and the canonical SQL.
    pub key: String,
    /// The plan of its own WHERE when that holds subqueries (a nested dependency).
    pub nested: Option<Arc<SubqueryDef>>,
    /// How each column of its table is spelled canonically.
    pub canon: Vec<Canon>,
}

impl DepDef {
    /// The columns a nested dependency keeps per row: key, selected and read by its clause.
    pub fn stored_columns(&self) -> Vec<usize> {
        let mut cols = self.key_columns();
        cols.extend(self.columns.iter().copied());
        if let Some(p) = &self.predicate {
            cols.extend(p.columns());
        }
        cols.sort_unstable();
        cols.dedup();
        cols
    }

    /// The columns that identify a row: the PK, or every column.
    pub fn key_columns(&self) -> Vec<usize> {
        if self.table.pk.is_empty() {
            (0..self.table.columns.len()).collect()
        } else {
            self.table.pk.clone()
        }
    }

    /// Whether an inner-table row (text values by column index) is in the dependency (for a
    /// dependency without subqueries of its own).
    pub fn matches<'r>(&self, get: &(dyn Fn(usize) -> Option<&'r [u8]> + 'r)) -> bool {
        self.predicate.as_ref().is_none_or(|p| p.eval(get))
    }

    /// The row's value of the selected columns, encoded into `out` (cleared first).
    pub fn value<'r>(&self, get: &(dyn Fn(usize) -> Option<&'r [u8]> + 'r), out: &mut Vec<u8>) {
        out.clear();
        encode_columns(&self.canon, &self.columns, get, out);
    }
}

/// Answers a membership: `(dependency, left-side values) → TRUE / FALSE / NULL (None)`.
pub type Member<'a> = dyn FnMut(usize, &[Option<&[u8]>]) -> Option<bool> + 'a;

/// The subquery part of a shape definition.
#[derive(Debug)]
pub struct SubqueryDef {
    pub plan: Plan,
    /// Dependencies, indexed as the plan's memberships index them.
    pub deps: Vec<Arc<DepDef>>,
    /// A clause true for every outer row some view could include (memberships relaxed to
    /// true): what routes outer-table changes. `None`: every row.
    pub routing: Option<Predicate>,
    /// How each column of the table the clause filters is spelled canonically.
    pub canon: Vec<Canon>,
}

/// A row's membership headers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RowMeta {
    pub active: Vec<bool>,
    pub tags: Vec<String>,
}

impl RowMeta {
    pub fn included(&self, plan: &Plan) -> bool {
        plan.includes(&self.active)
    }
}

impl SubqueryDef {
    /// Evaluates every position of the plan over a row of the outer table. `member(dep,
    /// values)` answers a membership with SQL's NULL semantics.
    pub fn active<'r>(
        &self,
        get: &(dyn Fn(usize) -> Option<&'r [u8]> + 'r),
        member: &mut Member<'_>,
    ) -> Vec<bool> {
        self.plan
            .positions
            .iter()
            .map(|position| {
                let truth = position.literal.eval(get, &mut |dep, columns| {
                    let texts: Vec<Option<std::borrow::Cow<'_, [u8]>>> = columns
                        .iter()
                        .map(|&c| normalize(self.canon[c], get(c)))
                        .collect();
                    let refs: Vec<Option<&[u8]>> = texts.iter().map(|t| t.as_deref()).collect();
                    member(dep, &refs)
                });
                position.active(truth)
            })
            .collect()
    }

    /// The row's tags for the shape `handle` of stack `stack_id`.
    pub fn tags<'r>(
        &self,
        stack_id: &str,
        handle: &str,
        get: &(dyn Fn(usize) -> Option<&'r [u8]> + 'r),
    ) -> Vec<String> {
        let plan = &self.plan;
        tags::row_tags(plan.positions.len(), &plan.disjuncts, |p| {
            match &plan.positions[p].literal {
                Literal::Row(_) => "1".to_string(),
                Literal::Member { columns, names, .. } => {
                    let texts: Vec<Option<String>> = columns
                        .iter()
                        .map(|&c| {
                            normalize(self.canon[c], get(c))
                                .map(|v| String::from_utf8_lossy(&v).into_owned())
                        })
                        .collect();
                    member_hash(stack_id, handle, names, &texts)
                }
            }
        })
    }

    /// `tags` and `active_conditions` of a row.
    pub fn meta<'r>(
        &self,
        stack_id: &str,
        handle: &str,
        get: &(dyn Fn(usize) -> Option<&'r [u8]> + 'r),
        member: &mut Member<'_>,
    ) -> RowMeta {
        RowMeta {
            active: self.active(get, member),
            tags: self.tags(stack_id, handle, get),
        }
    }

    /// The move patterns of `values` of dependency `dep`: one per position of the
    /// dependency and value, the slot hash rows carry there.
    pub fn patterns(
        &self,
        stack_id: &str,
        handle: &str,
        dep: usize,
        values: &[Value],
    ) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        for &p in &self.plan.dep_positions[dep] {
            let Literal::Member { names, .. } = &self.plan.positions[p].literal else {
                unreachable!("dependency positions are memberships");
            };
            for value in values {
                let texts: Vec<Option<String>> = decode_value(value)
                    .into_iter()
                    .map(|v| v.map(|b| String::from_utf8_lossy(b).into_owned()))
                    .collect();
                out.push((p, member_hash(stack_id, handle, names, &texts)));
            }
        }
        out
    }
}

/// The slot hash of a membership with these outer column names and value texts.
fn member_hash(stack_id: &str, handle: &str, names: &[String], texts: &[Option<String>]) -> String {
    if let [one] = texts {
        return tags::value_hash(stack_id, handle, Slot::Value(one.as_deref()));
    }
    let pairs: Vec<(&str, Option<&str>)> = names
        .iter()
        .zip(texts)
        .map(|(n, t)| (n.as_str(), t.as_deref()))
        .collect();
    tags::value_hash(stack_id, handle, Slot::Values(&pairs))
}

/// How a type's text is brought to one spelling per value, so that values SQL finds equal
/// are equal as keys and hash the same in tags: booleans as `t`/`f` (the snapshot's `::text`
/// spells `true`/`false`), numeric without trailing fractional zeros (`1.0` = `1.00` = `1`),
/// floats without the sign of zero. Other types' output is already one text per value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Canon {
    Plain,
    Bool,
    Numeric,
    Float,
}

impl Canon {
    pub fn of(column: &crate::catalog::TableColumn) -> Self {
        if column.info.is_array {
            return Canon::Plain;
        }
        match column.info.type_name.as_str() {
            "bool" => Canon::Bool,
            "numeric" => Canon::Numeric,
            "float4" | "float8" => Canon::Float,
            _ => Canon::Plain,
        }
    }

    /// The kind of each column of a table.
    pub fn of_table(table: &TableInfo) -> Vec<Canon> {
        table.columns.iter().map(Canon::of).collect()
    }
}

/// A value text in its one spelling (see [`Canon`]).
pub fn normalize(kind: Canon, v: Option<&[u8]>) -> Option<std::borrow::Cow<'_, [u8]>> {
    use std::borrow::Cow;
    let v = v?;
    Some(match (kind, v) {
        (Canon::Bool, b"true") => Cow::Borrowed(b"t"),
        (Canon::Bool, b"false") => Cow::Borrowed(b"f"),
        (Canon::Float, b"-0") => Cow::Borrowed(b"0"),
        (Canon::Numeric, text) if text.contains(&b'.') => {
            let mut t = text;
            while let [rest @ .., b'0'] = t {
                t = rest;
            }
            if let [rest @ .., b'.'] = t {
                t = rest;
            }
            if t == b"-0" {
                Cow::Borrowed(b"0")
            } else {
                Cow::Borrowed(t)
            }
        }
        (Canon::Numeric, b"-0") => Cow::Borrowed(b"0"),
        (_, text) => Cow::Borrowed(text),
    })
}

/// Encodes the canonical texts of `columns` (of a table whose kinds are `canon`) into `out`.
pub fn encode_columns<'r>(
    canon: &[Canon],
    columns: &[usize],
    get: &dyn Fn(usize) -> Option<&'r [u8]>,
    out: &mut Vec<u8>,
) {
    let texts: Vec<Option<std::borrow::Cow<'_, [u8]>>> = columns
        .iter()
        .map(|&c| normalize(canon[c], get(c)))
        .collect();
    let refs: Vec<Option<&[u8]>> = texts.iter().map(|t| t.as_deref()).collect();
    encode_value(&refs, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_spelling_per_value() {
        let n = |k, t: &str| normalize(k, Some(t.as_bytes())).map(|c| c.into_owned());
        assert_eq!(n(Canon::Numeric, "1.00"), Some(b"1".to_vec()));
        assert_eq!(n(Canon::Numeric, "1.50"), Some(b"1.5".to_vec()));
        assert_eq!(
            n(Canon::Numeric, "10"),
            Some(b"10".to_vec()),
            "no dot: kept"
        );
        assert_eq!(n(Canon::Numeric, "-0.000"), Some(b"0".to_vec()));
        assert_eq!(n(Canon::Numeric, "NaN"), Some(b"NaN".to_vec()));
        assert_eq!(n(Canon::Float, "-0"), Some(b"0".to_vec()));
        assert_eq!(n(Canon::Bool, "true"), Some(b"t".to_vec()));
        assert_eq!(
            n(Canon::Plain, "1.00"),
            Some(b"1.00".to_vec()),
            "text is text"
        );
        assert_eq!(normalize(Canon::Numeric, None), None);
    }
}
