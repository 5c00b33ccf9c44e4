//! How long start-up recovery takes for many shapes. Prints timings; asserts only
//! correctness (timing assertions would be flaky on a shared machine).
//!
//! `cargo test -p engine --test storage_scan_timing -- --ignored --nocapture` runs the
//! 10,000-shape measurement.

mod storage_support;

use engine::storage::{scan, scan_with_threads, ShapeStore, StoreOptions};
use std::time::Instant;
use storage_support::*;

fn populate(root: &std::path::Path, shapes: u32) {
    let t = Instant::now();
    for i in 0..shapes {
        let (mut store, mut model): (ShapeStore, Model) =
            snapshotted(root, &handle(i), StoreOptions::default());
        for _ in 0..3 {
            append(&mut store, &mut model, 2, 40);
        }
        let last = model.txns[1].1[1].0;
        close(&mut store, &mut model, last);
        // Written to the OS but not fsynced: 10,000 fsync batches would dominate the test.
        store.flush().unwrap();
    }
    eprintln!("created {shapes} shapes in {:?}", t.elapsed());
}

fn drop_page_cache() -> bool {
    // Needs root; only affects timing, so failure just means the cold number is skipped.
    std::fs::write("/proc/sys/vm/drop_caches", "3\n").is_ok()
}

fn measure(shapes: u32, cold: bool) {
    let tmp = TempDir::new("scan-timing");
    let root = tmp.path();
    populate(root, shapes);
    for threads in [1, 2] {
        let t = Instant::now();
        let results = scan_with_threads(root, threads).unwrap();
        let elapsed = t.elapsed();
        assert_eq!(results.len(), shapes as usize);
        for r in &results {
            let rec = r.as_ref().map_err(|f| f.error.to_string()).unwrap();
            assert_eq!(rec.log.len(), 6);
            assert_eq!(rec.chunk_ends().len(), 1);
        }
        eprintln!(
            "scan of {shapes} shapes, {threads} thread(s), warm page cache: {elapsed:?} ({:?}/shape)",
            elapsed / shapes
        );
    }
    if cold && drop_page_cache() {
        let t = Instant::now();
        let results = scan(root).unwrap();
        let elapsed = t.elapsed();
        assert_eq!(results.len(), shapes as usize);
        eprintln!("scan of {shapes} shapes, cold page cache: {elapsed:?}");
    } else if cold {
        eprintln!("cold-cache scan skipped: cannot write /proc/sys/vm/drop_caches");
    }
}

#[test]
fn scan_1000_shapes() {
    measure(1_000, false);
}

#[test]
#[ignore = "takes a few seconds to populate; run for the measurement"]
fn scan_10000_shapes() {
    // Dropping the page cache slows every other process for a while: only here.
    measure(10_000, true);
}

/// Issue "the disk is the log": restart time must not depend on log size. 10,000 shapes with
/// 512 KiB snapshots each (5 GiB): recovery reads a complete snapshot's record headers only, so
/// the scan costs about what it costs for tiny shapes (`scan_10000_shapes`).
#[test]
#[ignore = "writes 5 GiB; run for the measurement"]
fn scan_10000_shapes_holding_5_gib() {
    let tmp = TempDir::new("scan-5gib");
    let root = tmp.path();
    let t = Instant::now();
    let chunk = vec![b'x'; 256 << 10];
    for i in 0..10_000u32 {
        let mut store =
            ShapeStore::create_with(root, &meta(&handle(i)), StoreOptions::default()).unwrap();
        store.append_snapshot_chunk(&chunk).unwrap();
        store.finish_snapshot(&chunk, pg()).unwrap();
        let mut model = Model {
            snapshot: vec![chunk.clone(), chunk.clone()],
            ..Model::default()
        };
        for _ in 0..3 {
            append(&mut store, &mut model, 2, 40);
        }
        // Written to the OS but not fsynced: 10,000 fsync batches would dominate the test.
        store.flush().unwrap();
    }
    eprintln!(
        "created 10000 shapes (5 GiB of snapshots) in {:?}",
        t.elapsed()
    );
    for threads in [1, 2] {
        let t = Instant::now();
        let results = scan_with_threads(root, threads).unwrap();
        let elapsed = t.elapsed();
        assert_eq!(results.len(), 10_000);
        for r in &results {
            let rec = r.as_ref().map_err(|f| f.error.to_string()).unwrap();
            assert_eq!(rec.snapshot_chunks.len(), 2);
            assert_eq!(rec.log.len(), 6);
        }
        eprintln!("scan of 10000 shapes holding 5 GiB, {threads} thread(s), warm: {elapsed:?}");
    }
    if drop_page_cache() {
        let t = Instant::now();
        let results = scan(root).unwrap();
        assert_eq!(results.len(), 10_000);
        eprintln!(
            "scan of 10000 shapes holding 5 GiB, cold page cache: {:?}",
            t.elapsed()
        );
    }
}
