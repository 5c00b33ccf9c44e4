//! `interval` values as Postgres stores them — months, days and microseconds, kept apart because
//! a month and a day have no fixed length — with Postgres's input forms, its `postgres`
//! `IntervalStyle` output, its ordering and its arithmetic (including the interval arithmetic
//! on timestamps, which needs the calendar).
//!
//! Input follows Postgres's `DecodeInterval`: fields are read right to left, a number takes the
//! unit written after it (a bare number is seconds, or days before a `hh:mm:ss` field), each
//! unit may appear once, fractions cascade down (`1.5 days` is 1 day 12 hours, `1.5 mons` is
//! 1 month 15 days) and `ago` negates. ISO 8601 designator forms (`P1Y2M3DT4H5M6S`) are read as
//! well. Rarer forms Postgres accepts (`1-2` year-month, ISO alternative format, a unit with no
//! number) are rejected as syntax errors rather than guessed.

use std::cmp::Ordering;
use std::fmt::Write as _;

use super::datetime::{self, DateTimeError};

const MICROS_PER_SECOND: i64 = 1_000_000;
const MICROS_PER_MINUTE: i64 = 60 * MICROS_PER_SECOND;
const MICROS_PER_HOUR: i64 = 60 * MICROS_PER_MINUTE;
const MICROS_PER_DAY: i64 = 24 * MICROS_PER_HOUR;
const SECONDS_PER_DAY: f64 = 86_400.0;
/// Postgres's conversion factor for cascading fractional months (`DAYS_PER_MONTH`).
const DAYS_PER_MONTH: i64 = 30;
use datetime::{TS_END as TIMESTAMP_END, TS_MIN as TIMESTAMP_MIN};
/// Julian day number of 2000-01-01: `j2date` needs the day as a non-negative `int`.
const PG_EPOCH_JULIAN: i64 = 2_451_545;
/// Longest unit name Postgres compares (`TOKMAXLEN`): `microseconds` matches `microsecon`.
const TOKEN_MAX: usize = 10;
/// Inputs longer than this are rejected before tokenizing (Postgres's field buffer is
/// similarly bounded); no legitimate interval is anywhere near it.
const INPUT_MAX: usize = 256;

/// An interval: `months` and `days` are not converted into each other or into `micros`
/// except for comparison, exactly like Postgres's `Interval`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Interval {
    pub(crate) months: i32,
    pub(crate) days: i32,
    pub(crate) micros: i64,
}

/// An arithmetic result outside the interval or timestamp range, or an infinite operand
/// where Postgres raises an error.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct OutOfRange;

impl Interval {
    /// The value intervals are ordered by: 30-day months and 24-hour days, in microseconds
    /// (Postgres's `interval_cmp_value`), so `'1 mon' = '30 days'`.
    fn span(self) -> i128 {
        let days = i128::from(self.months) * i128::from(DAYS_PER_MONTH) + i128::from(self.days);
        days * i128::from(MICROS_PER_DAY) + i128::from(self.micros)
    }

    pub(crate) fn compare(self, other: Interval) -> Ordering {
        self.span().cmp(&other.span())
    }

    pub(crate) fn checked_add(self, other: Interval) -> Result<Interval, OutOfRange> {
        Ok(Interval {
            months: self.months.checked_add(other.months).ok_or(OutOfRange)?,
            days: self.days.checked_add(other.days).ok_or(OutOfRange)?,
            micros: self.micros.checked_add(other.micros).ok_or(OutOfRange)?,
        })
    }

    pub(crate) fn checked_sub(self, other: Interval) -> Result<Interval, OutOfRange> {
        Ok(Interval {
            months: self.months.checked_sub(other.months).ok_or(OutOfRange)?,
            days: self.days.checked_sub(other.days).ok_or(OutOfRange)?,
            micros: self.micros.checked_sub(other.micros).ok_or(OutOfRange)?,
        })
    }

    pub(crate) fn checked_neg(self) -> Result<Interval, OutOfRange> {
        Ok(Interval {
            months: self.months.checked_neg().ok_or(OutOfRange)?,
            days: self.days.checked_neg().ok_or(OutOfRange)?,
            micros: self.micros.checked_neg().ok_or(OutOfRange)?,
        })
    }

    /// `interval * float8` (`interval_mul`): whole months and days stay, their fractions
    /// cascade down to days and seconds, rounded as Postgres rounds them.
    pub(crate) fn mul(self, factor: f64) -> Result<Interval, OutOfRange> {
        let months = f64::from(self.months) * factor;
        let days = f64::from(self.days) * factor;
        let time = self.micros as f64 * factor;
        cascade(months, days, time)
    }

    /// `interval / float8` (`interval_div`), with the same cascade as [`Interval::mul`].
    pub(crate) fn div(self, divisor: f64) -> Result<Interval, OutOfRange> {
        if divisor == 0.0 {
            return Err(OutOfRange);
        }
        let months = f64::from(self.months) / divisor;
        let days = f64::from(self.days) / divisor;
        let time = self.micros as f64 / divisor;
        cascade(months, days, time)
    }
}

/// The shared tail of `interval_mul`/`interval_div`, from the scaled fields: fractional
/// months become days (30 each), fractional days become seconds, each rounded to the
/// microsecond (`TSROUND`), and never cascaded upwards.
fn cascade(months: f64, days: f64, time: f64) -> Result<Interval, OutOfRange> {
    let whole_months = f64_to_i32(months)?;
    let mut whole_days = f64_to_i32(days)?;
    let month_remainder_days = ts_round((months - f64::from(whole_months)) * DAYS_PER_MONTH as f64);
    let mut sec_remainder = ts_round(
        (days - f64::from(whole_days) + month_remainder_days
            - f64::from(month_remainder_days as i32))
            * SECONDS_PER_DAY,
    );
    if sec_remainder.abs() >= SECONDS_PER_DAY {
        let extra = (sec_remainder / SECONDS_PER_DAY) as i32;
        whole_days = whole_days.checked_add(extra).ok_or(OutOfRange)?;
        sec_remainder -= f64::from(extra) * SECONDS_PER_DAY;
    }
    whole_days = whole_days
        .checked_add(month_remainder_days as i32)
        .ok_or(OutOfRange)?;
    let micros = (time + sec_remainder * MICROS_PER_SECOND as f64).round_ties_even();
    // FLOAT8_FITS_IN_INT64: [-2^63, 2^63).
    if micros.is_nan() || !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&micros) {
        return Err(OutOfRange);
    }
    Ok(Interval {
        months: whole_months,
        days: whole_days,
        micros: micros as i64,
    })
}

/// Postgres's `TSROUND`: rounds to microsecond precision to hide binary fraction noise.
fn ts_round(value: f64) -> f64 {
    (value * 1_000_000.0).round_ties_even() / 1_000_000.0
}

/// `FLOAT8_FITS_IN_INT32` then a truncating C cast.
fn f64_to_i32(value: f64) -> Result<i32, OutOfRange> {
    if value.is_nan() || !(-2_147_483_648.0..2_147_483_648.0).contains(&value) {
        return Err(OutOfRange);
    }
    Ok(value as i32)
}

fn valid_timestamp(value: i128) -> Result<i64, OutOfRange> {
    if (i128::from(TIMESTAMP_MIN)..i128::from(TIMESTAMP_END)).contains(&value) {
        // In range means it fits.
        i64::try_from(value).map_err(|_| OutOfRange)
    } else {
        Err(OutOfRange)
    }
}

/// `timestamp + interval` (also `timestamptz` in a UTC session): months first, clamping the
/// day to the target month's length, then days through the calendar, then the time — each
/// step must stay in the timestamp range, as in Postgres. Infinite timestamps stay infinite.
pub(crate) fn timestamp_plus(ts: i64, span: Interval) -> Result<i64, OutOfRange> {
    if ts == datetime::TS_NEG_INFINITY || ts == datetime::TS_POS_INFINITY {
        return Ok(ts);
    }
    let mut ts = ts;
    if span.months != 0 {
        let days = ts.div_euclid(MICROS_PER_DAY);
        let time_of_day = ts.rem_euclid(MICROS_PER_DAY);
        let (year, month, day) = datetime::civil_from_pg_days(days);
        // Postgres adds to the C `int` month field, which may overflow on its own.
        let month = i32::try_from(month)
            .ok()
            .and_then(|m| m.checked_add(span.months))
            .ok_or(OutOfRange)?;
        let (year, month) = if month > 12 {
            (year + i64::from((month - 1) / 12), (month - 1) % 12 + 1)
        } else if month < 1 {
            (year + i64::from(month / 12 - 1), month % 12 + 12)
        } else {
            (year, month)
        };
        let month = month as u32;
        let day = day.min(datetime::days_in_month(year, month));
        let days = datetime::pg_days_from_civil(year, month, day);
        ts = valid_timestamp(
            i128::from(days) * i128::from(MICROS_PER_DAY) + i128::from(time_of_day),
        )?;
    }
    if span.days != 0 {
        let days = ts.div_euclid(MICROS_PER_DAY);
        let time_of_day = ts.rem_euclid(MICROS_PER_DAY);
        let julian = i32::try_from(days + PG_EPOCH_JULIAN)
            .ok()
            .and_then(|j| j.checked_add(span.days))
            .filter(|j| *j >= 0)
            .ok_or(OutOfRange)?;
        let days = i64::from(julian) - PG_EPOCH_JULIAN;
        ts = valid_timestamp(
            i128::from(days) * i128::from(MICROS_PER_DAY) + i128::from(time_of_day),
        )?;
    }
    let ts = ts.checked_add(span.micros).ok_or(OutOfRange)?;
    valid_timestamp(i128::from(ts))
}

/// `timestamp - interval`: Postgres negates each field with C's wrapping negation.
pub(crate) fn timestamp_minus(ts: i64, span: Interval) -> Result<i64, OutOfRange> {
    timestamp_plus(
        ts,
        Interval {
            months: span.months.wrapping_neg(),
            days: span.days.wrapping_neg(),
            micros: span.micros.wrapping_neg(),
        },
    )
}

/// `timestamp - timestamp`: the difference in microseconds with whole 24-hour periods moved
/// to days (`interval_justify_hours`); infinite operands are an error.
pub(crate) fn timestamp_diff(left: i64, right: i64) -> Result<Interval, OutOfRange> {
    let infinite = |t: i64| t == datetime::TS_NEG_INFINITY || t == datetime::TS_POS_INFINITY;
    if infinite(left) || infinite(right) {
        return Err(OutOfRange);
    }
    // Postgres 15 subtracts without an overflow check (it builds with -fwrapv), so the span
    // between the extreme timestamps wraps; kept for exact agreement.
    let diff = left.wrapping_sub(right);
    // Truncating division: days and remainder have the same sign, so no fix-up is needed.
    let days = i32::try_from(diff / MICROS_PER_DAY).map_err(|_| OutOfRange)?;
    Ok(Interval {
        months: 0,
        days,
        micros: diff % MICROS_PER_DAY,
    })
}

// ---------------------------------------------------------------------------------------
// Output

/// The `IntervalStyle=postgres` output form (`1 year 2 mons -3 days +04:05:06.5`).
pub(crate) fn format(value: Interval) -> String {
    let mut out = String::with_capacity(32);
    let mut is_zero = true;
    let mut is_before = false;
    let years = value.months / 12;
    let months = value.months % 12;
    for (amount, unit) in [
        (i64::from(years), "year"),
        (i64::from(months), "mon"),
        (i64::from(value.days), "day"),
    ] {
        if amount == 0 {
            continue;
        }
        if !is_zero {
            out.push(' ');
        }
        if is_before && amount > 0 {
            out.push('+');
        }
        let plural = if amount == 1 { "" } else { "s" };
        let _ = write!(out, "{amount} {unit}{plural}");
        // Each field's sign is made explicit after a negative one.
        is_before = amount < 0;
        is_zero = false;
    }
    let micros = value.micros;
    if is_zero || micros != 0 {
        let hours = micros / MICROS_PER_HOUR;
        let minutes = micros / MICROS_PER_MINUTE % 60;
        let seconds = micros / MICROS_PER_SECOND % 60;
        let fraction = micros % MICROS_PER_SECOND;
        if !is_zero {
            out.push(' ');
        }
        if micros < 0 {
            out.push('-');
        } else if is_before {
            out.push('+');
        }
        let _ = write!(
            out,
            "{:02}:{:02}:{:02}",
            hours.unsigned_abs(),
            minutes.unsigned_abs(),
            seconds.unsigned_abs()
        );
        if fraction != 0 {
            let digits = format!("{:06}", fraction.unsigned_abs());
            out.push('.');
            out.push_str(digits.trim_end_matches('0'));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Input

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unit {
    Microsecond,
    Millisecond,
    Second,
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Year,
    Decade,
    Century,
    Millennium,
}

impl Unit {
    fn mask(self) -> u32 {
        1 << (self as u32)
    }
}

/// Every seconds-like field: a fractional second or a `hh:mm:ss` field claims them all.
const ALL_SECONDS: u32 = 0b111;
const TIME_FIELDS: u32 = ALL_SECONDS | (1 << Unit::Minute as u32) | (1 << Unit::Hour as u32);

enum Word {
    Unit(Unit),
    Ago,
}

fn word(text: &str) -> Option<Word> {
    let key = &text[..text.len().min(TOKEN_MAX)];
    Some(Word::Unit(match key {
        "ago" => return Some(Word::Ago),
        "us" | "usec" | "usecs" | "usecond" | "useconds" | "microsecon" => Unit::Microsecond,
        "ms" | "msec" | "msecs" | "msecond" | "mseconds" | "millisecon" => Unit::Millisecond,
        "s" | "sec" | "secs" | "second" | "seconds" => Unit::Second,
        "m" | "min" | "mins" | "minute" | "minutes" => Unit::Minute,
        "h" | "hr" | "hrs" | "hour" | "hours" => Unit::Hour,
        "d" | "day" | "days" => Unit::Day,
        "w" | "week" | "weeks" => Unit::Week,
        "mon" | "mons" | "month" | "months" => Unit::Month,
        "y" | "yr" | "yrs" | "year" | "years" => Unit::Year,
        "dec" | "decs" | "decade" | "decades" => Unit::Decade,
        "c" | "cent" | "century" | "centuries" => Unit::Century,
        "mil" | "mils" | "millennium" | "millennia" => Unit::Millennium,
        _ => return None,
    }))
}

/// One whitespace- or punctuation-separated field (Postgres's `ParseDateTime`).
enum Field<'a> {
    /// `12`, `1.5`, `.5`, `-3`, `+2.25`: the sign apart from the digits, which Postgres
    /// lets whitespace separate.
    Number { negative: bool, text: &'a str },
    /// `04:05:06.5` with an optional sign.
    Time { negative: bool, text: &'a str },
    /// A lowercased word.
    Word(String),
}

fn tokenize(text: &str) -> Result<Vec<Field<'_>>, DateTimeError> {
    let bytes = text.as_bytes();
    let mut fields = Vec::new();
    let mut i = 0;
    let run = |mut j: usize, ok: &dyn Fn(u8) -> bool| {
        while j < bytes.len() && ok(bytes[j]) {
            j += 1;
        }
        j
    };
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_whitespace() {
            i += 1;
        } else if b.is_ascii_digit() || b == b'.' {
            let end = run(i, &|c| c.is_ascii_digit());
            match bytes.get(end) {
                Some(b':') => {
                    let stop = run(end, &|c| c.is_ascii_digit() || c == b':' || c == b'.');
                    fields.push(Field::Time {
                        negative: false,
                        text: &text[i..stop],
                    });
                    i = stop;
                    continue;
                }
                // Dates and `years-months` are not interval forms we read.
                Some(b'-' | b'/') => return Err(DateTimeError::Syntax),
                _ => {}
            }
            let mut stop = end;
            if bytes.get(stop) == Some(&b'.') {
                stop = run(stop + 1, &|c| c.is_ascii_digit());
                if bytes.get(stop) == Some(&b'.') {
                    return Err(DateTimeError::Syntax);
                }
            }
            if stop == i + 1 && b == b'.' {
                return Err(DateTimeError::Syntax);
            }
            fields.push(Field::Number {
                negative: false,
                text: &text[i..stop],
            });
            i = stop;
        } else if b == b'+' || b == b'-' {
            // Postgres lets whitespace follow the sign; we keep the sign with the digits.
            let start = run(i + 1, &|c| c.is_ascii_whitespace());
            if !bytes.get(start).is_some_and(u8::is_ascii_digit) {
                return Err(DateTimeError::Syntax);
            }
            let stop = run(start, &|c| {
                c.is_ascii_digit() || c == b':' || c == b'.' || c == b'-'
            });
            let body = &text[start..stop];
            if body.contains('-') {
                return Err(DateTimeError::Syntax);
            }
            let negative = b == b'-';
            fields.push(if body.contains(':') {
                Field::Time {
                    negative,
                    text: body,
                }
            } else {
                Field::Number {
                    negative,
                    text: body,
                }
            });
            i = stop;
        } else if b.is_ascii_alphabetic() {
            let stop = run(i, &|c| c.is_ascii_alphabetic());
            // A word running into digits or date punctuation is not a unit we read.
            if bytes
                .get(stop)
                .is_some_and(|c| c.is_ascii_digit() || matches!(c, b'-' | b'/' | b'.' | b'+'))
            {
                return Err(DateTimeError::Syntax);
            }
            fields.push(Field::Word(text[i..stop].to_ascii_lowercase()));
            i = stop;
        } else if b.is_ascii_punctuation() {
            // Other punctuation (`@`, `,`) only separates fields, as in Postgres.
            i += 1;
        } else {
            return Err(DateTimeError::Syntax);
        }
    }
    Ok(fields)
}

/// The fields as Postgres accumulates them before forming the interval.
#[derive(Default)]
struct Accum {
    years: i32,
    months: i32,
    days: i32,
    micros: i64,
}

impl Accum {
    fn add_micros(&mut self, value: i64, fraction: f64, scale: i64) -> Result<(), DateTimeError> {
        let whole = value.checked_mul(scale).ok_or(DateTimeError::OutOfRange)?;
        self.micros = self
            .micros
            .checked_add(whole)
            .ok_or(DateTimeError::OutOfRange)?;
        self.add_fraction_micros(fraction, scale)
    }

    /// `AdjustFractMicroseconds`: truncate, then round the leftover fraction of a microsecond.
    fn add_fraction_micros(&mut self, fraction: f64, scale: i64) -> Result<(), DateTimeError> {
        if fraction == 0.0 {
            return Ok(());
        }
        let scaled = fraction * scale as f64;
        let whole = scaled as i64;
        let micros = whole + (scaled - whole as f64).round_ties_even() as i64;
        self.micros = self
            .micros
            .checked_add(micros)
            .ok_or(DateTimeError::OutOfRange)?;
        Ok(())
    }

    fn add_days(&mut self, value: i64, scale: i32) -> Result<(), DateTimeError> {
        let days = i32::try_from(value)
            .ok()
            .and_then(|v| v.checked_mul(scale))
            .ok_or(DateTimeError::OutOfRange)?;
        self.days = self
            .days
            .checked_add(days)
            .ok_or(DateTimeError::OutOfRange)?;
        Ok(())
    }

    /// `AdjustFractDays`.
    fn add_fraction_days(&mut self, fraction: f64, scale: i32) -> Result<(), DateTimeError> {
        if fraction == 0.0 {
            return Ok(());
        }
        let scaled = fraction * f64::from(scale);
        let extra = scaled as i32;
        self.days = self
            .days
            .checked_add(extra)
            .ok_or(DateTimeError::OutOfRange)?;
        self.add_fraction_micros(scaled - f64::from(extra), MICROS_PER_DAY)
    }

    fn add_months(&mut self, value: i64) -> Result<(), DateTimeError> {
        let months = i32::try_from(value).map_err(|_| DateTimeError::OutOfRange)?;
        self.months = self
            .months
            .checked_add(months)
            .ok_or(DateTimeError::OutOfRange)?;
        Ok(())
    }

    fn add_years(&mut self, value: i64, fraction: f64, scale: i32) -> Result<(), DateTimeError> {
        let years = i32::try_from(value)
            .ok()
            .and_then(|v| v.checked_mul(scale))
            .ok_or(DateTimeError::OutOfRange)?;
        self.years = self
            .years
            .checked_add(years)
            .ok_or(DateTimeError::OutOfRange)?;
        // `AdjustFractYears`: the fraction becomes whole months, rounded.
        let extra = (fraction * f64::from(scale) * 12.0).round_ties_even() as i32;
        self.months = self
            .months
            .checked_add(extra)
            .ok_or(DateTimeError::OutOfRange)?;
        Ok(())
    }

    fn apply(&mut self, unit: Unit, value: i64, fraction: f64) -> Result<(), DateTimeError> {
        match unit {
            Unit::Microsecond => self.add_micros(value, fraction, 1),
            Unit::Millisecond => self.add_micros(value, fraction, 1_000),
            Unit::Second => self.add_micros(value, fraction, MICROS_PER_SECOND),
            Unit::Minute => self.add_micros(value, fraction, MICROS_PER_MINUTE),
            Unit::Hour => self.add_micros(value, fraction, MICROS_PER_HOUR),
            Unit::Day => {
                self.add_days(value, 1)?;
                self.add_fraction_micros(fraction, MICROS_PER_DAY)
            }
            Unit::Week => {
                self.add_days(value, 7)?;
                self.add_fraction_days(fraction, 7)
            }
            Unit::Month => {
                self.add_months(value)?;
                self.add_fraction_days(fraction, DAYS_PER_MONTH as i32)
            }
            Unit::Year => self.add_years(value, fraction, 1),
            Unit::Decade => self.add_years(value, fraction, 10),
            Unit::Century => self.add_years(value, fraction, 100),
            Unit::Millennium => self.add_years(value, fraction, 1_000),
        }
    }

    fn finish(self) -> Result<Interval, DateTimeError> {
        let months = i64::from(self.years) * 12 + i64::from(self.months);
        Ok(Interval {
            months: i32::try_from(months).map_err(|_| DateTimeError::OutOfRange)?,
            days: self.days,
            micros: self.micros,
        })
    }
}

/// Splits `[+-]digits[.digits]` into the integer part and the signed fraction, as Postgres
/// does (`strtoi64`, then `strtod` of the fraction alone).
fn split_number(negative: bool, unsigned: &str) -> Result<(i64, f64), DateTimeError> {
    let (int_part, frac_part) = match unsigned.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (unsigned, None),
    };
    if !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.is_none_or(|f| f.bytes().all(|b| b.is_ascii_digit()))
        || (int_part.is_empty() && frac_part.is_none_or(str::is_empty))
    {
        return Err(DateTimeError::Syntax);
    }
    let magnitude: i64 = if int_part.is_empty() {
        0
    } else {
        int_part.parse().map_err(|_| DateTimeError::OutOfRange)?
    };
    let fraction = match frac_part {
        Some(f) if !f.is_empty() => format!("0.{f}")
            .parse::<f64>()
            .map_err(|_| DateTimeError::Syntax)?,
        _ => 0.0,
    };
    Ok(if negative {
        (-magnitude, -fraction)
    } else {
        (magnitude, fraction)
    })
}

/// `hh:mm`, `hh:mm:ss[.frac]` or `mm:ss.frac` (Postgres's `DecodeTimeCommon`), in
/// microseconds.
fn time_field(text: &str) -> Result<i64, DateTimeError> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mut parts = text.splitn(3, ':');
    let first = parts.next().unwrap_or("");
    let second = parts.next().unwrap_or("");
    let third = parts.next();
    let fraction = |s: &str| -> Result<i64, DateTimeError> {
        if !digits(s) {
            return Err(DateTimeError::Syntax);
        }
        let value: f64 = format!("0.{s}")
            .parse()
            .map_err(|_| DateTimeError::Syntax)?;
        Ok((value * 1_000_000.0).round_ties_even() as i64)
    };
    let (hours, minutes, seconds, micros) = match third {
        None => match second.split_once('.') {
            // `mm:ss.frac`: two fields with a fraction are minutes and seconds.
            Some((secs, frac)) => (String::new(), first, secs, fraction(frac)?),
            None => (first.to_string(), second, "0", 0),
        },
        Some(third) => {
            let (secs, micros) = match third.split_once('.') {
                Some((secs, frac)) => (secs, fraction(frac)?),
                None => (third, 0),
            };
            (first.to_string(), second, secs, micros)
        }
    };
    if !(hours.is_empty() || digits(&hours)) || !digits(minutes) || !digits(seconds) {
        return Err(DateTimeError::Syntax);
    }
    let hours: i64 = if hours.is_empty() {
        0
    } else {
        hours.parse().map_err(|_| DateTimeError::OutOfRange)?
    };
    let minutes: i64 = minutes.parse().map_err(|_| DateTimeError::OutOfRange)?;
    let seconds: i64 = seconds.parse().map_err(|_| DateTimeError::OutOfRange)?;
    if minutes > 59 || seconds > 60 || micros > MICROS_PER_SECOND {
        return Err(DateTimeError::OutOfRange);
    }
    hours
        .checked_mul(MICROS_PER_HOUR)
        .and_then(|h| h.checked_add(minutes * MICROS_PER_MINUTE + seconds * MICROS_PER_SECOND))
        .and_then(|t| t.checked_add(micros))
        .ok_or(DateTimeError::OutOfRange)
}

/// Reads `interval` input: Postgres's traditional form, or ISO 8601 with designators.
pub(crate) fn parse(text: &str) -> Result<Interval, DateTimeError> {
    if text.len() > INPUT_MAX {
        return Err(DateTimeError::Syntax);
    }
    match parse_traditional(text) {
        Err(DateTimeError::Syntax) if text.starts_with('P') => parse_iso8601(text),
        other => other,
    }
}

fn parse_traditional(text: &str) -> Result<Interval, DateTimeError> {
    let fields = tokenize(text)?;
    let mut accum = Accum::default();
    let mut seen: u32 = 0;
    let mut unit = Unit::Second;
    let mut pending_unit = false;
    let mut ago = false;
    let mut claim = |mask: u32| {
        if seen & mask != 0 {
            return Err(DateTimeError::Syntax);
        }
        seen |= mask;
        Ok(())
    };
    // Right to left, as Postgres reads them: a unit applies to the number before it.
    for field in fields.iter().rev() {
        match field {
            Field::Word(w) => {
                if pending_unit {
                    return Err(DateTimeError::Syntax);
                }
                match word(w).ok_or(DateTimeError::Syntax)? {
                    Word::Unit(u) => {
                        unit = u;
                        pending_unit = true;
                    }
                    Word::Ago if !ago => ago = true,
                    Word::Ago => return Err(DateTimeError::Syntax),
                }
            }
            Field::Time { negative, text } => {
                if pending_unit {
                    return Err(DateTimeError::Syntax);
                }
                claim(TIME_FIELDS)?;
                let micros = time_field(text)?;
                // Postgres sets (not adds) the time here, so a fractional day read earlier
                // (further right) is overwritten; kept for exact agreement.
                accum.micros = if *negative { -micros } else { micros };
                unit = Unit::Day;
            }
            Field::Number { negative, text } => {
                let (value, fraction) = split_number(*negative, text)?;
                let mask = match unit {
                    Unit::Second if fraction != 0.0 => ALL_SECONDS,
                    u => u.mask(),
                };
                claim(mask)?;
                accum.apply(unit, value, fraction)?;
                pending_unit = false;
                if unit == Unit::Hour {
                    unit = Unit::Day;
                }
            }
        }
    }
    if pending_unit || seen == 0 {
        return Err(DateTimeError::Syntax);
    }
    if ago {
        accum = Accum {
            years: accum.years.checked_neg().ok_or(DateTimeError::OutOfRange)?,
            months: accum
                .months
                .checked_neg()
                .ok_or(DateTimeError::OutOfRange)?,
            days: accum.days.checked_neg().ok_or(DateTimeError::OutOfRange)?,
            micros: accum
                .micros
                .checked_neg()
                .ok_or(DateTimeError::OutOfRange)?,
        };
    }
    accum.finish()
}

/// ISO 8601 "format with designators": `P[nY][nM][nW][nD][T[nH][nM][nS]]`, numbers possibly
/// negative or fractional (Postgres's `DecodeISO8601Interval`; the alternative format
/// `P0001-02-03T04:05:06` is not read).
fn parse_iso8601(text: &str) -> Result<Interval, DateTimeError> {
    let bytes = text.as_bytes();
    if bytes.len() < 2 || bytes[0] != b'P' {
        return Err(DateTimeError::Syntax);
    }
    let mut accum = Accum::default();
    let mut date_part = true;
    let mut i = 1;
    while i < bytes.len() {
        if bytes[i] == b'T' {
            date_part = false;
            i += 1;
            continue;
        }
        let start = i;
        if bytes[i] == b'-' {
            i += 1;
        }
        while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        let number = &text[start..i];
        let has_digit = number.bytes().any(|b| b.is_ascii_digit());
        if !has_digit || number.matches('.').count() > 1 {
            return Err(DateTimeError::Syntax);
        }
        let value: f64 = number.parse().map_err(|_| DateTimeError::Syntax)?;
        if !(-1.0e15..=1.0e15).contains(&value) {
            return Err(DateTimeError::OutOfRange);
        }
        let whole = value.trunc() as i64;
        let fraction = value - whole as f64;
        let Some(&designator) = bytes.get(i) else {
            return Err(DateTimeError::Syntax);
        };
        i += 1;
        match (date_part, designator) {
            (true, b'Y') => accum.add_years(whole, fraction, 1)?,
            (true, b'M') => {
                accum.add_months(whole)?;
                accum.add_fraction_days(fraction, DAYS_PER_MONTH as i32)?;
            }
            (true, b'W') => {
                accum.add_days(whole, 7)?;
                accum.add_fraction_days(fraction, 7)?;
            }
            (true, b'D') => {
                accum.add_days(whole, 1)?;
                accum.add_fraction_micros(fraction, MICROS_PER_DAY)?;
            }
            (false, b'H') => accum.add_micros(whole, fraction, MICROS_PER_HOUR)?,
            (false, b'M') => accum.add_micros(whole, fraction, MICROS_PER_MINUTE)?,
            (false, b'S') => accum.add_micros(whole, fraction, MICROS_PER_SECOND)?,
            _ => return Err(DateTimeError::Syntax),
        }
    }
    accum.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(months: i32, days: i32, micros: i64) -> Interval {
        Interval {
            months,
            days,
            micros,
        }
    }

    #[test]
    fn reads_output_forms_and_common_input() {
        let cases = [
            ("1 day 02:03:04", iv(0, 1, 7_384_000_000)),
            (
                "-1 years -2 mons +3 days -04:05:06.5",
                iv(-14, 3, -14_706_500_000),
            ),
            ("00:00:01", iv(0, 0, 1_000_000)),
            ("3 mons", iv(3, 0, 0)),
            ("1 day", iv(0, 1, 0)),
            ("2 hours", iv(0, 0, 2 * MICROS_PER_HOUR)),
            ("90 minutes", iv(0, 0, 90 * MICROS_PER_MINUTE)),
            ("1 year 2 months", iv(14, 0, 0)),
            ("1.5 days", iv(0, 1, 12 * MICROS_PER_HOUR)),
            ("1.5 mon", iv(1, 15, 0)),
            ("0.7 years", iv(8, 0, 0)),
            ("@ 1 day ago", iv(0, -1, 0)),
            ("-1.5 weeks", iv(0, -10, -12 * MICROS_PER_HOUR)),
            ("1 2 hours", iv(0, 1, 2 * MICROS_PER_HOUR)),
            ("00:00:01 1.5 days", iv(0, 1, 1_000_000)),
            ("P1DT2H", iv(0, 1, 2 * MICROS_PER_HOUR)),
            ("P1Y2M3W", iv(14, 21, 0)),
            ("5", iv(0, 0, 5_000_000)),
            ("2562047788:00:54.775807", iv(0, 0, i64::MAX)),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text), Ok(expected), "{text}");
        }
        for bad in [
            "",
            "day",
            "1 day day",
            "1day2hours",
            "1-2",
            "1 day 2 days",
            "P",
            "x",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn formats_like_postgres() {
        let cases = [
            (iv(0, 0, 0), "00:00:00"),
            (
                iv(-14, 3, -14_706_500_000),
                "-1 years -2 mons +3 days -04:05:06.5",
            ),
            (iv(13, 1, 0), "1 year 1 mon 1 day"),
            (iv(0, -1, 0), "-1 days"),
            (iv(0, 1, 7_384_000_000), "1 day 02:03:04"),
            (iv(0, -1, 3_600_000_000), "-1 days +01:00:00"),
        ];
        for (value, text) in cases {
            assert_eq!(format(value), text);
            assert_eq!(parse(text), Ok(value), "{text}");
        }
    }

    #[test]
    fn month_arithmetic_clamps_days() {
        // 2024-01-31 + 1 mon = 2024-02-29.
        let jan31 = 8_796 * MICROS_PER_DAY;
        let feb29 = 8_825 * MICROS_PER_DAY;
        assert_eq!(timestamp_plus(jan31, iv(1, 0, 0)), Ok(feb29));
        assert_eq!(iv(1, 0, 0).compare(iv(0, 30, 0)), Ordering::Equal);
        assert!(timestamp_plus(TIMESTAMP_END - 1, iv(0, 0, 1)).is_err());
    }
}
