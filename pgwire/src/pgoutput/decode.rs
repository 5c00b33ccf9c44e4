//! The stateful pgoutput decoder.
//!
//! The only state is whether the stream is inside a Stream Start / Stream Stop block: there,
//! data messages carry a leading xid that is otherwise absent, and the bytes alone cannot tell
//! the two layouts apart.

use bumpalo::Bump;

use super::error::{DecodeError, DecodeErrorKind};
use super::message::{
    Begin, Commit, Delete, Insert, LogicalMessage, Message, Origin, Relation, RelationColumn,
    StreamAbort, StreamCommit, StreamStart, Truncate, TypeMessage, Update,
};
use super::reader::Reader;
use super::tag;
use super::tuple::{read_tuple, OldTuple};
use super::MAX_COLUMNS;
use crate::types::{Oid, Xid};

/// Decodes a sequence of pgoutput messages of one replication stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoder {
    proto_version: u8,
    /// The xid of the open stream block, if any.
    stream_xid: Option<Xid>,
}

/// Smallest encoding of a Relation column: flags, empty name + NUL, type oid, type modifier.
const MIN_RELATION_COLUMN_BYTES: usize = 1 + 1 + 4 + 4;

impl Decoder {
    /// A decoder for `proto_version` 1 or 2, the value passed to `START_REPLICATION`.
    ///
    /// # Panics
    /// On any other version: the caller chose it, so it is a programming error.
    pub fn new(proto_version: u8) -> Self {
        assert!(
            proto_version == 1 || proto_version == 2,
            "pgoutput protocol version {proto_version} is not supported (1 or 2)"
        );
        Self {
            proto_version,
            stream_xid: None,
        }
    }

    pub fn proto_version(&self) -> u8 {
        self.proto_version
    }

    /// The transaction whose stream block is open, if the last Stream Start was not yet
    /// followed by its Stream Stop.
    pub fn stream_xid(&self) -> Option<Xid> {
        self.stream_xid
    }

    /// Decodes one message. On success the stream-block state follows Stream Start and Stream
    /// Stop; on error the state is unchanged.
    pub fn decode<'a>(
        &mut self,
        data: &'a [u8],
        arena: &'a Bump,
    ) -> Result<Message<'a>, DecodeError> {
        let mut reader = Reader::new(data);
        let tag = reader.u8()?;
        self.check_allowed(tag)
            .map_err(|kind| DecodeError::new(kind, 0))?;
        let message = self.decode_body(tag, &mut reader, arena)?;
        reader.finish()?;
        match message {
            Message::StreamStart(start) => self.stream_xid = Some(start.xid),
            Message::StreamStop => self.stream_xid = None,
            _ => {}
        }
        Ok(message)
    }

    /// Rejects messages that cannot occur in the current protocol version or stream state.
    fn check_allowed(&self, tag: u8) -> Result<(), DecodeErrorKind> {
        let is_stream_control = matches!(
            tag,
            tag::STREAM_START | tag::STREAM_STOP | tag::STREAM_COMMIT | tag::STREAM_ABORT
        );
        if is_stream_control && self.proto_version < 2 {
            return Err(DecodeErrorKind::StreamingNotNegotiated(tag));
        }
        let in_stream = self.stream_xid.is_some();
        match tag {
            tag::STREAM_STOP if !in_stream => Err(DecodeErrorKind::NotInStream),
            // Transaction boundaries (and a nested Stream Start) only occur between blocks.
            tag::BEGIN
            | tag::COMMIT
            | tag::STREAM_START
            | tag::STREAM_COMMIT
            | tag::STREAM_ABORT
                if in_stream =>
            {
                Err(DecodeErrorKind::UnexpectedInStream(tag))
            }
            _ => Ok(()),
        }
    }

    fn decode_body<'a>(
        &self,
        tag: u8,
        reader: &mut Reader<'a>,
        arena: &'a Bump,
    ) -> Result<Message<'a>, DecodeError> {
        match tag {
            tag::BEGIN => read_begin(reader).map(Message::Begin),
            tag::COMMIT => read_commit(reader).map(Message::Commit),
            tag::ORIGIN => read_origin(reader).map(Message::Origin),
            tag::STREAM_START => read_stream_start(reader).map(Message::StreamStart),
            tag::STREAM_STOP => Ok(Message::StreamStop),
            tag::STREAM_COMMIT => read_stream_commit(reader).map(Message::StreamCommit),
            tag::STREAM_ABORT => read_stream_abort(reader).map(Message::StreamAbort),
            _ => self.decode_change(tag, reader, arena),
        }
    }

    /// Messages that carry a leading xid inside a stream block.
    fn decode_change<'a>(
        &self,
        tag: u8,
        reader: &mut Reader<'a>,
        arena: &'a Bump,
    ) -> Result<Message<'a>, DecodeError> {
        let is_change = matches!(
            tag,
            tag::RELATION
                | tag::TYPE
                | tag::INSERT
                | tag::UPDATE
                | tag::DELETE
                | tag::TRUNCATE
                | tag::MESSAGE
        );
        if !is_change {
            return Err(DecodeError::new(
                DecodeErrorKind::UnknownMessageType(tag),
                0,
            ));
        }
        let xid = match self.stream_xid {
            Some(_) => Some(reader.xid()?),
            None => None,
        };
        match tag {
            tag::RELATION => read_relation(reader, arena, xid).map(Message::Relation),
            tag::TYPE => read_type(reader, xid).map(Message::Type),
            tag::INSERT => read_insert(reader, arena, xid).map(Message::Insert),
            tag::UPDATE => read_update(reader, arena, xid).map(Message::Update),
            tag::DELETE => read_delete(reader, arena, xid).map(Message::Delete),
            tag::TRUNCATE => read_truncate(reader, arena, xid).map(Message::Truncate),
            _ => read_logical_message(reader, xid).map(Message::Message),
        }
    }
}

fn read_begin(reader: &mut Reader<'_>) -> Result<Begin, DecodeError> {
    Ok(Begin {
        final_lsn: reader.lsn()?,
        commit_timestamp: reader.timestamp()?,
        xid: reader.xid()?,
    })
}

fn read_commit(reader: &mut Reader<'_>) -> Result<Commit, DecodeError> {
    Ok(Commit {
        flags: reader.u8()?,
        commit_lsn: reader.lsn()?,
        end_lsn: reader.lsn()?,
        commit_timestamp: reader.timestamp()?,
    })
}

fn read_origin<'a>(reader: &mut Reader<'a>) -> Result<Origin<'a>, DecodeError> {
    Ok(Origin {
        commit_lsn: reader.lsn()?,
        name: reader.cstr()?,
    })
}

fn read_stream_start(reader: &mut Reader<'_>) -> Result<StreamStart, DecodeError> {
    Ok(StreamStart {
        xid: reader.xid()?,
        first_segment: reader.bool_flag()?,
    })
}

fn read_stream_commit(reader: &mut Reader<'_>) -> Result<StreamCommit, DecodeError> {
    Ok(StreamCommit {
        xid: reader.xid()?,
        flags: reader.u8()?,
        commit_lsn: reader.lsn()?,
        end_lsn: reader.lsn()?,
        commit_timestamp: reader.timestamp()?,
    })
}

fn read_stream_abort(reader: &mut Reader<'_>) -> Result<StreamAbort, DecodeError> {
    Ok(StreamAbort {
        xid: reader.xid()?,
        subxact_xid: reader.xid()?,
    })
}

fn read_relation<'a>(
    reader: &mut Reader<'a>,
    arena: &'a Bump,
    xid: Option<Xid>,
) -> Result<Relation<'a>, DecodeError> {
    let rel_id = reader.oid()?;
    let namespace = reader.cstr()?;
    let name = reader.cstr()?;
    let replica_identity = reader.u8()?;
    let count = reader.count16(MAX_COLUMNS, MIN_RELATION_COLUMN_BYTES)?;
    let placeholder = RelationColumn {
        flags: 0,
        name: "",
        type_oid: Oid(0),
        type_modifier: 0,
    };
    // Bounded: count <= MAX_COLUMNS and count * MIN_RELATION_COLUMN_BYTES <= remaining bytes.
    let columns = arena.alloc_slice_fill_copy(count, placeholder);
    for column in columns.iter_mut() {
        *column = RelationColumn {
            flags: reader.u8()?,
            name: reader.cstr()?,
            type_oid: reader.oid()?,
            type_modifier: reader.i32()?,
        };
    }
    Ok(Relation {
        xid,
        rel_id,
        namespace,
        name,
        replica_identity,
        columns,
    })
}

fn read_type<'a>(
    reader: &mut Reader<'a>,
    xid: Option<Xid>,
) -> Result<TypeMessage<'a>, DecodeError> {
    Ok(TypeMessage {
        xid,
        type_oid: reader.oid()?,
        namespace: reader.cstr()?,
        name: reader.cstr()?,
    })
}

fn read_insert<'a>(
    reader: &mut Reader<'a>,
    arena: &'a Bump,
    xid: Option<Xid>,
) -> Result<Insert<'a>, DecodeError> {
    let rel_id = reader.oid()?;
    expect_marker(reader, tag::TUPLE_NEW)?;
    Ok(Insert {
        xid,
        rel_id,
        new: read_tuple(reader, arena)?,
    })
}

fn read_update<'a>(
    reader: &mut Reader<'a>,
    arena: &'a Bump,
    xid: Option<Xid>,
) -> Result<Update<'a>, DecodeError> {
    let rel_id = reader.oid()?;
    let marker_at = reader.pos();
    let old = match reader.u8()? {
        tag::TUPLE_NEW => None,
        tag::TUPLE_KEY => Some(OldTuple::Key(read_tuple(reader, arena)?)),
        tag::TUPLE_OLD => Some(OldTuple::Full(read_tuple(reader, arena)?)),
        other => return Err(invalid_marker(other, marker_at)),
    };
    if old.is_some() {
        expect_marker(reader, tag::TUPLE_NEW)?;
    }
    Ok(Update {
        xid,
        rel_id,
        old,
        new: read_tuple(reader, arena)?,
    })
}

fn read_delete<'a>(
    reader: &mut Reader<'a>,
    arena: &'a Bump,
    xid: Option<Xid>,
) -> Result<Delete<'a>, DecodeError> {
    let rel_id = reader.oid()?;
    let marker_at = reader.pos();
    let old = match reader.u8()? {
        tag::TUPLE_KEY => OldTuple::Key(read_tuple(reader, arena)?),
        tag::TUPLE_OLD => OldTuple::Full(read_tuple(reader, arena)?),
        other => return Err(invalid_marker(other, marker_at)),
    };
    Ok(Delete { xid, rel_id, old })
}

fn read_truncate<'a>(
    reader: &mut Reader<'a>,
    arena: &'a Bump,
    xid: Option<Xid>,
) -> Result<Truncate<'a>, DecodeError> {
    // Postgres sets no limit on the relations of one TRUNCATE; the remaining bytes do.
    let count = reader.count32(usize::MAX, 4)?;
    let options = reader.u8()?;
    let rel_ids = arena.alloc_slice_fill_copy(count, Oid(0));
    for rel_id in rel_ids.iter_mut() {
        *rel_id = reader.oid()?;
    }
    Ok(Truncate {
        xid,
        options,
        rel_ids,
    })
}

fn read_logical_message<'a>(
    reader: &mut Reader<'a>,
    xid: Option<Xid>,
) -> Result<LogicalMessage<'a>, DecodeError> {
    Ok(LogicalMessage {
        xid,
        transactional: reader.bool_flag()?,
        lsn: reader.lsn()?,
        prefix: reader.cstr()?,
        content: reader.length_prefixed()?,
    })
}

fn expect_marker(reader: &mut Reader<'_>, expected: u8) -> Result<(), DecodeError> {
    let at = reader.pos();
    let got = reader.u8()?;
    if got == expected {
        Ok(())
    } else {
        Err(invalid_marker(got, at))
    }
}

fn invalid_marker(got: u8, at: usize) -> DecodeError {
    DecodeError::new(DecodeErrorKind::InvalidTupleMarker(got), at)
}
