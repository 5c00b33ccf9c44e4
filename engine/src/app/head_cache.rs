//! Rendered response heads of catch-up responses, per core: a closed chunk is asked for by
//! every client that catches up, and its head (handle, offset, schema, cache-control, etag) is
//! the same bytes each time. It is rendered once and shared (`Response::head_block`); only the
//! date and request id are written per response.
//!
//! Keyed by a hash of `(handle, request offset)` and checked against the stored handle, offset
//! and chunk end on a hit, so a stale or colliding entry is never used. Bounded: when full, the
//! cache is emptied (entries are cheap to render again).

use bytes::Bytes;
use protocol::offset::LogOffset;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};

/// Entries kept per core (a head is about 0.3–2 KiB, mostly the schema).
const CAPACITY: usize = 4096;

struct Entry {
    handle: String,
    after: Option<LogOffset>,
    chunk_end: LogOffset,
    head: Bytes,
}

#[derive(Default)]
pub struct HeadCache {
    entries: HashMap<u64, Entry>,
    hasher: crate::fast_map::FastState,
}

impl HeadCache {
    /// The head for `(handle, after)` ending at `chunk_end`, rendered by `render` on a miss.
    pub fn get_or_render(
        &mut self,
        handle: &str,
        after: Option<LogOffset>,
        chunk_end: LogOffset,
        render: impl FnOnce() -> Bytes,
    ) -> Bytes {
        let key = {
            let mut h = self.hasher.build_hasher();
            handle.hash(&mut h);
            after.hash(&mut h);
            h.finish()
        };
        if let Some(e) = self.entries.get(&key) {
            if e.handle == handle && e.after == after && e.chunk_end == chunk_end {
                return e.head.clone();
            }
        }
        if self.entries.len() >= CAPACITY {
            self.entries.clear();
        }
        let head = render();
        self.entries.insert(
            key,
            Entry {
                handle: handle.to_string(),
                after,
                chunk_end,
                head: head.clone(),
            },
        );
        head
    }

    /// Forgets a shape's heads (its handle is gone; entries would only be dead weight).
    pub fn forget(&mut self, handle: &str) {
        self.entries.retain(|_, e| e.handle != handle);
    }
}

/// Appends a `name: value\r\n` line to a head block. As in the response encoder, a line break
/// in a value becomes a space (values here are rendered by the server, but a block is written
/// without further checks).
pub fn line(head: &mut Vec<u8>, name: &str, value: &str) {
    head.extend_from_slice(name.as_bytes());
    head.extend_from_slice(b": ");
    let start = head.len();
    head.extend_from_slice(value.as_bytes());
    for byte in &mut head[start..] {
        if *byte == b'\r' || *byte == b'\n' {
            *byte = b' ';
        }
    }
    head.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hit_needs_the_same_handle_offset_and_chunk_end() {
        let mut c = HeadCache::default();
        let o = LogOffset::new;
        let a = c.get_or_render("h-1", None, o(0, 0), || Bytes::from_static(b"a"));
        assert_eq!(&a[..], b"a");
        let again = c.get_or_render("h-1", None, o(0, 0), || unreachable!("cached"));
        assert_eq!(&again[..], b"a");
        // Another chunk end (the log moved on): rendered again.
        let b = c.get_or_render("h-1", None, o(5, 2), || Bytes::from_static(b"b"));
        assert_eq!(&b[..], b"b");
        let other = c.get_or_render("h-2", None, o(5, 2), || Bytes::from_static(b"c"));
        assert_eq!(&other[..], b"c");
        c.forget("h-1");
        let mut block = Vec::new();
        line(&mut block, "x", "a\r\nb: c");
        assert_eq!(block, b"x: a  b: c\r\n");
        let d = c.get_or_render("h-1", None, o(5, 2), || Bytes::from_static(b"d"));
        assert_eq!(&d[..], b"d");
    }
}
