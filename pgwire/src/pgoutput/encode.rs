//! Writes [`Message`]s back to pgoutput bytes: the inverse of [`super::Decoder::decode`], used
//! by round-trip tests, fixtures and tools that synthesize streams.
//!
//! The encoder trusts its input, which comes from this process, not the wire: a message that
//! cannot be represented (a string containing NUL, more than [`MAX_COLUMNS`] columns, a value
//! longer than `i32::MAX`) is a programming error and panics.

use bytes::BufMut;

use super::message::{Message, Relation};
use super::tag;
use super::tuple::{OldTuple, TupleData, TupleValue};
use super::MAX_COLUMNS;
use crate::types::Xid;

/// Appends the encoding of `message` to `out`. An `xid: Some(..)` field is written as the
/// leading stream-block xid, so the result decodes only with a decoder in the matching state.
pub fn encode(message: &Message<'_>, out: &mut impl BufMut) {
    match message {
        Message::Begin(m) => {
            out.put_u8(tag::BEGIN);
            out.put_u64(m.final_lsn.0);
            out.put_i64(m.commit_timestamp.0);
            out.put_u32(m.xid.0);
        }
        Message::Commit(m) => {
            out.put_u8(tag::COMMIT);
            out.put_u8(m.flags);
            out.put_u64(m.commit_lsn.0);
            out.put_u64(m.end_lsn.0);
            out.put_i64(m.commit_timestamp.0);
        }
        Message::Origin(m) => {
            out.put_u8(tag::ORIGIN);
            out.put_u64(m.commit_lsn.0);
            put_cstr(out, m.name);
        }
        Message::Relation(m) => put_relation(out, m),
        Message::Type(m) => {
            put_head(out, tag::TYPE, m.xid);
            out.put_u32(m.type_oid.0);
            put_cstr(out, m.namespace);
            put_cstr(out, m.name);
        }
        Message::Insert(m) => {
            put_head(out, tag::INSERT, m.xid);
            out.put_u32(m.rel_id.0);
            out.put_u8(tag::TUPLE_NEW);
            put_tuple(out, &m.new);
        }
        Message::Update(m) => {
            put_head(out, tag::UPDATE, m.xid);
            out.put_u32(m.rel_id.0);
            if let Some(old) = &m.old {
                put_old(out, old);
            }
            out.put_u8(tag::TUPLE_NEW);
            put_tuple(out, &m.new);
        }
        Message::Delete(m) => {
            put_head(out, tag::DELETE, m.xid);
            out.put_u32(m.rel_id.0);
            put_old(out, &m.old);
        }
        Message::Truncate(m) => {
            put_head(out, tag::TRUNCATE, m.xid);
            out.put_i32(i32::try_from(m.rel_ids.len()).expect("truncate count fits Int32"));
            out.put_u8(m.options);
            for rel_id in m.rel_ids {
                out.put_u32(rel_id.0);
            }
        }
        Message::Message(m) => {
            put_head(out, tag::MESSAGE, m.xid);
            out.put_u8(u8::from(m.transactional));
            out.put_u64(m.lsn.0);
            put_cstr(out, m.prefix);
            put_bytes(out, m.content);
        }
        Message::StreamStart(m) => {
            out.put_u8(tag::STREAM_START);
            out.put_u32(m.xid.0);
            out.put_u8(u8::from(m.first_segment));
        }
        Message::StreamStop => out.put_u8(tag::STREAM_STOP),
        Message::StreamCommit(m) => {
            out.put_u8(tag::STREAM_COMMIT);
            out.put_u32(m.xid.0);
            out.put_u8(m.flags);
            out.put_u64(m.commit_lsn.0);
            out.put_u64(m.end_lsn.0);
            out.put_i64(m.commit_timestamp.0);
        }
        Message::StreamAbort(m) => {
            out.put_u8(tag::STREAM_ABORT);
            out.put_u32(m.xid.0);
            out.put_u32(m.subxact_xid.0);
        }
    }
}

/// [`encode`] into a fresh vector.
pub fn encode_to_vec(message: &Message<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    encode(message, &mut out);
    out
}

fn put_head(out: &mut impl BufMut, tag: u8, xid: Option<Xid>) {
    out.put_u8(tag);
    if let Some(xid) = xid {
        out.put_u32(xid.0);
    }
}

fn put_relation(out: &mut impl BufMut, m: &Relation<'_>) {
    put_head(out, tag::RELATION, m.xid);
    out.put_u32(m.rel_id.0);
    put_cstr(out, m.namespace);
    put_cstr(out, m.name);
    out.put_u8(m.replica_identity);
    out.put_i16(column_count(m.columns.len()));
    for column in m.columns {
        out.put_u8(column.flags);
        put_cstr(out, column.name);
        out.put_u32(column.type_oid.0);
        out.put_i32(column.type_modifier);
    }
}

fn put_old(out: &mut impl BufMut, old: &OldTuple<'_>) {
    match old {
        OldTuple::Key(t) => {
            out.put_u8(tag::TUPLE_KEY);
            put_tuple(out, t);
        }
        OldTuple::Full(t) => {
            out.put_u8(tag::TUPLE_OLD);
            put_tuple(out, t);
        }
    }
}

fn put_tuple(out: &mut impl BufMut, tuple: &TupleData<'_>) {
    out.put_i16(column_count(tuple.columns.len()));
    for value in tuple.columns {
        match value {
            TupleValue::Null => out.put_u8(tag::COLUMN_NULL),
            TupleValue::UnchangedToast => out.put_u8(tag::COLUMN_UNCHANGED_TOAST),
            TupleValue::Text(bytes) => {
                out.put_u8(tag::COLUMN_TEXT);
                put_bytes(out, bytes);
            }
            TupleValue::Binary(bytes) => {
                out.put_u8(tag::COLUMN_BINARY);
                put_bytes(out, bytes);
            }
        }
    }
}

fn column_count(len: usize) -> i16 {
    assert!(
        len <= MAX_COLUMNS,
        "{len} columns exceed MaxTupleAttributeNumber"
    );
    i16::try_from(len).expect("MAX_COLUMNS fits Int16")
}

fn put_bytes(out: &mut impl BufMut, bytes: &[u8]) {
    out.put_i32(i32::try_from(bytes.len()).expect("value length fits Int32"));
    out.put_slice(bytes);
}

fn put_cstr(out: &mut impl BufMut, text: &str) {
    assert!(!text.contains('\0'), "pgoutput strings cannot contain NUL");
    out.put_slice(text.as_bytes());
    out.put_u8(0);
}
