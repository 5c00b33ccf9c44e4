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

/// Whether a GET query string asks for a subset (any `subset__*` key, or a `subset[...]` map).
/// Cheap: decodes the query only when it contains escapes.
pub fn query_has_subset(raw_query: &str) -> bool {
    if raw_query.contains("subset") {
        return true;
    }
    raw_query.contains('%')
        && parse_query_string(raw_query).is_ok_and(|params| {
            params
                .keys()
                .any(|k| k == "subset" || k.starts_with(PREFIX))
        })
}

/// Splits a request; `body` is the POST body (empty or `None` for GET).
pub fn split_request(raw_query: &str, body: Option<&[u8]>) -> Result<ShapeRequest, SplitError> {
    let params = parse_query_string(raw_query).map_err(RequestError::from)?;
    let mut shape: BTreeMap<String, Json> = BTreeMap::new();
    let mut prefixed: Map<String, Json> = Map::new();
    let mut plain_subset: Option<Json> = None;
    for key in params.keys() {
        let Some(value) = params.get(key) else {
            continue;
        };
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
    let params: QueryParams = shape
        .iter()
        .filter_map(|(key, value)| Some((key.clone(), json_to_query(value)?)))
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

fn query_to_json(value: &Query) -> Json {
    match value {
        Query::String(text) => Json::String(text.clone()),
        Query::List(items) => Json::Array(items.iter().map(query_to_json).collect()),
        Query::Map(map) => Json::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), query_to_json(v)))
                .collect(),
        ),
    }
}

/// A shape parameter from the query or the body as the query-string decoder holds values:
/// scalars as their text; `None` for `null` and for arrays and objects with nothing else in
/// them (a query string cannot express them).
fn json_to_query(value: &Json) -> Option<Query> {
    match value {
        Json::Null => None,
        Json::String(text) => Some(Query::String(text.clone())),
        Json::Bool(flag) => Some(Query::String(flag.to_string())),
        Json::Number(number) => Some(Query::String(number.to_string())),
        Json::Array(items) => {
            let items: Vec<Query> = items.iter().filter_map(json_to_query).collect();
            (!items.is_empty()).then_some(Query::List(items))
        }
        Json::Object(map) => {
            let map: BTreeMap<String, Query> = map
                .iter()
                .filter_map(|(key, item)| Some((key.clone(), json_to_query(item)?)))
                .collect();
            (!map.is_empty()).then_some(Query::Map(map))
        }
    }
}
