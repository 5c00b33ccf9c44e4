//! The `electric-schema` header (§4.5) and the catalog query that provides its input.
//!
//! The header is a JSON object mapping each selected column to `{"type": …}` plus optional
//! `dims`, `pk_index`, `not_null` and type-modifier details. Upstream encodes Elixir maps, whose
//! small instances iterate in key order, so both the columns and each column's keys are emitted
//! sorted by name here (byte-identical for tables of up to 32 columns; order carries no meaning).

use std::collections::BTreeMap;

use crate::json::push_json_str;

/// `pg_type.typtype`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeKind {
    Base,
    Composite,
    Domain,
    Enum,
    Pseudo,
    Range,
    Multirange,
}

/// One table column as read by [`COLUMNS_QUERY`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnInfo {
    pub name: String,
    /// `pg_attribute.atttypid`.
    pub type_oid: u32,
    /// The name reported as `type`: the element type's `typname` for array columns with
    /// `dims > 0`, otherwise the column type's own `typname` (upstream's rule, so an array
    /// column with `attndims = 0` reports e.g. `_int4`).
    pub type_name: String,
    /// `pg_attribute.attndims`; 0 for scalars.
    pub dims: i32,
    /// The column's type is an array type (`typcategory = 'A'`).
    pub is_array: bool,
    /// 0-based position in the primary key.
    pub pk_index: Option<u32>,
    pub not_null: bool,
    /// `pg_attribute.atttypmod`; -1 when absent.
    pub type_mod: i32,
    /// Kind of the column's type (of the array type itself for arrays, i.e. `Base`).
    pub type_kind: TypeKind,
    /// Kind of the element type for arrays, `None` otherwise.
    pub element_kind: Option<TypeKind>,
    /// A generated column (`attgenerated <> ''`).
    pub is_generated: bool,
    /// `format_type(atttypid, atttypmod)`, e.g. `character varying(12)[]`.
    pub formatted_type: String,
}

/// Column catalog query. `$1` must be replaced by a SQL expression of type `oid` naming the
/// table, e.g. the regclass literal `'"public"."items"'::regclass` (which raises
/// `undefined_table` if it does not exist) or use [`columns_query_for_table`], which matches by
/// name and returns no rows instead. Rows come in `attnum` order; each has 13 text columns, parsed
/// by [`parse_column_row`]. Only ordinary and partitioned tables match.
pub const COLUMNS_QUERY: &str = "SELECT a.attname, a.atttypid, t.typname, \
et.typname, t.typcategory = 'A', t.typtype, et.typtype, a.attndims, a.atttypmod, \
a.attnotnull, a.attgenerated <> '', array_position(pk.indkey, a.attnum), \
format_type(a.atttypid, a.atttypmod) \
FROM pg_catalog.pg_attribute a \
JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
LEFT JOIN pg_catalog.pg_type et ON t.typcategory = 'A' AND et.oid = t.typelem \
LEFT JOIN pg_catalog.pg_index pk ON pk.indrelid = c.oid AND pk.indisprimary \
WHERE c.oid = $1 AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped \
ORDER BY a.attnum";

/// Number of columns in each [`COLUMNS_QUERY`] row.
pub const COLUMNS_QUERY_WIDTH: usize = 13;

/// [`COLUMNS_QUERY`] for a table named by schema and name (as stored in the catalog, i.e.
/// already unquoted). Returns `None` if a name contains NUL, which no Postgres name can.
pub fn columns_query_for_table(schema: &str, name: &str) -> Option<String> {
    let oid = format!(
        "(SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n \
         ON n.oid = c.relnamespace WHERE n.nspname = {} AND c.relname = {})",
        quote_literal(schema)?,
        quote_literal(name)?
    );
    Some(COLUMNS_QUERY.replacen("$1", &oid, 1))
}

/// [`COLUMNS_QUERY`] for a known table oid.
pub fn columns_query_for_oid(oid: u32) -> String {
    COLUMNS_QUERY.replacen("$1", &format!("{oid}::oid"), 1)
}

/// An escape-string literal `E'…'` (valid whatever `standard_conforming_strings` is).
fn quote_literal(text: &str) -> Option<String> {
    if text.contains('\0') {
        return None;
    }
    let mut literal = String::with_capacity(text.len() + 3);
    literal.push_str("E'");
    for c in text.chars() {
        match c {
            '\'' => literal.push_str("''"),
            '\\' => literal.push_str("\\\\"),
            other => literal.push(other),
        }
    }
    literal.push('\'');
    Some(literal)
}

/// A [`COLUMNS_QUERY`] row that does not have the expected shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ColumnRowError {
    #[error("expected {COLUMNS_QUERY_WIDTH} columns, got {0}")]
    Width(usize),
    #[error("column {0} is unexpectedly NULL")]
    Null(usize),
    #[error("column {index} has unexpected value {value:?}")]
    Value { index: usize, value: String },
}

/// Parses one text-format row of [`COLUMNS_QUERY`].
pub fn parse_column_row(row: &[Option<&str>]) -> Result<ColumnInfo, ColumnRowError> {
    if row.len() != COLUMNS_QUERY_WIDTH {
        return Err(ColumnRowError::Width(row.len()));
    }
    let text = |index: usize| row[index].ok_or(ColumnRowError::Null(index));
    let bad = |index: usize, value: &str| ColumnRowError::Value {
        index,
        value: value.chars().take(64).collect(),
    };
    let number = |index: usize| -> Result<i64, ColumnRowError> {
        let value = text(index)?;
        value.parse().map_err(|_| bad(index, value))
    };
    let boolean = |index: usize| -> Result<bool, ColumnRowError> {
        match text(index)? {
            "t" => Ok(true),
            "f" => Ok(false),
            other => Err(bad(index, other)),
        }
    };
    let kind = |index: usize| -> Result<TypeKind, ColumnRowError> {
        let value = text(index)?;
        type_kind(value).ok_or_else(|| bad(index, value))
    };
    let dims = i32::try_from(number(7)?).map_err(|_| bad(7, text(7).unwrap_or_default()))?;
    let element_type = row[3];
    let own_type = text(2)?;
    let type_name = match element_type {
        Some(element) if dims > 0 => element,
        _ => own_type,
    };
    let pk_index = match row[11] {
        None => None,
        Some(value) => Some(value.parse().map_err(|_| bad(11, value))?),
    };
    Ok(ColumnInfo {
        name: text(0)?.to_owned(),
        type_oid: u32::try_from(number(1)?).map_err(|_| bad(1, text(1).unwrap_or_default()))?,
        type_name: type_name.to_owned(),
        dims,
        is_array: boolean(4)?,
        pk_index,
        not_null: boolean(9)?,
        type_mod: i32::try_from(number(8)?).map_err(|_| bad(8, text(8).unwrap_or_default()))?,
        type_kind: kind(5)?,
        element_kind: match row[6] {
            None => None,
            Some(_) => Some(kind(6)?),
        },
        is_generated: boolean(10)?,
        formatted_type: text(12)?.to_owned(),
    })
}

fn type_kind(code: &str) -> Option<TypeKind> {
    Some(match code {
        "b" => TypeKind::Base,
        "c" => TypeKind::Composite,
        "d" => TypeKind::Domain,
        "e" => TypeKind::Enum,
        "p" => TypeKind::Pseudo,
        "r" => TypeKind::Range,
        "m" => TypeKind::Multirange,
        _ => return None,
    })
}

/// A JSON value in a column's schema entry.
enum Entry<'a> {
    Int(i64),
    Str(&'a str),
    Owned(String),
    True,
}

/// The `electric-schema` header value for the given (selected) columns.
pub fn schema_header(cols: &[ColumnInfo]) -> String {
    let sorted: BTreeMap<&str, &ColumnInfo> =
        cols.iter().map(|col| (col.name.as_str(), col)).collect();
    let mut out = Vec::with_capacity(32 * cols.len() + 2);
    out.push(b'{');
    for (index, (name, col)) in sorted.into_iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        push_json_str(&mut out, name);
        out.push(b':');
        push_column_schema(&mut out, col);
    }
    out.push(b'}');
    String::from_utf8(out).expect("JSON built from str is UTF-8")
}

fn push_column_schema(out: &mut Vec<u8>, col: &ColumnInfo) {
    let mut entries: BTreeMap<&'static str, Entry<'_>> = BTreeMap::new();
    entries.insert("type", Entry::Str(&col.type_name));
    if col.dims != 0 {
        entries.insert("dims", Entry::Int(i64::from(col.dims)));
    }
    if let Some(pk_index) = col.pk_index {
        entries.insert("pk_index", Entry::Int(i64::from(pk_index)));
    }
    if col.not_null {
        entries.insert("not_null", Entry::True);
    }
    add_modifier(&mut entries, &col.type_name, col.type_mod);
    out.push(b'{');
    for (index, (key, value)) in entries.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        push_json_str(out, key);
        out.push(b':');
        match value {
            Entry::Int(number) => out.extend_from_slice(number.to_string().as_bytes()),
            Entry::Str(text) => push_json_str(out, text),
            Entry::Owned(text) => push_json_str(out, text),
            Entry::True => out.extend_from_slice(b"true"),
        }
    }
    out.push(b'}');
}

/// Types whose positive typmod is a precision (upstream: `timetz` plus the basic types in the
/// datetime category).
const TIME_TYPES: [&str; 5] = ["timetz", "date", "time", "timestamp", "timestamptz"];

/// Interval range bits (Postgres `INTERVAL_MASK`), in the order units are listed.
const INTERVAL_UNITS: [(&str, i32); 6] = [
    ("YEAR", 1 << 2),
    ("MONTH", 1 << 1),
    ("DAY", 1 << 3),
    ("HOUR", 1 << 10),
    ("MINUTE", 1 << 11),
    ("SECOND", 1 << 12),
];

/// All 15 range bits set: no fields were given.
const INTERVAL_FULL_RANGE: i32 = 0x7fff;

/// Interprets the type modifier; the first matching rule wins, as upstream.
fn add_modifier(entries: &mut BTreeMap<&'static str, Entry<'_>>, type_name: &str, type_mod: i32) {
    let type_mod_i64 = i64::from(type_mod);
    match type_name {
        "varchar" | "text" if type_mod > 0 => {
            entries.insert("max_length", Entry::Int(type_mod_i64 - 4));
        }
        "bpchar" if type_mod > 0 => {
            entries.insert("length", Entry::Int(type_mod_i64 - 4));
        }
        // No typmod guard upstream: an unsized varbit reports `length: -1`.
        "bit" | "varbit" => {
            entries.insert("length", Entry::Int(type_mod_i64));
        }
        "interval" if type_mod > -1 => {
            let (range, precision) = split_halves(type_mod);
            if range != INTERVAL_FULL_RANGE {
                entries.insert("fields", Entry::Owned(interval_fields(range)));
            }
            if precision != -1 {
                entries.insert("precision", Entry::Int(i64::from(precision)));
            }
        }
        name if type_mod > 0 && TIME_TYPES.contains(&name) => {
            entries.insert("precision", Entry::Int(type_mod_i64));
        }
        "numeric" if type_mod > -1 => {
            let (precision, scale) = split_halves(type_mod.wrapping_sub(4));
            entries.insert("precision", Entry::Int(i64::from(precision)));
            entries.insert("scale", Entry::Int(i64::from(scale)));
        }
        _ if type_mod > -1 => {
            entries.insert("type_mod", Entry::Int(type_mod_i64));
        }
        _ => {}
    }
}

/// High and low 16 bits of a 32-bit typmod, each as a signed 16-bit value.
fn split_halves(value: i32) -> (i32, i32) {
    let bits = value as u32;
    let high = i32::from((bits >> 16) as u16 as i16);
    let low = i32::from((bits & 0xffff) as u16 as i16);
    (high, low)
}

/// `YEAR`, `DAY TO SECOND`, …: the first and last unit whose bit is set. With no known bit set
/// upstream interpolates two nils, giving `" TO "`; reproduced for fidelity.
fn interval_fields(range: i32) -> String {
    let units: Vec<&str> = INTERVAL_UNITS
        .iter()
        .filter(|(_, mask)| range & mask > 0)
        .map(|(unit, _)| *unit)
        .collect();
    match units.as_slice() {
        [unit] => (*unit).to_owned(),
        _ => format!(
            "{} TO {}",
            units.first().copied().unwrap_or_default(),
            units.last().copied().unwrap_or_default()
        ),
    }
}

#[cfg(test)]
#[path = "schema_tests.rs"]
mod tests;
