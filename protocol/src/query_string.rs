//! Query-string decoding with the semantics of Plug's `Plug.Conn.Query.decode/1`, which is what
//! upstream validates against (§2.1):
//!
//! - pairs are separated by `&`; empty pairs are skipped; a pair without `=` has value `""`;
//! - keys and values are `application/x-www-form-urlencoded`: `+` is a space, `%XX` a byte; a
//!   malformed escape or a result that is not UTF-8 rejects the whole query string;
//! - a key ending in `]` is nested: `params[1]=a` is the map `{"1": "a"}`, `a[]=x` appends to a
//!   list, `a[b][c]=x` nests deeper;
//! - when a key repeats, the later pair wins (maps are merged key by key).
//!
//! The router decodes a request's query string once and authorization, admission, subset
//! detection and validation all read that one [`QueryParams`]; so decoding borrows: a key or
//! value is a slice of the raw query unless it was escaped, and the parameters are one `Vec`
//! (a request has a handful), not a map with a node and a `String` per key.
//!
//! The caller bounds the query length (HTTP request-line limit); nesting depth is bounded here
//! so a hostile key cannot recurse deeply.

use std::borrow::Cow;
use std::collections::btree_map::{BTreeMap, Entry};

/// Maximum number of `[...]` segments in one key; far above anything a client sends.
pub const MAX_KEY_DEPTH: usize = 16;

/// Room for the parameters of a typical shape request, so decoding allocates once.
const TYPICAL_PAIRS: usize = 8;

/// Up to this many keys, [`QueryParams::get`] scans instead of searching.
const LINEAR_SEARCH_MAX: usize = 16;

/// One decoded parameter value; its text borrows from the query string unless it was escaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    String(Cow<'a, str>),
    List(Vec<Value<'a>>),
    Map(BTreeMap<Cow<'a, str>, Value<'a>>),
}

impl Value<'_> {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
}

/// The empty string, as Plug starts every value (and what `mem::take` leaves behind).
impl Default for Value<'_> {
    fn default() -> Self {
        Value::String(Cow::Borrowed(""))
    }
}

/// The query string could not be decoded at all (Plug raises `InvalidQueryError`, a 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryStringError {
    #[error("invalid percent-encoding in query string")]
    InvalidPercentEncoding,
    #[error("query string is not valid UTF-8")]
    InvalidUtf8,
    #[error("query parameter key nests deeper than {MAX_KEY_DEPTH} levels")]
    TooDeep,
}

/// Decoded query parameters: top-level key → value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryParams<'a> {
    /// Sorted by key, each key once: lookups are a binary search and iteration is in key order,
    /// as it was when this was a map.
    entries: Vec<(Cow<'a, str>, Value<'a>)>,
}

impl<'a> QueryParams<'a> {
    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        if self.entries.len() <= LINEAR_SEARCH_MAX {
            // A request has a handful of keys: comparing lengths first rejects almost every
            // other key without looking at its bytes, cheaper than ordering them.
            return self
                .entries
                .iter()
                .find(|(entry, _)| entry.as_ref() == key)
                .map(|(_, value)| value);
        }
        self.entries
            .binary_search_by(|(entry, _)| entry.as_ref().cmp(key))
            .ok()
            .map(|index| &self.entries[index].1)
    }

    /// The value of `key` if it is a plain string.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Whether some key starts with `prefix` (the keys sharing a prefix are adjacent).
    pub fn has_key_starting_with(&self, prefix: &str) -> bool {
        let first = self
            .entries
            .partition_point(|(key, _)| key.as_ref() < prefix);
        self.entries
            .get(first)
            .is_some_and(|(key, _)| key.starts_with(prefix))
    }

    /// Keys in sorted order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(key, _)| key.as_ref())
    }

    /// Keys and values, keys in sorted order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value<'a>)> {
        self.entries
            .iter()
            .map(|(key, value)| (key.as_ref(), value))
    }

    /// The API secret sent by the client: `secret`, or the legacy `api_secret` when `secret` is
    /// absent (§1.3). A `secret` that is not a plain string yields `None` (never authorised).
    pub fn secret(&self) -> Option<&str> {
        match self.get("secret") {
            Some(value) => value.as_str(),
            None => self.get_str("api_secret"),
        }
    }
}

/// Parameters already decoded (a POST body's, merged with the query's); a repeated key
/// replaces the earlier value.
impl<'a> FromIterator<(Cow<'a, str>, Value<'a>)> for QueryParams<'a> {
    fn from_iter<I: IntoIterator<Item = (Cow<'a, str>, Value<'a>)>>(pairs: I) -> Self {
        let mut entries: Vec<_> = pairs.into_iter().collect();
        // Stable, so the pairs of one key stay in order and the last one is kept.
        entries.sort_by(|(a, _), (b, _)| a.cmp(b));
        entries.dedup_by(|(later_key, later), (key, kept)| {
            let same = later_key == key;
            if same {
                std::mem::swap(later, kept);
            }
            same
        });
        QueryParams { entries }
    }
}

/// Decodes a raw query string (without the leading `?`).
///
/// Each pair becomes its own entry first (`a[b][c]=x` as `a` → `{b: {c: x}}`); the entries are
/// then sorted by key (stably, so a key's pairs stay in arrival order) and the pairs of one key
/// merged in order. This is Plug's pair-by-pair fold, without a quadratic search for the key of
/// every pair in a hostile query of thousands of keys.
pub fn parse_query_string(raw: &str) -> Result<QueryParams<'_>, QueryStringError> {
    let mut entries = Vec::with_capacity(TYPICAL_PAIRS);
    for pair in raw.split('&').filter(|pair| !pair.is_empty()) {
        let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decode_component(raw_key)?;
        let value = Value::String(decode_component(raw_value)?);
        entries.push(nest(key, value)?);
    }
    entries.sort_by(|(a, _), (b, _)| a.cmp(b));
    entries.dedup_by(|(later_key, later), (key, kept)| {
        let same = later_key == key;
        if same {
            merge(kept, std::mem::take(later));
        }
        same
    });
    Ok(QueryParams { entries })
}

/// Splits a nested key into its top-level key and the value it stands for:
/// `users[address][street]`, `x` → `users`, `{address: {street: x}}`; `a[]`, `x` → `a`, `[x]`.
/// Only keys ending in `]` are nested, as in Plug; `a]` is the plain key `a` there too.
fn nest<'a>(
    key: Cow<'a, str>,
    value: Value<'a>,
) -> Result<(Cow<'a, str>, Value<'a>), QueryStringError> {
    if !key.ends_with(']') {
        return Ok((key, value));
    }
    match key {
        Cow::Borrowed(key) => nest_parts(key, value, Cow::Borrowed),
        // An escaped nested key: its parts are copied out of the decoded key (rare).
        Cow::Owned(key) => nest_parts(&key, value, |part| Cow::Owned(part.to_owned())),
    }
}

/// [`nest`] of a key ending in `]`; `part` turns a slice of `key` into a stored key.
fn nest_parts<'k, 'a>(
    key: &'k str,
    value: Value<'a>,
    part: impl Fn(&'k str) -> Cow<'a, str>,
) -> Result<(Cow<'a, str>, Value<'a>), QueryStringError> {
    let without_bracket = &key[..key.len() - 1];
    let Some((head, segments)) = without_bracket.split_once('[') else {
        return Ok((part(without_bracket), value));
    };
    if segments.matches("][").count() >= MAX_KEY_DEPTH {
        return Err(QueryStringError::TooDeep);
    }
    let mut nested = value;
    for segment in segments.rsplit("][") {
        nested = if segment.is_empty() {
            // `[]`: one element, appended to whatever list the key already has.
            Value::List(vec![nested])
        } else {
            Value::Map(BTreeMap::from([(part(segment), nested)]))
        };
    }
    Ok((part(head), nested))
}

/// Applies a later pair of the same key (as [`nest`] made it) over the value so far: a string
/// replaces it, a list element is appended to its list, a map is merged key by key; a value
/// of another kind is replaced.
fn merge<'a>(slot: &mut Value<'a>, later: Value<'a>) {
    match (slot, later) {
        (Value::List(items), Value::List(more)) => items.extend(more),
        (Value::Map(map), Value::Map(more)) => {
            for (key, value) in more {
                match map.entry(key) {
                    Entry::Occupied(mut entry) => merge(entry.get_mut(), value),
                    Entry::Vacant(entry) => {
                        entry.insert(value);
                    }
                }
            }
        }
        (slot, later) => *slot = later,
    }
}

/// `application/x-www-form-urlencoded` decoding of one key or value; borrows it when it has
/// nothing to decode.
fn decode_component(raw: &str) -> Result<Cow<'_, str>, QueryStringError> {
    if !raw.bytes().any(|b| b == b'%' || b == b'+') {
        return Ok(Cow::Borrowed(raw));
    }
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => decoded.push(b' '),
            b'%' => {
                let high = bytes.get(i + 1).and_then(|&b| hex_value(b));
                let low = bytes.get(i + 2).and_then(|&b| hex_value(b));
                let (Some(high), Some(low)) = (high, low) else {
                    return Err(QueryStringError::InvalidPercentEncoding);
                };
                decoded.push(high << 4 | low);
                i += 2;
            }
            other => decoded.push(other),
        }
        i += 1;
    }
    String::from_utf8(decoded)
        .map(Cow::Owned)
        .map_err(|_| QueryStringError::InvalidUtf8)
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
#[path = "query_string_tests.rs"]
mod tests;
