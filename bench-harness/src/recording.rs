//! A pgoutput stream held in memory: every XLogData payload back to back in one buffer.
//!
//! One contiguous buffer is what a real consumer's read buffer looks like, and it keeps the
//! decode benchmark from measuring a million scattered allocations instead of the decoder.

use std::path::Path;

use anyhow::{bail, ensure, Context as _, Result};

/// First bytes of a recording file, so a wrong file is rejected instead of misread.
const FILE_MAGIC: &[u8] = b"AMPERE-PGOUTPUT-RECORDING-1\n";
/// Bound on one message read back from a file; pgoutput messages are far smaller (a row is at
/// most 1 GB in Postgres, and this benchmark's rows are ~100 bytes).
const MAX_MESSAGE_BYTES: usize = 1 << 30;

/// Messages in arrival order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recording {
    bytes: Vec<u8>,
    /// End offset of each message in `bytes`.
    ends: Vec<usize>,
}

impl Recording {
    pub fn push(&mut self, message: &[u8]) {
        self.bytes.extend_from_slice(message);
        self.ends.push(self.bytes.len());
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Total payload bytes.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .map(|(start, end)| &self.bytes[start..end])
    }

    /// The first `count` messages.
    pub fn prefix(&self, count: usize) -> Recording {
        assert!(count <= self.len(), "prefix longer than the recording");
        let byte_len = if count == 0 { 0 } else { self.ends[count - 1] };
        Recording {
            bytes: self.bytes[..byte_len].to_vec(),
            ends: self.ends[..count].to_vec(),
        }
    }

    /// Writes the recording as the magic line, then per message a big-endian u32 length and
    /// the bytes.
    pub fn write_file(&self, path: &Path) -> Result<()> {
        let mut out = Vec::with_capacity(FILE_MAGIC.len() + self.bytes.len() + 4 * self.len());
        out.extend_from_slice(FILE_MAGIC);
        for message in self.iter() {
            let len = u32::try_from(message.len()).context("message longer than 4 GiB")?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(message);
        }
        std::fs::write(path, out).with_context(|| format!("write {}", path.display()))
    }

    pub fn read_file(path: &Path) -> Result<Recording> {
        let data = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
        Self::parse(&data).with_context(|| format!("parse {}", path.display()))
    }

    fn parse(data: &[u8]) -> Result<Recording> {
        let Some(mut rest) = data.strip_prefix(FILE_MAGIC) else {
            bail!("not a pgoutput recording (bad magic)");
        };
        let mut recording = Recording::default();
        while !rest.is_empty() {
            ensure!(rest.len() >= 4, "truncated length field");
            let (len, tail) = rest.split_at(4);
            let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
            ensure!(
                len <= MAX_MESSAGE_BYTES,
                "message length {len} exceeds the bound"
            );
            ensure!(
                len <= tail.len(),
                "message length {len} runs past the end of the file"
            );
            let (message, tail) = tail.split_at(len);
            recording.push(message);
            rest = tail;
        }
        Ok(recording)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_round_trip_keeps_message_boundaries() {
        let mut recording = Recording::default();
        for message in [&b"B123"[..], b"", b"I\x00\x01", b"C"] {
            recording.push(message);
        }
        let dir = std::env::temp_dir().join(format!("bench-rec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rec.bin");
        recording.write_file(&path).unwrap();
        let back = Recording::read_file(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(back, recording);
        assert_eq!(
            back.iter().collect::<Vec<_>>(),
            vec![&b"B123"[..], b"", b"I\x00\x01", b"C"]
        );
        assert_eq!(recording.prefix(2).iter().count(), 2);
        assert_eq!(recording.prefix(2).byte_len(), 4);
    }

    #[test]
    fn truncated_and_oversized_files_are_errors() {
        let mut data = FILE_MAGIC.to_vec();
        data.extend_from_slice(&10u32.to_be_bytes());
        data.extend_from_slice(b"short");
        assert!(Recording::parse(&data).is_err());
        assert!(Recording::parse(&FILE_MAGIC[..5]).is_err());
        let mut data = FILE_MAGIC.to_vec();
        data.extend_from_slice(&[0, 0]);
        assert!(Recording::parse(&data).is_err());
    }
}
