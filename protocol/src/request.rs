//! Validation of `GET /v1/shape` and `DELETE /v1/shape` query parameters (§2.1, §2.3, §3).
//!
//! Mirrors upstream's sequence (`Api.Params.validate/2`):
//! 1. cast every known parameter (several fields may fail together), and require `offset`;
//! 2. parse `offset`; 3. require `handle` unless the offset is `-1`/`now` (then drop it);
//! 4. forbid `live` with `-1`/`now`; 5. forbid `live_sse` without `live`;
//! 6. require and parse `table`.
//!
//! Each step after the first runs only if everything before it passed, so from step 2 on a
//! response carries exactly one error. Checks that need the database (table existence, column
//! lists, WHERE typing, `params` numbering) come after step 6 and are the engine's job; this
//! module provides their messages (see [`crate::validation`]) and the `params` check
//! ([`ShapeQuery::params_error`]).
//!
//! Validation reads parameters decoded once by the caller ([`QueryParams`], borrowed from the
//! query string); the validated request is owned, as it travels to the core owning the shape,
//! and copies only the text it keeps.

use crate::elixir_int::{parse_elixir_int, ElixirInt};
use crate::ident::{parse_table, QualifiedTable};
use crate::offset::OffsetParam;
use crate::query_string::{parse_query_string, QueryParams, QueryStringError};
use crate::request_cast::{
    cast_bool, cast_bool_value, cast_columns, cast_enum, cast_string, cast_string_map,
    truthy_unless_false,
};
use crate::validation::ValidationErrors;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Replica {
    Default,
    Full,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogMode {
    Full,
    ChangesOnly,
}

/// Why the `params` map cannot be used; `Display` is the exact upstream message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ParamsError {
    #[error("Parameters can only use numbers as keys")]
    NonNumericKeys,
    #[error("Parameters must be numbered sequentially, starting from 1")]
    NotSequential,
}

impl ParamsError {
    /// The 400 response for this error (`errors.params`).
    pub fn to_validation_errors(self) -> ValidationErrors {
        ValidationErrors::single("params", self.to_string())
    }
}

/// A validated shape request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeQuery {
    /// Always `Some` for requests accepted by [`validate_shape_query`] (Ampere has no
    /// server-predefined shape, so `table` is required).
    pub table: Option<QualifiedTable>,
    pub offset: OffsetParam,
    /// `None` when absent and always `None` for offset `-1`/`now` (upstream drops it).
    pub handle: Option<String>,
    pub live: bool,
    pub live_sse: bool,
    /// Raw `cursor` parameter, only used to compute the next `electric-cursor`.
    pub cursor: Option<String>,
    pub where_clause: Option<String>,
    /// Values for `$1`, `$2`, … in order; empty when `params_error` is set.
    pub params: Vec<String>,
    /// Set when the `params` keys are unusable. Upstream reports this only when a `where`
    /// clause is present, after the table/column checks and after the WHERE clause parsed
    /// successfully; the engine should report it at that point.
    pub params_error: Option<ParamsError>,
    pub columns: Option<Vec<String>>,
    pub queryable_columns: Option<Vec<String>>,
    pub replica: Replica,
    pub log: LogMode,
    pub experimental_compaction: bool,
    /// Any `subset__*` parameter is present (a subset snapshot request, §2.6).
    pub has_subset: bool,
}

impl ShapeQuery {
    /// The 400 for a parameter upstream implements and Ampere does not (today only
    /// `experimental_compaction=true`). Upstream checks compaction after the shape (and any
    /// subset) validated, so callers ask only then. Unknown parameters are not refused: clients
    /// add their own as cache busters.
    pub fn unsupported_option(&self) -> Option<ValidationErrors> {
        self.experimental_compaction
            .then(crate::validation::compaction_not_supported)
    }
}

/// A validated `DELETE /v1/shape` request: by definition (`table` set, `handle` optional) or
/// by handle alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteQuery {
    pub table: Option<QualifiedTable>,
    pub handle: Option<String>,
    pub where_clause: Option<String>,
    pub params: Vec<String>,
    pub params_error: Option<ParamsError>,
    pub columns: Option<Vec<String>>,
    pub queryable_columns: Option<Vec<String>>,
    pub replica: Replica,
    pub log: LogMode,
    pub experimental_compaction: bool,
}

/// A request that cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The query string itself is undecodable (see [`crate::errors::malformed_query_string`]).
    #[error(transparent)]
    MalformedQueryString(#[from] QueryStringError),
    /// A 400 "Invalid request" with per-field messages.
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
}

/// Decodes and validates a `GET`/`POST /v1/shape` query string (the router decodes once and
/// calls [`validate_shape_query`] itself).
pub fn parse_shape_query(raw_query: &str) -> Result<ShapeQuery, RequestError> {
    Ok(validate_shape_query(&parse_query_string(raw_query)?)?)
}

/// Decodes and validates a `DELETE /v1/shape` query string.
pub fn parse_delete_query(raw_query: &str) -> Result<DeleteQuery, RequestError> {
    Ok(validate_delete_query(&parse_query_string(raw_query)?)?)
}

/// Parameters shared by GET and DELETE after the cast phase, text still borrowed.
struct Cast<'p> {
    table: Option<&'p str>,
    offset: Option<&'p str>,
    handle: Option<&'p str>,
    where_clause: Option<&'p str>,
    params: Vec<String>,
    params_error: Option<ParamsError>,
    columns: Option<Vec<String>>,
    queryable_columns: Option<Vec<String>>,
    replica: Replica,
    log: LogMode,
    experimental_compaction: bool,
}

fn cast_common<'p>(params: &'p QueryParams<'_>, errors: &mut ValidationErrors) -> Cast<'p> {
    let raw_params = cast_string_map(params, "params", errors);
    let (positional, params_error) = match positional_params(raw_params) {
        Ok(values) => (values, None),
        Err(err) => (Vec::new(), Some(err)),
    };
    Cast {
        table: cast_string(params, "table", errors),
        offset: cast_string(params, "offset", errors),
        handle: cast_string(params, "handle", errors),
        where_clause: cast_string(params, "where", errors),
        params: positional,
        params_error,
        columns: cast_columns(params, "columns", errors),
        queryable_columns: cast_columns(params, "queryable_columns", errors),
        replica: cast_enum(
            params,
            "replica",
            &[("default", Replica::Default), ("full", Replica::Full)],
            Replica::Default,
            errors,
        ),
        log: cast_enum(
            params,
            "log",
            &[
                ("full", LogMode::Full),
                ("changes_only", LogMode::ChangesOnly),
            ],
            LogMode::Full,
            errors,
        ),
        experimental_compaction: cast_bool(params, "experimental_compaction", errors),
    }
}

/// Validates decoded query parameters of a shape request.
pub fn validate_shape_query(params: &QueryParams<'_>) -> Result<ShapeQuery, ValidationErrors> {
    let mut errors = ValidationErrors::new();
    let cast = cast_common(params, &mut errors);
    let live = truthy_unless_false(params.get("live"));
    // `experimental_live_sse` is a deprecated alias consulted only when `live_sse` is absent,
    // and then cast as a strict boolean (errors are reported under `live_sse`).
    let live_sse = if params.contains("live_sse") {
        truthy_unless_false(params.get("live_sse"))
    } else {
        cast_bool_value(params.get("experimental_live_sse"), "live_sse", &mut errors)
    };
    if cast.offset.is_none() && !errors.has("offset") {
        errors.add("offset", "can't be blank");
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let offset: OffsetParam =
        cast.offset
            .unwrap_or_default()
            .parse()
            .map_err(|err: crate::offset::InvalidOffset| {
                ValidationErrors::single("offset", err.to_string())
            })?;
    let handle = match offset {
        OffsetParam::BeforeAll | OffsetParam::Now => None,
        OffsetParam::At(_) => Some(cast.handle.map(str::to_owned).ok_or_else(|| {
            ValidationErrors::single("handle", "can't be blank when offset != -1")
        })?),
    };
    match offset {
        OffsetParam::BeforeAll if live => {
            return Err(ValidationErrors::single(
                "live",
                "can't be true when offset == -1",
            ))
        }
        OffsetParam::Now if live => {
            return Err(ValidationErrors::single(
                "live",
                "can't be true when offset is 'now'",
            ))
        }
        _ => {}
    }
    if live_sse && !live {
        return Err(ValidationErrors::single(
            "live_sse",
            "can't be true unless live is also true",
        ));
    }
    let table = required_table(cast.table)?;
    Ok(ShapeQuery {
        table: Some(table),
        offset,
        handle,
        live,
        live_sse,
        cursor: params.get_str("cursor").map(str::to_owned),
        where_clause: cast.where_clause.map(str::to_owned),
        params: cast.params,
        params_error: cast.params_error,
        columns: cast.columns,
        queryable_columns: cast.queryable_columns,
        replica: cast.replica,
        log: cast.log,
        experimental_compaction: cast.experimental_compaction,
        has_subset: params.has_key_starting_with("subset__"),
    })
}

fn required_table(table: Option<&str>) -> Result<QualifiedTable, ValidationErrors> {
    let text = table.ok_or_else(|| ValidationErrors::single("table", "can't be blank"))?;
    parse_table(text).map_err(|err| ValidationErrors::single("table", err.to_string()))
}

/// Validates decoded query parameters of a DELETE request. `offset`/`live` are not checked
/// beyond their types (upstream casts them with the same schema but never uses them).
pub fn validate_delete_query(params: &QueryParams<'_>) -> Result<DeleteQuery, ValidationErrors> {
    let mut errors = ValidationErrors::new();
    let cast = cast_common(params, &mut errors);
    // No GET-style truthiness here: DELETE casts these as strict booleans.
    cast_bool(params, "live", &mut errors);
    cast_bool(params, "live_sse", &mut errors);
    let table = match cast.table {
        Some(text) => {
            if !errors.is_empty() {
                return Err(errors);
            }
            Some(required_table(Some(text))?)
        }
        None => {
            if cast.handle.is_none() && !errors.has("handle") {
                errors.add("handle", "can't be blank when shape definition is missing");
            }
            if !errors.is_empty() {
                return Err(errors);
            }
            None
        }
    };
    Ok(DeleteQuery {
        table,
        handle: cast.handle.map(str::to_owned),
        where_clause: cast.where_clause.map(str::to_owned),
        params: cast.params,
        params_error: cast.params_error,
        columns: cast.columns,
        queryable_columns: cast.queryable_columns,
        replica: cast.replica,
        log: cast.log,
        experimental_compaction: cast.experimental_compaction,
    })
}

/// Orders `params` by numeric key and checks the keys are exactly `1..=n` (keys are parsed
/// like Elixir's `Integer.parse`, so `01` and `+1` both mean 1 and then collide).
fn positional_params(raw: Vec<(&str, &str)>) -> Result<Vec<String>, ParamsError> {
    let mut numbered = Vec::with_capacity(raw.len());
    for (key, value) in raw {
        let number = match parse_elixir_int(key) {
            ElixirInt::Value(number) => Some(number),
            // Well-formed but huge: a number, just never the next in sequence.
            ElixirInt::Overflow { .. } => None,
            ElixirInt::Invalid => return Err(ParamsError::NonNumericKeys),
        };
        numbered.push((number, value));
    }
    numbered.sort_by_key(|(number, _)| *number);
    let sequential = numbered
        .iter()
        .enumerate()
        .all(|(index, (number, _))| *number == i128::try_from(index + 1).ok());
    if !sequential {
        return Err(ParamsError::NotSequential);
    }
    Ok(numbered
        .into_iter()
        .map(|(_, value)| value.to_owned())
        .collect())
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
