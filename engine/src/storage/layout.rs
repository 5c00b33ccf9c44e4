//! Where a shape's files live: `<storage>/shapes/<h[0..2]>/<handle>/`. The two-character
//! fan-out keeps directories small with 10,000s of shapes.

use super::error::StorageError;
use std::path::{Path, PathBuf};

pub const SHAPES_DIR: &str = "shapes";
pub const META_FILE: &str = "meta.rkyv";
pub const META_TMP_FILE: &str = "meta.rkyv.tmp";
pub const SNAPSHOT_FILE: &str = "snapshot.data";
pub const INDEX_FILE: &str = "chunks.idx";
/// Closed real-log chunks as served (derived from the log; rebuilt by recovery when short).
pub const CHUNK_DATA_FILE: &str = "chunks.data";
const SEGMENT_PREFIX: &str = "log.";
/// Prefix of a shape directory still being created (renamed into place when complete).
pub const STAGING_PREFIX: char = '.';
const STAGING_SUFFIX: &str = ".creating";
const MAX_HANDLE_LEN: usize = 128;

/// Handles become directory names: only `[A-Za-z0-9_-]`, 2 to 128 characters.
pub fn validate_handle(handle: &str) -> Result<(), StorageError> {
    let ok = (2..=MAX_HANDLE_LEN).contains(&handle.len())
        && handle
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(StorageError::InvalidHandle(handle.to_string()))
    }
}

fn fanout_dir(root: &Path, handle: &str) -> PathBuf {
    root.join(SHAPES_DIR).join(&handle[..2])
}

/// `<root>/shapes/<h[0..2]>/<handle>`; `handle` must have passed [`validate_handle`].
pub fn shape_dir(root: &Path, handle: &str) -> PathBuf {
    fanout_dir(root, handle).join(handle)
}

/// `<root>/shapes/<h[0..2]>/.<handle>.creating`.
pub fn staging_dir(root: &Path, handle: &str) -> PathBuf {
    fanout_dir(root, handle).join(format!("{STAGING_PREFIX}{handle}{STAGING_SUFFIX}"))
}

pub fn segment_name(n: u32) -> String {
    format!("{SEGMENT_PREFIX}{n}")
}

/// `log.<n>` with `n` in canonical decimal (no sign, no leading zero).
pub fn parse_segment_name(name: &str) -> Option<u32> {
    let digits = name.strip_prefix(SEGMENT_PREFIX)?;
    if digits.is_empty() || (digits.len() > 1 && digits.starts_with('0')) {
        return None;
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_and_segments() {
        assert!(validate_handle("3833821-1721812114261").is_ok());
        for bad in ["", "a", "../x", "a/b", ".hidden", "a b", &"x".repeat(129)] {
            assert!(validate_handle(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            shape_dir(Path::new("/s"), "38-1"),
            Path::new("/s/shapes/38/38-1")
        );
        assert_eq!(parse_segment_name(&segment_name(12)), Some(12));
        for bad in [
            "log.",
            "log.01",
            "log.-1",
            "log.1x",
            "log.99999999999",
            "meta.rkyv",
        ] {
            assert_eq!(parse_segment_name(bad), None, "{bad}");
        }
    }
}
