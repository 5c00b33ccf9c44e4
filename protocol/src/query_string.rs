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
//! The caller bounds the query length (HTTP request-line limit); nesting depth is bounded here
//! so a hostile key cannot recurse deeply.

use std::collections::BTreeMap;

/// Maximum number of `[...]` segments in one key; far above anything a client sends.
pub const MAX_KEY_DEPTH: usize = 16;

/// One decoded parameter value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    String(String),
    List(Vec<Value>),
    Map(BTreeMap<String, Value>),
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
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
pub struct QueryParams {
    entries: BTreeMap<String, Value>,
}

impl QueryParams {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.get(key)
    }

    /// The value of `key` if it is a plain string.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
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

/// Parameters already decoded (a POST body's, merged with the query's).
impl FromIterator<(String, Value)> for QueryParams {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(pairs: I) -> Self {
        QueryParams {
            entries: pairs.into_iter().collect(),
        }
    }
}

/// Decodes a raw query string (without the leading `?`).
pub fn parse_query_string(raw: &str) -> Result<QueryParams, QueryStringError> {
    let mut params = QueryParams::default();
    for pair in raw.split('&').filter(|pair| !pair.is_empty()) {
        let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decode_component(raw_key)?;
        let value = decode_component(raw_value)?;
        let path = split_key(&key)?;
        let Some((first, rest)) = path.split_first() else {
            continue;
        };
        let slot = params
            .entries
            .entry((*first).to_owned())
            .or_insert(Value::String(String::new()));
        assign(slot, rest, value);
    }
    Ok(params)
}

/// `users[address][street]` → `["users", "address", "street"]`; `a[]` → `["a", ""]`. Only keys
/// ending in `]` are nested, as in Plug; `a]` is the plain key `a` there too.
fn split_key(key: &str) -> Result<Vec<&str>, QueryStringError> {
    let Some(without_bracket) = key.strip_suffix(']') else {
        return Ok(vec![key]);
    };
    let Some((head, rest)) = without_bracket.split_once('[') else {
        return Ok(vec![without_bracket]);
    };
    let mut path = vec![head];
    for segment in rest.split("][") {
        if path.len() > MAX_KEY_DEPTH {
            return Err(QueryStringError::TooDeep);
        }
        path.push(segment);
    }
    Ok(path)
}

/// Stores `value` at `path` below `slot`; a later assignment replaces a conflicting earlier one.
fn assign(slot: &mut Value, path: &[&str], value: String) {
    let Some((segment, rest)) = path.split_first() else {
        *slot = Value::String(value);
        return;
    };
    if segment.is_empty() {
        // `[]`: append a new element to a list.
        if !matches!(slot, Value::List(_)) {
            *slot = Value::List(Vec::new());
        }
        if let Value::List(items) = slot {
            let mut element = Value::String(String::new());
            assign(&mut element, rest, value);
            items.push(element);
        }
        return;
    }
    if !matches!(slot, Value::Map(_)) {
        *slot = Value::Map(BTreeMap::new());
    }
    if let Value::Map(map) = slot {
        let child = map
            .entry((*segment).to_owned())
            .or_insert(Value::String(String::new()));
        assign(child, rest, value);
    }
}

/// `application/x-www-form-urlencoded` decoding of one key or value.
fn decode_component(raw: &str) -> Result<String, QueryStringError> {
    if !raw.bytes().any(|b| b == b'%' || b == b'+') {
        return Ok(raw.to_owned());
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
    String::from_utf8(decoded).map_err(|_| QueryStringError::InvalidUtf8)
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
