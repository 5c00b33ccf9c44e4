//! Committed transactions as the ingest core hands them to the shape-owning cores.
//!
//! A transaction is decoded once, on the ingest core, into this owned and `Send` form. Column
//! values are not copied: a [`Row`] keeps the XLogData buffer it came from (`Bytes`, reference
//! counted) and the byte ranges of its columns, so moving a transaction to another core moves a
//! few pointers, whatever the row sizes.

use bytes::Bytes;
use std::sync::Arc;

/// One column of a row: where its text value lies in the row's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColRef {
    Null,
    /// Unchanged TOAST value that pgoutput did not send (only for new tuples without a full old
    /// tuple to fill it from).
    Missing,
    Text {
        start: u32,
        len: u32,
    },
}

/// A tuple: the message buffer it came from and its columns in relation order.
#[derive(Clone, Debug)]
pub struct Row {
    pub data: Bytes,
    pub cols: Box<[ColRef]>,
}

impl Row {
    /// The text value of column `i`; `None` for NULL (and for out-of-range or missing values).
    #[inline]
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        match self.cols.get(i)? {
            ColRef::Text { start, len } => {
                let s = *start as usize;
                self.data.get(s..s + *len as usize)
            }
            ColRef::Null | ColRef::Missing => None,
        }
    }

    pub fn is_missing(&self, i: usize) -> bool {
        matches!(self.cols.get(i), Some(ColRef::Missing))
    }

    pub fn len(&self) -> usize {
        self.cols.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cols.is_empty()
    }
}

/// A column of a published relation, from the pgoutput Relation message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelColumn {
    pub name: String,
    pub type_oid: u32,
    pub type_modifier: i32,
    pub is_key: bool,
}

/// The shape of a published table as of some point of the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Relation {
    pub oid: u32,
    pub schema: String,
    pub name: String,
    pub replica_identity: u8,
    pub columns: Vec<RelColumn>,
}

#[derive(Clone, Debug)]
pub enum ChangeKind {
    Insert {
        new: Row,
    },
    /// `old` is the full old row under REPLICA IDENTITY FULL, the key under DEFAULT when the key
    /// changed, and absent otherwise.
    Update {
        old: Option<Row>,
        new: Row,
    },
    Delete {
        old: Row,
    },
}

#[derive(Clone, Debug)]
pub struct Change {
    pub relation: Arc<Relation>,
    /// Op position in the transaction: 0, 2, 4… (room for splitting an update in two).
    pub op: u64,
    pub kind: ChangeKind,
}

#[derive(Clone, Debug)]
pub struct Txn {
    pub xid: u32,
    /// LSN of the commit record (`Begin.final_lsn`): the `tx` part of log offsets.
    pub commit_lsn: u64,
    /// End of the commit record: what the slot may be acknowledged to once this is durable.
    pub end_lsn: u64,
    pub changes: Vec<Change>,
    /// Relations truncated in this transaction.
    pub truncated: Vec<u32>,
    /// Relations whose Relation message arrived in this transaction (schema may have changed).
    pub relations: Vec<Arc<Relation>>,
    /// Relations changed by this transaction when it was too large to hold
    /// (`ELECTRIC_EXPERIMENTAL_MAX_TXN_SIZE`): its changes were dropped, so the shapes of these
    /// tables must be rebuilt from a new snapshot (409).
    pub overflowed: Vec<u32>,
}
