//! Replication CopyData messages: exact-length parsing of XLogData and keepalives, zero-copy
//! payloads, and the byte layout of standby status updates.

use bytes::{Buf, Bytes, BytesMut};
use pgwire::frame::split_frame;
use pgwire::replication::{
    encode_standby_status, parse_copy_data, ReplicationError, ReplicationMessage,
    STANDBY_STATUS_FRAME_LEN,
};
use pgwire::types::Lsn;
use proptest::prelude::*;

fn xlog(start: u64, end: u64, time: i64, data: &[u8]) -> Vec<u8> {
    let mut b = vec![b'w'];
    b.extend_from_slice(&start.to_be_bytes());
    b.extend_from_slice(&end.to_be_bytes());
    b.extend_from_slice(&time.to_be_bytes());
    b.extend_from_slice(data);
    b
}

fn keepalive(end: u64, time: i64, reply: u8) -> Vec<u8> {
    let mut b = vec![b'k'];
    b.extend_from_slice(&end.to_be_bytes());
    b.extend_from_slice(&time.to_be_bytes());
    b.push(reply);
    b
}

#[test]
fn parses_xlog_data_as_a_zero_copy_slice() {
    let body = Bytes::from(xlog(0x1_0000_0010, 0x1_0000_0020, -5, b"Bpayload"));
    let msg = parse_copy_data(body.clone()).unwrap();
    let ReplicationMessage::XLogData {
        wal_start,
        wal_end,
        send_time,
        data,
    } = msg
    else {
        panic!()
    };
    assert_eq!(wal_start, Lsn(0x1_0000_0010));
    assert_eq!(wal_end.to_string(), "1/20");
    assert_eq!(send_time, -5);
    assert_eq!(&data[..], b"Bpayload");
    // Same allocation: the payload points into the body.
    assert_eq!(data.as_ptr(), body[25..].as_ptr());
    // An empty payload is allowed; a short header is not.
    assert!(parse_copy_data(Bytes::from(xlog(1, 2, 3, b""))).is_ok());
    let short = Bytes::from(xlog(1, 2, 3, b"")[..24].to_vec());
    assert!(matches!(
        parse_copy_data(short),
        Err(ReplicationError::BadLength { kind: 'w', .. })
    ));
}

#[test]
fn parses_keepalives_with_exact_length() {
    let msg = parse_copy_data(Bytes::from(keepalive(77, 9, 1))).unwrap();
    assert_eq!(
        msg,
        ReplicationMessage::PrimaryKeepalive {
            wal_end: Lsn(77),
            send_time: 9,
            reply_requested: true
        }
    );
    let mut long = keepalive(77, 9, 0);
    long.push(0);
    assert!(parse_copy_data(Bytes::from(long)).is_err());
    assert!(parse_copy_data(Bytes::from(keepalive(77, 9, 0)[..17].to_vec())).is_err());
    assert_eq!(
        parse_copy_data(Bytes::from(keepalive(1, 1, 2))),
        Err(ReplicationError::BadReplyFlag { value: 2 })
    );
    assert_eq!(parse_copy_data(Bytes::new()), Err(ReplicationError::Empty));
    assert_eq!(
        parse_copy_data(Bytes::from_static(b"x")),
        Err(ReplicationError::UnknownKind { kind: 'x' })
    );
}

#[test]
fn encodes_standby_status_update_layout() {
    let mut out = BytesMut::from(&b"prefix"[..]);
    encode_standby_status(&mut out, Lsn(3), Lsn(2), Lsn(1), 1234, true);
    assert_eq!(&out[..6], b"prefix");
    let mut frame = out.split_off(6);
    assert_eq!(frame.len(), STANDBY_STATUS_FRAME_LEN);
    assert_eq!(frame.get_u8(), b'd');
    assert_eq!(frame.get_u32(), 38);
    assert_eq!(frame.get_u8(), b'r');
    assert_eq!(frame.get_u64(), 3);
    assert_eq!(frame.get_u64(), 2);
    assert_eq!(frame.get_u64(), 1);
    assert_eq!(frame.get_i64(), 1234);
    assert_eq!(frame.get_u8(), 1);
    assert!(frame.is_empty());
}

proptest! {
    #[test]
    fn arbitrary_copy_data_never_panics(data in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = parse_copy_data(Bytes::from(data));
    }

    #[test]
    fn xlog_data_round_trips(start: u64, end: u64, time: i64,
                             data in proptest::collection::vec(any::<u8>(), 0..64)) {
        let msg = parse_copy_data(Bytes::from(xlog(start, end, time, &data))).unwrap();
        prop_assert_eq!(msg, ReplicationMessage::XLogData {
            wal_start: Lsn(start), wal_end: Lsn(end), send_time: time, data: Bytes::from(data),
        });
    }

    #[test]
    fn standby_status_frames_split_cleanly(w: u64, f: u64, a: u64, t: i64, r: bool) {
        // The encoder's output is a frame our own framer accepts whole.
        let mut out = BytesMut::new();
        encode_standby_status(&mut out, Lsn(w), Lsn(f), Lsn(a), t, r);
        let frame = split_frame(&mut out, 64).unwrap().unwrap();
        prop_assert_eq!(frame.tag, b'd');
        prop_assert_eq!(frame.body.len(), 34);
        prop_assert!(out.is_empty());
    }
}
