//! Parsing shape response bodies: a JSON array of messages, of which only data messages count.
//!
//! The client needs three things per message — the operation and the row's `write_id` and
//! `sent_ns` — so the body is deserialised into small typed structs that skip every other field
//! instead of building a `Value` tree. The parser is `sonic-rs` (measured fastest on typical
//! bodies, see `docs/loadgen.md`); `serde_json` parses the same types in the tests as a
//! cross-check.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// The operation of a data message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Insert,
    Update,
    Delete,
}

/// One data message, reduced to what latency accounting needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    pub op: Op,
    /// The row's `write_id` column, when present and a non-negative integer.
    pub write_id: Option<u64>,
    /// The row's `sent_ns` column, when present and a non-negative integer.
    pub sent_ns: Option<u64>,
}

/// Why a body was refused.
#[derive(Debug, thiserror::Error)]
#[error("response body is not a JSON array of shape messages: {0}")]
pub struct BodyError(String);

/// A message as sent; unknown fields (key, old_value, the row's other columns) are skipped.
#[derive(Deserialize)]
pub struct Message<'a> {
    #[serde(borrow, default)]
    pub headers: Option<Headers<'a>>,
    #[serde(default)]
    pub value: Option<RowValue>,
}

#[derive(Deserialize)]
pub struct Headers<'a> {
    #[serde(borrow, default)]
    pub operation: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub struct RowValue {
    #[serde(default, deserialize_with = "lenient_u64")]
    pub write_id: Option<u64>,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub sent_ns: Option<u64>,
}

/// Parses a response body into its data messages; control messages are dropped (their meaning
/// is carried by headers too). An empty body is an empty batch.
pub fn parse_changes(body: &[u8]) -> Result<Vec<Change>, BodyError> {
    if body.is_empty() {
        return Ok(Vec::new());
    }
    let messages: Vec<Message<'_>> =
        sonic_rs::from_slice(body).map_err(|e| BodyError(e.to_string()))?;
    Ok(to_changes(messages))
}

/// Keeps data messages with a known operation.
pub fn to_changes(messages: Vec<Message<'_>>) -> Vec<Change> {
    messages
        .into_iter()
        .filter_map(|message| {
            let op = match message.headers?.operation?.as_ref() {
                "insert" => Op::Insert,
                "update" => Op::Update,
                "delete" => Op::Delete,
                _ => return None,
            };
            let (write_id, sent_ns) = message
                .value
                .map_or((None, None), |value| (value.write_id, value.sent_ns));
            Some(Change {
                op,
                write_id,
                sent_ns,
            })
        })
        .collect()
}

/// Electric sends int8 columns as JSON strings; accept those, plain numbers and null. Anything
/// else (a negative or non-numeric value) reads as absent rather than failing the whole body.
fn lenient_u64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    struct LenientU64;

    impl<'de> Visitor<'de> for LenientU64 {
        type Value = Option<u64>;

        fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
            formatter.write_str("an integer, an integer string or null")
        }

        fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
            Ok(Some(value))
        }

        fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
            Ok(u64::try_from(value).ok())
        }

        fn visit_f64<E: de::Error>(self, _value: f64) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_bool<E: de::Error>(self, _value: bool) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
            Ok(value.parse().ok())
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, inner: D) -> Result<Self::Value, D::Error> {
            inner.deserialize_any(self)
        }
    }

    deserializer.deserialize_any(LenientU64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"[{"key":"\"public\".\"t\"/\"1\"","value":{"id":"1","write_id":"7","sent_ns":"42","payload":"a\"b"},"headers":{"operation":"insert","relation":["public","t"]}},
        {"key":"k2","value":{"id":"2","write_id":3,"sent_ns":null},"headers":{"operation":"update"}},
        {"key":"k3","value":{"id":"3"},"headers":{"operation":"delete"}},
        {"headers":{"control":"up-to-date","global_last_seen_lsn":"1"}}]"#;

    #[test]
    fn keeps_data_messages_only() {
        let changes = parse_changes(BODY).unwrap();
        assert_eq!(
            changes,
            vec![
                Change {
                    op: Op::Insert,
                    write_id: Some(7),
                    sent_ns: Some(42)
                },
                Change {
                    op: Op::Update,
                    write_id: Some(3),
                    sent_ns: None
                },
                Change {
                    op: Op::Delete,
                    write_id: None,
                    sent_ns: None
                },
            ]
        );
    }

    #[test]
    fn agrees_with_serde_json() {
        let reference: Vec<Message<'_>> = serde_json::from_slice(BODY).unwrap();
        assert_eq!(to_changes(reference), parse_changes(BODY).unwrap());
    }

    #[test]
    fn refuses_non_arrays() {
        assert!(parse_changes(b"{}").is_err());
        assert!(parse_changes(b"[").is_err());
        assert!(parse_changes(b"[1]").is_err());
        assert!(parse_changes(b"").unwrap().is_empty());
        // Odd column values read as absent instead of failing the body.
        let odd =
            br#"[{"value":{"write_id":"-1","sent_ns":1.5},"headers":{"operation":"insert"}}]"#;
        let changes = parse_changes(odd).unwrap();
        assert_eq!(changes[0].write_id, None);
        assert_eq!(changes[0].sent_ns, None);
    }
}
