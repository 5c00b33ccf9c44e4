//! Recovery of one shape directory: validate everything, cut a torn tail off (in memory and
//! on disk, so appends continue cleanly), and refuse the shape on any damage that is not a
//! torn tail.
//!
//! Torn tail vs. damage: appends only ever extend the newest files, so a crash can only leave
//! garbage *after* the last complete write. An invalid record is therefore a torn tail only if
//! no valid transaction boundary (commit marker, chunk end) follows it anywhere. If one does,
//! data that may already have been acknowledged would be lost by trimming, so the shape is
//! reported corrupt instead (the caller invalidates it: 409, rebuilt from Postgres).

use super::chunk_index::{ChunkIndexEntry, LogPos};
use super::error::StorageError;
use super::fsio;
use super::layout::{self, CHUNK_DATA_FILE, INDEX_FILE, META_FILE, META_TMP_FILE, SNAPSHOT_FILE};
use super::log_cut::LogCut;
use super::meta::{self, ShapeMeta, MAX_META_BYTES};
use super::record::{
    self, ChunkPos, Decoded, KIND_CHUNK_DATA, KIND_CHUNK_END, KIND_CHUNK_INDEX, KIND_COMMIT,
    KIND_ENTRY, KIND_SNAPSHOT_CHUNK,
};
use super::store::{OpenEntry, ResumePoint, ShapeStore, StoreOptions};
use bytes::Bytes;
use protocol::offset::LogOffset;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// A closed chunk's two records in `chunks.data`: its bytes as served, and its entry index.
pub type ChunkRecords = (ChunkPos, ChunkPos);

/// A shape as found on disk, torn tail removed.
#[derive(Debug)]
pub struct RecoveredShape {
    pub dir: PathBuf,
    pub meta: ShapeMeta,
    /// Where snapshot chunks `0_0, 0_1, …` lie in `snapshot.data` (read lazily: recovery
    /// checks their headers only, and a chunk's checksum when it is first served).
    pub snapshot_chunks: Vec<ChunkPos>,
    /// Real-log entries of complete transactions held in memory, in offset order: all of them
    /// after [`recover_shape`], only those after the last closed chunk after
    /// [`recover_shape_lazy`] (closed chunks are then read from `chunks.data` when served).
    pub log: Vec<(LogOffset, Bytes)>,
    /// Every closed real-log chunk, in offset order.
    pub chunks: Vec<RecoveredChunk>,
    /// Commit LSN of the last complete transaction (0: none); replayed transactions up to it
    /// are already in the log and must be skipped.
    pub last_txn_lsn: u64,
    /// Bytes cut off torn tails (0 after a clean shutdown) and after the cut.
    pub trimmed_bytes: u64,
    /// The shape's cut ([`super::log_cut`]), if it has one: the log ends at or before it.
    pub cut: Option<LogCut>,
    resume: ResumePoint,
}

/// A closed real-log chunk as found on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveredChunk {
    pub first: LogOffset,
    pub last: LogOffset,
    /// Number of entries.
    pub entries: u32,
    /// Where its bytes and entry index lie in `chunks.data` (`None` for a chunk over the record
    /// limit, served from memory: its entries are then in [`RecoveredShape::log`]).
    pub records: Option<ChunkRecords>,
}

impl RecoveredShape {
    /// Last offset of every closed real-log chunk, ascending.
    pub fn chunk_ends(&self) -> Vec<LogOffset> {
        self.chunks.iter().map(|c| c.last).collect()
    }

    /// Whether the shape can be served: its snapshot completed. Otherwise the snapshot
    /// transaction is gone and the shape must be dropped (409) and rebuilt.
    pub fn is_servable(&self) -> bool {
        self.meta.snapshot_complete
    }

    /// Reads snapshot chunk `n` from `snapshot.data` and checks it against its record (what
    /// serving does on first use; for tools and tests).
    pub fn read_snapshot_chunk(&self, n: usize) -> Result<Vec<u8>, StorageError> {
        let path = self.dir.join(SNAPSHOT_FILE);
        let pos = self.snapshot_chunks[n];
        let file = std::fs::File::open(&path).map_err(StorageError::at("open", &path))?;
        let len = usize::try_from(pos.len)
            .map_err(|_| StorageError::corrupt(&path, pos.record_at, "chunk too large"))?;
        let mut buf = vec![0u8; record::encoded_len(len)];
        file.read_exact_at(&mut buf, pos.record_at)
            .map_err(StorageError::at("read", &path))?;
        match record::decode(&buf, 0) {
            Decoded::Record(r, _) if r.kind == KIND_SNAPSHOT_CHUNK && r.op == n as u64 => {
                Ok(r.payload.to_vec())
            }
            Decoded::Record(..) => Err(StorageError::corrupt(
                &path,
                pos.record_at,
                "not the snapshot chunk expected",
            )),
            Decoded::Truncated => Err(StorageError::corrupt(&path, pos.record_at, "truncated")),
            Decoded::Bad(why) => Err(StorageError::corrupt(&path, pos.record_at, why)),
        }
    }

    /// Opens the writer that continues this shape's files.
    pub fn open_store(&self, opts: StoreOptions) -> Result<ShapeStore, StorageError> {
        ShapeStore::resume(self.meta.clone(), self.resume.clone(), opts)
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, StorageError> {
    std::fs::read(path).map_err(StorageError::at("read", path))
}

/// Reads and checks a shape directory's `meta.rkyv` (nothing else).
pub fn read_shape_meta(dir: &Path) -> Result<ShapeMeta, StorageError> {
    let path = dir.join(META_FILE);
    let file = std::fs::File::open(&path).map_err(StorageError::at("open", &path))?;
    let len = file
        .metadata()
        .map_err(StorageError::at("stat", &path))?
        .len();
    if len > MAX_META_BYTES {
        return Err(StorageError::corrupt(&path, 0, "metadata file too large"));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(MAX_META_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(StorageError::at("read", &path))?;
    let meta = meta::decode(&path, &bytes)?;
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if meta.handle != name {
        return Err(StorageError::corrupt(
            &path,
            0,
            format!("metadata is for shape {:?}", meta.handle),
        ));
    }
    Ok(meta)
}

/// Where a file's valid content ends and whether it must be cut there.
struct Tail {
    valid_end: usize,
}

/// Classifies an invalid record at `pos`: torn tail (Ok) unless a valid record of `kinds`
/// follows.
fn check_torn(
    path: &Path,
    buf: &[u8],
    pos: usize,
    why: &str,
    kinds: &[u8],
) -> Result<(), StorageError> {
    if let Some(q) = record::valid_record_after(buf, pos + 1, kinds) {
        return Err(StorageError::corrupt(
            path,
            pos as u64,
            format!("{why}, followed by a valid record at byte {q}"),
        ));
    }
    Ok(())
}

fn truncate(path: &Path, len: u64) -> Result<(), StorageError> {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(StorageError::at("open", path))?;
    f.set_len(len).map_err(StorageError::at("truncate", path))?;
    fsio::fsync_file(&f, path)
}

/// The snapshot chunks' positions, the valid end of `snapshot.data` and its length.
///
/// A complete snapshot is never appended to again, so only the record headers are read (restart
/// time does not grow with the snapshot); each payload's checksum is checked when the chunk is
/// first served (`ShapeLog::read`). An incomplete snapshot (its shape is dropped anyway) is read
/// whole so that a torn tail can be told from damage.
fn recover_snapshot(
    dir: &Path,
    meta: &ShapeMeta,
) -> Result<(Vec<ChunkPos>, Tail, usize), StorageError> {
    let path = dir.join(SNAPSHOT_FILE);
    if meta.snapshot_complete {
        return snapshot_headers(&path, meta.snapshot_chunks as usize);
    }
    let buf = read_file(&path)?;
    let mut chunks = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        match record::decode(&buf, pos) {
            Decoded::Record(r, next) => {
                if r.kind != KIND_SNAPSHOT_CHUNK || r.tx != 0 || r.op != chunks.len() as u64 {
                    return Err(StorageError::corrupt(
                        &path,
                        pos as u64,
                        "record is not the next snapshot chunk",
                    ));
                }
                chunks.push(ChunkPos {
                    record_at: pos as u64,
                    len: r.payload.len() as u64,
                });
                pos = next;
            }
            Decoded::Truncated => {
                check_torn(&path, &buf, pos, "partial record", &[KIND_SNAPSHOT_CHUNK])?;
                break;
            }
            Decoded::Bad(why) => {
                check_torn(&path, &buf, pos, why, &[KIND_SNAPSHOT_CHUNK])?;
                break;
            }
        }
    }
    Ok((chunks, Tail { valid_end: pos }, buf.len()))
}

/// Headers of the `count` chunk records of a complete snapshot, checked for kind, number and
/// length against the file's size.
fn snapshot_headers(
    path: &Path,
    count: usize,
) -> Result<(Vec<ChunkPos>, Tail, usize), StorageError> {
    let file = std::fs::File::open(path).map_err(StorageError::at("open", path))?;
    let file_len = file
        .metadata()
        .map_err(StorageError::at("stat", path))?
        .len();
    let file_len_usize =
        usize::try_from(file_len).map_err(|_| StorageError::corrupt(path, 0, "file too large"))?;
    let mut chunks = Vec::with_capacity(count.min(1 << 20));
    let mut pos = 0u64;
    let mut header = [0u8; record::HEADER_LEN];
    while chunks.len() < count {
        let corrupt = |what: String| StorageError::corrupt(path, pos, what);
        if pos + record::HEADER_LEN as u64 > file_len {
            return Err(corrupt(format!(
                "{} snapshot chunks on disk, metadata says {count}",
                chunks.len()
            )));
        }
        file.read_exact_at(&mut header, pos)
            .map_err(StorageError::at("read", path))?;
        let h = record::decode_header(&header).map_err(|why| corrupt(why.into()))?;
        if h.kind != KIND_SNAPSHOT_CHUNK || h.tx != 0 || h.op != chunks.len() as u64 {
            return Err(corrupt("record is not the next snapshot chunk".into()));
        }
        let end = pos + record::encoded_len(h.len) as u64;
        if end > file_len {
            return Err(corrupt(format!(
                "snapshot chunk {} ends at byte {end}, past the end of the file",
                chunks.len()
            )));
        }
        chunks.push(ChunkPos {
            record_at: pos,
            len: h.len as u64,
        });
        pos = end;
    }
    // Nothing follows the last chunk of a complete snapshot; anything that does is cut off.
    Ok((
        chunks,
        Tail {
            valid_end: pos as usize,
        },
        file_len_usize,
    ))
}

/// Everything parsed from the log segments.
#[derive(Default)]
struct LogScan {
    entries: Vec<(LogOffset, Bytes)>,
    positions: Vec<OpenEntry>,
    /// Entries of complete transactions: `entries[..committed]`.
    committed: usize,
    /// `(first entry index, last entry index)` of each closed chunk.
    chunks: Vec<(usize, usize)>,
    last_commit_lsn: u64,
    /// End of the last transaction boundary record.
    boundary: LogPos,
    /// Segment lengths as found (0 for segments a tail scan skipped).
    lengths: Vec<u64>,
    /// A tail scan ([`recover_shape_lazy`]) starts right after the last entry of the last
    /// closed chunk, possibly inside its transaction: until that chunk's CHUNK_END, the rest of
    /// the transaction (entries, then its COMMIT) and the chunk ends of the transaction are
    /// expected. `(last entry of the chunk, COMMIT seen)`.
    awaiting_end: Option<(LogOffset, bool)>,
    /// The shape's cut ([`super::log_cut`]): the scan ends before the first entry after it.
    cut: Option<Option<LogOffset>>,
    /// The scan reached an entry after the cut.
    cut_reached: bool,
}

impl LogScan {
    fn chunk_start(&self) -> usize {
        self.chunks.last().map_or(0, |c| c.1 + 1)
    }

    /// Applies one valid record; errors are corruption (the checksum matched, so the content
    /// was written like this and no trimming can fix it).
    ///
    /// `seg` holds the segment's bytes from position `base` on.
    fn apply(
        &mut self,
        r: record::Record<'_>,
        seg: &Bytes,
        (segment, base): (u32, u64),
        pos: usize,
        next: usize,
    ) -> Result<(), &'static str> {
        let offset = LogOffset::new(r.tx, r.op);
        let here = |p: usize| LogPos {
            segment,
            pos: base + p as u64,
        };
        if let Some((last, commit_seen)) = self.awaiting_end {
            return self.apply_before_end(
                r,
                seg,
                (last, commit_seen),
                here(pos),
                pos,
                next,
                here(next),
            );
        }
        match r.kind {
            KIND_ENTRY => {
                if !offset.is_real() {
                    return Err("log entry with a virtual offset");
                }
                if self.entries.last().is_some_and(|(o, _)| *o >= offset) {
                    return Err("log entry offsets do not increase");
                }
                self.entries
                    .push((offset, seg.slice(pos + record::HEADER_LEN..next)));
                self.positions.push(OpenEntry {
                    offset,
                    start: here(pos),
                    end: here(next),
                });
            }
            KIND_COMMIT => {
                let pending = &self.entries[self.committed..];
                if !r.payload.is_empty()
                    || r.tx <= self.last_commit_lsn
                    || r.op != pending.len() as u64
                    || pending.iter().any(|(o, _)| o.tx > r.tx)
                {
                    return Err("commit marker does not match the entries before it");
                }
                self.committed = self.entries.len();
                self.last_commit_lsn = r.tx;
                self.boundary = here(next);
            }
            KIND_CHUNK_END => {
                let start = self.chunk_start();
                if !r.payload.is_empty() || self.committed != self.entries.len() {
                    return Err("chunk end inside a transaction");
                }
                let open = &self.entries[start..self.committed];
                let Ok(i) = open.binary_search_by(|(o, _)| o.cmp(&offset)) else {
                    return Err("chunk end names no entry of the open chunk");
                };
                self.chunks.push((start, start + i));
                self.boundary = here(next);
            }
            _ => return Err("record kind does not belong in a log segment"),
        }
        Ok(())
    }

    /// [`Self::apply`] in a tail scan, before the CHUNK_END of the last indexed chunk.
    #[allow(clippy::too_many_arguments)]
    fn apply_before_end(
        &mut self,
        r: record::Record<'_>,
        seg: &Bytes,
        (last, commit_seen): (LogOffset, bool),
        start: LogPos,
        pos: usize,
        next: usize,
        end: LogPos,
    ) -> Result<(), &'static str> {
        let offset = LogOffset::new(r.tx, r.op);
        match r.kind {
            // The rest of the chunk's last transaction: entries of the open chunk.
            KIND_ENTRY if !commit_seen && offset.tx == last.tx && offset > last => {
                if self.entries.last().is_some_and(|(o, _)| *o >= offset) {
                    return Err("log entry offsets do not increase");
                }
                self.entries
                    .push((offset, seg.slice(pos + record::HEADER_LEN..next)));
                self.positions.push(OpenEntry { offset, start, end });
            }
            // Its COMMIT counts entries before the scan too: at least those seen.
            KIND_COMMIT
                if !commit_seen
                    && r.payload.is_empty()
                    && r.tx == last.tx
                    && r.op >= self.entries.len() as u64 =>
            {
                self.committed = self.entries.len();
                self.last_commit_lsn = r.tx;
                self.boundary = end;
                self.awaiting_end = Some((last, true));
            }
            // Chunks the transaction closed: earlier ones (indexed too), then the last.
            KIND_CHUNK_END
                if commit_seen
                    && r.payload.is_empty()
                    && offset.tx == last.tx
                    && offset <= last =>
            {
                self.boundary = end;
                if offset == last {
                    self.awaiting_end = None;
                }
            }
            _ => return Err("the log does not continue the chunk index"),
        }
        Ok(())
    }
}

/// Lists the directory once: the number of log segments (checked contiguous from 0) and
/// whether an interrupted metadata replacement left its temporary file.
fn list_segments(dir: &Path) -> Result<(u32, bool), StorageError> {
    let mut numbers = Vec::new();
    let mut meta_tmp = false;
    for entry in std::fs::read_dir(dir).map_err(StorageError::at("list", dir))? {
        let entry = entry.map_err(StorageError::at("list", dir))?;
        let name = entry.file_name();
        let name = name.to_str().unwrap_or("");
        if let Some(n) = layout::parse_segment_name(name) {
            numbers.push(n);
        }
        meta_tmp |= name == META_TMP_FILE;
    }
    numbers.sort_unstable();
    if numbers.is_empty() {
        return Err(StorageError::corrupt(dir, 0, "no log segment"));
    }
    for (i, n) in numbers.iter().enumerate() {
        if *n as usize != i {
            return Err(StorageError::corrupt(
                &dir.join(layout::segment_name(i as u32)),
                0,
                "log segment missing",
            ));
        }
    }
    Ok((numbers.len() as u32, meta_tmp))
}

const BOUNDARY_KINDS: &[u8] = &[KIND_COMMIT, KIND_CHUNK_END];

/// Reads `path` from byte `from` to its end; returns those bytes and the file's length.
fn read_file_from(path: &Path, from: u64) -> Result<(Vec<u8>, u64), StorageError> {
    let file = std::fs::File::open(path).map_err(StorageError::at("open", path))?;
    let len = file
        .metadata()
        .map_err(StorageError::at("stat", path))?
        .len();
    let rest = len
        .checked_sub(from)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| StorageError::corrupt(path, len, "shorter than the chunk index says"))?;
    let mut buf = vec![0u8; rest];
    file.read_exact_at(&mut buf, from)
        .map_err(StorageError::at("read", path))?;
    Ok((buf, len))
}

/// Reads the log from `from` on into `scan` (a full scan starts at segment 0, byte 0).
fn scan_log(
    dir: &Path,
    segments: u32,
    from: LogPos,
    mut scan: LogScan,
) -> Result<LogScan, StorageError> {
    let mut damaged = false;
    for s in 0..segments {
        let path = dir.join(layout::segment_name(s));
        if s < from.segment {
            scan.lengths.push(0);
            continue;
        }
        let base = if s == from.segment { from.pos } else { 0 };
        let (buf, len) = read_file_from(&path, base)?;
        let buf = Bytes::from(buf);
        scan.lengths.push(len);
        if scan.cut_reached {
            continue;
        }
        if damaged {
            // Anything valid after a damaged record may have been acknowledged.
            if let Some(q) = record::valid_record_after(&buf, 0, BOUNDARY_KINDS) {
                return Err(StorageError::corrupt(
                    &path,
                    q as u64,
                    "valid transaction after a damaged record in an earlier segment",
                ));
            }
            continue;
        }
        let mut pos = 0;
        while pos < buf.len() {
            match record::decode(&buf, pos) {
                Decoded::Record(r, next) => {
                    // An entry after the cut, or a commit after the cut's transaction.
                    let beyond = |cut: Option<LogOffset>| match r.kind {
                        KIND_ENTRY => cut.is_none_or(|c| LogOffset::new(r.tx, r.op) > c),
                        KIND_COMMIT => cut.is_none_or(|c| r.tx > c.tx),
                        _ => false,
                    };
                    if scan.cut.is_some_and(beyond) {
                        // Served never: what follows is rebuilt from the WAL.
                        scan.cut_reached = true;
                        break;
                    }
                    scan.apply(r, &buf, (s, base), pos, next)
                        .map_err(|what| StorageError::corrupt(&path, base + pos as u64, what))?;
                    pos = next;
                }
                Decoded::Truncated => {
                    check_torn(&path, &buf, pos, "partial record", BOUNDARY_KINDS)?;
                    damaged = true;
                    break;
                }
                Decoded::Bad(why) => {
                    check_torn(&path, &buf, pos, why, BOUNDARY_KINDS)?;
                    damaged = true;
                    break;
                }
            }
        }
    }
    Ok(scan)
}

/// Cuts the log back to its last transaction boundary on disk. Returns the bytes removed.
fn trim_log(dir: &Path, scan: &LogScan) -> Result<u64, StorageError> {
    let b = scan.boundary;
    let mut removed = 0;
    for (s, len) in scan.lengths.iter().enumerate() {
        let s = s as u32;
        let path = dir.join(layout::segment_name(s));
        if s == b.segment && *len > b.pos {
            truncate(&path, b.pos)?;
            removed += len - b.pos;
        } else if s > b.segment {
            std::fs::remove_file(&path).map_err(StorageError::at("remove", &path))?;
            removed += len;
        }
    }
    Ok(removed)
}

fn index_bytes(scan: &LogScan) -> Vec<u8> {
    let mut out = Vec::with_capacity(scan.chunks.len() * super::chunk_index::ENTRY_LEN);
    for &(a, b) in &scan.chunks {
        ChunkIndexEntry {
            first: scan.positions[a].offset,
            last: scan.positions[b].offset,
            start: scan.positions[a].start,
            end: scan.positions[b].end,
        }
        .encode(&mut out);
    }
    out
}

/// Checks `chunks.data` against the closed chunks of the recovered log (chunk `k`'s entries
/// comma-joined, then their CHUNK_INDEX) and rewrites it from the first record that is missing,
/// torn or different: it is derived data, never fsynced on its own, and the log is
/// authoritative. Returns each chunk's two positions and the file's valid length.
fn recover_chunk_data(
    dir: &Path,
    entries: &[(LogOffset, Bytes)],
    chunks: &[(usize, usize)],
) -> Result<(Vec<Option<ChunkRecords>>, u64), StorageError> {
    let path = dir.join(CHUNK_DATA_FILE);
    let (on_disk, exists) = match std::fs::read(&path) {
        Ok(b) => (b, true),
        // Written by a version without chunks.data: built now (created even when no chunk is
        // closed yet, as the resumed store opens it to append).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Vec::new(), false),
        Err(e) => return Err(StorageError::io("read", &path, e)),
    };
    let mut positions = Vec::with_capacity(chunks.len());
    let mut pos = 0usize;
    let mut rebuilt: Option<Vec<u8>> = None;
    for &(first, last) in chunks {
        let offset = entries[last].0;
        // The payload `record::encode_chunk` writes: the entries in brackets; the index's
        // starts count from the first entry (after the `[`).
        let mut joined = vec![b'['];
        let mut starts = Vec::with_capacity(last + 1 - first);
        for (i, (o, e)) in entries[first..=last].iter().enumerate() {
            if i > 0 {
                joined.push(b',');
            }
            starts.push((*o, (joined.len() - 1) as u32));
            joined.extend_from_slice(e);
        }
        joined.push(b']');
        let index = record::encode_chunk_index(starts);
        if joined.len() > record::MAX_PAYLOAD || index.len() > record::MAX_PAYLOAD {
            positions.push(None);
            continue;
        }
        if rebuilt.is_none() {
            let expect = |at: usize, kind: u8, payload: &[u8]| match record::decode(&on_disk, at) {
                Decoded::Record(r, next)
                    if r.kind == kind
                        && LogOffset::new(r.tx, r.op) == offset
                        && r.payload == payload =>
                {
                    Some(next)
                }
                _ => None,
            };
            if let Some(after_data) = expect(pos, KIND_CHUNK_DATA, &joined) {
                if let Some(next) = expect(after_data, KIND_CHUNK_INDEX, &index) {
                    positions.push(Some((
                        ChunkPos {
                            record_at: pos as u64,
                            len: joined.len() as u64,
                        },
                        ChunkPos {
                            record_at: after_data as u64,
                            len: index.len() as u64,
                        },
                    )));
                    pos = next;
                    continue;
                }
            }
            rebuilt = Some(Vec::new());
        }
        let out = rebuilt.as_mut().expect("rebuilding from here");
        let data_at = pos + out.len();
        record::encode(out, KIND_CHUNK_DATA, offset.tx, offset.op, &joined);
        let index_at = pos + out.len();
        record::encode(out, KIND_CHUNK_INDEX, offset.tx, offset.op, &index);
        positions.push(Some((
            ChunkPos {
                record_at: data_at as u64,
                len: joined.len() as u64,
            },
            ChunkPos {
                record_at: index_at as u64,
                len: index.len() as u64,
            },
        )));
    }
    let tail = rebuilt.unwrap_or_default();
    let len = (pos + tail.len()) as u64;
    if !exists || pos + tail.len() != on_disk.len() || !tail.is_empty() {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(StorageError::at("open", &path))?;
        f.set_len(pos as u64)
            .map_err(StorageError::at("truncate", &path))?;
        f.write_all_at(&tail, pos as u64)
            .map_err(StorageError::at("write", &path))?;
        // The next start trusts it together with the index (written durably above).
        fsio::fsync_file(&f, &path)?;
    }
    Ok((positions, len))
}

/// What both recoveries read before the log: metadata, segment count, snapshot chunks.
struct Prefix {
    meta: ShapeMeta,
    segments: u32,
    snapshot_chunks: Vec<ChunkPos>,
    snap_tail: Tail,
    snap_len: usize,
}

fn read_prefix(dir: &Path, meta: Option<ShapeMeta>) -> Result<Prefix, StorageError> {
    let meta = match meta {
        Some(m) => m,
        None => read_shape_meta(dir)?,
    };
    let (segments, meta_tmp) = list_segments(dir)?;
    if meta_tmp {
        // An interrupted metadata replacement; the old file is intact.
        let tmp = dir.join(META_TMP_FILE);
        std::fs::remove_file(&tmp).map_err(StorageError::at("remove", &tmp))?;
    }
    let (snapshot_chunks, snap_tail, snap_len) = recover_snapshot(dir, &meta)?;
    Ok(Prefix {
        meta,
        segments,
        snapshot_chunks,
        snap_tail,
        snap_len,
    })
}

/// Cuts the torn tails of `snapshot.data` and the log on disk. Returns the bytes removed and
/// whether directory entries changed (segments deleted).
fn trim_tails(dir: &Path, p: &Prefix, scan: &LogScan) -> Result<(u64, bool), StorageError> {
    let mut trimmed = 0u64;
    let mut dir_changed = false;
    if p.snap_tail.valid_end < p.snap_len {
        truncate(&dir.join(SNAPSHOT_FILE), p.snap_tail.valid_end as u64)?;
        trimmed += (p.snap_len - p.snap_tail.valid_end) as u64;
    }
    let b = scan.boundary;
    let log_len: u64 = scan.lengths.iter().sum();
    let kept: u64 = scan.lengths[..b.segment as usize].iter().sum::<u64>() + b.pos;
    if kept < log_len || (b.segment as usize) + 1 < scan.lengths.len() {
        trimmed += trim_log(dir, scan)?;
        dir_changed = (b.segment as usize) + 1 < scan.lengths.len();
    }
    Ok((trimmed, dir_changed))
}

/// Loads and repairs one shape directory, reading its whole log (authoritative: it rebuilds
/// `chunks.idx` and `chunks.data` from the log records).
pub fn recover_shape(dir: &Path) -> Result<RecoveredShape, StorageError> {
    let p = read_prefix(dir, None)?;
    let cut = read_cut(dir);
    let start = LogScan {
        cut: cut.as_ref().map(|c| c.last),
        ..LogScan::default()
    };
    let scan = scan_log(dir, p.segments, LogPos::default(), start)?;
    let (trimmed, mut dir_changed) = trim_tails(dir, &p, &scan)?;

    let index = index_bytes(&scan);
    let index_path = dir.join(INDEX_FILE);
    let on_disk = match std::fs::read(&index_path) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(StorageError::io("read", &index_path, e)),
    };
    if on_disk.as_deref() != Some(&index[..]) {
        // Derived from the log's chunk-end records: rebuild rather than reject.
        fsio::replace_file(dir, INDEX_FILE, "chunks.idx.tmp", &index, true)?;
        dir_changed = false;
    }
    if dir_changed {
        fsio::fsync_dir(dir)?;
    }

    let boundary = scan.boundary;
    let LogScan {
        mut entries,
        mut positions,
        committed,
        chunks,
        last_commit_lsn,
        ..
    } = scan;
    entries.truncate(committed);
    positions.truncate(committed);
    let chunk_start = chunks.last().map_or(0, |c| c.1 + 1);
    let (records, chunk_data_len) = recover_chunk_data(dir, &entries, &chunks)?;
    let closed = chunks
        .iter()
        .zip(records)
        .map(|(&(a, b), records)| RecoveredChunk {
            first: entries[a].0,
            last: entries[b].0,
            entries: u32::try_from(b + 1 - a).expect("a chunk's entries fit u32"),
            records,
        })
        .collect();
    let open_chunk = positions.split_off(chunk_start);
    Ok(finish(
        dir,
        p,
        Tails {
            boundary,
            last_commit_lsn,
            trimmed,
            index_len: index.len() as u64,
            chunk_data_len,
        },
        entries,
        closed,
        open_chunk,
        cut,
    ))
}

/// The shape's cut; a damaged one counts as none (the engine then drops a shape that needs
/// one, 409).
fn read_cut(dir: &Path) -> Option<LogCut> {
    super::log_cut::read(dir).unwrap_or_else(|e| {
        tracing::warn!("{e}; the shape is recovered without its cut");
        None
    })
}

/// Where the recovered files end.
struct Tails {
    boundary: LogPos,
    last_commit_lsn: u64,
    trimmed: u64,
    index_len: u64,
    chunk_data_len: u64,
}

fn finish(
    dir: &Path,
    p: Prefix,
    t: Tails,
    log: Vec<(LogOffset, Bytes)>,
    chunks: Vec<RecoveredChunk>,
    open_chunk: Vec<OpenEntry>,
    cut: Option<LogCut>,
) -> RecoveredShape {
    let resume = ResumePoint {
        dir: dir.to_path_buf(),
        segment: t.boundary.segment,
        segment_len: t.boundary.pos,
        snapshot_len: p.snap_tail.valid_end as u64,
        snapshot_chunks: p.snapshot_chunks.len() as u32,
        index_len: t.index_len,
        chunk_data_len: t.chunk_data_len,
        last_offset: log
            .last()
            .map(|(o, _)| *o)
            .or(chunks.last().map(|c| c.last)),
        last_commit_lsn: t.last_commit_lsn,
        last_chunk_end: chunks.last().map(|c| c.last),
        open_chunk,
    };
    RecoveredShape {
        dir: dir.to_path_buf(),
        meta: p.meta,
        snapshot_chunks: p.snapshot_chunks,
        log,
        chunks,
        last_txn_lsn: t.last_commit_lsn,
        trimmed_bytes: t.trimmed,
        cut,
        resume,
    }
}

/// Loads one shape directory reading only what serving needs: its metadata (`meta`, when the
/// caller has read it already), the record headers of `snapshot.data` and `chunks.data`, the
/// chunk index, and the log after the last closed chunk. Restart time therefore does not grow
/// with the log. Checksums of closed chunks are verified when they are first served.
///
/// The index and `chunks.data` are derived data: when they do not agree with each other or
/// with the log after them (a crash between their writes, damage, a shape written by an older
/// version), this falls back to [`recover_shape`], which reads the whole log and rebuilds them.
pub fn recover_shape_lazy(
    dir: &Path,
    meta: Option<ShapeMeta>,
) -> Result<RecoveredShape, StorageError> {
    match recover_tail(dir, meta) {
        Ok(shape) => Ok(shape),
        Err(why) => {
            tracing::info!("{}: reading the whole log ({why})", dir.display());
            let mut shape = recover_shape(dir)?;
            shape.log = entries_to_keep(std::mem::take(&mut shape.log), &shape.chunks);
            Ok(shape)
        }
    }
}

/// The entries a lazily recovered shape holds: those of the open chunk and of closed chunks
/// without records (served from memory).
fn entries_to_keep(
    log: Vec<(LogOffset, Bytes)>,
    chunks: &[RecoveredChunk],
) -> Vec<(LogOffset, Bytes)> {
    log.into_iter()
        .filter(|(o, _)| {
            let i = chunks.partition_point(|c| c.last < *o);
            chunks.get(i).is_none_or(|c| c.records.is_none())
        })
        .collect()
}

fn recover_tail(dir: &Path, meta: Option<ShapeMeta>) -> Result<RecoveredShape, String> {
    let p = read_prefix(dir, meta).map_err(|e| e.to_string())?;
    if !p.meta.snapshot_complete {
        return Err("its snapshot is not complete".into());
    }
    let index_path = dir.join(INDEX_FILE);
    let index = std::fs::read(&index_path).map_err(|e| format!("chunks.idx: {e}"))?;
    let idx = super::chunk_index::decode_all(&index);
    if idx.len() * super::chunk_index::ENTRY_LEN != index.len() {
        return Err("chunks.idx has a damaged or partial entry".into());
    }
    let ordered = idx.iter().all(|e| {
        e.first <= e.last && e.first.is_real() && e.start < e.end && e.end.segment < p.segments
    }) && idx
        .windows(2)
        .all(|w| w[0].last < w[1].first && w[0].end <= w[1].start);
    if !ordered {
        return Err("chunks.idx entries out of order".into());
    }
    let (chunks, chunk_data_len, chunk_data_file_len) = chunk_headers(dir, &idx)?;
    let last = idx.last().map(|e| e.last);
    let cut = read_cut(dir);
    if let (Some(l), Some(c)) = (last, &cut) {
        if c.last.is_none_or(|c| c < l) {
            return Err("the cut lies in an indexed chunk".into());
        }
    }
    let from = idx.last().map_or(LogPos::default(), |e| e.end);
    let start = LogScan {
        awaiting_end: last.map(|l| (l, false)),
        cut: cut.as_ref().map(|c| c.last),
        ..LogScan::default()
    };
    let scan = scan_log(dir, p.segments, from, start).map_err(|e| e.to_string())?;
    if scan.awaiting_end.is_some() {
        return Err("the log does not reach the end of the last indexed chunk".into());
    }
    if !scan.chunks.is_empty() {
        return Err("the log closes chunks that chunks.idx lacks".into());
    }
    if let (Some(l), Some((o, _))) = (last, scan.entries.first()) {
        if *o <= l {
            return Err("log entries after the index do not follow it".into());
        }
    }
    let (trimmed, dir_changed) = trim_tails(dir, &p, &scan).map_err(|e| e.to_string())?;
    if dir_changed {
        fsio::fsync_dir(dir).map_err(|e| e.to_string())?;
    }
    if chunk_data_file_len > chunk_data_len {
        // Records after the last indexed chunk: derived data of a chunk the log never closed.
        let path = dir.join(CHUNK_DATA_FILE);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| format!("chunks.data: {e}"))?;
        f.set_len(chunk_data_len)
            .map_err(|e| format!("chunks.data: {e}"))?;
    }
    let LogScan {
        mut entries,
        mut positions,
        committed,
        last_commit_lsn,
        boundary,
        ..
    } = scan;
    entries.truncate(committed);
    positions.truncate(committed);
    Ok(finish(
        dir,
        p,
        Tails {
            boundary,
            last_commit_lsn,
            trimmed,
            index_len: index.len() as u64,
            chunk_data_len,
        },
        entries,
        chunks,
        positions,
        cut,
    ))
}

/// The two records of every indexed chunk in `chunks.data`, by their headers (kind, offset,
/// lengths within the file). Returns them, where they end, and the file's length.
fn chunk_headers(
    dir: &Path,
    idx: &[ChunkIndexEntry],
) -> Result<(Vec<RecoveredChunk>, u64, u64), String> {
    let path = dir.join(CHUNK_DATA_FILE);
    let file = std::fs::File::open(&path).map_err(|e| format!("chunks.data: {e}"))?;
    let file_len = file
        .metadata()
        .map_err(|e| format!("chunks.data: {e}"))?
        .len();
    let mut pos = 0u64;
    let mut header = [0u8; record::HEADER_LEN];
    let mut record_at = |pos: &mut u64, kind: u8, at: LogOffset| -> Result<ChunkPos, String> {
        if *pos + record::HEADER_LEN as u64 > file_len {
            return Err("chunks.data ends before the index does".into());
        }
        file.read_exact_at(&mut header, *pos)
            .map_err(|e| format!("chunks.data: {e}"))?;
        let h = record::decode_header(&header)?;
        let end = *pos + record::encoded_len(h.len) as u64;
        if h.kind != kind || LogOffset::new(h.tx, h.op) != at || end > file_len {
            return Err(format!(
                "chunks.data does not match chunks.idx at byte {pos}"
            ));
        }
        if kind == KIND_CHUNK_DATA {
            // A chunk is stored in its JSON array's brackets; one written by a version that
            // stored it bare is rewritten by the full recovery.
            let mut first = [0u8; 1];
            file.read_exact_at(&mut first, *pos + record::HEADER_LEN as u64)
                .map_err(|e| format!("chunks.data: {e}"))?;
            if h.len < 2 || first[0] != b'[' {
                return Err("chunks.data holds a chunk without brackets".into());
            }
        }
        let found = ChunkPos {
            record_at: *pos,
            len: h.len as u64,
        };
        *pos = end;
        Ok(found)
    };
    let mut chunks = Vec::with_capacity(idx.len());
    for e in idx {
        let data = record_at(&mut pos, KIND_CHUNK_DATA, e.last)?;
        let index = record_at(&mut pos, KIND_CHUNK_INDEX, e.last)?;
        let entries = index.len / record::CHUNK_INDEX_ENTRY_LEN as u64;
        if index.len % record::CHUNK_INDEX_ENTRY_LEN as u64 != 0 || entries == 0 {
            return Err("an entry index of the wrong size in chunks.data".into());
        }
        chunks.push(RecoveredChunk {
            first: e.first,
            last: e.last,
            entries: u32::try_from(entries).map_err(|e| e.to_string())?,
            records: Some((data, index)),
        });
    }
    Ok((chunks, pos, file_len))
}
