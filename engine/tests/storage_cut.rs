//! A shape's cut (`storage::log_cut`): recovery keeps the log up to the cut's entry and drops
//! every transaction after it (entries a subquery shape never served), on disk too, so the
//! store resumes right after the cut. Both recoveries (full and lazy, which falls back when
//! the cut lies inside an indexed chunk) agree.

mod storage_support;

use engine::storage::log_cut::{self, LogCut};
use engine::storage::{layout, recover_shape, recover_shape_lazy, StoreOptions};
use protocol::offset::LogOffset;
use std::path::Path;
use storage_support::*;

const OPTS: StoreOptions = StoreOptions {
    flush_bytes: 64 << 10,
    segment_bytes: 600,
};

/// A shape of 8 transactions over several segments, chunks closed after transactions 1, 3
/// and inside transaction 6, all synced. Returns the model.
fn shape(root: &Path, h: &str) -> Model {
    let (mut store, mut model) = snapshotted(root, h, OPTS);
    for i in 0..8 {
        append(&mut store, &mut model, 3, 40 + i);
        if i == 1 || i == 3 {
            let last = model.txns[i].1[2].0;
            close(&mut store, &mut model, last);
        }
        if i == 6 {
            let first = model.txns[i].1[0].0;
            close(&mut store, &mut model, first);
        }
    }
    store.sync().unwrap();
    model
}

/// The model's first `n` transactions (and their chunk ends).
fn first(model: &Model, n: usize) -> Model {
    let mut m = model.clone();
    m.txns.truncate(n);
    let last = m.txns.last().map(|t| t.1.last().unwrap().0);
    m.chunk_ends.retain(|e| last.is_some_and(|l| *e <= l));
    m
}

#[test]
fn recovery_ends_at_the_cut_and_the_store_resumes_there() {
    let tmp = TempDir::new("cut");
    // Cuts after transaction k (none: no real entry), inside and after indexed chunks.
    for (i, keep) in [0usize, 1, 2, 4, 5, 7, 8].into_iter().enumerate() {
        let h = handle(70 + i as u32);
        let root = tmp.path().join(format!("r{i}"));
        let model = shape(&root, &h);
        let dir = layout::shape_dir(&root, &h);
        let last = keep.checked_sub(1).map(|k| model.txns[k].1[2].0);
        let cut = LogCut {
            last,
            payload: format!("views {keep}").into_bytes(),
        };
        log_cut::write(&dir, &cut).unwrap();
        let expected = first(&model, keep);
        let twin = tmp.path().join(format!("twin{i}"));
        copy_dir(&dir, &layout::shape_dir(&twin, &h));
        let full = recover_shape(&layout::shape_dir(&twin, &h)).unwrap();
        assert_matches(&full, &expected, keep);
        assert_eq!(full.cut.as_ref(), Some(&cut));
        let lazy = recover_shape_lazy(&dir, None).unwrap();
        assert_eq!(lazy.chunks, full.chunks, "cut after {keep} transactions");
        assert_eq!(lazy.last_txn_lsn, full.last_txn_lsn);
        assert_eq!(lazy.cut.as_ref(), Some(&cut));
        if keep < 8 {
            assert!(lazy.trimmed_bytes > 0, "the log after the cut is gone");
        }
        // Resumed: a new transaction follows the cut, and a recovery without a cut finds
        // exactly the kept ones and it.
        let mut store = lazy.open_store(OPTS).unwrap();
        let mut m = expected.clone();
        append(&mut store, &mut m, 2, 10);
        store.sync().unwrap();
        drop(store);
        std::fs::remove_file(dir.join(log_cut::FILE)).unwrap();
        let again = recover_shape(&dir).unwrap();
        assert_matches(&again, &m, keep + 1);
        assert_eq!(again.cut, None);
    }
}

#[test]
fn a_damaged_cut_is_ignored_and_reported_as_none() {
    let tmp = TempDir::new("cut-damaged");
    let h = handle(90);
    let model = shape(tmp.path(), &h);
    let dir = layout::shape_dir(tmp.path(), &h);
    let cut = LogCut {
        last: Some(LogOffset::new(model.txns[2].0, 4)),
        payload: vec![1, 2, 3],
    };
    log_cut::write(&dir, &cut).unwrap();
    let path = dir.join(log_cut::FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let rec = recover_shape_lazy(&dir, None).unwrap();
    assert_eq!(rec.cut, None);
    assert_matches(&rec_full(&dir), &model, 8);
}

fn rec_full(dir: &Path) -> engine::storage::RecoveredShape {
    recover_shape(dir).unwrap()
}
