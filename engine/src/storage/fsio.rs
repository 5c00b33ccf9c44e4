//! Small file-system helpers: a buffered append-only file that never leaves a partial write
//! behind, directory fsync, and atomic whole-file replacement.

use super::error::StorageError;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// An append-only file written through an in-memory buffer at explicit positions, so a failed
/// write (disk full) can be cut back to the last complete flush and retried later.
///
/// The descriptor is opened lazily and released when the shape goes idle
/// ([`AppendFile::release`]): with tens of thousands of shapes, keeping every log open would
/// exhaust the process's file descriptors.
#[derive(Debug)]
pub struct AppendFile {
    path: PathBuf,
    file: Option<File>,
    /// Bytes handed to the OS so far (the file's length).
    written: u64,
    buf: Vec<u8>,
}

impl AppendFile {
    /// Creates the file, failing if it exists.
    pub fn create_new(path: PathBuf) -> Result<Self, StorageError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(StorageError::at("create", &path))?;
        Ok(AppendFile {
            path,
            file: Some(file),
            written: 0,
            buf: Vec::new(),
        })
    }

    /// Opens an existing file whose valid content ends at `len` (recovery already cut it there).
    pub fn open_existing(path: PathBuf, len: u64) -> Result<Self, StorageError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(StorageError::at("open", &path))?;
        Ok(AppendFile {
            path,
            file: Some(file),
            written: len,
            buf: Vec::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Length including buffered bytes: the position the next appended byte will have.
    pub fn logical_len(&self) -> u64 {
        self.written + self.buf.len() as u64
    }

    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The buffer to append encoded bytes to.
    pub fn buf_mut(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Hands the buffer to the OS. On failure the file is cut back to its previous length and
    /// the buffer kept, so the file never holds half a flush and the next call retries.
    pub fn flush(&mut self) -> Result<(), StorageError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let written = self.written;
        self.open()?;
        let file = self.file.as_ref().expect("opened above");
        if let Err(e) = file.write_all_at(&self.buf, written) {
            // Shrinking needs no free space; if even that fails, recovery trims the tail.
            let _ = file.set_len(written);
            return Err(StorageError::io("write", &self.path, e));
        }
        self.written += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// The open descriptor, reopening the file if it was released.
    fn open(&mut self) -> Result<&File, StorageError> {
        if self.file.is_none() {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&self.path)
                .map_err(StorageError::at("reopen", &self.path))?;
            self.file = Some(f);
        }
        Ok(self.file.as_ref().expect("opened above"))
    }

    /// A handle for `fsync` on another thread. With nothing buffered the open descriptor itself
    /// is handed over (the next write reopens the file), so a sync job does not double the
    /// descriptors of every shape it covers.
    pub fn sync_handle(&mut self) -> Result<File, StorageError> {
        if self.buf.is_empty() {
            if let Some(f) = self.file.take() {
                return Ok(f);
            }
        }
        let path = self.path.clone();
        self.open()?
            .try_clone()
            .map_err(StorageError::at("dup", &path))
    }

    /// Closes the descriptor when nothing is buffered; the next write reopens it.
    pub fn release(&mut self) {
        if self.buf.is_empty() {
            self.file = None;
        }
    }
}

pub fn fsync_file(file: &File, path: &Path) -> Result<(), StorageError> {
    file.sync_data().map_err(StorageError::at("fsync", path))
}

/// Makes created, renamed or removed directory entries durable.
pub fn fsync_dir(path: &Path) -> Result<(), StorageError> {
    let dir = File::open(path).map_err(StorageError::at("open directory", path))?;
    dir.sync_all()
        .map_err(StorageError::at("fsync directory", path))
}

/// Replaces `dir/name` with `bytes`: write `dir/tmp_name`, optionally fsync it, rename over
/// `name`, optionally fsync `dir`. A reader sees the old or the new file, never a mix.
pub fn replace_file(
    dir: &Path,
    name: &str,
    tmp_name: &str,
    bytes: &[u8],
    durable: bool,
) -> Result<(), StorageError> {
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut f = File::create(&tmp).map_err(StorageError::at("create", &tmp))?;
        f.write_all(bytes)
            .map_err(StorageError::at("write", &tmp))?;
        if durable {
            fsync_file(&f, &tmp)?;
        }
        let dst = dir.join(name);
        std::fs::rename(&tmp, &dst).map_err(StorageError::at("rename", &dst))?;
        if durable {
            fsync_dir(dir)?;
        }
        Ok(())
    })();
    if result.is_err() {
        // Leave the old file as it was and no half-written temporary behind.
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

impl AppendFile {
    /// Updates the recorded path after the containing directory was renamed.
    pub fn relocate(&mut self, path: PathBuf) {
        self.path = path;
    }

    pub fn into_file(mut self) -> Result<File, StorageError> {
        self.open()?;
        Ok(self.file.take().expect("opened above"))
    }
}

/// `syncfs(2)`: flushes every dirty file and directory of the file system holding `path` in
/// one call (errors are reported since Linux 5.8).
pub fn sync_filesystem(path: &Path) -> Result<(), StorageError> {
    let dir = File::open(path).map_err(StorageError::at("open", path))?;
    // SAFETY: `dir` owns a valid open descriptor for the duration of the call.
    let rc = unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&dir)) };
    if rc != 0 {
        return Err(StorageError::io(
            "syncfs",
            path,
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}
