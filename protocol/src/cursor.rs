//! The `electric-cursor` value for live responses (§4.4).
//!
//! The cursor is the end of the current long-poll window, in seconds since
//! 2024-10-09T00:00:00Z, rounded up to a multiple of the long-poll timeout. Clients echo it as
//! `cursor=`, so every live URL changes each window: a CDN may collapse identical concurrent
//! long-polls but never serves a previous window's response. If the client's cursor is already
//! at or past the current window (several long-polls in one window, clock skew, or a CDN
//! replaying a response), a jump of 1..=3600 s keeps the next URL new.
//!
//! Electric draws that jump at random. Ampere derives it from the request ([`cursor_jump`]):
//! the same handle, offset and cursor give the same next cursor, so clients that made the same
//! request make the same next request. With a random jump, any client whose request reached the
//! origin on its own (nginx lets one waiter in 1,024 past its cache lock, a CDN may do the same
//! at a node boundary) got a cursor nobody else had and stayed on a URL of its own for good,
//! costing one origin request per change from then on (`docs/benchmarks/cdn.md`). The cursor
//! still grows strictly from one response to the next, so a URL never repeats.

use crate::elixir_int::{parse_elixir_int, ElixirInt};

/// 2024-10-09T00:00:00Z as Unix seconds.
pub const CURSOR_EPOCH_UNIX_SECS: u64 = 1_728_432_000;

/// The jump (1..=3600 s) for a request whose cursor is already at or past the current window:
/// a fixed function (FNV-1a, the same on every instance and after restarts) of the request's
/// handle, offset and raw cursor, so identical requests get identical next cursors.
pub fn cursor_jump(handle: Option<&str>, offset: &str, prev: Option<&str>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        // A separator that cannot occur in the fields keeps ("ab", "c") apart from ("a", "bc").
        h = (h ^ 0x1ff).wrapping_mul(0x0000_0100_0000_01b3);
    };
    eat(handle.unwrap_or("").as_bytes());
    eat(offset.as_bytes());
    eat(prev.unwrap_or("").as_bytes());
    1 + h % 3600
}

/// Computes the next cursor. `jump_1_to_3600` is what a cursor already at or past the current
/// window advances by ([`cursor_jump`]). Negative intermediate values, possible only with a
/// clock before the epoch or a negative `cursor`, saturate to 0.
pub fn next_cursor(
    now_unix_secs: u64,
    long_poll_timeout_ms: u64,
    prev: Option<&str>,
    jump_1_to_3600: u64,
) -> u64 {
    assert!(
        (1..=3600).contains(&jump_1_to_3600),
        "the jump is within 1..=3600"
    );
    let timeout_secs = i128::from(long_poll_timeout_ms / 1000);
    if timeout_secs == 0 {
        return 0;
    }
    let since_epoch = i128::from(now_unix_secs) - i128::from(CURSOR_EPOCH_UNIX_SECS);
    // Ceiling division that is also correct for negative numerators.
    let windows = since_epoch.div_euclid(timeout_secs)
        + i128::from(since_epoch.rem_euclid(timeout_secs) != 0);
    let next = windows * timeout_secs;
    let previous = parse_previous(prev);
    let cursor = if next > previous {
        next
    } else {
        previous.saturating_add(i128::from(jump_1_to_3600))
    };
    u64::try_from(cursor.max(0)).unwrap_or(u64::MAX)
}

/// Upstream treats an absent or non-integer cursor as 0.
fn parse_previous(prev: Option<&str>) -> i128 {
    match prev.map(parse_elixir_int) {
        Some(ElixirInt::Value(value)) => value,
        Some(ElixirInt::Overflow { negative: false }) => i128::MAX,
        Some(ElixirInt::Overflow { negative: true }) => i128::MIN,
        Some(ElixirInt::Invalid) | None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 20_000;

    #[test]
    fn rounds_up_to_the_window_end() {
        let now = CURSOR_EPOCH_UNIX_SECS + 1_000_001;
        assert_eq!(next_cursor(now, T, None, 7), 1_000_020);
        // Exactly on a boundary stays there.
        assert_eq!(next_cursor(CURSOR_EPOCH_UNIX_SECS + 40, T, None, 7), 40);
        assert_eq!(
            next_cursor(CURSOR_EPOCH_UNIX_SECS + 41, T, Some("40"), 7),
            60
        );
    }

    #[test]
    fn jumps_when_client_is_ahead() {
        let now = CURSOR_EPOCH_UNIX_SECS + 41;
        assert_eq!(next_cursor(now, T, Some("60"), 7), 67);
        assert_eq!(next_cursor(now, T, Some("1000"), 3600), 4600);
        assert_eq!(next_cursor(now, T, Some("+1000"), 1), 1001);
    }

    #[test]
    fn the_jump_is_a_function_of_the_request() {
        let j = |h: Option<&str>, o: &str, c: Option<&str>| cursor_jump(h, o, c);
        assert_eq!(
            j(Some("h-1"), "0_0", Some("60")),
            j(Some("h-1"), "0_0", Some("60"))
        );
        let mut seen = std::collections::BTreeSet::new();
        for cursor in 0..2000u32 {
            let jump = j(Some("h-1"), "0_0", Some(&cursor.to_string()));
            assert!((1..=3600).contains(&jump));
            seen.insert(jump);
        }
        // Spread over the range (not a constant or a handful of values).
        assert!(seen.len() > 1000, "{} distinct jumps", seen.len());
        // Each field counts, and fields do not run into each other.
        let base = j(Some("ab"), "c", Some("1"));
        let others = [
            j(Some("a"), "bc", Some("1")),
            j(Some("ab"), "c", Some("2")),
            j(None, "c", Some("1")),
            j(Some("ab"), "d", Some("1")),
        ];
        assert!(others.iter().filter(|&&o| o == base).count() <= 1);
    }

    #[test]
    fn identical_requests_follow_one_another() {
        // Two clients that made the same request keep making the same requests; each next
        // cursor is larger than the one before, so no URL repeats.
        let now = CURSOR_EPOCH_UNIX_SECS + 41;
        let mut cursor = "60".to_string();
        for _ in 0..100 {
            let jump = cursor_jump(Some("h"), "5_0", Some(&cursor));
            let next = next_cursor(now, T, Some(&cursor), jump);
            assert!(next > cursor.parse::<u64>().unwrap());
            cursor = next.to_string();
        }
    }

    #[test]
    fn ignores_unparsable_cursors() {
        let now = CURSOR_EPOCH_UNIX_SECS + 41;
        for junk in ["", "abc", "60 ", "6.0", "0x10"] {
            assert_eq!(next_cursor(now, T, Some(junk), 7), 60, "{junk:?}");
        }
    }

    #[test]
    fn zero_timeout_gives_zero() {
        assert_eq!(
            next_cursor(CURSOR_EPOCH_UNIX_SECS + 41, 999, Some("5"), 7),
            0
        );
    }

    #[test]
    fn extreme_inputs_saturate() {
        // Before the epoch the window end is negative, so the previous cursor (0) is "ahead".
        assert_eq!(next_cursor(0, T, None, 7), 7);
        let huge = "9".repeat(50);
        assert_eq!(
            next_cursor(CURSOR_EPOCH_UNIX_SECS, T, Some(&huge), 7),
            u64::MAX
        );
        assert_eq!(
            next_cursor(u64::MAX, 1000, None, 7),
            u64::MAX - CURSOR_EPOCH_UNIX_SECS
        );
    }
}
