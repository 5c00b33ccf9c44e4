//! `date`, `timestamp` and `timestamptz` values as integers, read from and written as the
//! ISO text forms Postgres uses with `DateStyle=ISO` and `TimeZone=UTC`.
//!
//! As in Postgres, a date is a day count and a timestamp a microsecond count, both from
//! 2000-01-01, with the extreme values standing for `-infinity` and `infinity`. Timestamps with
//! and without time zone share the representation: in a UTC session they compare identically.

use std::fmt::Write as _;

pub(crate) const DATE_NEG_INFINITY: i32 = i32::MIN;
pub(crate) const DATE_POS_INFINITY: i32 = i32::MAX;
pub(crate) const TS_NEG_INFINITY: i64 = i64::MIN;
pub(crate) const TS_POS_INFINITY: i64 = i64::MAX;

const MICROS_PER_DAY: i64 = 86_400_000_000;
/// Postgres's timestamp range: 4714-11-24 BC 00:00 up to (excluding) 294277-01-01 00:00.
pub(crate) const TS_MIN: i64 = -211_813_488_000_000_000;
pub(crate) const TS_END: i64 = 9_223_371_331_200_000_000;
/// Days from 1970-01-01 to 2000-01-01, the Postgres epoch.
const UNIX_TO_PG_EPOCH_DAYS: i64 = 10_957;
/// Postgres accepts years from 4714 BC (from November 24, Julian day 0) to 294276 AD for
/// timestamps.
const YEAR_MIN: i64 = -4713;
/// 4714-11-24 BC, the first valid date, in days from 2000-01-01.
const DAYS_MIN: i64 = -2_451_545;
const YEAR_MAX: i64 = 294_276;

/// Why date/time input was rejected: the message is chosen by the caller's type.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DateTimeError {
    Syntax,
    OutOfRange,
}

/// Days since 1970-01-01 in the proleptic Gregorian calendar (astronomical years).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

pub(crate) fn days_in_month(year: i64, month: u32) -> u32 {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// (year, month, day) of a day count from 2000-01-01; years are astronomical (0 is 1 BC).
pub(crate) fn civil_from_pg_days(days: i64) -> (i64, u32, u32) {
    civil_from_days(days + UNIX_TO_PG_EPOCH_DAYS)
}

/// Days from 2000-01-01 to a (proleptic Gregorian, astronomical-year) date.
pub(crate) fn pg_days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    days_from_civil(year, month, day) - UNIX_TO_PG_EPOCH_DAYS
}

/// The parts of a date/time literal, before the target type decides what to keep.
struct Parsed {
    /// Days since 2000-01-01.
    days: i64,
    /// Microseconds into the day (may reach a full day for `24:00:00`).
    time_micros: i64,
    /// Seconds east of UTC, when the text named an offset.
    offset_seconds: Option<i64>,
}

enum Special {
    NegInfinity,
    PosInfinity,
}

fn special(text: &str) -> Option<Special> {
    if text.eq_ignore_ascii_case("infinity") || text.eq_ignore_ascii_case("+infinity") {
        Some(Special::PosInfinity)
    } else if text.eq_ignore_ascii_case("-infinity") {
        Some(Special::NegInfinity)
    } else {
        None
    }
}

/// A tiny cursor over ASCII input.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let hit = self.peek() == Some(byte);
        if hit {
            self.pos += 1;
        }
        hit
    }

    /// Reads between `min` and `max` digits as a number.
    fn digits(&mut self, min: usize, max: usize) -> Option<(i64, usize)> {
        let start = self.pos;
        let mut value: i64 = 0;
        while self.pos - start < max {
            match self.peek() {
                Some(b) if b.is_ascii_digit() => {
                    value = value * 10 + i64::from(b - b'0');
                    self.pos += 1;
                }
                _ => break,
            }
        }
        let count = self.pos - start;
        (count >= min).then_some((value, count))
    }

    fn skip_spaces(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    fn at_end(&self) -> bool {
        self.pos == self.bytes.len()
    }
}

fn parse_parts(text: &str) -> Result<Parsed, DateTimeError> {
    let mut body = text.trim_matches(|c: char| c.is_ascii_whitespace());
    let mut bc = false;
    for (suffix, is_bc) in [(" BC", true), (" bc", true), (" AD", false), (" ad", false)] {
        if let Some(rest) = body.strip_suffix(suffix) {
            body = rest.trim_end();
            bc = is_bc;
            break;
        }
    }
    let mut c = Cursor {
        bytes: body.as_bytes(),
        pos: 0,
    };
    let (year, _) = c.digits(1, 7).ok_or(DateTimeError::Syntax)?;
    let month = dash_field(&mut c)?;
    let day = dash_field(&mut c)?;
    let year = if bc { 1 - year } else { year };
    if year == 0 && !bc {
        return Err(DateTimeError::OutOfRange);
    }
    if !(1..=12).contains(&month) || day < 1 || day > i64::from(days_in_month(year, month as u32)) {
        return Err(DateTimeError::OutOfRange);
    }
    if !(YEAR_MIN..=YEAR_MAX).contains(&year) {
        return Err(DateTimeError::OutOfRange);
    }
    let days = days_from_civil(year, month as u32, day as u32) - UNIX_TO_PG_EPOCH_DAYS;
    if days < DAYS_MIN {
        return Err(DateTimeError::OutOfRange);
    }
    let mut time_micros = 0;
    let mut offset_seconds = None;
    if !c.at_end() {
        if !c.eat(b'T') && !c.eat(b't') {
            if !c.peek().is_some_and(|b| b.is_ascii_whitespace()) {
                return Err(DateTimeError::Syntax);
            }
            c.skip_spaces();
        }
        time_micros = parse_time(&mut c)?;
        c.skip_spaces();
        if !c.at_end() {
            offset_seconds = Some(parse_offset(&mut c)?);
        }
    }
    if !c.at_end() {
        return Err(DateTimeError::Syntax);
    }
    Ok(Parsed {
        days,
        time_micros,
        offset_seconds,
    })
}

fn dash_field(c: &mut Cursor<'_>) -> Result<i64, DateTimeError> {
    if !c.eat(b'-') {
        return Err(DateTimeError::Syntax);
    }
    c.digits(1, 2).map(|(v, _)| v).ok_or(DateTimeError::Syntax)
}

fn parse_time(c: &mut Cursor<'_>) -> Result<i64, DateTimeError> {
    let (hour, _) = c.digits(1, 2).ok_or(DateTimeError::Syntax)?;
    if !c.eat(b':') {
        return Err(DateTimeError::Syntax);
    }
    let (minute, _) = c.digits(2, 2).ok_or(DateTimeError::Syntax)?;
    let mut second = 0;
    let mut micros = 0;
    if c.eat(b':') {
        second = c.digits(2, 2).ok_or(DateTimeError::Syntax)?.0;
        if c.eat(b'.') {
            micros = parse_fraction(c)?;
        }
    }
    let over_24 = hour == 24 && (minute > 0 || second > 0 || micros > 0);
    if hour > 24 || over_24 || minute > 59 || second > 60 {
        return Err(DateTimeError::OutOfRange);
    }
    Ok(((hour * 60 + minute) * 60 + second) * 1_000_000 + micros)
}

/// Reads fractional seconds, rounded to microseconds as Postgres does.
fn parse_fraction(c: &mut Cursor<'_>) -> Result<i64, DateTimeError> {
    let start = c.pos;
    let mut micros: i64 = 0;
    let mut count = 0;
    let mut round_up = false;
    while let Some(b) = c.peek().filter(u8::is_ascii_digit) {
        match count {
            0..=5 => micros = micros * 10 + i64::from(b - b'0'),
            6 => round_up = b >= b'5',
            _ => {}
        }
        count += 1;
        c.pos += 1;
    }
    if c.pos == start {
        return Err(DateTimeError::Syntax);
    }
    for _ in count..6 {
        micros *= 10;
    }
    Ok(micros + i64::from(round_up))
}

fn parse_offset(c: &mut Cursor<'_>) -> Result<i64, DateTimeError> {
    let rest = &c.bytes[c.pos..];
    if rest.eq_ignore_ascii_case(b"z") || rest.eq_ignore_ascii_case(b"utc") {
        c.pos = c.bytes.len();
        return Ok(0);
    }
    let sign = match c.peek() {
        Some(b'+') => 1,
        Some(b'-') => -1,
        _ => return Err(DateTimeError::Syntax),
    };
    c.pos += 1;
    let (first, width) = c.digits(1, 4).ok_or(DateTimeError::Syntax)?;
    // `+0530` packs hours and minutes; `+05:30[:15]` separates them.
    let (hours, mut minutes) = if width > 2 {
        (first / 100, first % 100)
    } else {
        (first, 0)
    };
    let mut seconds = 0;
    if width <= 2 && c.eat(b':') {
        minutes = c.digits(2, 2).ok_or(DateTimeError::Syntax)?.0;
        if c.eat(b':') {
            seconds = c.digits(2, 2).ok_or(DateTimeError::Syntax)?.0;
        }
    }
    if hours > 15 || minutes > 59 || seconds > 59 {
        return Err(DateTimeError::OutOfRange);
    }
    Ok(sign * (hours * 3600 + minutes * 60 + seconds))
}

/// Reads `date` input (`2024-01-31`, `0044-03-15 BC`, `infinity`); a time part is ignored.
pub(crate) fn parse_date(text: &str) -> Result<i32, DateTimeError> {
    match special(text.trim()) {
        Some(Special::PosInfinity) => return Ok(DATE_POS_INFINITY),
        Some(Special::NegInfinity) => return Ok(DATE_NEG_INFINITY),
        None => {}
    }
    let parsed = parse_parts(text)?;
    i32::try_from(parsed.days).map_err(|_| DateTimeError::OutOfRange)
}

/// Reads `timestamp` (`with_zone == false`: any offset is ignored, as Postgres does) or
/// `timestamptz` input (no offset means the session zone, UTC).
pub(crate) fn parse_timestamp(text: &str, with_zone: bool) -> Result<i64, DateTimeError> {
    match special(text.trim()) {
        Some(Special::PosInfinity) => return Ok(TS_POS_INFINITY),
        Some(Special::NegInfinity) => return Ok(TS_NEG_INFINITY),
        None => {}
    }
    let parsed = parse_parts(text)?;
    let offset = if with_zone {
        parsed.offset_seconds.unwrap_or(0)
    } else {
        0
    };
    let micros = parsed.days * MICROS_PER_DAY + parsed.time_micros - offset * 1_000_000;
    // An offset can push an edge value out of the range (`294276-12-31 23:59:59-08`).
    if !(TS_MIN..TS_END).contains(&micros) {
        return Err(DateTimeError::OutOfRange);
    }
    Ok(micros)
}

pub(crate) fn date_to_timestamp(days: i32) -> i64 {
    match days {
        DATE_NEG_INFINITY => TS_NEG_INFINITY,
        DATE_POS_INFINITY => TS_POS_INFINITY,
        d => i64::from(d) * MICROS_PER_DAY,
    }
}

/// First date (in days from 2000-01-01) past the timestamp range: 294277-01-01.
const DATE_END_FOR_TIMESTAMP: i64 = 106_751_983;

/// `date::timestamp` with Postgres's range check ("date out of range for timestamp").
pub(crate) fn date_to_timestamp_checked(days: i32) -> Option<i64> {
    if days != DATE_POS_INFINITY && i64::from(days) >= DATE_END_FOR_TIMESTAMP {
        return None;
    }
    Some(date_to_timestamp(days))
}

pub(crate) fn timestamp_to_date(micros: i64) -> i32 {
    match micros {
        TS_NEG_INFINITY => DATE_NEG_INFINITY,
        TS_POS_INFINITY => DATE_POS_INFINITY,
        // The timestamp range is far inside the i32 day range, so this cannot truncate.
        m => m.div_euclid(MICROS_PER_DAY) as i32,
    }
}

fn write_ymd(out: &mut String, days: i64) -> bool {
    let (year, month, day) = civil_from_days(days + UNIX_TO_PG_EPOCH_DAYS);
    let bc = year <= 0;
    let shown = if bc { 1 - year } else { year };
    let _ = write!(out, "{shown:04}-{month:02}-{day:02}");
    bc
}

/// Output form of a `date`.
pub(crate) fn format_date(days: i32) -> String {
    match days {
        DATE_NEG_INFINITY => "-infinity".to_string(),
        DATE_POS_INFINITY => "infinity".to_string(),
        d => {
            let mut out = String::with_capacity(16);
            if write_ymd(&mut out, i64::from(d)) {
                out.push_str(" BC");
            }
            out
        }
    }
}

/// Output form of a `timestamp` or (`with_zone`) a `timestamptz` in UTC.
pub(crate) fn format_timestamp(micros: i64, with_zone: bool) -> String {
    match micros {
        TS_NEG_INFINITY => return "-infinity".to_string(),
        TS_POS_INFINITY => return "infinity".to_string(),
        _ => {}
    }
    let days = micros.div_euclid(MICROS_PER_DAY);
    let in_day = micros.rem_euclid(MICROS_PER_DAY);
    let mut out = String::with_capacity(32);
    let bc = write_ymd(&mut out, days);
    let seconds = in_day / 1_000_000;
    let fraction = in_day % 1_000_000;
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    let _ = write!(out, " {h:02}:{m:02}:{s:02}");
    if fraction != 0 {
        let digits = format!("{fraction:06}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
    if with_zone {
        out.push_str("+00");
    }
    if bc {
        out.push_str(" BC");
    }
    out
}
