//! Recovers a shape directory made of arbitrary files (`engine::storage::recover_shape`, or
//! `scan` over the storage root), as start-up does after a crash or with a damaged disk. The
//! directory lives under `/dev/shm` (tmpfs: fsync is cheap; else the temp directory), private
//! to the process and emptied for every input; the process removes it when it exits or
//! panics, and the next run removes one left by a process killed on a timeout.
//!
//! Input layout: byte 0 is flags: bit 0 marks the generated `meta.rkyv` snapshot-complete,
//! bit 1 rewrites the checksum of each record in `snapshot.data`, `log.*` and `chunks.data` (so the fuzzer
//! reaches valid records with arbitrary content), bit 2 recovers through `scan`, bit 3
//! appends a transaction after a successful recovery and recovers again, bit 4 recovers with
//! `recover_shape_lazy` (start-up's path) instead; byte 1 is the
//! snapshot chunk count of the generated metadata. The rest is files, each a 1-byte file id,
//! a 2-byte big-endian length and that many bytes (a repeated id appends): 0 `meta.rkyv`
//! (replaces the generated one), 1 `snapshot.data`, 2 `chunks.idx`, 3 `meta.rkyv.tmp`,
//! 4..=7 `log.0`..`log.3`, 8 `log.01` (not a segment name), 9 `chunks.data`, 10 a directory
//! `log.4` (ids are taken modulo 11).
//! Oracle: no panic, no hang; an error is corruption, an unsupported version or an I/O error
//! (never disk-full, read-only or a bad handle); a recovered shape has real, strictly
//! increasing entry offsets within its last commit, strictly increasing chunk ends that are
//! entries, the chunk index on disk that matches them, `chunks.data` records that hold each
//! closed chunk's entries as served and their entry index, and the snapshot chunks its
//! metadata counts; recovering again trims nothing and finds the same shape, and a lazy recovery then finds the
//! same closed chunks and, in memory, exactly the open chunk's entries; after an appended
//! transaction and chunk end, recovery finds exactly the old shape plus them.

#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use engine::storage::chunk_index::decode_all;
use engine::storage::layout::{self, CHUNK_DATA_FILE, INDEX_FILE};
use engine::storage::meta::{self, DefinitionRecord, ShapeMeta, SnapshotRecord};
use engine::storage::record::{
    decode, encode_chunk_index, Decoded, HEADER_LEN, KIND_CHUNK_DATA, KIND_CHUNK_INDEX,
};
use engine::storage::{
    recover_shape, recover_shape_lazy, scan_with_threads, RecoveredShape, StorageError, StoreOptions,
};
use libfuzzer_sys::fuzz_target;
use protocol::offset::LogOffset;

const HANDLE: &str = "ab-1";
const FILES: [&str; 10] = [
    "meta.rkyv",
    "snapshot.data",
    "chunks.idx",
    "meta.rkyv.tmp",
    "log.0",
    "log.1",
    "log.2",
    "log.3",
    "log.01",
    CHUNK_DATA_FILE,
];
const DIRECTORY_ID: u8 = 10;

const ROOT_PREFIX: &str = "ampere-fuzz-recover-";

/// A storage root private to this process. Its shape directory is emptied for every input;
/// the levels above it are made once (recovery writes only inside the shape directory).
fn root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| base().join(format!("{ROOT_PREFIX}{}", std::process::id())))
}

fn base() -> PathBuf {
    if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    }
}

/// An empty shape directory (removing and recreating only it keeps the cost per input low).
fn reset(dir: &Path) {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("clean {}: {e}", dir.display()),
    }
    if let Err(e) = std::fs::create_dir(dir) {
        assert_eq!(
            e.kind(),
            std::io::ErrorKind::NotFound,
            "create {}",
            dir.display()
        );
        std::fs::create_dir_all(dir).expect("create the shape directory");
    }
}

extern "C" {
    fn atexit(callback: extern "C" fn()) -> std::os::raw::c_int;
}

extern "C" fn remove_root() {
    let _ = std::fs::remove_dir_all(root());
}

/// Removes this process's root when it exits (libFuzzer ends a run with `exit`) or panics
/// (libFuzzer's hook aborts), and the roots of processes that are gone (a timeout or an
/// out-of-memory kill ends the process without either).
fn set_up_cleanup() {
    if let Ok(entries) = std::fs::read_dir(base()) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let pid = name.to_str().and_then(|n| n.strip_prefix(ROOT_PREFIX));
            if pid.is_some_and(|pid| !Path::new("/proc").join(pid).exists()) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    // SAFETY: `atexit` is the C library's; `remove_root` is an `extern "C"` function that
    // does not unwind (errors are ignored) and stays valid for the life of the process.
    let registered = unsafe { atexit(remove_root) };
    assert_eq!(registered, 0, "atexit");
    let abort = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        remove_root();
        abort(info);
    }));
}

fuzz_target!(init: set_up_cleanup(), |data: &[u8]| run(data));

fn run(data: &[u8]) {
    let [flags, chunks, rest @ ..] = data else {
        return;
    };
    let dir = layout::shape_dir(root(), HANDLE);
    reset(&dir);
    write_files(&dir, *flags, *chunks, rest);

    let recovered = if flags & 4 != 0 {
        let mut results = scan_with_threads(root(), 1).expect("the root lists");
        assert_eq!(results.len(), 1, "one shape directory");
        results.pop().expect("one result").map_err(|failure| {
            assert_eq!(failure.handle, HANDLE);
            failure.error
        })
    } else if flags & 16 != 0 {
        // Start-up's path: the index and chunks.data trusted when they agree with the log's
        // tail, else a full recovery. Twice gives the same shape.
        match recover_shape_lazy(&dir, None) {
            Ok(lazy) => {
                check_lazy(&lazy);
                let again = recover_shape_lazy(&dir, None).expect("a recovered shape recovers");
                assert_eq!(again.trimmed_bytes, 0, "second lazy recovery trimmed");
                assert_eq!(lazy.chunks, again.chunks);
                assert_eq!(lazy.log, again.log);
                assert_eq!(lazy.last_txn_lsn, again.last_txn_lsn);
                return;
            }
            Err(error) => return check_error(&error),
        }
    } else {
        recover_shape(&dir)
    };
    let shape = match recovered {
        Ok(shape) => shape,
        Err(error) => return check_error(&error),
    };
    check_shape(&shape);
    let index = std::fs::read(dir.join(INDEX_FILE)).expect("recovery leaves an index");
    let again = recover_shape(&dir).expect("a recovered shape recovers");
    assert_eq!(again.trimmed_bytes, 0, "second recovery trimmed");
    assert_same(&shape, &again);
    assert_eq!(std::fs::read(dir.join(INDEX_FILE)).expect("index"), index);
    let lazy = recover_shape_lazy(&dir, None).expect("a recovered shape recovers lazily");
    assert_lazy_agrees(&shape, &lazy);
    if flags & 8 != 0 && shape.is_servable() && shape.last_txn_lsn < u64::MAX {
        append_and_recover(&dir, &shape);
    }
}

fn write_files(dir: &Path, flags: u8, chunks: u8, mut rest: &[u8]) {
    let mut files: Vec<Vec<u8>> = vec![Vec::new(); FILES.len()];
    let mut present = [false; FILES.len()];
    while let [id, high, low, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*high, *low])).min(tail.len());
        let (bytes, tail) = tail.split_at(len);
        rest = tail;
        let id = id % 11;
        if id == DIRECTORY_ID {
            let path = dir.join("log.4");
            if !path.exists() {
                std::fs::create_dir(&path).expect("create a directory");
            }
            continue;
        }
        files[usize::from(id)].extend_from_slice(bytes);
        present[usize::from(id)] = true;
    }
    if !present[0] {
        files[0] = meta::encode(&generated_meta(flags & 1 != 0, chunks));
        present[0] = true;
    }
    for (i, bytes) in files.iter_mut().enumerate() {
        if !present[i] {
            continue;
        }
        if flags & 2 != 0 && (i == 1 || (4..=7).contains(&i) || i == 9) {
            fix_checksums(bytes);
        }
        std::fs::write(dir.join(FILES[i]), bytes).expect("write a file");
    }
}

fn generated_meta(complete: bool, chunks: u8) -> ShapeMeta {
    let mut meta = ShapeMeta::new(
        HANDLE.to_owned(),
        DefinitionRecord {
            schema: "public".into(),
            table: "items".into(),
            table_oid: 16384,
            columns: vec!["id".into(), "title".into()],
            where_clause: Some("id > $1".into()),
            params: vec!["5".into()],
            replica: 0,
            log_mode: 0,
            table_columns: Vec::new(),
        },
    );
    if complete {
        meta.snapshot = Some(SnapshotRecord {
            xmin: 10,
            xmax: 12,
            xip: vec![11],
        });
        meta.snapshot_complete = true;
        meta.snapshot_chunks = u32::from(chunks);
    }
    meta
}

/// Gives each record whose length fits its correct checksum, walking record by record.
fn fix_checksums(buf: &mut [u8]) {
    let mut pos = 0;
    while buf.len() - pos >= HEADER_LEN {
        let len = u32::from_le_bytes(buf[pos..pos + 4].try_into().expect("4 bytes")) as usize;
        if len > buf.len() - pos - HEADER_LEN {
            return;
        }
        let end = pos + HEADER_LEN + len;
        let crc = crc32c::crc32c_append(crc32c::crc32c(&buf[pos..pos + 4]), &buf[pos + 8..end]);
        buf[pos + 4..pos + 8].copy_from_slice(&crc.to_le_bytes());
        pos = end;
    }
}

fn check_error(error: &StorageError) {
    let _ = error.to_string();
    assert!(
        matches!(
            error,
            StorageError::Corrupt { .. }
                | StorageError::UnsupportedVersion { .. }
                | StorageError::Io { .. }
        ),
        "unexpected error kind: {error:?}"
    );
}

fn check_shape(shape: &RecoveredShape) {
    assert_eq!(shape.meta.handle, HANDLE);
    if shape.meta.snapshot_complete {
        assert_eq!(
            shape.snapshot_chunks.len(),
            shape.meta.snapshot_chunks as usize
        );
    }
    for (offset, _) in &shape.log {
        assert!(offset.is_real(), "virtual offset {offset}");
        assert!(
            offset.tx <= shape.last_txn_lsn,
            "entry {offset} after the last commit"
        );
    }
    for pair in shape.log.windows(2) {
        assert!(pair[0].0 < pair[1].0, "offsets do not increase");
    }
    for pair in shape.chunk_ends().windows(2) {
        assert!(pair[0] < pair[1], "chunk ends do not increase");
    }
    for end in &shape.chunk_ends() {
        assert!(
            shape.log.binary_search_by(|(o, _)| o.cmp(end)).is_ok(),
            "chunk end {end} is no entry"
        );
    }
    let index = std::fs::read(shape.dir.join(INDEX_FILE)).expect("recovery leaves an index");
    let lasts: Vec<LogOffset> = decode_all(&index).iter().map(|e| e.last).collect();
    assert_eq!(
        lasts, shape.chunk_ends(),
        "index disagrees with the chunk ends"
    );
    assert_eq!(index.len(), lasts.len() * 64, "index has trailing bytes");
    check_chunk_data(shape);
}

/// Each closed chunk has two consecutive `chunks.data` records, in chunk order: its entries
/// comma-joined in brackets as served (CHUNK_DATA), then where each entry starts in them
/// (CHUNK_INDEX).
fn check_chunk_data(shape: &RecoveredShape) {

    let file = std::fs::read(shape.dir.join(CHUNK_DATA_FILE)).expect("recovery leaves chunks.data");
    let mut first = 0;
    let mut end_of_records = 0;
    for chunk in &shape.chunks {
        let (end, records) = (&chunk.last, chunk.records);
        let last = shape
            .log
            .binary_search_by(|(o, _)| o.cmp(end))
            .expect("a chunk end is an entry");
        let (bytes, index) = served(&shape.log[first..=last]);
        first = last + 1;
        let (data_pos, index_pos) = records.expect("small chunks are in chunks.data");
        for (pos, kind, payload) in [
            (data_pos, KIND_CHUNK_DATA, &bytes),
            (index_pos, KIND_CHUNK_INDEX, &index),
        ] {
            let at = usize::try_from(pos.record_at).expect("position fits");
            assert_eq!(
                at, end_of_records,
                "chunks.data records are not consecutive"
            );
            match decode(&file, at) {
                Decoded::Record(record, next) => {
                    assert_eq!(record.kind, kind);
                    assert_eq!(LogOffset::new(record.tx, record.op), *end);
                    assert_eq!(
                        record.payload,
                        &payload[..],
                        "chunk {end}: wrong kind {kind}"
                    );
                    assert_eq!(pos.len, payload.len() as u64);
                    end_of_records = next;
                }
                other => panic!("chunk {end}: no record at {at}: {other:?}"),
            }
        }
    }
}

/// A closed chunk as the engine writes it: its entries comma-joined in brackets (the response
/// body for the whole chunk), and its entry index (starts counted from the first entry).
fn served(entries: &[(LogOffset, bytes::Bytes)]) -> (Vec<u8>, Vec<u8>) {
    let mut out = vec![b'['];
    let mut starts = Vec::new();
    for (i, (offset, entry)) in entries.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        starts.push((*offset, u32::try_from(out.len() - 1).expect("small chunks")));
        out.extend_from_slice(entry);
    }
    out.push(b']');
    (out, encode_chunk_index(starts))
}

/// Index in a fully recovered log of the first entry after the last closed chunk.
fn open_from(shape: &RecoveredShape) -> usize {
    shape.chunks.last().map_or(0, |chunk| {
        1 + shape
            .log
            .binary_search_by(|(o, _)| o.cmp(&chunk.last))
            .expect("a chunk end is an entry")
    })
}

/// A lazy recovery of a consistent directory reads the same shape as the full one: the same
/// closed chunks (from the index and `chunks.data`), and in memory only the open chunk.
fn assert_lazy_agrees(full: &RecoveredShape, lazy: &RecoveredShape) {
    assert_eq!(lazy.trimmed_bytes, 0, "lazy recovery trimmed a recovered shape");
    assert_eq!(full.meta, lazy.meta);
    assert_eq!(full.snapshot_chunks, lazy.snapshot_chunks);
    assert_eq!(full.chunks, lazy.chunks);
    assert_eq!(full.log[open_from(full)..], lazy.log[..], "open chunk");
    assert_eq!(full.last_txn_lsn, lazy.last_txn_lsn);
}

/// What a lazy recovery of arbitrary files promises: increasing offsets within the last
/// commit, entries after the closed chunks, an index on disk naming those chunks.
fn check_lazy(shape: &RecoveredShape) {
    assert_eq!(shape.meta.handle, HANDLE);
    for pair in shape.log.windows(2) {
        assert!(pair[0].0 < pair[1].0, "offsets do not increase");
    }
    for (offset, _) in &shape.log {
        assert!(offset.is_real() && offset.tx <= shape.last_txn_lsn, "entry {offset}");
    }
    let ends = shape.chunk_ends();
    for pair in ends.windows(2) {
        assert!(pair[0] < pair[1], "chunk ends do not increase");
    }
    let all_on_disk = shape.chunks.iter().all(|c| c.records.is_some());
    if let (Some(end), Some((first, _)), true) = (ends.last(), shape.log.first(), all_on_disk) {
        assert!(first > end, "open entry {first} before chunk end {end}");
    }
    let index = std::fs::read(shape.dir.join(INDEX_FILE)).expect("recovery leaves an index");
    let lasts: Vec<LogOffset> = decode_all(&index).iter().map(|e| e.last).collect();
    assert_eq!(lasts, ends, "index disagrees with the chunk ends");
}

fn assert_same(first: &RecoveredShape, second: &RecoveredShape) {
    assert_eq!(first.meta, second.meta);
    assert_eq!(first.snapshot_chunks, second.snapshot_chunks);
    assert_eq!(first.log, second.log);
    assert_eq!(first.chunks, second.chunks);
    assert_eq!(first.last_txn_lsn, second.last_txn_lsn);
}

/// Continues the recovered shape as the engine does after a restart, then recovers it again.
fn append_and_recover(dir: &Path, shape: &RecoveredShape) {
    let lsn = shape.last_txn_lsn + 1;
    let offset = LogOffset::new(lsn, 0);
    let mut store = shape
        .open_store(StoreOptions::default())
        .expect("a recovered shape reopens");
    store
        .append_txn([(offset, &b"{}"[..])], lsn)
        .expect("append to a recovered shape");
    // The chunk that closes is the open one (the entries after the last chunk end) plus it.
    let open_from = open_from(shape);
    let mut chunk = shape.log[open_from..].to_vec();
    chunk.push((offset, bytes::Bytes::from_static(b"{}")));
    let (bytes, index) = served(&chunk);
    store.close_chunk(offset, &bytes, &index);
    store.flush().expect("flush");
    drop(store);
    let after = recover_shape(dir).expect("an appended shape recovers");
    assert_eq!(after.trimmed_bytes, 0, "the append left a torn tail");
    check_shape(&after);
    assert_eq!(after.log.len(), shape.log.len() + 1);
    assert_eq!(after.log[..shape.log.len()], shape.log[..]);
    assert_eq!(
        after.log.last().map(|(o, p)| (*o, &p[..])),
        Some((offset, &b"{}"[..]))
    );
    assert_eq!(after.chunks.len(), shape.chunks.len() + 1);
    assert_eq!(after.chunks.last().map(|c| c.last), Some(offset));
    assert_eq!(after.last_txn_lsn, lsn);
}
