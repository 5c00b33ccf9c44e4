//! The `electric-cursor` value for live responses (§4.4).
//!
//! The cursor is the end of the current long-poll window, in seconds since
//! 2024-10-09T00:00:00Z, rounded up to a multiple of the long-poll timeout. Clients echo it as
//! `cursor=`, so every live URL changes each window: a CDN may collapse identical concurrent
//! long-polls but never serves a previous window's response. If the client's cursor is already
//! at or past the current window (clock skew, or a CDN replaying a response), a random jump of
//! 1..=3600 s keeps the next URL unique.

use crate::elixir_int::{parse_elixir_int, ElixirInt};

/// 2024-10-09T00:00:00Z as Unix seconds.
pub const CURSOR_EPOCH_UNIX_SECS: u64 = 1_728_432_000;

/// Computes the next cursor. `rand_1_to_3600` must be drawn uniformly from `1..=3600` by the
/// caller (this crate does no I/O and owns no RNG). Negative intermediate values, possible only
/// with a clock before the epoch or a negative `cursor`, saturate to 0.
pub fn next_cursor(
    now_unix_secs: u64,
    long_poll_timeout_ms: u64,
    prev: Option<&str>,
    rand_1_to_3600: u64,
) -> u64 {
    assert!(
        (1..=3600).contains(&rand_1_to_3600),
        "caller draws from 1..=3600"
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
        previous.saturating_add(i128::from(rand_1_to_3600))
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
