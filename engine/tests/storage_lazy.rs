//! Lazy recovery (`recover_shape_lazy`, what the server runs when a stored shape is first
//! needed): closed chunks come from `chunks.idx` and the record headers of `chunks.data`, and
//! only the log after the last closed chunk is read. It must find the same shape as the full
//! recovery, fall back to it when the derived files disagree with the log, and never read the
//! log that closed chunks cover.

mod storage_support;

use engine::storage::{
    layout, recover_shape, recover_shape_lazy, RecoveredShape, ShapeStore, StoreOptions,
};
use std::path::{Path, PathBuf};
use storage_support::*;

/// Small segments, so that closed chunks span several of them.
const OPTS: StoreOptions = StoreOptions {
    flush_bytes: 64 << 10,
    segment_bytes: 600,
};

/// A shape whose log has several segments, chunks closed at transaction ends and inside
/// transactions (a transaction that closes two chunks), and an open chunk of two
/// transactions. Returns its directory, the model and the store (still open).
fn many_chunks(root: &Path, h: &str) -> (PathBuf, Model, ShapeStore) {
    let (mut store, mut model) = snapshotted(root, h, OPTS);
    for i in 0..6 {
        append(&mut store, &mut model, 3, 40 + i);
        if i % 2 == 1 {
            let last = model.txns[i].1[2].0;
            close(&mut store, &mut model, last);
        }
    }
    // One transaction closing a chunk at its first entry and another at its third.
    append(&mut store, &mut model, 5, 30);
    let t = model.txns[6].1.clone();
    close(&mut store, &mut model, t[0].0);
    close(&mut store, &mut model, t[2].0);
    append(&mut store, &mut model, 2, 20);
    store.sync().unwrap();
    (layout::shape_dir(root, h), model, store)
}

/// The lazy result holds the full one's closed chunks and, in memory, its open chunk only.
fn assert_agrees(full: &RecoveredShape, lazy: &RecoveredShape) {
    assert_eq!(lazy.meta, full.meta);
    assert_eq!(lazy.snapshot_chunks, full.snapshot_chunks);
    assert_eq!(lazy.chunks, full.chunks, "closed chunks");
    let open_from = full.chunks.last().map_or(0, |c| {
        full.log.iter().position(|(o, _)| *o == c.last).unwrap() + 1
    });
    assert_eq!(lazy.log, full.log[open_from..], "open chunk");
    assert_eq!(lazy.last_txn_lsn, full.last_txn_lsn);
    assert!(lazy.chunks.iter().all(|c| c.records.is_some()));
}

fn copy_shape(from: &Path, root: &Path, h: &str) -> PathBuf {
    let dir = layout::shape_dir(root, h);
    copy_dir(from, &dir);
    dir
}

#[test]
fn lazy_recovery_finds_the_full_shape_without_reading_the_covered_log() {
    let tmp = TempDir::new("lazy");
    let h = handle(60);
    let (dir, model, store) = many_chunks(&tmp.path().join("a"), &h);
    drop(store);
    assert!(dir.join("log.3").exists(), "the log spans segments");
    let full = recover_shape(&copy_shape(&dir, &tmp.path().join("b"), &h)).unwrap();
    assert_matches(&full, &model, model.txns.len());
    let lazy = recover_shape_lazy(&dir, None).unwrap();
    assert_agrees(&full, &lazy);
    assert_eq!(
        lazy.log.len(),
        4,
        "the rest of the last chunk's transaction and one more"
    );

    // Damage inside the first segment, covered by closed chunks: the full recovery refuses
    // the shape (valid records follow), the lazy one never reads it.
    let seg = dir.join("log.0");
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[40] ^= 0x55;
    std::fs::write(&seg, bytes).unwrap();
    let damaged = copy_shape(&dir, &tmp.path().join("c"), &h);
    assert!(recover_shape(&damaged).unwrap_err().is_corruption());
    let again = recover_shape_lazy(&dir, None).unwrap();
    assert_agrees(&full, &again);
    assert_eq!(again.trimmed_bytes, 0);

    // The store continues the lazily recovered shape; a full recovery then agrees.
    let mut model = model;
    std::fs::write(&seg, std::fs::read(damaged.join("log.0")).unwrap()).unwrap();
    let mut store = again.open_store(OPTS).unwrap();
    append(&mut store, &mut model, 2, 10);
    let last = model.txns.last().unwrap().1[1].0;
    // The open chunk is the lazily held entries plus the new ones.
    model.chunk_ends = full.chunk_ends();
    close(&mut store, &mut model, last);
    store.sync().unwrap();
    drop(store);
    let after_lazy = recover_shape_lazy(&dir, None).unwrap();
    assert_eq!(after_lazy.chunks.len(), full.chunks.len() + 1);
    assert!(after_lazy.log.is_empty());
    assert_eq!(after_lazy.last_txn_lsn, model.txns.last().unwrap().0);
}

#[test]
fn lazy_recovery_agrees_with_the_full_one_at_every_torn_length() {
    let tmp = TempDir::new("lazy-torn");
    let h = handle(61);
    let (dir, _, store) = many_chunks(&tmp.path().join("src"), &h);
    drop(store);
    let last_seg = (0..)
        .map(|n| dir.join(layout::segment_name(n)))
        .take_while(|p| p.exists())
        .last()
        .unwrap();
    let len = std::fs::metadata(&last_seg).unwrap().len();
    let name = last_seg.file_name().unwrap().to_owned();
    for cut in 0..=len {
        let a = copy_shape(&dir, &tmp.path().join(format!("a{cut}")), &h);
        let b = copy_shape(&dir, &tmp.path().join(format!("b{cut}")), &h);
        for d in [&a, &b] {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(d.join(&name))
                .unwrap();
            f.set_len(cut).unwrap();
        }
        match (recover_shape(&a), recover_shape_lazy(&b, None)) {
            (Ok(full), Ok(lazy)) => {
                assert_agrees(&full, &lazy);
                assert_eq!(full.trimmed_bytes, lazy.trimmed_bytes, "cut {cut}");
                // Both left the files the same (a segment cut to nothing may be gone).
                for f in ["chunks.idx", "chunks.data", name.to_str().unwrap()] {
                    assert_eq!(
                        std::fs::read(a.join(f)).ok(),
                        std::fs::read(b.join(f)).ok(),
                        "{f} after cut {cut}"
                    );
                }
            }
            (Err(full), Err(lazy)) => assert_eq!(full.to_string(), lazy.to_string()),
            (full, lazy) => panic!("cut {cut}: full {full:?}, lazy {lazy:?}"),
        }
        std::fs::remove_dir_all(tmp.path().join(format!("a{cut}"))).unwrap();
        std::fs::remove_dir_all(tmp.path().join(format!("b{cut}"))).unwrap();
    }
}

#[test]
fn lazy_recovery_falls_back_when_the_derived_files_disagree() {
    let tmp = TempDir::new("lazy-fallback");
    let h = handle(62);
    let (dir, model, store) = many_chunks(&tmp.path().join("src"), &h);
    drop(store);
    let full = recover_shape(&copy_shape(&dir, &tmp.path().join("full"), &h)).unwrap();
    type Damage = fn(&Path);
    let cases: [(&str, Damage); 6] = [
        (
            "chunks.data written bare, before chunks were stored in brackets",
            |d| {
                use engine::storage::record::{self, Decoded, KIND_CHUNK_DATA};
                let old = std::fs::read(d.join("chunks.data")).unwrap();
                let mut bare = Vec::new();
                let mut at = 0;
                while let Decoded::Record(r, next) = record::decode(&old, at) {
                    let p = if r.kind == KIND_CHUNK_DATA {
                        &r.payload[1..r.payload.len() - 1]
                    } else {
                        r.payload
                    };
                    record::encode(&mut bare, r.kind, r.tx, r.op, p);
                    at = next;
                }
                assert_eq!(at, old.len());
                std::fs::write(d.join("chunks.data"), bare).unwrap();
            },
        ),
        ("index missing", |d| {
            std::fs::remove_file(d.join("chunks.idx")).unwrap()
        }),
        ("index entry damaged", |d| {
            let mut b = std::fs::read(d.join("chunks.idx")).unwrap();
            b[70] ^= 1;
            std::fs::write(d.join("chunks.idx"), b).unwrap();
        }),
        ("index without its last entry", |d| {
            let b = std::fs::read(d.join("chunks.idx")).unwrap();
            std::fs::write(d.join("chunks.idx"), &b[..b.len() - 64]).unwrap();
        }),
        ("chunks.data cut", |d| {
            let b = std::fs::read(d.join("chunks.data")).unwrap();
            std::fs::write(d.join("chunks.data"), &b[..b.len() / 2]).unwrap();
        }),
        ("chunks.data header damaged", |d| {
            let mut b = std::fs::read(d.join("chunks.data")).unwrap();
            b[9] ^= 1;
            std::fs::write(d.join("chunks.data"), b).unwrap();
        }),
    ];
    for (i, (what, damage)) in cases.iter().enumerate() {
        let d = copy_shape(&dir, &tmp.path().join(format!("case{i}")), &h);
        damage(&d);
        let lazy = recover_shape_lazy(&d, None).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_agrees(&full, &lazy);
        // The fallback rebuilt the derived files: the next start takes the lazy path and
        // finds the same (a full recovery of the result agrees too).
        let again = recover_shape(&d).unwrap();
        assert_matches(&again, &model, model.txns.len());
        assert_eq!(again.chunks, full.chunks, "{what}");
    }
}
