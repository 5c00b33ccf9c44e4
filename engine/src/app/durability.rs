//! Making shape logs durable without blocking a core, and bringing them back after a restart.
//!
//! Each core has a storage worker thread. Appends are buffered writes on the core; a sync loop
//! on the core batches every shape written since the previous sync into one job (group commit:
//! the next batch forms while the previous one is being fsynced), the worker runs the fsyncs,
//! and the core then publishes how far it is durable. The ingest core acknowledges the
//! replication slot only up to the smallest durable LSN of all cores, so Postgres keeps every
//! change some shape has not yet made durable.

use super::core::Core;
use crate::shapes::def::{DefParams, ShapeDef};
use crate::shapes::log::Cap;
use crate::shapes::log::ShapeLog;
use crate::shapes::shape::{PgSnapshot, Shape};
use crate::storage::fd_cache::LazyFile;
use crate::storage::log_cut::LogCut;
use crate::storage::{RecoveredShape, StoreOptions, SyncJob, SyncPoint};
use protocol::ident::QualifiedTable;
use protocol::offset::LogOffset;
use protocol::request::{LogMode, Replica};
use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

/// Per shape: what its sync made durable, and the cut it then wrote (its `last`).
type SyncResults = Vec<(String, Result<Synced, crate::storage::StorageError>)>;
type Synced = (SyncPoint, Option<Option<LogOffset>>);

/// One shape's part of a group commit: its files, and for a subquery shape its cut, written
/// once the log it names is durable (`storage::log_cut`).
pub struct ShapeSync {
    handle: String,
    /// The shape's directory (on the storage file system).
    dir: PathBuf,
    job: SyncJob,
    cut: Option<LogCut>,
}

impl ShapeSync {
    fn run(self) -> (String, Result<Synced, crate::storage::StorageError>) {
        let result = self.job.run().and_then(|point| match self.cut {
            None => Ok((point, None)),
            Some(cut) => {
                crate::storage::log_cut::write(&self.dir, &cut).map(|()| (point, Some(cut.last)))
            }
        });
        (self.handle, result)
    }
}

/// A group commit of at least this many shapes uses two `syncfs` calls instead of several
/// fsyncs per shape (a storm of new shapes: each would cost a handful of fsyncs).
const SYNCFS_MIN: usize = 16;

/// Runs a group commit: per shape ([`ShapeSync::run`]) or, for many shapes, as one
/// `syncfs` for the data the stores already wrote to the OS, then every shape's metadata and
/// cut installed without fsync, then a second `syncfs` (so data reaches the disk before the
/// metadata naming it). A failed `syncfs` fails every shape of the round.
fn run_group(jobs: Vec<ShapeSync>) -> SyncResults {
    if jobs.len() < SYNCFS_MIN {
        return jobs.into_iter().map(ShapeSync::run).collect();
    }
    let dir = jobs[0].dir.clone();
    let fail_all = |handles: Vec<String>, e: crate::storage::StorageError| -> SyncResults {
        let why = e.to_string();
        handles
            .into_iter()
            .map(|h| {
                let e = std::io::Error::other(why.clone());
                (h, Err(crate::storage::StorageError::io("syncfs", &dir, e)))
            })
            .collect()
    };
    if let Err(e) = crate::storage::sync_filesystem(&dir) {
        return fail_all(jobs.into_iter().map(|j| j.handle).collect(), e);
    }
    let installed: SyncResults = jobs
        .into_iter()
        .map(|j| {
            let r = j.job.run_deferred().and_then(|point| match j.cut {
                None => Ok((point, None)),
                Some(cut) => crate::storage::log_cut::write_unsynced(&j.dir, &cut)
                    .map(|()| (point, Some(cut.last))),
            });
            (j.handle, r)
        })
        .collect();
    if let Err(e) = crate::storage::sync_filesystem(&dir) {
        return fail_all(installed.into_iter().map(|(h, _)| h).collect(), e);
    }
    installed
}

/// Blocking storage work, done on the core's worker thread.
pub enum Job {
    Sync {
        jobs: Vec<ShapeSync>,
        reply: flume::Sender<SyncResults>,
    },
    /// Delete an invalidated shape's directory.
    Remove(PathBuf),
}

/// Starts the worker thread of core `id`.
pub fn start_worker(id: usize) -> std::io::Result<flume::Sender<Job>> {
    let (tx, rx) = flume::unbounded::<Job>();
    let spawned = std::thread::Builder::new()
        .name(format!("ampere-storage-{id}"))
        .spawn(move || {
            while let Ok(job) = rx.recv() {
                match job {
                    Job::Sync { jobs, reply } => {
                        let results = run_group(jobs);
                        let _ = reply.send(results);
                    }
                    Job::Remove(dir) => {
                        if let Err(e) = crate::storage::remove_shape_dir(&dir) {
                            tracing::warn!("failed to remove {}: {e}", dir.display());
                        }
                    }
                }
            }
        });
    spawned.map(|_| tx)
}

/// The core's sync loop: runs forever, one group commit at a time.
/// A group commit slower than this is reported.
const SLOW_SYNC: std::time::Duration = std::time::Duration::from_secs(5);

pub async fn sync_loop(core: Rc<Core>) {
    loop {
        let waiting = core.sync_wake.listen();
        let idle = core.dirty.borrow().is_empty() && !core.removals_pending.get();
        if idle || core.shutting_down.get() {
            waiting.await;
            continue;
        }
        drop(waiting);
        // Removals queued so far run before this round's job on the worker.
        core.removals_pending.set(false);
        // Everything processed so far has been appended to the stores being synced now, but
        // transactions subquery shapes queued: their cuts (taken now) do not hold them.
        let covered_lsn = core.processed_lsn.get();
        let hold = core.replay_hold().unwrap_or(0);
        let shapes: Vec<_> = core.dirty.borrow_mut().drain().map(|(_, s)| s).collect();
        let mut jobs = Vec::with_capacity(shapes.len());
        let mut failed = Vec::new();
        let mut uncut = Vec::new();
        for shape in &shapes {
            let mut s = shape.borrow_mut();
            s.dirty = false;
            let handle = s.handle.clone();
            let cut = cut_of(&s);
            if cut.is_none() && s.log.cap().is_some() && s.log.snapshot_done() {
                uncut.push(shape.clone());
            }
            if let Some(store) = s.store.as_mut() {
                let dir = store.dir().to_path_buf();
                match store.prepare_sync() {
                    Ok(job) => jobs.push(ShapeSync {
                        handle,
                        dir,
                        job,
                        cut,
                    }),
                    Err(e) => {
                        tracing::error!("shape {handle}: cannot write its log: {e}");
                        failed.push(handle);
                    }
                }
            }
        }
        for handle in failed {
            core.remove(&handle);
        }
        core.syncing.set(true);
        let (tx, rx) = flume::bounded(1);
        let started = std::time::Instant::now();
        let results = if core.worker.send(Job::Sync { jobs, reply: tx }).is_ok() {
            rx.recv_async().await.unwrap_or_default()
        } else {
            Vec::new()
        };
        core.syncing.set(false);
        // Shapes never lag their core (changes are applied as they arrive), so the one thing
        // that can hold the slot back is storage that stalls. The slot is then deliberately not
        // acknowledged (acknowledging what is not on disk would lose it in a crash); the stall
        // shows in the log and in `ampere_replication_lag_*`.
        let took = started.elapsed();
        if took > SLOW_SYNC {
            tracing::warn!(
                "core {}: a group commit of {} shape(s) took {took:?}; the replication slot waits for it",
                core.id,
                results.len()
            );
        }
        for (handle, result) in results {
            match result {
                Ok((point, cut)) => {
                    if let Some(shape) = core.shape(&handle) {
                        let mut s = shape.borrow_mut();
                        if let Some(store) = s.store.as_mut() {
                            store.mark_durable(point);
                        }
                        if let Some(last) = cut {
                            serve_up_to(&core, &mut s, last, covered_lsn.min(hold));
                        }
                    }
                }
                Err(e) => {
                    // The kernel may have dropped the pages it failed to write: a later
                    // successful fsync would not bring them back, so the shape goes (409).
                    tracing::error!("shape {handle}: fsync failed: {e}");
                    core.remove(&handle);
                }
            }
        }
        super::views::flush(&core);
        // Views not known at the log end this time (not expected once a snapshot is done):
        // again next round, and nothing is acknowledged before.
        let all_cut = uncut.is_empty();
        for shape in uncut {
            tracing::debug!("shape {}: no cut this round", shape.borrow().handle);
            shape.borrow_mut().dirty = true;
            core.mark_dirty(&shape);
        }
        if !all_cut {
            continue;
        }
        let durable = if core.dirty.borrow().is_empty() {
            core.processed_lsn.get()
        } else {
            covered_lsn
        };
        core.publish_durable(durable.min(hold));
    }
}

fn replica_code(r: Replica) -> u8 {
    match r {
        Replica::Default => 0,
        Replica::Full => 1,
    }
}

fn log_code(l: LogMode) -> u8 {
    match l {
        LogMode::Full => 0,
        LogMode::ChangesOnly => 1,
    }
}

/// What the store records of a definition: enough to rebuild it (original WHERE and params, so
/// the rebuilt definition normalizes exactly as before).
pub fn definition_record(
    def: &ShapeDef,
    where_clause: Option<&str>,
    params: &[String],
) -> crate::storage::DefinitionRecord {
    crate::storage::DefinitionRecord {
        schema: def.table.schema.clone(),
        table: def.table.name.clone(),
        table_oid: def.table.oid,
        columns: def
            .selected
            .iter()
            .map(|&i| def.table.columns[i].info.name.clone())
            .collect(),
        where_clause: where_clause.map(str::to_string),
        params: params.to_vec(),
        replica: replica_code(def.replica),
        log_mode: log_code(def.log),
        table_columns: def
            .table
            .columns
            .iter()
            .map(|c| crate::storage::TableColumnRecord {
                name: c.info.name.clone(),
                type_oid: c.type_oid,
            })
            .collect(),
    }
}

/// A subquery shape's cut for this round: its log's last entry and its views there (`None`
/// for other shapes, and while its views at the log end are not known).
pub fn cut_of(s: &Shape) -> Option<LogCut> {
    s.log.cap()?;
    if !s.log.snapshot_done() || s.invalidated {
        return None;
    }
    let views = s.sub.as_ref()?.views_at_log_end()?;
    Some(LogCut {
        last: s.log.last_real_offset(),
        payload: crate::shapes::views_file::encode(&views),
    })
}

/// A cut is durable: clients may see the log up to it, which holds every transaction through
/// `lsn` (waking those waiting).
fn serve_up_to(core: &Core, s: &mut Shape, last: Option<LogOffset>, lsn: u64) {
    let before = s.log.last_offset();
    s.log.set_cap(Cap(last));
    s.log.set_served_lsn(lsn);
    if s.log.last_offset() != before {
        s.changed.notify();
        if !core.watchers.is_empty() {
            super::live::shape_changed(core, s);
        }
        super::views::note(core, s);
    }
}

/// The views a subquery shape saved with its cut, in its dependencies' order, if they match
/// its recovered log.
fn saved_views(
    cut: Option<&LogCut>,
    sub: &crate::shapes::subquery::SubqueryDef,
    last: Option<LogOffset>,
) -> Result<Vec<Vec<crate::shapes::subquery::Value>>, String> {
    let cut = cut.ok_or("it has no cut (it never completed a sync)")?;
    if cut.last != last {
        return Err("its log ends before its cut".into());
    }
    let views = crate::shapes::views_file::decode(&cut.payload).ok_or("its cut is not views")?;
    if views.len() != sub.deps.len()
        || views
            .iter()
            .zip(&sub.deps)
            .any(|((key, _), dep)| *key != dep.key)
    {
        return Err("its saved views do not match its subqueries".into());
    }
    Ok(views.into_iter().map(|(_, values)| values).collect())
}

/// A stored shape could not be restored for now (its catalog lookup failed: Postgres is
/// unreachable or busy); it stays stored and is tried again.
#[derive(Debug)]
pub struct NotNow(pub String);

/// Why a stored shape cannot be rebuilt.
enum RebuildError {
    /// Gone for good: its handle gets 409 and its directory is removed.
    Gone(String),
    NotNow(String),
}

impl From<&str> for RebuildError {
    fn from(why: &str) -> Self {
        Self::Gone(why.to_string())
    }
}

/// Brings a recovered shape back on its owner core (returning the restored shape), or discards
/// it (its handle then gets 409, `Ok(None)`) when its snapshot never completed or its table
/// changed; `Err` when it cannot be decided now (the catalog lookup failed).
pub async fn restore(core: &Rc<Core>, r: RecoveredShape) -> Result<Option<String>, NotNow> {
    let handle = r.meta.handle.clone();
    match rebuild(core, &r).await {
        Ok(def) => {
            let snapshot = r.meta.snapshot.clone().map(|s| PgSnapshot {
                xmin: s.xmin,
                xmax: s.xmax,
                xip: s.xip,
            });
            let store = match r.open_store(StoreOptions::default()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("shape {handle} cannot be reopened ({e}); dropping it");
                    let _ = core.worker.send(Job::Remove(r.dir));
                    return Ok(None);
                }
            };
            let Some(snapshot) = snapshot else {
                tracing::warn!("shape {handle} has no snapshot record; dropping it");
                let _ = core.worker.send(Job::Remove(r.dir));
                return Ok(None);
            };
            let snapshot_file = LazyFile::new(r.dir.join(crate::storage::layout::SNAPSHOT_FILE));
            let chunk_file = LazyFile::new(r.dir.join(crate::storage::layout::CHUNK_DATA_FILE));
            let log = ShapeLog::restore(
                core.shared.config.chunk_bytes_threshold,
                &snapshot_file,
                &r.snapshot_chunks,
                &chunk_file,
                &r.chunks,
                r.log,
            );
            // A subquery shape comes back with the views saved with its cut.
            let saved = match def.subquery.as_deref() {
                None => None,
                Some(sub) => match saved_views(r.cut.as_ref(), sub, log.last_real_offset()) {
                    Ok(saved) => Some(saved),
                    Err(why) => {
                        tracing::info!("shape {handle} is not restored ({why}); clients get 409");
                        let _ = core.worker.send(Job::Remove(r.dir));
                        return Ok(None);
                    }
                },
            };
            let mut shape =
                Shape::restored(handle.clone(), def, log, snapshot, r.last_txn_lsn, store);
            shape.set_chunk_file(chunk_file);
            // What recovery read may be in the page cache only (the previous process died):
            // the shape's first sync (which fsyncs those files) must come before this core
            // reports transactions it skipped as already stored as durable.
            shape.dirty = true;
            let shape = Rc::new(RefCell::new(shape));
            core.insert_restored(shape.clone());
            if core.shape(&handle).is_none() {
                // Superseded by a newer shape of the same definition.
                return Ok(None);
            }
            core.mark_dirty(&shape);
            if let Some(saved) = saved {
                super::subqueries::attach_restored(core, &shape, saved);
            }
            Ok(Some(handle))
        }
        Err(RebuildError::Gone(why)) => {
            tracing::info!("shape {handle} is not restored ({why}); clients get 409");
            let _ = core.worker.send(Job::Remove(r.dir));
            Ok(None)
        }
        Err(RebuildError::NotNow(why)) => Err(NotNow(why)),
    }
}

async fn rebuild(core: &Rc<Core>, r: &RecoveredShape) -> Result<Arc<ShapeDef>, RebuildError> {
    if !r.is_servable() {
        return Err("its snapshot never completed".into());
    }
    let d = &r.meta.definition;
    let table = core
        .table(&d.schema, &d.table)
        .await
        .map_err(|e| RebuildError::NotNow(format!("catalog lookup failed: {e}")))?
        .ok_or("its table no longer exists")?;
    if table.oid != d.table_oid {
        return Err("its table was recreated".into());
    }
    // A column added, dropped, renamed or retyped while the shape was stored (or dormant):
    // what a loaded shape learns from the Relation message ("relation changed"). Version 1
    // metadata does not have the columns.
    let same_columns = d.table_columns.len() == table.columns.len()
        && d.table_columns
            .iter()
            .zip(&table.columns)
            .all(|(s, t)| s.name == t.info.name && s.type_oid == t.type_oid);
    if !d.table_columns.is_empty() && !same_columns {
        return Err("its table's columns changed".into());
    }
    let qt = QualifiedTable {
        schema: d.schema.clone(),
        name: d.table.clone(),
    };
    let params = DefParams {
        table: &qt,
        where_clause: d.where_clause.as_deref(),
        params: &d.params,
        params_error: None,
        columns: Some(&d.columns),
        replica: if d.replica == 1 {
            Replica::Full
        } else {
            Replica::Default
        },
        log: if d.log_mode == 1 {
            LogMode::ChangesOnly
        } else {
            LogMode::Full
        },
    };
    let def = super::subqueries::build_definition(core, &params, None, table)
        .await
        .map_err(|e| RebuildError::NotNow(format!("catalog lookup failed: {e}")))?
        .map_err(|e| RebuildError::Gone(format!("definition: {}", e.body())))?;
    let expected = protocol::handle::parse_handle(&r.meta.handle).map(|(h, _)| h);
    if expected != Some(def.hash) {
        return Err("its definition no longer means the same shape".into());
    }
    Ok(Arc::new(def))
}
