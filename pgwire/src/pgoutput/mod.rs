//! The `pgoutput` logical decoding message format, protocol versions 1 and 2.
//!
//! Each CopyData `XLogData` payload of a pgoutput replication stream holds exactly one message.
//! [`Decoder::decode`] turns it into a [`Message`] that borrows every string and column value
//! from the input; the few arrays (columns, tuple values, truncated relations) are allocated in
//! a caller-supplied [`bumpalo::Bump`] that the caller resets once per transaction.
//!
//! # Wire format
//!
//! All integers are big-endian; `String` is UTF-8 bytes ended by a NUL (this crate assumes a
//! UTF-8 server encoding for names); `[xid]` is an `Int32` present only inside a stream block
//! (between Stream Start and Stream Stop, protocol 2).
//!
//! - `B` Begin: Int64 final LSN, Int64 commit time, Int32 xid.
//! - `C` Commit: Int8 flags (0), Int64 commit LSN, Int64 end LSN, Int64 commit time.
//! - `O` Origin: Int64 commit LSN on the origin, String origin name.
//! - `R` Relation: \[xid\], Int32 oid, String namespace (empty for `pg_catalog`), String name,
//!   Int8 replica identity, Int16 column count, then per column Int8 flags (1 = key),
//!   String name, Int32 type oid, Int32 type modifier.
//! - `Y` Type: \[xid\], Int32 oid, String namespace, String name.
//! - `I` Insert: \[xid\], Int32 relation oid, `N`, TupleData.
//! - `U` Update: \[xid\], Int32 relation oid, optionally `K` or `O` and a TupleData, then `N`
//!   and a TupleData.
//! - `D` Delete: \[xid\], Int32 relation oid, `K` or `O`, TupleData.
//! - `T` Truncate: \[xid\], Int32 relation count, Int8 options (1 cascade, 2 restart identity),
//!   Int32 oid per relation.
//! - `M` Message: \[xid\], Int8 flags (1 = transactional), Int64 LSN, String prefix, Int32
//!   length, that many bytes of content.
//! - `S` Stream Start: Int32 xid, Int8 first segment (1) or not (0).
//! - `E` Stream Stop: empty.
//! - `c` Stream Commit: Int32 xid, Int8 flags (0), Int64 commit LSN, Int64 end LSN, Int64
//!   commit time.
//! - `A` Stream Abort: Int32 xid, Int32 subtransaction xid.
//!
//! TupleData is an Int16 column count followed, per column, by a kind byte: `n` (null), `u`
//! (unchanged TOASTed value, not sent), `t` (text) or `b` (binary), the last two followed by an
//! Int32 length and that many bytes. `K` marks an old tuple with only the replica identity key
//! columns, `O` a full old tuple (REPLICA IDENTITY FULL), `N` the new tuple.
//!
//! # Validation
//!
//! Every count is checked to be non-negative, within Postgres's own limits and small enough
//! for the bytes that remain *before* anything is allocated, and every message must be
//! consumed exactly. Column values are not UTF-8 checked: they are bytes to the decoder.

mod decode;
pub mod encode;
mod error;
mod message;
mod reader;
mod slice;
mod tuple;

#[cfg(test)]
mod tests;

pub use decode::Decoder;
pub use error::{DecodeError, DecodeErrorKind};
pub use message::{
    Begin, Commit, Delete, Insert, LogicalMessage, Message, Origin, Relation, RelationColumn,
    StreamAbort, StreamCommit, StreamStart, Truncate, TypeMessage, Update,
};
pub use slice::{slice_of, try_slice_of};
pub use tuple::{OldTuple, TupleData, TupleValue};

/// Largest number of columns in a Postgres tuple (`MaxTupleAttributeNumber`).
pub const MAX_COLUMNS: usize = 1664;

/// Column flag in a Relation message: the column is part of the replica identity key.
pub const COLUMN_FLAG_KEY: u8 = 1;

/// Truncate option bit: `TRUNCATE ... CASCADE`.
pub const TRUNCATE_CASCADE: u8 = 1;

/// Truncate option bit: `TRUNCATE ... RESTART IDENTITY`.
pub const TRUNCATE_RESTART_IDENTITY: u8 = 2;

/// Message tags, named so the decoder and encoder share one definition.
pub mod tag {
    pub const BEGIN: u8 = b'B';
    pub const COMMIT: u8 = b'C';
    pub const ORIGIN: u8 = b'O';
    pub const RELATION: u8 = b'R';
    pub const TYPE: u8 = b'Y';
    pub const INSERT: u8 = b'I';
    pub const UPDATE: u8 = b'U';
    pub const DELETE: u8 = b'D';
    pub const TRUNCATE: u8 = b'T';
    pub const MESSAGE: u8 = b'M';
    pub const STREAM_START: u8 = b'S';
    pub const STREAM_STOP: u8 = b'E';
    pub const STREAM_COMMIT: u8 = b'c';
    pub const STREAM_ABORT: u8 = b'A';

    /// Tuple markers inside Insert/Update/Delete.
    pub const TUPLE_NEW: u8 = b'N';
    pub const TUPLE_KEY: u8 = b'K';
    pub const TUPLE_OLD: u8 = b'O';

    /// Column kinds inside TupleData.
    pub const COLUMN_NULL: u8 = b'n';
    pub const COLUMN_UNCHANGED_TOAST: u8 = b'u';
    pub const COLUMN_TEXT: u8 = b't';
    pub const COLUMN_BINARY: u8 = b'b';
}
