//! Recovery after crashes and damage: torn tails are cut back to the last complete
//! transaction (and the files with them); anything else makes that one shape fail.

mod storage_support;

use engine::storage::{layout, scan, ShapeStore, StorageError, StoreOptions};
use std::path::{Path, PathBuf};
use storage_support::*;

/// A shape with 4 synced transactions; returns its dir, the model, and the log length before
/// the last transaction.
fn four_txns(root: &Path, h: &str) -> (PathBuf, Model, u64) {
    let (mut store, mut model) = snapshotted(root, h, StoreOptions::default());
    for i in 0..3 {
        append(&mut store, &mut model, 2, 10 + i);
    }
    let first = model.txns[0].1[1].0;
    close(&mut store, &mut model, first);
    store.sync().unwrap();
    let dir = layout::shape_dir(root, h);
    let before = std::fs::metadata(dir.join("log.0")).unwrap().len();
    append(&mut store, &mut model, 3, 7);
    let last = model.txns[3].1[1].0;
    close(&mut store, &mut model, last);
    store.sync().unwrap();
    (dir, model, before)
}

#[test]
fn torn_tail_at_every_byte_of_the_last_transaction() {
    let tmp = TempDir::new("torn");
    let src = tmp.path().join("src");
    let h = handle(10);
    let (dir, model, before) = four_txns(&src, &h);
    let full = std::fs::read(dir.join("log.0")).unwrap();
    let full_len = full.len() as u64;
    assert!(before < full_len);
    for cut in before..=full_len {
        let root = tmp.path().join(format!("cut{cut}"));
        copy_dir(&src, &root);
        let seg = layout::shape_dir(&root, &h).join("log.0");
        let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
        f.set_len(cut).unwrap();
        drop(f);
        let rec = only_shape(&root);
        // The chunk-end record after the last commit marker is its own boundary.
        let commit_end = full_len - 25;
        let complete = if cut >= commit_end { 4 } else { 3 };
        let mut m = model.clone();
        if cut < full_len {
            m.chunk_ends.pop();
        }
        assert_matches(&rec, &m, complete);
        let kept = if cut == full_len {
            full_len
        } else if cut >= commit_end {
            commit_end
        } else {
            before
        };
        assert_eq!(
            std::fs::metadata(&seg).unwrap().len(),
            kept,
            "cut {cut}: file trimmed"
        );
        assert_eq!(rec.trimmed_bytes, cut - kept);
        // Appends continue cleanly after the trimmed tail.
        if cut % 17 == 0 || cut == before + 1 {
            let mut store = rec.open_store(StoreOptions::default()).unwrap();
            let mut m2 = m.clone();
            m2.txns.truncate(complete);
            append(&mut store, &mut m2, 2, 4);
            store.sync().unwrap();
            drop(store);
            assert_matches(&only_shape(&root), &m2, m2.txns.len());
        }
        std::fs::remove_dir_all(&root).unwrap();
    }
}

#[test]
fn garbage_and_zeros_after_the_last_commit_are_trimmed() {
    let tmp = TempDir::new("garbage");
    for (i, tail) in [vec![0u8; 4096], vec![0xA5; 31], b"{\"half\":".to_vec()]
        .into_iter()
        .enumerate()
    {
        let root = tmp.path().join(format!("r{i}"));
        let h = handle(20 + i as u32);
        let (dir, model, _) = four_txns(&root, &h);
        let seg = dir.join("log.0");
        let mut bytes = std::fs::read(&seg).unwrap();
        let len = bytes.len() as u64;
        bytes.extend_from_slice(&tail);
        std::fs::write(&seg, &bytes).unwrap();
        let rec = only_shape(&root);
        assert_matches(&rec, &model, 4);
        assert_eq!(std::fs::metadata(&seg).unwrap().len(), len);
    }
}

/// Flips one byte of `file` in shape A; shape B must be unaffected.
fn damage_one_of_two(file: &str, at: impl Fn(u64) -> u64, xor: u8) -> StorageError {
    let tmp = TempDir::new("damage");
    let root = tmp.path();
    let (dir_a, _, _) = four_txns(root, &handle(30));
    let (_, model_b, _) = four_txns(root, &handle(31));
    let path = dir_a.join(file);
    let mut bytes = std::fs::read(&path).unwrap();
    let i = at(bytes.len() as u64) as usize;
    bytes[i] ^= xor;
    std::fs::write(&path, &bytes).unwrap();
    let results = scan(root).unwrap();
    assert_eq!(results.len(), 2);
    let mut err = None;
    for r in results {
        match r {
            Ok(rec) => {
                assert_eq!(rec.meta.handle, handle(31), "only B recovers");
                assert_matches(&rec, &model_b, 4);
            }
            Err(f) => {
                assert_eq!(f.handle, handle(30));
                assert_eq!(f.dir, dir_a);
                err = Some(f.error);
            }
        }
    }
    // Nothing was cut off the damaged shape's files.
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    err.expect("shape A must fail")
}

#[test]
fn bit_flip_in_the_middle_of_the_log_fails_that_shape_only() {
    for xor in [0x01, 0x80, 0xff] {
        let e = damage_one_of_two("log.0", |len| len / 3, xor);
        assert!(e.is_corruption(), "{e}");
        assert!(e.to_string().contains("log.0"), "{e}");
    }
}

#[test]
fn damaged_length_of_the_first_record_is_not_mistaken_for_a_torn_tail() {
    // A length pointing past the end looks like a partial record, but committed
    // transactions follow it.
    let e = damage_one_of_two("log.0", |_| 2, 0x7f);
    assert!(e.is_corruption(), "{e}");
    let e = damage_one_of_two("log.0", |_| 8, 0x07); // kind byte
    assert!(e.is_corruption(), "{e}");
}

#[test]
fn damaged_snapshot_headers_fail_that_shape() {
    // A complete snapshot's record headers are checked at recovery: the kind byte of the
    // first chunk, and a length pointing past the end of the file.
    let e = damage_one_of_two("snapshot.data", |_| 8, 0x10);
    assert!(e.is_corruption(), "{e}");
    let e = damage_one_of_two("snapshot.data", |_| 2, 0x10);
    assert!(e.is_corruption(), "{e}");
    assert!(e.to_string().contains("past the end of the file"), "{e}");
}

#[test]
fn a_cut_snapshot_fails_that_shape() {
    let tmp = TempDir::new("snapshot-cut");
    let root = tmp.path();
    let (dir, _, _) = four_txns(root, &handle(32));
    let path = dir.join("snapshot.data");
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let e = scan(root)
        .unwrap()
        .pop()
        .unwrap()
        .expect_err("a cut snapshot recovered");
    assert!(
        e.error.to_string().contains("past the end of the file"),
        "{}",
        e.error
    );
}

/// A damaged snapshot payload is found when the chunk is first read (recovery reads headers
/// only, so restart time does not grow with the snapshot): the read fails, never returns the
/// damaged bytes. (Serving then drops the shape: `ShapeLog::read`.)
#[test]
fn a_damaged_snapshot_payload_is_refused_when_read() {
    let tmp = TempDir::new("snapshot-payload");
    let root = tmp.path();
    let (dir, model, _) = four_txns(root, &handle(33));
    let path = dir.join("snapshot.data");
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    let rec = only_shape(root);
    let n = rec.snapshot_chunks.len();
    assert_eq!(n, model.snapshot.len());
    for (i, want) in model.snapshot[..n - 1].iter().enumerate() {
        assert_eq!(rec.read_snapshot_chunk(i).unwrap(), recorded(want));
    }
    let e = rec
        .read_snapshot_chunk(n - 1)
        .expect_err("damaged bytes read");
    assert!(e.is_corruption(), "{e}");
    assert!(e.to_string().contains("checksum"), "{e}");
}

#[test]
fn bad_metadata_fails_that_shape() {
    let e = damage_one_of_two("meta.rkyv", |len| len / 2, 0x04);
    assert!(e.is_corruption(), "{e}");
    assert!(e.to_string().contains("meta.rkyv"), "{e}");
    let e = damage_one_of_two("meta.rkyv", |len| len - 1, 0x04);
    assert!(e.to_string().contains("checksum"), "{e}");
}

#[test]
fn unknown_format_version_is_refused() {
    let e = damage_one_of_two("meta.rkyv", |_| 8, 0x01); // version 2 -> 3
    match e {
        StorageError::UnsupportedVersion {
            found, supported, ..
        } => assert_eq!((found, supported), (3, 2)),
        other => panic!("{other}"),
    }
}

#[test]
fn missing_files_and_leftovers() {
    let tmp = TempDir::new("missing");
    let root = tmp.path();
    let (dir, model, _) = four_txns(root, &handle(40));
    // A half-created shape and an interrupted metadata replacement are cleaned up.
    let staging = layout::staging_dir(root, &handle(41));
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::write(dir.join(layout::META_TMP_FILE), b"partial").unwrap();
    let rec = only_shape(root);
    assert_matches(&rec, &model, 4);
    assert!(!staging.exists());
    assert!(!dir.join(layout::META_TMP_FILE).exists());

    // A later segment without an earlier one.
    std::fs::rename(dir.join("log.0"), dir.join("log.1")).unwrap();
    let f = scan(root).unwrap().pop().unwrap().unwrap_err();
    assert!(
        f.error.to_string().contains("log segment missing"),
        "{}",
        f.error
    );
    std::fs::remove_file(dir.join("log.1")).unwrap();
    let f = scan(root).unwrap().pop().unwrap().unwrap_err();
    assert!(
        f.error.to_string().contains("no log segment"),
        "{}",
        f.error
    );

    // No metadata at all: an I/O error naming the file.
    std::fs::remove_file(dir.join(layout::META_FILE)).unwrap();
    let f = scan(root).unwrap().pop().unwrap().unwrap_err();
    assert!(f.error.to_string().contains("meta.rkyv"), "{}", f.error);
    engine::storage::remove_shape_dir(&f.dir).unwrap();
    assert!(scan(root).unwrap().is_empty());
}

#[test]
fn shape_in_the_wrong_directory_is_rejected() {
    let tmp = TempDir::new("wrongdir");
    let root = tmp.path();
    let h = handle(50);
    let store = ShapeStore::create(root, &meta(&h)).unwrap();
    drop(store);
    let dir = layout::shape_dir(root, &h);
    let other = layout::shape_dir(root, &handle(51));
    std::fs::create_dir_all(other.parent().unwrap()).unwrap();
    std::fs::rename(&dir, &other).unwrap();
    let f = scan(root).unwrap().pop().unwrap().unwrap_err();
    assert!(f.error.is_corruption(), "{}", f.error);
}

/// Each closed chunk's bytes as served, read from `chunks.data` at the recovered position.
fn chunk_data_bytes(rec: &engine::storage::RecoveredShape) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(rec.dir.join("chunks.data")).unwrap();
    rec.chunks
        .iter()
        .map(|c| {
            let (pos, _) = c.records.expect("every chunk fits a record");
            let at = pos.payload_at() as usize;
            bytes[at..at + pos.len as usize].to_vec()
        })
        .collect()
}

/// The model's closed chunks joined as the engine serves them (in brackets).
fn joined_chunks(model: &Model) -> Vec<Vec<u8>> {
    let entries = model.entries();
    let mut out = Vec::new();
    let mut from = 0;
    for end in &model.chunk_ends {
        let to = entries.iter().position(|(o, _)| o == end).unwrap();
        let parts: Vec<&[u8]> = entries[from..=to].iter().map(|(_, p)| &p[..]).collect();
        out.push(recorded(&parts.join(&b","[..])));
        from = to + 1;
    }
    out
}

/// Found by the `storage_recover` fuzz target: a shape without `chunks.data` (written before
/// it existed) and without a closed chunk recovered, but its store could not be reopened (the
/// file was only created when there was a chunk to write into it).
#[test]
fn missing_chunk_data_without_closed_chunks_is_created() {
    let tmp = TempDir::new("chunk-data-none");
    let root = tmp.path();
    let h = handle(35);
    let (mut store, mut model) = snapshotted(root, &h, StoreOptions::default());
    append(&mut store, &mut model, 2, 5);
    store.sync().unwrap();
    drop(store);
    let path = layout::shape_dir(root, &h).join("chunks.data");
    std::fs::remove_file(&path).unwrap();

    let rec = only_shape(root);
    assert_matches(&rec, &model, 1);
    assert_eq!(std::fs::read(&path).unwrap(), b"", "created empty");
    let mut store = rec.open_store(StoreOptions::default()).unwrap();
    append(&mut store, &mut model, 1, 5);
    let last = model.txns[1].1[0].0;
    close(&mut store, &mut model, last);
    store.sync().unwrap();
    drop(store);
    let rec = only_shape(root);
    assert_matches(&rec, &model, 2);
    assert_eq!(chunk_data_bytes(&rec), joined_chunks(&model));
}

#[test]
fn chunk_data_is_recovered_and_rebuilt_from_the_log_when_missing_or_damaged() {
    let tmp = TempDir::new("chunk-data");
    let root = tmp.path();
    let (dir, model, _) = four_txns(root, &handle(34));
    let want = joined_chunks(&model);
    assert_eq!(want.len(), 2);
    let rec = only_shape(root);
    assert_eq!(chunk_data_bytes(&rec), want, "as written");
    let path = dir.join("chunks.data");
    let original = std::fs::read(&path).unwrap();

    // Gone (a shape written before chunks.data existed): rebuilt.
    std::fs::remove_file(&path).unwrap();
    let rec = only_shape(root);
    assert_eq!(chunk_data_bytes(&rec), want, "rebuilt");
    assert_eq!(std::fs::read(&path).unwrap(), original);

    // A flipped byte in the second record, and a torn tail: rewritten from the log, never
    // served as found.
    for damage in [
        |b: &mut Vec<u8>| {
            let n = b.len();
            b[n - 5] ^= 0x01;
        },
        |b: &mut Vec<u8>| {
            let n = b.len();
            b.truncate(n - 7);
        },
        |b: &mut Vec<u8>| b.extend_from_slice(b"trailing garbage"),
    ] {
        let mut bytes = original.clone();
        damage(&mut bytes);
        std::fs::write(&path, &bytes).unwrap();
        let rec = only_shape(root);
        assert_eq!(chunk_data_bytes(&rec), want);
        assert_eq!(std::fs::read(&path).unwrap(), original);
    }
}

/// `chunks.data` written before chunk records had brackets (bare entries): recovery finds the
/// records unlike the log's chunks and rewrites them, so a closed chunk is always served as
/// one file range (its payload is the whole response body).
#[test]
fn chunk_data_without_brackets_is_rewritten_with_them() {
    use engine::storage::record::{self, KIND_CHUNK_DATA, KIND_CHUNK_INDEX};
    let tmp = TempDir::new("chunk-data-bare");
    let root = tmp.path();
    let (dir, model, _) = four_txns(root, &handle(36));
    let want = joined_chunks(&model);
    let path = dir.join("chunks.data");
    let current = std::fs::read(&path).unwrap();
    // The same records with the brackets taken off the CHUNK_DATA payloads.
    let mut bare = Vec::new();
    let mut at = 0;
    while let record::Decoded::Record(r, next) = record::decode(&current, at) {
        let payload = if r.kind == KIND_CHUNK_DATA {
            assert_eq!((r.payload[0], r.payload[r.payload.len() - 1]), (b'[', b']'));
            &r.payload[1..r.payload.len() - 1]
        } else {
            assert_eq!(r.kind, KIND_CHUNK_INDEX);
            r.payload
        };
        record::encode(&mut bare, r.kind, r.tx, r.op, payload);
        at = next;
    }
    assert_eq!(at, current.len(), "every record read");
    std::fs::write(&path, &bare).unwrap();

    let rec = only_shape(root);
    assert_eq!(chunk_data_bytes(&rec), want);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        current,
        "rewritten with brackets"
    );
}
