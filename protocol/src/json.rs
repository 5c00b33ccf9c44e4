//! JSON string escaping for the hot encoding path (row values, keys, column names).
//!
//! Only what RFC 8259 requires is escaped: `"`, `\` and control characters below 0x20
//! (`\b \f \n \r \t` in short form, others as `\u00xx` with lowercase hex, as Postgres's
//! `to_json` writes them). Everything else, including non-ASCII UTF-8, is copied verbatim.

/// For each byte: 0 = copy as is, `b'u'` = `\u00xx`, anything else = `\` followed by that byte.
static ESCAPES: [u8; 256] = build_escape_table();

const fn build_escape_table() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = b'u';
        byte += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Appends `text` as a quoted JSON string. Bytes that are not valid UTF-8 are replaced by
/// U+FFFD so the output is always valid JSON (Postgres text in a UTF-8 database never has any).
pub fn push_json_string(out: &mut Vec<u8>, text: &[u8]) {
    out.reserve(text.len() + 2);
    out.push(b'"');
    push_json_string_body::<false>(out, text);
    out.push(b'"');
}

/// [`push_json_string`] without the quotes. With `DOUBLE_SLASHES` every `/` is written twice
/// (a row key value, §5.3, escaped for JSON in the same pass).
///
/// The common case, ASCII with nothing to escape, is one word-at-a-time scan and one copy;
/// UTF-8 is validated only from the first non-ASCII byte on.
pub fn push_json_string_body<const DOUBLE_SLASHES: bool>(out: &mut Vec<u8>, text: &[u8]) {
    let first = next_special::<true, DOUBLE_SLASHES>(text, 0);
    if first == text.len() {
        out.extend_from_slice(text);
        return;
    }
    let rest = &text[first..];
    if !rest.is_ascii() {
        // The bytes before `first` are ASCII, so the whole text is valid iff the rest is.
        if std::str::from_utf8(rest).is_err() {
            let lossy = String::from_utf8_lossy(text);
            escape_valid::<DOUBLE_SLASHES>(out, lossy.as_bytes(), 0);
            return;
        }
    }
    escape_valid::<DOUBLE_SLASHES>(out, text, first);
}

/// Appends `text` as a quoted JSON string.
pub fn push_json_str(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    escape_valid::<false>(out, bytes, 0);
    out.push(b'"');
}

/// Appends `text` (valid UTF-8) escaped; nothing before `from` needs escaping.
fn escape_valid<const DOUBLE_SLASHES: bool>(out: &mut Vec<u8>, text: &[u8], from: usize) {
    let mut run_start = 0;
    let mut i = from;
    loop {
        i = next_special::<false, DOUBLE_SLASHES>(text, i);
        out.extend_from_slice(&text[run_start..i]);
        let Some(&byte) = text.get(i) else {
            return;
        };
        i += 1;
        run_start = i;
        match ESCAPES[usize::from(byte)] {
            // Only `/`, in a key value: doubled.
            0 => out.extend_from_slice(b"//"),
            b'u' => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX_DIGITS[usize::from(byte >> 4)]);
                out.push(HEX_DIGITS[usize::from(byte & 0x0f)]);
            }
            escape => {
                out.push(b'\\');
                out.push(escape);
            }
        }
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const LOW_BITS: u64 = 0x7f * ONES;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `word` equal to `byte`, exactly (no carry crosses a byte, so
/// every flag is right, not only the lowest).
#[inline(always)]
fn bytes_equal(word: u64, byte: u8) -> u64 {
    let x = word ^ (u64::from(byte) * ONES);
    !(((x & LOW_BITS) + LOW_BITS) | x) & HIGH_BITS
}

/// The high bit of each byte of `word` below `limit` (at most 0x80), exactly.
#[inline(always)]
fn bytes_below(word: u64, limit: u8) -> u64 {
    !(((word & LOW_BITS) + u64::from(0x80 - limit) * ONES) | word) & HIGH_BITS
}

/// The high bit of each byte that must be escaped (`"`, `\\`, below 0x20), that is not ASCII
/// (`NON_ASCII`) or that is `/` (`SLASH`).
#[inline(always)]
fn special_bytes<const NON_ASCII: bool, const SLASH: bool>(word: u64) -> u64 {
    let mut mask = bytes_below(word, 0x20) | bytes_equal(word, b'"') | bytes_equal(word, b'\\');
    if SLASH {
        mask |= bytes_equal(word, b'/');
    }
    if NON_ASCII {
        mask |= word & HIGH_BITS;
    }
    mask
}

/// Index of the first byte at or after `from` that [`special_bytes`] flags, or `text.len()`.
#[inline]
fn next_special<const NON_ASCII: bool, const SLASH: bool>(text: &[u8], from: usize) -> usize {
    let len = text.len();
    let mut i = from;
    while let Some(chunk) = text.get(i..i + 8) {
        let mask = special_bytes::<NON_ASCII, SLASH>(word_at(chunk));
        if mask != 0 {
            return i + (mask.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    if i >= len {
        return len;
    }
    if len >= 8 {
        // The last word overlaps bytes already looked at (some may be specials this call's
        // caller has escaped): leave them out of the mask.
        let checked = 8 - (len - i);
        let mask = special_bytes::<NON_ASCII, SLASH>(word_at(&text[len - 8..]))
            & (u64::MAX << (8 * checked));
        return if mask != 0 {
            len - 8 + (mask.trailing_zeros() / 8) as usize
        } else {
            len
        };
    }
    text[i..]
        .iter()
        .position(|&b| {
            b < 0x20 || b == b'"' || b == b'\\' || (NON_ASCII && b >= 0x80) || (SLASH && b == b'/')
        })
        .map_or(len, |n| i + n)
}

/// The 8 bytes at the start of `bytes` as a little-endian word.
#[inline(always)]
fn word_at(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"))
}

/// Convenience wrapper returning a `String`.
pub fn json_string(text: &str) -> String {
    let mut out = Vec::with_capacity(text.len() + 2);
    push_json_str(&mut out, text);
    // Only ASCII escapes were added to valid UTF-8 input.
    String::from_utf8(out).expect("escaped JSON of a str is UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn escape(text: &str) -> String {
        json_string(text)
    }

    #[test]
    fn escapes_specials() {
        assert_eq!(escape(""), r#""""#);
        assert_eq!(escape("plain"), r#""plain""#);
        assert_eq!(escape(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(escape("\n\r\t\u{8}\u{c}"), r#""\n\r\t\b\f""#);
        assert_eq!(escape("\u{0}\u{1f}\u{7f}"), "\"\\u0000\\u001f\u{7f}\"");
        assert_eq!(escape("日本/é"), "\"日本/é\"");
        assert_eq!(escape(r#"{"foo":"bar"}"#), r#""{\"foo\":\"bar\"}""#);
        assert_eq!(escape(r"\x0001fffe"), r#""\\x0001fffe""#);
    }

    #[test]
    fn replaces_invalid_utf8() {
        let mut out = Vec::new();
        push_json_string(&mut out, b"a\xffb");
        assert_eq!(out, "\"a\u{fffd}b\"".as_bytes());
    }

    /// The byte-at-a-time escaper this module had before the word-at-a-time scan: the
    /// reference the fast paths must agree with.
    fn reference(text: &[u8], double_slashes: bool) -> Vec<u8> {
        let lossy = String::from_utf8_lossy(text);
        let mut out = vec![b'"'];
        for &byte in lossy.as_bytes() {
            match ESCAPES[usize::from(byte)] {
                0 if double_slashes && byte == b'/' => out.extend_from_slice(b"//"),
                0 => out.push(byte),
                b'u' => out.extend_from_slice(format!("\\u{:04x}", byte).as_bytes()),
                escape => out.extend_from_slice(&[b'\\', escape]),
            }
        }
        out.push(b'"');
        out
    }

    fn fast(text: &[u8], double_slashes: bool) -> Vec<u8> {
        let mut out = vec![b'"'];
        if double_slashes {
            push_json_string_body::<true>(&mut out, text);
        } else {
            push_json_string_body::<false>(&mut out, text);
        }
        out.push(b'"');
        out
    }

    #[test]
    fn every_byte_at_every_position_of_a_word() {
        for byte in 0..=255u8 {
            for len in 1..20 {
                for at in 0..len {
                    let mut text = vec![b'a'; len];
                    text[at] = byte;
                    for double in [false, true] {
                        assert_eq!(
                            fast(&text, double),
                            reference(&text, double),
                            "byte {byte:#x} at {at} of {len}"
                        );
                    }
                }
            }
        }
    }

    /// Two interesting bytes anywhere: a special the escaper has just handled must not make
    /// its neighbour look special (the last word of a text overlaps bytes already handled).
    #[test]
    fn every_pair_of_interesting_bytes() {
        let interesting = [
            b'\\', b']', b'"', b'#', b'/', b'0', 0x01, 0x1f, 0x20, 0x7f, 0xc3,
        ];
        for len in 2..20 {
            for at in 0..len {
                for then in at + 1..len {
                    for &x in &interesting {
                        for &y in &interesting {
                            let mut text = vec![b'a'; len];
                            text[at] = x;
                            text[then] = y;
                            for double in [false, true] {
                                assert_eq!(
                                    fast(&text, double),
                                    reference(&text, double),
                                    "{x:#x} at {at}, {y:#x} at {then} of {len}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn slashes_doubled_in_key_values() {
        assert_eq!(fast(b"a/b//c", true), br#""a//b////c""#);
        assert_eq!(fast(b"a/b", false), br#""a/b""#);
        assert_eq!(fast("/é\"/".as_bytes(), true), "\"//é\\\"//\"".as_bytes());
    }

    proptest! {
        #[test]
        fn agrees_with_the_byte_at_a_time_escaper(
            bytes in proptest::collection::vec(
                prop_oneof![
                    4 => any::<u8>(),
                    4 => proptest::sample::select(b"\"\\/\n\t\x01\x1f\x7f a".to_vec()),
                ],
                0..80,
            ),
            double in any::<bool>(),
        ) {
            prop_assert_eq!(fast(&bytes, double), reference(&bytes, double));
            if let Ok(text) = std::str::from_utf8(&bytes) {
                let mut out = Vec::new();
                push_json_str(&mut out, text);
                prop_assert_eq!(out, reference(&bytes, false));
            }
        }

        #[test]
        fn agrees_on_utf8_text(text in any::<String>(), double in any::<bool>()) {
            prop_assert_eq!(fast(text.as_bytes(), double), reference(text.as_bytes(), double));
        }

        #[test]
        fn round_trips_through_serde_json(text in any::<String>()) {
            let mut out = Vec::new();
            push_json_string(&mut out, text.as_bytes());
            let back: String = serde_json::from_slice(&out).unwrap();
            prop_assert_eq!(back, text);
        }

        #[test]
        fn arbitrary_bytes_give_valid_json(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut out = Vec::new();
            push_json_string(&mut out, &bytes);
            let back: String = serde_json::from_slice(&out).unwrap();
            prop_assert_eq!(back, String::from_utf8_lossy(&bytes));
        }
    }
}
