//! Seeds of the `pgoutput_decode` and `backend_frame` targets: pgoutput messages written by
//! `pgwire`'s own encoder (every message kind, plain and streamed transactions), packed in
//! each target's input layout.

use std::path::Path;

use pgwire::pgoutput::encode::encode_to_vec;
use pgwire::pgoutput::{
    Begin, Commit, Delete, Insert, LogicalMessage, Message, OldTuple, Origin, Relation,
    RelationColumn, StreamAbort, StreamCommit, StreamStart, Truncate, TupleData, TupleValue,
    TypeMessage, Update, COLUMN_FLAG_KEY,
};
use pgwire::types::{Lsn, Oid, TimestampTz, Xid};

use super::write;

/// The xid the `pgoutput_decode` target opens its initial stream block with (mode bit 1).
const TARGET_STREAM_XID: Xid = Xid(42);

const COLUMNS: [RelationColumn<'static>; 3] = [
    RelationColumn {
        flags: COLUMN_FLAG_KEY,
        name: "id",
        type_oid: Oid(20),
        type_modifier: -1,
    },
    RelationColumn {
        flags: 0,
        name: "title",
        type_oid: Oid(25),
        type_modifier: -1,
    },
    RelationColumn {
        flags: 0,
        name: "mood",
        type_oid: Oid(16500),
        type_modifier: -1,
    },
];

const ROW: [TupleValue<'static>; 3] = [
    TupleValue::Text(b"1"),
    TupleValue::Text(b"hello"),
    TupleValue::Null,
];
const UPDATED: [TupleValue<'static>; 3] = [
    TupleValue::Text(b"1"),
    TupleValue::UnchangedToast,
    TupleValue::Binary(b"\x00\x01"),
];
const KEY: [TupleValue<'static>; 3] = [TupleValue::Text(b"1"), TupleValue::Null, TupleValue::Null];
const REL_IDS: [Oid; 2] = [Oid(16384), Oid(16390)];

/// The messages of one transaction's changes (every change kind), tagged with `xid` when
/// they belong to a stream block.
fn changes(xid: Option<Xid>) -> Vec<Message<'static>> {
    let rel_id = Oid(16384);
    vec![
        Message::Type(TypeMessage {
            xid,
            type_oid: Oid(16500),
            namespace: "public",
            name: "mood",
        }),
        Message::Relation(Relation {
            xid,
            rel_id,
            namespace: "public",
            name: "items",
            replica_identity: b'd',
            columns: &COLUMNS,
        }),
        Message::Insert(Insert {
            xid,
            rel_id,
            new: TupleData { columns: &ROW },
        }),
        Message::Update(Update {
            xid,
            rel_id,
            old: None,
            new: TupleData { columns: &UPDATED },
        }),
        Message::Update(Update {
            xid,
            rel_id,
            old: Some(OldTuple::Key(TupleData { columns: &KEY })),
            new: TupleData { columns: &ROW },
        }),
        Message::Delete(Delete {
            xid,
            rel_id,
            old: OldTuple::Full(TupleData { columns: &ROW }),
        }),
        Message::Truncate(Truncate {
            xid,
            options: 3,
            rel_ids: &REL_IDS,
        }),
        Message::Message(LogicalMessage {
            xid,
            transactional: true,
            lsn: Lsn(0x1_6000),
            prefix: "ampere",
            content: b"payload",
        }),
    ]
}

fn transaction() -> Vec<Message<'static>> {
    let mut messages = vec![
        Message::Begin(Begin {
            final_lsn: Lsn(0x1_6A00),
            commit_timestamp: TimestampTz(770_000_000_000_000),
            xid: Xid(740),
        }),
        Message::Origin(Origin {
            commit_lsn: Lsn(0x9_0000),
            name: "node-a",
        }),
    ];
    messages.extend(changes(None));
    messages.push(Message::Commit(Commit {
        flags: 0,
        commit_lsn: Lsn(0x1_6A00),
        end_lsn: Lsn(0x1_6A30),
        commit_timestamp: TimestampTz(770_000_000_000_000),
    }));
    messages
}

/// A streamed transaction: two blocks, a subtransaction abort, then its commit.
fn streamed(xid: Xid) -> Vec<Message<'static>> {
    let mut messages = vec![Message::StreamStart(StreamStart {
        xid,
        first_segment: true,
    })];
    messages.extend(changes(Some(xid)));
    messages.push(Message::StreamStop);
    messages.push(Message::StreamStart(StreamStart {
        xid,
        first_segment: false,
    }));
    messages.extend(changes(Some(xid)).into_iter().take(3));
    messages.push(Message::StreamStop);
    messages.push(Message::StreamAbort(StreamAbort {
        xid,
        subxact_xid: Xid(xid.0 + 1),
    }));
    messages.push(Message::StreamCommit(StreamCommit {
        xid,
        flags: 0,
        commit_lsn: Lsn(0x2_0000),
        end_lsn: Lsn(0x2_0040),
        commit_timestamp: TimestampTz(770_000_000_100_000),
    }));
    messages
}

/// `pgoutput_decode`: a mode byte, then each message as a 2-byte length and its bytes.
pub fn pgoutput_decode(corpus: &Path) {
    let dir = corpus.join("pgoutput_decode");
    std::fs::create_dir_all(&dir).expect("corpus directory");
    // The stream the target opens (mode bit 1) is continued, then closed and committed.
    let mut in_stream = changes(Some(TARGET_STREAM_XID));
    in_stream.push(Message::StreamStop);
    in_stream.push(Message::StreamCommit(StreamCommit {
        xid: TARGET_STREAM_XID,
        flags: 0,
        commit_lsn: Lsn(0x3_0000),
        end_lsn: Lsn(0x3_0040),
        commit_timestamp: TimestampTz(0),
    }));
    let seeds = [
        ("v1-transaction", 0u8, transaction()),
        ("v2-transaction", 1, transaction()),
        ("v2-streamed", 1, streamed(Xid(900))),
        ("v2-in-stream", 3, in_stream),
    ];
    for (name, mode, messages) in seeds {
        let mut input = vec![mode];
        for message in &messages {
            let bytes = encode_to_vec(message);
            let len = u16::try_from(bytes.len()).expect("seed messages are small");
            input.extend_from_slice(&len.to_be_bytes());
            input.extend_from_slice(&bytes);
        }
        write(&dir, name, &input);
    }
}

/// One backend message: tag, Int32 length (itself included), body.
fn frame(out: &mut Vec<u8>, tag: u8, body: &[u8]) {
    let len = u32::try_from(body.len() + 4).expect("seed frames are small");
    out.push(tag);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
}

/// A CopyData frame carrying XLogData around one pgoutput message.
fn xlog_data(out: &mut Vec<u8>, wal: u64, message: &Message<'_>) {
    let mut body = vec![b'w'];
    body.extend_from_slice(&wal.to_be_bytes());
    body.extend_from_slice(&(wal + 0x100).to_be_bytes());
    body.extend_from_slice(&770_000_000_000_000i64.to_be_bytes());
    body.extend_from_slice(&encode_to_vec(message));
    frame(out, b'd', &body);
}

fn keepalive(out: &mut Vec<u8>, wal: u64, reply: bool) {
    let mut body = vec![b'k'];
    body.extend_from_slice(&wal.to_be_bytes());
    body.extend_from_slice(&770_000_000_000_000i64.to_be_bytes());
    body.push(u8::from(reply));
    frame(out, b'd', &body);
}

/// `backend_frame`: the bytes of a replication connection after START_REPLICATION.
pub fn backend_frame(corpus: &Path) {
    let dir = corpus.join("backend_frame");
    std::fs::create_dir_all(&dir).expect("corpus directory");

    let mut plain = Vec::new();
    // CopyBothResponse (text format, no columns), as the server starts streaming.
    frame(&mut plain, b'W', &[0, 0, 0]);
    keepalive(&mut plain, 0x1_0000, false);
    for (i, message) in transaction().iter().enumerate() {
        xlog_data(&mut plain, 0x1_6000 + i as u64 * 0x40, message);
    }
    keepalive(&mut plain, 0x1_7000, true);
    write(&dir, "transaction", &plain);

    let mut stream = Vec::new();
    for (i, message) in streamed(Xid(900)).iter().enumerate() {
        xlog_data(&mut stream, 0x2_0000 + i as u64 * 0x40, message);
    }
    // CopyDone, then an ErrorResponse and ReadyForQuery as after a failed command.
    frame(&mut stream, b'c', &[]);
    frame(
        &mut stream,
        b'E',
        b"SERROR\0C55000\0Mreplication slot is active\0\0",
    );
    frame(&mut stream, b'Z', b"I");
    write(&dir, "streamed", &stream);
}
