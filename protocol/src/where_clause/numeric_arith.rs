//! Exact `numeric` arithmetic (`+ - * / %`, negation, absolute value) on the text form, with
//! Postgres's display scales: the larger input scale for `+ - %`, the sum for `*`, and
//! `select_div_scale` (at least 16 significant digits) for `/`, rounded half away from zero.
//!
//! Digits are kept as decimal digit vectors; operands are bounded ([`DIGITS_MAX`]) so that a
//! huge value in a row cannot make evaluation quadratic in megabytes. Beyond the bound the
//! evaluation fails (the row is treated as not matching), which no realistic filter reaches.

use std::cmp::Ordering;

/// Longest operand (integer plus fraction digits) accepted. Division is quadratic in the
/// digits, so this bounds the per-row cost; real filters use a few dozen digits.
const DIGITS_MAX: usize = 500;

/// Postgres's `NUMERIC_MIN_SIG_DIGITS` and `NUMERIC_MAX_DISPLAY_SCALE`.
const MIN_SIG_DIGITS: i64 = 16;
const MAX_DISPLAY_SCALE: i64 = 1000;

/// Why a numeric operation has no result (Postgres raises an error for all of these).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum NumericError {
    DivisionByZero,
    TooLarge,
    Invalid,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Num {
    NaN,
    Inf {
        negative: bool,
    },
    /// `magnitude × 10^-scale`; `magnitude` has no leading zeros (empty is zero).
    Finite {
        negative: bool,
        magnitude: Vec<u8>,
        scale: usize,
    },
}

fn parse(text: &str) -> Result<Num, NumericError> {
    match text {
        "NaN" => return Ok(Num::NaN),
        "Infinity" => return Ok(Num::Inf { negative: false }),
        "-Infinity" => return Ok(Num::Inf { negative: true }),
        _ => {}
    }
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let valid = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !valid(int) || !valid(frac) {
        return Err(NumericError::Invalid);
    }
    if int.len() + frac.len() > DIGITS_MAX {
        return Err(NumericError::TooLarge);
    }
    let digits = int.bytes().chain(frac.bytes()).map(|b| b - b'0');
    let magnitude = trim(digits.collect());
    Ok(Num::Finite {
        negative: negative && !magnitude.is_empty(),
        magnitude,
        scale: frac.len(),
    })
}

fn trim(mut digits: Vec<u8>) -> Vec<u8> {
    let leading = digits.iter().take_while(|&&d| d == 0).count();
    digits.drain(..leading);
    digits
}

fn format(num: &Num) -> String {
    match num {
        Num::NaN => "NaN".to_string(),
        Num::Inf { negative: false } => "Infinity".to_string(),
        Num::Inf { negative: true } => "-Infinity".to_string(),
        Num::Finite {
            negative,
            magnitude,
            scale,
        } => {
            let mut out = String::with_capacity(magnitude.len() + scale + 3);
            if *negative && !magnitude.is_empty() {
                out.push('-');
            }
            let int_len = magnitude.len().saturating_sub(*scale);
            if int_len == 0 {
                out.push('0');
            }
            for d in &magnitude[..int_len] {
                out.push(char::from(b'0' + d));
            }
            if *scale > 0 {
                out.push('.');
                for _ in magnitude.len()..*scale {
                    out.push('0');
                }
                for d in &magnitude[int_len..] {
                    out.push(char::from(b'0' + d));
                }
            }
            out
        }
    }
}

fn cmp_mag(a: &[u8], b: &[u8]) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn add_mag(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(a.len().max(b.len()) + 1);
    let (mut i, mut j, mut carry) = (a.len(), b.len(), 0u8);
    while i > 0 || j > 0 || carry > 0 {
        let mut sum = carry;
        if i > 0 {
            i -= 1;
            sum += a[i];
        }
        if j > 0 {
            j -= 1;
            sum += b[j];
        }
        out.push(sum % 10);
        carry = sum / 10;
    }
    out.reverse();
    trim(out)
}

/// `a - b` for `a >= b`.
fn sub_mag(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(a.len());
    let (mut j, mut borrow) = (b.len(), 0i8);
    for i in (0..a.len()).rev() {
        let mut d = a[i] as i8 - borrow;
        if j > 0 {
            j -= 1;
            d -= b[j] as i8;
        }
        borrow = i8::from(d < 0);
        out.push((d + 10 * borrow) as u8);
    }
    out.reverse();
    trim(out)
}

fn mul_mag(a: &[u8], b: &[u8]) -> Vec<u8> {
    if a.is_empty() || b.is_empty() {
        return Vec::new();
    }
    let mut acc = vec![0u32; a.len() + b.len()];
    for (i, &x) in a.iter().enumerate().rev() {
        for (j, &y) in b.iter().enumerate().rev() {
            acc[i + j + 1] += u32::from(x) * u32::from(y);
        }
        // Propagate carries per row so no cell overflows.
        for k in (1..acc.len()).rev() {
            acc[k - 1] += acc[k] / 10;
            acc[k] %= 10;
        }
    }
    trim(acc.into_iter().map(|d| d as u8).collect())
}

/// Truncated quotient and remainder of magnitudes; `b` is nonzero.
fn divmod_mag(a: &[u8], b: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut quotient = Vec::with_capacity(a.len());
    let mut rest: Vec<u8> = Vec::with_capacity(b.len() + 1);
    for &d in a {
        rest.push(d);
        rest = trim(rest);
        let mut q = 0u8;
        while cmp_mag(&rest, b) != Ordering::Less {
            rest = sub_mag(&rest, b);
            q += 1;
        }
        quotient.push(q);
    }
    (trim(quotient), rest)
}

fn shift(magnitude: &[u8], zeros: usize) -> Result<Vec<u8>, NumericError> {
    if magnitude.len() + zeros > 2 * DIGITS_MAX + MAX_DISPLAY_SCALE as usize {
        return Err(NumericError::TooLarge);
    }
    let mut out = magnitude.to_vec();
    if !out.is_empty() {
        out.resize(magnitude.len() + zeros, 0);
    }
    Ok(out)
}

/// Signed addition of two finite values.
fn add(an: bool, a: &[u8], bn: bool, b: &[u8]) -> (bool, Vec<u8>) {
    if an == bn {
        return (an, add_mag(a, b));
    }
    match cmp_mag(a, b) {
        Ordering::Less => (bn, sub_mag(b, a)),
        _ => (an, sub_mag(a, b)),
    }
}

/// Postgres's weight (in base-10000 digits) and first base-10000 digit of a finite value.
fn weight_and_first(magnitude: &[u8], scale: usize) -> (i64, u32) {
    if magnitude.is_empty() {
        return (0, 0);
    }
    let group = |digits: &[u8]| digits.iter().fold(0u32, |acc, &d| acc * 10 + u32::from(d));
    let int_len = magnitude.len().saturating_sub(scale);
    if int_len > 0 {
        let weight = (int_len - 1) / 4;
        let top = int_len - 4 * weight;
        return (weight as i64, group(&magnitude[..top]));
    }
    // Only fraction digits: pad to the full scale and find the first nonzero group of four.
    let mut frac = vec![0u8; scale - magnitude.len()];
    frac.extend_from_slice(magnitude);
    frac.resize(scale.div_ceil(4) * 4, 0);
    for (k, chunk) in frac.chunks(4).enumerate() {
        let value = group(chunk);
        if value != 0 {
            return (-(k as i64) - 1, value);
        }
    }
    (0, 0)
}

fn div_scale(a: (&[u8], usize), b: (&[u8], usize)) -> usize {
    let (w1, f1) = weight_and_first(a.0, a.1);
    let (w2, f2) = weight_and_first(b.0, b.1);
    let mut qweight = w1 - w2;
    if f1 <= f2 {
        qweight -= 1;
    }
    let rscale = (MIN_SIG_DIGITS - qweight * 4)
        .max(a.1 as i64)
        .max(b.1 as i64)
        .clamp(0, MAX_DISPLAY_SCALE);
    rscale as usize
}

/// The operators; `Neg` and `Abs` ignore `right`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NumOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

pub(crate) fn binary(op: NumOp, left: &str, right: &str) -> Result<String, NumericError> {
    let (l, r) = (parse(left)?, parse(right)?);
    let result = match (l, r) {
        (Num::NaN, _) | (_, Num::NaN) => Num::NaN,
        (
            Num::Finite {
                negative: an,
                magnitude: a,
                scale: sa,
            },
            Num::Finite {
                negative: bn,
                magnitude: b,
                scale: sb,
            },
        ) => finite(op, (an, &a, sa), (bn, &b, sb))?,
        (l, r) => special(op, &l, &r)?,
    };
    Ok(format(&result))
}

fn sign(num: &Num) -> i8 {
    match num {
        Num::NaN => 0,
        Num::Inf { negative } => {
            if *negative {
                -1
            } else {
                1
            }
        }
        Num::Finite {
            negative,
            magnitude,
            ..
        } => {
            if magnitude.is_empty() {
                0
            } else if *negative {
                -1
            } else {
                1
            }
        }
    }
}

/// At least one operand is infinite (and none is NaN).
fn special(op: NumOp, l: &Num, r: &Num) -> Result<Num, NumericError> {
    let (ls, rs) = (sign(l), sign(r));
    let l_inf = matches!(l, Num::Inf { .. });
    let r_inf = matches!(r, Num::Inf { .. });
    let inf = |s: i8| Num::Inf { negative: s < 0 };
    Ok(match op {
        NumOp::Add if l_inf && r_inf && ls != rs => Num::NaN,
        NumOp::Add => inf(if l_inf { ls } else { rs }),
        NumOp::Sub if l_inf && r_inf && ls == rs => Num::NaN,
        NumOp::Sub => inf(if l_inf { ls } else { -rs }),
        NumOp::Mul if ls == 0 || rs == 0 => Num::NaN,
        NumOp::Mul => inf(ls * rs),
        NumOp::Div if l_inf && r_inf => Num::NaN,
        NumOp::Div if l_inf && rs == 0 => return Err(NumericError::DivisionByZero),
        NumOp::Div if l_inf => inf(ls * rs),
        // finite / ±Infinity
        NumOp::Div => zero(),
        NumOp::Mod if l_inf && rs == 0 => return Err(NumericError::DivisionByZero),
        NumOp::Mod if l_inf => Num::NaN,
        // finite % ±Infinity is the dividend
        NumOp::Mod => l.clone(),
    })
}

fn zero() -> Num {
    Num::Finite {
        negative: false,
        magnitude: Vec::new(),
        scale: 0,
    }
}

fn finite(
    op: NumOp,
    (an, a, sa): (bool, &[u8], usize),
    (bn, b, sb): (bool, &[u8], usize),
) -> Result<Num, NumericError> {
    let scale = sa.max(sb);
    let (negative, magnitude, scale) = match op {
        NumOp::Add | NumOp::Sub => {
            let (a, b) = (shift(a, scale - sa)?, shift(b, scale - sb)?);
            let bn = if op == NumOp::Sub { !bn } else { bn };
            let (negative, magnitude) = add(an, &a, bn, &b);
            (negative, magnitude, scale)
        }
        NumOp::Mul => (an != bn, mul_mag(a, b), sa + sb),
        NumOp::Div => {
            if b.is_empty() {
                return Err(NumericError::DivisionByZero);
            }
            let rscale = div_scale((a, sa), (b, sb));
            // a/b × 10^rscale = A × 10^(sb − sa + rscale) / B; one extra digit for rounding.
            let exponent = sb as i64 - sa as i64 + rscale as i64 + 1;
            let (num, den) = if exponent >= 0 {
                (shift(a, exponent as usize)?, b.to_vec())
            } else {
                (a.to_vec(), shift(b, exponent.unsigned_abs() as usize)?)
            };
            let (q, _) = divmod_mag(&num, &den);
            // Round half away from zero on the extra digit.
            let (q, last) = match q.split_last() {
                Some((&last, rest)) => (rest.to_vec(), last),
                None => (Vec::new(), 0),
            };
            let q = if last >= 5 {
                add_mag(&q, &[1])
            } else {
                trim(q)
            };
            (an != bn, q, rscale)
        }
        NumOp::Mod => {
            if b.is_empty() {
                return Err(NumericError::DivisionByZero);
            }
            let (a, b) = (shift(a, scale - sa)?, shift(b, scale - sb)?);
            let (_, rest) = divmod_mag(&a, &b);
            (an, rest, scale)
        }
    };
    if magnitude.len() > 2 * DIGITS_MAX + MAX_DISPLAY_SCALE as usize {
        return Err(NumericError::TooLarge);
    }
    Ok(Num::Finite {
        negative: negative && !magnitude.is_empty(),
        magnitude,
        scale,
    })
}

/// `-x` (`negate`) or `@x`.
pub(crate) fn unary(negate: bool, text: &str) -> Result<String, NumericError> {
    let num = match parse(text)? {
        Num::NaN => Num::NaN,
        Num::Inf { negative } => Num::Inf {
            negative: negate && !negative,
        },
        Num::Finite {
            negative,
            magnitude,
            scale,
        } => Num::Finite {
            negative: negate && !negative && !magnitude.is_empty(),
            magnitude,
            scale,
        },
    };
    Ok(format(&num))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(o: NumOp, a: &str, b: &str) -> String {
        binary(o, a, b).unwrap_or_else(|e| format!("{e:?}"))
    }

    #[test]
    fn scales_follow_postgres() {
        assert_eq!(op(NumOp::Add, "1.50", "2"), "3.50");
        assert_eq!(op(NumOp::Sub, "1.5", "1.50"), "0.00");
        assert_eq!(op(NumOp::Sub, "1", "2.5"), "-1.5");
        assert_eq!(op(NumOp::Mul, "1.5", "-2.25"), "-3.375");
        assert_eq!(op(NumOp::Mul, "0.10", "0"), "0.00");
        assert_eq!(op(NumOp::Div, "1", "3"), "0.33333333333333333333");
        assert_eq!(op(NumOp::Div, "10", "2"), "5.0000000000000000");
        assert_eq!(op(NumOp::Div, "2", "3"), "0.66666666666666666667");
        assert_eq!(op(NumOp::Div, "-7", "2"), "-3.5000000000000000");
        assert_eq!(op(NumOp::Div, "1", "0"), "DivisionByZero");
        assert_eq!(op(NumOp::Mod, "-7.5", "2"), "-1.5");
        assert_eq!(op(NumOp::Add, "Infinity", "-Infinity"), "NaN");
        assert_eq!(op(NumOp::Div, "1", "Infinity"), "0");
        assert_eq!(op(NumOp::Mul, "-Infinity", "2"), "-Infinity");
        assert_eq!(unary(true, "0.00").unwrap(), "0.00");
        assert_eq!(unary(false, "-1.5").unwrap(), "1.5");
    }
}
