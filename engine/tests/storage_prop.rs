//! Property tests: whatever sequence of appends, chunk closes, flushes and syncs, and wherever
//! a crash cuts the files, recovery yields a prefix of what was written that ends at a
//! transaction boundary; and no byte flip anywhere makes recovery panic or invent data.

mod storage_support;

use engine::storage::{layout, scan, ShapeStore, StoreOptions};
use proptest::prelude::*;
use std::path::Path;
use storage_support::*;

#[derive(Debug, Clone)]
enum Op {
    Txn { entries: usize, size: usize },
    Close,
    Flush,
    Sync,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0usize..4, 0usize..120).prop_map(|(entries, size)| Op::Txn { entries, size }),
        2 => Just(Op::Close),
        2 => Just(Op::Flush),
        1 => Just(Op::Sync),
    ]
}

const OPTS: StoreOptions = StoreOptions {
    flush_bytes: 200,
    segment_bytes: 700,
};

/// Runs `ops`, then drops the store without a final flush (a crash loses the buffers).
fn write(root: &Path, h: &str, ops: &[Op]) -> (Model, u64) {
    let (mut store, mut model) = snapshotted(root, h, OPTS);
    store.sync().unwrap();
    let mut open_from = 0; // index into model.entries() of the open chunk's first entry
    for op in ops {
        match op {
            Op::Txn { entries, size } => {
                append(&mut store, &mut model, *entries, *size);
            }
            Op::Close => {
                let all = model.entries();
                if let Some((o, _)) = all.get(open_from) {
                    // Close after the open chunk's first entry or its last, alternately.
                    let pick = if all.len() % 2 == 0 {
                        open_from
                    } else {
                        all.len() - 1
                    };
                    let last = if pick < all.len() { all[pick].0 } else { *o };
                    close(&mut store, &mut model, last);
                    open_from = all.iter().position(|e| e.0 == last).unwrap() + 1;
                }
            }
            Op::Flush => store.flush().unwrap(),
            Op::Sync => {
                store.sync().unwrap();
            }
        }
    }
    let durable = store.durable_lsn();
    (model, durable)
}

/// Segment lengths in order.
fn segments(dir: &Path) -> Vec<u64> {
    (0..)
        .map(|n| dir.join(layout::segment_name(n)))
        .take_while(|p| p.exists())
        .map(|p| std::fs::metadata(p).unwrap().len())
        .collect()
}

/// Cuts the log as a crash would: at global byte `cut`, later segments gone.
fn crash_cut(dir: &Path, cut: u64) {
    let mut at = 0;
    for (n, len) in segments(dir).into_iter().enumerate() {
        let p = dir.join(layout::segment_name(n as u32));
        if at + len <= cut {
            at += len;
            continue;
        }
        if at > cut && n > 0 {
            std::fs::remove_file(&p).unwrap();
        } else {
            let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
            f.set_len(cut.saturating_sub(at)).unwrap();
        }
        at += len;
    }
}

/// The number of whole transactions the recovered log holds, checking it is a prefix.
fn prefix_len(rec: &engine::storage::RecoveredShape, model: &Model) -> usize {
    let mut n = 0;
    let mut entries = 0;
    while n < model.txns.len() && entries + model.txns[n].1.len() <= rec.log.len() {
        entries += model.txns[n].1.len();
        n += 1;
    }
    // Empty transactions at the end are only counted if their marker survived.
    while n > 0 && model.txns[n - 1].0 > rec.last_txn_lsn {
        n -= 1;
    }
    assert_eq!(
        rec.log.len(),
        model.txns[..n].iter().map(|t| t.1.len()).sum::<usize>()
    );
    n
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn crash_anywhere_recovers_a_prefix_ending_at_a_commit(
        ops in proptest::collection::vec(op(), 1..40),
        cut_frac in 0.0f64..=1.0,
    ) {
        let tmp = TempDir::new("prop-crash");
        let root = tmp.path();
        let h = handle(90);
        let (model, durable) = write(root, &h, &ops);
        let dir = layout::shape_dir(root, &h);
        let total: u64 = segments(&dir).iter().sum();
        let cut = (total as f64 * cut_frac) as u64;
        crash_cut(&dir, cut);

        let rec = only_shape(root);
        let n = prefix_len(&rec, &model);
        assert_matches_after_crash(&rec, &model, n);
        if cut == total {
            let synced = model.txns.iter().filter(|t| t.0 <= durable).count();
            prop_assert!(n >= synced, "synced transactions survive an uncut crash");
        }
        // Appends continue cleanly after recovery.
        let mut store = rec.open_store(OPTS).unwrap();
        let mut m2 = model.clone();
        m2.txns.truncate(n);
        m2.chunk_ends.retain(|e| rec.chunk_ends().contains(e));
        append(&mut store, &mut m2, 2, 30);
        store.sync().unwrap();
        drop(store);
        let again = only_shape(root);
        assert_matches(&again, &m2, m2.txns.len());
    }

    #[test]
    fn a_flipped_byte_never_panics_and_never_invents_data(
        ops in proptest::collection::vec(op(), 1..25),
        file_pick in 0usize..8,
        pos_frac in 0.0f64..1.0,
        xor in 1u8..=255,
    ) {
        let tmp = TempDir::new("prop-flip");
        let root = tmp.path();
        let h = handle(91);
        let (model, _) = write(root, &h, &ops);
        let dir = layout::shape_dir(root, &h);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| std::fs::metadata(p).unwrap().len() > 0)
            .collect();
        files.sort();
        let path = &files[file_pick % files.len()];
        let mut bytes = std::fs::read(path).unwrap();
        let i = ((bytes.len() as f64) * pos_frac) as usize;
        bytes[i] ^= xor;
        std::fs::write(path, &bytes).unwrap();

        let mut results = scan(root).unwrap();
        prop_assert_eq!(results.len(), 1);
        if let Ok(rec) = results.pop().unwrap() {
            // A snapshot chunk is checked when first read: it reads back exactly as written,
            // or not at all (and serving drops the shape).
            let mut intact = true;
            for (i, want) in model.snapshot.iter().enumerate().take(rec.snapshot_chunks.len()) {
                match rec.read_snapshot_chunk(i) {
                    Ok(got) => prop_assert_eq!(got, recorded(want)),
                    Err(e) => {
                        prop_assert!(e.is_corruption(), "{}", e);
                        intact = false;
                    }
                }
            }
            if intact {
                // Whatever loads is exactly what was written, possibly shorter at the end.
                let n = prefix_len(&rec, &model);
                assert_matches_after_crash(&rec, &model, n);
            }
        }
    }
}

#[test]
fn store_survives_create_without_any_sync() {
    // A shape created and dropped without a sync is still a consistent (unfinished) shape.
    let tmp = TempDir::new("nosync");
    let root = tmp.path();
    drop(ShapeStore::create(root, &meta(&handle(92))).unwrap());
    let rec = only_shape(root);
    assert!(!rec.is_servable());
}
