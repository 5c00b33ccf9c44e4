//! Conversions between types: the explicit casts users write (`::int8`, `CAST(x AS text)`)
//! and the implicit promotions the type checker inserts (int4 → numeric, date → timestamp).

use std::borrow::Cow;

use super::array;
use super::datetime;
use super::datum::{format_uuid, Datum};
use super::input::{self, InputError};
use super::interval;
use super::numeric::{self, ToIntError};
use super::types::{Category, Type};

/// Whether Postgres has a cast from `from` to `to` that this front end implements.
pub(crate) fn is_castable(from: &Type, to: &Type) -> bool {
    use Category as C;
    if from == to {
        return true;
    }
    match (from.category(), to.category()) {
        (C::Unsupported, _) | (_, C::Unsupported) | (_, C::Unknown) => false,
        // Every supported type has text output and input functions (CoerceViaIO).
        // A text column is not an enum label we could validate, but a literal is (Postgres
        // checks it when the snapshot query runs).
        (C::Unknown, _) => true,
        (C::String, _) => !matches!(to, Type::Enum(_)),
        (_, C::String) => true,
        (C::Number, C::Number) | (C::DateTime, C::DateTime) => true,
        (C::Boolean, C::Number) | (C::Number, C::Boolean) => {
            *from == Type::Int4 || *to == Type::Int4
        }
        _ => false,
    }
}

/// Casts a non-null value. The caller has checked [`is_castable`]; a failure here is a data
/// error (`'abc'::int4`, an out-of-range integer) with Postgres's message.
pub(crate) fn cast<'a>(value: Datum<'a>, from: &Type, to: &Type) -> Result<Datum<'a>, InputError> {
    if value.is_null() || from == to {
        return Ok(value);
    }
    if to.is_string() {
        return Ok(Datum::Text(to_text(value, from)));
    }
    match value {
        Datum::Text(text) => parse_owned(to, text),
        Datum::Int(v) => from_int(v, to),
        Datum::Float(v) => from_float(v, from, to),
        Datum::Numeric(text) => from_numeric(&text, to),
        Datum::Bool(v) if *to == Type::Int4 => Ok(Datum::Int(i64::from(v))),
        Datum::Date(days) => datetime::date_to_timestamp_checked(days)
            .map(Datum::Timestamp)
            .ok_or_else(|| InputError("date out of range for timestamp".to_string())),
        Datum::Timestamp(micros) if *to == Type::Date => {
            Ok(Datum::Date(datetime::timestamp_to_date(micros)))
        }
        // timestamp ↔ timestamptz: the same instant in a UTC session.
        Datum::Timestamp(micros) => Ok(Datum::Timestamp(micros)),
        other => Err(InputError(format!(
            "cannot cast {other:?} from {from} to {to}"
        ))),
    }
}

fn parse_owned<'a>(to: &Type, text: Cow<'a, str>) -> Result<Datum<'a>, InputError> {
    match text {
        Cow::Borrowed(text) => input::parse(to, text),
        Cow::Owned(text) => input::parse(to, &text).map(Datum::into_owned),
    }
}

fn range_error(to: &Type) -> InputError {
    InputError(format!("{} out of range", to.sql_name()))
}

fn check_int_range(value: i64, to: &Type) -> Result<Datum<'static>, InputError> {
    let fits = match to {
        Type::Int2 => i16::try_from(value).is_ok(),
        Type::Int4 => i32::try_from(value).is_ok(),
        _ => true,
    };
    if fits {
        Ok(Datum::Int(value))
    } else {
        Err(range_error(to))
    }
}

fn from_int(value: i64, to: &Type) -> Result<Datum<'static>, InputError> {
    match to {
        Type::Int2 | Type::Int4 | Type::Int8 => check_int_range(value, to),
        // C's conversion rounds to nearest, as `as` does.
        Type::Float8 => Ok(Datum::Float(value as f64)),
        Type::Float4 => Ok(Datum::Float(f64::from(value as f32))),
        Type::Numeric => Ok(Datum::Numeric(Cow::Owned(value.to_string()))),
        Type::Bool => Ok(Datum::Bool(value != 0)),
        _ => Err(InputError(format!("cannot cast integer to {to}"))),
    }
}

fn from_float(value: f64, from: &Type, to: &Type) -> Result<Datum<'static>, InputError> {
    match to {
        Type::Float8 => Ok(Datum::Float(value)),
        Type::Float4 => {
            let narrowed = value as f32;
            if narrowed.is_infinite() && value.is_finite() {
                return Err(InputError("value out of range: overflow".to_string()));
            }
            Ok(Datum::Float(f64::from(narrowed)))
        }
        Type::Numeric => {
            let digits = if *from == Type::Float4 { 6 } else { 15 };
            Ok(Datum::Numeric(Cow::Owned(numeric::from_float(
                value, digits,
            ))))
        }
        Type::Int2 | Type::Int4 | Type::Int8 => {
            // Postgres rounds half to even (rint) and rejects NaN and out-of-range values.
            let rounded = value.round_ties_even();
            // i64::MIN is exactly representable; i64::MAX rounds up to 2^63, which is out of range.
            if !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&rounded) {
                return Err(range_error(to));
            }
            check_int_range(rounded as i64, to)
        }
        _ => Err(InputError(format!("cannot cast {from} to {to}"))),
    }
}

fn from_numeric(text: &str, to: &Type) -> Result<Datum<'static>, InputError> {
    match to {
        Type::Float8 => Ok(Datum::Float(numeric::to_f64(text))),
        Type::Float4 => Ok(Datum::Float(f64::from(numeric::to_f64(text) as f32))),
        Type::Int2 | Type::Int4 | Type::Int8 => match numeric::to_i64(text) {
            Ok(v) => check_int_range(v, to),
            Err(ToIntError::NaN) => Err(InputError(format!(
                "cannot convert NaN to {}",
                to.sql_name()
            ))),
            Err(ToIntError::Infinity) => Err(InputError(format!(
                "cannot convert infinity to {}",
                to.sql_name()
            ))),
            Err(ToIntError::OutOfRange) => Err(range_error(to)),
        },
        _ => Err(InputError(format!("cannot cast numeric to {to}"))),
    }
}

/// The output function of `from`, i.e. what `value::text` yields.
pub(crate) fn to_text<'a>(value: Datum<'a>, from: &Type) -> Cow<'a, str> {
    match value {
        // bpchar → text drops the padding; other strings pass through.
        Datum::Text(text) if *from == Type::Bpchar => match text {
            Cow::Borrowed(t) => Cow::Borrowed(t.trim_end_matches(' ')),
            Cow::Owned(t) => Cow::Owned(t.trim_end_matches(' ').to_string()),
        },
        Datum::Text(text) | Datum::Numeric(text) => text,
        Datum::Null => Cow::Borrowed(""),
        Datum::Bool(v) => Cow::Borrowed(if v { "true" } else { "false" }),
        Datum::Int(v) => Cow::Owned(v.to_string()),
        Datum::Float(v) => Cow::Owned(format_float(v, *from == Type::Float4)),
        Datum::Uuid(v) => Cow::Owned(format_uuid(v)),
        Datum::Date(days) => Cow::Owned(datetime::format_date(days)),
        Datum::Timestamp(micros) => Cow::Owned(datetime::format_timestamp(
            micros,
            *from == Type::Timestamptz,
        )),
        Datum::Interval(value) => Cow::Owned(interval::format(value)),
        Datum::Array(array) => {
            let elem = match from {
                Type::Array(elem) => elem.as_ref(),
                other => other,
            };
            Cow::Owned(array::to_text_form(&array, elem))
        }
    }
}

/// Postgres float output with `extra_float_digits > 0`: the shortest text that reads back
/// exactly, in exponent form when the decimal exponent is below -4 or at least the type's
/// precision (15 digits for float8, 6 for float4).
pub(crate) fn format_float(value: f64, is_float4: bool) -> String {
    if value.is_nan() {
        return "NaN".to_string();
    }
    if value.is_infinite() {
        return if value > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    let shortest = if is_float4 {
        format!("{:e}", value as f32)
    } else {
        format!("{value:e}")
    };
    let (mantissa, exponent) = shortest.split_once('e').unwrap_or((&shortest, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let precision = if is_float4 { 6 } else { 15 };
    let mut out = String::with_capacity(digits.len() + 8);
    if negative {
        out.push('-');
    }
    if exponent < -4 || exponent >= precision {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let sign = if exponent < 0 { '-' } else { '+' };
        out.push_str(&format!("e{sign}{:02}", exponent.abs()));
    } else if exponent < 0 {
        out.push_str("0.");
        for _ in 0..(-exponent - 1) {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        let int_len = exponent as usize + 1;
        if digits.len() <= int_len {
            out.push_str(&digits);
            for _ in digits.len()..int_len {
                out.push('0');
            }
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
    out
}
