//! Published views: what every core may know of the shapes another core owns, so that requests
//! for immutable data are answered by the core holding the connection, without a hop.
//!
//! Two roles, two types, as in `live`:
//! - [`Outbox`] (the owner): after a transaction (or a snapshot, or a restore) changes one of
//!   its shapes, the owner notes the shape's new log end and the closed chunks that have
//!   reached its files with a checked record since the last note ([`ShapeLog::publishable`]);
//!   at the end of the transaction it sends one [`Update`] to every other core.
//! - [`Views`] (every core, for the shapes others own): per handle, the definition, the log end
//!   and the published chunks. It answers a catch-up request (not live, GET or HEAD, no
//!   revalidation) of a known handle and definition itself when it asks for
//!   - a whole published chunk that ends before the log end: the chunk's record, sent from the
//!     file (page cache) with the head every core renders the same (`head_cache`), or
//!   - the log end itself: an empty up-to-date answer.
//!
//!   Anything else (a chunk not published yet, a request inside a chunk, the open chunk, an
//!   unknown handle or another definition, which get 409) goes to the owner as before.
//!
//! Freshness. A view lags its owner by the messages in flight: a request answered from it gets
//! what the owner would have answered a moment earlier (the same as a cache in front). The
//! `global_last_seen_lsn` of an up-to-date answered here is the commit LSN of the owner's last
//! published update, never more: the owner sends its updates in commit order on the same channel,
//! so a view holds everything up to that LSN, and a client that retires subset snapshots by that
//! LSN never retires one early. A removed shape's view goes with the owner's `Forget`.
//!
//! Bounds: views per core by [`MAX_VIEWS`], chunks per view by [`MAX_CHUNKS`] and for all views
//! of a core by [`CHUNK_BUDGET`]; past any of them, requests go to the owner. Updates keep their
//! order (`live::send` queues behind a full inbox instead of overtaking), so a view is never
//! introduced after its shape's `Forget`. Publication is per transaction and per other core:
//! one message, whatever number of shapes it changed. A chunk is published at the first change
//! of its shape after it is on disk and checked (a restored chunk once its owner has read it);
//! a chunk that never is (over the record limit, a failed write) stops the publication of its
//! shape's later chunks, which its owner then serves. A view opens its
//! files through the per-core descriptor cache (`storage::fd_cache`).

use super::core::Core;
use super::{CoreMsg, ShapeCall};
use crate::fast_map::FastMap;
use crate::http::Response;
use crate::shapes::def::ShapeDef;
use crate::shapes::log::{PublishedChunk, Slice};
use crate::shapes::shape::Shape;
use crate::storage::fd_cache::LazyFile;
use protocol::offset::{LogOffset, OffsetParam};
use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Chunks one view keeps (about 48 bytes each): a log of 10 KB chunks up to about 2.5 GB.
const MAX_CHUNKS: usize = 256 * 1024;
/// Views one core holds (about 200 bytes each besides their chunks); shapes introduced past it
/// are served by their owners.
const MAX_VIEWS: usize = 256 * 1024;
/// Chunk entries all views of one core hold together (about 48 bytes each: 96 MiB).
const CHUNK_BUDGET: usize = 2 * 1024 * 1024;
/// How often an owner whose shapes did not change still tells the others how far it is, so
/// the up-to-date answers of their views do not carry an old `global_last_seen_lsn`.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// What an owner sends the other cores after a change to its shapes.
pub struct Update {
    pub from: usize,
    /// The commit LSN of the last transaction the owner had applied when it sent this.
    pub through: u64,
    pub shapes: Vec<ShapeUpdate>,
}

pub struct ShapeUpdate {
    pub handle: Arc<str>,
    /// The first update of a shape introduces it.
    pub intro: Option<Intro>,
    pub end: LogOffset,
    pub chunks: Vec<PublishedChunk>,
}

pub struct Intro {
    pub def: Arc<ShapeDef>,
    /// `snapshot.data` and `chunks.data` (none for a shape without storage).
    pub files: Option<(PathBuf, PathBuf)>,
}

// ---------------------------------------------------------------------------------------------
// Owner side.

/// Updates noted during a transaction, sent when it is done.
#[derive(Default)]
pub struct Outbox {
    pending: RefCell<Vec<ShapeUpdate>>,
    /// `through` of the last update sent, and when.
    sent: Cell<(u64, Option<Instant>)>,
}

/// Notes a change to `shape` (owned here, its snapshot done) for the other cores.
pub fn note(core: &Core, shape: &mut Shape) {
    if core.shared.cores < 2 || !shape.log.snapshot_done() || shape.invalidated {
        return;
    }
    let intro = match shape.published {
        Some(_) => None,
        None => Some(Intro {
            def: shape.def.clone(),
            files: shape
                .store
                .as_ref()
                .map(|s| (s.snapshot_path(), s.chunk_data_path())),
        }),
    };
    let mut cursor = shape.published.unwrap_or_default();
    let mut chunks = Vec::new();
    shape.log.publishable(&mut cursor, &mut chunks);
    shape.published = Some(cursor);
    core.outbox.pending.borrow_mut().push(ShapeUpdate {
        handle: shape.handle.as_str().into(),
        intro,
        end: shape.log.last_offset(),
        chunks,
    });
}

/// Sends what was noted to every other core, stamped with the owner's last commit LSN; with
/// nothing noted, only that LSN, at most every [`PROGRESS_EVERY`].
pub fn flush(core: &Core) {
    if core.shared.cores < 2 {
        return;
    }
    let shapes = std::mem::take(&mut *core.outbox.pending.borrow_mut());
    let through = core.last_lsn.get();
    let (sent_through, sent_at) = core.outbox.sent.get();
    if shapes.is_empty() {
        let due = sent_at.is_none_or(|at| at.elapsed() >= PROGRESS_EVERY);
        if through <= sent_through || !due {
            return;
        }
    }
    core.outbox.sent.set((through, Some(Instant::now())));
    let update = Arc::new(Update {
        from: core.id,
        through,
        shapes,
    });
    for to in (0..core.shared.cores).filter(|&to| to != core.id) {
        super::live::send(core, to, CoreMsg::Views(update.clone()));
    }
}

// ---------------------------------------------------------------------------------------------
// Connection side.

struct View {
    def: Arc<ShapeDef>,
    owner: usize,
    end: LogOffset,
    /// Sorted by `after` (published in log order).
    chunks: Vec<PublishedChunk>,
    snapshot_file: Option<Rc<LazyFile>>,
    chunk_file: Option<Rc<LazyFile>>,
    touched: Cell<Instant>,
}

/// The views this core holds of other cores' shapes.
#[derive(Default)]
pub struct Views {
    shapes: RefCell<FastMap<Arc<str>, View>>,
    /// Per owner core: `through` of its last update.
    through: RefCell<Vec<u64>>,
    /// Chunk entries held by all views (bounded by [`CHUNK_BUDGET`]).
    chunks: Cell<usize>,
}

impl Views {
    pub fn on_update(&self, update: &Update) {
        {
            let mut through = self.through.borrow_mut();
            if through.len() <= update.from {
                through.resize(update.from + 1, 0);
            }
            through[update.from] = through[update.from].max(update.through);
        }
        let mut shapes = self.shapes.borrow_mut();
        for u in &update.shapes {
            if let Some(intro) = u.intro.as_ref().filter(|_| shapes.len() < MAX_VIEWS) {
                let (snapshot_file, chunk_file) = match &intro.files {
                    Some((s, c)) => (
                        Some(LazyFile::new(s.clone())),
                        Some(LazyFile::new(c.clone())),
                    ),
                    None => (None, None),
                };
                shapes.insert(
                    u.handle.clone(),
                    View {
                        def: intro.def.clone(),
                        owner: update.from,
                        end: u.end,
                        chunks: Vec::new(),
                        snapshot_file,
                        chunk_file,
                        touched: Cell::new(Instant::now()),
                    },
                );
            }
            // An update for a view this core does not hold (it was forgotten) is dropped.
            let Some(view) = shapes.get_mut(&u.handle) else {
                continue;
            };
            view.end = view.end.max(u.end);
            for c in &u.chunks {
                if view.chunks.len() >= MAX_CHUNKS || self.chunks.get() >= CHUNK_BUDGET {
                    break;
                }
                if let Err(i) = view.chunks.binary_search_by(|v| v.after.cmp(&c.after)) {
                    view.chunks.insert(i, *c);
                    self.chunks.set(self.chunks.get() + 1);
                }
            }
        }
    }

    pub fn forget(&self, handle: &str) {
        if let Some(view) = self.shapes.borrow_mut().remove(handle) {
            self.chunks.set(self.chunks.get() - view.chunks.len());
        }
    }
}

/// Answers a resolved log request of a shape another core owns from this core's view of it,
/// if the request asks for immutable data the view holds (see the module comment).
pub fn answer(core: &Core, call: &ShapeCall) -> Option<Response> {
    let q = &call.query;
    if q.live || call.post || !call.if_none_match.is_empty() {
        return None;
    }
    let handle = q.handle.as_deref()?;
    let after = match q.offset {
        OffsetParam::BeforeAll => None,
        OffsetParam::At(o) => Some(o),
        OffsetParam::Now => return None,
    };
    let views = core.views.shapes.borrow();
    let view = views.get(handle)?;
    if !ShapeDef::same(&view.def, &call.def) {
        // The owner answers a handle named with another definition (409).
        return None;
    }
    let response = if after == Some(view.end) {
        if view.def.subquery.is_some() {
            // Up to date: only the owner knows what a capped log may claim (`serve::no_changes`).
            return None;
        }
        let through = core
            .views
            .through
            .borrow()
            .get(view.owner)
            .copied()
            .unwrap_or(0);
        let slice = Slice::empty(view.end);
        let global_lsn = through.max(view.end.tx);
        super::serve::log_response(core, call, handle, after, view.end, slice, global_lsn)
    } else {
        let i = view.chunks.binary_search_by(|c| c.after.cmp(&after)).ok()?;
        let chunk = view.chunks[i];
        if chunk.framed && chunk.len < 2 {
            // Not a chunk record this core can frame: the owner's to answer.
            return None;
        }
        if chunk.end >= view.end {
            // The chunk reaches the log end: its answer is up to date, rendered by the owner.
            return None;
        }
        let lazy = if chunk.in_snapshot {
            view.snapshot_file.as_ref()?
        } else {
            view.chunk_file.as_ref()?
        };
        // A file that cannot be opened (the shape was removed meanwhile) is the owner's case.
        let file = lazy.get().ok()?;
        let slice = Slice::whole_chunk(file, chunk.payload_at, chunk.len, chunk.framed, chunk.end);
        super::serve::log_response(core, call, handle, after, view.end, slice, 0)
    };
    core.stats().view_answers.fetch_add(1, Ordering::Relaxed);
    let now = Instant::now();
    if now.duration_since(view.touched.get()) >= super::closed_chunks::TOUCH_EVERY {
        // Least-recently-used eviction on the owner counts these clients too.
        view.touched.set(now);
        super::live::send(core, view.owner, CoreMsg::Touch(handle.to_owned()));
    }
    Some(response)
}
