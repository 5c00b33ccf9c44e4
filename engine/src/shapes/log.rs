//! A shape's log: the snapshot part (chunks `0_0`, `0_1`, …) and the real part (entries at
//! `(commit LSN, op)` offsets), each entry stored as its final JSON bytes, cut into chunks at the
//! byte threshold so that a response always ends on a reproducible boundary.
//!
//! A closed snapshot chunk is held in memory only until the store has handed it to the OS;
//! from then on it is a range of the shape's `snapshot.data` ([`DiskChunk`]) and responses send
//! it from the page cache (`http::FileRange`, `sendfile`), so memory does not grow with the
//! snapshot. A chunk recovered at start-up is checked against its record checksum the first time
//! it is read; a bad one makes the read fail ([`ReadError`]) and the shape is dropped (409),
//! never served.
//!
//! Closed real-log chunks are one contiguous buffer each, and a response is a few byte ranges of
//! them (`Bytes::slice`: no copy, no re-encoding). The open chunk of the real log keeps its
//! entries as separate buffers until it closes, then they are joined once.
//!
//! On disk a closed chunk's record holds its entries in brackets (`record::encode_chunk`), so a
//! response for a whole chunk is the record's payload as it is: one file range, one `sendfile`
//! (see [`Slice::into_body`]). Snapshot chunks written before records had brackets are served
//! with brackets from memory; which kind a recovered chunk is, its first read tells.

use crate::http::{FileRange, Part};
use crate::storage::chunk_cache::CachedBytes;
use crate::storage::fd_cache::LazyFile;
use crate::storage::record::{self, ChunkPos, Decoded, KIND_SNAPSHOT_CHUNK};
use crate::storage::RecoveredChunk;
use bytes::Bytes;
use protocol::offset::LogOffset;
use std::cell::Cell;
use std::rc::Rc;

/// Where a request lands and what to send.
#[derive(Debug)]
pub struct Slice {
    /// Comma-separated JSON entries (no brackets), as byte ranges to write in order.
    pub parts: Vec<Part>,
    /// The `electric-offset` of the response: the chunk end.
    pub chunk_end: LogOffset,
    /// Number of entries in `parts`.
    pub entries: usize,
    /// Whether the file holds `[` right before / `]` right after the single file part.
    file_brackets: (bool, bool),
}

impl Slice {
    fn new(parts: Vec<Part>, chunk_end: LogOffset, entries: usize) -> Self {
        Self {
            parts,
            chunk_end,
            entries,
            file_brackets: (false, false),
        }
    }

    /// Nothing after `chunk_end`: the answer at the log end.
    pub fn empty(chunk_end: LogOffset) -> Self {
        Self::new(Vec::new(), chunk_end, 0)
    }

    /// A whole closed chunk served from its record's payload at `payload_at` in `file`
    /// (see [`PublishedChunk`]).
    pub fn whole_chunk(
        file: std::sync::Arc<std::fs::File>,
        payload_at: u64,
        len: u64,
        framed: bool,
        chunk_end: LogOffset,
    ) -> Self {
        let (offset, len) = if framed {
            assert!(len >= 2, "a framed chunk payload holds its brackets");
            (payload_at + 1, len - 2)
        } else {
            (payload_at, len)
        };
        if len == 0 {
            return Self::new(Vec::new(), chunk_end, 0);
        }
        Self {
            file_brackets: (framed, framed),
            ..Self::new(
                vec![Part::File(FileRange { file, offset, len })],
                chunk_end,
                1,
            )
        }
    }

    /// The response body: a JSON array of the entries, then `tail` (a control message) if
    /// given. When the file holds the brackets right next to the range they are sent with it:
    /// a whole chunk is then a single file range (one `sendfile`, nothing written after it),
    /// and a request from inside a chunk ends with the file's `]`.
    pub fn into_body(self, tail: Option<Bytes>) -> Vec<Part> {
        let mut parts = self.parts;
        let (mut open, mut close) = match parts.as_slice() {
            [Part::File(_)] => self.file_brackets,
            _ => (false, false),
        };
        // The tail goes before the `]`.
        close &= tail.is_none();
        if let [Part::File(range)] = parts.as_mut_slice() {
            if open {
                range.offset -= 1;
                range.len += 1;
            }
            if close {
                range.len += 1;
            }
        } else {
            (open, close) = (false, false);
        }
        let mut body = Vec::with_capacity(parts.len() + 4);
        if !open {
            body.push(Part::Mem(Bytes::from_static(b"[")));
        }
        body.append(&mut parts);
        if let Some(tail) = tail {
            if self.entries > 0 {
                body.push(Part::Mem(Bytes::from_static(b",")));
            }
            body.push(Part::Mem(tail));
        }
        if !close {
            body.push(Part::Mem(Bytes::from_static(b"]")));
        }
        body
    }
}

/// A closed chunk whose checked record lies in one of the shape's files, as the shape's owner
/// publishes it to the other cores (`app::views`): those serve requests for the whole chunk
/// from the file themselves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublishedChunk {
    /// The offset a request names to get exactly this chunk (`None`: `-1`).
    pub after: Option<LogOffset>,
    /// The chunk end (`electric-offset` of its response).
    pub end: LogOffset,
    /// In `snapshot.data` (else `chunks.data`).
    pub in_snapshot: bool,
    pub payload_at: u64,
    pub len: u64,
    /// The payload holds its brackets (`record::encode_chunk`).
    pub framed: bool,
}

/// How far a log's chunks have been published: chunks before these counts were.
#[derive(Clone, Copy, Debug, Default)]
pub struct PublishCursor {
    pub snapshot: usize,
    pub closed: usize,
}

/// A snapshot chunk that cannot be served: its file is unreadable or its bytes are not the
/// record that was written. The shape must be dropped.
#[derive(Debug, thiserror::Error)]
#[error("chunk {chunk} of {path}: {what}")]
pub struct ReadError {
    pub chunk: usize,
    pub path: String,
    pub what: String,
}

/// A closed snapshot chunk in the shape's snapshot file.
#[derive(Debug)]
pub struct DiskChunk {
    file: Rc<LazyFile>,
    pos: ChunkPos,
    /// The bytes, while the memory budget keeps them (`storage::chunk_cache`).
    cached: Rc<CachedBytes>,
    /// Whether the record's checksum has been verified (always for chunks this process wrote),
    /// and so whether its payload has brackets.
    checked: Cell<Checked>,
}

/// What the first read of a recovered snapshot chunk found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checked {
    /// Not read yet (recovery reads headers only).
    No,
    /// Verified; the payload is `[` entries `]` (`record::encode_chunk`).
    Framed,
    /// Verified; the payload is the bare entries (written before records had brackets).
    Bare,
}

#[derive(Debug)]
enum SnapshotChunk {
    Mem(Bytes),
    Disk(DiskChunk),
}

struct ClosedChunk {
    first: LogOffset,
    last: LogOffset,
    entries: u32,
    /// Entries joined with `,`: in memory until they are in `chunks.data`.
    body: ChunkBody,
    /// Where each entry starts in the body, for requests from inside the chunk.
    index: EntryIndex,
    /// Whether the body's record checksum has been verified (always for chunks this process
    /// closed; a recovered chunk is checked when it is first read from disk).
    verified: Cell<bool>,
}

enum EntryIndex {
    /// `(offset, start)` of each entry, until the chunk is on disk.
    Mem(Vec<(LogOffset, u32)>),
    /// A CHUNK_INDEX record in `chunks.data`, read when a request lands inside the chunk and
    /// kept while the memory budget allows (per-entry offsets never stay in memory for good).
    Disk(Rc<LazyFile>, ChunkPos, Rc<CachedBytes>),
}

enum ChunkBody {
    Mem(Bytes),
    /// A `chunks.data` record (checked when this process wrote it, or by recovery), and its
    /// bytes while the memory budget keeps them.
    Disk(Rc<LazyFile>, ChunkPos, Rc<CachedBytes>),
}

pub struct ShapeLog {
    threshold: u64,
    snapshot_chunks: Vec<SnapshotChunk>,
    snapshot_open: Vec<u8>,
    snapshot_open_bytes: u64,
    snapshot_done: bool,
    closed: Vec<ClosedChunk>,
    open: Vec<(LogOffset, Bytes)>,
    open_bytes: u64,
    bytes_total: u64,
    /// How far the real log may be served (`None`: all of it). A subquery shape serves only
    /// what is durable together with its views (`app::durability`), so after a crash the
    /// recovered log holds everything a client saw.
    cap: Option<Cap>,
    /// With a cap: the LSN through which the served log holds every transaction (the
    /// `global_last_seen_lsn` its answers may claim).
    served_lsn: u64,
}

/// The last real-log offset a capped log serves (`Cap(None)`: none yet).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cap(pub Option<LogOffset>);

impl Cap {
    fn admits(self, offset: LogOffset) -> bool {
        self.0.is_some_and(|c| offset <= c)
    }
}

impl ShapeLog {
    pub fn new(threshold: u64) -> Self {
        assert!(threshold > 0);
        Self {
            threshold,
            snapshot_chunks: Vec::new(),
            snapshot_open: Vec::new(),
            snapshot_open_bytes: 0,
            snapshot_done: false,
            closed: Vec::new(),
            open: Vec::new(),
            open_bytes: 0,
            bytes_total: 0,
            cap: None,
            served_lsn: 0,
        }
    }

    /// Serves the real log only up to `cap` from now on (see [`Cap`]); it only grows.
    pub fn set_cap(&mut self, cap: Cap) {
        if let (Some(Cap(Some(old))), Cap(new)) = (self.cap, cap) {
            assert!(new.is_some_and(|n| n >= old), "a log's cap only grows");
        }
        if let (Some(c), Some(last)) = (cap.0, self.last_real_offset()) {
            assert!(c <= last, "a cap names an entry of the log");
        }
        self.cap = Some(cap);
    }

    pub fn cap(&self) -> Option<Cap> {
        self.cap
    }

    /// A capped log serves every transaction through `lsn` (it only grows).
    pub fn set_served_lsn(&mut self, lsn: u64) {
        self.served_lsn = self.served_lsn.max(lsn);
    }

    /// The LSN through which a capped log serves every transaction; `None` when not capped.
    pub fn served_lsn(&self) -> Option<u64> {
        self.cap.map(|_| self.served_lsn)
    }

    pub fn bytes_total(&self) -> u64 {
        self.bytes_total
    }

    /// Appends one snapshot row; closes the chunk when the running size reaches the threshold
    /// and returns the closed chunk's bytes (to persist them).
    pub fn push_snapshot_row(&mut self, json: &[u8]) -> Option<Bytes> {
        assert!(!self.snapshot_done, "snapshot rows after snapshot-end");
        if !self.snapshot_open.is_empty() {
            self.snapshot_open.push(b',');
        }
        self.snapshot_open.extend_from_slice(json);
        self.snapshot_open_bytes += json.len() as u64 + 1;
        self.bytes_total += json.len() as u64 + 1;
        if self.snapshot_open_bytes >= self.threshold {
            let buf = Bytes::from(std::mem::take(&mut self.snapshot_open));
            self.snapshot_chunks.push(SnapshotChunk::Mem(buf.clone()));
            self.snapshot_open_bytes = 0;
            return Some(buf);
        }
        None
    }

    /// Appends the snapshot-end control message and closes the snapshot part; returns the last
    /// chunk's bytes.
    pub fn finish_snapshot(&mut self, snapshot_end: &[u8]) -> Bytes {
        assert!(!self.snapshot_done);
        if !self.snapshot_open.is_empty() {
            self.snapshot_open.push(b',');
        }
        self.snapshot_open.extend_from_slice(snapshot_end);
        let buf = Bytes::from(std::mem::take(&mut self.snapshot_open));
        self.snapshot_chunks.push(SnapshotChunk::Mem(buf.clone()));
        self.snapshot_done = true;
        buf
    }

    /// Rebuilds a log from storage: the snapshot chunks in `snapshot_file` and the closed
    /// real-log chunks in `chunk_file` (each checked against its record when first read), and
    /// the entries recovery holds in memory (`recover_shape_lazy`): those of the open chunk
    /// (entries after the last closed chunk) and of closed chunks without records (over the
    /// record limit).
    pub fn restore(
        threshold: u64,
        snapshot_file: &Rc<LazyFile>,
        snapshot_chunks: &[ChunkPos],
        chunk_file: &Rc<LazyFile>,
        chunks: &[RecoveredChunk],
        entries: Vec<(LogOffset, Bytes)>,
    ) -> Self {
        let mut log = Self::new(threshold);
        log.bytes_total = snapshot_chunks.iter().map(|c| c.len).sum();
        log.snapshot_chunks = snapshot_chunks
            .iter()
            .map(|pos| {
                SnapshotChunk::Disk(DiskChunk {
                    file: snapshot_file.clone(),
                    pos: *pos,
                    cached: CachedBytes::empty(),
                    checked: Cell::new(Checked::No),
                })
            })
            .collect();
        log.snapshot_done = true;
        let mut entries = entries.into_iter().peekable();
        for c in chunks {
            let Some((data, index)) = c.records else {
                while let Some((offset, json)) = entries.next_if(|(o, _)| *o <= c.last) {
                    log.bytes_total += json.len() as u64;
                    log.open_bytes += json.len() as u64;
                    log.open.push((offset, Bytes::copy_from_slice(&json)));
                }
                assert_eq!(
                    log.open.last().map(|(o, _)| *o),
                    Some(c.last),
                    "a chunk without records has its entries in memory"
                );
                log.close_open_chunk();
                continue;
            };
            assert!(
                entries.peek().is_none_or(|(o, _)| *o > c.last),
                "entries of chunk {} are on disk, not in memory (recover_shape_lazy)",
                c.last
            );
            assert_eq!(
                index.len,
                u64::from(c.entries) * record::CHUNK_INDEX_ENTRY_LEN as u64,
                "chunk {}: index of another size",
                c.last
            );
            log.bytes_total += data.len;
            log.closed.push(ClosedChunk {
                first: c.first,
                last: c.last,
                entries: c.entries,
                body: ChunkBody::Disk(chunk_file.clone(), data, CachedBytes::empty()),
                index: EntryIndex::Disk(chunk_file.clone(), index, CachedBytes::empty()),
                verified: Cell::new(false),
            });
        }
        // The entries are slices of segments read by recovery: own the open chunk's bytes so
        // those buffers can go.
        for (offset, json) in entries {
            log.bytes_total += json.len() as u64;
            log.open_bytes += json.len() as u64;
            log.open.push((offset, Bytes::copy_from_slice(&json)));
        }
        log
    }

    pub fn snapshot_done(&self) -> bool {
        self.snapshot_done
    }

    /// Number of closed snapshot chunks (readable now).
    pub fn snapshot_chunks(&self) -> usize {
        self.snapshot_chunks.len()
    }

    /// Snapshot chunk `n` has been handed to the OS at `pos` in `file`: serve it from there and
    /// let its memory go.
    pub fn snapshot_chunk_on_disk(&mut self, n: usize, file: &Rc<LazyFile>, pos: ChunkPos) {
        let chunk = &mut self.snapshot_chunks[n];
        let cached = match chunk {
            SnapshotChunk::Mem(bytes) => {
                assert_eq!(
                    record::chunk_payload_len(bytes.len()) as u64,
                    pos.len,
                    "chunk {n} moved to disk with another length"
                );
                CachedBytes::offer(bytes.clone())
            }
            SnapshotChunk::Disk(d) => {
                assert_eq!(d.pos.len, pos.len, "chunk {n} moved with another length");
                d.cached.clone()
            }
        };
        *chunk = SnapshotChunk::Disk(DiskChunk {
            file: file.clone(),
            pos,
            cached,
            checked: Cell::new(Checked::Framed),
        });
    }

    /// The bytes of the closed real-log chunk ending at `last` and its CHUNK_INDEX payload,
    /// while they are in memory.
    pub fn closed_chunk_bytes(&self, last: LogOffset) -> Option<(Bytes, Vec<u8>)> {
        let i = self.closed.binary_search_by(|c| c.last.cmp(&last)).ok()?;
        match (&self.closed[i].body, &self.closed[i].index) {
            (ChunkBody::Mem(b), EntryIndex::Mem(index)) => {
                Some((b.clone(), record::encode_chunk_index(index.iter().copied())))
            }
            _ => None,
        }
    }

    /// The closed real-log chunk ending at `last` is in `file`: its bytes at `pos`, its entry
    /// index at `index_pos`. Serve it from there and let its memory go.
    pub fn closed_chunk_on_disk(
        &mut self,
        last: LogOffset,
        file: &Rc<LazyFile>,
        pos: ChunkPos,
        index_pos: ChunkPos,
    ) {
        let i = self
            .closed
            .binary_search_by(|c| c.last.cmp(&last))
            .unwrap_or_else(|_| panic!("no closed chunk ends at {last}"));
        let chunk = &mut self.closed[i];
        let payload_len = match &chunk.body {
            ChunkBody::Mem(bytes) => record::chunk_payload_len(bytes.len()) as u64,
            ChunkBody::Disk(_, pos, _) => pos.len,
        };
        assert_eq!(
            payload_len, pos.len,
            "chunk {last} moved to disk with another length"
        );
        let cached = match &chunk.body {
            ChunkBody::Mem(bytes) => CachedBytes::offer(bytes.clone()),
            ChunkBody::Disk(_, _, cached) => cached.clone(),
        };
        chunk.body = ChunkBody::Disk(file.clone(), pos, cached);
        assert_eq!(
            index_pos.len,
            u64::from(chunk.entries) * record::CHUNK_INDEX_ENTRY_LEN as u64,
            "chunk {last}: index of another size"
        );
        chunk.index = EntryIndex::Disk(file.clone(), index_pos, CachedBytes::empty());
    }

    /// Closed real-log chunks still held in memory.
    pub fn closed_chunks_in_memory(&self) -> usize {
        self.closed
            .iter()
            .filter(|c| matches!(c.body, ChunkBody::Mem(_)))
            .count()
    }

    /// Closed snapshot chunks still held in memory (not yet handed to the OS).
    pub fn snapshot_chunks_in_memory(&self) -> usize {
        self.snapshot_chunks
            .iter()
            .filter(|c| matches!(c, SnapshotChunk::Mem(_)))
            .count()
    }

    /// Appends a real log entry. Offsets must increase strictly. Returns the entry's offset
    /// when it closed a chunk (a boundary to persist).
    pub fn append(&mut self, offset: LogOffset, json: Bytes) -> Option<LogOffset> {
        assert!(
            self.snapshot_done,
            "log entries before the snapshot finished"
        );
        if let Some(last) = self.last_real_offset() {
            assert!(
                offset > last,
                "log offsets must increase: {offset} after {last}"
            );
        }
        assert!(offset.tx > 0, "real log entries have a commit LSN");
        self.open_bytes += json.len() as u64;
        self.bytes_total += json.len() as u64;
        self.open.push((offset, json));
        if self.open_bytes >= self.threshold {
            self.close_open_chunk();
            return Some(offset);
        }
        None
    }

    fn close_open_chunk(&mut self) {
        let entries = std::mem::take(&mut self.open);
        self.open_bytes = 0;
        let len: usize = entries.iter().map(|(_, b)| b.len() + 1).sum();
        let mut buf = Vec::with_capacity(len);
        let mut index = Vec::with_capacity(entries.len());
        for (off, b) in &entries {
            if !buf.is_empty() {
                buf.push(b',');
            }
            index.push((*off, buf.len() as u32));
            buf.extend_from_slice(b);
        }
        let (first, last) = match (entries.first(), entries.last()) {
            (Some(f), Some(l)) => (f.0, l.0),
            _ => panic!("closing an empty chunk"),
        };
        self.closed.push(ClosedChunk {
            first,
            last,
            entries: u32::try_from(entries.len()).expect("entries per chunk fit u32"),
            body: ChunkBody::Mem(Bytes::from(buf)),
            index: EntryIndex::Mem(index),
            verified: Cell::new(true),
        });
    }

    /// The last real entry appended (served or not: see [`Cap`]).
    pub fn last_real_offset(&self) -> Option<LogOffset> {
        self.open
            .last()
            .map(|(o, _)| *o)
            .or_else(|| self.closed.last().map(|c| c.last))
    }

    /// The last real entry served.
    fn last_served_offset(&self) -> Option<LogOffset> {
        match self.cap {
            None => self.last_real_offset(),
            Some(Cap(cap)) => cap.min(self.last_real_offset()),
        }
    }

    /// The newest offset of the log as served (§2.5): the last real entry, else the last
    /// snapshot chunk, else `0_inf` while the snapshot is still unknown.
    pub fn last_offset(&self) -> LogOffset {
        if let Some(o) = self.last_served_offset() {
            return o;
        }
        if self.snapshot_done {
            protocol::offset::snapshot_chunk(self.snapshot_chunks.len() as u64 - 1)
        } else {
            protocol::offset::LAST_BEFORE_REAL_LOG
        }
    }

    /// The chunks past `cursor` that may be served from their files by any core: in each part
    /// of the log (snapshot, real), those on disk with a checked record, up to the first that is
    /// not (still in memory, or recovered and not read yet: it is published once the owner has
    /// checked it). Advances `cursor` past what it returns.
    pub fn publishable(&self, cursor: &mut PublishCursor, out: &mut Vec<PublishedChunk>) {
        if !self.snapshot_done {
            return;
        }
        for n in cursor.snapshot..self.snapshot_chunks.len() {
            let SnapshotChunk::Disk(d) = &self.snapshot_chunks[n] else {
                break;
            };
            let framed = match d.checked.get() {
                Checked::No => break,
                Checked::Framed => true,
                Checked::Bare => false,
            };
            out.push(PublishedChunk {
                after: n
                    .checked_sub(1)
                    .map(|p| protocol::offset::snapshot_chunk(p as u64)),
                end: protocol::offset::snapshot_chunk(n as u64),
                in_snapshot: true,
                payload_at: d.pos.payload_at(),
                len: d.pos.len,
                framed,
            });
            cursor.snapshot = n + 1;
        }
        let snapshot_end = protocol::offset::snapshot_chunk(self.snapshot_chunks.len() as u64 - 1);
        for ci in cursor.closed..self.closed.len() {
            let c = &self.closed[ci];
            let ChunkBody::Disk(_, pos, _) = &c.body else {
                break;
            };
            if !c.verified.get() || self.cap.is_some_and(|cap| !cap.admits(c.last)) {
                break;
            }
            out.push(PublishedChunk {
                after: Some(
                    ci.checked_sub(1)
                        .map_or(snapshot_end, |p| self.closed[p].last),
                ),
                end: c.last,
                in_snapshot: false,
                payload_at: pos.payload_at(),
                len: pos.len,
                framed: true,
            });
            cursor.closed = ci + 1;
        }
    }

    /// Reads what a request at `after` gets (entries in `(after, chunk_end]`), `Ok(None)` when
    /// the snapshot chunk it needs is not written yet. `after` is `None` for `offset=-1`.
    pub fn read(&self, after: Option<LogOffset>) -> Result<Option<Slice>, ReadError> {
        let snapshot_chunk = match after {
            None => Some(0),
            Some(o) if o.tx == 0 && !o.is_op_inf() => {
                let next = o.op + 1;
                if !self.snapshot_done || next < self.snapshot_chunks.len() as u64 {
                    Some(next)
                } else {
                    None
                }
            }
            Some(_) => None,
        };
        if let Some(n) = snapshot_chunk {
            let Some(chunk) = self.snapshot_chunks.get(n as usize) else {
                return Ok(None);
            };
            let mut file_brackets = (false, false);
            let parts = match chunk {
                SnapshotChunk::Mem(b) if b.is_empty() => Vec::new(),
                SnapshotChunk::Mem(b) => vec![Part::Mem(b.clone())],
                SnapshotChunk::Disk(d) => match d.cached.get() {
                    Some(bytes) if bytes.is_empty() => Vec::new(),
                    Some(bytes) => vec![Part::Mem(bytes)],
                    None => {
                        let (range, framed) = open_chunk(n as usize, d)?;
                        file_brackets = (framed, framed);
                        if range.len == 0 {
                            Vec::new()
                        } else {
                            vec![Part::File(range)]
                        }
                    }
                },
            };
            let entries = usize::from(!parts.is_empty());
            return Ok(Some(Slice {
                file_brackets,
                ..Slice::new(parts, protocol::offset::snapshot_chunk(n), entries)
            }));
        }
        self.read_real(after.expect("-1 is handled above"))
    }

    fn read_real(&self, after: LogOffset) -> Result<Option<Slice>, ReadError> {
        if !self.snapshot_done {
            return Ok(None);
        }
        if self
            .cap
            .is_some_and(|Cap(cap)| cap.is_none_or(|c| c <= after))
        {
            // Nothing served after `after` yet.
            return Ok(Some(Slice::empty(self.last_offset())));
        }
        // First closed chunk holding an entry after `after`.
        let ci = self.closed.partition_point(|c| c.last <= after);
        if let Some(c) = self.closed.get(ci) {
            let slice = self.read_closed(ci, c, after)?;
            return match self.cap {
                Some(Cap(Some(cap))) if cap < c.last => self.cut_at(ci, c, slice, after, cap),
                _ => Ok(Some(slice)),
            };
        }
        let i = self.open.partition_point(|(o, _)| *o <= after);
        let end = match self.cap {
            None => self.open.len(),
            Some(cap) => self.open.partition_point(|(o, _)| cap.admits(*o)),
        };
        let mut parts = Vec::with_capacity(end.saturating_sub(i) * 2);
        for (_, b) in &self.open[i..end.max(i)] {
            if !parts.is_empty() {
                parts.push(Part::Mem(Bytes::from_static(b",")));
            }
            parts.push(Part::Mem(b.clone()));
        }
        // The open chunk ends at the log end (also for requests beyond it: out of bounds).
        Ok(Some(Slice::new(
            parts,
            self.last_offset(),
            end.saturating_sub(i),
        )))
    }

    /// `slice` (entries of closed chunk `ci` after `after`) without its entries after `cap`,
    /// which lies inside the chunk, after `after`.
    fn cut_at(
        &self,
        ci: usize,
        c: &ClosedChunk,
        mut slice: Slice,
        after: LogOffset,
        cap: LogOffset,
    ) -> Result<Option<Slice>, ReadError> {
        let (first, start) = if after < c.first {
            (0, 0)
        } else {
            entry_after(ci, c, after)?
        };
        let (kept_to, end) = entry_after(ci, c, cap)?;
        // Bytes of the kept entries from the slice's first one, without the `,` before the
        // first entry cut off.
        let keep = u64::from(end - start - 1);
        let [part] = slice.parts.as_mut_slice() else {
            unreachable!("a closed chunk's slice is one part");
        };
        match part {
            Part::Mem(b) => *b = b.slice(..keep as usize),
            Part::File(range) => range.len = keep,
        }
        slice.file_brackets.1 = false;
        slice.entries = kept_to - first;
        slice.chunk_end = cap;
        Ok(Some(slice))
    }

    /// Entries of closed chunk `ci` after `after` (which is before the chunk's end).
    fn read_closed(
        &self,
        ci: usize,
        c: &ClosedChunk,
        after: LogOffset,
    ) -> Result<Slice, ReadError> {
        let (i, start) = if after < c.first {
            (0, 0)
        } else {
            entry_after(ci, c, after)?
        };
        let mut file_brackets = (false, false);
        let part = match &c.body {
            ChunkBody::Mem(b) => Part::Mem(b.slice(start as usize..)),
            ChunkBody::Disk(_, _, cached) if cached.is_cached() => {
                let bytes = cached.get().expect("checked above");
                Part::Mem(bytes.slice(start as usize..))
            }
            ChunkBody::Disk(file, pos, cached) if !c.verified.get() => {
                // First read of a recovered chunk: check the whole record, and keep its
                // entries (the payload without its brackets) under the memory budget.
                let fail = |what: String| ReadError {
                    chunk: ci,
                    path: file.path().display().to_string(),
                    what,
                };
                let payload =
                    read_record(file, *pos, record::KIND_CHUNK_DATA, c.last).map_err(fail)?;
                let framed = payload.len() >= 2
                    && payload.first() == Some(&b'[')
                    && payload.last() == Some(&b']');
                if !framed {
                    return Err(fail("chunk record without its brackets".into()));
                }
                let bytes = payload.slice(1..payload.len() - 1);
                c.verified.set(true);
                cached.fill(bytes.clone());
                Part::Mem(bytes.slice(start as usize..))
            }
            ChunkBody::Disk(file, pos, _) => {
                let file = match file.get() {
                    Ok(f) => f,
                    Err(e) => {
                        return Err(ReadError {
                            chunk: ci,
                            path: file.path().display().to_string(),
                            what: format!("open: {e}"),
                        })
                    }
                };
                // The payload is `[` entries `]`; `start` counts from the first entry.
                file_brackets = (start == 0, true);
                Part::File(FileRange {
                    file,
                    offset: pos.payload_at() + 1 + u64::from(start),
                    len: pos.len - 2 - u64::from(start),
                })
            }
        };
        Ok(Slice {
            file_brackets,
            ..Slice::new(vec![part], c.last, c.entries as usize - i)
        })
    }
}

/// In closed chunk `ci`: the position of the first entry after `after` and its start.
fn entry_after(ci: usize, c: &ClosedChunk, after: LogOffset) -> Result<(usize, u32), ReadError> {
    match &c.index {
        EntryIndex::Mem(index) => {
            let i = index.partition_point(|(o, _)| *o <= after);
            Ok((i, index[i].1))
        }
        EntryIndex::Disk(file, pos, cached) => {
            let fail = |what: String| ReadError {
                chunk: ci,
                path: file.path().display().to_string(),
                what,
            };
            let payload = match cached.get() {
                Some(bytes) => bytes,
                None => {
                    let bytes =
                        read_record(file, *pos, record::KIND_CHUNK_INDEX, c.last).map_err(fail)?;
                    // Offered to the budget: the next request inside this chunk (a live
                    // client after the close, typically) finds it in memory.
                    cached.fill(bytes.clone());
                    bytes
                }
            };
            record::chunk_index_after(&payload, after)
                .ok_or_else(|| fail("entry index does not cover the chunk".into()))
        }
    }
}

/// Reads and checks one record of `file` at `pos`: its kind and offset must be the expected
/// ones; returns its payload.
fn read_record(
    file: &Rc<LazyFile>,
    pos: ChunkPos,
    kind: u8,
    offset: LogOffset,
) -> Result<Bytes, String> {
    let f = file.get().map_err(|e| format!("open: {e}"))?;
    let len = usize::try_from(pos.len).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; record::encoded_len(len)];
    std::os::unix::fs::FileExt::read_exact_at(&*f, &mut buf, pos.record_at)
        .map_err(|e| format!("read: {e}"))?;
    match record::decode(&buf, 0) {
        Decoded::Record(r, end)
            if r.kind == kind && LogOffset::new(r.tx, r.op) == offset && end == buf.len() =>
        {
            Ok(Bytes::from(buf).slice(record::HEADER_LEN..))
        }
        Decoded::Record(..) => Err("not the record that was written".into()),
        Decoded::Truncated => Err("record truncated".into()),
        Decoded::Bad(why) => Err(why.into()),
    }
}

/// The file range of a snapshot chunk's entries on disk, verified against its record on first
/// use, and whether the record holds them in brackets.
fn open_chunk(n: usize, d: &DiskChunk) -> Result<(FileRange, bool), ReadError> {
    let fail = |what: String| ReadError {
        chunk: n,
        path: d.file.path().display().to_string(),
        what,
    };
    let file = d.file.get().map_err(|e| fail(format!("open: {e}")))?;
    if d.checked.get() == Checked::No {
        let len = usize::try_from(d.pos.len).map_err(|e| fail(e.to_string()))?;
        let mut buf = vec![0u8; record::encoded_len(len)];
        std::os::unix::fs::FileExt::read_exact_at(&*file, &mut buf, d.pos.record_at)
            .map_err(|e| fail(format!("read: {e}")))?;
        let checked = match record::decode(&buf, 0) {
            Decoded::Record(r, end)
                if r.kind == KIND_SNAPSHOT_CHUNK
                    && r.tx == 0
                    && r.op == n as u64
                    && end == buf.len() =>
            {
                // Entries are JSON objects, so bare entries never start with `[`.
                match r.payload {
                    [b'[', .., b']'] => Checked::Framed,
                    [b'[', ..] => return Err(fail("unterminated chunk array".into())),
                    _ => Checked::Bare,
                }
            }
            Decoded::Record(..) => return Err(fail("not the record that was written".into())),
            Decoded::Truncated => return Err(fail("record truncated".into())),
            Decoded::Bad(why) => return Err(fail(why.into())),
        };
        d.checked.set(checked);
    }
    let range = match d.checked.get() {
        Checked::Bare => FileRange {
            file,
            offset: d.pos.payload_at(),
            len: d.pos.len,
        },
        _ => FileRange {
            file,
            offset: d.pos.payload_at() + 1,
            len: d.pos.len.saturating_sub(2),
        },
    };
    Ok((range, d.checked.get() != Checked::Bare))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn off(tx: u64, op: u64) -> LogOffset {
        LogOffset::new(tx, op)
    }

    fn body(s: &Slice) -> String {
        let mut v = Vec::new();
        for p in &s.parts {
            v.extend_from_slice(&p.to_bytes().expect("part bytes"));
        }
        String::from_utf8(v).unwrap()
    }

    fn read(log: &ShapeLog, at: Option<LogOffset>) -> Slice {
        log.read(at).expect("readable").expect("written")
    }

    /// The bytes a response body made of `parts` carries.
    fn wire(parts: &[Part]) -> String {
        let mut v = Vec::new();
        for p in parts {
            v.extend_from_slice(&p.to_bytes().expect("part bytes"));
        }
        String::from_utf8(v).unwrap()
    }

    /// A `snapshot.data` with these chunks, as the store writes it; their positions.
    fn snapshot_file(name: &str, chunks: &[&[u8]]) -> (Rc<LazyFile>, Vec<ChunkPos>) {
        snapshot_file_as(name, chunks, true)
    }

    /// As [`snapshot_file`]; `framed == false` writes bare entries, as records were written
    /// before they had brackets.
    fn snapshot_file_as(
        name: &str,
        chunks: &[&[u8]],
        framed: bool,
    ) -> (Rc<LazyFile>, Vec<ChunkPos>) {
        let dir = std::env::temp_dir().join(format!("ampere-log-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut buf = Vec::new();
        let mut positions = Vec::new();
        for (n, c) in chunks.iter().enumerate() {
            let record_at = buf.len() as u64;
            let len = if framed {
                record::encode_chunk(&mut buf, KIND_SNAPSHOT_CHUNK, 0, n as u64, c);
                record::chunk_payload_len(c.len())
            } else {
                record::encode(&mut buf, KIND_SNAPSHOT_CHUNK, 0, n as u64, c);
                c.len()
            };
            positions.push(ChunkPos {
                record_at,
                len: len as u64,
            });
        }
        let path = dir.join("snapshot.data");
        std::fs::write(&path, buf).unwrap();
        (LazyFile::new(path), positions)
    }

    #[test]
    fn snapshot_chunks_then_real_log() {
        let mut log = ShapeLog::new(10);
        assert!(log.read(None).unwrap().is_none(), "chunk 0 not written yet");
        log.push_snapshot_row(b"{\"a\":1}"); // 8 bytes: chunk stays open
        log.push_snapshot_row(b"{\"a\":2}"); // 16 >= 10: closes chunk 0
        log.push_snapshot_row(b"{\"a\":3}");
        let last = log.finish_snapshot(b"{\"end\":1}");
        assert_eq!(&last[..], b"{\"a\":3},{\"end\":1}");
        assert_eq!(log.snapshot_chunks(), 2);
        let s0 = read(&log, None);
        assert_eq!(body(&s0), "{\"a\":1},{\"a\":2}");
        assert_eq!(s0.chunk_end, protocol::offset::snapshot_chunk(0));
        let s1 = read(&log, Some(protocol::offset::snapshot_chunk(0)));
        assert_eq!(body(&s1), "{\"a\":3},{\"end\":1}");
        assert_eq!(log.last_offset(), protocol::offset::snapshot_chunk(1));
        // Past the last snapshot chunk with an empty real log: nothing, up to the log end.
        let s2 = read(&log, Some(protocol::offset::snapshot_chunk(1)));
        assert_eq!(s2.entries, 0);
        assert_eq!(s2.chunk_end, protocol::offset::snapshot_chunk(1));

        assert_eq!(
            log.append(off(100, 0), Bytes::from_static(b"{\"x\":1}")),
            None
        );
        // 14 >= 10: closes the chunk.
        assert_eq!(
            log.append(off(100, 2), Bytes::from_static(b"{\"x\":2}")),
            Some(off(100, 2))
        );
        log.append(off(200, 0), Bytes::from_static(b"{\"x\":3}"));
        // A restored log serves the same bytes at the same offsets, the snapshot from its file.
        let (file, positions) = snapshot_file(
            "restore",
            &[b"{\"a\":1},{\"a\":2}", b"{\"a\":3},{\"end\":1}"],
        );
        // A closed chunk over the record limit comes back from the entries in memory.
        let chunks = [RecoveredChunk {
            first: off(100, 0),
            last: off(100, 2),
            entries: 2,
            records: None,
        }];
        let restored = ShapeLog::restore(
            10,
            &file,
            &positions,
            &LazyFile::new(file.path().with_file_name("chunks.data")),
            &chunks,
            vec![
                (off(100, 0), Bytes::from_static(b"{\"x\":1}")),
                (off(100, 2), Bytes::from_static(b"{\"x\":2}")),
                (off(200, 0), Bytes::from_static(b"{\"x\":3}")),
            ],
        );
        assert!(matches!(read(&restored, None).parts[0], Part::File(_)));
        for at in [
            None,
            Some(protocol::offset::snapshot_chunk(0)),
            Some(off(100, 0)),
            Some(off(100, 2)),
        ] {
            let (a, b) = (read(&log, at), read(&restored, at));
            assert_eq!(body(&a), body(&b));
            assert_eq!(a.chunk_end, b.chunk_end);
        }
        let r = read(&log, Some(protocol::offset::snapshot_chunk(1)));
        assert_eq!(body(&r), "{\"x\":1},{\"x\":2}");
        assert_eq!(r.chunk_end, off(100, 2));
        let r = read(&log, Some(off(100, 0)));
        assert_eq!(body(&r), "{\"x\":2}");
        assert_eq!(r.chunk_end, off(100, 2));
        let r = read(&log, Some(off(100, 2)));
        assert_eq!(body(&r), "{\"x\":3}");
        assert_eq!(r.chunk_end, off(200, 0));
        let r = read(&log, Some(protocol::offset::LAST_BEFORE_REAL_LOG));
        assert_eq!(body(&r), "{\"x\":1},{\"x\":2}");
        std::fs::remove_dir_all(file.path().parent().unwrap()).unwrap();
    }

    #[test]
    fn snapshot_chunks_move_to_disk_and_keep_their_bytes() {
        let mut log = ShapeLog::new(10);
        let chunk = log.push_snapshot_row(b"{\"a\":100000}").expect("closed");
        let (file, positions) = snapshot_file("spill", &[&chunk]);
        assert_eq!(log.snapshot_chunks_in_memory(), 1);
        log.snapshot_chunk_on_disk(0, &file, positions[0]);
        assert_eq!(log.snapshot_chunks_in_memory(), 0);
        let s = read(&log, None);
        let Part::File(range) = &s.parts[0] else {
            panic!("served from memory")
        };
        // The entries, after the record's `[`.
        assert_eq!(range.offset, record::HEADER_LEN as u64 + 1);
        assert_eq!(body(&s), "{\"a\":100000}");
        // The whole chunk's response body is the record's payload, brackets included: one
        // file range.
        let parts = s.into_body(None);
        let [Part::File(whole)] = parts.as_slice() else {
            panic!("not one file range: {parts:?}")
        };
        assert_eq!(
            (whole.offset, whole.len),
            (positions[0].payload_at(), positions[0].len)
        );
        assert_eq!(wire(&parts), "[{\"a\":100000}]");
        // With a control message after the entries, the `]` comes from memory after it.
        let parts = read(&log, None).into_body(Some(Bytes::from_static(b"{\"c\":1}")));
        assert!(matches!(
            parts.as_slice(),
            [Part::File(_), Part::Mem(_), Part::Mem(_), Part::Mem(_)]
        ));
        assert_eq!(wire(&parts), "[{\"a\":100000},{\"c\":1}]");
        std::fs::remove_dir_all(file.path().parent().unwrap()).unwrap();
    }

    #[test]
    fn snapshot_chunks_recorded_without_brackets_are_served_with_them() {
        // A shape stored before records had brackets.
        let (file, positions) =
            snapshot_file_as("bare", &[b"{\"a\":1},{\"a\":2}", b"{\"end\":1}"], false);
        let chunk_file = LazyFile::new(file.path().with_file_name("chunks.data"));
        let log = ShapeLog::restore(10, &file, &positions, &chunk_file, &[], Vec::new());
        let s = read(&log, None);
        assert_eq!(body(&s), "{\"a\":1},{\"a\":2}");
        let parts = s.into_body(None);
        assert!(matches!(
            parts.as_slice(),
            [Part::Mem(_), Part::File(_), Part::Mem(_)]
        ));
        assert_eq!(wire(&parts), "[{\"a\":1},{\"a\":2}]");
        let last = read(&log, Some(protocol::offset::snapshot_chunk(0)));
        assert_eq!(wire(&last.into_body(None)), "[{\"end\":1}]");
        // And recovered framed records are recognised as such.
        let (file, positions) = snapshot_file("framed-restore", &[b"{\"a\":1}"]);
        let chunk_file = LazyFile::new(file.path().with_file_name("chunks.data"));
        let log = ShapeLog::restore(10, &file, &positions, &chunk_file, &[], Vec::new());
        let parts = read(&log, None).into_body(None);
        assert!(matches!(parts.as_slice(), [Part::File(_)]));
        assert_eq!(wire(&parts), "[{\"a\":1}]");
        std::fs::remove_dir_all(file.path().parent().unwrap()).unwrap();
    }

    #[test]
    fn a_corrupt_recovered_chunk_is_refused_not_served() {
        let (file, positions) = snapshot_file("corrupt", &[b"{\"a\":1}", b"{\"b\":2}"]);
        let mut bytes = std::fs::read(file.path()).unwrap();
        // Flip one payload byte of chunk 1.
        let at = positions[1].payload_at() as usize + 2;
        bytes[at] ^= 0x20;
        std::fs::write(file.path(), bytes).unwrap();
        let chunk_file = LazyFile::new(file.path().with_file_name("chunks.data"));
        let log = ShapeLog::restore(10, &file, &positions, &chunk_file, &[], Vec::new());
        assert_eq!(body(&read(&log, None)), "{\"a\":1}");
        let err = log
            .read(Some(protocol::offset::snapshot_chunk(0)))
            .expect_err("corrupt chunk served");
        assert_eq!(err.chunk, 1);
        assert!(err.to_string().contains("checksum"), "{err}");
        std::fs::remove_dir_all(file.path().parent().unwrap()).unwrap();
    }

    #[test]
    fn closed_real_chunks_move_to_disk_and_serve_from_any_entry() {
        let mut log = ShapeLog::new(10);
        log.finish_snapshot(b"{}");
        log.append(off(100, 0), Bytes::from_static(b"{\"x\":1}"));
        let end = log
            .append(off(100, 2), Bytes::from_static(b"{\"x\":2}"))
            .expect("closed");
        log.append(off(200, 0), Bytes::from_static(b"{\"x\":3}"));
        let (bytes, index) = log.closed_chunk_bytes(end).expect("in memory");
        assert_eq!(&bytes[..], b"{\"x\":1},{\"x\":2}");
        // As chunks.data holds it: the bytes, then the entry index.
        let dir = std::env::temp_dir().join(format!("ampere-log-{}-real", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut file = vec![0u8; 7]; // something before it
        let record_at = file.len() as u64;
        record::encode_chunk(&mut file, record::KIND_CHUNK_DATA, 100, 2, &bytes);
        let index_at = file.len() as u64;
        record::encode(&mut file, record::KIND_CHUNK_INDEX, 100, 2, &index);
        let path = dir.join("chunks.data");
        std::fs::write(&path, file).unwrap();
        let lazy = LazyFile::new(path);
        log.closed_chunk_on_disk(
            end,
            &lazy,
            ChunkPos {
                record_at,
                len: record::chunk_payload_len(bytes.len()) as u64,
            },
            ChunkPos {
                record_at: index_at,
                len: index.len() as u64,
            },
        );
        assert_eq!(log.closed_chunks_in_memory(), 0);
        assert!(log.closed_chunk_bytes(end).is_none());
        let at_start = read(&log, Some(protocol::offset::LAST_BEFORE_REAL_LOG));
        assert!(matches!(at_start.parts[0], Part::File(_)));
        assert_eq!(body(&at_start), "{\"x\":1},{\"x\":2}");
        assert_eq!(at_start.entries, 2);
        // The whole chunk: its record's payload, one file range.
        let parts = at_start.into_body(None);
        assert!(matches!(parts.as_slice(), [Part::File(_)]), "{parts:?}");
        assert_eq!(wire(&parts), "[{\"x\":1},{\"x\":2}]");
        let mid = read(&log, Some(off(100, 0)));
        assert_eq!(body(&mid), "{\"x\":2}");
        assert_eq!((mid.entries, mid.chunk_end), (1, end));
        // From inside the chunk: `[` from memory, the rest up to the record's `]` from the file.
        let parts = mid.into_body(None);
        assert!(
            matches!(parts.as_slice(), [Part::Mem(_), Part::File(_)]),
            "{parts:?}"
        );
        assert_eq!(wire(&parts), "[{\"x\":2}]");
        let parts = read(&log, Some(off(100, 0))).into_body(Some(Bytes::from_static(b"{\"u\":1}")));
        assert_eq!(wire(&parts), "[{\"x\":2},{\"u\":1}]");
        assert_eq!(body(&read(&log, Some(end))), "{\"x\":3}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_capped_log_serves_up_to_its_cap_only() {
        let mut log = ShapeLog::new(20);
        log.finish_snapshot(b"{}");
        let snapshot_end = log.last_offset();
        log.set_cap(Cap(None));
        log.append(off(100, 0), Bytes::from_static(b"{\"x\":1}"));
        log.append(off(100, 2), Bytes::from_static(b"{\"x\":2}"));
        let end = log
            .append(off(100, 4), Bytes::from_static(b"{\"x\":3}"))
            .expect("closed");
        log.append(off(200, 0), Bytes::from_static(b"{\"x\":4}"));
        log.append(off(200, 2), Bytes::from_static(b"{\"x\":5}"));
        // Nothing real served yet: the log ends at the snapshot.
        assert_eq!(log.last_offset(), snapshot_end);
        let none = read(&log, Some(snapshot_end));
        assert_eq!((none.entries, none.chunk_end), (0, snapshot_end));
        let mut published = Vec::new();
        log.publishable(&mut PublishCursor::default(), &mut published);
        assert!(published.iter().all(|c| c.in_snapshot));
        // A cap inside the closed chunk: a partial chunk up to it, from memory and from the
        // chunk's file.
        log.set_cap(Cap(Some(off(100, 2))));
        assert_eq!(log.last_offset(), off(100, 2));
        let check = |log: &ShapeLog| {
            let s = read(log, Some(snapshot_end));
            assert_eq!((s.entries, s.chunk_end), (2, off(100, 2)));
            assert_eq!(wire(&s.into_body(None)), "[{\"x\":1},{\"x\":2}]");
            let s = read(log, Some(off(100, 0)));
            assert_eq!((s.entries, s.chunk_end), (1, off(100, 2)));
            assert_eq!(wire(&s.into_body(None)), "[{\"x\":2}]");
            let s = read(log, Some(off(100, 2)));
            assert_eq!((s.entries, s.chunk_end), (0, off(100, 2)));
        };
        check(&log);
        let (bytes, index) = log.closed_chunk_bytes(end).expect("in memory");
        let dir = std::env::temp_dir().join(format!("ampere-log-{}-cap", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut file = Vec::new();
        record::encode_chunk(&mut file, record::KIND_CHUNK_DATA, 100, 4, &bytes);
        let index_at = file.len() as u64;
        record::encode(&mut file, record::KIND_CHUNK_INDEX, 100, 4, &index);
        let path = dir.join("chunks.data");
        std::fs::write(&path, file).unwrap();
        let lazy = LazyFile::new(path);
        let pos = ChunkPos {
            record_at: 0,
            len: record::chunk_payload_len(bytes.len()) as u64,
        };
        let index_pos = ChunkPos {
            record_at: index_at,
            len: index.len() as u64,
        };
        log.closed_chunk_on_disk(end, &lazy, pos, index_pos);
        assert!(matches!(
            read(&log, Some(snapshot_end)).parts[0],
            Part::File(_)
        ));
        check(&log);
        let mut published = Vec::new();
        log.publishable(&mut PublishCursor::default(), &mut published);
        assert!(
            published.iter().all(|c| c.in_snapshot),
            "a chunk past the cap is not published"
        );
        // The cap in the open chunk: the closed chunk whole, then part of the open one.
        log.set_cap(Cap(Some(off(200, 0))));
        let s = read(&log, Some(snapshot_end));
        assert_eq!((s.entries, s.chunk_end), (3, end));
        let s = read(&log, Some(end));
        assert_eq!((s.entries, s.chunk_end), (1, off(200, 0)));
        assert_eq!(wire(&s.into_body(None)), "[{\"x\":4}]");
        let mut published = Vec::new();
        log.publishable(&mut PublishCursor::default(), &mut published);
        assert_eq!(published.last().map(|c| c.end), Some(end));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    #[should_panic(expected = "a log's cap only grows")]
    fn a_cap_never_shrinks() {
        let mut log = ShapeLog::new(1000);
        log.finish_snapshot(b"{}");
        log.append(off(5, 2), Bytes::from_static(b"{}"));
        log.set_cap(Cap(Some(off(5, 2))));
        log.set_cap(Cap(None));
    }

    #[test]
    #[should_panic(expected = "log offsets must increase")]
    fn offsets_must_increase() {
        let mut log = ShapeLog::new(1000);
        log.finish_snapshot(b"{}");
        log.append(off(5, 2), Bytes::from_static(b"{}"));
        log.append(off(5, 2), Bytes::from_static(b"{}"));
    }
}
