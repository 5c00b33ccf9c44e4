//! `chunks.idx`: one fixed-size entry per closed real-log chunk, so a reader can find a
//! chunk's bytes without scanning the log.
//!
//! ```text
//! offset size  field (all LE)
//!      0    8  first entry offset: tx
//!      8    8  first entry offset: op
//!     16    8  last entry offset: tx
//!     24    8  last entry offset: op
//!     32    8  start position (first byte of the first entry record) in the start segment
//!     40    8  end position (one past the last entry record) in the end segment
//!     48    4  start segment number
//!     52    4  end segment number
//!     56    4  reserved, 0
//!     60    4  CRC-32C of bytes 0..60
//! ```
//!
//! The index is derived data: the `CHUNK_END` records in the log are authoritative, and
//! recovery rewrites the index from them whenever the file disagrees.

use protocol::offset::LogOffset;

pub const ENTRY_LEN: usize = 64;

/// Position of a byte in the log: `(segment number, byte position)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct LogPos {
    pub segment: u32,
    pub pos: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkIndexEntry {
    pub first: LogOffset,
    pub last: LogOffset,
    pub start: LogPos,
    pub end: LogPos,
}

impl ChunkIndexEntry {
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        for v in [
            self.first.tx,
            self.first.op,
            self.last.tx,
            self.last.op,
            self.start.pos,
            self.end.pos,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.start.segment.to_le_bytes());
        out.extend_from_slice(&self.end.segment.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        let crc = crc32c::crc32c(&out[start..]);
        out.extend_from_slice(&crc.to_le_bytes());
    }

    /// Decodes one entry; `None` if the checksum or reserved bytes are wrong.
    pub fn decode(b: &[u8; ENTRY_LEN]) -> Option<Self> {
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(a)
        };
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        if crc32c::crc32c(&b[..60]) != u32_at(60) || u32_at(56) != 0 {
            return None;
        }
        Some(ChunkIndexEntry {
            first: LogOffset::new(u64_at(0), u64_at(8)),
            last: LogOffset::new(u64_at(16), u64_at(24)),
            start: LogPos {
                segment: u32_at(48),
                pos: u64_at(32),
            },
            end: LogPos {
                segment: u32_at(52),
                pos: u64_at(40),
            },
        })
    }
}

/// Decodes the valid entries of an index file image, stopping at the first bad or partial one.
pub fn decode_all(bytes: &[u8]) -> Vec<ChunkIndexEntry> {
    bytes
        .chunks_exact(ENTRY_LEN)
        .map_while(|c| {
            <&[u8; ENTRY_LEN]>::try_from(c)
                .ok()
                .and_then(ChunkIndexEntry::decode)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bit_flips() {
        let e = ChunkIndexEntry {
            first: LogOffset::new(100, 0),
            last: LogOffset::new(200, 4),
            start: LogPos {
                segment: 0,
                pos: 10,
            },
            end: LogPos {
                segment: 1,
                pos: 99,
            },
        };
        let mut buf = Vec::new();
        e.encode(&mut buf);
        e.encode(&mut buf);
        assert_eq!(buf.len(), 2 * ENTRY_LEN);
        assert_eq!(decode_all(&buf), vec![e, e]);
        assert_eq!(decode_all(&buf[..ENTRY_LEN + 10]), vec![e]);
        for bit in 0..ENTRY_LEN * 8 {
            let mut b = buf.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(decode_all(&b).len(), 0, "bit {bit}");
        }
    }
}
