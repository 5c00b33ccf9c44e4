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
    match std::str::from_utf8(text) {
        Ok(valid) => push_json_str(out, valid),
        Err(_) => push_json_str(out, &String::from_utf8_lossy(text)),
    }
}

/// Appends `text` as a quoted JSON string.
pub fn push_json_str(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut run_start = 0;
    for (i, &byte) in bytes.iter().enumerate() {
        let escape = ESCAPES[usize::from(byte)];
        if escape == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[run_start..i]);
        run_start = i + 1;
        if escape == b'u' {
            out.extend_from_slice(b"\\u00");
            out.push(HEX_DIGITS[usize::from(byte >> 4)]);
            out.push(HEX_DIGITS[usize::from(byte & 0x0f)]);
        } else {
            out.push(b'\\');
            out.push(escape);
        }
    }
    out.extend_from_slice(&bytes[run_start..]);
    out.push(b'"');
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

    proptest! {
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
