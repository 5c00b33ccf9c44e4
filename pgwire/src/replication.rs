//! Replication sub-protocol messages carried inside CopyData during `START_REPLICATION`.
//!
//! The server sends XLogData (`w`) and primary keepalive (`k`) messages; the client answers with
//! standby status updates (`r`). All integers are big-endian; timestamps are microseconds since
//! 2000-01-01 UTC.

use bytes::{BufMut, Bytes, BytesMut};

use crate::types::Lsn;

/// `w` + wal_start + wal_end + send_time; the WAL data follows.
const XLOG_DATA_HEADER_LEN: usize = 1 + 8 + 8 + 8;
/// `k` + wal_end + send_time + reply flag.
const KEEPALIVE_LEN: usize = 1 + 8 + 8 + 1;
/// `r` + write + flush + apply + send_time + reply flag.
const STANDBY_STATUS_LEN: usize = 1 + 8 + 8 + 8 + 8 + 1;
/// A whole CopyData frame holding a standby status update: tag, length, payload.
pub const STANDBY_STATUS_FRAME_LEN: usize = 1 + 4 + STANDBY_STATUS_LEN;

/// A server-to-client message of the replication stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplicationMessage {
    XLogData {
        wal_start: Lsn,
        wal_end: Lsn,
        send_time: i64,
        /// A zero-copy slice of the CopyData body: one pgoutput message for logical slots.
        data: Bytes,
    },
    PrimaryKeepalive {
        wal_end: Lsn,
        send_time: i64,
        reply_requested: bool,
    },
}

/// Why a CopyData body is not a replication message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplicationError {
    #[error("empty CopyData message in replication stream")]
    Empty,
    #[error("unknown replication message kind {kind:?}")]
    UnknownKind { kind: char },
    #[error("replication message {kind:?} has {actual} bytes, expected {expected}")]
    BadLength {
        kind: char,
        expected: &'static str,
        actual: usize,
    },
    #[error("keepalive reply flag is {value}, expected 0 or 1")]
    BadReplyFlag { value: u8 },
}

fn be_u64(b: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(word)
}

/// Parses the body of one CopyData message received during replication.
pub fn parse_copy_data(body: Bytes) -> Result<ReplicationMessage, ReplicationError> {
    let kind = *body.first().ok_or(ReplicationError::Empty)?;
    match kind {
        b'w' => {
            if body.len() < XLOG_DATA_HEADER_LEN {
                return Err(ReplicationError::BadLength {
                    kind: 'w',
                    expected: "at least 25",
                    actual: body.len(),
                });
            }
            Ok(ReplicationMessage::XLogData {
                wal_start: Lsn(be_u64(&body, 1)),
                wal_end: Lsn(be_u64(&body, 9)),
                send_time: be_u64(&body, 17) as i64,
                data: body.slice(XLOG_DATA_HEADER_LEN..),
            })
        }
        b'k' => {
            if body.len() != KEEPALIVE_LEN {
                return Err(ReplicationError::BadLength {
                    kind: 'k',
                    expected: "exactly 18",
                    actual: body.len(),
                });
            }
            let reply_requested = match body[17] {
                0 => false,
                1 => true,
                value => return Err(ReplicationError::BadReplyFlag { value }),
            };
            Ok(ReplicationMessage::PrimaryKeepalive {
                wal_end: Lsn(be_u64(&body, 1)),
                send_time: be_u64(&body, 9) as i64,
                reply_requested,
            })
        }
        other => Err(ReplicationError::UnknownKind {
            kind: char::from(other),
        }),
    }
}

/// Appends a complete CopyData frame carrying a standby status update to `out`.
///
/// For a logical slot the server takes `flush` as the slot's new `confirmed_flush_lsn`, so it must
/// never be ahead of what the client has made durable.
pub fn encode_standby_status(
    out: &mut BytesMut,
    write: Lsn,
    flush: Lsn,
    apply: Lsn,
    now_micros_since_2000: i64,
    reply_requested: bool,
) {
    let start = out.len();
    out.reserve(STANDBY_STATUS_FRAME_LEN);
    out.put_u8(b'd');
    out.put_u32((4 + STANDBY_STATUS_LEN) as u32);
    out.put_u8(b'r');
    out.put_u64(write.0);
    out.put_u64(flush.0);
    out.put_u64(apply.0);
    out.put_i64(now_micros_since_2000);
    out.put_u8(u8::from(reply_requested));
    assert_eq!(out.len() - start, STANDBY_STATUS_FRAME_LEN);
}
