//! Assembling decoded pgoutput messages into committed [`Txn`]s.
//!
//! Protocol version 1 is used (no streaming of in-progress transactions), so every change
//! arrives between a Begin and its Commit. The decoder borrows from the XLogData buffer and puts
//! per-message arrays in a bump arena; rows keep only byte ranges of the buffer.

use super::txn::{Change, ChangeKind, ColRef, RelColumn, Relation, Row, Txn};
use bytes::Bytes;
use pgwire::pgoutput::{Decoder, Message, OldTuple, TupleData, TupleValue};
use std::collections::HashMap;
use std::sync::Arc;

/// Largest transaction held in memory by default (upstream's `max_txn_size` default).
pub const MAX_TXN_BYTES: usize = 250 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum AssembleError {
    #[error("malformed pgoutput message: {0}")]
    Decode(#[from] pgwire::pgoutput::DecodeError),
    #[error("{0} outside a transaction")]
    OutsideTxn(&'static str),
    #[error("change for relation {0} before its Relation message")]
    UnknownRelation(u32),
    #[error("tuple has {got} columns, relation {oid} has {want}")]
    ColumnCount { oid: u32, got: usize, want: usize },
}

struct Building {
    txn: Txn,
    bytes: usize,
    /// Over the size limit: its changes are dropped, only the tables they touch are kept.
    overflowed: bool,
}

pub struct Assembler {
    decoder: Decoder,
    arena: bumpalo::Bump,
    relations: HashMap<u32, Arc<Relation>>,
    current: Option<Building>,
    max_txn_bytes: usize,
}

impl Default for Assembler {
    fn default() -> Self {
        Self::new(MAX_TXN_BYTES)
    }
}

impl Assembler {
    /// An assembler holding transactions of up to `max_txn_bytes` of pgoutput messages.
    pub fn new(max_txn_bytes: usize) -> Self {
        Self {
            decoder: Decoder::new(1),
            arena: bumpalo::Bump::with_capacity(64 * 1024),
            relations: HashMap::new(),
            current: None,
            max_txn_bytes,
        }
    }

    /// Between a Begin and its Commit.
    pub fn in_txn(&self) -> bool {
        self.current.is_some()
    }

    pub fn relation(&self, oid: u32) -> Option<&Arc<Relation>> {
        self.relations.get(&oid)
    }

    /// Feeds one XLogData payload; returns the transaction when this was its Commit.
    pub fn push(&mut self, data: &Bytes) -> Result<Option<Txn>, AssembleError> {
        self.arena.reset();
        let msg = self.decoder.decode(data, &self.arena)?;
        match msg {
            Message::Begin(b) => {
                self.current = Some(Building {
                    txn: Txn {
                        xid: b.xid.0,
                        commit_lsn: b.final_lsn.0,
                        end_lsn: b.final_lsn.0,
                        changes: Vec::new(),
                        truncated: Vec::new(),
                        relations: Vec::new(),
                        overflowed: Vec::new(),
                    },
                    bytes: 0,
                    overflowed: false,
                });
                Ok(None)
            }
            Message::Commit(c) => {
                let mut b = self
                    .current
                    .take()
                    .ok_or(AssembleError::OutsideTxn("Commit"))?;
                b.txn.end_lsn = c.end_lsn.0;
                if b.overflowed {
                    b.txn.overflowed.sort_unstable();
                    b.txn.overflowed.dedup();
                    tracing::warn!(
                        "transaction {} (commit {}) was larger than {} bytes: its changes are not \
                         kept, and the shapes of the {} table(s) it changed are rebuilt (clients \
                         get 409 and resync)",
                        b.txn.xid,
                        format_args!("{:X}/{:X}", b.txn.commit_lsn >> 32, b.txn.commit_lsn as u32),
                        self.max_txn_bytes,
                        b.txn.overflowed.len()
                    );
                }
                Ok(Some(b.txn))
            }
            Message::Relation(r) => {
                let rel = Arc::new(Relation {
                    oid: r.rel_id.0,
                    schema: if r.namespace.is_empty() {
                        "pg_catalog".to_string()
                    } else {
                        r.namespace.to_string()
                    },
                    name: r.name.to_string(),
                    replica_identity: r.replica_identity,
                    columns: r
                        .columns
                        .iter()
                        .map(|c| RelColumn {
                            name: c.name.to_string(),
                            type_oid: c.type_oid.0,
                            type_modifier: c.type_modifier,
                            is_key: c.flags & pgwire::pgoutput::COLUMN_FLAG_KEY != 0,
                        })
                        .collect(),
                });
                self.relations.insert(rel.oid, rel.clone());
                if let Some(b) = self.current.as_mut() {
                    b.txn.relations.push(rel);
                }
                Ok(None)
            }
            Message::Insert(i) => {
                let rel = self.rel(i.rel_id.0)?;
                let new = row(data, &i.new, None, &rel)?;
                self.add(rel, ChangeKind::Insert { new }, data.len())
            }
            Message::Update(u) => {
                let rel = self.rel(u.rel_id.0)?;
                let old_full = match &u.old {
                    Some(OldTuple::Full(t)) => Some(t),
                    _ => None,
                };
                let old = match &u.old {
                    Some(o) => Some(row(data, o.tuple(), None, &rel)?),
                    None => None,
                };
                let new = row(data, &u.new, old_full, &rel)?;
                self.add(rel, ChangeKind::Update { old, new }, data.len())
            }
            Message::Delete(d) => {
                let rel = self.rel(d.rel_id.0)?;
                let old = row(data, d.old.tuple(), None, &rel)?;
                self.add(rel, ChangeKind::Delete { old }, data.len())
            }
            Message::Truncate(t) => {
                let b = self
                    .current
                    .as_mut()
                    .ok_or(AssembleError::OutsideTxn("Truncate"))?;
                b.txn.truncated.extend(t.rel_ids.iter().map(|o| o.0));
                Ok(None)
            }
            // Origins, types and logical messages do not affect shapes; streaming is not
            // requested (protocol 1), so stream messages cannot occur.
            Message::Origin(_)
            | Message::Type(_)
            | Message::Message(_)
            | Message::StreamStart(_)
            | Message::StreamStop
            | Message::StreamCommit(_)
            | Message::StreamAbort(_) => Ok(None),
        }
    }

    fn rel(&self, oid: u32) -> Result<Arc<Relation>, AssembleError> {
        self.relations
            .get(&oid)
            .cloned()
            .ok_or(AssembleError::UnknownRelation(oid))
    }

    fn add(
        &mut self,
        relation: Arc<Relation>,
        kind: ChangeKind,
        size: usize,
    ) -> Result<Option<Txn>, AssembleError> {
        let b = self
            .current
            .as_mut()
            .ok_or(AssembleError::OutsideTxn("change"))?;
        b.bytes += size;
        if !b.overflowed && b.bytes > self.max_txn_bytes {
            // Too large to hold: rather than stop replication (it would stop at this
            // transaction forever), keep only which tables it changes.
            b.overflowed = true;
            let changes = std::mem::take(&mut b.txn.changes);
            b.txn
                .overflowed
                .extend(changes.iter().map(|c| c.relation.oid));
            b.txn.overflowed.sort_unstable();
            b.txn.overflowed.dedup();
        }
        if b.overflowed {
            if !b.txn.overflowed.contains(&relation.oid) {
                b.txn.overflowed.push(relation.oid);
            }
            return Ok(None);
        }
        let op = 2 * b.txn.changes.len() as u64;
        b.txn.changes.push(Change { relation, op, kind });
        Ok(None)
    }
}

/// Byte range of `sub` inside `parent` (the decoder only hands out sub-slices of the message).
fn range_in(parent: &[u8], sub: &[u8]) -> (u32, u32) {
    let start = sub.as_ptr() as usize - parent.as_ptr() as usize;
    assert!(
        start + sub.len() <= parent.len(),
        "value outside its message"
    );
    (start as u32, sub.len() as u32)
}

/// Builds a row of byte ranges; unchanged TOAST values are taken from `fill` (the full old row)
/// when there is one.
fn row(
    data: &Bytes,
    t: &TupleData<'_>,
    fill: Option<&TupleData<'_>>,
    rel: &Relation,
) -> Result<Row, AssembleError> {
    if t.columns.len() != rel.columns.len() {
        return Err(AssembleError::ColumnCount {
            oid: rel.oid,
            got: t.columns.len(),
            want: rel.columns.len(),
        });
    }
    let cols = t
        .columns
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let v = match (v, fill) {
                (TupleValue::UnchangedToast, Some(f)) => f.columns.get(i).copied().unwrap_or(*v),
                _ => *v,
            };
            match v {
                TupleValue::Null => ColRef::Null,
                TupleValue::UnchangedToast => ColRef::Missing,
                TupleValue::Text(b) | TupleValue::Binary(b) => {
                    let (start, len) = range_in(data, b);
                    ColRef::Text { start, len }
                }
            }
        })
        .collect();
    Ok(Row {
        data: data.clone(),
        cols,
    })
}
