//! Round trips through the shape store: write, restart (scan), compare, continue appending.

mod storage_support;

use engine::storage::chunk_index::{self, ENTRY_LEN};
use engine::storage::record::{self, Decoded, KIND_ENTRY};
use engine::storage::{layout, scan, ShapeStore, StoreOptions};
use protocol::offset::LogOffset;
use storage_support::*;

#[test]
fn write_restart_compare_continue() {
    let tmp = TempDir::new("roundtrip");
    let root = tmp.path();
    let h = handle(1);
    let (mut store, mut model) = snapshotted(root, &h, StoreOptions::default());
    for i in 0..6 {
        append(&mut store, &mut model, 1 + i % 3, 20 * i);
        if i == 2 {
            // Close inside the transaction: chunk boundaries are per entry.
            let mid = model.txns[2].1[0].0;
            close(&mut store, &mut model, mid);
        }
        if i == 4 {
            let last = model.txns[4].1.last().unwrap().0;
            close(&mut store, &mut model, last);
        }
    }
    // An empty transaction records only that the shape saw its LSN.
    let lsn = model.next_lsn();
    store
        .append_txn(std::iter::empty::<(LogOffset, &[u8])>(), lsn)
        .unwrap();
    model.txns.push((lsn, Vec::new()));
    let point = store.sync().unwrap();
    assert_eq!(point.lsn, lsn);
    assert_eq!(store.durable_lsn(), lsn);
    assert_eq!(
        store.last_durable_offset(),
        model.entries().last().map(|e| e.0)
    );
    drop(store);

    let rec = only_shape(root);
    assert!(rec.is_servable());
    assert_eq!(rec.trimmed_bytes, 0);
    assert_eq!(rec.meta.handle, h);
    assert_eq!(rec.meta.snapshot, Some(pg()));
    assert_eq!(rec.meta.snapshot_chunks, 2);
    assert_eq!(rec.meta.definition, meta(&h).definition);
    assert_matches(&rec, &model, model.txns.len());

    // The index locates each chunk: its first and last entry records sit at the positions.
    let dir = layout::shape_dir(root, &h);
    let idx = std::fs::read(dir.join(layout::INDEX_FILE)).unwrap();
    assert_eq!(idx.len(), 2 * ENTRY_LEN);
    let seg = std::fs::read(dir.join(layout::segment_name(0))).unwrap();
    let all = model.entries();
    let mut next_first = 0;
    for (e, end) in chunk_index::decode_all(&idx).iter().zip(&model.chunk_ends) {
        assert_eq!(e.last, *end);
        assert_eq!(e.first, all[next_first].0);
        let Decoded::Record(r, _) = record::decode(&seg, e.start.pos as usize) else {
            panic!("no record at the chunk start")
        };
        assert_eq!((r.kind, r.tx, r.op), (KIND_ENTRY, e.first.tx, e.first.op));
        next_first = all.iter().position(|x| x.0 == *end).unwrap() + 1;
    }

    // Continue after the restart.
    let mut store = rec.open_store(StoreOptions::default()).unwrap();
    assert_eq!(
        store.durable_lsn(),
        0,
        "unknown until the first sync after a restart"
    );
    append(&mut store, &mut model, 2, 5);
    let last = model.txns.last().unwrap().1[1].0;
    close(&mut store, &mut model, last);
    store.sync().unwrap();
    drop(store);
    let rec = only_shape(root);
    assert_matches(&rec, &model, model.txns.len());

    rec.open_store(StoreOptions::default())
        .unwrap()
        .remove()
        .unwrap();
    assert!(!dir.exists());
    assert!(scan(root).unwrap().is_empty());
}

#[test]
fn segments_roll_over_and_recover_in_order() {
    let tmp = TempDir::new("segments");
    let root = tmp.path();
    let h = handle(2);
    let opts = StoreOptions {
        flush_bytes: 100,
        segment_bytes: 300,
    };
    let (mut store, mut model) = snapshotted(root, &h, opts);
    for i in 0..40 {
        append(&mut store, &mut model, 1 + i % 4, 10 + i);
        if i % 7 == 6 {
            let last = model.txns.last().unwrap().1[0].0;
            close(&mut store, &mut model, last);
        }
        if i % 5 == 0 {
            // Off-thread sync, as the engine does it.
            let job = store.prepare_sync().unwrap();
            let point = std::thread::spawn(move || job.run())
                .join()
                .unwrap()
                .unwrap();
            store.mark_durable(point);
        }
    }
    store.sync().unwrap();
    drop(store);
    let dir = layout::shape_dir(root, &h);
    assert!(
        dir.join(layout::segment_name(5)).exists(),
        "several segments"
    );
    let rec = only_shape(root);
    assert_matches(&rec, &model, model.txns.len());

    // Chunks spanning segments are indexed with both segment numbers.
    let idx = std::fs::read(dir.join(layout::INDEX_FILE)).unwrap();
    let entries = chunk_index::decode_all(&idx);
    assert_eq!(entries.len(), model.chunk_ends.len());
    assert!(entries.iter().any(|e| e.start.segment != e.end.segment));

    // A damaged or missing index is rebuilt from the log, not a reason to drop the shape.
    let mut bad = idx.clone();
    bad[ENTRY_LEN + 3] ^= 0x40;
    std::fs::write(dir.join(layout::INDEX_FILE), &bad).unwrap();
    let rec = only_shape(root);
    assert_matches(&rec, &model, model.txns.len());
    assert_eq!(std::fs::read(dir.join(layout::INDEX_FILE)).unwrap(), idx);
    std::fs::remove_file(dir.join(layout::INDEX_FILE)).unwrap();
    let rec = only_shape(root);
    assert_eq!(std::fs::read(dir.join(layout::INDEX_FILE)).unwrap(), idx);

    let mut store = rec.open_store(opts).unwrap();
    append(&mut store, &mut model, 3, 50);
    store.sync().unwrap();
    drop(store);
    assert_matches(&only_shape(root), &model, model.txns.len());
}

#[test]
fn unfinished_snapshot_is_not_servable() {
    let tmp = TempDir::new("unfinished");
    let root = tmp.path();
    let h = handle(3);
    let mut store = ShapeStore::create(root, &meta(&h)).unwrap();
    store.append_snapshot_chunk(b"{\"key\":\"1\"}").unwrap();
    store.sync().unwrap();
    drop(store);
    let rec = only_shape(root);
    assert!(!rec.is_servable());
    assert_eq!(rec.snapshot_chunks.len(), 1);

    // Finished and flushed but never synced: the metadata still says unfinished.
    let mut store = rec.open_store(StoreOptions::default()).unwrap();
    store.finish_snapshot(b"{\"end\":1}", pg()).unwrap();
    store.flush().unwrap();
    drop(store);
    let rec = only_shape(root);
    assert!(!rec.is_servable(), "the completion was never synced");
    // The flushed chunk is there, but an unfinished snapshot is dropped by the caller anyway.
    assert_eq!(rec.snapshot_chunks.len(), 2);
}

#[test]
fn create_refuses_existing_and_bad_handles() {
    let tmp = TempDir::new("create");
    let root = tmp.path();
    let h = handle(4);
    let store = ShapeStore::create(root, &meta(&h)).unwrap();
    let again = ShapeStore::create(root, &meta(&h)).unwrap_err();
    assert!(again.to_string().contains("already exists"), "{again}");
    drop(store);
    for bad in ["../../etc", "x", "a/b"] {
        let e = ShapeStore::create(root, &meta(bad)).unwrap_err();
        assert!(
            matches!(e, engine::storage::StorageError::InvalidHandle(_)),
            "{e}"
        );
    }
}

#[test]
fn oversized_payload_is_refused_and_nothing_is_appended() {
    let tmp = TempDir::new("oversize");
    let root = tmp.path();
    let (mut store, mut model) = snapshotted(root, &handle(5), StoreOptions::default());
    append(&mut store, &mut model, 2, 3);
    let huge = vec![b'x'; record::MAX_PAYLOAD + 1];
    let lsn = model.next_lsn();
    let e = store
        .append_txn(
            [
                (LogOffset::new(lsn, 0), &b"{}"[..]),
                (LogOffset::new(lsn, 2), &huge[..]),
            ],
            lsn,
        )
        .unwrap_err();
    assert!(
        matches!(e, engine::storage::StorageError::TooLarge { .. }),
        "{e}"
    );
    // The failed transaction left nothing behind; the same LSN can be retried.
    append(&mut store, &mut model, 1, 3);
    store.sync().unwrap();
    drop(store);
    assert_matches(&only_shape(root), &model, model.txns.len());
}

#[test]
fn group_commit_with_one_syncfs() {
    let tmp = TempDir::new("syncfs");
    let root = tmp.path();
    let mut shapes: Vec<_> = (0..20)
        .map(|i| snapshotted(root, &handle(200 + i), StoreOptions::default()))
        .collect();
    for (store, model) in &mut shapes {
        append(store, model, 2, 8);
    }
    let jobs: Vec<_> = shapes
        .iter_mut()
        .map(|(s, _)| s.prepare_sync().unwrap())
        .collect();
    let points: Vec<_> = jobs
        .into_iter()
        .map(|j| j.run_deferred().unwrap())
        .collect();
    engine::storage::sync_filesystem(root).unwrap();
    for ((store, model), p) in shapes.iter_mut().zip(points) {
        store.mark_durable(p);
        assert_eq!(store.durable_lsn(), model.txns[0].0);
    }
    drop(shapes.into_iter().map(|(_, m)| m).collect::<Vec<_>>());
    let results = scan(root).unwrap();
    assert_eq!(results.len(), 20);
    assert!(results
        .iter()
        .all(|r| r.as_ref().is_ok_and(|r| r.is_servable())));
}
