//! Index keys: byte strings derived from typed values such that two values of one comparison
//! type are equal under [`compare`](super::super::datum::compare) exactly when their keys are
//! equal, and (for ordered classes) order like their keys' bytes.
//!
//! Keys follow Postgres equality, not text: `'5'` and `5` give one int key, numeric `1.0` and
//! `1.00` one key, float `-0` and `0` one key and every NaN one key (NaN equals NaN in
//! Postgres), uuid input in either case one key, timestamps their instant.

use std::borrow::Cow;

use super::super::datum::Datum;
use super::super::input;
use super::super::types::Type;

/// How values of one comparison type become keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyTy {
    Bool,
    Int,
    Float,
    Numeric,
    /// text, varchar, name and enum labels: byte equality (the C collation).
    Text,
    /// bpchar: trailing spaces are padding and do not count.
    Bpchar,
    Uuid,
    Date,
    Timestamp,
}

impl KeyTy {
    pub(crate) fn of(ty: &Type) -> Option<KeyTy> {
        Some(match ty {
            Type::Bool => KeyTy::Bool,
            Type::Int2 | Type::Int4 | Type::Int8 => KeyTy::Int,
            Type::Float4 | Type::Float8 => KeyTy::Float,
            Type::Numeric => KeyTy::Numeric,
            Type::Text | Type::Varchar | Type::Name | Type::Enum(_) => KeyTy::Text,
            Type::Bpchar => KeyTy::Bpchar,
            Type::Uuid => KeyTy::Uuid,
            Type::Date => KeyTy::Date,
            Type::Timestamp | Type::Timestamptz => KeyTy::Timestamp,
            Type::Array(_) | Type::Unknown | Type::Interval | Type::Other(_) => return None,
        })
    }

    /// Whether key bytes order like the values. Numeric keys are canonical for equality only.
    pub(crate) fn is_ordered(self) -> bool {
        self != KeyTy::Numeric
    }
}

const INLINE_MAX: usize = 24;

/// A key's bytes: inline for fixed-size values, borrowed from the row for text, owned only for
/// long numerics and constants.
#[derive(Clone, Debug)]
pub(crate) enum Key<'a> {
    Inline { len: u8, buf: [u8; INLINE_MAX] },
    Bytes(Cow<'a, [u8]>),
}

impl Key<'_> {
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Key::Inline { len, buf } => &buf[..usize::from(*len)],
            Key::Bytes(bytes) => bytes,
        }
    }

    pub(crate) fn into_boxed(self) -> Box<[u8]> {
        self.bytes().into()
    }

    fn inline(bytes: &[u8]) -> Key<'static> {
        assert!(bytes.len() <= INLINE_MAX, "inline keys are short");
        let mut buf = [0u8; INLINE_MAX];
        buf[..bytes.len()].copy_from_slice(bytes);
        Key::Inline {
            len: bytes.len() as u8,
            buf,
        }
    }
}

const SIGN64: u64 = 1 << 63;

fn ordered_f64(value: f64) -> u64 {
    // One bit pattern per Postgres-equal value: NaN equals NaN (and sorts above +Infinity,
    // which the positive quiet NaN's bits do after the transform); -0 equals 0.
    let value = if value.is_nan() {
        f64::NAN
    } else if value == 0.0 {
        0.0
    } else {
        value
    };
    let bits = value.to_bits();
    if bits & SIGN64 != 0 {
        !bits
    } else {
        bits | SIGN64
    }
}

/// Canonical numeric key: `N`, `I`, `i` for NaN and ±Infinity; otherwise a sign byte, the
/// integer digits without leading zeros, `.`, the fraction without trailing zeros (zero has no
/// sign). The datum's text is already valid numeric text (input validated it).
fn numeric_key(text: &str) -> Key<'static> {
    match text {
        "NaN" => return Key::inline(b"N"),
        "Infinity" => return Key::inline(b"I"),
        "-Infinity" => return Key::inline(b"i"),
        _ => {}
    }
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let zero = int.is_empty() && frac.is_empty();
    let sign = if negative && !zero { b'-' } else { b'+' };
    let len = 2 + int.len() + frac.len();
    let parts: [&[u8]; 4] = [&[sign], int.as_bytes(), b".", frac.as_bytes()];
    if len <= INLINE_MAX {
        let mut buf = [0u8; INLINE_MAX];
        let mut at = 0;
        for part in parts {
            buf[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        Key::Inline {
            len: len as u8,
            buf,
        }
    } else {
        Key::Bytes(Cow::Owned(parts.concat()))
    }
}

/// The key of a non-null value of comparison class `ty`; `None` for NULL or a value of
/// another representation (which the type checker rules out).
pub(crate) fn encode<'a>(ty: KeyTy, value: &Datum<'a>) -> Option<Key<'a>> {
    Some(match (ty, value) {
        (KeyTy::Bool, Datum::Bool(v)) => Key::inline(&[u8::from(*v)]),
        (KeyTy::Int | KeyTy::Timestamp, Datum::Int(v) | Datum::Timestamp(v)) => {
            Key::inline(&((*v as u64) ^ SIGN64).to_be_bytes())
        }
        (KeyTy::Float, Datum::Float(v)) => Key::inline(&ordered_f64(*v).to_be_bytes()),
        (KeyTy::Numeric, Datum::Numeric(text)) => numeric_key(text),
        (KeyTy::Text, Datum::Text(text)) => Key::Bytes(match text {
            Cow::Borrowed(text) => Cow::Borrowed(text.as_bytes()),
            Cow::Owned(text) => Cow::Owned(text.as_bytes().to_vec()),
        }),
        (KeyTy::Bpchar, Datum::Text(text)) => Key::Bytes(match text {
            Cow::Borrowed(text) => Cow::Borrowed(text.trim_end_matches(' ').as_bytes()),
            Cow::Owned(text) => Cow::Owned(text.trim_end_matches(' ').as_bytes().to_vec()),
        }),
        (KeyTy::Uuid, Datum::Uuid(v)) => Key::inline(&v.to_be_bytes()),
        (KeyTy::Date, Datum::Date(v)) => Key::inline(&((*v as u32) ^ (1 << 31)).to_be_bytes()),
        _ => return None,
    })
}

/// Parses a row value of column type `parse` as evaluation does; `None` if it does not parse
/// (evaluation fails, so no comparison on it can be TRUE).
pub(crate) fn parse_row<'r>(parse: &Type, bytes: &'r [u8]) -> Option<Datum<'r>> {
    let text = std::str::from_utf8(bytes).ok()?;
    input::parse(parse, text).ok()
}
