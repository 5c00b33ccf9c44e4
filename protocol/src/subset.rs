//! Subset snapshot parameters (§2.6): casting the `subset` map (from `subset__*` query keys or
//! a POST body), checking it against the table, and rendering its SQL.
//!
//! Mirrors upstream's `Api.Params.SubsetParams` (an Ecto embedded schema) and
//! `Shapes.Shape.Subset.new/3`:
//! 1. cast `where`, `order_by` (strings), `limit`, `offset` (integers) and `params` (a JSON
//!    object string or a map, values stringified); cast failures are collected together;
//! 2. `limit > 0`, `offset >= 0`, and `order_by` required when either is present;
//! 3. only then, against the (queryable) columns: `order_by` (plain column references), then
//!    `where` (no subqueries, `params` numbered from 1, boolean).
//!
//! Errors nest under `subset`: `{"message":"Invalid request","errors":{"subset":{"limit":[…]}}}`.
//! Nothing the client sends reaches SQL as text: `where` is re-rendered from its typed tree with
//! parameters inlined as literals, and `order_by` from its column references.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::elixir_int::{parse_elixir_int, ElixirInt};
use crate::json::push_json_str;
use crate::where_clause::{self, ColumnType, WhereError};

#[path = "subset_order_by.rs"]
mod order_by;
#[path = "subset_request.rs"]
mod request;

pub use request::{split_params, split_request, wants_subset, ShapeRequest, SplitError};

const IS_INVALID: &str = "is invalid";

/// A subset request that cannot be served; renders as upstream's 400 body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubsetError {
    /// `errors.subset.<field>: [messages]`, fields in name order.
    #[error("invalid subset: {0:?}")]
    Fields(BTreeMap<String, Vec<String>>),
    /// `subset` itself is not a map: `errors.subset: ["is invalid"]`.
    #[error("subset is not a map")]
    NotAMap,
}

impl SubsetError {
    fn single(field: &str, message: impl Into<String>) -> SubsetError {
        let mut fields = BTreeMap::new();
        fields.insert(field.to_owned(), vec![message.into()]);
        SubsetError::Fields(fields)
    }

    /// Always 400.
    pub const fn status(&self) -> u16 {
        400
    }

    /// The JSON body, `message` first like [`crate::validation::ValidationErrors::body`].
    pub fn body(&self) -> String {
        let mut out = Vec::with_capacity(96);
        out.extend_from_slice(br#"{"message":"Invalid request","errors":{"subset":"#);
        match self {
            SubsetError::NotAMap => out.extend_from_slice(br#"["is invalid"]"#),
            SubsetError::Fields(fields) => crate::validation::push_field_errors(&mut out, fields),
        }
        out.extend_from_slice(b"}}");
        String::from_utf8(out).expect("JSON built from str is UTF-8")
    }
}

/// The 400 body for an error Postgres raised while running the subset query (upstream: an
/// invalid enum literal in `where`). Upstream puts a bare string here, not a list.
pub fn query_error_body(field: &str, message: &str) -> String {
    let mut out = Vec::with_capacity(96 + message.len());
    out.extend_from_slice(br#"{"message":"Invalid request","errors":{"subset":{"#);
    push_json_str(&mut out, field);
    out.push(b':');
    push_json_str(&mut out, message);
    out.extend_from_slice(b"}}}");
    String::from_utf8(out).expect("JSON built from str is UTF-8")
}

/// Where a subset snapshot stands relative to the replication stream (the response's
/// `metadata`): `pg_current_snapshot()` and `pg_current_wal_lsn()` of its transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotMetadata {
    pub xmin: u64,
    pub xmax: u64,
    pub xip_list: Vec<u64>,
    /// Random `0..2^31`, repeated in every row's `snapshot_mark` header.
    pub snapshot_mark: u32,
    pub database_lsn: u64,
}

impl SnapshotMetadata {
    /// `{"metadata":{…}, "data": ` — the body up to its data array, which the caller follows
    /// with `[rows…]` and [`RESPONSE_TAIL`]. Keys in upstream's (Jason's sorted) order; xids
    /// and the LSN are strings so JavaScript keeps full precision.
    pub fn response_head(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.xip_list.len() * 12);
        out.extend_from_slice(br#"{"metadata":{"database_lsn":""#);
        out.extend_from_slice(self.database_lsn.to_string().as_bytes());
        out.extend_from_slice(br#"","snapshot_mark":"#);
        out.extend_from_slice(self.snapshot_mark.to_string().as_bytes());
        out.extend_from_slice(br#","xip_list":["#);
        for (index, xid) in self.xip_list.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            out.extend_from_slice(format!("\"{xid}\"").as_bytes());
        }
        out.extend_from_slice(br#"],"xmax":""#);
        out.extend_from_slice(self.xmax.to_string().as_bytes());
        out.extend_from_slice(br#"","xmin":""#);
        out.extend_from_slice(self.xmin.to_string().as_bytes());
        // Upstream writes these separators with spaces.
        out.extend_from_slice(br#""}, "data": "#);
        out
    }
}

/// Closes the body opened by [`SnapshotMetadata::response_head`] after the data array.
pub const RESPONSE_TAIL: &[u8] = b"}";

/// Appends `,"snapshot_mark":<mark>` to the headers of an encoded snapshot row, which ends in
/// the `}}` closing its headers and itself.
pub fn push_row_with_mark(out: &mut Vec<u8>, row: &[u8], mark: u32) {
    assert!(row.ends_with(b"}}"), "an encoded row ends with its headers");
    out.extend_from_slice(&row[..row.len() - 2]);
    out.extend_from_slice(b",\"snapshot_mark\":");
    out.extend_from_slice(mark.to_string().as_bytes());
    out.extend_from_slice(b"}}");
}

/// The cast `subset` fields, before they are checked against the table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubsetCast {
    pub where_clause: Option<String>,
    /// `params` keys (decimal numbers, checked later) to stringified values.
    pub params: BTreeMap<String, String>,
    pub order_by: Option<String>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

/// A validated subset, ready to be added to the shape's query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subset {
    /// Canonical SQL of `where` (params inlined, identifiers quoted).
    pub where_sql: Option<String>,
    /// Canonical `ORDER BY` list: quoted columns with direction and NULLS placement.
    pub order_by_sql: Option<String>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

impl Subset {
    /// ` ORDER BY … LIMIT … OFFSET …` (each part only when set), to follow the WHERE clause.
    pub fn tail_sql(&self) -> String {
        let mut sql = String::new();
        if let Some(order_by) = &self.order_by_sql {
            sql.push_str(" ORDER BY ");
            sql.push_str(order_by);
        }
        if let Some(limit) = self.limit {
            sql.push_str(&format!(" LIMIT {limit}"));
        }
        if let Some(offset) = self.offset {
            sql.push_str(&format!(" OFFSET {offset}"));
        }
        sql
    }
}

/// Casts and validates the `subset` map against `columns` (the table's columns, already
/// narrowed to `queryable_columns` when the request lists them).
pub fn prepare(subset: &Value, columns: &[ColumnType]) -> Result<Subset, SubsetError> {
    let cast = cast(subset)?;
    let order_by_sql = match &cast.order_by {
        None => None,
        Some(text) => Some(
            order_by::parse_order_by(text, columns)
                .map_err(|message| SubsetError::single("order_by", message))?,
        ),
    };
    let where_sql = match &cast.where_clause {
        None => None,
        Some(text) => Some(where_sql(text, &cast.params, columns)?),
    };
    Ok(Subset {
        where_sql,
        order_by_sql,
        limit: cast.limit,
        offset: cast.offset,
    })
}

/// The cast phase and the number checks (no table needed).
pub fn cast(subset: &Value) -> Result<SubsetCast, SubsetError> {
    let Value::Object(map) = subset else {
        return Err(SubsetError::NotAMap);
    };
    let mut errors: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut fail = |field: &str, message: &str| {
        errors
            .entry(field.to_owned())
            .or_default()
            .push(message.to_owned());
    };
    let mut cast = SubsetCast::default();
    match cast_string(map.get("order_by")) {
        Ok(value) => cast.order_by = value,
        Err(()) => fail("order_by", IS_INVALID),
    }
    match cast_integer(map.get("limit")) {
        Ok(value) => cast.limit = value,
        Err(()) => fail("limit", IS_INVALID),
    }
    match cast_integer(map.get("offset")) {
        Ok(value) => cast.offset = value,
        Err(()) => fail("offset", IS_INVALID),
    }
    match cast_string(map.get("where")) {
        Ok(value) => cast.where_clause = value,
        Err(()) => fail("where", IS_INVALID),
    }
    match cast_params(map.get("params")) {
        Ok(value) => cast.params = value,
        Err(message) => fail("params", message),
    }
    if cast.limit.is_some_and(|limit| limit <= 0) {
        fail("limit", "must be greater than 0");
    }
    if cast.offset.is_some_and(|offset| offset < 0) {
        fail("offset", "must be greater than or equal to 0");
    }
    if (cast.limit.is_some() || cast.offset.is_some()) && cast.order_by.is_none() {
        fail(
            "order_by",
            "order_by is required when limit or offset is present",
        );
    }
    if errors.is_empty() {
        Ok(cast)
    } else {
        Err(SubsetError::Fields(errors))
    }
}

/// Ecto `:string`: a blank string counts as absent; anything but a string is invalid.
fn cast_string(value: Option<&Value>) -> Result<Option<String>, ()> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.trim().is_empty() => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(()),
    }
}

/// Ecto `:integer`: a JSON integer, or a string holding exactly `[+-]?[0-9]+`. Floats are
/// invalid, as are integers outside `i64` (Postgres's LIMIT/OFFSET range).
fn cast_integer(value: Option<&Value>) -> Result<Option<i64>, ()> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(number)) => number.as_i64().map(Some).ok_or(()),
        Some(Value::String(text)) if text.trim().is_empty() => Ok(None),
        Some(Value::String(text)) => match parse_elixir_int(text) {
            ElixirInt::Value(value) => i64::try_from(value).map(Some).map_err(|_| ()),
            ElixirInt::Overflow { .. } | ElixirInt::Invalid => Err(()),
        },
        Some(_) => Err(()),
    }
}

/// Upstream's `JsonOrMapStringParams`: a JSON object in a string, or a map; values are
/// stringified as Elixir's `to_string/1` does for scalars (`null` becomes `""`).
fn cast_params(value: Option<&Value>) -> Result<BTreeMap<String, String>, &'static str> {
    let decoded;
    let object = match value {
        None | Some(Value::Null) => return Ok(BTreeMap::new()),
        Some(Value::String(text)) if text.trim().is_empty() => return Ok(BTreeMap::new()),
        Some(Value::String(text)) => {
            decoded =
                serde_json::from_str::<Value>(text).map_err(|_| "params must be valid JSON")?;
            match &decoded {
                Value::Object(object) => object,
                _ => return Err("params must be a JSON object"),
            }
        }
        Some(Value::Object(object)) => object,
        Some(_) => return Err(IS_INVALID),
    };
    let mut params = BTreeMap::new();
    for (key, value) in object {
        let text = match value {
            Value::String(text) => text.clone(),
            Value::Number(number) => number.to_string(),
            Value::Bool(flag) => flag.to_string(),
            Value::Null => String::new(),
            // Upstream crashes (a 500) on nested values; a 400 says more.
            Value::Array(_) | Value::Object(_) => return Err(IS_INVALID),
        };
        params.insert(key.clone(), text);
    }
    Ok(params)
}

/// Parses `where` with the subset's params and renders it. Errors land under `where`, or
/// under `params` for parameter problems.
fn where_sql(
    text: &str,
    params: &BTreeMap<String, String>,
    columns: &[ColumnType],
) -> Result<String, SubsetError> {
    let positional =
        positional_params(params).map_err(|message| SubsetError::single("params", message))?;
    match where_clause::parse(text, &positional, columns) {
        Ok(predicate) => Ok(predicate.to_sql()),
        Err(e) if e.is_params_error() => Err(SubsetError::single("params", e.to_string())),
        Err(WhereError::Invalid { message, .. }) if message == "subqueries are not supported" => {
            Err(SubsetError::single(
                "where",
                "Subqueries are not allowed in subsets",
            ))
        }
        Err(e) => Err(SubsetError::single("where", e.to_string())),
    }
}

/// Orders params by numeric key (Elixir `Integer.parse` rules: `01` and `+1` are 1) and
/// requires the keys to be exactly `1..=n`.
fn positional_params(params: &BTreeMap<String, String>) -> Result<Vec<String>, &'static str> {
    if params.len() > where_clause::PARAMS_MAX {
        return Err("Parameters must be numbered sequentially, starting from 1");
    }
    let mut numbered = Vec::with_capacity(params.len());
    for (key, value) in params {
        let number = match parse_elixir_int(key) {
            ElixirInt::Value(number) => Some(number),
            ElixirInt::Overflow { .. } => None,
            ElixirInt::Invalid => return Err("Parameters can only use numbers as keys"),
        };
        numbered.push((number, value));
    }
    numbered.sort_by_key(|(number, _)| *number);
    let sequential = numbered
        .iter()
        .enumerate()
        .all(|(index, (number, _))| *number == i128::try_from(index + 1).ok());
    if !sequential {
        return Err("Parameters must be numbered sequentially, starting from 1");
    }
    Ok(numbered.into_iter().map(|(_, v)| v.clone()).collect())
}

#[cfg(test)]
#[path = "subset_tests.rs"]
mod tests;
