//! Type input functions: Postgres text (a literal, a parameter, or a value from pgoutput) to
//! a typed [`Datum`], with Postgres's error messages for invalid input.

use std::borrow::Cow;

use super::array;
use super::datetime::{self, DateTimeError};
use super::datum::{parse_uuid, Datum};
use super::interval;
use super::numeric;
use super::types::Type;

/// `NAMEDATALEN - 1`: longer `name` values are truncated, as Postgres does.
const NAME_BYTES_MAX: usize = 63;

/// Invalid input for a type, carrying the message Postgres would print.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct InputError(pub(crate) String);

fn syntax(ty: &Type, text: &str) -> InputError {
    InputError(format!(
        "invalid input syntax for type {}: \"{text}\"",
        ty.sql_name()
    ))
}

fn out_of_range(ty: &Type, text: &str) -> InputError {
    InputError(format!(
        "value \"{text}\" is out of range for type {}",
        ty.sql_name()
    ))
}

/// Parses `text` as a value of `ty`. Strings are borrowed when no change is needed.
pub(crate) fn parse<'a>(ty: &Type, text: &'a str) -> Result<Datum<'a>, InputError> {
    match ty {
        Type::Bool => parse_bool(text)
            .map(Datum::Bool)
            .ok_or_else(|| syntax(ty, text)),
        Type::Int2 | Type::Int4 | Type::Int8 => parse_int(ty, text).map(Datum::Int),
        Type::Float4 | Type::Float8 => parse_float(ty, text).map(Datum::Float),
        Type::Numeric => {
            if numeric::is_valid_output(text) {
                Ok(Datum::Numeric(Cow::Borrowed(text)))
            } else {
                numeric::parse_input(text)
                    .map(|canonical| Datum::Numeric(Cow::Owned(canonical)))
                    .ok_or_else(|| syntax(ty, text))
            }
        }
        Type::Name if text.len() > NAME_BYTES_MAX => {
            let mut end = NAME_BYTES_MAX;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            Ok(Datum::Text(Cow::Borrowed(&text[..end])))
        }
        Type::Text | Type::Varchar | Type::Bpchar | Type::Name | Type::Enum(_) => {
            Ok(Datum::Text(Cow::Borrowed(text)))
        }
        Type::Uuid => parse_uuid(text)
            .map(Datum::Uuid)
            .ok_or_else(|| syntax(ty, text)),
        Type::Date => datetime::parse_date(text)
            .map(Datum::Date)
            .map_err(|e| datetime_error(ty, text, e)),
        Type::Timestamp | Type::Timestamptz => {
            datetime::parse_timestamp(text, *ty == Type::Timestamptz)
                .map(Datum::Timestamp)
                .map_err(|e| datetime_error(ty, text, e))
        }
        Type::Interval => interval::parse(text)
            .map(Datum::Interval)
            .map_err(|e| match e {
                DateTimeError::Syntax => syntax(ty, text),
                DateTimeError::OutOfRange => {
                    InputError(format!("interval field value out of range: \"{text}\""))
                }
            }),
        Type::Array(elem) if elem.is_array_element() => {
            array::parse(elem, text).map(|a| Datum::Array(Box::new(a)))
        }
        Type::Array(_) | Type::Unknown | Type::Other(_) => Err(InputError(format!(
            "values of type {ty} are not supported in this context"
        ))),
    }
}

fn datetime_error(ty: &Type, text: &str, error: DateTimeError) -> InputError {
    match error {
        DateTimeError::Syntax => syntax(ty, text),
        DateTimeError::OutOfRange => {
            InputError(format!("date/time field value out of range: \"{text}\""))
        }
    }
}

/// Postgres `parse_bool`: any unique prefix of true/false/yes/no, `on`/`off`, `1`/`0`.
pub(crate) fn parse_bool(text: &str) -> Option<bool> {
    // The common pgoutput forms first; the general path below allocates nothing either.
    match text {
        "t" => return Some(true),
        "f" => return Some(false),
        _ => {}
    }
    let t = text
        .trim_matches(|c: char| c.is_ascii_whitespace())
        .as_bytes();
    let is_prefix = |word: &str, min: usize| {
        t.len() >= min
            && t.len() <= word.len()
            && word.as_bytes()[..t.len()].eq_ignore_ascii_case(t)
    };
    if is_prefix("true", 1) || is_prefix("yes", 1) || is_prefix("on", 2) || t == b"1" {
        Some(true)
    } else if is_prefix("false", 1) || is_prefix("no", 1) || is_prefix("off", 2) || t == b"0" {
        Some(false)
    } else {
        None
    }
}

fn parse_int(ty: &Type, text: &str) -> Result<i64, InputError> {
    let t = text.trim_matches(|c: char| c.is_ascii_whitespace());
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(syntax(ty, text));
    }
    let value: i64 = t.parse().map_err(|_| out_of_range(ty, text))?;
    let in_range = match ty {
        Type::Int2 => i16::try_from(value).is_ok(),
        Type::Int4 => i32::try_from(value).is_ok(),
        _ => true,
    };
    if in_range {
        Ok(value)
    } else {
        Err(out_of_range(ty, text))
    }
}

fn parse_float(ty: &Type, text: &str) -> Result<f64, InputError> {
    let t = text.trim_matches(|c: char| c.is_ascii_whitespace());
    let unsigned = t.strip_prefix(['+', '-']).unwrap_or(t);
    let named = ["nan", "inf", "infinity"]
        .iter()
        .any(|w| unsigned.eq_ignore_ascii_case(w));
    let numeric_syntax = !unsigned.is_empty()
        && unsigned
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    if !named && !numeric_syntax {
        return Err(syntax(ty, text));
    }
    let value = if *ty == Type::Float4 {
        t.parse::<f32>().map(f64::from)
    } else {
        t.parse::<f64>()
    }
    .map_err(|_| syntax(ty, text))?;
    if named {
        return Ok(value);
    }
    // Overflow to infinity or underflow to zero is an error in Postgres, not a rounding.
    let has_nonzero_digit = unsigned
        .split(['e', 'E'])
        .next()
        .is_some_and(|m| m.bytes().any(|b| (b'1'..=b'9').contains(&b)));
    if value.is_infinite() || (value == 0.0 && has_nonzero_digit) {
        return Err(InputError(format!(
            "\"{text}\" is out of range for type {}",
            ty.sql_name()
        )));
    }
    Ok(value)
}
