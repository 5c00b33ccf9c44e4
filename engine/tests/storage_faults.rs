//! Storage faults: a full disk (a tiny tmpfs), a read-only storage directory (a read-only bind
//! mount) and a file where a directory should be. Mounting needs root; without it these tests
//! say so and skip.

mod storage_support;

use engine::storage::{layout, scan, ShapeStore, StorageError, StoreOptions};
use protocol::offset::LogOffset;
use std::path::{Path, PathBuf};
use std::process::Command;
use storage_support::*;

/// Unmounts on drop.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn run(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .status()
        .is_ok_and(|s| s.success())
}

fn mount_tmpfs(dir: &Path, size: &str) -> Option<Mount> {
    std::fs::create_dir_all(dir).unwrap();
    let d = dir.to_str().unwrap();
    if run(&[
        "mount",
        "-t",
        "tmpfs",
        "-o",
        &format!("size={size}"),
        "tmpfs",
        d,
    ]) {
        Some(Mount(dir.to_path_buf()))
    } else {
        eprintln!("SKIPPED: cannot mount a tmpfs at {d} (needs root / CAP_SYS_ADMIN)");
        None
    }
}

fn mount_read_only(src: &Path, dst: &Path) -> Option<Mount> {
    std::fs::create_dir_all(dst).unwrap();
    let (s, d) = (src.to_str().unwrap(), dst.to_str().unwrap());
    if !run(&["mount", "--bind", s, d]) {
        eprintln!("SKIPPED: cannot bind-mount {s} (needs root / CAP_SYS_ADMIN)");
        return None;
    }
    let m = Mount(dst.to_path_buf());
    if !run(&["mount", "-o", "remount,bind,ro", d]) {
        eprintln!("SKIPPED: cannot remount {d} read-only");
        return None;
    }
    Some(m)
}

#[test]
fn disk_full_is_a_clear_error_leaves_no_partial_record_and_recovers() {
    let tmp = TempDir::new("enospc");
    let mnt = tmp.path().join("mnt");
    let Some(_mount) = mount_tmpfs(&mnt, "128k") else {
        return;
    };
    let filler = mnt.join("filler");
    std::fs::write(&filler, vec![7u8; 48 << 10]).unwrap();
    let root = mnt.join("storage");
    let h = handle(60);
    let opts = StoreOptions {
        flush_bytes: 1000,
        segment_bytes: 1 << 30,
    };
    let (mut store, mut model) = snapshotted(&root, &h, opts);
    store.sync().unwrap();

    let mut failure = None;
    for _ in 0..400 {
        let lsn = model.next_lsn();
        let payload = vec![b'z'; 900];
        match store.append_txn([(LogOffset::new(lsn, 0), &payload[..])], lsn) {
            Ok(_) => model
                .txns
                .push((lsn, vec![(LogOffset::new(lsn, 0), payload)])),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let e = failure.expect("a 128 KiB file system fills up");
    assert!(e.is_no_space(), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("no space left on device") && msg.contains("log.0"),
        "{msg}"
    );
    assert!(store.sync().unwrap_err().is_no_space());

    // What is on disk now is a clean prefix of the accepted transactions: the failed write
    // was cut back, so recovery has nothing to trim.
    let copy = tmp.path().join("copy");
    copy_dir(&root, &copy);
    let rec = only_shape(&copy);
    assert_eq!(rec.trimmed_bytes, 0, "no partial record after ENOSPC");
    let on_disk = rec.log.len();
    assert!(
        on_disk < model.txns.len(),
        "some accepted transactions are only buffered"
    );
    assert_matches(&rec, &model, on_disk);

    // Space returns: the buffered transactions and new ones all reach the disk.
    std::fs::remove_file(&filler).unwrap();
    for _ in 0..3 {
        append(&mut store, &mut model, 1, 100);
    }
    let point = store.sync().unwrap();
    assert_eq!(point.lsn, model.txns.last().unwrap().0);
    drop(store);
    let rec = only_shape(&root);
    assert_eq!(rec.trimmed_bytes, 0);
    assert_matches(&rec, &model, model.txns.len());
}

#[test]
fn disk_full_while_creating_a_shape_leaves_nothing_behind() {
    let tmp = TempDir::new("enospc-create");
    let mnt = tmp.path().join("mnt");
    let Some(_mount) = mount_tmpfs(&mnt, "64k") else {
        return;
    };
    let root = mnt.join("storage");
    let (mut store, mut model) = snapshotted(&root, &handle(61), StoreOptions::default());
    append(&mut store, &mut model, 1, 10);
    store.sync().unwrap();
    // Fill the file system completely.
    let mut n = 0;
    while std::fs::write(mnt.join(format!("fill{n}")), vec![1u8; 4096]).is_ok() {
        n += 1;
    }
    let _ = std::fs::write(mnt.join("fill-last"), vec![1u8; 1]);
    let mut errors = Vec::new();
    for i in 0..20 {
        let h = handle(100 + i);
        match ShapeStore::create(&root, &meta(&h)).and_then(|mut s| s.sync().map(|_| s)) {
            Ok(s) => drop(s),
            Err(e) => errors.push(e),
        }
    }
    assert!(
        !errors.is_empty(),
        "creating shapes on a full disk must fail somewhere"
    );
    for e in &errors {
        assert!(
            matches!(e, StorageError::NoSpace { .. }),
            "{e} should be reported as no space"
        );
    }
    // The existing shape is intact; half-created ones are either complete or gone.
    for r in scan(&root).unwrap() {
        match r {
            Ok(rec) if rec.meta.handle == handle(61) => assert_matches(&rec, &model, 1),
            Ok(rec) => assert!(!rec.is_servable()),
            Err(f) => panic!("{}: {}", f.dir.display(), f.error),
        }
    }
}

#[test]
fn read_only_storage_is_a_clear_error() {
    let tmp = TempDir::new("readonly");
    let src = tmp.path().join("src");
    let (mut store, mut model) = snapshotted(&src, &handle(70), StoreOptions::default());
    append(&mut store, &mut model, 2, 10);
    store.sync().unwrap();
    drop(store);
    // A second shape with a torn tail that recovery would have to cut off.
    let (mut store, mut torn_model) = snapshotted(&src, &handle(71), StoreOptions::default());
    append(&mut store, &mut torn_model, 2, 10);
    store.sync().unwrap();
    drop(store);
    let seg = layout::shape_dir(&src, &handle(71)).join("log.0");
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes.extend_from_slice(&[9; 10]);
    std::fs::write(&seg, &bytes).unwrap();

    let ro = tmp.path().join("ro");
    let Some(_mount) = mount_read_only(&src, &ro) else {
        return;
    };
    let e = ShapeStore::create(&ro, &meta(&handle(72))).unwrap_err();
    assert!(matches!(e, StorageError::ReadOnly { .. }), "{e}");
    assert!(e.to_string().contains("not writable"), "{e}");

    let results = scan(&ro).unwrap();
    assert_eq!(results.len(), 2);
    for r in results {
        match r {
            Ok(rec) => {
                assert_eq!(rec.meta.handle, handle(70), "a clean shape loads read-only");
                assert_matches(&rec, &model, 1);
            }
            Err(f) => {
                assert_eq!(f.handle, handle(71));
                assert!(
                    matches!(f.error, StorageError::ReadOnly { .. }),
                    "{}",
                    f.error
                );
            }
        }
    }
    // Nothing was changed underneath.
    assert_eq!(std::fs::read(&seg).unwrap(), bytes);
}

#[test]
fn a_file_where_the_shapes_directory_should_be() {
    let tmp = TempDir::new("notadir");
    let root = tmp.path();
    std::fs::write(root.join("shapes"), b"not a directory").unwrap();
    let e = ShapeStore::create(root, &meta(&handle(80))).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("create directory") && msg.contains("shapes"),
        "{msg}"
    );
    let e = scan(root).unwrap_err();
    assert!(e.to_string().contains("shapes"), "{e}");
}
