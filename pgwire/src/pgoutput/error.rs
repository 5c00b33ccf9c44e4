//! Decode errors: what went wrong and at which byte of the message.

/// A pgoutput message could not be decoded. `offset` is the byte position within the message
/// (0 = the tag) where the problem was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("pgoutput decode error at byte {offset}: {kind}")]
pub struct DecodeError {
    pub kind: DecodeErrorKind,
    pub offset: usize,
}

/// The reason a message was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeErrorKind {
    #[error("message ends early")]
    UnexpectedEof,
    #[error("unknown message type {0:#04x}")]
    UnknownMessageType(u8),
    #[error("stream message {0:#04x} needs protocol version 2")]
    StreamingNotNegotiated(u8),
    #[error("invalid tuple column kind {0:#04x} (expected n, u, t or b)")]
    InvalidTupleKind(u8),
    #[error("invalid tuple marker {0:#04x}")]
    InvalidTupleMarker(u8),
    #[error("invalid flag byte {0:#04x}")]
    InvalidFlag(u8),
    #[error("negative count {0}")]
    NegativeCount(i32),
    #[error("count {0} exceeds the limit or the remaining bytes")]
    CountTooLarge(u32),
    #[error("negative length {0}")]
    NegativeLength(i32),
    #[error("length {0} exceeds the remaining bytes")]
    LengthTooLarge(u32),
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    #[error("string has no NUL terminator")]
    MissingNulTerminator,
    #[error("{0} bytes left over after the message")]
    TrailingBytes(usize),
    #[error("stream stop outside a stream block")]
    NotInStream,
    #[error("message {0:#04x} is not allowed inside a stream block")]
    UnexpectedInStream(u8),
}

impl DecodeError {
    #[inline]
    pub(crate) fn new(kind: DecodeErrorKind, offset: usize) -> Self {
        Self { kind, offset }
    }
}
