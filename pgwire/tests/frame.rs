//! Framing and typed parsing of backend messages: incremental splitting, length bounds checked
//! before allocation, and decoding of each message kind the client relies on.

use bytes::{BufMut, Bytes, BytesMut};
use pgwire::frame::{
    split_frame, Authentication, BackendMessage, CommandTag, DataRow, Frame, FrameError,
    TransactionStatus, MAX_MESSAGE_LEN,
};
use proptest::prelude::*;

fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn parse(tag: u8, body: &[u8]) -> Result<BackendMessage, FrameError> {
    BackendMessage::parse(Frame {
        tag,
        body: Bytes::copy_from_slice(body),
    })
}

#[test]
fn splits_messages_fed_one_byte_at_a_time() {
    // Goal: framing is incremental and never yields a partial message.
    let mut wire = message(b'Z', b"I");
    wire.extend(message(b'C', b"SELECT 1\0"));
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for b in wire {
        buf.put_u8(b);
        while let Some(f) = split_frame(&mut buf, 1024).unwrap() {
            frames.push(f);
        }
    }
    assert!(buf.is_empty());
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[0].tag, b'Z');
    assert_eq!(&frames[0].body[..], b"I");
    assert_eq!(&frames[1].body[..], b"SELECT 1\0");
}

#[test]
fn rejects_lengths_below_four() {
    let mut buf = BytesMut::from(&[b'Z', 0, 0, 0, 3][..]);
    let err = split_frame(&mut buf, 1024).unwrap_err();
    assert_eq!(
        err,
        FrameError::LengthTooSmall {
            tag: 'Z',
            declared: 3
        }
    );
}

#[test]
fn rejects_oversized_length_before_reserving() {
    // Goal: a 4 GiB declaration fails at once and reserves nothing.
    let mut buf = BytesMut::with_capacity(8);
    buf.extend_from_slice(&[b'D', 0xFF, 0xFF, 0xFF, 0xFF]);
    let cap = buf.capacity();
    let err = split_frame(&mut buf, MAX_MESSAGE_LEN).unwrap_err();
    assert!(matches!(
        err,
        FrameError::LengthTooLarge {
            declared: u32::MAX,
            ..
        }
    ));
    assert_eq!(buf.capacity(), cap);
    let mut buf = BytesMut::from(&message(b'd', &[0; 100])[..]);
    assert!(split_frame(&mut buf, 103).is_err());
    assert!(split_frame(&mut buf, 104).unwrap().is_some());
}

#[test]
fn reserves_room_for_an_accepted_partial_message() {
    let mut buf = BytesMut::from(&message(b'd', &[7; 5000])[..10]);
    assert!(split_frame(&mut buf, MAX_MESSAGE_LEN).unwrap().is_none());
    assert!(buf.capacity() >= 5005);
}

#[test]
fn parses_error_response_fields() {
    let body = b"SERROR\0VERROR\0C42P01\0Mrelation \"nope\" does not exist\0P15\0\
Hcheck it\0Ddetails\0Fparse_relation.c\0L1392\0RparserOpenTable\0Zfuture\0\0";
    let BackendMessage::ErrorResponse(f) = parse(b'E', body).unwrap() else {
        panic!("not an error")
    };
    assert_eq!(f.code, "42P01");
    assert_eq!(f.severity, "ERROR");
    assert_eq!(f.severity_nonlocalized.as_deref(), Some("ERROR"));
    assert_eq!(f.message, "relation \"nope\" does not exist");
    assert_eq!(f.position, Some(15));
    assert_eq!(f.hint.as_deref(), Some("check it"));
    assert_eq!(f.detail.as_deref(), Some("details"));
    assert_eq!(f.line, Some(1392));
    assert_eq!(f.routine.as_deref(), Some("parserOpenTable"));
    assert!(f.to_string().contains("SQLSTATE 42P01"));
}

#[test]
fn rejects_error_response_without_terminator_or_code() {
    assert!(matches!(
        parse(b'E', b"SERROR\0C42P01\0Mmsg"),
        Err(FrameError::Truncated { .. })
    ));
    assert!(matches!(
        parse(b'E', b"SERROR\0Mmsg\0\0"),
        Err(FrameError::Invalid { .. })
    ));
    assert!(matches!(
        parse(b'N', b"SNOTICE\0C00000\0Mhi\0P12x\0\0"),
        Err(FrameError::Invalid { at: 20, .. })
    ));
}

#[test]
fn parses_row_description_and_data_row() {
    let mut body = vec![0, 2];
    for (name, oid) in [("id", 23u32), ("title", 25)] {
        body.extend_from_slice(name.as_bytes());
        body.push(0);
        body.extend_from_slice(&16384u32.to_be_bytes());
        body.extend_from_slice(&1i16.to_be_bytes());
        body.extend_from_slice(&oid.to_be_bytes());
        body.extend_from_slice(&(-1i16).to_be_bytes());
        body.extend_from_slice(&(-1i32).to_be_bytes());
        body.extend_from_slice(&0i16.to_be_bytes());
    }
    let BackendMessage::RowDescription(rd) = parse(b'T', &body).unwrap() else {
        panic!()
    };
    assert_eq!(rd.fields.len(), 2);
    assert_eq!(rd.fields[1].name, "title");
    assert_eq!(rd.fields[1].type_oid.0, 25);

    let mut row = vec![0, 3];
    row.extend_from_slice(&2i32.to_be_bytes());
    row.extend_from_slice(b"42");
    row.extend_from_slice(&(-1i32).to_be_bytes());
    row.extend_from_slice(&0i32.to_be_bytes());
    let BackendMessage::DataRow(dr) = parse(b'D', &row).unwrap() else {
        panic!()
    };
    let cols: Vec<_> = dr.ranges().map(|r| r.map(|r| &dr.body()[r])).collect();
    assert_eq!(cols, vec![Some(&b"42"[..]), None, Some(&b""[..])]);
}

#[test]
fn rejects_inconsistent_counts() {
    // A field count of 1000 in a tiny body must fail before allocating 1000 fields.
    assert!(matches!(
        parse(b'T', &[0x03, 0xE8, b'a', 0]),
        Err(FrameError::Invalid { .. })
    ));
    assert!(parse(b'T', &[0xFF, 0xFF]).is_err());
    // Column length beyond the body, negative lengths other than -1, trailing bytes.
    let mut row = vec![0, 1];
    row.extend_from_slice(&10i32.to_be_bytes());
    row.extend_from_slice(b"abc");
    assert!(matches!(
        DataRow::parse(Bytes::from(row)),
        Err(FrameError::Truncated { at: 6, .. })
    ));
    let mut row = vec![0, 1];
    row.extend_from_slice(&(-2i32).to_be_bytes());
    assert!(DataRow::parse(Bytes::from(row)).is_err());
    assert!(matches!(
        DataRow::parse(Bytes::from_static(&[0, 0, 1])),
        Err(FrameError::TrailingBytes {
            at: 2,
            extra: 1,
            ..
        })
    ));
}

#[test]
fn parses_small_messages() {
    assert_eq!(
        parse(b'Z', b"T").unwrap(),
        BackendMessage::ReadyForQuery(TransactionStatus::InTransaction)
    );
    assert!(parse(b'Z', b"X").is_err());
    assert!(parse(b'Z', b"II").is_err());
    assert_eq!(
        parse(b'S', b"server_version\x0015.4\0").unwrap(),
        BackendMessage::ParameterStatus {
            name: "server_version".into(),
            value: "15.4".into()
        }
    );
    assert_eq!(
        parse(b'K', &[0, 0, 0, 7, 0xFF, 0xFF, 0xFF, 0xFF]).unwrap(),
        BackendMessage::BackendKeyData {
            process_id: 7,
            secret_key: -1
        }
    );
    let BackendMessage::CommandComplete(tag) = parse(b'C', b"INSERT 0 3\0").unwrap() else {
        panic!()
    };
    assert_eq!(tag.rows(), Some(3));
    assert_eq!(CommandTag("CREATE TABLE".into()).rows(), None);
    assert_eq!(CommandTag("COPY 12".into()).rows(), Some(12));
    let BackendMessage::CopyOutResponse(c) = parse(b'H', &[0, 0, 2, 0, 0, 0, 0]).unwrap() else {
        panic!()
    };
    assert_eq!((c.format, c.column_formats.len()), (0, 2));
    assert!(parse(b'W', &[0, 0, 2, 0, 0]).is_err());
    assert_eq!(parse(b'c', b"").unwrap(), BackendMessage::CopyDone);
    assert!(parse(b'c', b"x").is_err());
}

#[test]
fn parses_authentication_requests() {
    let auth = |body: &[u8]| match parse(b'R', body).unwrap() {
        BackendMessage::Authentication(a) => a,
        other => panic!("{other:?}"),
    };
    assert_eq!(auth(&[0, 0, 0, 0]), Authentication::Ok);
    assert_eq!(auth(&[0, 0, 0, 3]), Authentication::CleartextPassword);
    assert_eq!(
        auth(&[0, 0, 0, 5, 1, 2, 3, 4]),
        Authentication::Md5Password { salt: [1, 2, 3, 4] }
    );
    assert_eq!(
        auth(b"\0\0\0\x0aSCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0"),
        Authentication::Sasl {
            mechanisms: vec!["SCRAM-SHA-256-PLUS".into(), "SCRAM-SHA-256".into()]
        }
    );
    assert_eq!(
        auth(b"\0\0\0\x0br=abc"),
        Authentication::SaslContinue(Bytes::from_static(b"r=abc"))
    );
    assert_eq!(auth(&[0, 0, 0, 7]), Authentication::Unsupported { code: 7 });
    assert!(parse(b'R', &[0, 0, 0, 5, 1]).is_err());
    assert!(parse(b'R', &[0, 0, 0, 0x0a, b'x']).is_err());
    assert_eq!(
        parse(b'R', &[0, 0, 0, 99]),
        Err(FrameError::UnknownAuthentication { code: 99 })
    );
}

proptest! {
    // Goal: arbitrary bytes never panic the framer or the parser, and whatever the framer
    // yields is exactly what was declared.
    #[test]
    fn arbitrary_input_never_panics(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut buf = BytesMut::from(&data[..]);
        while let Ok(Some(frame)) = split_frame(&mut buf, 200) {
            prop_assert!(frame.body.len() <= 196);
            let _ = BackendMessage::parse(frame);
        }
    }

    #[test]
    fn split_at_any_point_yields_the_same_frames(
        bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..6),
        cut in 0usize..400,
    ) {
        let wire: Vec<u8> = bodies.iter().flat_map(|b| message(b'd', b)).collect();
        let cut = cut.min(wire.len());
        let mut buf = BytesMut::from(&wire[..cut]);
        let mut got = Vec::new();
        while let Some(f) = split_frame(&mut buf, 1024).unwrap() {
            got.push(f.body.to_vec());
        }
        buf.extend_from_slice(&wire[cut..]);
        while let Some(f) = split_frame(&mut buf, 1024).unwrap() {
            got.push(f.body.to_vec());
        }
        prop_assert_eq!(got, bodies);
    }
}
