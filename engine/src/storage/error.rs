//! Errors of the shape storage layer. Every I/O failure names the operation and the path, and
//! the two conditions an operator must act on (disk full, storage not writable) get their own
//! kinds so the engine can log them clearly and keep serving from memory.

use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// ENOSPC / EDQUOT. Nothing partial is left in the file; retry once space is freed.
    #[error("no space left on device: {op} {path}")]
    NoSpace { op: &'static str, path: PathBuf },
    /// EROFS, EACCES, EPERM: the storage directory cannot be written.
    #[error("storage is not writable (read-only or permission denied): {op} {path}: {source}")]
    ReadOnly {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The file's content is not what this format allows; the shape must be invalidated.
    #[error("corrupt {file} at byte {offset}: {what}")]
    Corrupt {
        file: PathBuf,
        offset: u64,
        what: String,
    },
    #[error(
        "{file}: format version {found} is not supported (this build reads version {supported})"
    )]
    UnsupportedVersion {
        file: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("shape handle {0:?} cannot name a directory")]
    InvalidHandle(String),
    #[error("record payload of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("shape directory already exists: {0}")]
    AlreadyExists(PathBuf),
}

impl StorageError {
    /// Classifies an I/O error from `op` on `path`.
    pub fn io(op: &'static str, path: &Path, source: io::Error) -> Self {
        let path = path.to_path_buf();
        let errno = source.raw_os_error();
        if source.kind() == io::ErrorKind::StorageFull
            || errno == Some(libc::ENOSPC)
            || errno == Some(libc::EDQUOT)
        {
            return StorageError::NoSpace { op, path };
        }
        if matches!(
            source.kind(),
            io::ErrorKind::ReadOnlyFilesystem | io::ErrorKind::PermissionDenied
        ) || errno == Some(libc::EROFS)
        {
            return StorageError::ReadOnly { op, path, source };
        }
        StorageError::Io { op, path, source }
    }

    /// Adapter for `map_err`.
    pub(crate) fn at<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Self + 'a {
        move |e| Self::io(op, path, e)
    }

    pub(crate) fn corrupt(file: &Path, offset: u64, what: impl Into<String>) -> Self {
        StorageError::Corrupt {
            file: file.to_path_buf(),
            offset,
            what: what.into(),
        }
    }

    /// Whether retrying after the operator frees space can succeed.
    pub fn is_no_space(&self) -> bool {
        matches!(self, StorageError::NoSpace { .. })
    }

    /// Whether the data on disk is unusable (the shape must answer 409 and be rebuilt).
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            StorageError::Corrupt { .. } | StorageError::UnsupportedVersion { .. }
        )
    }

    /// The process ran short of something (descriptors, memory, threads): trying again later
    /// may work, and the files are not to blame.
    pub fn is_resource_shortage(&self) -> bool {
        match self {
            StorageError::Io { source, .. } => matches!(
                source.raw_os_error(),
                Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::EAGAIN | libc::EINTR)
            ),
            _ => false,
        }
    }
}
