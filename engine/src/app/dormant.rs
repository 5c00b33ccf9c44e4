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
    /// Not loaded yet (removed when loading starts).
    shapes: HashMap<String, StoredShape>,
    /// Handles by definition hash and by table OID, until loading ends.
    by_hash: HashMap<u32, Vec<String>>,
    by_oid: HashMap<u32, Vec<String>>,
    /// Shapes being loaded, each with the event that marks the end.
    loading: HashMap<String, Event>,
}

/// What a waker must do for one handle.
enum Step {
    Load(Box<StoredShape>),
    Wait(crate::event::Listener),
    Nothing,
}

impl Dormant {
    pub fn new(stored: Vec<StoredShape>) -> Self {
        let mut d = Self::default();
        for s in stored {
            let handle = s.meta.handle.clone();
            let hash = hash_of(&handle);
            d.by_hash.entry(hash).or_default().push(handle.clone());
            d.by_oid
                .entry(s.meta.definition.table_oid)
                .or_default()
                .push(handle.clone());
            d.shapes.insert(handle, s);
        }
        d
    }

    /// Shapes not loaded or being loaded.
    pub fn len(&self) -> usize {
        self.shapes.len() + self.loading.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes every dormant shape (to delete them: a purge, or the shape limit).
    pub fn drain(&mut self) -> Vec<StoredShape> {
        self.by_hash.clear();
        self.by_oid.clear();
        self.shapes.drain().map(|(_, s)| s).collect()
    }

    /// Takes the dormant shape created first, if any (the shape limit evicts it first: it has
    /// not been used since the restart).
    pub fn pop_oldest(&mut self) -> Option<StoredShape> {
        let created = |h: &str| protocol::handle::parse_handle(h).map_or(0, |(_, micros)| micros);
        let oldest = self
            .shapes
            .keys()
            .min_by_key(|h| (created(h), (*h).clone()))?
            .clone();
        let s = self.shapes.remove(&oldest)?;
        self.forget(&oldest, s.meta.definition.table_oid);
        Some(s)
    }

    fn forget(&mut self, handle: &str, oid: u32) {
        for (map, key) in [(&mut self.by_hash, hash_of(handle)), (&mut self.by_oid, oid)] {
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
                self.loading.insert(handle.to_string(), Event::new());
                Step::Load(Box::new(s))
            }
            None => Step::Nothing,
        }
    }

    fn loaded(&mut self, handle: &str, oid: u32) {
        self.forget(handle, oid);
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

fn hash_of(handle: &str) -> u32 {
    protocol::handle::parse_handle(handle).map_or(u32::MAX, |(hash, _)| hash)
}

/// Loads the stored shapes whose handles carry `hash` (a request's definition), so the lookup
/// that follows finds them.
pub async fn wake_for_def(core: &Rc<Core>, hash: u32) {
    if core.dormant.borrow().is_empty() {
        return;
    }
    let handles = core.dormant.borrow().for_hash(hash);
    if !handles.is_empty() {
        // Boxed: loading is rare, and its state must not grow every request's future.
        Box::pin(wake(core, handles)).await;
    }
}

/// Loads the stored shapes of the tables a transaction touches, before it is applied.
pub async fn wake_for_txn(core: &Rc<Core>, txn: &Txn) {
    if core.dormant.borrow().is_empty() {
        return;
    }
    let handles = core.dormant.borrow().for_txn(txn);
    if !handles.is_empty() {
        Box::pin(wake(core, handles)).await;
    }
}

/// Loads what a DELETE names.
pub async fn wake_for_delete(core: &Rc<Core>, target: &DeleteTarget) {
    match target {
        DeleteTarget::Definition { def, .. } => wake_for_def(core, def.hash).await,
        DeleteTarget::Handle(h) => Box::pin(wake(core, vec![h.clone()])).await,
    }
}

/// Loads each of `handles` that is dormant, or waits while another task loads it.
async fn wake(core: &Rc<Core>, handles: Vec<String>) {
    for handle in handles {
        let step = core.dormant.borrow_mut().step(&handle);
        match step {
            Step::Nothing => {}
            Step::Wait(done) => done.await,
            Step::Load(stored) => {
                let StoredShape { dir, meta } = *stored;
                let oid = meta.definition.table_oid;
                match load(dir.clone(), meta).await {
                    Ok(r) => durability::restore(core, r).await,
                    Err(e) => {
                        tracing::warn!("shape {handle} cannot be recovered ({e}); dropping it");
                        let _ = core.worker.send(Job::Remove(dir));
                    }
                }
                core.dormant.borrow_mut().loaded(&handle, oid);
            }
        }
    }
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
            where_clause: None,
            params: Vec::new(),
            replica: 0,
            log_mode: 0,
        };
        StoredShape {
            dir: std::path::PathBuf::from("/nonexistent").join(handle),
            meta: ShapeMeta::new(handle.into(), def),
        }
    }

    #[test]
    fn indexes_by_hash_and_table_until_loaded() {
        let mut d = Dormant::new(vec![
            stored("7-100", 1),
            stored("7-200", 2),
            stored("8-300", 2),
        ]);
        assert_eq!(d.len(), 3);
        let mut for7 = d.for_hash(7);
        for7.sort();
        assert_eq!(for7, ["7-100", "7-200"]);
        // Loading: still found (a second waker waits), no longer loadable.
        assert!(matches!(d.step("7-200"), Step::Load(_)));
        assert!(matches!(d.step("7-200"), Step::Wait(_)));
        assert_eq!(d.len(), 3);
        d.loaded("7-200", 2);
        assert!(matches!(d.step("7-200"), Step::Nothing));
        assert_eq!(d.for_hash(7), ["7-100"]);
        assert_eq!(d.by_oid.get(&2).cloned().unwrap_or_default(), ["8-300"]);
        assert_eq!(d.pop_oldest().map(|s| s.meta.handle), Some("7-100".into()));
        assert_eq!(d.drain().len(), 1);
        assert!(d.is_empty());
    }
}
