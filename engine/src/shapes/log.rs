//! A shape's log: the snapshot part (chunks `0_0`, `0_1`, …) and the real part (entries at
//! `(commit LSN, op)` offsets), each entry stored as its final JSON bytes, cut into chunks at the
//! byte threshold so that a response always ends on a reproducible boundary.
//!
//! Closed chunks are one contiguous buffer each, and a response is a few byte ranges of them
//! (`Bytes::slice`: no copy, no re-encoding). The open chunk of the real log keeps its entries as
//! separate buffers until it closes, then they are joined once.
//!
//! Layout is deliberately the one a file-backed log needs (append-only entries with offsets, a
//! chunk index of `(first, last, byte range)`), so persistence can write the same records.

use bytes::Bytes;
use protocol::offset::LogOffset;

/// Where a request lands and what to send.
#[derive(Debug)]
pub struct Slice {
    /// Comma-separated JSON entries (no brackets), as byte ranges to write in order.
    pub parts: Vec<Bytes>,
    /// The `electric-offset` of the response: the chunk end.
    pub chunk_end: LogOffset,
    /// Number of entries in `parts`.
    pub entries: usize,
}

struct ClosedChunk {
    last: LogOffset,
    /// Entries joined with `,`.
    buf: Bytes,
    /// Offset of each entry and its byte range in `buf`.
    index: Vec<(LogOffset, u32, u32)>,
}

pub struct ShapeLog {
    threshold: u64,
    snapshot_chunks: Vec<Bytes>,
    snapshot_open: Vec<u8>,
    snapshot_open_bytes: u64,
    snapshot_done: bool,
    closed: Vec<ClosedChunk>,
    open: Vec<(LogOffset, Bytes)>,
    open_bytes: u64,
    bytes_total: u64,
}

impl ShapeLog {
    pub fn new(threshold: u64) -> Self {
        assert!(threshold > 0);
        Self {
            threshold,
            snapshot_chunks: Vec::new(),
            snapshot_open: Vec::new(),
            snapshot_open_bytes: 0,
            snapshot_done: false,
            closed: Vec::new(),
            open: Vec::new(),
            open_bytes: 0,
            bytes_total: 0,
        }
    }

    pub fn bytes_total(&self) -> u64 {
        self.bytes_total
    }

    /// Appends one snapshot row; closes the chunk when the running size reaches the threshold
    /// and returns the closed chunk's bytes (to persist them).
    pub fn push_snapshot_row(&mut self, json: &[u8]) -> Option<Bytes> {
        assert!(!self.snapshot_done, "snapshot rows after snapshot-end");
        if !self.snapshot_open.is_empty() {
            self.snapshot_open.push(b',');
        }
        self.snapshot_open.extend_from_slice(json);
        self.snapshot_open_bytes += json.len() as u64 + 1;
        self.bytes_total += json.len() as u64 + 1;
        if self.snapshot_open_bytes >= self.threshold {
            let buf = Bytes::from(std::mem::take(&mut self.snapshot_open));
            self.snapshot_chunks.push(buf.clone());
            self.snapshot_open_bytes = 0;
            return Some(buf);
        }
        None
    }

    /// Appends the snapshot-end control message and closes the snapshot part; returns the last
    /// chunk's bytes.
    pub fn finish_snapshot(&mut self, snapshot_end: &[u8]) -> Bytes {
        assert!(!self.snapshot_done);
        if !self.snapshot_open.is_empty() {
            self.snapshot_open.push(b',');
        }
        self.snapshot_open.extend_from_slice(snapshot_end);
        let buf = Bytes::from(std::mem::take(&mut self.snapshot_open));
        self.snapshot_chunks.push(buf.clone());
        self.snapshot_done = true;
        buf
    }

    /// Rebuilds a log from storage: complete snapshot chunks, entries, and the last offset of
    /// every closed chunk (entries after the last boundary form the open chunk).
    pub fn restore(
        threshold: u64,
        snapshot_chunks: Vec<Bytes>,
        entries: Vec<(LogOffset, Bytes)>,
        chunk_ends: &[LogOffset],
    ) -> Self {
        let mut log = Self::new(threshold);
        log.bytes_total = snapshot_chunks.iter().map(|c| c.len() as u64).sum();
        log.snapshot_chunks = snapshot_chunks;
        log.snapshot_done = true;
        let mut ends = chunk_ends.iter().peekable();
        for (offset, json) in entries {
            log.bytes_total += json.len() as u64;
            log.open_bytes += json.len() as u64;
            log.open.push((offset, json));
            // Boundaries lost in a crash leave a longer open chunk; it closes at the threshold
            // as usual from here on.
            while ends.peek().is_some_and(|e| **e < offset) {
                ends.next();
            }
            if ends.peek() == Some(&&offset) {
                ends.next();
                log.close_open_chunk();
            }
        }
        log
    }

    pub fn snapshot_done(&self) -> bool {
        self.snapshot_done
    }

    /// Number of closed snapshot chunks (readable now).
    pub fn snapshot_chunks(&self) -> usize {
        self.snapshot_chunks.len()
    }

    /// Appends a real log entry. Offsets must increase strictly. Returns the entry's offset
    /// when it closed a chunk (a boundary to persist).
    pub fn append(&mut self, offset: LogOffset, json: Bytes) -> Option<LogOffset> {
        assert!(
            self.snapshot_done,
            "log entries before the snapshot finished"
        );
        if let Some(last) = self.last_real_offset() {
            assert!(
                offset > last,
                "log offsets must increase: {offset} after {last}"
            );
        }
        assert!(offset.tx > 0, "real log entries have a commit LSN");
        self.open_bytes += json.len() as u64;
        self.bytes_total += json.len() as u64;
        self.open.push((offset, json));
        if self.open_bytes >= self.threshold {
            self.close_open_chunk();
            return Some(offset);
        }
        None
    }

    fn close_open_chunk(&mut self) {
        let entries = std::mem::take(&mut self.open);
        self.open_bytes = 0;
        let len: usize = entries.iter().map(|(_, b)| b.len() + 1).sum();
        let mut buf = Vec::with_capacity(len);
        let mut index = Vec::with_capacity(entries.len());
        for (off, b) in &entries {
            if !buf.is_empty() {
                buf.push(b',');
            }
            let start = buf.len() as u32;
            buf.extend_from_slice(b);
            index.push((*off, start, buf.len() as u32));
        }
        let last = entries
            .last()
            .map(|(o, _)| *o)
            .expect("closing an empty chunk");
        self.closed.push(ClosedChunk {
            last,
            buf: Bytes::from(buf),
            index,
        });
    }

    fn last_real_offset(&self) -> Option<LogOffset> {
        self.open
            .last()
            .map(|(o, _)| *o)
            .or_else(|| self.closed.last().map(|c| c.last))
    }

    /// The newest offset of the log (§2.5): the last real entry, else the last snapshot chunk,
    /// else `0_inf` while the snapshot is still unknown.
    pub fn last_offset(&self) -> LogOffset {
        if let Some(o) = self.last_real_offset() {
            return o;
        }
        if self.snapshot_done {
            protocol::offset::snapshot_chunk(self.snapshot_chunks.len() as u64 - 1)
        } else {
            protocol::offset::LAST_BEFORE_REAL_LOG
        }
    }

    /// Reads what a request at `after` gets (entries in `(after, chunk_end]`), or `None` when
    /// the snapshot chunk it needs is not written yet. `after` is `None` for `offset=-1`.
    pub fn read(&self, after: Option<LogOffset>) -> Option<Slice> {
        let snapshot_chunk = match after {
            None => Some(0),
            Some(o) if o.tx == 0 && !o.is_op_inf() => {
                let next = o.op + 1;
                if !self.snapshot_done || next < self.snapshot_chunks.len() as u64 {
                    Some(next)
                } else {
                    None
                }
            }
            Some(_) => None,
        };
        if let Some(n) = snapshot_chunk {
            let chunk = self.snapshot_chunks.get(n as usize)?;
            let parts = if chunk.is_empty() {
                Vec::new()
            } else {
                vec![chunk.clone()]
            };
            return Some(Slice {
                entries: usize::from(!chunk.is_empty()),
                parts,
                chunk_end: protocol::offset::snapshot_chunk(n),
            });
        }
        let after = after.expect("-1 is handled above");
        if !self.snapshot_done {
            return None;
        }
        // First closed chunk holding an entry after `after`.
        let ci = self.closed.partition_point(|c| c.last <= after);
        if let Some(c) = self.closed.get(ci) {
            let i = c.index.partition_point(|(o, _, _)| *o <= after);
            let (_, start, _) = c.index[i];
            let end = c.buf.len();
            return Some(Slice {
                parts: vec![c.buf.slice(start as usize..end)],
                chunk_end: c.last,
                entries: c.index.len() - i,
            });
        }
        let i = self.open.partition_point(|(o, _)| *o <= after);
        let mut parts = Vec::with_capacity((self.open.len() - i) * 2);
        for (_, b) in &self.open[i..] {
            if !parts.is_empty() {
                parts.push(Bytes::from_static(b","));
            }
            parts.push(b.clone());
        }
        Some(Slice {
            entries: self.open.len() - i,
            parts,
            // The open chunk ends at the log end (also for requests beyond it: out of bounds).
            chunk_end: self.last_offset(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn off(tx: u64, op: u64) -> LogOffset {
        LogOffset::new(tx, op)
    }

    fn body(s: &Slice) -> String {
        let mut v = Vec::new();
        for p in &s.parts {
            v.extend_from_slice(p);
        }
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn snapshot_chunks_then_real_log() {
        let mut log = ShapeLog::new(10);
        assert!(log.read(None).is_none(), "chunk 0 not written yet");
        log.push_snapshot_row(b"{\"a\":1}"); // 8 bytes: chunk stays open
        log.push_snapshot_row(b"{\"a\":2}"); // 16 >= 10: closes chunk 0
        log.push_snapshot_row(b"{\"a\":3}");
        let last = log.finish_snapshot(b"{\"end\":1}");
        assert_eq!(&last[..], b"{\"a\":3},{\"end\":1}");
        assert_eq!(log.snapshot_chunks(), 2);
        let s0 = log.read(None).unwrap();
        assert_eq!(body(&s0), "{\"a\":1},{\"a\":2}");
        assert_eq!(s0.chunk_end, protocol::offset::snapshot_chunk(0));
        let s1 = log.read(Some(protocol::offset::snapshot_chunk(0))).unwrap();
        assert_eq!(body(&s1), "{\"a\":3},{\"end\":1}");
        assert_eq!(log.last_offset(), protocol::offset::snapshot_chunk(1));
        // Past the last snapshot chunk with an empty real log: nothing, up to the log end.
        let s2 = log.read(Some(protocol::offset::snapshot_chunk(1))).unwrap();
        assert_eq!(s2.entries, 0);
        assert_eq!(s2.chunk_end, protocol::offset::snapshot_chunk(1));

        assert_eq!(
            log.append(off(100, 0), Bytes::from_static(b"{\"x\":1}")),
            None
        );
        // 14 >= 10: closes the chunk.
        assert_eq!(
            log.append(off(100, 2), Bytes::from_static(b"{\"x\":2}")),
            Some(off(100, 2))
        );
        log.append(off(200, 0), Bytes::from_static(b"{\"x\":3}"));
        // A restored log serves the same bytes at the same offsets.
        let restored = ShapeLog::restore(
            10,
            vec![
                Bytes::from_static(b"{\"a\":1},{\"a\":2}"),
                Bytes::from_static(b"{\"a\":3},{\"end\":1}"),
            ],
            vec![
                (off(100, 0), Bytes::from_static(b"{\"x\":1}")),
                (off(100, 2), Bytes::from_static(b"{\"x\":2}")),
                (off(200, 0), Bytes::from_static(b"{\"x\":3}")),
            ],
            &[off(100, 2)],
        );
        for at in [
            None,
            Some(protocol::offset::snapshot_chunk(0)),
            Some(off(100, 0)),
            Some(off(100, 2)),
        ] {
            let (a, b) = (log.read(at).unwrap(), restored.read(at).unwrap());
            assert_eq!(body(&a), body(&b));
            assert_eq!(a.chunk_end, b.chunk_end);
        }
        let r = log.read(Some(protocol::offset::snapshot_chunk(1))).unwrap();
        assert_eq!(body(&r), "{\"x\":1},{\"x\":2}");
        assert_eq!(r.chunk_end, off(100, 2));
        let r = log.read(Some(off(100, 0))).unwrap();
        assert_eq!(body(&r), "{\"x\":2}");
        assert_eq!(r.chunk_end, off(100, 2));
        let r = log.read(Some(off(100, 2))).unwrap();
        assert_eq!(body(&r), "{\"x\":3}");
        assert_eq!(r.chunk_end, off(200, 0));
        let r = log
            .read(Some(protocol::offset::LAST_BEFORE_REAL_LOG))
            .unwrap();
        assert_eq!(body(&r), "{\"x\":1},{\"x\":2}");
    }

    #[test]
    #[should_panic(expected = "log offsets must increase")]
    fn offsets_must_increase() {
        let mut log = ShapeLog::new(1000);
        log.finish_snapshot(b"{}");
        log.append(off(5, 2), Bytes::from_static(b"{}"));
        log.append(off(5, 2), Bytes::from_static(b"{}"));
    }
}
