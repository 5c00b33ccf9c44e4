//! Integer parsing with the acceptance rules of Elixir's `Integer.parse/1` when the whole input
//! must be consumed (`{n, ""}`), which is how upstream validates offsets, `params` keys and the
//! `cursor` parameter. Elixir integers are unbounded; Rust ones are not, so overflow is reported
//! separately and each caller decides what an out-of-range (but well-formed) number means.

/// Outcome of parsing a decimal integer the way `Integer.parse/1` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ElixirInt {
    /// Well-formed and within `i128`.
    Value(i128),
    /// Well-formed (`[+-]?[0-9]+`) but too large for `i128`.
    Overflow { negative: bool },
    /// Not an integer literal (empty, stray characters, whitespace, underscores...).
    Invalid,
}

/// Parses `[+-]?[0-9]+` exactly, like `Integer.parse/1` followed by a check that nothing remains.
pub(crate) fn parse_elixir_int(text: &str) -> ElixirInt {
    let bytes = text.as_bytes();
    let (negative, digits) = match bytes.first() {
        Some(b'-') => (true, &bytes[1..]),
        Some(b'+') => (false, &bytes[1..]),
        _ => (false, bytes),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return ElixirInt::Invalid;
    }
    let mut value: i128 = 0;
    for &digit in digits {
        let next = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i128::from(digit - b'0')));
        match next {
            Some(v) => value = v,
            None => return ElixirInt::Overflow { negative },
        }
    }
    ElixirInt::Value(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_signs_and_leading_zeros() {
        assert_eq!(parse_elixir_int("0"), ElixirInt::Value(0));
        assert_eq!(parse_elixir_int("007"), ElixirInt::Value(7));
        assert_eq!(parse_elixir_int("+5"), ElixirInt::Value(5));
        assert_eq!(parse_elixir_int("-12"), ElixirInt::Value(-12));
        assert_eq!(parse_elixir_int("-0"), ElixirInt::Value(0));
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            "", "+", "-", " 1", "1 ", "1.0", "1_0", "0x1", "1e3", "--1", "٣",
        ] {
            assert_eq!(parse_elixir_int(bad), ElixirInt::Invalid, "{bad:?}");
        }
    }

    #[test]
    fn reports_overflow() {
        let huge = "9".repeat(60);
        assert_eq!(
            parse_elixir_int(&huge),
            ElixirInt::Overflow { negative: false }
        );
        assert_eq!(
            parse_elixir_int(&format!("-{huge}")),
            ElixirInt::Overflow { negative: true }
        );
        // Leading zeros do not count towards the magnitude.
        let padded = format!("{}1", "0".repeat(100));
        assert_eq!(parse_elixir_int(&padded), ElixirInt::Value(1));
    }
}
