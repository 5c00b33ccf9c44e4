//! Typed runtime values and their Postgres comparison semantics.

use std::borrow::Cow;
use std::cmp::Ordering;

use super::array::ArrayDatum;
use super::interval::Interval;
use super::numeric;
use super::types::Type;

/// A value during evaluation. Row values borrow the text pgoutput sent, so reading an integer,
/// a boolean or a string from a row allocates nothing; constants own their data (`'static`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Datum<'a> {
    Null,
    Bool(bool),
    /// Every integer width, widened: cross-width comparisons are exact in Postgres too.
    Int(i64),
    /// float4 values are widened to f64, which is exactly what Postgres compares.
    Float(f64),
    /// Canonical or pgoutput numeric text (see `numeric`).
    Numeric(Cow<'a, str>),
    /// text, varchar, bpchar, name and enum labels, as UTF-8 text.
    Text(Cow<'a, str>),
    Uuid(u128),
    /// Days since 2000-01-01 (see `datetime`).
    Date(i32),
    /// Microseconds since 2000-01-01, for timestamp and timestamptz.
    Timestamp(i64),
    Interval(Interval),
    /// An array of a supported element type (boxed: arrays are rare, the enum stays small).
    Array(Box<ArrayDatum<'a>>),
}

impl Datum<'_> {
    /// A borrowed copy, so evaluating a constant does not clone its text.
    pub(crate) fn reborrow(&self) -> Datum<'_> {
        match self {
            Datum::Numeric(text) => Datum::Numeric(Cow::Borrowed(text)),
            Datum::Text(text) => Datum::Text(Cow::Borrowed(text)),
            Datum::Null => Datum::Null,
            Datum::Bool(v) => Datum::Bool(*v),
            Datum::Int(v) => Datum::Int(*v),
            Datum::Float(v) => Datum::Float(*v),
            Datum::Uuid(v) => Datum::Uuid(*v),
            Datum::Date(v) => Datum::Date(*v),
            Datum::Timestamp(v) => Datum::Timestamp(*v),
            Datum::Interval(v) => Datum::Interval(*v),
            Datum::Array(a) => Datum::Array(Box::new(a.reborrow())),
        }
    }

    pub(crate) fn into_owned(self) -> Datum<'static> {
        match self {
            Datum::Numeric(text) => Datum::Numeric(Cow::Owned(text.into_owned())),
            Datum::Text(text) => Datum::Text(Cow::Owned(text.into_owned())),
            Datum::Null => Datum::Null,
            Datum::Bool(v) => Datum::Bool(v),
            Datum::Int(v) => Datum::Int(v),
            Datum::Float(v) => Datum::Float(v),
            Datum::Uuid(v) => Datum::Uuid(v),
            Datum::Date(v) => Datum::Date(v),
            Datum::Timestamp(v) => Datum::Timestamp(v),
            Datum::Interval(v) => Datum::Interval(v),
            Datum::Array(a) => Datum::Array(Box::new(a.into_owned())),
        }
    }

    pub(crate) fn is_null(&self) -> bool {
        matches!(self, Datum::Null)
    }
}

/// Postgres float ordering: NaN equals NaN and sorts above everything; `-0 = 0`.
pub(crate) fn float_cmp(left: f64, right: f64) -> Ordering {
    match (left.is_nan(), right.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => left.partial_cmp(&right).unwrap_or(Ordering::Equal),
    }
}

/// `bpchar` comparisons ignore trailing spaces (the padding), unlike text.
fn bpchar_trim(text: &str) -> &str {
    text.trim_end_matches(' ')
}

/// Compares two non-null values that were coerced to the same comparison type `ty`.
/// Returns `None` for mismatched representations, which the type checker rules out.
pub(crate) fn compare(ty: &Type, left: &Datum<'_>, right: &Datum<'_>) -> Option<Ordering> {
    Some(match (left, right) {
        (Datum::Bool(l), Datum::Bool(r)) => l.cmp(r),
        (Datum::Int(l), Datum::Int(r)) => l.cmp(r),
        (Datum::Float(l), Datum::Float(r)) => float_cmp(*l, *r),
        (Datum::Numeric(l), Datum::Numeric(r)) => numeric::compare(l, r),
        // Byte order is the C collation, as upstream Electric compares strings.
        (Datum::Text(l), Datum::Text(r)) if *ty == Type::Bpchar => {
            bpchar_trim(l).as_bytes().cmp(bpchar_trim(r).as_bytes())
        }
        (Datum::Text(l), Datum::Text(r)) => l.as_bytes().cmp(r.as_bytes()),
        (Datum::Uuid(l), Datum::Uuid(r)) => l.cmp(r),
        (Datum::Date(l), Datum::Date(r)) => l.cmp(r),
        (Datum::Timestamp(l), Datum::Timestamp(r)) => l.cmp(r),
        (Datum::Interval(l), Datum::Interval(r)) => l.compare(*r),
        _ => return None,
    })
}

/// Parses uuid input: 32 hex digits, optionally in braces, with a hyphen allowed after any
/// group of four digits (Postgres's accepted forms).
pub(crate) fn parse_uuid(text: &str) -> Option<u128> {
    let bytes = text.as_bytes();
    let inner = match (bytes.first(), bytes.last()) {
        (Some(b'{'), Some(b'}')) if bytes.len() >= 2 => &bytes[1..bytes.len() - 1],
        _ => bytes,
    };
    let mut value: u128 = 0;
    let mut digits = 0;
    let mut i = 0;
    while i < inner.len() {
        let b = inner[i];
        if b == b'-' {
            // A hyphen may only follow a complete group of four, and never ends the value.
            if digits == 0 || digits % 4 != 0 || digits == 32 || i + 1 == inner.len() {
                return None;
            }
            if inner[i + 1] == b'-' {
                return None;
            }
        } else {
            let nibble = (b as char).to_digit(16)?;
            if digits == 32 {
                return None;
            }
            value = value << 4 | u128::from(nibble);
            digits += 1;
        }
        i += 1;
    }
    (digits == 32).then_some(value)
}

pub(crate) fn format_uuid(value: u128) -> String {
    let hex = format!("{value:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}
