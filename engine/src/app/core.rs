//! One core's state: the shapes it owns (those whose definition hash maps to it), their
//! snapshots, a small pool of Postgres connections and a catalog cache. Everything here is
//! `Rc`/`RefCell`: only this core's thread touches it, and no borrow is held across an await.

use super::durability::{self, Job};
use super::pool::{Pool, Pooled};
use super::snapshot_writes::{self, SnapshotRows};
use super::table_routes::TableShapes;
use super::{CoreMsg, DeleteTarget, Shared};
use crate::catalog::{self, quote_literal, TableInfo};
use crate::event::Event;
use crate::fast_map::FastMap;
use crate::http::Response;
use crate::ingest::txn::Txn;
use crate::pg::{Connection, PgError};
use crate::shapes::apply::EncodeCache;
use crate::shapes::def::ShapeDef;
use crate::shapes::shape::{Applied, Shape};
use crate::shapes::snapshot;
use crate::storage::{ShapeMeta, ShapeStore, StoredShape};
use protocol::ident::quote_ident;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a catalog lookup is trusted before it is read again (DDL that replication does not
/// announce, such as a NOT NULL change, shows up after this).
const TABLE_CACHE_TTL: Duration = Duration::from_secs(2);
/// Longest catalog lookup (a few queries on a pooled connection).
const CATALOG_LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// Transactions whose xids a move-in query's snapshot is checked against.
const RECENT_XIDS: usize = 1024;

/// A shape a transaction reaches: the indexes of its changes that can affect it (`None`: all)
/// and, for a subquery shape, its dependencies' moves.
type Target = (
    ShapeRef,
    Option<Vec<usize>>,
    Vec<(usize, crate::shapes::dep_view::Moves)>,
);

/// Passive shapes applied between two looks at the inbox for live answers (`Core::on_txn`);
/// a transaction reaching fewer is applied without yielding (a yield would cost more than it
/// saves).
const PASSIVE_SLICE: usize = 64;

/// A core's inbox while `run_inbox` handles it.
struct Inbox {
    rx: flume::Receiver<CoreMsg>,
    /// Messages taken out of order by [`Inbox::take_live`], handled next, in arrival order.
    deferred: VecDeque<CoreMsg>,
}

impl Inbox {
    /// Handles the live-request messages waiting in the inbox (answers from owners, watches)
    /// now, keeping every other message for later in its order; whether an answer came (its
    /// requests are ready to be written).
    fn take_live(&mut self, core: &Core) -> bool {
        let mut answered = false;
        while let Ok(msg) = self.rx.try_recv() {
            match msg {
                CoreMsg::Batch(batch) => {
                    super::live::on_batch(core, batch);
                    answered = true;
                }
                CoreMsg::Watch {
                    def,
                    handle,
                    after,
                    from,
                } => super::live::on_watch(core, &def, handle, after, from),
                other => self.deferred.push_back(other),
            }
        }
        answered
    }
}

pub type ShapeRef = Rc<RefCell<Shape>>;
/// Catalog cache: schema → table → entry and when it was read (nested, so a lookup by `&str`
/// allocates nothing: it is on every request's path).
#[derive(Default)]
struct TableCache(FastMap<String, FastMap<String, (Arc<TableInfo>, Instant)>>);

impl TableCache {
    fn get(&self, schema: &str, name: &str) -> Option<&(Arc<TableInfo>, Instant)> {
        self.0.get(schema)?.get(name)
    }

    fn insert(&mut self, schema: &str, name: &str, entry: (Arc<TableInfo>, Instant)) {
        self.0
            .entry(schema.to_string())
            .or_default()
            .insert(name.to_string(), entry);
    }

    /// Forgets the tables with one of these OIDs.
    fn forget(&mut self, oids: impl Fn(u32) -> bool) {
        for tables in self.0.values_mut() {
            tables.retain(|_, (t, _)| !oids(t.oid));
        }
        self.0.retain(|_, tables| !tables.is_empty());
    }
}

pub struct Core {
    pub id: usize,
    pub shared: Arc<Shared>,
    shapes: RefCell<FastMap<String, ShapeRef>>,
    by_def: RefCell<FastMap<String, String>>,
    /// Shapes by table OID, with each table's routing index.
    by_table: RefCell<FastMap<u32, TableShapes>>,
    tables: RefCell<TableCache>,
    /// Catalog lookups in flight, woken when they finish.
    loading: RefCell<HashMap<(String, String), Event>>,
    pool: Rc<Pool>,
    /// Commit LSN of the last transaction this core received: `global_last_seen_lsn`.
    pub last_lsn: Cell<u64>,
    last_handle_micros: Cell<u64>,
    rng: Cell<u64>,
    encode_cache: RefCell<EncodeCache>,
    /// Recently built definitions by request parameters, so repeated requests (catch-up,
    /// long-polls) skip WHERE parsing. Valid while the table entry they were built on is.
    pub defs: RefCell<super::def_cache::DefCache>,
    /// The storage worker thread (fsync, directory removal).
    pub worker: flume::Sender<Job>,
    /// Shapes written since the last sync was prepared.
    pub dirty: RefCell<HashMap<String, ShapeRef>>,
    /// Woken when `dirty` gains shapes.
    pub sync_wake: Event,
    /// A sync job is running on the worker.
    pub syncing: Cell<bool>,
    /// A shape directory removal was queued for the worker since the last sync round: nothing
    /// after the transaction that invalidated the shape may be reported durable until the
    /// removal is done (a crash in between would bring the stale shape back).
    pub removals_pending: Cell<bool>,
    /// Shutdown started: the sync loop starts no new job.
    pub shutting_down: Cell<bool>,
    /// End LSN of the last transaction this core has applied.
    pub processed_lsn: Cell<u64>,
    /// Rendered heads of catch-up responses (`head_cache`).
    pub heads: RefCell<super::head_cache::HeadCache>,
    /// Closed chunks of any core's shapes, answered here (`closed_chunks`).
    pub closed: RefCell<super::closed_chunks::ClosedChunks>,
    /// Per other core: messages waiting for room in its inbox, kept in order (`live::send`).
    pub overflow: Vec<Rc<super::live::Overflow>>,
    /// Views of other cores' shapes, answering their immutable data here (`views`).
    pub views: super::views::Views,
    /// Changes to this core's shapes, published to the other cores (`views`).
    pub outbox: super::views::Outbox,
    /// Live requests of this core's connections waiting for a shape to change (`live`).
    pub waits: super::live::Waits,
    /// Cores waiting for shapes this core owns to change (`live`).
    pub watchers: super::live::Watchers,
    /// Deadlines of held requests (one sweeper task per core).
    pub timers: crate::event::Timers,
    /// Shapes found on disk at start-up, made dormant on the first `Restore` message.
    stored: RefCell<Vec<StoredShape>>,
    /// Stored shapes not loaded yet (`dormant`): loaded when first needed.
    pub dormant: RefCell<super::dormant::Dormant>,
    /// Tables this core has seen in the publication with REPLICA IDENTITY FULL.
    published: RefCell<std::collections::HashSet<u32>>,
    /// Dependency views of this core's subquery shapes (`subqueries`).
    pub deps: RefCell<super::subqueries::Registry>,
    /// The stream position last announced by the ingest core (`CoreMsg::Progress`).
    pub stream_lsn: Cell<u64>,
    /// Subquery shapes whose move-in rows wait for the stream to pass the query's position.
    pub splice_waiters: RefCell<Vec<ShapeRef>>,
    /// Subquery shapes that may hold transactions not in their log yet (a move-in or a
    /// restore in progress, `subqueries`): the slot is not acknowledged past the first one
    /// ([`Core::publish_durable`]). Idle ones are dropped when seen.
    pub holding: RefCell<crate::fast_map::FastMap<usize, ShapeRef>>,
    /// Initial requests queued for an admission slot (`admission`).
    pub admission: super::admission::Queue,
    /// New shapes waiting for a shared snapshot, per table (`snapshot_batch`).
    pub batches: super::snapshot_batch::Batches,
    /// Xids of the transactions this core applied last: a move-in query's snapshot must see
    /// them all (a commit is streamed a moment before other sessions see it).
    pub recent_xids: RefCell<std::collections::VecDeque<u32>>,
    /// The thread writing snapshot chunks, started with the first snapshot that needs it
    /// (`None` inside: it could not be started, writes stay on the core).
    snapshot_writer: std::cell::OnceCell<Option<snapshot_writes::Writer>>,
}

impl Core {
    pub fn new(
        id: usize,
        shared: Arc<Shared>,
        stored: Vec<StoredShape>,
        worker: flume::Sender<Job>,
    ) -> Rc<Self> {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            ^ ((id as u64 + 1) << 32);
        let pool_size = shared.config.db_pool_size_per_core();
        let cores = shared.cores;
        Rc::new(Self {
            id,
            shared,
            shapes: RefCell::default(),
            by_def: RefCell::default(),
            by_table: RefCell::default(),
            tables: RefCell::default(),
            loading: RefCell::default(),
            pool: Pool::new(pool_size),
            last_lsn: Cell::new(0),
            last_handle_micros: Cell::new(0),
            rng: Cell::new(seed | 1),
            encode_cache: RefCell::default(),
            published: RefCell::default(),
            deps: RefCell::default(),
            stream_lsn: Cell::new(0),
            splice_waiters: RefCell::default(),
            holding: RefCell::default(),
            batches: Default::default(),
            admission: Default::default(),
            recent_xids: RefCell::default(),
            defs: RefCell::default(),
            worker,
            dirty: RefCell::default(),
            sync_wake: Event::new(),
            syncing: Cell::new(false),
            heads: Default::default(),
            closed: Default::default(),
            views: Default::default(),
            overflow: (0..cores).map(|_| Rc::default()).collect(),
            outbox: Default::default(),
            waits: Default::default(),
            watchers: Default::default(),
            removals_pending: Cell::new(false),
            shutting_down: Cell::new(false),
            processed_lsn: Cell::new(0),
            stored: RefCell::new(stored),
            dormant: RefCell::default(),
            snapshot_writer: std::cell::OnceCell::new(),
            timers: crate::event::Timers::new(),
        })
    }

    /// This core's metrics.
    pub fn stats(&self) -> &crate::metrics::CoreStats {
        self.shared.metrics.core(self.id)
    }

    pub(crate) fn count_shapes(&self) {
        let n = (self.shapes.borrow().len() + self.dormant.borrow().len()) as u64;
        self.stats().shapes.store(n, Relaxed);
    }

    /// A fast non-cryptographic random number (xorshift64*), for cursors and request ids.
    pub fn random(&self) -> u64 {
        let mut x = self.rng.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Microseconds since the process started (for etags that must never repeat).
    pub fn monotonic_micros(&self) -> u64 {
        static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        START.get_or_init(Instant::now).elapsed().as_micros() as u64
    }

    /// Handles messages from other cores until the process ends.
    pub async fn run_inbox(self: Rc<Self>, rx: flume::Receiver<CoreMsg>) {
        let mut inbox = Inbox {
            rx,
            deferred: VecDeque::new(),
        };
        loop {
            let msg = match inbox.deferred.pop_front() {
                Some(msg) => msg,
                None => match inbox.rx.recv_async().await {
                    Ok(msg) => msg,
                    Err(_) => return,
                },
            };
            match msg {
                CoreMsg::Txn(txn) => {
                    // Stored shapes of the tables it touches are loaded first (in order: the
                    // inbox waits), so none misses a change.
                    super::dormant::wake_for_txn(&self, &txn).await;
                    self.on_txn(&txn, &mut inbox).await;
                }
                CoreMsg::Progress(lsn) => {
                    self.stream_lsn.set(self.stream_lsn.get().max(lsn));
                    super::subqueries::progress(&self);
                }
                CoreMsg::Shape { call, reply } => {
                    let core = self.clone();
                    monoio::spawn(async move {
                        crate::fault::panic_at("forwarded", &call.def.table.name);
                        let resp = super::serve::serve_shape(&core, *call).await;
                        let _ = reply.send(resp);
                    });
                }
                CoreMsg::Watch {
                    def,
                    handle,
                    after,
                    from,
                } => super::live::on_watch(&self, &def, handle, after, from),
                CoreMsg::Batch(batch) => super::live::on_batch(&self, batch),
                CoreMsg::Views(update) => self.views.on_update(&update),
                CoreMsg::ReleaseConnections => {
                    let closed = self.pool.release_idle();
                    tracing::debug!(
                        "core {}: closed {closed} idle database connections",
                        self.id
                    );
                }
                CoreMsg::Forget(handle) => {
                    self.closed.borrow_mut().forget(&handle);
                    self.views.forget(&handle);
                }
                CoreMsg::Touch(handle) => {
                    if let Some(shape) = self.shapes.borrow().get(&handle) {
                        shape.borrow_mut().last_used = Instant::now();
                    }
                }
                CoreMsg::Subset { call, reply } => {
                    let core = self.clone();
                    monoio::spawn(async move {
                        let resp = super::subset::serve_on_owner(&core, *call).await;
                        let _ = reply.send(resp);
                    });
                }
                CoreMsg::Delete { target, reply } => {
                    let core = self.clone();
                    monoio::spawn(async move {
                        let resp = match super::dormant::wake_for_delete(&core, &target).await {
                            Ok(()) => core.delete(target),
                            Err(_) => {
                                super::responses::fixed(protocol::errors::database_unreachable())
                            }
                        };
                        let _ = reply.send(resp);
                    });
                }
                CoreMsg::Shutdown { reply } => {
                    // No new sync job starts, and the one running (which may be installing a
                    // shape's metadata) finishes before this core writes everything out.
                    self.shutting_down.set(true);
                    // Held long-polls answer and SSE streams end now, while their connections
                    // can still send it (the process exits once every core replied).
                    self.timers.end_all();
                    let core = self.clone();
                    monoio::spawn(async move {
                        let until = Instant::now() + Duration::from_secs(5);
                        while core.syncing.get() && Instant::now() < until {
                            monoio::time::sleep(Duration::from_millis(5)).await;
                        }
                        core.write_all_for_shutdown();
                        // Time for the connections to write those answers.
                        monoio::time::sleep(Duration::from_millis(50)).await;
                        let _ = reply.send(());
                    });
                }
                CoreMsg::Restore { purge, reply } => {
                    let core = self.clone();
                    monoio::spawn(async move {
                        let found = std::mem::take(&mut *core.stored.borrow_mut());
                        if purge {
                            core.purge();
                            let dormant = core.dormant.borrow_mut().drain();
                            for s in found.into_iter().chain(dormant) {
                                let _ = core.worker.send(Job::Remove(s.dir));
                            }
                        } else if !found.is_empty() {
                            // Only metadata so far: each shape loads when first needed.
                            let (dormant, unservable) = super::dormant::Dormant::new(found);
                            *core.dormant.borrow_mut() = dormant;
                            for s in unservable {
                                // The same words as every other shape a start drops, so one
                                // search of the log finds them all.
                                let why = if s.meta.snapshot_complete {
                                    "a newer shape of its definition is stored"
                                } else {
                                    "its snapshot never completed"
                                };
                                tracing::info!(
                                    "shape {} is not restored ({why}); clients get 409",
                                    s.meta.handle
                                );
                                let _ = core.worker.send(Job::Remove(s.dir));
                            }
                        }
                        core.count_shapes();
                        let _ = reply.send(());
                    });
                }
            }
        }
    }

    /// Applies a committed transaction to every shape it reaches on this core.
    ///
    /// Shapes with requests waiting on them (held long-polls, SSE streams, other cores'
    /// watchers) go first, then the core yields so those requests are answered before the rest
    /// of the work. The passive shapes follow in slices of [`PASSIVE_SLICE`]; between slices
    /// the core takes the answers other cores' owners sent for requests held here
    /// (`CoreMsg::Batch`, see [`Inbox::take_live`]) and yields if there were any. A client's
    /// latency then does not grow with the number of passive shapes a transaction also
    /// reaches, on its owner core or on the core holding its connection. Requests served
    /// meanwhile see the passive shapes as they were before the transaction (as if it had
    /// arrived a moment later); `last_lsn` moves only at the end, so no response claims a
    /// transaction its shape does not hold yet.
    async fn on_txn(self: &Rc<Self>, txn: &Arc<Txn>, inbox: &mut Inbox) {
        if !txn.relations.is_empty() {
            self.tables
                .borrow_mut()
                .forget(|oid| txn.relations.iter().any(|r| r.oid == oid));
        }
        // Dependency views first: a shape sees a transaction's moves before its changes.
        let view_moves = self.deps.borrow().on_txn(txn);
        for handle in super::subqueries::broken_shapes(&view_moves) {
            self.remove(&handle);
        }
        let mut moved = super::subqueries::deliver(self, &view_moves);
        let mut targets: Vec<Target> = self
            .route(txn)
            .into_iter()
            .map(|(shape, only)| {
                let moves = if shape.borrow().sub.is_some() {
                    moved.remove(&shape.borrow().handle).unwrap_or_default()
                } else {
                    Vec::new()
                };
                (shape, only, moves)
            })
            .collect();
        for (handle, moves) in moved {
            if let Some(shape) = self.shape(&handle) {
                targets.push((shape, Some(Vec::new()), moves));
            }
        }
        let (waited, mut passive): (Vec<_>, Vec<_>) = targets
            .into_iter()
            .partition(|(shape, _, _)| self.is_waited_on(&shape.borrow()));
        self.encode_cache.borrow_mut().clear();
        let many = passive.len() > PASSIVE_SLICE;
        let answered = !waited.is_empty();
        self.apply_txn(txn, waited);
        if many && answered {
            self.let_answers_out().await;
        }
        while !passive.is_empty() {
            if many && inbox.take_live(self) {
                self.let_answers_out().await;
            }
            let rest = passive.split_off(passive.len().min(PASSIVE_SLICE));
            self.apply_txn(txn, std::mem::replace(&mut passive, rest));
        }
        self.last_lsn.set(txn.commit_lsn);
        {
            let mut recent = self.recent_xids.borrow_mut();
            if recent.len() >= RECENT_XIDS {
                recent.pop_front();
            }
            recent.push_back(txn.xid);
        }
        super::views::flush(self);
        self.processed_lsn.set(txn.end_lsn);
        if self.dirty.borrow().is_empty() && !self.syncing.get() && !self.removals_pending.get() {
            // Nothing of this transaction (or before) waits for a sync on this core.
            self.publish_durable(txn.end_lsn);
        }
    }

    /// Lets the requests answered so far go out before this core goes on with passive shapes.
    /// On epoll, running their tasks writes them (a non-blocking write happens in the task). On
    /// io_uring a task only queues its write, which the runtime submits once its run queue is
    /// empty, so the core waits on a timer instead of yielding: the queue empties, the runtime
    /// submits and reaps, and the timer brings the core back (within its 1 ms resolution).
    async fn let_answers_out(&self) {
        match self.shared.config.io_driver {
            crate::runtime::IoDriver::Epoll => crate::pg::yield_now().await,
            _ => monoio::time::sleep(Duration::from_micros(1)).await,
        }
    }

    /// Whether requests wait for this shape to change: held here, or watched by another core.
    fn is_waited_on(&self, shape: &Shape) -> bool {
        shape.changed.waiters() > 0 || self.watchers.contains(&shape.handle)
    }

    /// Applies `txn` to `targets` (see [`Core::route`]); a shape removed meanwhile is skipped.
    fn apply_txn(self: &Rc<Self>, txn: &Arc<Txn>, targets: Vec<Target>) {
        for (shape, only, moves) in targets {
            if shape.borrow().invalidated {
                continue;
            }
            let before = shape.borrow().log.bytes_total();
            let is_sub = shape.borrow().sub.is_some();
            let applied = if is_sub {
                let step = super::subqueries::step(txn, only, moves);
                shape.borrow_mut().on_step(step)
            } else {
                let mut cache = self.encode_cache.borrow_mut();
                shape.borrow_mut().on_txn(txn, &mut cache, only.as_deref())
            };
            if let Applied::Appended(_) = applied {
                let after = shape.borrow().log.bytes_total();
                self.stats()
                    .log_bytes
                    .fetch_add(after.saturating_sub(before), Relaxed);
            }
            self.after_applied(&shape, applied);
            if is_sub {
                super::subqueries::try_splice(self, &shape, txn.end_lsn);
                super::subqueries::start_move_in(self, &shape);
            }
        }
    }

    /// What follows a change of a shape's log: metrics, waking watchers, publishing its view
    /// to the other cores, the next sync; or its removal when it must rotate.
    pub(crate) fn after_applied(&self, shape: &ShapeRef, applied: Applied) {
        match applied {
            Applied::Invalidate(why) => {
                let handle = shape.borrow().handle.clone();
                tracing::info!("shape {handle} invalidated: {why}");
                self.remove(&handle);
            }
            Applied::Appended(n) => {
                self.stats().log_entries.fetch_add(n as u64, Relaxed);
                // A capped log (subquery shapes) shows new entries once its sync cut it there
                // (`durability`).
                if shape.borrow().log.cap().is_none() {
                    if !self.watchers.is_empty() {
                        super::live::shape_changed(self, &shape.borrow());
                    }
                    super::views::note(self, &mut shape.borrow_mut());
                }
                self.mark_dirty(shape);
            }
            Applied::Nothing => self.mark_dirty(shape),
        }
    }

    /// The shapes a transaction reaches, each with the indexes of its changes that can affect
    /// it (`None`: every change, for tables the transaction truncates or redefines, so those
    /// shapes see it and rotate).
    fn route(&self, txn: &Txn) -> Vec<(ShapeRef, Option<Vec<usize>>)> {
        let by_table = self.by_table.borrow();
        let shapes = self.shapes.borrow();
        let mut targets = Vec::new();
        let mut whole: Vec<u32> = txn.truncated.clone();
        whole.extend(txn.overflowed.iter().copied());
        whole.extend(txn.relations.iter().map(|r| r.oid));
        whole.sort_unstable();
        whole.dedup();
        for oid in &whole {
            for handle in by_table.get(oid).into_iter().flat_map(TableShapes::handles) {
                if let Some(s) = shapes.get(handle) {
                    targets.push((s.clone(), None));
                }
            }
        }
        // (table, route id) → change indexes, in change order.
        let mut hits: FastMap<(u32, u64), Vec<usize>> = FastMap::default();
        let mut routed = Vec::new();
        for (i, change) in txn.changes.iter().enumerate() {
            let oid = change.relation.oid;
            if whole.binary_search(&oid).is_ok() {
                continue;
            }
            let Some(table) = by_table.get(&oid) else {
                continue;
            };
            routed.clear();
            crate::shapes::apply::route_change(&table.router, change, &mut routed);
            routed.sort_unstable();
            routed.dedup();
            for &id in &routed {
                hits.entry((oid, id)).or_default().push(i);
            }
        }
        for ((oid, id), indexes) in hits {
            let handle = by_table.get(&oid).and_then(|t| t.handle(id));
            if let Some(s) = handle.and_then(|h| shapes.get(h)) {
                targets.push((s.clone(), Some(indexes)));
            }
        }
        targets
    }

    /// Writes every shape's buffers and installs pending metadata, so a clean stop keeps every
    /// shape (one `syncfs` afterwards, by the caller, makes it all durable at once).
    fn write_all_for_shutdown(&self) {
        let shapes: Vec<ShapeRef> = self.shapes.borrow().values().cloned().collect();
        for shape in shapes {
            let mut s = shape.borrow_mut();
            let handle = s.handle.clone();
            if let Some(store) = s.store.as_mut() {
                let written = store
                    .prepare_sync()
                    .and_then(|job| job.run_deferred())
                    .map(|point| store.mark_durable(point));
                if let Err(e) = written {
                    tracing::warn!("shape {handle}: not written at shutdown: {e}");
                    continue;
                }
            }
            // A subquery shape cuts its log where it ends now (`durability::cut_of`), so the
            // next start brings it back whole; without a cut now, at its last one.
            let saved = match (super::durability::cut_of(&s), s.store.as_ref()) {
                (Some(cut), Some(store)) => {
                    Some(crate::storage::log_cut::write_unsynced(store.dir(), &cut))
                }
                _ => None,
            };
            if let Some(Err(e)) = saved {
                tracing::warn!("shape {handle}: its views were not saved at shutdown ({e})");
            }
            if let Some(sub) = s.sub.as_mut() {
                // It takes no more steps: the next start rebuilds them from the WAL.
                sub.frozen = true;
            }
        }
    }

    /// Queues a shape for the next sync if it wrote to its store.
    pub fn mark_dirty(&self, shape: &ShapeRef) {
        let s = shape.borrow();
        if s.dirty && !s.invalidated {
            let added = self
                .dirty
                .borrow_mut()
                .insert(s.handle.clone(), shape.clone())
                .is_none();
            if added {
                self.sync_wake.notify();
            }
        }
    }

    /// Declares everything up to `lsn` durable on this core, but never a transaction a
    /// subquery shape has queued and not applied: its log's cut (`durability::cut_of`) does
    /// not hold it, so after a crash the slot must send it again.
    pub fn publish_durable(&self, lsn: u64) {
        if self.shutting_down.get() {
            // Frozen shapes take no more transactions: none may be acknowledged.
            return;
        }
        if let Some(hold) = self.replay_hold() {
            self.shared.set_durable(self.id, lsn.min(hold));
        }
    }

    /// The commit LSN of the first transaction a subquery shape queued and has not applied
    /// (`u64::MAX`: none), which must not be acknowledged; `None` when it cannot be known now
    /// (a shape is borrowed).
    pub fn replay_hold(&self) -> Option<u64> {
        let mut hold = u64::MAX;
        let mut holding = self.holding.borrow_mut();
        let mut unknown = false;
        holding.retain(|_, shape| {
            let Ok(s) = shape.try_borrow() else {
                unknown = true;
                return true;
            };
            if s.invalidated {
                return false;
            }
            let Some(sub) = s.sub.as_ref() else {
                return false;
            };
            let from = sub.replay_from();
            if let Some(from) = from {
                hold = hold.min(from);
            }
            from.is_some() || sub.moving.is_some() || sub.restoring.is_some()
        });
        (!unknown).then_some(hold)
    }

    /// Registers a shape restored from storage. Of two stored shapes with one definition (an
    /// invalidated shape whose removal a crash interrupted, and its successor) only the newest
    /// comes back: an invalidated handle must keep answering 409.
    pub fn insert_restored(&self, shape: ShapeRef) {
        let (handle, canonical, def) = {
            let s = shape.borrow();
            (s.handle.clone(), s.def.canonical.clone(), s.def.clone())
        };
        let created = super::dormant::created_micros;
        let existing = self.by_def.borrow().get(&canonical).cloned();
        if let Some(other) = existing {
            if created(&other) >= created(&handle) {
                tracing::info!("shape {handle} was superseded by {other}; dropping it");
                if let Some(store) = shape.borrow_mut().store.take() {
                    let _ = self.worker.send(Job::Remove(store.dir().to_path_buf()));
                }
                return;
            }
            tracing::info!("shape {other} was superseded by {handle}; dropping it");
            self.remove(&other);
        }
        self.shapes
            .borrow_mut()
            .insert(handle.clone(), shape.clone());
        self.count_shapes();
        self.by_def.borrow_mut().insert(canonical, handle.clone());
        self.by_table
            .borrow_mut()
            .entry(def.table.oid)
            .or_default()
            .insert(&handle, &def);
        let mut s = shape.borrow_mut();
        super::views::note(self, &mut s);
        drop(s);
        super::views::flush(self);
    }

    pub fn shape(&self, handle: &str) -> Option<ShapeRef> {
        self.shapes.borrow().get(handle).cloned()
    }

    /// The active shape for a definition, created (and its snapshot started) if there is none.
    /// Fails only when its storage cannot be created (disk full, read-only storage dir).
    pub fn get_or_create(self: &Rc<Self>, def: &Arc<ShapeDef>) -> Result<ShapeRef, String> {
        // Looked up in place: no handle copied on the path of every request.
        let existing = self
            .by_def
            .borrow()
            .get(&def.canonical)
            .and_then(|h| self.shapes.borrow().get(h).cloned());
        if let Some(s) = existing {
            return Ok(s);
        }
        self.evict_if_full();
        let handle = self.new_handle(def.hash);
        let meta = ShapeMeta::new(
            handle.clone(),
            durability::definition_record(def, def.where_raw.as_deref(), &def.params_raw),
        );
        let store = Some(
            ShapeStore::create(&self.shared.config.storage_dir, &meta).map_err(|e| {
                tracing::error!("cannot create the storage of a new shape: {e}");
                e.to_string()
            })?,
        );
        let shape = Rc::new(RefCell::new(Shape::new(
            handle.clone(),
            def.clone(),
            self.shared.config.chunk_bytes_threshold,
            store,
        )));
        if def.subquery.is_some() {
            super::subqueries::attach(self, &shape);
        }
        self.shapes
            .borrow_mut()
            .insert(handle.clone(), shape.clone());
        self.count_shapes();
        self.by_def
            .borrow_mut()
            .insert(def.canonical.clone(), handle.clone());
        self.by_table
            .borrow_mut()
            .entry(def.table.oid)
            .or_default()
            .insert(&handle, def);
        tracing::debug!("created shape {handle} on core {}", self.id);
        let core = self.clone();
        let s = shape.clone();
        monoio::spawn(async move { core.snapshot_task(s).await });
        Ok(shape)
    }

    /// Keeps this core under its share of `ELECTRIC_MAX_SHAPES` by evicting the least recently
    /// used shape (clients of an evicted shape get 409 and resync, as after upstream's LRU).
    fn evict_if_full(&self) {
        let Some(limit) = self.shared.config.max_shapes_per_core() else {
            return;
        };
        while self.shapes.borrow().len() + self.dormant.borrow().len() >= limit {
            // Stored shapes not used since the restart go first.
            let stored = self.dormant.borrow_mut().pop_oldest();
            if let Some(s) = stored {
                tracing::info!(
                    "evicting stored shape {}: ELECTRIC_MAX_SHAPES reached",
                    s.meta.handle
                );
                let _ = self.worker.send(Job::Remove(s.dir));
                self.count_shapes();
                continue;
            }
            let oldest = self
                .shapes
                .borrow()
                .values()
                .min_by_key(|s| s.borrow().last_used)
                .map(|s| s.borrow().handle.clone());
            let Some(handle) = oldest else { return };
            tracing::info!("evicting shape {handle}: ELECTRIC_MAX_SHAPES reached");
            self.remove(&handle);
        }
    }

    /// The active handle for a definition, if any.
    pub fn active_handle(&self, def: &ShapeDef) -> Option<String> {
        self.by_def.borrow().get(&def.canonical).cloned()
    }

    fn new_handle(&self, hash: u32) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        // Strictly increasing per core, so a handle is never reused even within a microsecond.
        let micros = now.max(self.last_handle_micros.get() + 1);
        self.last_handle_micros.set(micros);
        protocol::handle::format_handle(hash, micros)
    }

    /// Invalidates a shape: waiters wake up and answer 409, the handle is forgotten.
    pub fn remove(&self, handle: &str) {
        let Some(shape) = self.shapes.borrow_mut().remove(handle) else {
            return;
        };
        self.count_shapes();
        let (canonical, oid) = {
            let s = shape.borrow();
            (s.def.canonical.clone(), s.def.table.oid)
        };
        {
            let mut by_def = self.by_def.borrow_mut();
            if by_def.get(&canonical).map(String::as_str) == Some(handle) {
                by_def.remove(&canonical);
            }
        }
        {
            let mut by_table = self.by_table.borrow_mut();
            if let Some(table) = by_table.get_mut(&oid) {
                table.remove(handle);
                if table.is_empty() {
                    by_table.remove(&oid);
                }
            }
        }
        self.dirty.borrow_mut().remove(handle);
        let store = shape.borrow_mut().store.take();
        if let Some(store) = store {
            // Deleting (with its fsyncs) happens off the core; the metadata goes first, so a
            // crash midway never brings the shape back. The sync loop reports progress past
            // this point only once the worker has done it (jobs run in order).
            let _ = self.worker.send(Job::Remove(store.dir().to_path_buf()));
            self.removals_pending.set(true);
            self.sync_wake.notify();
        }
        super::subqueries::detach(self, &shape);
        shape.borrow_mut().invalidate();
        super::live::shape_removed(self, handle);
        self.heads.borrow_mut().forget(handle);
        self.closed.borrow_mut().forget(handle);
        let handle: Arc<str> = handle.into();
        for to in (0..self.shared.cores).filter(|&to| to != self.id) {
            super::live::send(self, to, CoreMsg::Forget(handle.clone()));
        }
    }

    fn purge(&self) {
        let handles: Vec<String> = self.shapes.borrow().keys().cloned().collect();
        for h in handles {
            self.remove(&h);
        }
    }

    fn delete(&self, target: DeleteTarget) -> Response {
        let handle = match target {
            DeleteTarget::Handle(h) => self.shapes.borrow().contains_key(&h).then_some(h),
            DeleteTarget::Definition { def, handle } => {
                let active = self.active_handle(&def);
                match (active, handle) {
                    (Some(a), Some(h)) if a != h => {
                        return super::responses::delete_mismatch();
                    }
                    (a, _) => a,
                }
            }
        };
        match handle {
            Some(h) => {
                self.remove(&h);
                super::responses::deleted()
            }
            None => super::responses::delete_not_found(),
        }
    }

    /// A pooled connection (to `ELECTRIC_POOLED_DATABASE_URL` when given); waits while the
    /// core's share of `ELECTRIC_DB_POOL_SIZE` is in use. No session settings: behind a pooler
    /// in transaction mode they would land on a server connection other clients share, so the
    /// transactions that need the display settings set them locally
    /// (`snapshot::begin_snapshot_sql`).
    pub async fn conn(&self) -> Result<Pooled, PgError> {
        self.pool.get(|| self.connect()).await
    }

    /// [`Core::conn`] ahead of the callers already waiting (catalog lookups).
    async fn conn_first(&self) -> Result<Pooled, PgError> {
        self.pool.get_first(|| self.connect()).await
    }

    async fn connect(&self) -> Result<Connection, PgError> {
        let config = &self.shared.config;
        let mut cfg = config.pg_connect_config(config.query_url(&self.shared.db_url))?;
        cfg.application_name = Some(format!("ampere_core_{}", self.id));
        Connection::connect(&cfg).await
    }

    /// Returns a healthy connection to the pool (drop it instead after an error).
    pub fn put_conn(&self, c: Pooled) {
        if self.shared.status() == super::Status::Sleeping {
            // Closed: a sleeping Ampere holds no database connection.
            return;
        }
        self.pool.put(c);
    }

    /// The table's catalog entry (cached briefly); `Ok(None)` if it does not exist.
    /// The catalog entry of a table if the cache holds a fresh one: the synchronous fast path
    /// of [`Core::table`], which callers try first so the common case builds no future.
    pub fn cached_table(&self, schema: &str, name: &str) -> Option<Arc<TableInfo>> {
        let tables = self.tables.borrow();
        let (t, at) = tables.get(schema, name)?;
        (at.elapsed() < TABLE_CACHE_TTL).then(|| t.clone())
    }

    pub async fn table(&self, schema: &str, name: &str) -> Result<Option<Arc<TableInfo>>, PgError> {
        // Built only past a cache hit (the common case allocates nothing).
        let mut key = None;
        // One lookup per table at a time: when the cache entry expires under a burst (every
        // client of a shape re-requesting after a write), the others wait for it.
        let _loading = loop {
            if let Some((t, at)) = self.tables.borrow().get(schema, name) {
                if at.elapsed() < TABLE_CACHE_TTL {
                    return Ok(Some(t.clone()));
                }
            }
            let key = key.get_or_insert_with(|| (schema.to_string(), name.to_string()));
            let pending = self.loading.borrow().get(key).map(Event::listen);
            match pending {
                Some(listener) => listener.await,
                None => break LoadingGuard::new(&self.loading, key.clone()),
            }
        };
        // Bounded: a pooled connection can be dead without the kernel knowing (a NAT or load
        // balancer dropped it), and a lookup waiting on it would hold every request of the
        // table. Past the bound the connection is dropped and the cached entry, if any, serves.
        let loaded = monoio::time::timeout(CATALOG_LOOKUP_TIMEOUT, async {
            // Ahead of queued snapshots: a storm's snapshots (a table's whole batch queued
            // behind the pool's limit) would otherwise hold this lookup, and every request of
            // the table, past the timeout into a 503.
            let mut conn = self.conn_first().await?;
            let t = catalog::load_table(&mut conn, schema, name).await?;
            self.put_conn(conn);
            Ok::<_, PgError>(t)
        })
        .await
        .unwrap_or(Err(PgError::Timeout("looking up a table in the catalog")));
        let t = match loaded {
            Ok(t) => t,
            Err(e) => {
                // While Postgres is unreachable, existing shapes stay servable on the last
                // known table definition (replication re-validates it when it reconnects).
                if let Some((t, _)) = self.tables.borrow().get(schema, name) {
                    tracing::debug!("catalog lookup failed ({e}); using the cached table");
                    return Ok(Some(t.clone()));
                }
                return Err(e);
            }
        };
        Ok(t.map(|t| {
            let mut tables = self.tables.borrow_mut();
            // An unchanged table keeps its `Arc`, so definitions built on it stay cached.
            let t = match tables.get(schema, name) {
                Some((old, _)) if **old == t => old.clone(),
                _ => Arc::new(t),
            };
            tables.insert(schema, name, (t.clone(), Instant::now()));
            t
        }))
    }

    /// Adds the table to the publication and makes its replica identity FULL (needed to evaluate
    /// WHERE on the old row of updates), each only when not already so.
    pub(crate) async fn ensure_published(
        &self,
        conn: &mut Connection,
        t: &TableInfo,
    ) -> Result<(), PgError> {
        if self.published.borrow().contains(&t.oid) {
            return Ok(());
        }
        let publication = self.shared.config.publication_name();
        let res = conn
            .simple_query(&format!(
                "SELECT c.relreplident, EXISTS (SELECT 1 FROM pg_publication_rel pr \
                   JOIN pg_publication p ON p.oid = pr.prpubid \
                   WHERE p.pubname = {} AND pr.prrelid = c.oid) \
                 FROM pg_class c WHERE c.oid = {}",
                quote_literal(&publication),
                t.oid
            ))
            .await?;
        let (identity, published) = res
            .iter()
            .flat_map(|r| r.rows.iter())
            .next()
            .map(|row| {
                (
                    row.get(0).unwrap_or("").to_string(),
                    row.get(1) == Some("t"),
                )
            })
            .unwrap_or_default();
        if self.shared.config.manual_table_publishing {
            let table = t.quoted();
            let publication = quote_ident(&publication);
            if !published {
                return Err(PgError::Misconfigured(format!(
                    "Database table {table} is missing from the publication {publication} and \
                     the ELECTRIC_MANUAL_TABLE_PUBLISHING setting prevents Ampere from adding it; \
                     add it with: ALTER PUBLICATION {publication} ADD TABLE {table}"
                )));
            }
            if identity != "f" {
                return Err(PgError::Misconfigured(format!(
                    "Database table {table} does not have its replica identity set to FULL; set \
                     it with: ALTER TABLE {table} REPLICA IDENTITY FULL"
                )));
            }
            self.published.borrow_mut().insert(t.oid);
            return Ok(());
        }
        if !published {
            let sql = format!(
                "ALTER PUBLICATION {} ADD TABLE {}",
                quote_ident(&publication),
                t.quoted()
            );
            match conn.execute(&sql).await {
                Ok(_) => {}
                Err(e) if e.code() == Some("42710") => {}
                Err(e) => return Err(e),
            }
        }
        if identity != "f" {
            conn.execute(&format!("ALTER TABLE {} REPLICA IDENTITY FULL", t.quoted()))
                .await?;
        }
        self.published.borrow_mut().insert(t.oid);
        Ok(())
    }

    /// The core's snapshot writer thread, started on first use.
    pub(crate) fn snapshot_writer(&self) -> Option<snapshot_writes::Writer> {
        self.snapshot_writer
            .get_or_init(|| match snapshot_writes::Writer::start(self.id) {
                Ok(writer) => Some(writer),
                Err(e) => {
                    tracing::warn!("core {}: no snapshot writer thread ({e}); snapshots are written on the core", self.id);
                    None
                }
            })
            .clone()
    }

    async fn snapshot_task(self: Rc<Self>, shape: ShapeRef) {
        let def = shape.borrow().def.clone();
        if super::snapshot_batch::shares(&def) {
            // With the other new shapes of its table (`snapshot_batch`).
            super::snapshot_batch::enqueue(&self, shape);
            return;
        }
        let started = Instant::now();
        let result = async {
            // A subquery shape waits for its views first (their loading needs connections
            // of this pool: none is held meanwhile). Its snapshot then starts after them.
            if def.subquery.is_some() {
                super::subqueries::views_ready(&shape)
                    .await
                    .map_err(snapshot::SnapshotError::Protocol)?;
            }
            let mut conn = self.conn().await.map_err(snapshot::SnapshotError::Pg)?;
            self.ensure_published(&mut conn, &def.table)
                .await
                .map_err(snapshot::SnapshotError::Pg)?;
            let mut rows = SnapshotRows::new(&self, &shape);
            let tags = shape
                .borrow()
                .sub
                .as_ref()
                .map(|sub| (sub.stack_id.clone(), shape.borrow().handle.clone()));
            let applied = self.applied_xids();
            let r = snapshot::run(&mut conn, &def, tags, &applied, |json| rows.push(json)).await;
            rows.finish().await?;
            if r.is_ok() {
                self.put_conn(conn);
            }
            r
        }
        .await;
        self.snapshot_done(&shape, result, started);
    }

    /// Opens a snapshot transaction that sees every transaction this core applied
    /// (`snapshot::begin_seeing`): a shape registered after one of them was applied would
    /// never get it, and a move-in query or view load that missed one would disagree with the
    /// views.
    pub(crate) async fn begin_seeing_applied(
        &self,
        conn: &mut Connection,
    ) -> Result<(crate::shapes::shape::PgSnapshot, u64), snapshot::SnapshotError> {
        snapshot::begin_seeing(conn, &self.applied_xids()).await
    }

    /// Xids of the transactions this core applied last (what a new snapshot must see).
    pub(crate) fn applied_xids(&self) -> Vec<u32> {
        self.recent_xids.borrow().iter().copied().collect()
    }

    /// What follows a shape's snapshot: its end in the log (and the transactions that waited
    /// for it), or its removal when it failed.
    pub(crate) fn snapshot_done(
        self: &Rc<Self>,
        shape: &ShapeRef,
        result: Result<(crate::shapes::shape::PgSnapshot, u64), snapshot::SnapshotError>,
        started: Instant,
    ) {
        let handle = shape.borrow().handle.clone();
        match result {
            Ok((snap, rows)) => {
                tracing::debug!(
                    "snapshot of {handle}: {rows} rows in {:?}",
                    started.elapsed()
                );
                if shape.borrow().invalidated {
                    return;
                }
                let mut applied = shape.borrow_mut().snapshot_finished(snap);
                if shape.borrow().sub.is_some() && !matches!(applied, Applied::Invalidate(_)) {
                    // The steps that arrived during the snapshot.
                    applied = shape.borrow_mut().drain();
                }
                self.stats()
                    .log_bytes
                    .fetch_add(shape.borrow().log.bytes_total(), Relaxed);
                if let Applied::Invalidate(why) = applied {
                    tracing::info!("shape {handle} invalidated: {why}");
                    self.remove(&handle);
                } else {
                    self.mark_dirty(shape);
                    super::views::note(self, &mut shape.borrow_mut());
                    super::views::flush(self);
                    super::subqueries::start_move_in(self, shape);
                }
            }
            Err(e) => {
                tracing::warn!("snapshot of shape {handle} failed: {e}");
                {
                    let mut s = shape.borrow_mut();
                    s.snapshot_error = Some(e.failure());
                }
                self.remove(&handle);
            }
        }
    }
}

#[cfg(test)]
impl Core {
    /// Core 0 of an insecure default configuration whose cores have these inboxes, with no
    /// stored shapes: for unit tests of what a core does without a database.
    pub(crate) fn for_tests(inboxes: Vec<flume::Sender<CoreMsg>>) -> Rc<Self> {
        use clap::Parser;
        let config =
            crate::config::Config::try_parse_from(["ampere", "--insecure"]).expect("config");
        let shared = Arc::new(super::Shared::new(config, String::new(), inboxes));
        let worker = super::durability::start_worker(0).expect("storage worker");
        Core::new(0, shared, Vec::new(), worker)
    }
}

/// Marks a catalog lookup in flight; on drop (done, failed or cancelled) it is removed and its
/// waiters are woken to look at the cache again.
struct LoadingGuard<'a> {
    map: &'a RefCell<HashMap<(String, String), Event>>,
    key: (String, String),
}

impl<'a> LoadingGuard<'a> {
    fn new(map: &'a RefCell<HashMap<(String, String), Event>>, key: (String, String)) -> Self {
        map.borrow_mut().insert(key.clone(), Event::new());
        Self { map, key }
    }
}

impl Drop for LoadingGuard<'_> {
    fn drop(&mut self) {
        if let Some(ev) = self.map.borrow_mut().remove(&self.key) {
            ev.notify();
        }
    }
}
