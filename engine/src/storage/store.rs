//! [`ShapeStore`]: the writer of one shape's directory.
//!
//! Appends only fill in-memory buffers (plus a write to the OS once a buffer passes
//! `flush_bytes`); nothing here calls fsync. [`ShapeStore::prepare_sync`] hands the blocking
//! work to a [`SyncJob`] that can run on another thread.

use super::chunk_index::{ChunkIndexEntry, LogPos};
use super::error::StorageError;
use super::fsio::{self, AppendFile, PendingWrite};
use super::layout::{self, CHUNK_DATA_FILE, INDEX_FILE, META_FILE, SHAPES_DIR, SNAPSHOT_FILE};
use super::meta::{self, ShapeMeta, SnapshotRecord};
use super::record::{
    self, ChunkPos, KIND_CHUNK_DATA, KIND_CHUNK_END, KIND_CHUNK_INDEX, KIND_COMMIT, KIND_ENTRY,
    KIND_SNAPSHOT_CHUNK,
};
use super::sync::{SyncJob, SyncPoint};
use super::FORMAT_VERSION;
use protocol::offset::LogOffset;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Clone, Copy)]
pub struct StoreOptions {
    /// A buffer this full is written to the OS before the next append (upstream uses 64 KiB).
    pub flush_bytes: usize,
    /// A log segment this long is closed at the next transaction boundary.
    pub segment_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            flush_bytes: 64 << 10,
            segment_bytes: 64 << 20,
        }
    }
}

/// A real-log entry not yet in a closed chunk, with where its record lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OpenEntry {
    pub offset: LogOffset,
    pub start: LogPos,
    pub end: LogPos,
}

/// Where a recovered shape's writer continues; built by recovery, consumed by
/// [`ShapeStore::resume`].
#[derive(Debug, Clone)]
pub struct ResumePoint {
    pub(crate) dir: PathBuf,
    pub(crate) segment: u32,
    pub(crate) segment_len: u64,
    pub(crate) snapshot_len: u64,
    pub(crate) snapshot_chunks: u32,
    pub(crate) index_len: u64,
    pub(crate) chunk_data_len: u64,
    pub(crate) last_offset: Option<LogOffset>,
    pub(crate) last_commit_lsn: u64,
    pub(crate) last_chunk_end: Option<LogOffset>,
    pub(crate) open_chunk: Vec<OpenEntry>,
}

#[derive(Debug)]
pub struct ShapeStore {
    dir: PathBuf,
    meta: ShapeMeta,
    opts: StoreOptions,
    segment_no: u32,
    log: AppendFile,
    snapshot: Option<AppendFile>,
    index: AppendFile,
    /// `chunks.data`: each closed real-log chunk's bytes as served. Derived from the log and
    /// fsynced with it; a full recovery checks it against the log and rebuilds what is missing.
    chunk_data: AppendFile,
    snapshot_chunks: u32,
    last_offset: Option<LogOffset>,
    last_commit_lsn: u64,
    last_chunk_end: Option<LogOffset>,
    open_chunk: Vec<OpenEntry>,
    /// Lengths of `chunks.idx` and `chunks.data` a completed sync covers: a sync includes
    /// those files only when a chunk closed since (each fsync, and each descriptor a sync job
    /// holds, counts with 10,000s of shapes).
    index_synced: u64,
    chunk_data_synced: u64,
    durable: Option<SyncPoint>,
    /// Increases with every change that only a sync makes durable (tags below).
    change_no: u64,
    /// Closed segments not yet covered by a completed sync.
    unsynced_segments: Vec<(u64, PathBuf, File)>,
    meta_pending: Option<(u64, Arc<Vec<u8>>)>,
    dirs_pending: Vec<(u64, PathBuf)>,
    /// Files recovery read, fsynced once by the first sync after a restart (they may have been
    /// in the page cache only when the previous process died).
    paths_pending: Vec<(u64, PathBuf)>,
}

impl ShapeStore {
    /// Creates `<root>/shapes/<h[0..2]>/<handle>/` for a new shape (snapshot not started).
    ///
    /// The directory is built under a staging name and renamed into place, so a crash never
    /// leaves a half-created shape that looks real. No fsync here: the first sync makes the
    /// shape durable (metadata, files and directory entries).
    pub fn create(root: &Path, meta: &ShapeMeta) -> Result<ShapeStore, StorageError> {
        Self::create_with(root, meta, StoreOptions::default())
    }

    pub fn create_with(
        root: &Path,
        meta: &ShapeMeta,
        opts: StoreOptions,
    ) -> Result<ShapeStore, StorageError> {
        layout::validate_handle(&meta.handle)?;
        assert_eq!(meta.format_version, FORMAT_VERSION);
        assert!(
            !meta.snapshot_complete && meta.snapshot.is_none() && meta.snapshot_chunks == 0,
            "a new shape has no snapshot yet"
        );
        let dir = layout::shape_dir(root, &meta.handle);
        if dir.exists() {
            return Err(StorageError::AlreadyExists(dir));
        }
        let staging = layout::staging_dir(root, &meta.handle);
        let fanout = staging
            .parent()
            .expect("the staging dir has a parent")
            .to_path_buf();
        std::fs::create_dir_all(&fanout).map_err(StorageError::at("create directory", &fanout))?;
        if staging.exists() {
            // Left over by a crash during an earlier attempt with the same handle.
            std::fs::remove_dir_all(&staging)
                .map_err(StorageError::at("remove directory", &staging))?;
        }
        std::fs::create_dir(&staging).map_err(StorageError::at("create directory", &staging))?;
        let built = (|| {
            let meta_bytes = meta::encode(meta);
            // Written in place, not replaced by rename: nothing reads the staging directory,
            // which becomes the shape only by its own rename below (a rename is the costliest
            // step of a shape's creation here: storms create thousands).
            let meta_path = staging.join(META_FILE);
            std::fs::write(&meta_path, &meta_bytes)
                .map_err(StorageError::at("write", &meta_path))?;
            let log = AppendFile::create_new(staging.join(layout::segment_name(0)))?;
            let snapshot = AppendFile::create_new(staging.join(SNAPSHOT_FILE))?;
            let index = AppendFile::create_new(staging.join(INDEX_FILE))?;
            let chunk_data = AppendFile::create_new(staging.join(CHUNK_DATA_FILE))?;
            std::fs::rename(&staging, &dir).map_err(StorageError::at("rename", &dir))?;
            Ok((meta_bytes, log, snapshot, index, chunk_data))
        })();
        let (meta_bytes, mut log, mut snapshot, mut index, mut chunk_data) = match built {
            Ok(b) => b,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&staging);
                return Err(e);
            }
        };
        log.relocate(dir.join(layout::segment_name(0)));
        snapshot.relocate(dir.join(SNAPSHOT_FILE));
        index.relocate(dir.join(INDEX_FILE));
        chunk_data.relocate(dir.join(CHUNK_DATA_FILE));
        let shapes = root.join(SHAPES_DIR);
        let dirs_pending = [dir.clone(), fanout, shapes, root.to_path_buf()]
            .into_iter()
            .map(|d| (1, d))
            .collect();
        Ok(ShapeStore {
            dir,
            meta: meta.clone(),
            opts,
            segment_no: 0,
            log,
            snapshot: Some(snapshot),
            index,
            chunk_data,
            snapshot_chunks: 0,
            last_offset: None,
            last_commit_lsn: 0,
            last_chunk_end: None,
            open_chunk: Vec::new(),
            index_synced: 0,
            chunk_data_synced: 0,
            durable: None,
            change_no: 1,
            unsynced_segments: Vec::new(),
            // Rewritten durably by the first sync (the staged copy was never fsynced).
            meta_pending: Some((1, Arc::new(meta_bytes))),
            dirs_pending,
            paths_pending: Vec::new(),
        })
    }

    /// Reopens a recovered shape for appending where recovery left it (its torn tail already
    /// cut off on disk). `durable_lsn()` stays 0 until the first sync, which also fsyncs every
    /// file recovery read.
    pub fn resume(
        meta: ShapeMeta,
        at: ResumePoint,
        opts: StoreOptions,
    ) -> Result<ShapeStore, StorageError> {
        let dir = at.dir;
        let log =
            AppendFile::open_existing(dir.join(layout::segment_name(at.segment)), at.segment_len)?;
        let index = AppendFile::open_existing(dir.join(INDEX_FILE), at.index_len)?;
        let chunk_data = AppendFile::open_existing(dir.join(CHUNK_DATA_FILE), at.chunk_data_len)?;
        let snapshot = if meta.snapshot_complete {
            None
        } else {
            Some(AppendFile::open_existing(
                dir.join(SNAPSHOT_FILE),
                at.snapshot_len,
            )?)
        };
        let mut paths_pending: Vec<(u64, PathBuf)> = (0..at.segment)
            .map(|n| (1, dir.join(layout::segment_name(n))))
            .collect();
        paths_pending.push((1, dir.join(SNAPSHOT_FILE)));
        paths_pending.push((1, dir.join(META_FILE)));
        paths_pending.push((1, dir.join(INDEX_FILE)));
        paths_pending.push((1, dir.join(CHUNK_DATA_FILE)));
        Ok(ShapeStore {
            dirs_pending: vec![(1, dir.clone())],
            dir,
            meta,
            opts,
            segment_no: at.segment,
            log,
            snapshot,
            index,
            chunk_data,
            snapshot_chunks: at.snapshot_chunks,
            last_offset: at.last_offset,
            last_commit_lsn: at.last_commit_lsn,
            last_chunk_end: at.last_chunk_end,
            open_chunk: at.open_chunk,
            index_synced: at.index_len,
            chunk_data_synced: at.chunk_data_len,
            durable: None,
            change_no: 1,
            unsynced_segments: Vec::new(),
            meta_pending: None,
            paths_pending,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn meta(&self) -> &ShapeMeta {
        &self.meta
    }

    fn check_len(len: usize) -> Result<(), StorageError> {
        if len > record::MAX_PAYLOAD {
            return Err(StorageError::TooLarge {
                len,
                max: record::MAX_PAYLOAD,
            });
        }
        Ok(())
    }

    /// Appends one closed snapshot chunk (`0_n`, its entries comma-joined; the record holds
    /// them in brackets, [`record::encode_chunk`]). Returns where its record lies in
    /// `snapshot.data` (in the buffer until [`Self::flush_snapshot`]). On error nothing was
    /// appended.
    pub fn append_snapshot_chunk(&mut self, chunk: &[u8]) -> Result<ChunkPos, StorageError> {
        assert!(!self.meta.snapshot_complete, "snapshot chunk after the end");
        Self::check_len(record::chunk_payload_len(chunk.len()))?;
        let file = self
            .snapshot
            .as_mut()
            .expect("the snapshot file is open until the snapshot completes");
        if file.buffered() >= self.opts.flush_bytes {
            file.flush()?;
        }
        assert!(self.snapshot_chunks < u32::MAX);
        let record_at = file.logical_len();
        record::encode_chunk(
            file.buf_mut(),
            KIND_SNAPSHOT_CHUNK,
            0,
            u64::from(self.snapshot_chunks),
            chunk,
        );
        self.snapshot_chunks += 1;
        Ok(ChunkPos {
            record_at,
            len: record::chunk_payload_len(chunk.len()) as u64,
        })
    }

    /// Hands the snapshot chunks appended so far to the OS (no fsync): from then on they can be
    /// served from the file. On error the buffer is kept and the next flush retries.
    pub fn flush_snapshot(&mut self) -> Result<(), StorageError> {
        match &mut self.snapshot {
            Some(file) => file.flush(),
            // Released only once complete and flushed.
            None => Ok(()),
        }
    }

    /// [`Self::flush_snapshot`] done on another thread: the snapshot records appended so far as
    /// one write ([`PendingWrite::run`]), from now on counted as handed to the OS. Until it has
    /// completed their range must not be read; if it fails the shape must be dropped.
    pub fn take_snapshot_write(&mut self) -> Result<Option<PendingWrite>, StorageError> {
        match &mut self.snapshot {
            Some(file) => file.take_pending(),
            None => Ok(None),
        }
    }

    /// Takes back the buffer of a completed [`Self::take_snapshot_write`] for the next chunk.
    pub fn recycle_snapshot_buffer(&mut self, buf: Vec<u8>) {
        if let Some(file) = &mut self.snapshot {
            file.recycle(buf);
        }
    }

    /// The snapshot file's path.
    pub fn snapshot_path(&self) -> PathBuf {
        self.dir.join(SNAPSHOT_FILE)
    }

    /// Appends the last snapshot chunk (its rows followed by the snapshot-end control message,
    /// exactly as served) and records the snapshot as complete with its xid snapshot.
    ///
    /// The completion reaches the disk with the next sync, which installs the new metadata
    /// only after `snapshot.data` is durable. Until then a restart finds the snapshot
    /// incomplete (the shape is then rebuilt).
    pub fn finish_snapshot(
        &mut self,
        last_chunk: &[u8],
        pg: SnapshotRecord,
    ) -> Result<ChunkPos, StorageError> {
        let pos = self.append_snapshot_chunk(last_chunk)?;
        self.meta.snapshot = Some(pg);
        self.meta.snapshot_complete = true;
        self.meta.snapshot_chunks = self.snapshot_chunks;
        self.change_no += 1;
        self.meta_pending = Some((self.change_no, Arc::new(meta::encode(&self.meta))));
        Ok(pos)
    }

    /// Appends one transaction's entries for this shape, then its commit marker. Offsets must
    /// increase strictly and `commit_lsn` must exceed the previous one; an empty `entries`
    /// writes just the marker (it records that the shape has seen `commit_lsn`).
    ///
    /// Returns the bytes buffered. On error (a payload over the limit, or the disk full while
    /// writing earlier buffered data) the transaction is not in the store and may be retried.
    pub fn append_txn<I, B>(&mut self, entries: I, commit_lsn: u64) -> Result<usize, StorageError>
    where
        I: IntoIterator<Item = (LogOffset, B)>,
        B: AsRef<[u8]>,
    {
        assert!(
            self.meta.snapshot_complete,
            "log entries before the snapshot finished"
        );
        assert!(
            commit_lsn > self.last_commit_lsn,
            "commit LSN {commit_lsn} after {}",
            self.last_commit_lsn
        );
        if self.log.buffered() >= self.opts.flush_bytes {
            self.log.flush()?;
        }
        if self.log.logical_len() >= self.opts.segment_bytes {
            self.roll_segment()?;
        }
        let start_len = self.log.logical_len();
        let open_before = self.open_chunk.len();
        let buf_before = self.log.buffered();
        let mut last = self.last_offset;
        let mut count = 0u64;
        for (offset, payload) in entries {
            let payload = payload.as_ref();
            assert!(
                offset.is_real() && offset.tx <= commit_lsn,
                "entry {offset} in transaction {commit_lsn}"
            );
            assert!(
                last.is_none_or(|l| offset > l),
                "log offsets must increase: {offset} after {last:?}"
            );
            if let Err(e) = Self::check_len(payload.len()) {
                // Undo this transaction's partial encoding.
                self.log.buf_mut().truncate(buf_before);
                self.open_chunk.truncate(open_before);
                return Err(e);
            }
            let start = self.pos();
            record::encode(
                self.log.buf_mut(),
                KIND_ENTRY,
                offset.tx,
                offset.op,
                payload,
            );
            let end = self.pos();
            self.open_chunk.push(OpenEntry { offset, start, end });
            last = Some(offset);
            count += 1;
        }
        record::encode(self.log.buf_mut(), KIND_COMMIT, commit_lsn, count, b"");
        self.last_offset = last;
        self.last_commit_lsn = commit_lsn;
        Ok((self.log.logical_len() - start_len) as usize)
    }

    fn pos(&self) -> LogPos {
        LogPos {
            segment: self.segment_no,
            pos: self.log.logical_len(),
        }
    }

    /// Closes the real-log chunk ending at entry `last` (an appended entry after the previous
    /// chunk end; it may lie inside a transaction, as chunk boundaries are per entry), and
    /// appends its bytes as served (`bytes`, the entries comma-joined, recorded in brackets:
    /// [`record::encode_chunk`]) and its entry index (`index`, a CHUNK_INDEX payload: starts
    /// within `bytes`) to `chunks.data`. Returns where those two records lie (in the buffer
    /// until [`Self::flush_chunk_data`]), or `None` for a chunk over the record limit (served
    /// from memory; one giant entry).
    pub fn close_chunk(
        &mut self,
        last: LogOffset,
        bytes: &[u8],
        index: &[u8],
    ) -> Option<(ChunkPos, ChunkPos)> {
        self.close_chunk_boundary(last);
        let data_len = record::chunk_payload_len(bytes.len());
        if Self::check_len(data_len).is_err() || Self::check_len(index.len()).is_err() {
            return None;
        }
        let data_at = self.chunk_data.logical_len();
        let buf = self.chunk_data.buf_mut();
        record::encode_chunk(buf, KIND_CHUNK_DATA, last.tx, last.op, bytes);
        let index_at = data_at + record::encoded_len(data_len) as u64;
        record::encode(buf, KIND_CHUNK_INDEX, last.tx, last.op, index);
        let data = ChunkPos {
            record_at: data_at,
            len: data_len as u64,
        };
        let entries = ChunkPos {
            record_at: index_at,
            len: index.len() as u64,
        };
        Some((data, entries))
    }

    /// Hands the closed chunks' bytes to the OS (no fsync: derived data), so they can be served
    /// from `chunks.data`. On error the buffer is kept for the next flush.
    pub fn flush_chunk_data(&mut self) -> Result<(), StorageError> {
        self.chunk_data.flush()
    }

    /// `chunks.data`'s path.
    pub fn chunk_data_path(&self) -> PathBuf {
        self.dir.join(CHUNK_DATA_FILE)
    }

    fn close_chunk_boundary(&mut self, last: LogOffset) {
        let i = self
            .open_chunk
            .iter()
            .position(|e| e.offset == last)
            .unwrap_or_else(|| panic!("close_chunk({last}): not an entry of the open chunk"));
        let first = self.open_chunk[0];
        let end = self.open_chunk[i];
        record::encode(self.log.buf_mut(), KIND_CHUNK_END, last.tx, last.op, b"");
        ChunkIndexEntry {
            first: first.offset,
            last,
            start: first.start,
            end: end.end,
        }
        .encode(self.index.buf_mut());
        self.open_chunk.drain(..=i);
        self.last_chunk_end = Some(last);
    }

    fn roll_segment(&mut self) -> Result<(), StorageError> {
        self.log.flush()?;
        let next = self.segment_no + 1;
        let new = AppendFile::create_new(self.dir.join(layout::segment_name(next)))?;
        let old = std::mem::replace(&mut self.log, new);
        let path = old.path().to_path_buf();
        self.change_no += 1;
        self.unsynced_segments
            .push((self.change_no, path, old.into_file()?));
        self.dirs_pending.push((self.change_no, self.dir.clone()));
        self.segment_no = next;
        Ok(())
    }

    /// Writes every buffer to the OS (no fsync). On error the files are as after the previous
    /// successful flush and the buffers are kept for a retry.
    pub fn flush(&mut self) -> Result<(), StorageError> {
        if let Some(s) = &mut self.snapshot {
            s.flush()?;
        }
        self.log.flush()?;
        self.index.flush()?;
        self.chunk_data.flush()
    }

    /// Flushes, then packages the fsyncs (and a pending metadata replacement) as a job for a
    /// helper thread. Report its result with [`ShapeStore::mark_durable`].
    pub fn prepare_sync(&mut self) -> Result<SyncJob, StorageError> {
        self.flush()?;
        let mut files = Vec::with_capacity(self.unsynced_segments.len() + 3);
        for (_, path, file) in &self.unsynced_segments {
            let dup = file.try_clone().map_err(StorageError::at("dup", path))?;
            files.push((path.clone(), dup));
        }
        if let Some(s) = &mut self.snapshot {
            files.push((s.path().to_path_buf(), s.sync_handle()?));
        }
        files.push((self.log.path().to_path_buf(), self.log.sync_handle()?));
        let (index_len, chunk_data_len) = (self.index.logical_len(), self.chunk_data.logical_len());
        // Restart reads closed chunks from chunks.data without checking them against the log
        // (`recover_shape_lazy`), so they reach the disk before the index entries naming them.
        if chunk_data_len != self.chunk_data_synced {
            files.push((
                self.chunk_data.path().to_path_buf(),
                self.chunk_data.sync_handle()?,
            ));
        }
        if index_len != self.index_synced {
            files.push((self.index.path().to_path_buf(), self.index.sync_handle()?));
        }
        let mut dirs: Vec<PathBuf> = Vec::new();
        for (_, d) in &self.dirs_pending {
            if !dirs.contains(d) {
                dirs.push(d.clone());
            }
        }
        Ok(SyncJob {
            files,
            files_by_path: self.paths_pending.iter().map(|(_, p)| p.clone()).collect(),
            meta: self
                .meta_pending
                .as_ref()
                .map(|(_, b)| (self.dir.clone(), b.clone())),
            dirs,
            point: SyncPoint {
                lsn: self.last_commit_lsn,
                last_offset: self.last_offset,
                change_no: self.change_no,
                index_len,
                chunk_data_len,
            },
        })
    }

    /// Records a completed [`SyncJob`]: what it covered is durable and no longer pending.
    pub fn mark_durable(&mut self, point: SyncPoint) {
        let covered = |tag: &u64| *tag <= point.change_no;
        self.unsynced_segments.retain(|(t, _, _)| !covered(t));
        self.dirs_pending.retain(|(t, _)| !covered(t));
        self.paths_pending.retain(|(t, _)| !covered(t));
        if self.meta_pending.as_ref().is_some_and(|(t, _)| covered(t)) {
            self.meta_pending = None;
        }
        if self.meta.snapshot_complete
            && self.meta_pending.is_none()
            && self.snapshot.as_ref().is_some_and(|s| s.buffered() == 0)
        {
            // Never written again: release the descriptor (10,000s of shapes stay open).
            self.snapshot = None;
        }
        self.index_synced = self.index_synced.max(point.index_len);
        self.chunk_data_synced = self.chunk_data_synced.max(point.chunk_data_len);
        if self.durable.is_none_or(|d| point.lsn >= d.lsn) {
            self.durable = Some(point);
        }
        // An idle shape keeps no descriptor open (the next append reopens its files).
        self.log.release();
        self.index.release();
        self.chunk_data.release();
    }

    /// Flush, fsync and install pending metadata on this thread (blocking).
    pub fn sync(&mut self) -> Result<SyncPoint, StorageError> {
        let job = self.prepare_sync()?;
        let point = job.run()?;
        self.mark_durable(point);
        Ok(point)
    }

    /// Commit LSN of the last transaction known to be on stable storage (0: none yet).
    pub fn durable_lsn(&self) -> u64 {
        self.durable.map_or(0, |d| d.lsn)
    }

    /// Offset of the last log entry known to be on stable storage.
    pub fn last_durable_offset(&self) -> Option<LogOffset> {
        self.durable.and_then(|d| d.last_offset)
    }

    /// Commit LSN of the last appended transaction (durable or not).
    pub fn last_commit_lsn(&self) -> u64 {
        self.last_commit_lsn
    }

    pub fn last_offset(&self) -> Option<LogOffset> {
        self.last_offset
    }

    pub fn last_chunk_end(&self) -> Option<LogOffset> {
        self.last_chunk_end
    }

    /// Deletes the shape's directory. Blocking (fsync): the metadata file goes first and
    /// durably, so a crash part-way leaves a directory that recovery rejects, never a shape
    /// that could be served again (an invalidated shape must not come back after a restart).
    pub fn remove(self) -> Result<(), StorageError> {
        let dir = self.dir.clone();
        drop(self);
        remove_shape_dir(&dir)
    }
}

/// Deletes a shape directory (also one that recovery rejected), metadata first. Blocking.
pub fn remove_shape_dir(dir: &Path) -> Result<(), StorageError> {
    let meta = dir.join(META_FILE);
    match std::fs::remove_file(&meta) {
        Ok(()) => fsio::fsync_dir(dir)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(StorageError::io("remove", &meta, e)),
    }
    std::fs::remove_dir_all(dir).map_err(StorageError::at("remove directory", dir))?;
    if let Some(parent) = dir.parent() {
        fsio::fsync_dir(parent)?;
    }
    Ok(())
}
