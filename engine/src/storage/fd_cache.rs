//! Open file descriptors for serving closed chunks, bounded per core.
//!
//! A shape's closed chunks are served from its files, so the files must be open while they are
//! read; with tens of thousands of shapes, keeping every one open would exhaust the process's
//! descriptors. Each file a shape serves from is a [`LazyFile`]: opened on first use, and
//! closed again when more than [`CAPACITY`] files are open on this core and it is the least
//! recently used. A response that is still sending from a closed `LazyFile` keeps its own
//! reference ([`Arc<File>`]) until it is done, so eviction never cuts a response short.
//!
//! The cache is per core (a thread-local): every shape's files are only used by its owner core,
//! and nothing here needs a lock.

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};
use std::sync::Arc;

/// Open files per core before the least recently used is closed.
pub const CAPACITY: usize = 1024;

thread_local! {
    static OPEN: RefCell<Lru> = RefCell::new(Lru::default());
}

#[derive(Default)]
struct Lru {
    files: Vec<Weak<LazyFile>>,
    clock: u64,
}

/// A file opened on demand and closed by the per-core cache (see the module doc).
#[derive(Debug)]
pub struct LazyFile {
    path: PathBuf,
    file: RefCell<Option<Arc<File>>>,
    last_use: Cell<u64>,
}

impl LazyFile {
    pub fn new(path: PathBuf) -> Rc<Self> {
        Rc::new(Self {
            path,
            file: RefCell::new(None),
            last_use: Cell::new(0),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the descriptor is open now (for tests and metrics).
    pub fn is_open(&self) -> bool {
        self.file.borrow().is_some()
    }

    /// The open file, opening it (and closing the least recently used other file when the
    /// cache is full) if needed.
    pub fn get(self: &Rc<Self>) -> io::Result<Arc<File>> {
        OPEN.with(|lru| {
            let mut lru = lru.borrow_mut();
            lru.clock += 1;
            self.last_use.set(lru.clock);
            if let Some(file) = self.file.borrow().as_ref() {
                return Ok(file.clone());
            }
            let file = Arc::new(File::open(&self.path)?);
            lru.files
                .retain(|w| w.upgrade().is_some_and(|f| f.is_open()));
            if lru.files.len() >= CAPACITY {
                let (victim, _) = lru
                    .files
                    .iter()
                    .enumerate()
                    .filter_map(|(i, w)| w.upgrade().map(|f| (i, f.last_use.get())))
                    .min_by_key(|(_, used)| *used)
                    .expect("a full cache has an entry");
                let evicted = lru.files.swap_remove(victim);
                if let Some(f) = evicted.upgrade() {
                    f.file.borrow_mut().take();
                }
            }
            *self.file.borrow_mut() = Some(file.clone());
            lru.files.push(Rc::downgrade(self));
            Ok(file)
        })
    }

    /// Closes the descriptor now (the shape is dropped or its file replaced).
    pub fn close(&self) {
        self.file.borrow_mut().take();
    }
}

/// Files open through the cache on this core.
pub fn open_count() -> usize {
    OPEN.with(|lru| {
        lru.borrow()
            .files
            .iter()
            .filter(|w| w.upgrade().is_some_and(|f| f.is_open()))
            .count()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_recently_used_files_are_closed_past_capacity() {
        let dir = std::env::temp_dir().join(format!("ampere-fd-cache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let files: Vec<Rc<LazyFile>> = (0..CAPACITY + 10)
            .map(|i| {
                let path = dir.join(format!("f{i}"));
                std::fs::write(&path, [i as u8]).expect("write");
                LazyFile::new(path)
            })
            .collect();
        let first = files[0].get().expect("open");
        for f in &files[1..CAPACITY] {
            f.get().expect("open");
        }
        // Touch the first again: it is now the most recently used.
        files[0].get().expect("open");
        assert_eq!(open_count(), CAPACITY);
        files[CAPACITY].get().expect("open");
        assert_eq!(open_count(), CAPACITY, "bounded");
        assert!(files[0].is_open(), "recently used stays open");
        assert!(!files[1].is_open(), "least recently used is closed");
        // A reference taken before eviction still reads.
        let mut byte = [0u8; 1];
        std::os::unix::fs::FileExt::read_at(&*first, &mut byte, 0).expect("read");
        assert_eq!(byte[0], 0);
        // A closed file opens again on demand.
        files[1].get().expect("reopen");
        assert!(files[1].is_open());
        drop(files);
        assert_eq!(open_count(), 0);
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
