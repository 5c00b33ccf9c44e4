//! Exact decimal (`numeric`) values kept as their Postgres text form.
//!
//! A numeric is stored and compared as canonical text (`-12.340`, `NaN`, `Infinity`): that is
//! what pgoutput sends, what a cast to text must produce, and comparing two decimal strings
//! digit by digit is exact and needs no allocation. Floating point is never involved.

use std::cmp::Ordering;

/// Bound on the decimal exponent accepted in input such as `1e300`, so a short literal cannot
/// expand into megabytes of zeros. Postgres's own limit is larger; no realistic filter needs it.
const EXPONENT_ABS_MAX: i64 = 1000;

/// Bound on the digits of one numeric literal, for the same reason.
const DIGITS_MAX: usize = 2000;

/// A borrowed, validated view of a numeric in plain (exponent-free) text form.
#[derive(Clone, Copy, Debug)]
enum View<'a> {
    NaN,
    PosInf,
    NegInf,
    /// `int` has no leading zeros and `frac` no trailing zeros; zero has both empty.
    Finite {
        negative: bool,
        int: &'a [u8],
        frac: &'a [u8],
    },
}

fn view(text: &str) -> Option<View<'_>> {
    match text {
        "NaN" => return Some(View::NaN),
        "Infinity" => return Some(View::PosInf),
        "-Infinity" => return Some(View::NegInf),
        _ => {}
    }
    let bytes = text.as_bytes();
    let (negative, body) = match bytes.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, bytes),
    };
    let (int, frac) = match body.iter().position(|&b| b == b'.') {
        Some(dot) => (&body[..dot], &body[dot + 1..]),
        None => (body, &body[body.len()..]),
    };
    if int.is_empty() || !int.iter().all(u8::is_ascii_digit) || !frac.iter().all(u8::is_ascii_digit)
    {
        return None;
    }
    let int_start = int.iter().position(|&b| b != b'0').unwrap_or(int.len());
    let frac_end = frac.iter().rposition(|&b| b != b'0').map_or(0, |p| p + 1);
    Some(View::Finite {
        negative,
        int: &int[int_start..],
        frac: &frac[..frac_end],
    })
}

/// Checks that text is a numeric in Postgres output form (what pgoutput sends).
pub(crate) fn is_valid_output(text: &str) -> bool {
    view(text).is_some()
}

/// Compares two numerics in output form with Postgres semantics: NaN equals NaN and sorts
/// above everything, `1.50 = 1.5`, `-0 = 0`. Invalid text sorts as NaN (callers validate).
pub(crate) fn compare(left: &str, right: &str) -> Ordering {
    rank_cmp(
        view(left).unwrap_or(View::NaN),
        view(right).unwrap_or(View::NaN),
    )
}

fn rank(v: &View<'_>) -> u8 {
    match v {
        View::NegInf => 0,
        View::Finite { .. } => 1,
        View::PosInf => 2,
        View::NaN => 3,
    }
}

fn rank_cmp(left: View<'_>, right: View<'_>) -> Ordering {
    match (left, right) {
        (
            View::Finite {
                negative: ln,
                int: li,
                frac: lf,
            },
            View::Finite {
                negative: rn,
                int: ri,
                frac: rf,
            },
        ) => {
            let l_zero = li.is_empty() && lf.is_empty();
            let r_zero = ri.is_empty() && rf.is_empty();
            let ln = ln && !l_zero;
            let rn = rn && !r_zero;
            match (ln, rn) {
                (false, true) => Ordering::Greater,
                (true, false) => Ordering::Less,
                (false, false) => magnitude_cmp(li, lf, ri, rf),
                (true, true) => magnitude_cmp(ri, rf, li, lf),
            }
        }
        (l, r) => rank(&l).cmp(&rank(&r)),
    }
}

fn magnitude_cmp(li: &[u8], lf: &[u8], ri: &[u8], rf: &[u8]) -> Ordering {
    // Without leading zeros a longer integer part is larger; equal lengths compare lexically.
    li.len()
        .cmp(&ri.len())
        .then_with(|| li.cmp(ri))
        .then_with(|| lf.cmp(rf))
}

/// Parses numeric input syntax (`' -1.5e3 '`, `.5`, `NaN`, `Infinity`) into canonical output
/// form with Postgres's display scale. `None` means invalid syntax or out of our bounds.
pub(crate) fn parse_input(input: &str) -> Option<String> {
    let trimmed = input.trim_matches(|c: char| c.is_ascii_whitespace());
    let (negative, unsigned) = match trimmed.as_bytes().first() {
        Some(b'-') => (true, &trimmed[1..]),
        Some(b'+') => (false, &trimmed[1..]),
        _ => (false, trimmed),
    };
    if unsigned.eq_ignore_ascii_case("nan") {
        return (unsigned.len() == trimmed.len()).then(|| "NaN".to_string());
    }
    if unsigned.eq_ignore_ascii_case("infinity") || unsigned.eq_ignore_ascii_case("inf") {
        return Some(if negative { "-Infinity" } else { "Infinity" }.to_string());
    }
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(pos) => (&unsigned[..pos], parse_exponent(&unsigned[pos + 1..])?),
        None => (unsigned, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !all_digits(int) || !all_digits(frac) {
        return None;
    }
    if int.len() + frac.len() > DIGITS_MAX {
        return None;
    }
    Some(layout(negative, int, frac, exponent))
}

fn parse_exponent(text: &str) -> Option<i64> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || digits.len() > 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value: i64 = text.parse().ok()?;
    (value.abs() <= EXPONENT_ABS_MAX).then_some(value)
}

/// Places the decimal point of `int.frac × 10^exponent` and strips redundant zeros, keeping
/// the display scale Postgres would keep (`max(0, frac digits − exponent)`).
fn layout(negative: bool, int: &str, frac: &str, exponent: i64) -> String {
    let digits: Vec<u8> = int.bytes().chain(frac.bytes()).collect();
    // Position of the decimal point within `digits`, possibly outside it.
    let point = int.len() as i64 + exponent;
    let scale = (frac.len() as i64 - exponent).max(0);
    let mut int_part = String::new();
    let mut frac_part = String::new();
    for i in 0..point.max(0) {
        int_part.push(digit_at(&digits, i));
    }
    for i in point..point + scale {
        frac_part.push(digit_at(&digits, i));
    }
    let int_part = int_part.trim_start_matches('0');
    let is_zero = int_part.is_empty() && frac_part.bytes().all(|b| b == b'0');
    let mut out = String::with_capacity(int_part.len() + frac_part.len() + 3);
    if negative && !is_zero {
        out.push('-');
    }
    out.push_str(if int_part.is_empty() { "0" } else { int_part });
    if !frac_part.is_empty() {
        out.push('.');
        out.push_str(&frac_part);
    }
    out
}

fn digit_at(digits: &[u8], index: i64) -> char {
    usize::try_from(index)
        .ok()
        .and_then(|i| digits.get(i))
        .map_or('0', |&b| b as char)
}

/// Postgres `float8 → numeric`: the value printed with `%.15g` (`%.6g` for float4) and read
/// back, so `0.1::float8::numeric` is `0.1`, not the binary expansion.
pub(crate) fn from_float(value: f64, significant_digits: usize) -> String {
    if value.is_nan() {
        return "NaN".to_string();
    }
    if value.is_infinite() {
        return if value > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    let printed = format!("{:.*e}", significant_digits.saturating_sub(1), value);
    let (mantissa, exponent) = printed.split_once('e').unwrap_or((&printed, "0"));
    // `%g` drops trailing zeros of the mantissa, which is what fixes the display scale.
    let mantissa = if mantissa.contains('.') {
        mantissa.trim_end_matches('0').trim_end_matches('.')
    } else {
        mantissa
    };
    parse_input(&format!("{mantissa}e{exponent}")).unwrap_or_else(|| "NaN".to_string())
}

/// Why a numeric could not become an integer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ToIntError {
    NaN,
    Infinity,
    OutOfRange,
}

/// Rounds half away from zero (Postgres `numeric → int`) into an `i64`.
pub(crate) fn to_i64(text: &str) -> Result<i64, ToIntError> {
    let (negative, int, frac) = match view(text) {
        Some(View::Finite {
            negative,
            int,
            frac,
        }) => (negative, int, frac),
        Some(View::PosInf | View::NegInf) => return Err(ToIntError::Infinity),
        Some(View::NaN) | None => return Err(ToIntError::NaN),
    };
    if int.len() > 19 {
        return Err(ToIntError::OutOfRange);
    }
    let mut magnitude: i128 = 0;
    for &d in int {
        magnitude = magnitude * 10 + i128::from(d - b'0');
    }
    if frac.first().is_some_and(|&d| d >= b'5') {
        magnitude += 1;
    }
    let signed = if negative { -magnitude } else { magnitude };
    i64::try_from(signed).map_err(|_| ToIntError::OutOfRange)
}

/// Rust's float parser is correctly rounded, like the `strtod` Postgres uses here.
pub(crate) fn to_f64(text: &str) -> f64 {
    text.parse().unwrap_or(f64::NAN)
}
