//! One shape on its owning core: definition, log, snapshot state, and the transactions it is
//! still waiting to classify against its snapshot.

use super::apply::{self, EncodeCache};
use super::def::ShapeDef;
use super::log::ShapeLog;
use crate::event::Event;
use crate::ingest::txn::Txn;
use crate::storage::fd_cache::LazyFile;
use crate::storage::record::ChunkPos;
use crate::storage::{PendingWrite, ShapeStore, SnapshotRecord, StorageError};
use std::rc::Rc;
use std::sync::Arc;

/// `pg_current_snapshot()` of the snapshot transaction, to classify replicated transactions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgSnapshot {
    pub xmin: u64,
    pub xmax: u64,
    pub xip: Vec<u64>,
}

/// `a < b` for 32-bit xids, with wraparound (pgoutput sends 32-bit xids).
fn xid_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

impl PgSnapshot {
    /// Parses `pg_current_snapshot()::text`: `xmin:xmax:xip1,xip2`.
    pub fn parse(s: &str) -> Option<Self> {
        let mut it = s.trim().splitn(3, ':');
        let xmin = it.next()?.parse().ok()?;
        let xmax = it.next()?.parse().ok()?;
        let xip_s = it.next()?;
        let xip = if xip_s.is_empty() {
            Vec::new()
        } else {
            xip_s
                .split(',')
                .map(|x| x.parse().ok())
                .collect::<Option<Vec<u64>>>()?
        };
        Some(Self { xmin, xmax, xip })
    }

    /// Whether the transaction's effects are already in the snapshot.
    pub fn visible(&self, xid: u32) -> bool {
        if xid_lt(xid, self.xmin as u32) {
            return true;
        }
        xid_lt(xid, self.xmax as u32) && !self.xip.iter().any(|x| *x as u32 == xid)
    }

    /// Whether every later transaction is after the snapshot too (xid ≥ xmax).
    pub fn after(&self, xid: u32) -> bool {
        !xid_lt(xid, self.xmax as u32)
    }
}

pub enum Phase {
    /// Snapshot running: transactions are kept until the snapshot's xids are known.
    Snapshotting { buffered: Vec<Arc<Txn>> },
    /// Snapshot known; `filtering` until the first transaction after it.
    Ready {
        snapshot: PgSnapshot,
        filtering: bool,
    },
}

/// Outcome of applying a transaction.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    Nothing,
    Appended(usize),
    /// TRUNCATE of the table, or its columns changed: the shape must be rotated.
    Invalidate(&'static str),
}

pub struct Shape {
    pub handle: String,
    pub def: Arc<ShapeDef>,
    pub log: ShapeLog,
    pub phase: Phase,
    /// Woken when the log grows, the snapshot progresses, or the shape is invalidated.
    pub changed: Event,
    pub invalidated: bool,
    /// Set when the snapshot failed: requests get this error.
    pub snapshot_error: Option<super::snapshot::SnapshotFailure>,
    /// Commit LSN of the last transaction this shape has seen (applied or skipped).
    pub last_seen_lsn: u64,
    /// The shape's files; every log write goes here too (buffered; synced by the core).
    pub store: Option<ShapeStore>,
    /// Written to the store since the core last prepared a sync.
    pub dirty: bool,
    /// Last time a request used the shape (for `ELECTRIC_MAX_SHAPES` eviction).
    pub last_used: std::time::Instant,
    /// The last batch framed for live SSE readers, so that every subscriber at the same offset
    /// shares one buffer instead of framing the entries again.
    pub sse_batch: Option<FramedBatch>,
    /// Snapshot chunks appended to the store but not yet handed to the OS (still served from
    /// memory), with where their records will lie.
    unspilled: Vec<(usize, ChunkPos)>,
    /// `snapshot.data`, once a chunk is served from it.
    snapshot_file: Option<Rc<LazyFile>>,
    /// Closed real-log chunks appended to `chunks.data` but not yet handed to the OS.
    unspilled_chunks: Vec<(protocol::offset::LogOffset, ChunkPos, ChunkPos)>,
    /// `chunks.data`, once a chunk is served from it.
    chunk_file: Option<Rc<LazyFile>>,
    /// How much of the shape its owner has published to the other cores (`app::views`);
    /// `None` until its view is introduced there.
    pub published: Option<crate::shapes::log::PublishCursor>,
    /// A subquery shape's views and move state (`moves`); set before its snapshot starts.
    pub sub: Option<super::moves::SubState>,
}

/// Log entries `(after, end]` framed once for a live response.
pub struct FramedBatch {
    pub after: protocol::offset::LogOffset,
    pub end: protocol::offset::LogOffset,
    pub bytes: bytes::Bytes,
}

impl Shape {
    pub fn new(
        handle: String,
        def: Arc<ShapeDef>,
        chunk_threshold: u64,
        store: Option<ShapeStore>,
    ) -> Self {
        Self {
            handle,
            def,
            log: ShapeLog::new(chunk_threshold),
            phase: Phase::Snapshotting {
                buffered: Vec::new(),
            },
            changed: Event::new(),
            invalidated: false,
            snapshot_error: None,
            last_seen_lsn: 0,
            store,
            dirty: false,
            last_used: std::time::Instant::now(),
            sse_batch: None,
            unspilled: Vec::new(),
            snapshot_file: None,
            unspilled_chunks: Vec::new(),
            chunk_file: None,
            published: None,
            sub: None,
        }
    }

    /// A shape recovered from storage: snapshot complete, log as it was durably written.
    pub fn restored(
        handle: String,
        def: Arc<ShapeDef>,
        log: ShapeLog,
        snapshot: PgSnapshot,
        last_txn_lsn: u64,
        store: ShapeStore,
    ) -> Self {
        Self {
            handle,
            def,
            log,
            phase: Phase::Ready {
                snapshot,
                filtering: true,
            },
            changed: Event::new(),
            invalidated: false,
            snapshot_error: None,
            last_seen_lsn: last_txn_lsn,
            store: Some(store),
            dirty: false,
            last_used: std::time::Instant::now(),
            sse_batch: None,
            unspilled: Vec::new(),
            snapshot_file: None,
            unspilled_chunks: Vec::new(),
            chunk_file: None,
            published: None,
            sub: None,
        }
    }

    /// Adds one snapshot row; a chunk it closes is appended to the store. Returns whether a
    /// chunk closed (only then is there anything new to sync).
    ///
    /// The chunk is not written here: the caller hands the write to another thread
    /// ([`Self::take_snapshot_write`], `app::snapshot_writes`) and reports when it is done
    /// ([`Self::snapshot_written`]); until then the chunk is served from memory.
    pub fn push_snapshot_row(&mut self, json: &[u8]) -> Result<bool, StorageError> {
        let Some(chunk) = self.log.push_snapshot_row(json) else {
            return Ok(false);
        };
        self.changed.notify();
        if let Some(store) = self.store.as_mut() {
            let pos = store.append_snapshot_chunk(&chunk)?;
            self.unspilled.push((self.log.snapshot_chunks() - 1, pos));
            self.dirty = true;
        }
        Ok(true)
    }

    /// The snapshot chunks appended to the store since the last write, as one write to run on
    /// another thread (see [`ShapeStore::take_snapshot_write`]).
    pub fn take_snapshot_write(&mut self) -> Result<Option<PendingWrite>, StorageError> {
        match self.store.as_mut() {
            Some(store) => store.take_snapshot_write(),
            None => Ok(None),
        }
    }

    /// Gives a completed write's emptied buffer back to the store for the next chunk's record.
    pub fn recycle_snapshot_buffer(&mut self, buf: Vec<u8>) {
        if let Some(store) = self.store.as_mut() {
            store.recycle_snapshot_buffer(buf);
        }
    }

    /// `snapshot.data` holds everything before `end`: the chunks whose records lie there are
    /// served from the file from now on.
    pub fn snapshot_written(&mut self, end: u64) {
        let Some(store) = self.store.as_ref() else {
            return;
        };
        let file = self
            .snapshot_file
            .get_or_insert_with(|| LazyFile::new(store.snapshot_path()));
        let log = &mut self.log;
        self.unspilled.retain(|&(n, pos)| {
            let written = pos.payload_at() + pos.len <= end;
            if written {
                log.snapshot_chunk_on_disk(n, file, pos);
            }
            !written
        });
    }

    /// At the snapshot's end: hands the last chunk (and any chunk not yet written) to the OS
    /// here and serves them from the file. A failed write (disk full) keeps them in memory.
    fn spill_snapshot(&mut self) {
        let Some(store) = self.store.as_mut() else {
            return;
        };
        if self.unspilled.is_empty() {
            return;
        }
        if let Err(e) = store.flush_snapshot() {
            tracing::warn!(
                "shape {}: snapshot chunks stay in memory for now: {e}",
                self.handle
            );
            return;
        }
        let file = self
            .snapshot_file
            .get_or_insert_with(|| LazyFile::new(store.snapshot_path()));
        for (n, pos) in self.unspilled.drain(..) {
            self.log.snapshot_chunk_on_disk(n, file, pos);
        }
    }

    /// The `chunks.data` file a restored shape already serves from (one descriptor per file).
    pub fn set_chunk_file(&mut self, file: Rc<LazyFile>) {
        self.chunk_file = Some(file);
    }

    /// Hands closed real-log chunks to the OS and serves them from `chunks.data` (as
    /// [`Self::spill_snapshot`] does for the snapshot): the live log's memory is its open chunk.
    fn spill_chunks(&mut self) {
        let Some(store) = self.store.as_mut() else {
            return;
        };
        if self.unspilled_chunks.is_empty() {
            return;
        }
        if let Err(e) = store.flush_chunk_data() {
            tracing::warn!(
                "shape {}: closed chunks stay in memory for now: {e}",
                self.handle
            );
            return;
        }
        let file = self
            .chunk_file
            .get_or_insert_with(|| LazyFile::new(store.chunk_data_path()));
        for (last, pos, index_pos) in self.unspilled_chunks.drain(..) {
            self.log.closed_chunk_on_disk(last, file, pos, index_pos);
        }
    }

    /// Offers a committed transaction that touches the shape's table (a change, a truncate or a
    /// Relation message): the core routes transactions to shapes by table, so this is not
    /// checked again here.
    /// Applies a transaction. `only` lists the indexes of the changes that can affect this
    /// shape (from the core's routing index), ascending; `None` means look at every change.
    pub fn on_txn(
        &mut self,
        txn: &Arc<Txn>,
        cache: &mut EncodeCache,
        only: Option<&[usize]>,
    ) -> Applied {
        if self.invalidated {
            return Applied::Nothing;
        }
        match &mut self.phase {
            Phase::Snapshotting { buffered } => {
                // Bounded by the snapshot duration; the ingest core bounds its own queue. The
                // whole transaction is kept: it is classified when the snapshot is known.
                buffered.push(txn.clone());
                Applied::Nothing
            }
            Phase::Ready { .. } => self.apply(txn, cache, only),
        }
    }

    /// The snapshot's rows are all in the log: append snapshot-end, then classify the
    /// transactions buffered meanwhile. Returns what was appended from the buffer.
    pub fn snapshot_finished(&mut self, snapshot: PgSnapshot) -> Applied {
        let end = protocol::message::snapshot_end(snapshot.xmin, snapshot.xmax, &snapshot.xip);
        let last_chunk = self.log.finish_snapshot(&end);
        if let Some(store) = self.store.as_mut() {
            let record = SnapshotRecord {
                xmin: snapshot.xmin,
                xmax: snapshot.xmax,
                xip: snapshot.xip.clone(),
            };
            match store.finish_snapshot(&last_chunk, record) {
                Ok(pos) => self.unspilled.push((self.log.snapshot_chunks() - 1, pos)),
                Err(e) => {
                    tracing::error!("shape {}: cannot store its snapshot: {e}", self.handle);
                    return Applied::Invalidate("storage error");
                }
            }
            self.dirty = true;
            self.spill_snapshot();
        }
        let buffered = match std::mem::replace(
            &mut self.phase,
            Phase::Ready {
                snapshot,
                filtering: true,
            },
        ) {
            Phase::Snapshotting { buffered } => buffered,
            Phase::Ready { .. } => panic!("snapshot finished twice"),
        };
        let mut total = 0;
        let mut cache = EncodeCache::default();
        for txn in &buffered {
            cache.clear();
            match self.apply(txn, &mut cache, None) {
                Applied::Appended(n) => total += n,
                Applied::Nothing => {}
                inv @ Applied::Invalidate(_) => return inv,
            }
        }
        self.changed.notify();
        if total > 0 {
            Applied::Appended(total)
        } else {
            Applied::Nothing
        }
    }

    fn apply(&mut self, txn: &Txn, cache: &mut EncodeCache, only: Option<&[usize]>) -> Applied {
        let Phase::Ready {
            snapshot,
            filtering,
        } = &mut self.phase
        else {
            unreachable!("apply only in the Ready phase");
        };
        if *filtering {
            if snapshot.visible(txn.xid) {
                return Applied::Nothing;
            }
            if snapshot.after(txn.xid) {
                *filtering = false;
            }
        }
        if txn.commit_lsn <= self.last_seen_lsn {
            // Already applied (a replay after reconnecting): never twice.
            return Applied::Nothing;
        }
        let oid = self.def.table.oid;
        if txn.truncated.contains(&oid) {
            return Applied::Invalidate("truncate");
        }
        if txn.overflowed.contains(&oid) {
            return Applied::Invalidate("a transaction too large to hold changed its table");
        }
        for rel in &txn.relations {
            if rel.oid == oid && !apply::relation_matches(&self.def.table, rel) {
                return Applied::Invalidate("relation changed");
            }
        }
        let mut pending = Vec::new();
        let count = only.map_or(txn.changes.len(), <[usize]>::len);
        for k in 0..count {
            let change = &txn.changes[only.map_or(k, |indexes| indexes[k])];
            if change.relation.oid != oid {
                continue;
            }
            if !apply::relation_matches(&self.def.table, &change.relation) {
                return Applied::Invalidate("relation changed");
            }
            apply::entries_for(&self.def, change, txn.commit_lsn, &mut pending);
        }
        let n = pending.len();
        let mut written = Vec::with_capacity(n);
        let mut chunk_ends = Vec::new();
        for (i, e) in pending.iter().enumerate() {
            let bytes = apply::encode(&self.def, e, txn.xid, i + 1 == n, cache);
            if let Some(end) = self.log.append(e.offset, bytes.clone()) {
                chunk_ends.push(end);
            }
            written.push((e.offset, bytes));
        }
        self.last_seen_lsn = txn.commit_lsn;
        if n > 0
            && self
                .store_entries(written, chunk_ends, txn.commit_lsn)
                .is_err()
        {
            return Applied::Invalidate("storage error");
        }
        if n > 0 {
            self.changed.notify();
            Applied::Appended(n)
        } else {
            Applied::Nothing
        }
    }

    /// Writes entries just appended to the log (one transaction's, or a subquery shape's
    /// events and move-in rows) to the store, with the chunks they closed. The entries are
    /// served from memory already; if they cannot be stored the shape must be invalidated
    /// (409), never served from a log that disagrees with disk.
    pub(crate) fn store_entries(
        &mut self,
        written: Vec<(protocol::offset::LogOffset, bytes::Bytes)>,
        chunk_ends: Vec<protocol::offset::LogOffset>,
        commit_lsn: u64,
    ) -> Result<(), ()> {
        let Some(store) = self.store.as_mut() else {
            return Ok(());
        };
        if let Err(e) = store.append_txn(written, commit_lsn) {
            tracing::error!("shape {}: cannot store a transaction: {e}", self.handle);
            return Err(());
        }
        for end in chunk_ends {
            let (bytes, index) = self
                .log
                .closed_chunk_bytes(end)
                .expect("a chunk closed just now is in memory");
            if let Some((pos, index_pos)) = store.close_chunk(end, &bytes, &index) {
                self.unspilled_chunks.push((end, pos, index_pos));
            }
        }
        self.dirty = true;
        self.spill_chunks();
        Ok(())
    }

    /// Marks the shape invalid and wakes its waiters (they answer 409).
    pub fn invalidate(&mut self) {
        self.invalidated = true;
        self.changed.notify();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_visibility() {
        let s = PgSnapshot::parse("100:105:101,103").unwrap();
        assert!(s.visible(99));
        assert!(!s.visible(101));
        assert!(s.visible(102));
        assert!(!s.visible(103));
        assert!(s.visible(104));
        assert!(!s.visible(105));
        assert!(!s.after(104));
        assert!(s.after(105));
        assert_eq!(PgSnapshot::parse("5:5:").unwrap().xip, Vec::<u64>::new());
        assert!(PgSnapshot::parse("x").is_none());
        // Wraparound: xid8 beyond 2^32 compares on its low 32 bits.
        let w = PgSnapshot::parse("4294967396:4294967400:").unwrap();
        assert!(w.visible(99));
        assert!(!w.visible(104));
    }
}
