//! Closed chunks answered on the core that holds the connection.
//!
//! A catch-up response that ends before the end of the log covers a closed chunk: for the life
//! of its handle those bytes never change, and every client that catches up asks for them. The
//! owner core marks such a response `reusable`; whichever core holds the connection keeps its
//! rendered head and body parts here (an `Arc`'d list of memory and file ranges, no copy of the
//! bytes) and answers the next request for the same handle and offset itself: no message to
//! the owner and back, no log read, no rendering.
//!
//! Freshness: when the owner removes a shape (DELETE, invalidation, eviction, a damaged log) it
//! tells every core (`CoreMsg::Forget`) and their entries go. A request that races that message
//! gets the chunk the shape had, which is what an HTTP cache in front would answer as well; its
//! next request that reaches the owner gets the 409.
//!
//! The owner still sees the shape in use: a hit sends it a `Touch` at most once per
//! [`TOUCH_EVERY`] per entry, so least-recently-used eviction counts these clients too.
//!
//! Bounded per core by entries and by the bytes of in-memory parts (those would otherwise stay
//! alive after the owner's chunk cache let them go); past either bound the cache is emptied.

use crate::fast_map::{FastMap, FastState};
use crate::http::{Body, Part, Response};
use crate::shapes::def::ShapeDef;
use bytes::Bytes;
use protocol::offset::LogOffset;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Entries kept per core.
const CAPACITY: usize = 4096;
/// Bytes of in-memory body parts kept alive per core.
const MEMORY_BUDGET: usize = 64 << 20;
/// How often a hit tells the owner that its shape is used.
pub const TOUCH_EVERY: Duration = Duration::from_secs(1);

struct Entry {
    def: Arc<ShapeDef>,
    handle: Box<str>,
    after: LogOffset,
    head: Bytes,
    parts: Arc<[Part]>,
    memory: usize,
    touched: Instant,
}

/// What a hit answers with.
pub struct Hit {
    pub response: Response,
    /// The owner should be told its shape is used (see [`TOUCH_EVERY`]).
    pub touch: bool,
}

#[derive(Default)]
pub struct ClosedChunks {
    entries: FastMap<u64, Entry>,
    hasher: FastState,
    memory: usize,
}

impl ClosedChunks {
    fn key(&self, handle: &str, after: LogOffset) -> u64 {
        self.hasher.hash_one((handle, after))
    }

    /// The response for `handle` from `after`, if this core holds it and `def` is the
    /// definition the handle was created for (another definition gets its 409 from the owner).
    pub fn get(&mut self, def: &Arc<ShapeDef>, handle: &str, after: LogOffset) -> Option<Hit> {
        let key = self.key(handle, after);
        let entry = self.entries.get_mut(&key)?;
        let same =
            &*entry.handle == handle && entry.after == after && ShapeDef::same(&entry.def, def);
        if !same {
            return None;
        }
        let now = Instant::now();
        let touch = now.duration_since(entry.touched) >= TOUCH_EVERY;
        if touch {
            entry.touched = now;
        }
        let mut response = Response::new_bare(200).with_body(Body::Shared(entry.parts.clone()));
        response.head_block = Some(entry.head.clone());
        response.reusable = true;
        Some(Hit { response, touch })
    }

    /// Keeps a response the owner marked reusable. Anything else is ignored.
    pub fn insert(
        &mut self,
        def: &Arc<ShapeDef>,
        handle: &str,
        after: LogOffset,
        response: &Response,
    ) {
        let (true, 200, Some(head)) = (response.reusable, response.status, &response.head_block)
        else {
            return;
        };
        let parts: Arc<[Part]> = match &response.body {
            Body::Mixed(parts) => parts.as_slice().into(),
            Body::Shared(parts) => parts.clone(),
            _ => return,
        };
        let memory = parts
            .iter()
            .map(|part| match part {
                Part::Mem(bytes) => bytes.len(),
                Part::File(_) => 0,
            })
            .sum::<usize>();
        if self.entries.len() >= CAPACITY || self.memory + memory > MEMORY_BUDGET {
            self.entries.clear();
            self.memory = 0;
        }
        if memory > MEMORY_BUDGET {
            return;
        }
        let key = self.key(handle, after);
        let entry = Entry {
            def: def.clone(),
            handle: handle.into(),
            after,
            head: head.clone(),
            parts,
            memory,
            touched: Instant::now(),
        };
        self.memory += memory;
        if let Some(old) = self.entries.insert(key, entry) {
            self.memory -= old.memory;
        }
    }

    /// Drops a removed shape's entries.
    pub fn forget(&mut self, handle: &str) {
        let mut freed = 0;
        self.entries.retain(|_, e| {
            let keep = &*e.handle != handle;
            if !keep {
                freed += e.memory;
            }
            keep
        });
        self.memory -= freed;
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(where_clause: &str) -> Arc<ShapeDef> {
        Arc::new(ShapeDef::for_tests(Some(where_clause)))
    }

    fn reusable(body: &'static [u8]) -> Response {
        let mut r = Response::new_bare(200)
            .with_body(Body::Mixed(vec![Part::Mem(Bytes::from_static(body))]));
        r.head_block = Some(Bytes::from_static(b"electric-handle: h\r\n"));
        r.reusable = true;
        r
    }

    fn body_of(r: &Response) -> Vec<u8> {
        let Body::Shared(parts) = &r.body else {
            panic!("a hit answers with shared parts")
        };
        parts
            .iter()
            .flat_map(|p| match p {
                Part::Mem(b) => b.to_vec(),
                Part::File(_) => unreachable!("memory parts only here"),
            })
            .collect()
    }

    #[test]
    fn answers_the_same_handle_offset_and_definition_only() {
        let (a, b) = (def("id = 1"), def("id = 2"));
        let at = LogOffset::new(5, 2);
        let mut cache = ClosedChunks::default();
        cache.insert(&a, "h1", at, &reusable(b"[1]"));
        let hit = cache.get(&a, "h1", at).expect("a hit");
        assert_eq!(body_of(&hit.response), b"[1]");
        assert_eq!(
            hit.response.head_block.as_deref(),
            Some(&b"electric-handle: h\r\n"[..])
        );
        assert!(!hit.touch, "just inserted: no touch yet");
        // An equal definition built again still matches; another one, offset or handle not.
        assert!(cache.get(&def("id = 1"), "h1", at).is_some());
        assert!(cache.get(&b, "h1", at).is_none());
        assert!(cache.get(&a, "h1", LogOffset::new(5, 3)).is_none());
        assert!(cache.get(&a, "h2", at).is_none());
    }

    #[test]
    fn ignores_what_is_not_reusable_and_forgets_removed_shapes() {
        let a = def("id = 1");
        let at = LogOffset::new(1, 0);
        let mut cache = ClosedChunks::default();
        let mut not_reusable = reusable(b"[]");
        not_reusable.reusable = false;
        cache.insert(&a, "h1", at, &not_reusable);
        let mut not_ok = reusable(b"[]");
        not_ok.status = 304;
        cache.insert(&a, "h1", at, &not_ok);
        assert_eq!(cache.len(), 0);
        cache.insert(&a, "h1", at, &reusable(b"[1]"));
        cache.insert(&a, "h2", at, &reusable(b"[2]"));
        cache.forget("h1");
        assert!(cache.get(&a, "h1", at).is_none());
        assert!(cache.get(&a, "h2", at).is_some());
        assert_eq!(cache.memory, 3);
    }

    #[test]
    fn stays_within_its_bounds() {
        let a = def("id = 1");
        let mut cache = ClosedChunks::default();
        for i in 0..(CAPACITY as u64 + 10) {
            cache.insert(&a, "h", LogOffset::new(i, 0), &reusable(b"[x]"));
        }
        assert!(cache.len() <= CAPACITY);
        assert_eq!(cache.memory, cache.len() * 3);
    }
}
