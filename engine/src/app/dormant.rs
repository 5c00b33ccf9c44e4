//! Stored shapes not loaded yet. At start-up only each shape's metadata is read
//! (`storage::list_stored`); a shape is loaded (its log recovered lazily, its definition rebuilt
//! against the catalog) the first time something needs it:
//! - a request whose definition hashes like its handle (`wake_for_def`), before the owner core
//!   looks the definition up, so a stored shape is found instead of created anew;
//! - a DELETE naming it or its definition;
//! - a transaction touching its table, before the transaction is applied (`wake_for_txn`), so
//!   no change is missed. Replication therefore never waits for shapes nobody uses.
//!
//! Restart time and memory thus depend on the number of stored shapes only through one small
//! file read and a few hundred bytes each, not on their logs (issue 12, "instant restart").

use super::core::Core;
use super::durability::{self, Job};
use super::DeleteTarget;
use crate::event::Event;
use crate::ingest::txn::Txn;
use crate::storage::StoredShape;
use std::collections::HashMap;
use std::rc::Rc;

/// The dormant shapes of one core.
#[derive(Default)]
pub struct Dormant {
    /// Not loaded yet (removed when loading starts, put back when it cannot finish now).
    shapes: HashMap<String, StoredShape>,
    /// Handles by definition hash and by table OID, until loading ends.
    by_hash: HashMap<u32, Vec<String>>,
    by_oid: HashMap<u32, Vec<String>>,
    /// Shapes being loaded, each with the event that marks the end of the attempt.
    loading: HashMap<String, Event>,
    /// Increases with every purge: a load that started before one must not insert its shape.
    purges: u64,
}

/// What a waker must do for one handle.
enum Step {
    Load(Box<StoredShape>, Event),
    Wait(crate::event::Listener),
    Nothing,
}

/// A stored shape could not be loaded now (Postgres unreachable for its catalog lookup).
#[derive(Debug)]
pub struct NotLoaded;

impl Dormant {
    /// Indexes the stored shapes of one core. Returns those that can never be served, to be
    /// removed: a snapshot that never completed (its transaction is gone), and all but the
    /// newest of stored shapes with one definition (an invalidated shape whose removal a
    /// crash interrupted, next to its successor: the old handle must keep answering 409).
    pub fn new(stored: Vec<StoredShape>) -> (Self, Vec<StoredShape>) {
        let mut newest: HashMap<&crate::storage::DefinitionRecord, &str> = HashMap::new();
        for s in stored.iter().filter(|s| s.meta.snapshot_complete) {
            let e = newest.entry(&s.meta.definition).or_insert(&s.meta.handle);
            if created_micros(&s.meta.handle) > created_micros(e) {
                *e = &s.meta.handle;
            }
        }
        let keep: std::collections::HashSet<String> =
            newest.values().map(|h| h.to_string()).collect();
        let mut d = Self::default();
        let mut drop = Vec::new();
        for s in stored {
            let handle = s.meta.handle.clone();
            if !keep.contains(&handle) {
                drop.push(s);
                continue;
            }
            d.by_hash
                .entry(hash_of(&handle))
                .or_default()
                .push(handle.clone());
            d.by_oid
                .entry(s.meta.definition.table_oid)
                .or_default()
                .push(handle.clone());
            d.shapes.insert(handle, s);
        }
        (d, drop)
    }

    /// Shapes not loaded or being loaded.
    pub fn len(&self) -> usize {
        self.shapes.len() + self.loading.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes every dormant shape (a purge: they are deleted); loads under way will drop theirs.
    pub fn drain(&mut self) -> Vec<StoredShape> {
        self.purges += 1;
        self.by_hash.clear();
        self.by_oid.clear();
        for h in self.loading.keys() {
            // Still listed until their loads end, so that waiters find them.
            self.by_hash.entry(hash_of(h)).or_default().push(h.clone());
        }
        self.shapes.drain().map(|(_, s)| s).collect()
    }

    /// Takes the dormant shape created first, if any (the shape limit evicts it first: it has
    /// not been used since the restart).
    pub fn pop_oldest(&mut self) -> Option<StoredShape> {
        let oldest = self
            .shapes
            .keys()
            .min_by_key(|h| (created_micros(h), (*h).clone()))?
            .clone();
        let s = self.shapes.remove(&oldest)?;
        self.forget(&oldest, s.meta.definition.table_oid);
        Some(s)
    }

    fn forget(&mut self, handle: &str, oid: u32) {
        for (map, key) in [
            (&mut self.by_hash, hash_of(handle)),
            (&mut self.by_oid, oid),
        ] {
            if let Some(v) = map.get_mut(&key) {
                v.retain(|h| h != handle);
                if v.is_empty() {
                    map.remove(&key);
                }
            }
        }
    }

    fn step(&mut self, handle: &str) -> Step {
        if let Some(event) = self.loading.get(handle) {
            return Step::Wait(event.listen());
        }
        match self.shapes.remove(handle) {
            Some(s) => {
                let done = Event::new();
                self.loading.insert(handle.to_string(), done.clone());
                Step::Load(Box::new(s), done)
            }
            None => Step::Nothing,
        }
    }

    /// The load of `handle` ended: loaded or gone (`back`: `None`), or to be tried again.
    fn end_load(&mut self, handle: &str, oid: u32, back: Option<StoredShape>) {
        match back {
            Some(s) => {
                self.shapes.insert(handle.to_string(), s);
            }
            None => self.forget(handle, oid),
        }
        if let Some(event) = self.loading.remove(handle) {
            event.notify();
        }
    }

    fn for_hash(&self, hash: u32) -> Vec<String> {
        self.by_hash.get(&hash).cloned().unwrap_or_default()
    }

    fn for_txn(&self, txn: &Txn) -> Vec<String> {
        let mut oids: Vec<u32> = txn.changes.iter().map(|c| c.relation.oid).collect();
        oids.extend(txn.truncated.iter().copied());
        oids.extend(txn.overflowed.iter().copied());
        oids.extend(txn.relations.iter().map(|r| r.oid));
        oids.sort_unstable();
        oids.dedup();
        oids.iter()
            .filter_map(|oid| self.by_oid.get(oid))
            .flatten()
            .cloned()
            .collect()
    }
}

/// When a shape was created, from its handle (0 for a handle that does not parse).
pub(super) fn created_micros(handle: &str) -> u64 {
    protocol::handle::parse_handle(handle).map_or(0, |(_, micros)| micros)
}

fn hash_of(handle: &str) -> u32 {
    protocol::handle::parse_handle(handle).map_or(u32::MAX, |(hash, _)| hash)
}

/// Loads the stored shapes whose handles carry `hash` (a request's definition), so the lookup
/// that follows finds them. `Err` when one could not be loaded now: the request must not go on
/// (it would create a second shape of the definition), it gets 503.
pub async fn wake_for_def(core: &Rc<Core>, hash: u32) -> Result<(), NotLoaded> {
    if core.dormant.borrow().is_empty() {
        return Ok(());
    }
    let handles = core.dormant.borrow().for_hash(hash);
    if handles.is_empty() {
        return Ok(());
    }
    // Boxed: loading is rare, and its state must not grow every request's future.
    Box::pin(wake(core, handles)).await
}

/// Loads the stored shapes of the tables a transaction touches, before it is applied. A shape
/// that cannot be loaded now (its catalog lookup failed) is retried, with a growing pause:
/// applying the transaction without it would lose the change for good, while waiting only
/// holds the replication slot back.
pub async fn wake_for_txn(core: &Rc<Core>, txn: &Txn) {
    let mut pause = std::time::Duration::from_millis(100);
    loop {
        if core.dormant.borrow().is_empty() {
            return;
        }
        let handles = core.dormant.borrow().for_txn(txn);
        if handles.is_empty() || Box::pin(wake(core, handles)).await.is_ok() {
            return;
        }
        tracing::warn!("stored shapes of a transaction's tables cannot be loaded yet; retrying");
        monoio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_secs(5));
    }
}

/// Loads what a DELETE names.
pub async fn wake_for_delete(core: &Rc<Core>, target: &DeleteTarget) -> Result<(), NotLoaded> {
    match target {
        DeleteTarget::Definition { def, .. } => wake_for_def(core, def.hash).await,
        DeleteTarget::Handle(h) => Box::pin(wake(core, vec![h.clone()])).await,
    }
}

/// Loads each of `handles` that is dormant, or waits while it is being loaded. Each load runs
/// as a task of its own, so a waker that goes away (a client hanging up) never leaves a shape
/// half-loaded: the others waiting for it, and the transactions of its table, would wait
/// forever.
async fn wake(core: &Rc<Core>, handles: Vec<String>) -> Result<(), NotLoaded> {
    let mut all = Ok(());
    // A few loads at a time: a transaction on a table with thousands of stored shapes waits
    // for all of them, and each is mostly waiting on file reads.
    for batch in handles.chunks(LOADS_AT_ONCE) {
        let mut waits = Vec::with_capacity(batch.len());
        for handle in batch {
            let step = core.dormant.borrow_mut().step(handle);
            match step {
                Step::Nothing => {}
                Step::Wait(done) => waits.push((handle, done)),
                Step::Load(stored, event) => {
                    waits.push((handle, event.listen()));
                    let (core, handle) = (core.clone(), handle.clone());
                    monoio::spawn(async move { load_one(&core, handle, *stored).await });
                }
            }
        }
        for (handle, done) in waits {
            done.await;
            // Back among the dormant: it could not be loaded now.
            if core.dormant.borrow().shapes.contains_key(handle) {
                all = Err(NotLoaded);
            }
        }
    }
    all
}

/// Stored shapes loaded at the same time by one waker.
const LOADS_AT_ONCE: usize = 8;

/// One load attempt; its end wakes everyone waiting for the shape.
async fn load_one(core: &Rc<Core>, handle: String, stored: StoredShape) {
    let purges = core.dormant.borrow().purges;
    let oid = stored.meta.definition.table_oid;
    let mut back = match load(stored.dir.clone(), stored.meta.clone()).await {
        Err(e) if e.is_resource_shortage() => {
            tracing::warn!("shape {handle} cannot be loaded now ({e}); it stays stored");
            Some(stored)
        }
        Err(e) => {
            tracing::warn!("shape {handle} cannot be recovered ({e}); dropping it");
            let _ = core.worker.send(Job::Remove(stored.dir));
            None
        }
        Ok(r) => match durability::restore(core, r).await {
            Ok(Some(restored)) if core.dormant.borrow().purges != purges => {
                // The stored shapes were purged while this one loaded (another database
                // system or timeline): it goes too.
                core.remove(&restored);
                None
            }
            Ok(_) => None,
            Err(durability::NotNow(why)) => {
                tracing::warn!("shape {handle} cannot be loaded now ({why}); it stays stored");
                Some(stored)
            }
        },
    };
    if core.dormant.borrow().purges != purges {
        if let Some(s) = back.take() {
            let _ = core.worker.send(Job::Remove(s.dir));
        }
    }
    core.dormant.borrow_mut().end_load(&handle, oid, back);
    core.count_shapes();
}

/// Recovers a stored shape on a short-lived thread: usually a few small reads (metadata, chunk
/// index, record headers, the log's open tail), but a shape whose derived files disagree with
/// its log is read whole, and the core keeps serving meanwhile.
async fn load(
    dir: std::path::PathBuf,
    meta: crate::storage::ShapeMeta,
) -> Result<crate::storage::RecoveredShape, crate::storage::StorageError> {
    let (tx, rx) = flume::bounded(1);
    let job = {
        let dir = dir.clone();
        let meta = meta.clone();
        move || {
            let _ = tx.send(crate::storage::recover_shape_lazy(&dir, Some(meta)));
        }
    };
    match std::thread::Builder::new()
        .name("ampere-load".into())
        .spawn(job)
    {
        Ok(_) => match rx.recv_async().await {
            Ok(result) => result,
            // The thread died without an answer: a panic there is a bug, already reported by
            // the panic hook (which aborts the process); inline as a last resort.
            Err(_) => crate::storage::recover_shape_lazy(&dir, Some(meta)),
        },
        // No thread to be had (resource limits): do it here.
        Err(_) => crate::storage::recover_shape_lazy(&dir, Some(meta)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{DefinitionRecord, ShapeMeta};

    fn stored(handle: &str, oid: u32) -> StoredShape {
        let def = DefinitionRecord {
            schema: "public".into(),
            table: "t".into(),
            table_oid: oid,
            columns: Vec::new(),
            where_clause: Some(format!("k = '{handle}'")),
            params: Vec::new(),
            replica: 0,
            log_mode: 0,
            table_columns: Vec::new(),
        };
        let mut meta = ShapeMeta::new(handle.into(), def);
        meta.snapshot_complete = true;
        StoredShape {
            dir: std::path::PathBuf::from("/nonexistent").join(handle),
            meta,
        }
    }

    #[test]
    fn unservable_and_superseded_shapes_are_dropped_at_start() {
        let mut unfinished = stored("7-50", 1);
        unfinished.meta.snapshot_complete = false;
        let mut older = stored("7-100", 1);
        older.meta.definition.where_clause = Some("k = 'x'".into());
        let mut newer = stored("7-200", 1);
        newer.meta.definition.where_clause = Some("k = 'x'".into());
        let (d, dropped) = Dormant::new(vec![newer, unfinished, older, stored("7-300", 1)]);
        let mut gone: Vec<String> = dropped.into_iter().map(|s| s.meta.handle).collect();
        gone.sort();
        assert_eq!(gone, ["7-100", "7-50"]);
        let mut kept = d.for_hash(7);
        kept.sort();
        assert_eq!(kept, ["7-200", "7-300"]);
    }

    #[test]
    fn indexes_by_hash_and_table_until_loaded() {
        let (mut d, dropped) = Dormant::new(vec![
            stored("7-100", 1),
            stored("7-200", 2),
            stored("8-300", 2),
        ]);
        assert!(dropped.is_empty());
        assert_eq!(d.len(), 3);
        let mut for7 = d.for_hash(7);
        for7.sort();
        assert_eq!(for7, ["7-100", "7-200"]);
        // Loading: still found (a second waker waits), no longer loadable.
        assert!(matches!(d.step("7-200"), Step::Load(..)));
        assert!(matches!(d.step("7-200"), Step::Wait(_)));
        assert_eq!(d.len(), 3);
        // Not loadable now: dormant again, found again.
        let s = match d.step("7-100") {
            Step::Load(s, _) => *s,
            _ => panic!("7-100 loads"),
        };
        d.end_load("7-100", 1, Some(s));
        assert!(matches!(d.step("7-100"), Step::Load(..)));
        d.end_load("7-100", 1, Some(stored("7-100", 1)));
        d.end_load("7-200", 2, None);
        assert!(matches!(d.step("7-200"), Step::Nothing));
        assert_eq!(d.for_hash(7), ["7-100"]);
        assert_eq!(d.by_oid.get(&2).cloned().unwrap_or_default(), ["8-300"]);
        assert_eq!(d.pop_oldest().map(|s| s.meta.handle), Some("7-100".into()));
        assert_eq!(d.drain().len(), 1);
        assert!(d.is_empty());
    }
}

#[cfg(test)]
mod load_tests {
    use super::*;
    use crate::storage::{DefinitionRecord, ShapeMeta, ShapeStore, SnapshotRecord};
    use clap::Parser;
    use std::sync::Arc;
    use std::time::Duration;

    /// A fake Postgres on loopback: each connection is held for `hold`, then closed (the
    /// catalog lookup is pending that long, then fails). Returns its port.
    fn fake_postgres(hold: Duration) -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for s in listener.incoming() {
                let s = s.unwrap();
                std::thread::spawn(move || {
                    std::thread::sleep(hold);
                    drop(s);
                });
            }
        });
        port
    }

    /// A core whose Postgres is at `port`, with one dormant stored shape of definition hash
    /// `hash` under a private root. Returns the core, the root and the shape's handle and dir.
    fn core_with_stored_shape(
        tag: &str,
        port: u16,
        hash: u32,
    ) -> (Rc<Core>, std::path::PathBuf, String, std::path::PathBuf) {
        let root =
            std::env::temp_dir().join(format!("ampere-dormant-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let handle = protocol::handle::format_handle(hash, 1_700_000_000_000_000);
        let def = DefinitionRecord {
            schema: "public".into(),
            table: "t".into(),
            table_oid: 42,
            columns: vec!["id".into()],
            where_clause: None,
            params: Vec::new(),
            replica: 0,
            log_mode: 0,
            table_columns: Vec::new(),
        };
        let mut store = ShapeStore::create(&root, &ShapeMeta::new(handle.clone(), def)).unwrap();
        let snapshot = SnapshotRecord {
            xmin: 1,
            xmax: 1,
            xip: Vec::new(),
        };
        store.finish_snapshot(b"", snapshot).unwrap();
        store.sync().unwrap();
        let dir = store.dir().to_path_buf();
        drop(store);
        let meta = crate::storage::read_shape_meta(&dir).unwrap();
        let args = [
            "ampere",
            "--insecure",
            "--storage-dir",
            root.to_str().unwrap(),
        ];
        let config = crate::config::Config::try_parse_from(args).expect("config");
        let (tx, _rx) = flume::bounded(1);
        let url = format!("postgresql://u@127.0.0.1:{port}/db");
        let shared = Arc::new(super::super::Shared::new(config, url, vec![tx]));
        let core = Core::new(0, shared, Vec::new(), durability::start_worker(0).unwrap());
        let stored = StoredShape {
            dir: dir.clone(),
            meta,
        };
        *core.dormant.borrow_mut() = Dormant::new(vec![stored]).0;
        (core, root, handle, dir)
    }

    fn runtime() -> monoio::Runtime<monoio::time::TimeDriver<monoio::LegacyDriver>> {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("runtime")
    }

    /// A request that wakes a dormant shape may be dropped while the load awaits (the client
    /// hung up during the catalog lookup); the load must still end, or the handle would stay
    /// "loading" forever and the next transaction on its table would wait for it forever.
    #[test]
    fn a_cancelled_request_does_not_leave_its_load_unfinished() {
        let port = fake_postgres(Duration::from_millis(1500));
        let (core, root, handle, _) = core_with_stored_shape("cancel", port, 7);
        runtime().block_on(async {
            // The request's future is dropped while its load waits for the catalog.
            let r = monoio::time::timeout(Duration::from_millis(300), wake_for_def(&core, 7)).await;
            assert!(r.is_err(), "the load was expected to be pending");
            // The load goes on without the request and ends (the lookup fails after 1.5 s):
            // the shape is dormant again, not stuck half-loaded, so the next waker (a
            // transaction on its table) loads it instead of waiting forever.
            monoio::time::sleep(Duration::from_millis(2500)).await;
            let d = core.dormant.borrow();
            assert!(d.loading.is_empty(), "handle {handle} stays in `loading`");
            assert!(d.shapes.contains_key(&handle), "the stored shape is lost");
        });
        let _ = std::fs::remove_dir_all(&root);
    }

    /// A catalog lookup that fails for a moment (Postgres restarting, the connection refused)
    /// while a dormant shape is loaded must not delete the stored shape: before lazy loading
    /// the shapes were rebuilt only once replication had connected.
    #[test]
    fn a_failed_catalog_lookup_keeps_the_stored_shape() {
        let port = fake_postgres(Duration::ZERO);
        let (core, root, handle, dir) = core_with_stored_shape("catalog", port, 9);
        runtime().block_on(async {
            assert!(
                wake_for_def(&core, 9).await.is_err(),
                "loaded without a catalog"
            );
            monoio::time::sleep(Duration::from_millis(500)).await;
        });
        let kept = dir.join("meta.rkyv").exists();
        let _ = std::fs::remove_dir_all(&root);
        assert!(
            kept,
            "the stored shape {handle} was deleted because Postgres refused one connection"
        );
    }
}
