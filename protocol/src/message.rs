//! Encoders for shape log entries (§5.2, §5.6). Each appends one complete JSON object.
//!
//! Key order inside objects carries no meaning for clients; these encoders use the order of
//! upstream's snapshot SQL (`key`, `value`, `headers`), and put `old_value` after `value`.

use crate::json::{push_json_str, push_json_string};

/// `[{"headers":{"control":"must-refetch"}}]`: the body of every 409.
pub const MUST_REFETCH_BODY: &str = r#"[{"headers":{"control":"must-refetch"}}]"#;

/// The must-refetch control message on its own (e.g. for SSE framing).
pub const MUST_REFETCH_MESSAGE: &str = r#"{"headers":{"control":"must-refetch"}}"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Insert,
    Update,
    Delete,
}

impl Operation {
    pub const fn as_str(self) -> &'static str {
        match self {
            Operation::Insert => "insert",
            Operation::Update => "update",
            Operation::Delete => "delete",
        }
    }
}

/// Column name and Postgres text value (`None` = SQL NULL), in the order to emit.
pub type Column<'a> = (&'a str, Option<&'a [u8]>);

/// One change message. Snapshot rows leave `lsn`, `op_position` and `txid` as `None`;
/// replicated changes set `lsn` (and normally `op_position` and `txid`).
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    pub op: Operation,
    /// Raw key text from [`crate::key::push_row_key`]; JSON-escaped here.
    pub key: &'a [u8],
    /// `(schema, table)`.
    pub relation: (&'a str, &'a str),
    pub value: &'a [Column<'a>],
    /// Only for `replica=full` updates: previous values of the changed columns.
    pub old_value: Option<&'a [Column<'a>]>,
    /// Commit LSN of the transaction (the offset's `tx`), emitted as a decimal string.
    pub lsn: Option<u64>,
    /// The offset's `op`, emitted as an integer (only together with `lsn`).
    pub op_position: Option<u64>,
    /// The transaction id, emitted as `[xid]`; upstream writes `[]` when it is unknown.
    pub txid: Option<u32>,
    /// Last change of this shape in the transaction.
    pub last: bool,
    /// On the delete half of a PK-changing update: the new raw key.
    pub key_change_to: Option<&'a [u8]>,
    /// On the insert half of a PK-changing update: the old raw key.
    pub key_change_from: Option<&'a [u8]>,
}

/// Appends the JSON object for `change`.
pub fn encode_change(out: &mut Vec<u8>, change: &Change<'_>) {
    out.extend_from_slice(b"{\"key\":");
    push_json_string(out, change.key);
    out.extend_from_slice(b",\"value\":");
    push_columns(out, change.value);
    if let Some(old_value) = change.old_value {
        out.extend_from_slice(b",\"old_value\":");
        push_columns(out, old_value);
    }
    out.extend_from_slice(b",\"headers\":{\"operation\":\"");
    out.extend_from_slice(change.op.as_str().as_bytes());
    out.extend_from_slice(b"\",\"relation\":[");
    push_json_str(out, change.relation.0);
    out.push(b',');
    push_json_str(out, change.relation.1);
    out.push(b']');
    if let Some(lsn) = change.lsn {
        out.extend_from_slice(b",\"lsn\":\"");
        push_decimal(out, lsn);
        out.push(b'"');
        if let Some(op_position) = change.op_position {
            out.extend_from_slice(b",\"op_position\":");
            push_decimal(out, op_position);
        }
        out.extend_from_slice(b",\"txids\":[");
        if let Some(txid) = change.txid {
            push_decimal(out, u64::from(txid));
        }
        out.push(b']');
    }
    if change.last {
        out.extend_from_slice(b",\"last\":true");
    }
    if let Some(key) = change.key_change_to {
        out.extend_from_slice(b",\"key_change_to\":");
        push_json_string(out, key);
    }
    if let Some(key) = change.key_change_from {
        out.extend_from_slice(b",\"key_change_from\":");
        push_json_string(out, key);
    }
    out.extend_from_slice(b"}}");
}

fn push_columns(out: &mut Vec<u8>, columns: &[Column<'_>]) {
    out.push(b'{');
    for (index, (name, value)) in columns.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        push_json_str(out, name);
        out.push(b':');
        match value {
            Some(text) => push_json_string(out, text),
            None => out.extend_from_slice(b"null"),
        }
    }
    out.push(b'}');
}

fn push_decimal(out: &mut Vec<u8>, value: u64) {
    // Small stack buffer instead of `format!` to keep the hot path allocation-free.
    let mut digits = [0u8; 20];
    let mut position = digits.len();
    let mut rest = value;
    loop {
        position -= 1;
        digits[position] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[position..]);
}

/// `{"headers":{"control":"up-to-date","global_last_seen_lsn":"<lsn>"}}`.
pub fn up_to_date(global_last_seen_lsn: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(80);
    out.extend_from_slice(br#"{"headers":{"control":"up-to-date","global_last_seen_lsn":""#);
    push_decimal(&mut out, global_last_seen_lsn);
    out.extend_from_slice(b"\"}}");
    out
}

/// `{"headers":{"control":"snapshot-end","xmin":"…","xmax":"…","xip_list":["…",…]}}`; the
/// numbers are strings so JavaScript clients keep full precision.
pub fn snapshot_end(xmin: u64, xmax: u64, xip: &[u64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(96 + xip.len() * 12);
    out.extend_from_slice(br#"{"headers":{"control":"snapshot-end","xmin":""#);
    push_decimal(&mut out, xmin);
    out.extend_from_slice(br#"","xmax":""#);
    push_decimal(&mut out, xmax);
    out.extend_from_slice(br#"","xip_list":["#);
    for (index, xid) in xip.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        out.push(b'"');
        push_decimal(&mut out, *xid);
        out.push(b'"');
    }
    out.extend_from_slice(b"]}}");
    out
}

/// Adds the subquery headers (`tags`, `removed_tags`, `active_conditions`, `is_move_in`) to a
/// change message `msg` as [`encode_change`] wrote it (they go last in its headers).
pub fn push_subquery_headers(
    msg: &mut Vec<u8>,
    tags: &[String],
    removed_tags: Option<&[String]>,
    active_conditions: &[bool],
    is_move_in: bool,
) {
    debug_assert!(msg.ends_with(b"}}"), "a change message");
    msg.truncate(msg.len() - 2);
    let strings = |out: &mut Vec<u8>, items: &[String]| {
        out.push(b'[');
        for (i, s) in items.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            push_json_str(out, s);
        }
        out.push(b']');
    };
    msg.extend_from_slice(b",\"tags\":");
    strings(msg, tags);
    if let Some(removed) = removed_tags {
        msg.extend_from_slice(b",\"removed_tags\":");
        strings(msg, removed);
    }
    msg.extend_from_slice(b",\"active_conditions\":[");
    for (i, a) in active_conditions.iter().enumerate() {
        if i > 0 {
            msg.push(b',');
        }
        msg.extend_from_slice(if *a { b"true" } else { b"false" });
    }
    msg.push(b']');
    if is_move_in {
        msg.extend_from_slice(b",\"is_move_in\":true");
    }
    msg.extend_from_slice(b"}}");
}

/// `{"headers":{"event":"move-in"|"move-out","patterns":[{"pos":p,"value":"<hash>"},…],
/// "txids":[…]}}`.
pub fn move_event(move_in: bool, patterns: &[(usize, String)], txids: &[u32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + patterns.len() * 48);
    out.extend_from_slice(br#"{"headers":{"event":""#);
    out.extend_from_slice(if move_in { b"move-in" } else { b"move-out" });
    out.extend_from_slice(br#"","patterns":["#);
    for (i, (pos, value)) in patterns.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(br#"{"pos":"#);
        push_decimal(&mut out, *pos as u64);
        out.extend_from_slice(br#","value":"#);
        push_json_str(&mut out, value);
        out.push(b'}');
    }
    out.extend_from_slice(br#"],"txids":["#);
    for (i, xid) in txids.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_decimal(&mut out, u64::from(*xid));
    }
    out.extend_from_slice(b"]}}");
    out
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;
