//! An owned model of pgoutput messages with proptest strategies. `Message` borrows its data,
//! so the strategies generate this model, which is then viewed as a `Message` in an arena.

use bumpalo::Bump;
use pgwire::pgoutput::{
    Begin, Commit, Delete, Insert, LogicalMessage, Message, OldTuple, Origin, Relation,
    RelationColumn, StreamAbort, StreamCommit, StreamStart, Truncate, TupleData, TupleValue,
    TypeMessage, Update, MAX_COLUMNS,
};
use pgwire::types::{Lsn, Oid, TimestampTz, Xid};
use proptest::collection::vec;
use proptest::prelude::*;

#[derive(Clone, Debug)]
pub enum Value {
    Null,
    UnchangedToast,
    Text(Vec<u8>),
    Binary(Vec<u8>),
}

#[derive(Clone, Debug)]
pub enum Owned {
    Begin(Begin),
    Commit(Commit),
    Origin(u64, String),
    Relation {
        xid: Option<u32>,
        rel_id: u32,
        namespace: String,
        name: String,
        replica_identity: u8,
        columns: Vec<(u8, String, u32, i32)>,
    },
    Type(Option<u32>, u32, String, String),
    Insert(Option<u32>, u32, Vec<Value>),
    /// `old`: (true = key, false = full, values).
    Update(Option<u32>, u32, Option<(bool, Vec<Value>)>, Vec<Value>),
    Delete(Option<u32>, u32, bool, Vec<Value>),
    Truncate(Option<u32>, u8, Vec<u32>),
    Message(Option<u32>, bool, u64, String, Vec<u8>),
    StreamStart(StreamStart),
    StreamStop,
    StreamCommit(StreamCommit),
    StreamAbort(StreamAbort),
}

/// A generated case: the protocol version, the open stream block (if any) and a message that
/// is valid in that state.
#[derive(Clone, Debug)]
pub struct Case {
    pub proto_version: u8,
    pub stream_xid: Option<u32>,
    pub message: Owned,
}

fn name() -> impl Strategy<Value = String> {
    // Any UTF-8 without NUL, which pgoutput strings cannot carry.
    "[^\u{0}]{0,12}"
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        Just(Value::UnchangedToast),
        vec(any::<u8>(), 0..24).prop_map(Value::Text),
        vec(any::<u8>(), 0..24).prop_map(Value::Binary),
    ]
}

fn tuple() -> impl Strategy<Value = Vec<Value>> {
    // Mostly small rows, sometimes the maximum width to exercise the column limit.
    prop_oneof![
        9 => vec(value(), 0..12),
        1 => vec(value(), MAX_COLUMNS..=MAX_COLUMNS),
    ]
}

/// Messages that carry the stream-block xid when `xid` is set.
fn change(xid: Option<u32>) -> impl Strategy<Value = Owned> {
    let column = (any::<u8>(), name(), any::<u32>(), any::<i32>());
    prop_oneof![
        (any::<u32>(), name(), name(), any::<u8>(), vec(column, 0..8)).prop_map(
            move |(rel_id, namespace, name, replica_identity, columns)| Owned::Relation {
                xid,
                rel_id,
                namespace,
                name,
                replica_identity,
                columns,
            }
        ),
        (any::<u32>(), name(), name()).prop_map(move |(o, n, m)| Owned::Type(xid, o, n, m)),
        (any::<u32>(), tuple()).prop_map(move |(r, t)| Owned::Insert(xid, r, t)),
        (
            any::<u32>(),
            proptest::option::of((any::<bool>(), tuple())),
            tuple()
        )
            .prop_map(move |(r, old, new)| Owned::Update(xid, r, old, new)),
        (any::<u32>(), any::<bool>(), tuple())
            .prop_map(move |(r, key, old)| Owned::Delete(xid, r, key, old)),
        (any::<u8>(), vec(any::<u32>(), 0..6))
            .prop_map(move |(options, rels)| Owned::Truncate(xid, options, rels)),
        (any::<bool>(), any::<u64>(), name(), vec(any::<u8>(), 0..40))
            .prop_map(move |(t, lsn, p, c)| Owned::Message(xid, t, lsn, p, c)),
    ]
}

/// Messages that occur only between stream blocks.
fn control() -> impl Strategy<Value = Owned> {
    prop_oneof![
        (any::<u64>(), any::<i64>(), any::<u32>()).prop_map(|(l, t, x)| Owned::Begin(Begin {
            final_lsn: Lsn(l),
            commit_timestamp: TimestampTz(t),
            xid: Xid(x),
        })),
        (any::<u8>(), any::<u64>(), any::<u64>(), any::<i64>()).prop_map(|(f, c, e, t)| {
            Owned::Commit(Commit {
                flags: f,
                commit_lsn: Lsn(c),
                end_lsn: Lsn(e),
                commit_timestamp: TimestampTz(t),
            })
        }),
        (any::<u32>(), any::<bool>()).prop_map(|(x, first)| Owned::StreamStart(StreamStart {
            xid: Xid(x),
            first_segment: first,
        })),
        (
            any::<u32>(),
            any::<u8>(),
            any::<u64>(),
            any::<u64>(),
            any::<i64>()
        )
            .prop_map(|(x, f, c, e, t)| Owned::StreamCommit(StreamCommit {
                xid: Xid(x),
                flags: f,
                commit_lsn: Lsn(c),
                end_lsn: Lsn(e),
                commit_timestamp: TimestampTz(t),
            })),
        (any::<u32>(), any::<u32>()).prop_map(|(x, s)| Owned::StreamAbort(StreamAbort {
            xid: Xid(x),
            subxact_xid: Xid(s),
        })),
    ]
}

pub fn case() -> impl Strategy<Value = Case> {
    let outside = (1u8..=2, prop_oneof![change(None), control()]).prop_map(|(v, m)| Case {
        // Stream control messages need protocol 2.
        proto_version: if is_stream_control(&m) { 2 } else { v },
        stream_xid: None,
        message: m,
    });
    let origin = (1u8..=2, any::<u64>(), name()).prop_map(|(v, lsn, n)| Case {
        proto_version: v,
        stream_xid: None,
        message: Owned::Origin(lsn, n),
    });
    let inside = any::<u32>().prop_flat_map(|xid| {
        prop_oneof![9 => change(Some(xid)), 1 => Just(Owned::StreamStop)].prop_map(move |m| Case {
            proto_version: 2,
            stream_xid: Some(xid),
            message: m,
        })
    });
    prop_oneof![4 => outside, 1 => origin, 4 => inside]
}

fn is_stream_control(message: &Owned) -> bool {
    matches!(
        message,
        Owned::StreamStart(_) | Owned::StreamStop | Owned::StreamCommit(_) | Owned::StreamAbort(_)
    )
}

fn values<'a>(arena: &'a Bump, values: &'a [Value]) -> TupleData<'a> {
    let columns = arena.alloc_slice_fill_iter(values.iter().map(|v| match v {
        Value::Null => TupleValue::Null,
        Value::UnchangedToast => TupleValue::UnchangedToast,
        Value::Text(b) => TupleValue::Text(b),
        Value::Binary(b) => TupleValue::Binary(b),
    }));
    TupleData { columns }
}

fn old<'a>(arena: &'a Bump, key: bool, tuple: &'a [Value]) -> OldTuple<'a> {
    if key {
        OldTuple::Key(values(arena, tuple))
    } else {
        OldTuple::Full(values(arena, tuple))
    }
}

impl Owned {
    /// The borrowed view of this message.
    pub fn view<'a>(&'a self, arena: &'a Bump) -> Message<'a> {
        let x = |xid: &Option<u32>| xid.map(Xid);
        match self {
            Owned::Begin(m) => Message::Begin(*m),
            Owned::Commit(m) => Message::Commit(*m),
            Owned::Origin(lsn, name) => Message::Origin(Origin {
                commit_lsn: Lsn(*lsn),
                name,
            }),
            Owned::Relation {
                xid,
                rel_id,
                namespace,
                name,
                replica_identity,
                columns,
            } => Message::Relation(Relation {
                xid: x(xid),
                rel_id: Oid(*rel_id),
                namespace,
                name,
                replica_identity: *replica_identity,
                columns: arena.alloc_slice_fill_iter(columns.iter().map(|c| RelationColumn {
                    flags: c.0,
                    name: &c.1,
                    type_oid: Oid(c.2),
                    type_modifier: c.3,
                })),
            }),
            Owned::Type(xid, oid, namespace, name) => Message::Type(TypeMessage {
                xid: x(xid),
                type_oid: Oid(*oid),
                namespace,
                name,
            }),
            Owned::Insert(xid, rel, new) => Message::Insert(Insert {
                xid: x(xid),
                rel_id: Oid(*rel),
                new: values(arena, new),
            }),
            Owned::Update(xid, rel, old_tuple, new) => Message::Update(Update {
                xid: x(xid),
                rel_id: Oid(*rel),
                old: old_tuple.as_ref().map(|(key, t)| old(arena, *key, t)),
                new: values(arena, new),
            }),
            Owned::Delete(xid, rel, key, tuple) => Message::Delete(Delete {
                xid: x(xid),
                rel_id: Oid(*rel),
                old: old(arena, *key, tuple),
            }),
            Owned::Truncate(xid, options, rels) => Message::Truncate(Truncate {
                xid: x(xid),
                options: *options,
                rel_ids: arena.alloc_slice_fill_iter(rels.iter().map(|r| Oid(*r))),
            }),
            Owned::Message(xid, transactional, lsn, prefix, content) => {
                Message::Message(LogicalMessage {
                    xid: x(xid),
                    transactional: *transactional,
                    lsn: Lsn(*lsn),
                    prefix,
                    content,
                })
            }
            Owned::StreamStart(m) => Message::StreamStart(*m),
            Owned::StreamStop => Message::StreamStop,
            Owned::StreamCommit(m) => Message::StreamCommit(*m),
            Owned::StreamAbort(m) => Message::StreamAbort(*m),
        }
    }
}
