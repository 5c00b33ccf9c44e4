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

    /// Hands the buffer to another thread instead of writing it here: the bytes, where they
    /// go and a descriptor to write them with ([`PendingWrite::run`]). From here on the file
    /// counts them as written (later appends go after them), so until that write has
    /// completed nothing may read or sync their range, and if it fails the file must not be
    /// used any more (its tail is cut back to where the bytes were to start).
    pub fn take_pending(&mut self) -> Result<Option<PendingWrite>, StorageError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let path = self.path.clone();
        let file = self
            .open()?
            .try_clone()
            .map_err(StorageError::at("dup", &path))?;
        let at = self.written;
        let bytes = std::mem::take(&mut self.buf);
        self.written += bytes.len() as u64;
        Ok(Some(PendingWrite {
            path,
            file,
            at,
            bytes,
        }))
    }

    /// Takes back a buffer [`PendingWrite::run`] emptied, so the next appends need no fresh
    /// memory (a snapshot chunk's record is megabytes). Kept only while nothing is buffered.
    pub fn recycle(&mut self, buf: Vec<u8>) {
        if self.buf.is_empty() && buf.capacity() > self.buf.capacity() {
            self.buf = buf;
            self.buf.clear();
        }
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

/// Bytes taken from an [`AppendFile`] ([`AppendFile::take_pending`]) to be written on another
/// thread.
#[derive(Debug)]
pub struct PendingWrite {
    path: PathBuf,
    file: File,
    at: u64,
    bytes: Vec<u8>,
}

impl PendingWrite {
    /// Where the bytes end in the file: everything before is written once this write is.
    pub fn end(&self) -> u64 {
        self.at + self.bytes.len() as u64
    }

    /// Writes the bytes at their position (no fsync; blocking: call it off the core) and
    /// returns [`Self::end`] and the emptied buffer, to be used again
    /// ([`AppendFile::recycle`]). On failure the file is cut back to where they were to start.
    pub fn run(mut self) -> Result<(u64, Vec<u8>), StorageError> {
        if let Err(e) = self.file.write_all_at(&self.bytes, self.at) {
            let _ = self.file.set_len(self.at);
            return Err(StorageError::io("write", &self.path, e));
        }
        let end = self.end();
        self.bytes.clear();
        Ok((end, self.bytes))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ampere-fsio-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A write taken to another thread keeps its place: appends after it go after it even if
    /// they reach the file first.
    #[test]
    fn a_taken_write_keeps_its_place() {
        let dir = scratch("taken");
        let path = dir.join("f");
        let mut file = AppendFile::create_new(path.clone()).unwrap();
        assert!(file.take_pending().unwrap().is_none(), "nothing buffered");
        file.buf_mut().extend_from_slice(b"abc");
        let pending = file.take_pending().unwrap().expect("buffered bytes");
        assert_eq!(pending.end(), 3);
        assert_eq!(file.logical_len(), 3);
        assert_eq!(file.buffered(), 0);
        file.buf_mut().extend_from_slice(b"def");
        file.flush().unwrap();
        let other_thread = std::thread::spawn(move || pending.run());
        let (end, buf) = other_thread.join().unwrap().unwrap();
        assert_eq!(end, 3);
        assert_eq!(std::fs::read(&path).unwrap(), b"abcdef");
        assert!(buf.is_empty() && buf.capacity() >= 3);
        file.recycle(buf);
        file.buf_mut().extend_from_slice(b"g");
        file.flush().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"abcdefg");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
