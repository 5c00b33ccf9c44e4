//! `views.bin`: where a subquery shape's views stood when the server stopped cleanly, so the
//! shape comes back with its handle (`docs/subqueries.md`, "Restarts").
//!
//! Why only after a clean stop: a subquery shape's events and move-in rows cannot be
//! recomputed from the WAL as changes can (a move-in query reads the table as it is when it
//! runs), so after a crash the entries a client saw but the disk lost would come back
//! different. A clean stop writes every entry and then this file, naming the log entry it
//! matches; a restore reads it, removes it durably before the shape appends anything, and
//! checks it against the recovered log. No file, or one that does not match: the shape
//! rotates (409), as upstream after any restart.
//!
//! Format: `AMPVIEWS1`, the last log offset (tx, op; `u64::MAX` twice for none), the
//! dependency count, per dependency its key and values (each length-prefixed, little endian),
//! then a CRC-32C of everything before it.

use super::subquery::Value;
use protocol::offset::LogOffset;
use std::path::Path;

pub const FILE: &str = "views.bin";
const TMP: &str = "views.bin.tmp";
const MAGIC: &[u8] = b"AMPVIEWS1";
/// Largest file accepted (a view holds at most 10 million values).
const BYTES_MAX: u64 = 4 << 30;

/// Per dependency: its key and the values the shape's view held.
pub type Views = Vec<(String, Vec<Value>)>;

pub fn write(dir: &Path, last: Option<LogOffset>, views: &Views) -> Result<(), String> {
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    let (tx, op) = last.map_or((u64::MAX, u64::MAX), |o| (o.tx, o.op));
    out.extend_from_slice(&tx.to_le_bytes());
    out.extend_from_slice(&op.to_le_bytes());
    out.extend_from_slice(&(views.len() as u64).to_le_bytes());
    for (key, values) in views {
        push_bytes(&mut out, key.as_bytes());
        out.extend_from_slice(&(values.len() as u64).to_le_bytes());
        for v in values {
            push_bytes(&mut out, v);
        }
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    crate::storage::replace_file(dir, FILE, TMP, &out, true).map_err(|e| e.to_string())
}

fn push_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Reads and removes (durably) the file. `Ok(None)`: there was none.
pub fn take(dir: &Path) -> Result<Option<(Option<LogOffset>, Views)>, String> {
    let path = dir.join(FILE);
    let len = match std::fs::metadata(&path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    if len > BYTES_MAX {
        return Err(format!("{}: {len} bytes", path.display()));
    }
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    crate::storage::fsync_dir(dir).map_err(|e| e.to_string())?;
    parse(&bytes)
        .map(Some)
        .ok_or_else(|| format!("{}: damaged", path.display()))
}

fn parse(bytes: &[u8]) -> Option<(Option<LogOffset>, Views)> {
    let (body, crc) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
    if crc32c::crc32c(body).to_le_bytes() != crc {
        return None;
    }
    let mut r = Reader(body.strip_prefix(MAGIC)?);
    let (tx, op) = (r.u64()?, r.u64()?);
    let last = (tx != u64::MAX).then(|| LogOffset::new(tx, op));
    let deps = r.u64()?;
    let mut views = Vec::new();
    for _ in 0..deps {
        let key = String::from_utf8(r.bytes()?.to_vec()).ok()?;
        let count = r.u64()?;
        let mut values = Vec::new();
        for _ in 0..count {
            values.push(Value::from(r.bytes()?));
        }
        views.push((key, values));
    }
    r.0.is_empty().then_some((last, views))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn u64(&mut self) -> Option<u64> {
        let (head, rest) = self.0.split_at_checked(8)?;
        self.0 = rest;
        Some(u64::from_le_bytes(head.try_into().ok()?))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.u64()?).ok()?;
        let (head, rest) = self.0.split_at_checked(len)?;
        self.0 = rest;
        Some(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let dir = std::env::temp_dir().join(format!("ampere-views-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let views: Views = vec![
            (
                "1|SELECT".into(),
                vec![Value::from(&b"\x01a"[..]), Value::from(&b""[..])],
            ),
            ("2|x".into(), vec![]),
        ];
        let last = Some(LogOffset::new(5, 2));
        write(&dir, last, &views).unwrap();
        assert_eq!(take(&dir).unwrap(), Some((last, views.clone())));
        assert_eq!(take(&dir).unwrap(), None, "taken once");
        write(&dir, None, &views).unwrap();
        let path = dir.join(FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[12] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(take(&dir).is_err());
        std::fs::write(&path, b"short").unwrap();
        assert!(take(&dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
