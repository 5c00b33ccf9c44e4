use super::*;
use proptest::prelude::*;

fn s(text: &str) -> Value<'_> {
    Value::String(Cow::Borrowed(text))
}

fn map<'a>(entries: &[(&'a str, Value<'a>)]) -> Value<'a> {
    Value::Map(
        entries
            .iter()
            .map(|(k, v)| (Cow::Borrowed(*k), v.clone()))
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

#[test]
fn unescaped_text_borrows_from_the_query() {
    let raw = "table=items&where=a+b&t%61ble2=x&p[1]=y";
    let params = parse_query_string(raw).unwrap();
    let borrowed = |text: &str| raw.as_bytes().as_ptr_range().contains(&text.as_ptr());
    assert!(borrowed(params.keys().find(|k| *k == "table").unwrap()));
    assert!(borrowed(params.get_str("table").unwrap()));
    // Escaped components are decoded copies.
    assert!(!borrowed(params.get_str("where").unwrap()));
    assert!(!borrowed(params.keys().find(|k| *k == "table2").unwrap()));
    let Some(Value::Map(nested)) = params.get("p") else {
        panic!("p is a map")
    };
    let (key, value) = nested.iter().next().unwrap();
    assert!(borrowed(key) && borrowed(value.as_str().unwrap()));
    assert!(borrowed(params.keys().find(|k| *k == "p").unwrap()));
}

#[test]
fn escaped_nested_keys_and_bracket_quirks_keep_their_text() {
    let params = parse_query_string("p%5B%31%5D=a&q%5D=b&r%5B%5D=c").unwrap();
    assert_eq!(params.get("p"), Some(&map(&[("1", s("a"))])));
    assert_eq!(params.get_str("q"), Some("b"));
    assert_eq!(params.get("r"), Some(&Value::List(vec![s("c")])));
}

#[test]
fn finds_keys_by_prefix() {
    let params = parse_query_string("table=t&subset__limit=1&subsetx=2").unwrap();
    assert!(params.has_key_starting_with("subset__"));
    assert!(params.has_key_starting_with("tab"));
    assert!(!params.has_key_starting_with("subset_x"));
    assert!(!params.has_key_starting_with("z"));
    assert!(!QueryParams::default().has_key_starting_with(""));
    assert!(params.has_key_starting_with(""));
}

#[test]
fn collected_pairs_are_sorted_and_the_later_wins() {
    let params: QueryParams<'_> = [("b", "1"), ("a", "2"), ("b", "3"), ("b", "4")]
        .into_iter()
        .map(|(k, v)| (Cow::Borrowed(k), s(v)))
        .collect();
    assert_eq!(params.keys().collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(params.get_str("b"), Some("4"));
}

/// The fold Plug does, pair by pair into a map, as a reference for the sort-and-merge decoder.
mod reference {
    use std::collections::BTreeMap;

    #[derive(Debug, PartialEq, Eq)]
    pub enum Ref {
        String(String),
        List(Vec<Ref>),
        Map(BTreeMap<String, Ref>),
    }

    pub fn decode(raw: &str) -> Option<BTreeMap<String, Ref>> {
        let mut params = BTreeMap::new();
        for pair in raw.split('&').filter(|pair| !pair.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = super::decode_component(key).ok()?;
            let value = super::decode_component(value).ok()?.into_owned();
            let path: Vec<&str> = match key.strip_suffix(']').map(|k| k.split_once('[')) {
                None => vec![&key],
                Some(None) => vec![&key[..key.len() - 1]],
                Some(Some((head, rest))) => std::iter::once(head).chain(rest.split("][")).collect(),
            };
            if path.len() > super::MAX_KEY_DEPTH + 1 {
                return None;
            }
            let slot = params
                .entry(path[0].to_owned())
                .or_insert(Ref::String(String::new()));
            assign(slot, &path[1..], value);
        }
        Some(params)
    }

    fn assign(slot: &mut Ref, path: &[&str], value: String) {
        let Some((segment, rest)) = path.split_first() else {
            *slot = Ref::String(value);
            return;
        };
        if segment.is_empty() {
            if !matches!(slot, Ref::List(_)) {
                *slot = Ref::List(Vec::new());
            }
            if let Ref::List(items) = slot {
                let mut element = Ref::String(String::new());
                assign(&mut element, rest, value);
                items.push(element);
            }
            return;
        }
        if !matches!(slot, Ref::Map(_)) {
            *slot = Ref::Map(BTreeMap::new());
        }
        if let Ref::Map(map) = slot {
            let child = map
                .entry((*segment).to_owned())
                .or_insert(Ref::String(String::new()));
            assign(child, rest, value);
        }
    }

    pub fn of(value: &super::Value<'_>) -> Ref {
        match value {
            super::Value::String(text) => Ref::String(text.to_string()),
            super::Value::List(items) => Ref::List(items.iter().map(of).collect()),
            super::Value::Map(map) => {
                Ref::Map(map.iter().map(|(k, v)| (k.to_string(), of(v))).collect())
            }
        }
    }
}

proptest! {
    /// Keys drawn from a few names with brackets, so pairs repeat, nest, and conflict.
    #[test]
    fn decodes_as_plugs_pair_by_pair_fold(
        pairs in prop::collection::vec(
            ("(a|b|%61|a%5B)(\\[(|x|y|%5D)\\]){0,3}\\]?", "(|v|w|%2|%41|\\+)"),
            0..12,
        )
    ) {
        let raw = pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let decoded = parse_query_string(&raw).ok().map(|params| {
            params
                .iter()
                .map(|(k, v)| (k.to_owned(), reference::of(v)))
                .collect()
        });
        prop_assert_eq!(decoded, reference::decode(&raw), "{}", raw);
    }
}
