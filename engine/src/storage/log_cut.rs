//! `cut.bin`: the newest log offset a shape's log may be recovered to, with an opaque payload
//! that is true at exactly that offset (a subquery shape's views, `shapes::views_file`).
//!
//! Why a shape needs one: its log holds entries that cannot be recomputed from the WAL (a
//! move-in query reads the table as it is when it runs). Such a shape serves only entries its
//! last cut names (`shapes::log::Cap`), and recovery drops every transaction after the cut, so
//! the log after a crash ends exactly where the payload is true and holds everything a client
//! saw; what came after is rebuilt from the WAL and the payload.
//!
//! The engine writes the file after the log it names is durable, then lets clients see up to
//! it; a crash between the two leaves the previous cut, which still covers what was served.
//!
//! Format: `AMPCUT1`, the offset (tx, op little endian; `u64::MAX` twice for "no entry"), the
//! payload length and payload, then a CRC-32C of everything before it.

use super::{fsio, StorageError};
use protocol::offset::LogOffset;
use std::path::Path;

pub const FILE: &str = "cut.bin";
const TMP: &str = "cut.bin.tmp";
const MAGIC: &[u8] = b"AMPCUT1";
/// Largest file accepted.
const BYTES_MAX: u64 = 4 << 30;

/// A cut: the log's last entry (`None`: no real entry) and what is true there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogCut {
    pub last: Option<LogOffset>,
    pub payload: Vec<u8>,
}

impl LogCut {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MAGIC.len() + 28 + self.payload.len());
        out.extend_from_slice(MAGIC);
        let (tx, op) = self.last.map_or((u64::MAX, u64::MAX), |o| (o.tx, o.op));
        out.extend_from_slice(&tx.to_le_bytes());
        out.extend_from_slice(&op.to_le_bytes());
        out.extend_from_slice(&(self.payload.len() as u64).to_le_bytes());
        out.extend_from_slice(&self.payload);
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<LogCut> {
        let (body, crc) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
        if crc32c::crc32c(body).to_le_bytes() != crc {
            return None;
        }
        let rest = body.strip_prefix(MAGIC)?;
        let (head, payload) = rest.split_at_checked(24)?;
        let word = |i: usize| u64::from_le_bytes(head[i * 8..i * 8 + 8].try_into().expect("8"));
        let (tx, op, len) = (word(0), word(1), word(2));
        if payload.len() as u64 != len {
            return None;
        }
        let last = match (tx, op) {
            (u64::MAX, u64::MAX) => None,
            (tx, op) if tx > 0 => Some(LogOffset::new(tx, op)),
            _ => return None,
        };
        Some(LogCut {
            last,
            payload: payload.to_vec(),
        })
    }
}

/// Replaces the shape's cut durably (the file and its directory entry are fsynced).
pub fn write(dir: &Path, cut: &LogCut) -> Result<(), StorageError> {
    fsio::replace_file(dir, FILE, TMP, &cut.encode(), true)
}

/// Replaces the shape's cut without fsync, for a clean stop (one `syncfs` afterwards makes
/// everything durable). Its own temporary name: a sync job still running may be writing the
/// durable one.
pub fn write_unsynced(dir: &Path, cut: &LogCut) -> Result<(), StorageError> {
    fsio::replace_file(dir, FILE, "cut.bin.stop.tmp", &cut.encode(), false)
}

/// The shape's cut, `Ok(None)` when it has none.
pub fn read(dir: &Path) -> Result<Option<LogCut>, StorageError> {
    let path = dir.join(FILE);
    let len = match std::fs::metadata(&path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StorageError::io("stat", &path, e)),
    };
    if len > BYTES_MAX {
        return Err(StorageError::corrupt(&path, 0, "cut file too large"));
    }
    let bytes = std::fs::read(&path).map_err(StorageError::at("read", &path))?;
    LogCut::decode(&bytes)
        .map(Some)
        .ok_or_else(|| StorageError::corrupt(&path, 0, "damaged cut file"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let dir = std::env::temp_dir().join(format!("ampere-cut-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(read(&dir).unwrap(), None);
        for cut in [
            LogCut {
                last: Some(LogOffset::new(5, 2)),
                payload: b"views".to_vec(),
            },
            LogCut {
                last: None,
                payload: Vec::new(),
            },
        ] {
            write(&dir, &cut).unwrap();
            assert_eq!(read(&dir).unwrap(), Some(cut));
        }
        let path = dir.join(FILE);
        let good = std::fs::read(&path).unwrap();
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 1;
            std::fs::write(&path, &bad).unwrap();
            assert!(read(&dir).is_err(), "flipped byte {i} accepted");
        }
        for len in 0..good.len() {
            std::fs::write(&path, &good[..len]).unwrap();
            assert!(read(&dir).is_err(), "prefix of {len} bytes accepted");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
