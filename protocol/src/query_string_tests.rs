use super::*;

fn s(text: &str) -> Value {
    Value::String(text.to_owned())
}

fn map(entries: &[(&str, Value)]) -> Value {
    Value::Map(
        entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    )
}

#[test]
fn decodes_plain_pairs() {
    let params = parse_query_string("table=items&offset=-1&live&x=").unwrap();
    assert_eq!(params.get("table"), Some(&s("items")));
    assert_eq!(params.get_str("offset"), Some("-1"));
    assert_eq!(params.get("live"), Some(&s("")));
    assert_eq!(params.get("x"), Some(&s("")));
    assert!(!params.contains("y"));
}

#[test]
fn decodes_form_encoding() {
    let params = parse_query_string("where=a+%3D+%27x%27&t%61ble=%E6%97%A5&p=%2B").unwrap();
    assert_eq!(params.get_str("where"), Some("a = 'x'"));
    assert_eq!(params.get_str("table"), Some("日"));
    assert_eq!(params.get_str("p"), Some("+"));
}

#[test]
fn rejects_malformed_encoding() {
    for bad in ["a=%", "a=%4", "a=%zz", "%=1", "a=%G0"] {
        assert_eq!(
            parse_query_string(bad),
            Err(QueryStringError::InvalidPercentEncoding),
            "{bad}"
        );
    }
    assert_eq!(
        parse_query_string("a=%FF"),
        Err(QueryStringError::InvalidUtf8)
    );
}

#[test]
fn skips_empty_pairs_and_later_pairs_win() {
    let params = parse_query_string("&&a=1&&a=2&").unwrap();
    assert_eq!(params.get_str("a"), Some("2"));
    assert_eq!(params.keys().collect::<Vec<_>>(), ["a"]);
}

#[test]
fn decodes_nested_maps_and_lists() {
    let params =
        parse_query_string("params[1]=a&params[2]=b%26c&cols[]=x&cols[]=y&a[b][c]=d").unwrap();
    assert_eq!(
        params.get("params"),
        Some(&map(&[("1", s("a")), ("2", s("b&c"))]))
    );
    assert_eq!(params.get("cols"), Some(&Value::List(vec![s("x"), s("y")])));
    assert_eq!(params.get("a"), Some(&map(&[("b", map(&[("c", s("d"))]))])));
    // Percent-encoded brackets are brackets too (Plug decodes before splitting).
    let encoded = parse_query_string("params%5B1%5D=z").unwrap();
    assert_eq!(encoded.get("params"), Some(&map(&[("1", s("z"))])));
}

#[test]
fn key_shape_quirks_follow_plug() {
    let params = parse_query_string("a[b=1&c]=2").unwrap();
    assert_eq!(params.get_str("a[b"), Some("1"));
    assert_eq!(params.get_str("c"), Some("2"));
    // A later plain value replaces an earlier map and vice versa.
    let params = parse_query_string("p[1]=a&p=x").unwrap();
    assert_eq!(params.get_str("p"), Some("x"));
    let params = parse_query_string("p=x&p[1]=a").unwrap();
    assert_eq!(params.get("p"), Some(&map(&[("1", s("a"))])));
}

#[test]
fn bounds_nesting_depth() {
    let deep = format!("a{}=1", "[x]".repeat(MAX_KEY_DEPTH + 1));
    assert_eq!(parse_query_string(&deep), Err(QueryStringError::TooDeep));
    let ok = format!("a{}=1", "[x]".repeat(MAX_KEY_DEPTH));
    assert!(parse_query_string(&ok).is_ok());
}

#[test]
fn secret_prefers_secret_over_api_secret() {
    let params = parse_query_string("api_secret=old&secret=new").unwrap();
    assert_eq!(params.secret(), Some("new"));
    let params = parse_query_string("api_secret=old").unwrap();
    assert_eq!(params.secret(), Some("old"));
    let params = parse_query_string("secret[x]=1&api_secret=old").unwrap();
    assert_eq!(params.secret(), None);
}
