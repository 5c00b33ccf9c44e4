//! Durability as a value: [`ShapeStore::prepare_sync`](super::ShapeStore::prepare_sync) writes
//! the buffers to the OS and returns a [`SyncJob`] that owns duplicated file handles, so the
//! blocking part (fsync, the metadata rename) can run on a helper thread while the core keeps
//! appending. The core then reports the result back with
//! [`ShapeStore::mark_durable`](super::ShapeStore::mark_durable).

use super::error::StorageError;
use super::fsio;
use super::layout::{META_FILE, META_TMP_FILE};
use protocol::offset::LogOffset;
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

/// What a completed [`SyncJob`] made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncPoint {
    /// Commit LSN of the last transaction now on stable storage (0 if none).
    pub lsn: u64,
    /// Offset of the last log entry now on stable storage.
    pub last_offset: Option<LogOffset>,
    /// Pending store changes (metadata, new files, rolled segments) up to this number are
    /// covered.
    pub(crate) change_no: u64,
    /// `chunks.idx` and `chunks.data` are durable up to these lengths.
    pub(crate) index_len: u64,
    pub(crate) chunk_data_len: u64,
}

/// The blocking half of a sync. `Send`, holds no borrow of the store.
#[derive(Debug)]
pub struct SyncJob {
    /// Data files in the order they must reach the disk (older segments first).
    pub(crate) files: Vec<(PathBuf, File)>,
    /// Files fsynced by path (opened here), e.g. a metadata file recovery read.
    pub(crate) files_by_path: Vec<PathBuf>,
    /// New metadata image to install atomically into this directory after the data is durable.
    pub(crate) meta: Option<(PathBuf, Arc<Vec<u8>>)>,
    /// Directories whose entries changed (new files, renames), fsynced last.
    pub(crate) dirs: Vec<PathBuf>,
    pub(crate) point: SyncPoint,
}

impl SyncJob {
    /// Runs the fsyncs and the metadata replacement. Blocking: call it off the core.
    ///
    /// On error nothing is reported durable; the store keeps everything pending and the next
    /// job retries it. An fsync error can mean the kernel dropped dirty pages (it does not
    /// keep them after reporting the error), so the caller should invalidate the shape rather
    /// than trust a later successful fsync.
    pub fn run(self) -> Result<SyncPoint, StorageError> {
        for (path, file) in &self.files {
            fsio::fsync_file(file, path)?;
        }
        for path in &self.files_by_path {
            let f = File::open(path).map_err(StorageError::at("open", path))?;
            fsio::fsync_file(&f, path)?;
        }
        if let Some((dir, bytes)) = &self.meta {
            fsio::replace_file(dir, META_FILE, META_TMP_FILE, bytes, true)?;
        }
        for dir in &self.dirs {
            fsio::fsync_dir(dir)?;
        }
        Ok(self.point)
    }

    /// The non-fsync half of [`SyncJob::run`] for group commit: installs pending metadata
    /// (write + rename, no fsync) and returns the point, which becomes durable only after a
    /// following [`sync_filesystem`](super::sync_filesystem) of the storage file system
    /// succeeds. With many dirty shapes, one `syncfs` replaces an fsync per file.
    pub fn run_deferred(self) -> Result<SyncPoint, StorageError> {
        if let Some((dir, bytes)) = &self.meta {
            fsio::replace_file(dir, META_FILE, META_TMP_FILE, bytes, false)?;
        }
        Ok(self.point)
    }

    /// What the job will make durable when it succeeds.
    pub fn point(&self) -> SyncPoint {
        self.point
    }
}
