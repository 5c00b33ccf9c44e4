//! Splitting a JSON array body into the raw bytes of its items, so chunk sizes can be checked
//! against the server's own encoding (re-serializing with serde_json could differ in spacing).

/// The raw bytes of each top-level item of a JSON array. Panics on anything but an array.
pub fn raw_items(body: &[u8]) -> Vec<&[u8]> {
    let trimmed = body.trim_ascii();
    assert!(
        trimmed.first() == Some(&b'[') && trimmed.last() == Some(&b']'),
        "not a JSON array: {}",
        String::from_utf8_lossy(body)
    );
    let inner = &trimmed[1..trimmed.len() - 1];
    let mut items = Vec::new();
    let (mut depth, mut in_str, mut escaped, mut start) = (0usize, false, false, 0usize);
    for (i, &b) in inner.iter().enumerate() {
        if in_str {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth -= 1,
            b',' if depth == 0 => {
                items.push(inner[start..i].trim_ascii());
                start = i + 1;
            }
            _ => {}
        }
    }
    let last = inner[start..].trim_ascii();
    if !last.is_empty() {
        items.push(last);
    }
    items
}

#[test]
fn splits_nested_items_and_strings() {
    let items = raw_items(br#"[{"a":[1,2],"b":"x,]\"}"},{"c":{}}]"#);
    assert_eq!(items.len(), 2);
    assert_eq!(items[1], br#"{"c":{}}"#);
    assert!(raw_items(b"[]").is_empty());
}
