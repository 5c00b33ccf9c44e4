//! The memory budget for closed chunks: recently closed chunks keep their bytes in memory while
//! they fit, least recently read first out; everything else is served from the page cache.
//!
//! Only bytes that are in memory anyway enter the cache: a chunk's own buffer when it closes (it
//! was built in memory), or a closed chunk's entry index read for a request inside the chunk —
//! a miss on chunk bytes is served from the file with `sendfile` and never read into memory, so
//! the cache costs no copy and a scan over a working set larger than the budget does not churn
//! it. The budget is per node (`AMPERE_CHUNK_CACHE_BYTES`), split evenly over the cores;
//! each core's share is a thread-local, as every chunk is only read by its shape's owner core.
//!
//! A [`CachedBytes`] slot belongs to one closed chunk. Dropping the slot (its shape went away)
//! returns its bytes to the budget.

use bytes::Bytes;
use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
}

#[derive(Default)]
struct Cache {
    budget: usize,
    used: usize,
    clock: u64,
    slots: Vec<Weak<CachedBytes>>,
}

/// Sets this core's share of the budget (at core start; 0 disables caching).
pub fn set_budget(bytes: usize) {
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        c.budget = bytes;
        c.evict_to_budget();
    });
}

/// Bytes held by this core's cache.
pub fn used() -> usize {
    CACHE.with(|c| c.borrow().used)
}

/// One closed chunk's bytes while they are cached.
#[derive(Debug)]
pub struct CachedBytes {
    bytes: RefCell<Option<Bytes>>,
    last_use: Cell<u64>,
}

impl CachedBytes {
    /// Offers a closed chunk's bytes to the cache; they stay only while they fit the budget
    /// (evicting less recently read chunks).
    pub fn offer(bytes: Bytes) -> Rc<Self> {
        let slot = Self::empty();
        slot.fill(bytes);
        slot
    }

    /// Offers bytes for an empty slot (read from disk anyway, e.g. a chunk's entry index); as
    /// [`Self::offer`].
    pub fn fill(self: &Rc<Self>, bytes: Bytes) {
        if self.is_cached() {
            return;
        }
        CACHE.with(|c| {
            let mut c = c.borrow_mut();
            if bytes.len() > c.budget / 2 {
                // A chunk that would take most of the budget is not worth displacing the rest.
                return;
            }
            c.clock += 1;
            self.last_use.set(c.clock);
            c.used += bytes.len();
            *self.bytes.borrow_mut() = Some(bytes);
            c.slots.push(Rc::downgrade(self));
            c.evict_to_budget();
        });
    }

    /// An empty slot (a chunk recovered from disk: nothing in memory to keep).
    pub fn empty() -> Rc<Self> {
        Rc::new(Self {
            bytes: RefCell::new(None),
            last_use: Cell::new(0),
        })
    }

    /// The bytes if still cached (marking them recently used).
    pub fn get(&self) -> Option<Bytes> {
        let bytes = self.bytes.borrow().clone()?;
        CACHE.with(|c| {
            let mut c = c.borrow_mut();
            c.clock += 1;
            self.last_use.set(c.clock);
        });
        Some(bytes)
    }

    pub fn is_cached(&self) -> bool {
        self.bytes.borrow().is_some()
    }
}

impl Drop for CachedBytes {
    fn drop(&mut self) {
        if let Some(bytes) = self.bytes.get_mut().take() {
            // `try_with`: a slot dropped during thread teardown has nothing to return.
            let _ = CACHE.try_with(|c| {
                if let Ok(mut c) = c.try_borrow_mut() {
                    c.used -= bytes.len();
                }
            });
        }
    }
}

impl Cache {
    fn evict_to_budget(&mut self) {
        if self.used <= self.budget {
            return;
        }
        self.slots
            .retain(|w| w.upgrade().is_some_and(|s| s.bytes.borrow().is_some()));
        let mut live: Vec<Rc<CachedBytes>> = self.slots.iter().filter_map(Weak::upgrade).collect();
        live.sort_by_key(|s| s.last_use.get());
        for slot in live {
            if self.used <= self.budget {
                break;
            }
            if let Some(bytes) = slot.bytes.borrow_mut().take() {
                self.used -= bytes.len();
            }
        }
        self.slots
            .retain(|w| w.upgrade().is_some_and(|s| s.bytes.borrow().is_some()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_recently_read_chunks_leave_first_and_drops_return_their_bytes() {
        set_budget(100);
        let a = CachedBytes::offer(Bytes::from(vec![1u8; 40]));
        let b = CachedBytes::offer(Bytes::from(vec![2u8; 40]));
        assert_eq!(used(), 80);
        assert!(a.get().is_some()); // a is now more recent than b
        let c = CachedBytes::offer(Bytes::from(vec![3u8; 40]));
        assert_eq!(used(), 80, "bounded");
        assert!(a.is_cached() && c.is_cached());
        assert!(!b.is_cached(), "least recently read is evicted");
        assert!(b.get().is_none());
        // Over half the budget: not cached at all.
        let big = CachedBytes::offer(Bytes::from(vec![4u8; 60]));
        assert!(!big.is_cached());
        drop(a);
        assert_eq!(used(), 40);
        drop(c);
        assert_eq!(used(), 0);
        set_budget(0);
        let none = CachedBytes::offer(Bytes::from_static(b"x"));
        assert!(!none.is_cached());
    }
}
