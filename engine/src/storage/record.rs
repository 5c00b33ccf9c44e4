//! The record framing shared by the log segments and `snapshot.data`.
//!
//! ```text
//! offset size  field
//!      0    4  payload length (u32 LE), at most MAX_PAYLOAD
//!      4    4  CRC-32C (u32 LE) of bytes 0..4 followed by bytes 8..25+len
//!      8    1  kind (ENTRY, COMMIT, CHUNK_END, SNAPSHOT_CHUNK)
//!      9    8  tx (u64 LE)
//!     17    8  op (u64 LE)
//!     25  len  payload
//! ```
//!
//! Kind 0 is never written, so a zero-filled tail (a file extended but not written before a
//! crash) never decodes as a record.

use protocol::offset::LogOffset;

/// Bytes before the payload.
pub const HEADER_LEN: usize = 25;
/// Largest payload accepted, checked before anything is allocated or sliced.
pub const MAX_PAYLOAD: usize = 256 << 20;

/// One entry of a shape's real log; `(tx, op)` is its offset, the payload its JSON.
pub const KIND_ENTRY: u8 = 1;
/// End of one transaction's entries: `tx` = commit LSN, `op` = number of entries since the
/// previous commit marker. Recovery keeps nothing after the last one.
pub const KIND_COMMIT: u8 = 2;
/// The real-log chunk that ends at entry `(tx, op)` is closed.
pub const KIND_CHUNK_END: u8 = 3;
/// Snapshot chunk number `op` (`tx` = 0); the payload is the chunk's comma-joined JSON.
pub const KIND_SNAPSHOT_CHUNK: u8 = 4;
/// In `chunks.data`: the closed real-log chunk ending at entry `(tx, op)`, its entries
/// comma-joined exactly as served.
pub const KIND_CHUNK_DATA: u8 = 5;
/// In `chunks.data`, right after a chunk's CHUNK_DATA record (same `(tx, op)`): where each of
/// its entries starts, [`CHUNK_INDEX_ENTRY_LEN`] bytes per entry (offset tx u64, op u64, start
/// u32), so a request from inside a closed chunk finds its place without keeping every
/// entry's offset in memory.
pub const KIND_CHUNK_INDEX: u8 = 6;
/// Bytes per entry of a CHUNK_INDEX payload.
pub const CHUNK_INDEX_ENTRY_LEN: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub kind: u8,
    pub tx: u64,
    pub op: u64,
    pub payload: &'a [u8],
}

/// Result of decoding at one position.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A valid record and the position right after it.
    Record(Record<'a>, usize),
    /// The bytes end inside the header or the announced payload.
    Truncated,
    /// The header or checksum is wrong.
    Bad(&'static str),
}

fn is_known_kind(kind: u8) -> bool {
    matches!(
        kind,
        KIND_ENTRY
            | KIND_COMMIT
            | KIND_CHUNK_END
            | KIND_SNAPSHOT_CHUNK
            | KIND_CHUNK_DATA
            | KIND_CHUNK_INDEX
    )
}

fn checksum(record: &[u8]) -> u32 {
    let crc = crc32c::crc32c(&record[0..4]);
    crc32c::crc32c_append(crc, &record[8..])
}

fn u32_at(buf: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&buf[at..at + 4]);
    u32::from_le_bytes(b)
}

fn u64_at(buf: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    u64::from_le_bytes(b)
}

/// Encoded size of a record with `payload_len` payload bytes.
pub fn encoded_len(payload_len: usize) -> usize {
    HEADER_LEN + payload_len
}

/// A CHUNK_INDEX payload for entries `(offset, start)` in order.
pub fn encode_chunk_index(entries: impl IntoIterator<Item = (LogOffset, u32)>) -> Vec<u8> {
    let mut out = Vec::new();
    for (offset, start) in entries {
        out.extend_from_slice(&offset.tx.to_le_bytes());
        out.extend_from_slice(&offset.op.to_le_bytes());
        out.extend_from_slice(&start.to_le_bytes());
    }
    out
}

/// In a CHUNK_INDEX payload: the position `i` of the first entry after `after` and where it
/// starts in the chunk's bytes; `None` when no entry is after it or the payload is malformed.
pub fn chunk_index_after(payload: &[u8], after: LogOffset) -> Option<(usize, u32)> {
    if !payload.len().is_multiple_of(CHUNK_INDEX_ENTRY_LEN) {
        return None;
    }
    let n = payload.len() / CHUNK_INDEX_ENTRY_LEN;
    let at = |i: usize| {
        let e = &payload[i * CHUNK_INDEX_ENTRY_LEN..(i + 1) * CHUNK_INDEX_ENTRY_LEN];
        (LogOffset::new(u64_at(e, 0), u64_at(e, 8)), u32_at(e, 16))
    };
    // First entry whose offset is greater than `after`.
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if at(mid).0 <= after {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    (lo < n).then(|| (lo, at(lo).1))
}

/// Where a record lies in its file: a snapshot chunk is served straight from its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkPos {
    /// First byte of the record (its header).
    pub record_at: u64,
    /// Payload length.
    pub len: u64,
}

impl ChunkPos {
    /// First byte of the payload.
    pub fn payload_at(&self) -> u64 {
        self.record_at + HEADER_LEN as u64
    }
}

/// A record header read on its own (the payload and checksum unchecked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub len: usize,
    pub kind: u8,
    pub tx: u64,
    pub op: u64,
}

/// Decodes a header without its payload (recovery of a complete snapshot reads headers only;
/// the checksum is verified when the payload is first read).
pub fn decode_header(h: &[u8; HEADER_LEN]) -> Result<Header, &'static str> {
    let len = u32_at(h, 0) as usize;
    if len > MAX_PAYLOAD {
        return Err("record length over the limit");
    }
    let kind = h[8];
    if !is_known_kind(kind) {
        return Err("unknown record kind");
    }
    Ok(Header {
        len,
        kind,
        tx: u64_at(h, 9),
        op: u64_at(h, 17),
    })
}

/// Appends one record to `out`. The caller has checked `payload.len() <= MAX_PAYLOAD`.
pub fn encode(out: &mut Vec<u8>, kind: u8, tx: u64, op: u64, payload: &[u8]) {
    encode_parts(out, kind, tx, op, &[payload]);
}

/// Payload length of a served chunk's record (SNAPSHOT_CHUNK, CHUNK_DATA) whose entries,
/// comma-joined, are `entries_len` bytes: the entries in the JSON array's brackets.
pub const fn chunk_payload_len(entries_len: usize) -> usize {
    entries_len + 2
}

/// Appends the record of a served chunk (SNAPSHOT_CHUNK or CHUNK_DATA): its payload is
/// `[` + `entries` (comma-joined) + `]`, the body of a response for the whole chunk, so that
/// such a response is one file range (one `sendfile`, nothing written after it). The caller
/// has checked `chunk_payload_len(entries.len()) <= MAX_PAYLOAD`.
pub fn encode_chunk(out: &mut Vec<u8>, kind: u8, tx: u64, op: u64, entries: &[u8]) {
    encode_parts(out, kind, tx, op, &[b"[", entries, b"]"]);
}

/// Appends one record whose payload is `parts` concatenated.
fn encode_parts(out: &mut Vec<u8>, kind: u8, tx: u64, op: u64, parts: &[&[u8]]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    assert!(len <= MAX_PAYLOAD, "payload length checked by the caller");
    assert!(is_known_kind(kind));
    let start = out.len();
    out.reserve(HEADER_LEN + len);
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.push(kind);
    out.extend_from_slice(&tx.to_le_bytes());
    out.extend_from_slice(&op.to_le_bytes());
    for part in parts {
        out.extend_from_slice(part);
    }
    let crc = checksum(&out[start..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Decodes the record starting at `pos` of `buf`. Never panics, whatever `buf` holds.
pub fn decode(buf: &[u8], pos: usize) -> Decoded<'_> {
    let Some(rest) = buf.get(pos..) else {
        return Decoded::Truncated;
    };
    if rest.len() < HEADER_LEN {
        return Decoded::Truncated;
    }
    let len = u32_at(rest, 0) as usize;
    if len > MAX_PAYLOAD {
        return Decoded::Bad("record length over the limit");
    }
    let kind = rest[8];
    if !is_known_kind(kind) {
        return Decoded::Bad("unknown record kind");
    }
    if rest.len() - HEADER_LEN < len {
        return Decoded::Truncated;
    }
    let record = &rest[..HEADER_LEN + len];
    if checksum(record) != u32_at(rest, 4) {
        return Decoded::Bad("record checksum mismatch");
    }
    let tx = u64_at(rest, 9);
    let op = u64_at(rest, 17);
    Decoded::Record(
        Record {
            kind,
            tx,
            op,
            payload: &record[HEADER_LEN..],
        },
        pos + HEADER_LEN + len,
    )
}

/// Whether a valid record of one of `kinds` starts anywhere in `buf[from..]`.
///
/// Used after an invalid record to tell a torn tail (nothing valid follows) from damage in the
/// middle of the file (a valid transaction boundary follows, so data that may have been
/// acknowledged would be lost by trimming). The cheap prefilter on the kind byte and an
/// in-bounds length keeps this linear on garbage.
pub fn valid_record_after(buf: &[u8], from: usize, kinds: &[u8]) -> Option<usize> {
    let last_start = buf.len().checked_sub(HEADER_LEN)?;
    let mut q = from;
    while q <= last_start {
        let kind = buf[q + 8];
        if kinds.contains(&kind) {
            let len = u32_at(buf, q) as usize;
            // Transaction boundaries (COMMIT, CHUNK_END) are always empty: checking that first
            // keeps the scan linear on garbage instead of checksumming a random length at
            // every candidate position.
            let plausible = if kind == KIND_COMMIT || kind == KIND_CHUNK_END {
                len == 0
            } else {
                len <= buf.len() - q - HEADER_LEN
            };
            if plausible {
                if let Decoded::Record(..) = decode(buf, q) {
                    return Some(q);
                }
            }
        }
        q += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_truncation() {
        let mut buf = Vec::new();
        encode(&mut buf, KIND_ENTRY, 7, 3, b"{\"a\":1}");
        encode(&mut buf, KIND_COMMIT, 7, 1, b"");
        let Decoded::Record(r, next) = decode(&buf, 0) else {
            panic!("first record")
        };
        assert_eq!(
            (r.kind, r.tx, r.op, r.payload),
            (KIND_ENTRY, 7, 3, &b"{\"a\":1}"[..])
        );
        let Decoded::Record(c, end) = decode(&buf, next) else {
            panic!("second record")
        };
        assert_eq!((c.kind, c.tx, c.op, end), (KIND_COMMIT, 7, 1, buf.len()));
        for cut in 0..next {
            assert_eq!(decode(&buf[..cut], 0), Decoded::Truncated, "cut at {cut}");
        }
        assert_eq!(decode(&buf, buf.len()), Decoded::Truncated);
        assert_eq!(decode(&buf, buf.len() + 10), Decoded::Truncated);
    }

    #[test]
    fn chunk_records_hold_their_entries_in_brackets() {
        let mut buf = Vec::new();
        encode_chunk(&mut buf, KIND_SNAPSHOT_CHUNK, 0, 4, b"{\"a\":1},{\"b\":2}");
        let Decoded::Record(r, end) = decode(&buf, 0) else {
            panic!("a record")
        };
        assert_eq!(r.payload, &b"[{\"a\":1},{\"b\":2}]"[..]);
        assert_eq!(r.payload.len(), chunk_payload_len(15));
        assert_eq!((r.kind, r.op, end), (KIND_SNAPSHOT_CHUNK, 4, buf.len()));
        // The same bytes as a record encoded from the whole payload.
        let mut whole = Vec::new();
        encode(&mut whole, KIND_SNAPSHOT_CHUNK, 0, 4, r.payload);
        assert_eq!(whole, buf);
    }

    #[test]
    fn every_bit_flip_is_detected() {
        let mut buf = Vec::new();
        encode(&mut buf, KIND_ENTRY, 1, 2, b"payload");
        for bit in 0..buf.len() * 8 {
            let mut b = buf.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(
                !matches!(decode(&b, 0), Decoded::Record(..)),
                "flip of bit {bit} went unnoticed"
            );
        }
    }

    #[test]
    fn zeros_and_huge_lengths_are_bad() {
        assert_eq!(decode(&[0; 64], 0), Decoded::Bad("unknown record kind"));
        let mut b = vec![0xff; 64];
        b[8] = KIND_ENTRY;
        assert_eq!(decode(&b, 0), Decoded::Bad("record length over the limit"));
    }

    #[test]
    fn finds_a_valid_commit_after_garbage() {
        let mut buf = vec![0x55; 100];
        assert_eq!(valid_record_after(&buf, 0, &[KIND_COMMIT]), None);
        encode(&mut buf, KIND_COMMIT, 9, 0, b"");
        buf.extend_from_slice(&[1, 2, 3]);
        assert_eq!(valid_record_after(&buf, 0, &[KIND_COMMIT]), Some(100));
        assert_eq!(valid_record_after(&buf, 101, &[KIND_COMMIT]), None);
        assert_eq!(valid_record_after(&buf, 0, &[KIND_CHUNK_END]), None);
    }
}
