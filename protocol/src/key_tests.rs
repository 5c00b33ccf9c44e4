use super::*;
use proptest::prelude::*;

fn key(schema: &str, table: &str, pk: &[Option<&str>]) -> String {
    let values: Vec<Option<&[u8]>> = pk.iter().map(|v| v.map(str::as_bytes)).collect();
    row_key(schema, table, &values)
}

#[test]
fn upstream_build_key_doctests() {
    assert_eq!(
        key("hello", "world", &[Some("b"), Some("d")]),
        r#""hello"."world"/"b"/"d""#
    );
    assert_eq!(
        key("hello", "world", &[Some("test/test"), Some("test")]),
        r#""hello"."world"/"test//test"/"test""#
    );
    assert_eq!(
        key("hello", "world", &[Some("test"), Some("test/test")]),
        r#""hello"."world"/"test"/"test//test""#
    );
    assert_eq!(
        key("hello", "world", &[Some("1"), None, Some("2")]),
        r#""hello"."world"/"1"/_/"2""#
    );
    assert_eq!(
        key("hello", "world", &[Some("1"), Some(""), Some("2")]),
        r#""hello"."world"/"1"/""/"2""#
    );
    assert_eq!(key(r#"a"."b"#, "c", &[Some("")]), r#""a".."b"."c"/"""#);
    assert_eq!(key("a", r#"b"."c"#, &[Some("")]), r#""a"."b".."c"/"""#);
    assert_eq!(key("a", "b", &[Some(""), Some("")]), r#""a"."b"/""/"""#);
    assert_eq!(key("a", r#"b"/""#, &[Some("")]), r#""a"."b"//""/"""#);
    assert_eq!(
        key("public", "serial_ids", &[Some("2")]),
        r#""public"."serial_ids"/"2""#
    );
}

#[test]
fn key_is_json_escaped_by_the_caller() {
    let mut json = Vec::new();
    crate::json::push_json_string(&mut json, key("public", "items", &[Some("1")]).as_bytes());
    assert_eq!(json, br#""\"public\".\"items\"/\"1\"""#);
}

/// Inverse of the key encoding, used to prove injectivity: if every key decodes back to its
/// input, no two inputs can share a key.
fn decode(key: &str) -> Option<(String, String, Vec<Option<String>>)> {
    let bytes = key.as_bytes();
    let mut i = 0;
    let schema = read_name(bytes, &mut i, b'.')?;
    if bytes.get(i) != Some(&b'.') {
        return None;
    }
    i += 1;
    let table = read_name(bytes, &mut i, b'/')?;
    let mut values = Vec::new();
    while i < bytes.len() {
        if bytes[i] != b'/' {
            return None;
        }
        i += 1;
        if bytes.get(i) == Some(&b'_') {
            values.push(None);
            i += 1;
            continue;
        }
        values.push(Some(read_quoted(bytes, &mut i, false)?));
    }
    Some((schema, table, values))
}

/// Reads `"…"` where the closing quote is followed by `next` (or the end) as a separator.
fn read_name(bytes: &[u8], i: &mut usize, _next: u8) -> Option<String> {
    read_quoted(bytes, i, true)
}

fn read_quoted(bytes: &[u8], i: &mut usize, dots_doubled: bool) -> Option<String> {
    if bytes.get(*i) != Some(&b'"') {
        return None;
    }
    *i += 1;
    let mut text = Vec::new();
    loop {
        let byte = *bytes.get(*i)?;
        let doubled = byte == b'/' || (dots_doubled && byte == b'.');
        if doubled {
            if bytes.get(*i + 1) != Some(&byte) {
                return None;
            }
            text.push(byte);
            *i += 2;
            continue;
        }
        // A quote ends the section if what follows is a separator or the end of the key.
        if byte == b'"' {
            let after = bytes.get(*i + 1).copied();
            let ends = match after {
                None => true,
                Some(b'/') => bytes.get(*i + 2) != Some(&b'/'),
                Some(b'.') if dots_doubled => bytes.get(*i + 2) != Some(&b'.'),
                _ => false,
            };
            if ends {
                *i += 1;
                return String::from_utf8(text).ok();
            }
        }
        text.push(byte);
        *i += 1;
    }
}

fn arbitrary_text() -> impl Strategy<Value = String> {
    // Bias towards the characters that matter for escaping.
    proptest::collection::vec(
        prop_oneof![
            Just('"'),
            Just('/'),
            Just('.'),
            Just('_'),
            Just('a'),
            any::<char>()
        ],
        0..8,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

proptest! {
    #[test]
    fn keys_decode_back_to_their_input(
        schema in arbitrary_text(),
        table in arbitrary_text(),
        values in proptest::collection::vec(proptest::option::of(arbitrary_text()), 0..4),
    ) {
        let refs: Vec<Option<&str>> = values.iter().map(|v| v.as_deref()).collect();
        let encoded = key(&schema, &table, &refs);
        prop_assert_eq!(decode(&encoded), Some((schema, table, values)));
    }
}
