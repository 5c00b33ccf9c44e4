use super::*;
use serde_json::{json, Value};

fn encode(change: &Change<'_>) -> Value {
    let mut out = Vec::new();
    encode_change(&mut out, change);
    serde_json::from_slice(&out).expect("valid JSON")
}

fn base<'a>(value: &'a [Column<'a>]) -> Change<'a> {
    Change {
        op: Operation::Insert,
        key: br#""public"."items"/"1""#,
        relation: ("public", "items"),
        value,
        old_value: None,
        lsn: None,
        op_position: None,
        txid: None,
        last: false,
        key_change_to: None,
        key_change_from: None,
    }
}

#[test]
fn snapshot_row_has_no_replication_headers() {
    let value = [("id", Some(&b"1"[..])), ("title", None)];
    let mut out = Vec::new();
    encode_change(&mut out, &base(&value));
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#"{"key":"\"public\".\"items\"/\"1\"","value":{"id":"1","title":null},"headers":{"operation":"insert","relation":["public","items"]}}"#
    );
}

#[test]
fn replicated_update_with_old_value() {
    let value = [
        ("id", Some(&b"1"[..])),
        ("value2", Some(&b"test value 2"[..])),
    ];
    let old = [("value2", Some(&b"x\"y"[..]))];
    let change = Change {
        op: Operation::Update,
        old_value: Some(&old),
        lsn: Some(24615304),
        op_position: Some(2),
        txid: Some(771),
        last: true,
        ..base(&value)
    };
    assert_eq!(
        encode(&change),
        json!({
            "key": "\"public\".\"items\"/\"1\"",
            "value": {"id": "1", "value2": "test value 2"},
            "old_value": {"value2": "x\"y"},
            "headers": {
                "operation": "update",
                "relation": ["public", "items"],
                "lsn": "24615304",
                "op_position": 2,
                "txids": [771],
                "last": true
            }
        })
    );
}

#[test]
fn key_change_pair() {
    let value = [("id", Some(&b"1"[..]))];
    let delete = Change {
        op: Operation::Delete,
        lsn: Some(10),
        op_position: Some(0),
        txid: None,
        key_change_to: Some(br#""public"."items"/"2""#),
        ..base(&value)
    };
    let encoded = encode(&delete);
    assert_eq!(
        encoded["headers"]["key_change_to"],
        "\"public\".\"items\"/\"2\""
    );
    assert_eq!(encoded["headers"]["txids"], json!([]));
    assert!(encoded["headers"].get("last").is_none());
    let insert = Change {
        key_change_from: Some(br#""public"."items"/"1""#),
        lsn: Some(10),
        op_position: Some(1),
        ..base(&value)
    };
    assert_eq!(
        encode(&insert)["headers"]["key_change_from"],
        "\"public\".\"items\"/\"1\""
    );
}

#[test]
fn control_messages() {
    assert_eq!(
        String::from_utf8(up_to_date(26800584)).unwrap(),
        r#"{"headers":{"control":"up-to-date","global_last_seen_lsn":"26800584"}}"#
    );
    assert_eq!(
        String::from_utf8(up_to_date(0)).unwrap(),
        r#"{"headers":{"control":"up-to-date","global_last_seen_lsn":"0"}}"#
    );
    assert_eq!(
        String::from_utf8(snapshot_end(741, 745, &[742, 744])).unwrap(),
        r#"{"headers":{"control":"snapshot-end","xmin":"741","xmax":"745","xip_list":["742","744"]}}"#
    );
    assert_eq!(
        String::from_utf8(snapshot_end(u64::MAX, 1, &[])).unwrap(),
        r#"{"headers":{"control":"snapshot-end","xmin":"18446744073709551615","xmax":"1","xip_list":[]}}"#
    );
    let parsed: Value = serde_json::from_str(MUST_REFETCH_BODY).unwrap();
    assert_eq!(parsed, json!([{"headers": {"control": "must-refetch"}}]));
    assert_eq!(MUST_REFETCH_BODY, format!("[{MUST_REFETCH_MESSAGE}]"));
}
