//! Helpers shared by the `storage_*` tests: scratch directories, sample shapes, and a model of
//! what a test wrote so recovery can be compared with it.
#![allow(dead_code)]

use engine::storage::{DefinitionRecord, ShapeMeta, ShapeStore, SnapshotRecord};
use protocol::offset::LogOffset;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "ampere-storage-{}-{}-{tag}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn handle(i: u32) -> String {
    format!(
        "{}-{}",
        1_000_000 + (i.wrapping_mul(7919) % 9_000_000),
        1_700_000_000_000_000u64 + u64::from(i)
    )
}

pub fn meta(handle: &str) -> ShapeMeta {
    ShapeMeta::new(
        handle.to_string(),
        DefinitionRecord {
            schema: "public".into(),
            table: "items".into(),
            table_oid: 16384,
            columns: vec!["id".into(), "value".into()],
            where_clause: Some("value > $1".into()),
            params: vec!["10".into()],
            replica: 0,
            log_mode: 0,
            table_columns: Vec::new(),
        },
    )
}

pub fn pg() -> SnapshotRecord {
    SnapshotRecord {
        xmin: 740,
        xmax: 745,
        xip: vec![741, 743],
    }
}

/// One transaction: its commit LSN and its entries.
pub type Txn = (u64, Vec<(LogOffset, Vec<u8>)>);

/// What a test appended, in order.
#[derive(Debug, Default, Clone)]
pub struct Model {
    pub snapshot: Vec<Vec<u8>>,
    /// `(commit LSN, entries)` per transaction.
    pub txns: Vec<Txn>,
    pub chunk_ends: Vec<LogOffset>,
}

impl Model {
    pub fn entries(&self) -> Vec<(LogOffset, Vec<u8>)> {
        self.txns
            .iter()
            .flat_map(|(_, e)| e.iter().cloned())
            .collect()
    }

    pub fn next_lsn(&self) -> u64 {
        self.txns.last().map_or(1000, |(l, _)| l + 100)
    }
}

/// Appends a transaction of `n` entries with payloads derived from its LSN.
pub fn append(store: &mut ShapeStore, model: &mut Model, n: usize, size: usize) -> u64 {
    let lsn = model.next_lsn();
    let entries: Vec<(LogOffset, Vec<u8>)> = (0..n)
        .map(|i| {
            let mut p = format!("{{\"lsn\":{lsn},\"op\":{i},\"v\":\"").into_bytes();
            p.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, size));
            p.extend_from_slice(b"\"}");
            (LogOffset::new(lsn, i as u64 * 2), p)
        })
        .collect();
    store
        .append_txn(entries.iter().map(|(o, p)| (*o, p.as_slice())), lsn)
        .unwrap();
    model.txns.push((lsn, entries));
    lsn
}

/// Closes the open chunk at entry `last`, as the engine does: the chunk's entries (after the
/// previous chunk end, up to `last`) comma-joined go to `chunks.data`.
pub fn close(store: &mut ShapeStore, model: &mut Model, last: LogOffset) {
    let after = model.chunk_ends.last().copied();
    let mut bytes = Vec::new();
    let mut starts = Vec::new();
    for (o, p) in model.entries() {
        if after.is_some_and(|a| o <= a) || o > last {
            continue;
        }
        if !bytes.is_empty() {
            bytes.push(b',');
        }
        starts.push((o, bytes.len() as u32));
        bytes.extend_from_slice(&p);
    }
    let index = engine::storage::record::encode_chunk_index(starts);
    store.close_chunk(last, &bytes, &index);
    model.chunk_ends.push(last);
}

/// A shape with a finished two-chunk snapshot.
pub fn snapshotted(
    root: &Path,
    h: &str,
    opts: engine::storage::StoreOptions,
) -> (ShapeStore, Model) {
    let mut store = ShapeStore::create_with(root, &meta(h), opts).unwrap();
    let mut model = Model::default();
    let c0 = b"{\"key\":\"1\"},{\"key\":\"2\"}".to_vec();
    let c1 = b"{\"key\":\"3\"},{\"headers\":{\"control\":\"snapshot-end\"}}".to_vec();
    store.append_snapshot_chunk(&c0).unwrap();
    store.finish_snapshot(&c1, pg()).unwrap();
    model.snapshot = vec![c0, c1];
    (store, model)
}

/// Checks a recovered shape against the model's first `txns` transactions and every chunk
/// end among them.
pub fn assert_matches(rec: &engine::storage::RecoveredShape, model: &Model, txns: usize) {
    check(rec, model, txns, true);
}

/// As [`assert_matches`], after a crash: the chunk ends may be any prefix of those written
/// (a chunk-end record is written after the transaction it closes, and can be lost alone).
pub fn assert_matches_after_crash(
    rec: &engine::storage::RecoveredShape,
    model: &Model,
    txns: usize,
) {
    check(rec, model, txns, false);
}

/// A served chunk's record payload: its entries in the JSON array's brackets, as a response
/// for the whole chunk carries them.
pub fn recorded(entries: &[u8]) -> Vec<u8> {
    [&b"["[..], entries, b"]"].concat()
}

fn check(rec: &engine::storage::RecoveredShape, model: &Model, txns: usize, exact: bool) {
    let snap: Vec<Vec<u8>> = (0..rec.snapshot_chunks.len())
        .map(|n| rec.read_snapshot_chunk(n).expect("snapshot chunk"))
        .collect();
    let want: Vec<Vec<u8>> = model.snapshot.iter().map(|c| recorded(c)).collect();
    assert_eq!(snap, want, "snapshot chunks");
    let want: Vec<(LogOffset, Vec<u8>)> = model.txns[..txns]
        .iter()
        .flat_map(|(_, e)| e.iter().cloned())
        .collect();
    let got: Vec<(LogOffset, Vec<u8>)> = rec.log.iter().map(|(o, b)| (*o, b.to_vec())).collect();
    assert_eq!(got.len(), want.len(), "entry count");
    assert_eq!(got, want, "log entries");
    let last = model.txns[..txns].last().map_or(0, |(l, _)| *l);
    assert_eq!(rec.last_txn_lsn, last, "last transaction");
    let limit = want.last().map(|(o, _)| *o);
    let ends: Vec<LogOffset> = model
        .chunk_ends
        .iter()
        .copied()
        .filter(|e| limit.is_some_and(|l| *e <= l))
        .collect();
    if exact {
        assert_eq!(rec.chunk_ends(), ends, "chunk ends");
    } else {
        assert!(
            ends.starts_with(&rec.chunk_ends()),
            "chunk ends {:?} not a prefix of {ends:?}",
            rec.chunk_ends()
        );
    }
}

/// Copies a directory tree (files only, one level of nesting per call).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

/// The only shape of a scan, or the panic message of why not.
pub fn only_shape(root: &Path) -> engine::storage::RecoveredShape {
    let mut all = engine::storage::scan(root).unwrap();
    assert_eq!(all.len(), 1, "one shape expected");
    match all.pop().unwrap() {
        Ok(r) => r,
        Err(f) => panic!("recovery failed: {}", f.error),
    }
}
