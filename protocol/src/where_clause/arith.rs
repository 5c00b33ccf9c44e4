//! Arithmetic and bitwise operators on integers and floats, with Postgres's result types and
//! its run-time errors: integer overflow, division by zero and float overflow/underflow are
//! evaluation errors (the row is not in the shape), never wrapped or saturated values.

use std::borrow::Cow;

use super::datetime;
use super::datum::Datum;
use super::interval::{self, Interval};
use super::numeric_arith::{self, NumOp};
use super::types::{Category, Type};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    BitAnd,
    BitOr,
    BitXor,
    Shl,
    Shr,
}

impl ArithOp {
    pub(crate) fn from_sql(op: &str) -> Option<ArithOp> {
        Some(match op {
            "+" => ArithOp::Add,
            "-" => ArithOp::Sub,
            "*" => ArithOp::Mul,
            "/" => ArithOp::Div,
            "%" => ArithOp::Mod,
            "^" => ArithOp::Pow,
            "&" => ArithOp::BitAnd,
            "|" => ArithOp::BitOr,
            "#" => ArithOp::BitXor,
            "<<" => ArithOp::Shl,
            ">>" => ArithOp::Shr,
            _ => return None,
        })
    }

    pub(crate) fn sql(self) -> &'static str {
        match self {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
            ArithOp::Mul => "*",
            ArithOp::Div => "/",
            ArithOp::Mod => "%",
            ArithOp::Pow => "^",
            ArithOp::BitAnd => "&",
            ArithOp::BitOr => "|",
            ArithOp::BitXor => "#",
            ArithOp::Shl => "<<",
            ArithOp::Shr => ">>",
        }
    }

    fn is_bitwise(self) -> bool {
        matches!(
            self,
            ArithOp::BitAnd | ArithOp::BitOr | ArithOp::BitXor | ArithOp::Shl | ArithOp::Shr
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UnaryOp {
    Plus,
    Neg,
    Abs,
    Sqrt,
    BitNot,
}

impl UnaryOp {
    pub(crate) fn from_sql(op: &str) -> Option<UnaryOp> {
        Some(match op {
            "+" => UnaryOp::Plus,
            "-" => UnaryOp::Neg,
            "@" => UnaryOp::Abs,
            "|/" => UnaryOp::Sqrt,
            "~" => UnaryOp::BitNot,
            _ => return None,
        })
    }

    pub(crate) fn sql(self) -> &'static str {
        match self {
            UnaryOp::Plus => "+",
            UnaryOp::Neg => "-",
            UnaryOp::Abs => "@",
            UnaryOp::Sqrt => "|/",
            UnaryOp::BitNot => "~",
        }
    }
}

fn int_rank(ty: &Type) -> u8 {
    match ty {
        Type::Int2 => 2,
        Type::Int4 => 4,
        _ => 8,
    }
}

/// The types a binary operator's operands are coerced to and its result type, for typed
/// number operands; `None` when Postgres has no such operator (or it is not implemented).
/// Postgres has cross-width integer operators returning the wider type; any float8 (or a
/// float4 with a non-float4) makes it float8, the preferred numeric type.
pub(crate) fn binary_types(op: ArithOp, left: &Type, right: &Type) -> Option<(Type, Type, Type)> {
    if let Some(types) = interval_types(op, left, right) {
        return Some(types);
    }
    if *left == Type::Date || *right == Type::Date {
        return date_types(op, left, right);
    }
    if left.is_integer() && right.is_integer() {
        return Some(match op {
            // The shift count is int4 (int8 does not cast to it implicitly); the result has
            // the left operand's type.
            ArithOp::Shl | ArithOp::Shr if *right == Type::Int8 => return None,
            ArithOp::Shl | ArithOp::Shr => (left.clone(), Type::Int4, left.clone()),
            // int ^ int resolves to float8 power.
            ArithOp::Pow => (Type::Float8, Type::Float8, Type::Float8),
            _ => {
                let wider = if int_rank(left) >= int_rank(right) {
                    left.clone()
                } else {
                    right.clone()
                };
                (left.clone(), right.clone(), wider)
            }
        });
    }
    let number = |t: &Type| t.category() == Category::Number;
    if op.is_bitwise() || !number(left) || !number(right) {
        return None;
    }
    if !left.is_float() && !right.is_float() {
        // numeric with numeric or an integer; numeric power is not implemented.
        return (op != ArithOp::Pow).then_some((Type::Numeric, Type::Numeric, Type::Numeric));
    }
    // A float makes it float8 (numeric casts to float8 implicitly); there is no float `%`.
    if op == ArithOp::Mod {
        return None;
    }
    let ty = if *left == Type::Float4 && *right == Type::Float4 && op != ArithOp::Pow {
        Type::Float4
    } else {
        Type::Float8
    };
    Some((ty.clone(), ty.clone(), ty))
}

/// The type an untyped literal or parameter takes next to a typed operand of an arithmetic
/// operator: usually the other operand's type (Postgres tries an exact match with it first),
/// except where that operator does not exist and exactly one candidate remains —
/// `interval * '2'` is `interval * float8`, `timestamp + '1 day'` is `timestamp + interval`.
pub(crate) fn untyped_operand_type(op: ArithOp, known: &Type) -> Type {
    match (op, known) {
        (ArithOp::Mul | ArithOp::Div, Type::Interval) => Type::Float8,
        (ArithOp::Add, Type::Timestamp | Type::Timestamptz) => Type::Interval,
        _ => known.clone(),
    }
}

/// Operators producing or taking intervals: `timestamp[tz] ± interval`, `date ± interval`
/// (→ timestamp), `timestamp[tz] - timestamp[tz]` (→ interval; a date operand is promoted),
/// `interval ± interval`, `interval * number`, `number * interval`, `interval / number`.
fn interval_types(op: ArithOp, left: &Type, right: &Type) -> Option<(Type, Type, Type)> {
    use ArithOp::{Add, Div, Mul, Sub};
    let ts = |t: &Type| matches!(t, Type::Timestamp | Type::Timestamptz);
    let number = |t: &Type| t.category() == Category::Number;
    let iv = Type::Interval;
    Some(match (op, left, right) {
        (Add | Sub, l, Type::Interval) if ts(l) => (l.clone(), iv, l.clone()),
        (Add, Type::Interval, r) if ts(r) => (iv, r.clone(), r.clone()),
        (Add | Sub, Type::Date, Type::Interval) => (Type::Date, iv, Type::Timestamp),
        (Add, Type::Interval, Type::Date) => (iv, Type::Date, Type::Timestamp),
        (Add | Sub, Type::Interval, Type::Interval) => (iv.clone(), iv.clone(), iv),
        (Mul | Div, Type::Interval, r) if number(r) => (iv.clone(), Type::Float8, iv),
        (Mul, l, Type::Interval) if number(l) => (Type::Float8, iv.clone(), iv),
        (Sub, l, r)
            if (ts(l) || ts(r)) && (ts(l) || *l == Type::Date) && (ts(r) || *r == Type::Date) =>
        {
            let common = if *l == Type::Timestamptz || *r == Type::Timestamptz {
                Type::Timestamptz
            } else {
                Type::Timestamp
            };
            (common.clone(), common, iv)
        }
        _ => return None,
    })
}

/// `date ± int4`, `int4 + date` (days) and `date - date` (an int4 count of days). There is
/// no such operator for int8 (it does not cast to int4 implicitly).
fn date_types(op: ArithOp, left: &Type, right: &Type) -> Option<(Type, Type, Type)> {
    let small_int = |t: &Type| matches!(t, Type::Int2 | Type::Int4);
    match (op, left, right) {
        (ArithOp::Add | ArithOp::Sub, Type::Date, r) if small_int(r) => {
            Some((Type::Date, r.clone(), Type::Date))
        }
        (ArithOp::Add, l, Type::Date) if small_int(l) => Some((l.clone(), Type::Date, Type::Date)),
        (ArithOp::Sub, Type::Date, Type::Date) => Some((Type::Date, Type::Date, Type::Int4)),
        _ => None,
    }
}

/// The operand and result type of a prefix operator on a typed number.
pub(crate) fn unary_type(op: UnaryOp, arg: &Type) -> Option<Type> {
    match op {
        UnaryOp::Sqrt if arg.category() == Category::Number => Some(Type::Float8),
        UnaryOp::BitNot if arg.is_integer() => Some(arg.clone()),
        // Postgres has `- interval` but no prefix `+` or `@` for intervals.
        UnaryOp::Neg if *arg == Type::Interval => Some(Type::Interval),
        UnaryOp::Plus | UnaryOp::Neg | UnaryOp::Abs if arg.category() == Category::Number => {
            Some(arg.clone())
        }
        _ => None,
    }
}

/// A run-time arithmetic error (overflow, division by zero, a complex result).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ArithError;

type Res = Result<Datum<'static>, ArithError>;

fn fit(value: i64, ty: &Type) -> Res {
    let fits = match ty {
        Type::Int2 => i16::try_from(value).is_ok(),
        Type::Int4 => i32::try_from(value).is_ok(),
        _ => true,
    };
    if fits {
        Ok(Datum::Int(value))
    } else {
        Err(ArithError)
    }
}

/// Applies a binary operator to two non-null operands of the types [`binary_types`] chose.
pub(crate) fn binary(op: ArithOp, ty: &Type, left: &Datum<'_>, right: &Datum<'_>) -> Res {
    match (left, right) {
        (Datum::Int(l), Datum::Int(r)) => int_binary(op, ty, *l, *r),
        (Datum::Float(l), Datum::Float(r)) if *ty == Type::Float4 => float4_binary(op, *l, *r),
        (Datum::Float(l), Datum::Float(r)) => float8_binary(op, *l, *r),
        (Datum::Interval(_), _) | (_, Datum::Interval(_)) => interval_binary(op, left, right),
        (Datum::Timestamp(l), Datum::Timestamp(r)) if op == ArithOp::Sub => {
            interval::timestamp_diff(*l, *r)
                .map(Datum::Interval)
                .map_err(|_| ArithError)
        }
        (Datum::Date(d), Datum::Int(n)) => date_plus(*d, if op == ArithOp::Sub { -n } else { *n }),
        (Datum::Int(n), Datum::Date(d)) => date_plus(*d, *n),
        (Datum::Date(l), Datum::Date(r)) => {
            if is_infinite_date(*l) || is_infinite_date(*r) {
                return Err(ArithError);
            }
            fit(i64::from(*l) - i64::from(*r), &Type::Int4)
        }
        (Datum::Numeric(l), Datum::Numeric(r)) => {
            let op = match op {
                ArithOp::Add => NumOp::Add,
                ArithOp::Sub => NumOp::Sub,
                ArithOp::Mul => NumOp::Mul,
                ArithOp::Div => NumOp::Div,
                ArithOp::Mod => NumOp::Mod,
                _ => return Err(ArithError),
            };
            numeric_arith::binary(op, l, r)
                .map(|text| Datum::Numeric(Cow::Owned(text)))
                .map_err(|_| ArithError)
        }
        _ => Err(ArithError),
    }
}

fn interval_binary(op: ArithOp, left: &Datum<'_>, right: &Datum<'_>) -> Res {
    let date_ts = |days: i32| datetime::date_to_timestamp_checked(days).ok_or(ArithError);
    let shift = |ts: i64, span: Interval, subtract: bool| {
        let moved = if subtract {
            interval::timestamp_minus(ts, span)
        } else {
            interval::timestamp_plus(ts, span)
        };
        moved.map(Datum::Timestamp).map_err(|_| ArithError)
    };
    let sub = op == ArithOp::Sub;
    let result = match (left, right) {
        (Datum::Timestamp(ts), Datum::Interval(span)) => return shift(*ts, *span, sub),
        (Datum::Interval(span), Datum::Timestamp(ts)) => return shift(*ts, *span, false),
        (Datum::Date(d), Datum::Interval(span)) => return shift(date_ts(*d)?, *span, sub),
        (Datum::Interval(span), Datum::Date(d)) => return shift(date_ts(*d)?, *span, false),
        (Datum::Interval(l), Datum::Interval(r)) if sub => l.checked_sub(*r),
        (Datum::Interval(l), Datum::Interval(r)) => l.checked_add(*r),
        (Datum::Interval(span), Datum::Float(f)) if op == ArithOp::Div => span.div(*f),
        (Datum::Interval(span), Datum::Float(f)) | (Datum::Float(f), Datum::Interval(span)) => {
            span.mul(*f)
        }
        _ => return Err(ArithError),
    };
    result.map(Datum::Interval).map_err(|_| ArithError)
}

fn int_binary(op: ArithOp, ty: &Type, l: i64, r: i64) -> Res {
    let value = match op {
        ArithOp::Add => l.checked_add(r),
        ArithOp::Sub => l.checked_sub(r),
        ArithOp::Mul => l.checked_mul(r),
        // Truncates toward zero, as C does; MIN / -1 overflows.
        ArithOp::Div if r == 0 => None,
        ArithOp::Div => l.checked_div(r),
        ArithOp::Mod if r == 0 => None,
        // Postgres special-cases -1 so that MIN % -1 is 0 rather than a trap.
        ArithOp::Mod if r == -1 => Some(0),
        ArithOp::Mod => l.checked_rem(r),
        ArithOp::BitAnd => Some(l & r),
        ArithOp::BitOr => Some(l | r),
        ArithOp::BitXor => Some(l ^ r),
        ArithOp::Shl | ArithOp::Shr => Some(shift(op == ArithOp::Shl, ty, l, r)),
        ArithOp::Pow => None,
    };
    fit(value.ok_or(ArithError)?, ty)
}

fn is_infinite_date(days: i32) -> bool {
    days == datetime::DATE_NEG_INFINITY || days == datetime::DATE_POS_INFINITY
}

/// Postgres's date range in days from 2000-01-01: 4714-11-24 BC up to (excluding) the day
/// after 5874897-12-31.
const DATE_DAYS_MIN: i64 = -2_451_545;
const DATE_DAYS_END: i64 = 2_145_031_949;

/// `date + days`: infinite dates stay infinite; leaving the date range is an error.
fn date_plus(days: i32, delta: i64) -> Res {
    if is_infinite_date(days) {
        return Ok(Datum::Date(days));
    }
    let result = i64::from(days) + delta;
    if !(DATE_DAYS_MIN..DATE_DAYS_END).contains(&result) {
        return Err(ArithError);
    }
    i32::try_from(result)
        .map(Datum::Date)
        .map_err(|_| ArithError)
}

/// Postgres shifts with C's `<<`/`>>` on the operand's width (int2 is promoted to int), which
/// on the machines it runs on uses the count modulo the register width.
fn shift(left_shift: bool, ty: &Type, value: i64, count: i64) -> i64 {
    // Truncating the count to u32 keeps its low bits, which is all the masking reads.
    let count = count as u32;
    match ty {
        Type::Int8 if left_shift => value.wrapping_shl(count),
        Type::Int8 => value.wrapping_shr(count),
        _ => {
            let promoted = value as i32;
            let shifted = if left_shift {
                promoted.wrapping_shl(count)
            } else {
                promoted.wrapping_shr(count)
            };
            if *ty == Type::Int2 {
                i64::from(shifted as i16)
            } else {
                i64::from(shifted)
            }
        }
    }
}

/// Postgres's float checks: an infinite result from finite inputs is an overflow, a zero
/// result from nonzero inputs (for `*` and `/`) an underflow.
fn float8_binary(op: ArithOp, l: f64, r: f64) -> Res {
    let result = match op {
        ArithOp::Add => l + r,
        ArithOp::Sub => l - r,
        ArithOp::Mul => l * r,
        ArithOp::Div => {
            if r == 0.0 && !l.is_nan() {
                return Err(ArithError);
            }
            l / r
        }
        ArithOp::Pow => return power(l, r),
        _ => return Err(ArithError),
    };
    check_float(op, l, r, result.is_infinite(), result == 0.0)?;
    Ok(Datum::Float(result))
}

fn float4_binary(op: ArithOp, l: f64, r: f64) -> Res {
    // float4 operators compute in single precision.
    let (l4, r4) = (l as f32, r as f32);
    let result = match op {
        ArithOp::Add => l4 + r4,
        ArithOp::Sub => l4 - r4,
        ArithOp::Mul => l4 * r4,
        ArithOp::Div => {
            if r4 == 0.0 && !l4.is_nan() {
                return Err(ArithError);
            }
            l4 / r4
        }
        _ => return Err(ArithError),
    };
    check_float(op, l, r, result.is_infinite(), result == 0.0)?;
    Ok(Datum::Float(f64::from(result)))
}

fn check_float(op: ArithOp, l: f64, r: f64, inf: bool, zero: bool) -> Result<(), ArithError> {
    let overflow = match op {
        ArithOp::Div => inf && !l.is_infinite(),
        _ => inf && !l.is_infinite() && !r.is_infinite(),
    };
    let underflow = match op {
        ArithOp::Mul => zero && l != 0.0 && r != 0.0,
        ArithOp::Div => zero && l != 0.0 && !r.is_infinite(),
        _ => false,
    };
    if overflow || underflow {
        Err(ArithError)
    } else {
        Ok(())
    }
}

/// `float8 ^ float8` (`dpow`): C `pow` for the special values, plus Postgres's errors.
fn power(base: f64, exponent: f64) -> Res {
    if base.is_nan() || exponent.is_nan() {
        return Ok(Datum::Float(base.powf(exponent)));
    }
    if base == 0.0 && exponent < 0.0 {
        return Err(ArithError);
    }
    if base < 0.0 && exponent.floor() != exponent {
        return Err(ArithError);
    }
    let result = base.powf(exponent);
    if base.is_finite()
        && exponent.is_finite()
        && (result.is_infinite() || (result == 0.0 && base != 0.0))
    {
        return Err(ArithError);
    }
    Ok(Datum::Float(result))
}

/// Applies a prefix operator to a non-null operand of type `ty` (the result type).
pub(crate) fn unary(op: UnaryOp, ty: &Type, arg: &Datum<'_>) -> Res {
    match (op, arg) {
        (UnaryOp::Plus, Datum::Int(v)) => Ok(Datum::Int(*v)),
        (UnaryOp::Neg, Datum::Int(v)) => fit(v.checked_neg().ok_or(ArithError)?, ty),
        (UnaryOp::Abs, Datum::Int(v)) => fit(v.checked_abs().ok_or(ArithError)?, ty),
        (UnaryOp::BitNot, Datum::Int(v)) => Ok(Datum::Int(!v)),
        (UnaryOp::Neg, Datum::Interval(v)) => {
            v.checked_neg().map(Datum::Interval).map_err(|_| ArithError)
        }
        (UnaryOp::Plus, Datum::Float(v)) => Ok(Datum::Float(*v)),
        (UnaryOp::Neg, Datum::Float(v)) => Ok(Datum::Float(-v)),
        (UnaryOp::Abs, Datum::Float(v)) => Ok(Datum::Float(v.abs())),
        (UnaryOp::Sqrt, Datum::Float(v)) if *v < 0.0 => Err(ArithError),
        (UnaryOp::Sqrt, Datum::Float(v)) => Ok(Datum::Float(v.sqrt())),
        (UnaryOp::Plus, Datum::Numeric(text)) => Ok(Datum::Numeric(Cow::Owned(text.to_string()))),
        (UnaryOp::Neg | UnaryOp::Abs, Datum::Numeric(text)) => {
            numeric_arith::unary(op == UnaryOp::Neg, text)
                .map(|text| Datum::Numeric(Cow::Owned(text)))
                .map_err(|_| ArithError)
        }
        _ => Err(ArithError),
    }
}
