//! Decoded pgoutput messages. Field docs follow the Postgres documentation chapter
//! "Logical Replication Message Formats". Strings and values borrow from the message bytes;
//! slices of columns and oids live in the decoder's arena.

use super::tuple::{OldTuple, TupleData};
use crate::types::{Lsn, Oid, TimestampTz, Xid};

/// One pgoutput message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message<'a> {
    Begin(Begin),
    Commit(Commit),
    Origin(Origin<'a>),
    Relation(Relation<'a>),
    Type(TypeMessage<'a>),
    Insert(Insert<'a>),
    Update(Update<'a>),
    Delete(Delete<'a>),
    Truncate(Truncate<'a>),
    /// A logical decoding message from `pg_logical_emit_message` (needs `messages 'true'`).
    Message(LogicalMessage<'a>),
    StreamStart(StreamStart),
    StreamStop,
    StreamCommit(StreamCommit),
    StreamAbort(StreamAbort),
}

/// Start of a (non-streamed) transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Begin {
    /// The final LSN of the transaction (its commit record).
    pub final_lsn: Lsn,
    pub commit_timestamp: TimestampTz,
    pub xid: Xid,
}

/// End of a (non-streamed) transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Commit {
    /// Currently unused by Postgres (always 0); kept so encoding reproduces the input.
    pub flags: u8,
    /// The LSN of the commit record.
    pub commit_lsn: Lsn,
    /// The end LSN of the transaction.
    pub end_lsn: Lsn,
    pub commit_timestamp: TimestampTz,
}

/// The transaction originated on another node (replication origin set by the writer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin<'a> {
    /// The LSN of the commit on the origin server.
    pub commit_lsn: Lsn,
    pub name: &'a str,
}

/// The shape of a table, sent before its first change in a session and after a schema change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Relation<'a> {
    /// Present inside a stream block only.
    pub xid: Option<Xid>,
    pub rel_id: Oid,
    /// Empty for `pg_catalog`.
    pub namespace: &'a str,
    pub name: &'a str,
    /// `relreplident`: `d` default, `n` nothing, `f` full, `i` index.
    pub replica_identity: u8,
    pub columns: &'a [RelationColumn<'a>],
}

/// One column of a [`Relation`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelationColumn<'a> {
    /// [`super::COLUMN_FLAG_KEY`] if the column is part of the replica identity key.
    pub flags: u8,
    pub name: &'a str,
    pub type_oid: Oid,
    /// `atttypmod`, -1 when the type has none.
    pub type_modifier: i32,
}

/// A non-built-in data type used by a following Relation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TypeMessage<'a> {
    pub xid: Option<Xid>,
    pub type_oid: Oid,
    /// Empty for `pg_catalog`.
    pub namespace: &'a str,
    pub name: &'a str,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insert<'a> {
    pub xid: Option<Xid>,
    pub rel_id: Oid,
    pub new: TupleData<'a>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Update<'a> {
    pub xid: Option<Xid>,
    pub rel_id: Oid,
    /// The old key (`K`, when the key changed) or the whole old row (`O`, REPLICA IDENTITY
    /// FULL); absent when the key is unchanged under the default replica identity.
    pub old: Option<OldTuple<'a>>,
    pub new: TupleData<'a>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delete<'a> {
    pub xid: Option<Xid>,
    pub rel_id: Oid,
    pub old: OldTuple<'a>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Truncate<'a> {
    pub xid: Option<Xid>,
    /// Bits [`super::TRUNCATE_CASCADE`] and [`super::TRUNCATE_RESTART_IDENTITY`].
    pub options: u8,
    pub rel_ids: &'a [Oid],
}

/// A message written with `pg_logical_emit_message`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogicalMessage<'a> {
    /// Present inside a stream block only.
    pub xid: Option<Xid>,
    /// Transactional messages arrive inside their transaction; others arrive on their own.
    pub transactional: bool,
    /// The LSN of the message.
    pub lsn: Lsn,
    pub prefix: &'a str,
    pub content: &'a [u8],
}

/// Opens a block of changes of a large in-progress transaction (protocol 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamStart {
    pub xid: Xid,
    /// True for the first block of this transaction.
    pub first_segment: bool,
}

/// A streamed transaction committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamCommit {
    pub xid: Xid,
    /// Currently unused by Postgres (always 0).
    pub flags: u8,
    pub commit_lsn: Lsn,
    pub end_lsn: Lsn,
    pub commit_timestamp: TimestampTz,
}

/// A streamed transaction (`subxact_xid == xid`) or one of its subtransactions rolled back:
/// the changes already streamed under `subxact_xid` must be discarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamAbort {
    pub xid: Xid,
    pub subxact_xid: Xid,
}
