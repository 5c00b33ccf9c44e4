//! One owner per storage directory: an exclusive `flock` on `<storage>/ampere.lock`, taken
//! before anything under the directory (recovery, the embedded Postgres) is touched and held for
//! the life of the process (the kernel drops it when the process ends, also on `kill -9`).
//!
//! Two instances on one directory would recover and append to the same shape files and stop
//! each other's embedded Postgres; the second one must stop at once with a clear message instead.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub const LOCK_FILE: &str = "ampere.lock";

/// Proof that this process owns the storage directory (see the module doc).
#[derive(Debug)]
pub struct StorageLock {
    _file: File,
    path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "the storage directory {dir} is in use by another ampere process{holder} (lock held on \
         {lock}); give each instance its own ELECTRIC_STORAGE_DIR"
    )]
    InUse {
        dir: PathBuf,
        lock: PathBuf,
        holder: String,
    },
    #[error("cannot lock the storage directory: {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl StorageLock {
    /// Creates the directory if needed and takes the lock without waiting.
    pub fn acquire(dir: &Path) -> Result<Self, LockError> {
        let io = |op, path: &Path| {
            let path = path.to_path_buf();
            move |source| LockError::Io { op, path, source }
        };
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io("open", &path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = match text.trim().parse::<u32>() {
                    Ok(pid) => format!(" (pid {pid})"),
                    Err(_) => String::new(),
                };
                return Err(LockError::InUse {
                    dir: dir.to_path_buf(),
                    lock: path,
                    holder,
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io("lock", &path)(e)),
        }
        // The holder's pid, for the message a second instance prints (informative only: the
        // lock, not this content, is what excludes).
        file.set_len(0).map_err(io("truncate", &path))?;
        file.seek(SeekFrom::Start(0)).map_err(io("seek", &path))?;
        writeln!(file, "{}", std::process::id()).map_err(io("write", &path))?;
        Ok(Self { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_directory_is_refused_until_the_first_is_dropped() {
        let dir = std::env::temp_dir().join(format!("ampere-lock-test-{}", std::process::id()));
        let first = StorageLock::acquire(&dir).expect("first lock");
        let err = StorageLock::acquire(&dir).expect_err("second lock");
        let text = err.to_string();
        assert!(matches!(err, LockError::InUse { .. }), "{text}");
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        drop(first);
        let again = StorageLock::acquire(&dir).expect("lock after release");
        assert_eq!(again.path(), dir.join(LOCK_FILE));
        drop(again);
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
