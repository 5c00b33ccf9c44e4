//! Hand-built messages for the decoder's error paths and stream-block state. Real Postgres
//! output is covered by the golden fixtures in `tests/pgoutput/`.

use bumpalo::Bump;

use super::encode::encode_to_vec;
use super::*;
use crate::types::{Lsn, Oid, TimestampTz, Xid};

fn decode_err(decoder: &mut Decoder, bytes: &[u8]) -> DecodeError {
    let arena = Bump::new();
    decoder
        .decode(bytes, &arena)
        .expect_err("message should be rejected")
}

fn insert_bytes(columns: &[u8]) -> Vec<u8> {
    let mut bytes = vec![b'I', 0, 0, 0x40, 0, b'N'];
    bytes.extend_from_slice(columns);
    bytes
}

#[test]
fn decodes_insert_with_every_column_kind() {
    // Goal: each tuple kind maps to its variant and values borrow the input.
    let bytes = insert_bytes(&[
        0, 4, b'n', b'u', b't', 0, 0, 0, 2, b'h', b'i', b'b', 0, 0, 0, 0,
    ]);
    let arena = Bump::new();
    let message = Decoder::new(1)
        .decode(&bytes, &arena)
        .expect("valid insert");
    let Message::Insert(insert) = message else {
        panic!("expected insert, got {message:?}");
    };
    assert_eq!(insert.rel_id, Oid(0x4000));
    assert_eq!(insert.xid, None);
    assert_eq!(
        insert.new.columns,
        &[
            TupleValue::Null,
            TupleValue::UnchangedToast,
            TupleValue::Text(b"hi"),
            TupleValue::Binary(b""),
        ]
    );
    let TupleValue::Text(text) = insert.new.columns[2] else {
        unreachable!()
    };
    assert_eq!(
        text.as_ptr(),
        bytes[15..].as_ptr(),
        "value borrows the message"
    );
}

#[test]
fn rejects_bad_counts_and_lengths_with_offsets() {
    let mut decoder = Decoder::new(1);
    let cases: &[(&[u8], DecodeErrorKind, usize)] = &[
        (&[], DecodeErrorKind::UnexpectedEof, 0),
        (b"Z", DecodeErrorKind::UnknownMessageType(b'Z'), 0),
        (&[0xFF, 0xFF], DecodeErrorKind::NegativeCount(-1), 6),
        (&[0, 3, b'n', b'n'], DecodeErrorKind::CountTooLarge(3), 6),
        (&[0x06, 0x81], DecodeErrorKind::CountTooLarge(1665), 6),
        (&[0, 1, b'x'], DecodeErrorKind::InvalidTupleKind(b'x'), 8),
        (
            &[0, 1, b't', 0xFF, 0xFF, 0xFF, 0xFE],
            DecodeErrorKind::NegativeLength(-2),
            9,
        ),
        (
            &[0, 1, b't', 0, 0, 0, 5, b'a'],
            DecodeErrorKind::LengthTooLarge(5),
            9,
        ),
        (&[0, 1, b't', 0, 0, 0], DecodeErrorKind::UnexpectedEof, 9),
        (&[0, 1, b'n', 7, 7], DecodeErrorKind::TrailingBytes(2), 9),
    ];
    for (columns, kind, offset) in cases {
        let bytes = if columns.is_empty() || columns == b"Z" {
            columns.to_vec()
        } else {
            insert_bytes(columns)
        };
        let err = decode_err(&mut decoder, &bytes);
        assert_eq!((err.kind, err.offset), (*kind, *offset), "input {bytes:?}");
    }
}

#[test]
fn rejects_bad_strings_and_markers() {
    let mut decoder = Decoder::new(1);
    let unterminated = [b'Y', 0, 0, 0, 1, b'p', b'u', b'b'];
    assert_eq!(
        decode_err(&mut decoder, &unterminated).kind,
        DecodeErrorKind::MissingNulTerminator
    );
    let bad_utf8 = [b'Y', 0, 0, 0, 1, 0xC3, 0, b'x', 0];
    assert_eq!(
        decode_err(&mut decoder, &bad_utf8).kind,
        DecodeErrorKind::InvalidUtf8
    );
    let delete_with_new = [b'D', 0, 0, 0, 1, b'N', 0, 0];
    let err = decode_err(&mut decoder, &delete_with_new);
    assert_eq!(
        (err.kind, err.offset),
        (DecodeErrorKind::InvalidTupleMarker(b'N'), 5)
    );
    let update_without_new = [b'U', 0, 0, 0, 1, b'K', 0, 0, b'K', 0, 0];
    let err = decode_err(&mut decoder, &update_without_new);
    assert_eq!(
        (err.kind, err.offset),
        (DecodeErrorKind::InvalidTupleMarker(b'K'), 8)
    );
    let message_bad_flag = [b'M', 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(
        decode_err(&mut decoder, &message_bad_flag).kind,
        DecodeErrorKind::InvalidFlag(2)
    );
}

#[test]
fn truncate_count_is_checked_before_allocating() {
    // Goal: a huge claimed relation count fails on the count, not on an allocation.
    let mut decoder = Decoder::new(1);
    let bytes = [b'T', 0x7F, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 1];
    let err = decode_err(&mut decoder, &bytes);
    assert_eq!(err.kind, DecodeErrorKind::CountTooLarge(i32::MAX as u32));
}

#[test]
fn stream_blocks_switch_the_xid_layout() {
    // Goal: inside Stream Start .. Stream Stop, changes carry a leading xid; outside they do
    // not; the state follows only successfully decoded messages.
    let arena = Bump::new();
    let mut decoder = Decoder::new(2);
    let start = Message::StreamStart(StreamStart {
        xid: Xid(7),
        first_segment: true,
    });
    let streamed = Message::Type(TypeMessage {
        xid: Some(Xid(7)),
        type_oid: Oid(9),
        namespace: "public",
        name: "mood",
    });
    let plain = Message::Type(TypeMessage {
        xid: None,
        ..type_of(&streamed)
    });

    assert_eq!(decoder.decode(&encode_to_vec(&start), &arena), Ok(start));
    assert_eq!(decoder.stream_xid(), Some(Xid(7)));
    let streamed_bytes = encode_to_vec(&streamed);
    assert_eq!(decoder.decode(&streamed_bytes, &arena), Ok(streamed));
    let err = decode_err(&mut decoder, &encode_to_vec(&start));
    assert_eq!(err.kind, DecodeErrorKind::UnexpectedInStream(b'S'));
    assert_eq!(
        decoder.stream_xid(),
        Some(Xid(7)),
        "failed decode keeps the state"
    );
    assert_eq!(decoder.decode(b"E", &arena), Ok(Message::StreamStop));
    assert_eq!(decoder.stream_xid(), None);
    assert_eq!(decoder.decode(&encode_to_vec(&plain), &arena), Ok(plain));
    assert_eq!(
        decode_err(&mut decoder, b"E").kind,
        DecodeErrorKind::NotInStream
    );
}

fn type_of(message: &Message<'static>) -> TypeMessage<'static> {
    match message {
        Message::Type(t) => *t,
        other => panic!("not a type message: {other:?}"),
    }
}

#[test]
fn version_one_rejects_stream_messages() {
    let mut decoder = Decoder::new(1);
    for tag in [b'S', b'E', b'c', b'A'] {
        assert_eq!(
            decode_err(&mut decoder, &[tag]).kind,
            DecodeErrorKind::StreamingNotNegotiated(tag)
        );
    }
}

#[test]
fn begin_and_commit_round_trip() {
    let arena = Bump::new();
    let mut decoder = Decoder::new(1);
    let begin = Message::Begin(Begin {
        final_lsn: Lsn(0x1_0000_0010),
        commit_timestamp: TimestampTz(-5),
        xid: Xid(u32::MAX),
    });
    let bytes = encode_to_vec(&begin);
    assert_eq!(bytes.len(), 21, "Begin is tag + 8 + 8 + 4 bytes");
    assert_eq!(decoder.decode(&bytes, &arena), Ok(begin));
    let err = decode_err(&mut decoder, &bytes[..20]);
    assert_eq!((err.kind, err.offset), (DecodeErrorKind::UnexpectedEof, 17));
}

#[test]
#[should_panic(expected = "not supported")]
fn unsupported_protocol_version_is_a_programming_error() {
    let _ = Decoder::new(3);
}
