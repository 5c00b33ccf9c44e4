//! Start-up: find every shape directory under `<storage>/shapes/` and read each one's
//! metadata ([`list_stored`]; the rest is loaded when the shape is first needed), or recover
//! each one whole ([`scan`], for tools and tests), in parallel across a few threads (the work
//! is many small reads).

use super::error::StorageError;
use super::layout::{self, SHAPES_DIR, STAGING_PREFIX};
use super::meta::ShapeMeta;
use super::recover::{read_shape_meta, recover_shape, RecoveredShape};
use std::path::{Path, PathBuf};

/// A shape directory that could not be recovered. The caller forgets the shape (requests for
/// its handle answer 409) and may delete the directory with
/// [`remove_shape_dir`](super::remove_shape_dir).
#[derive(Debug)]
pub struct ScanFailure {
    pub dir: PathBuf,
    /// The directory name (the handle, if the directory is a shape's).
    pub handle: String,
    pub error: StorageError,
}

pub type ScanResult = Result<RecoveredShape, ScanFailure>;

/// Lists and recovers every shape under `root`. Damaged shapes come back as `Err` entries;
/// only a failure to list the storage directory itself fails the whole call. Leftover
/// half-created shape directories are deleted. Results are sorted by directory.
///
/// Only for start-up: it trims files that a running [`ShapeStore`](super::ShapeStore) could be
/// writing.
pub fn scan(root: &Path) -> Result<Vec<ScanResult>, StorageError> {
    scan_with_threads(root, default_threads())
}

/// Threads for start-up's reads: one per CPU, at most 8 (the work is many small reads).
fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
}

pub fn scan_with_threads(root: &Path, threads: usize) -> Result<Vec<ScanResult>, StorageError> {
    let dirs = list_shape_dirs(root)?;
    Ok(in_parallel(&dirs, threads, |dir| {
        checked_dir(dir).and_then(|handle| {
            recover_shape(dir).map_err(|error| ScanFailure {
                dir: dir.to_path_buf(),
                handle,
                error,
            })
        })
    }))
}

/// A shape found at start-up by its metadata alone; [`recover_shape_lazy`](super::recover_shape_lazy) loads the rest
/// when the shape is first needed.
#[derive(Debug)]
pub struct StoredShape {
    pub dir: PathBuf,
    pub meta: ShapeMeta,
}

/// Lists every shape under `root` and reads its `meta.rkyv` only (nothing that grows with its
/// data), in parallel. Shapes whose directory or metadata is bad come back as `Err` entries;
/// leftover half-created shape directories are deleted. Sorted by directory.
pub fn list_stored(root: &Path) -> Result<Vec<Result<StoredShape, ScanFailure>>, StorageError> {
    let dirs = list_shape_dirs(root)?;
    Ok(in_parallel(&dirs, default_threads(), |dir| {
        checked_dir(dir).and_then(|handle| {
            read_shape_meta(dir)
                .map(|meta| StoredShape {
                    dir: dir.to_path_buf(),
                    meta,
                })
                .map_err(|error| ScanFailure {
                    dir: dir.to_path_buf(),
                    handle,
                    error,
                })
        })
    }))
}

/// `f` over `dirs` on up to `threads` threads (at least 64 directories each), in order.
fn in_parallel<T: Send>(dirs: &[PathBuf], threads: usize, f: impl Fn(&Path) -> T + Sync) -> Vec<T> {
    let threads = threads.clamp(1, 64).min(dirs.len().div_ceil(64).max(1));
    let per = dirs.len().div_ceil(threads).max(1);
    let mut results: Vec<T> = Vec::with_capacity(dirs.len());
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = dirs
            .chunks(per)
            .map(|part| s.spawn(move || part.iter().map(|d| f(d)).collect::<Vec<_>>()))
            .collect();
        for h in handles {
            match h.join() {
                Ok(part) => results.extend(part),
                // Recovery does not panic on file content; a panic is a bug to surface.
                Err(p) => std::panic::resume_unwind(p),
            }
        }
    });
    results
}

/// The directory's handle, checked: a valid handle in the fan-out directory it belongs to.
fn checked_dir(dir: &Path) -> Result<String, ScanFailure> {
    let handle = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let checked = layout::validate_handle(&handle).and_then(|()| {
        let fanout = dir
            .parent()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str());
        if fanout == Some(&handle[..2]) {
            Ok(())
        } else {
            Err(StorageError::corrupt(
                dir,
                0,
                "shape directory in the wrong fan-out directory",
            ))
        }
    });
    match checked {
        Ok(()) => Ok(handle),
        Err(error) => Err(ScanFailure {
            dir: dir.to_path_buf(),
            handle,
            error,
        }),
    }
}

fn list_shape_dirs(root: &Path) -> Result<Vec<PathBuf>, StorageError> {
    let shapes = root.join(SHAPES_DIR);
    let top = match std::fs::read_dir(&shapes) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StorageError::io("list", &shapes, e)),
    };
    let mut dirs = Vec::new();
    for fan in top {
        let fan = fan.map_err(StorageError::at("list", &shapes))?;
        if !fan.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let fan_path = fan.path();
        for entry in std::fs::read_dir(&fan_path).map_err(StorageError::at("list", &fan_path))? {
            let entry = entry.map_err(StorageError::at("list", &fan_path))?;
            let path = entry.path();
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(STAGING_PREFIX)
            {
                // A shape whose creation never completed: it was never served durably.
                std::fs::remove_dir_all(&path)
                    .map_err(StorageError::at("remove directory", &path))?;
                continue;
            }
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(path);
            }
        }
    }
    dirs.sort_unstable();
    Ok(dirs)
}
