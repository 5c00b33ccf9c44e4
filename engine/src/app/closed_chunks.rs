//! Closed chunks answered on the core that holds the connection.
//!
//! A catch-up response that ends before the end of the log covers a closed chunk: for the life
//! of its handle those bytes never change, and every client that catches up asks for them. The
//! owner core marks such a response `reusable`; whichever core holds the connection keeps its
//! rendered head and body parts here (an `Arc`'d list of memory and file ranges, no copy of the
//! bytes), keyed by the request's raw query string, and answers the next request with the same
//! URL itself, as a caching proxy in front would: no query decoding, no definition lookup, no
//! message to the owner and back, no log read, no rendering.
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
//! alive after the owner's chunk cache let them go); past either bound the cache is emptied. A
//! file part keeps its file open, outside the per-core descriptor cache (`storage::fd_cache`),
//! so the distinct files the entries refer to are bounded too: an answer that would add one
//! past [`MAX_FILES`] is not kept.

use crate::fast_map::{FastMap, FastState};
use crate::http::{Body, Part, Response};
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Entries kept per core (an entry is about 200 bytes besides the shared head and parts).
const CAPACITY: usize = 16_384;
/// Bytes of in-memory body parts kept alive per core.
const MEMORY_BUDGET: usize = 64 << 20;
/// Distinct files the entries of one core may keep open (a quarter of the descriptor cache).
const MAX_FILES: usize = crate::storage::fd_cache::CAPACITY / 4;
/// Longest query string kept (longer ones are served the ordinary way).
const MAX_QUERY: usize = 2048;
/// How often a hit tells the owner that its shape is used.
pub const TOUCH_EVERY: Duration = Duration::from_secs(1);

struct Entry {
    /// The request's raw query string: the same URL asks for the same chunk of the same
    /// definition and handle (and carries the same secret, so it was authorized as well).
    query: Box<str>,
    handle: Box<str>,
    owner: usize,
    head: Bytes,
    parts: Arc<[Part]>,
    memory: usize,
    touched: Instant,
}

/// What a hit answers with.
pub struct Hit {
    pub response: Response,
    /// Tell this owner core that the shape with this handle is used (see [`TOUCH_EVERY`]).
    pub touch: Option<(usize, Box<str>)>,
}

#[derive(Default)]
pub struct ClosedChunks {
    entries: FastMap<u64, Entry>,
    hasher: FastState,
    memory: usize,
    /// Files the entries' parts refer to (by the address of their shared `File`), with the
    /// number of entries referring to each.
    files: FastMap<usize, usize>,
}

/// The distinct files of an entry's parts (by address; the entry holds them, so an address
/// cannot be reused while it is counted).
fn files_of(parts: &[Part]) -> Vec<usize> {
    let mut files: Vec<usize> = parts
        .iter()
        .filter_map(|part| match part {
            Part::File(range) => Some(Arc::as_ptr(&range.file) as usize),
            Part::Mem(_) => None,
        })
        .collect();
    files.sort_unstable();
    files.dedup();
    files
}

impl ClosedChunks {
    /// The response kept for a `GET`/`HEAD` with this raw query string (the caller checks that
    /// the request carries no `if-none-match`: revalidation is the owner's).
    pub fn get(&mut self, query: &str) -> Option<Hit> {
        let entry = self.entries.get_mut(&self.hasher.hash_one(query))?;
        if &*entry.query != query {
            return None;
        }
        let now = Instant::now();
        let touch = (now.duration_since(entry.touched) >= TOUCH_EVERY).then(|| {
            entry.touched = now;
            (entry.owner, entry.handle.clone())
        });
        let mut response = Response::new_bare(200).with_body(Body::Shared(entry.parts.clone()));
        response.head_block = Some(entry.head.clone());
        response.reusable = true;
        Some(Hit { response, touch })
    }

    /// Keeps a response the owner marked reusable, answered to `query` for the shape `handle`
    /// owned by `owner`. Anything else is ignored.
    pub fn insert(&mut self, query: &str, handle: &str, owner: usize, response: &Response) {
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
        if memory > MEMORY_BUDGET || query.len() > MAX_QUERY {
            return;
        }
        if self.entries.len() >= CAPACITY || self.memory + memory > MEMORY_BUDGET {
            self.entries.clear();
            self.memory = 0;
            self.files.clear();
        }
        let files = files_of(&parts);
        let new_files = files
            .iter()
            .filter(|file| !self.files.contains_key(file))
            .count();
        if self.files.len() + new_files > MAX_FILES {
            return;
        }
        for file in files {
            *self.files.entry(file).or_default() += 1;
        }
        let entry = Entry {
            query: query.into(),
            handle: handle.into(),
            owner,
            head: head.clone(),
            parts,
            memory,
            touched: Instant::now(),
        };
        self.memory += memory;
        if let Some(old) = self.entries.insert(self.hasher.hash_one(query), entry) {
            self.release(&old);
        }
    }

    /// Stops counting what a removed entry held.
    fn release(&mut self, entry: &Entry) {
        self.memory -= entry.memory;
        for file in files_of(&entry.parts) {
            if let Some(count) = self.files.get_mut(&file) {
                *count -= 1;
                if *count == 0 {
                    self.files.remove(&file);
                }
            }
        }
    }

    /// Drops a removed shape's entries.
    pub fn forget(&mut self, handle: &str) {
        let gone: Vec<u64> = self
            .entries
            .iter()
            .filter(|(_, e)| &*e.handle == handle)
            .map(|(key, _)| *key)
            .collect();
        for key in gone {
            if let Some(entry) = self.entries.remove(&key) {
                self.release(&entry);
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    const Q1: &str = "table=t&handle=h1&offset=5_2";

    #[test]
    fn answers_the_same_query_only() {
        let mut cache = ClosedChunks::default();
        cache.insert(Q1, "h1", 1, &reusable(b"[1]"));
        let hit = cache.get(Q1).expect("a hit");
        assert_eq!(body_of(&hit.response), b"[1]");
        assert_eq!(
            hit.response.head_block.as_deref(),
            Some(&b"electric-handle: h\r\n"[..])
        );
        assert!(hit.response.reusable);
        assert!(hit.touch.is_none(), "just inserted: no touch yet");
        for other in [
            "table=t&handle=h1&offset=5_3",
            "table=t&handle=h1&offset=5_2&where=x",
            "handle=h1&table=t&offset=5_2",
            "",
        ] {
            assert!(cache.get(other).is_none(), "{other}");
        }
    }

    #[test]
    fn touches_the_owner_at_most_once_per_period() {
        let mut cache = ClosedChunks::default();
        cache.insert(Q1, "h1", 1, &reusable(b"[1]"));
        cache.entries.values_mut().for_each(|e| {
            e.touched = Instant::now() - TOUCH_EVERY;
        });
        let touch = cache.get(Q1).and_then(|hit| hit.touch);
        assert_eq!(touch, Some((1, "h1".into())));
        assert!(cache.get(Q1).and_then(|hit| hit.touch).is_none());
    }

    #[test]
    fn ignores_what_is_not_reusable_and_forgets_removed_shapes() {
        let mut cache = ClosedChunks::default();
        let mut not_reusable = reusable(b"[]");
        not_reusable.reusable = false;
        cache.insert(Q1, "h1", 0, &not_reusable);
        let mut not_ok = reusable(b"[]");
        not_ok.status = 304;
        cache.insert(Q1, "h1", 0, &not_ok);
        cache.insert(&"x".repeat(MAX_QUERY + 1), "h1", 0, &reusable(b"[]"));
        assert_eq!(cache.len(), 0);
        cache.insert(Q1, "h1", 0, &reusable(b"[1]"));
        cache.insert("table=t&handle=h2&offset=5_2", "h2", 0, &reusable(b"[2]"));
        cache.forget("h1");
        assert!(cache.get(Q1).is_none());
        assert!(cache.get("table=t&handle=h2&offset=5_2").is_some());
        assert_eq!(cache.memory, 3);
    }

    #[test]
    fn keeps_few_files_open() {
        let mut cache = ClosedChunks::default();
        let dir = std::env::temp_dir().join(format!("closed-chunks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file_answer = |i: usize| {
            let path = dir.join(format!("f{i}"));
            std::fs::write(&path, b"[1]").unwrap();
            let file = Arc::new(std::fs::File::open(&path).unwrap());
            let range = |offset| {
                Part::File(crate::http::FileRange {
                    file: file.clone(),
                    offset,
                    len: 1,
                })
            };
            let mut r = Response::new_bare(200).with_body(Body::Mixed(vec![range(0), range(1)]));
            r.head_block = Some(Bytes::from_static(b"x: y\r\n"));
            r.reusable = true;
            r
        };
        for i in 0..MAX_FILES + 5 {
            cache.insert(&format!("q{i}"), &format!("h{i}"), 0, &file_answer(i));
        }
        assert_eq!(
            cache.files.len(),
            MAX_FILES,
            "one file per entry, up to the bound"
        );
        assert_eq!(cache.len(), MAX_FILES);
        assert!(
            cache.get(&format!("q{}", MAX_FILES + 1)).is_none(),
            "not kept"
        );
        // Forgetting a shape frees its file for another one.
        cache.forget("h0");
        assert_eq!(cache.files.len(), MAX_FILES - 1);
        cache.insert("q-new", "h-new", 0, &file_answer(10_000));
        assert!(cache.get("q-new").is_some());
        assert_eq!(cache.files.len(), MAX_FILES);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn stays_within_its_bounds() {
        let mut cache = ClosedChunks::default();
        for i in 0..(CAPACITY + 10) {
            cache.insert(&format!("offset={i}_0"), "h", 0, &reusable(b"[x]"));
        }
        assert!(cache.len() <= CAPACITY);
        assert_eq!(cache.memory, cache.len() * 3);
    }
}
