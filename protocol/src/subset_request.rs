//! Separating a shape request into its shape parameters and its `subset` map (§2.6), from the
//! query string and, for POST, a JSON body (upstream `ServeShapePlug.parse_body/2`,
//! `validate_request/2`, `merge_body_params/2`):
//!
//! - query keys `subset__<name>` are gathered into the map `subset` (a plain `subset[...]`
//!   query key, when present, replaces that map, as upstream's `Map.new` ordering does);
//! - a body with a `subset` object merges every body key over the query parameters, and the
//!   body's `subset` over the query's;
//! - otherwise the body's `where`, `order_by`, `limit`, `offset`, `params`, `where_expr` and
//!   `order_by_expr` go into `subset` (merged over the query's), the other body keys over the
//!   query parameters; a body without any of those keys merges entirely into the query.
//!
//! The merged shape parameters are validated exactly as a decoded query string is
//! ([`crate::request::validate_shape_query`]), so GET and POST share every rule and message.
//! JSON scalars become their text; `null` and empty arrays and objects (which a query string
//! cannot express) are treated as absent. Keys stay literal: a body key `params[1]` or a query
//! key `params]` is not the `params` map (they are not encoded back into a query string and
//! decoded again, which would nest them).
//!
//! The router hands over the query parameters it already decoded ([`split_params`]); the
//! merged parameters are a second, owned map, built only for subset and POST requests.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::{Map, Value as Json};

use crate::errors::{self, ErrorResponse};
use crate::query_string::{parse_query_string, QueryParams, Value as Query};
use crate::request::{validate_shape_query, RequestError, ShapeQuery};

/// Body keys that belong to the subset when the body has no `subset` object.
const SUBSET_KEYS: [&str; 7] = [
    "where",
    "order_by",
    "limit",
    "offset",
    "params",
    "where_expr",
    "order_by_expr",
];

/// The query-string prefix of subset parameters.
const PREFIX: &str = "subset__";

/// A shape request split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeRequest {
    pub query: ShapeQuery,
    /// The raw `subset` map (`None`: an ordinary shape request). Not yet cast: see
    /// [`crate::subset::prepare`], which needs the table's columns.
    pub subset: Option<Json>,
}

/// Why a request was refused before its parameters could be validated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    /// A query-string or parameter validation error (as for GET).
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The POST body is not a JSON object: one of upstream's fixed 400 bodies.
    #[error("invalid request body: {}", .0.body)]
    Body(ErrorResponse),
}

/// Whether query parameters ask for a subset (any `subset__*` key, or a `subset[...]` map).
pub fn wants_subset(params: &QueryParams<'_>) -> bool {
    params.contains("subset") || params.has_key_starting_with(PREFIX)
}

/// Decodes a query string and splits the request ([`split_params`]).
pub fn split_request(raw_query: &str, body: Option<&[u8]>) -> Result<ShapeRequest, SplitError> {
    let params = parse_query_string(raw_query).map_err(RequestError::from)?;
    split_params(&params, body)
}

/// Splits a request from its decoded query parameters; `body` is the POST body (empty or
/// `None` for GET).
pub fn split_params(
    params: &QueryParams<'_>,
    body: Option<&[u8]>,
) -> Result<ShapeRequest, SplitError> {
    let mut shape: BTreeMap<String, Json> = BTreeMap::new();
    let mut prefixed: Map<String, Json> = Map::new();
    let mut plain_subset: Option<Json> = None;
    for (key, value) in params.iter() {
        if let Some(name) = key.strip_prefix(PREFIX) {
            prefixed.insert(name.to_owned(), query_to_json(value));
        } else if key == "subset" {
            plain_subset = Some(query_to_json(value));
        } else {
            shape.insert(key.to_owned(), query_to_json(value));
        }
    }
    let mut subset =
        plain_subset.or_else(|| (!prefixed.is_empty()).then_some(Json::Object(prefixed)));
    if let Some(body) = body.filter(|b| !b.is_empty()) {
        let object = parse_body(body)?;
        merge_body(&mut shape, &mut subset, object);
    }
    let params: QueryParams<'_> = shape
        .iter()
        .filter_map(|(key, value)| Some((Cow::Borrowed(key.as_str()), json_to_query(value)?)))
        .collect();
    let query = validate_shape_query(&params).map_err(RequestError::from)?;
    Ok(ShapeRequest { query, subset })
}

fn parse_body(body: &[u8]) -> Result<Map<String, Json>, SplitError> {
    match serde_json::from_slice::<Json>(body) {
        Ok(Json::Object(object)) => Ok(object),
        Ok(_) => Err(SplitError::Body(errors::body_not_object())),
        Err(e) => Err(SplitError::Body(errors::invalid_json_body(&e.to_string()))),
    }
}

/// Upstream's `merge_body_params/2`.
fn merge_body(
    shape: &mut BTreeMap<String, Json>,
    subset: &mut Option<Json>,
    mut body: Map<String, Json>,
) {
    let existing = match subset.take() {
        Some(Json::Object(map)) => map,
        // Upstream cannot merge into a non-map `subset` (it crashes); start afresh.
        _ => Map::new(),
    };
    if let Some(Json::Object(body_subset)) = body.get("subset").cloned() {
        body.remove("subset");
        shape.extend(body);
        let mut merged = existing;
        merged.extend(body_subset);
        *subset = Some(Json::Object(merged));
        return;
    }
    let mut from_body = Map::new();
    for key in SUBSET_KEYS {
        if let Some(value) = body.remove(key) {
            from_body.insert(key.to_owned(), value);
        }
    }
    if from_body.is_empty() {
        // A `subset` that is not an object stays a shape parameter and fails as `is invalid`.
        if let Some(value) = body.remove("subset") {
            *subset = Some(value);
        } else if !existing.is_empty() {
            *subset = Some(Json::Object(existing));
        }
        shape.extend(body);
        return;
    }
    shape.extend(body);
    let mut merged = existing;
    merged.extend(from_body);
    *subset = Some(Json::Object(merged));
}

fn query_to_json(value: &Query<'_>) -> Json {
    match value {
        Query::String(text) => Json::String(text.to_string()),
        Query::List(items) => Json::Array(items.iter().map(query_to_json).collect()),
        Query::Map(map) => Json::Object(
            map.iter()
                .map(|(k, v)| (k.to_string(), query_to_json(v)))
                .collect(),
        ),
    }
}

/// A shape parameter from the query or the body as the query-string decoder holds values:
/// scalars as their text; `None` for `null` and for arrays and objects with nothing else in
/// them (a query string cannot express them). Text borrows from `value`.
fn json_to_query(value: &Json) -> Option<Query<'_>> {
    match value {
        Json::Null => None,
        Json::String(text) => Some(Query::String(Cow::Borrowed(text))),
        Json::Bool(flag) => Some(Query::String(Cow::Borrowed(if *flag {
            "true"
        } else {
            "false"
        }))),
        Json::Number(number) => Some(Query::String(Cow::Owned(number.to_string()))),
        Json::Array(items) => {
            let items: Vec<Query<'_>> = items.iter().filter_map(json_to_query).collect();
            (!items.is_empty()).then_some(Query::List(items))
        }
        Json::Object(map) => {
            let map: BTreeMap<Cow<'_, str>, Query<'_>> = map
                .iter()
                .filter_map(|(key, item)| Some((Cow::Borrowed(key.as_str()), json_to_query(item)?)))
                .collect();
            (!map.is_empty()).then_some(Query::Map(map))
        }
    }
}
