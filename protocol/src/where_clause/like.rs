//! `LIKE` / `ILIKE` matching with Postgres's default escape character (backslash).
//!
//! Matching walks the text and the pattern directly (no compiled form, no allocation) with the
//! classic wildcard algorithm: `%` records a restart point, and a mismatch retries from there
//! with the text advanced by one character. `_` matches exactly one character, not one byte.

/// The pattern ends with a lone escape character, which Postgres rejects.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TrailingEscape;

pub(crate) const TRAILING_ESCAPE_MESSAGE: &str = "LIKE pattern must not end with escape character";

/// Validates a pattern without matching it (used for constant patterns at parse time).
pub(crate) fn check_pattern(pattern: &str) -> Result<(), TrailingEscape> {
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c == '\\' && chars.next().is_none() {
            return Err(TrailingEscape);
        }
    }
    Ok(())
}

/// Single-character lowercase mapping, like the C library's `towlower` that Postgres uses for
/// ILIKE; characters whose lowercase is several characters stay as they are.
fn fold(c: char) -> char {
    if c == '\u{130}' {
        // İ: Rust lowercases it to two characters, the C library (as Postgres) to `i`.
        return 'i';
    }
    let mut lower = c.to_lowercase();
    match (lower.next(), lower.next()) {
        (Some(l), None) => l,
        _ => c,
    }
}

fn char_at(s: &str, at: usize) -> Option<char> {
    s.get(at..).and_then(|rest| rest.chars().next())
}

pub(crate) fn matches(
    text: &str,
    pattern: &str,
    case_insensitive: bool,
) -> Result<bool, TrailingEscape> {
    check_pattern(pattern)?;
    let same = |a: char, b: char| a == b || (case_insensitive && fold(a) == fold(b));
    let (mut ti, mut pi) = (0usize, 0usize);
    // (pattern index after the last `%`, text index that `%` currently stops at)
    let mut restart: Option<(usize, usize)> = None;
    loop {
        if let Some(p) = char_at(pattern, pi) {
            match p {
                '%' => {
                    pi += 1;
                    restart = Some((pi, ti));
                    continue;
                }
                '_' => {
                    if let Some(t) = char_at(text, ti) {
                        ti += t.len_utf8();
                        pi += 1;
                        continue;
                    }
                }
                _ => {
                    let (literal, width) = if p == '\\' {
                        let escaped = char_at(pattern, pi + 1).ok_or(TrailingEscape)?;
                        (escaped, 1 + escaped.len_utf8())
                    } else {
                        (p, p.len_utf8())
                    };
                    if let Some(t) = char_at(text, ti).filter(|&t| same(t, literal)) {
                        ti += t.len_utf8();
                        pi += width;
                        continue;
                    }
                }
            }
        } else if ti == text.len() {
            return Ok(true);
        }
        // Mismatch: let the last `%` swallow one more character, if there is one.
        match restart {
            Some((after_percent, stop)) => match char_at(text, stop) {
                Some(t) => {
                    let next = stop + t.len_utf8();
                    restart = Some((after_percent, next));
                    pi = after_percent;
                    ti = next;
                }
                None => return Ok(false),
            },
            None => return Ok(false),
        }
    }
}
