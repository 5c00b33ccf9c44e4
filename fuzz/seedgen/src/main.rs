//! Writes the seed corpus of every fuzz target (`fuzz/corpus/<target>/seed-*`): for the
//! storage targets, real shape directories written by the engine's own `ShapeStore` (clean,
//! torn, multi-segment, incomplete snapshot); for the replication targets, messages written by
//! `pgwire`'s encoder; for the text targets, requests and clauses as clients send them (see
//! `text`). Each is packed in its target's input layout.
//!
//! Usage: `cd fuzz/seedgen && cargo run --release -- ../corpus` (rewrites the `seed-*` files).

mod text;
mod wire;

use std::path::{Path, PathBuf};

use engine::storage::layout::{self, CHUNK_DATA_FILE, INDEX_FILE, META_FILE, SNAPSHOT_FILE};
use engine::storage::record::encode_chunk_index;
use engine::storage::{DefinitionRecord, ShapeMeta, ShapeStore, SnapshotRecord, StoreOptions};
use protocol::offset::LogOffset;

/// The handle the `storage_recover` target lays its directory out for.
const HANDLE: &str = "ab-1";

/// File ids of the `storage_recover` input layout.
const META_ID: u8 = 0;
const SNAPSHOT_ID: u8 = 1;
const INDEX_ID: u8 = 2;
const META_TMP_ID: u8 = 3;
const FIRST_LOG_ID: u8 = 4;
const CHUNK_DATA_ID: u8 = 9;

/// A shape directory's files, by the `storage_recover` file ids.
type Files = [(u8, Vec<u8>)];

/// Flags of the `storage_recover` input layout.
const COMPLETE: u8 = 1;
const FIX_CHECKSUMS: u8 = 2;
const SCAN: u8 = 4;
const APPEND: u8 = 8;

fn main() {
    let corpus = PathBuf::from(
        std::env::args()
            .nth(1)
            .expect("usage: seedgen <corpus dir>"),
    );
    text::http_head(&corpus);
    text::shape_query(&corpus);
    text::subset_body(&corpus);
    text::where_clause(&corpus);
    wire::pgoutput_decode(&corpus);
    wire::backend_frame(&corpus);
    storage(&corpus);
}

/// `storage_recover` and `storage_record`.
fn storage(corpus: &Path) {
    let scratch = std::env::temp_dir().join(format!("ampere-seedgen-{}", std::process::id()));
    let clean = written(
        &scratch.join("clean"),
        StoreOptions::default(),
        clean_history,
    );
    let incomplete = written(
        &scratch.join("incomplete"),
        StoreOptions::default(),
        |store| {
            store.append_snapshot_chunk(&row(1)).expect("append");
        },
    );
    let small_segments = StoreOptions {
        flush_bytes: 64 << 10,
        segment_bytes: 200,
    };
    let segments = written(&scratch.join("segments"), small_segments, clean_history);
    let empty = written(&scratch.join("empty"), StoreOptions::default(), |store| {
        store
            .finish_snapshot(&snapshot_end(), pg())
            .expect("finish");
    });
    let mut torn = written(&scratch.join("torn"), StoreOptions::default(), |store| {
        clean_history(store);
        let open = LogOffset::new(150, 0);
        store.append_txn([(open, row(9))], 150).expect("append");
    });
    // A crash in the middle of the last write: its record is cut short.
    let log = torn
        .iter_mut()
        .find(|(id, _)| *id == FIRST_LOG_ID)
        .expect("log.0");
    log.1.truncate(log.1.len() - 7);
    // chunks.data is derived: a lost tail (the second chunk cut short) is rebuilt.
    let mut chunk_data_torn = clean.clone();
    let data = chunk_data_torn
        .iter_mut()
        .find(|(id, _)| *id == CHUNK_DATA_ID)
        .expect("chunks.data");
    data.1.truncate(data.1.len() - 5);
    let mut with_tmp = empty.clone();
    with_tmp.push((META_TMP_ID, b"AMPMETA\0 interrupted replacement".to_vec()));

    let recover_dir = corpus.join("storage_recover");
    std::fs::create_dir_all(&recover_dir).expect("corpus directory");
    let recover_seeds: [(&str, u8, u8, &Files); 10] = [
        ("clean", 0, 0, &clean),
        ("clean-append", APPEND, 0, &clean),
        ("clean-scan", SCAN, 0, &clean),
        ("incomplete", 0, 0, &incomplete),
        ("segments-append", APPEND, 0, &segments),
        ("torn", APPEND, 0, &torn),
        ("empty-fix-checksums", FIX_CHECKSUMS, 0, &empty),
        ("meta-tmp", 0, 0, &with_tmp),
        ("chunk-data-torn", APPEND, 0, &chunk_data_torn),
        // No meta section: the target generates the metadata (complete, 1 chunk).
        (
            "generated-meta",
            COMPLETE | APPEND,
            1,
            &without_meta(&empty),
        ),
    ];
    for (name, flags, chunks, files) in recover_seeds {
        let mut input = vec![flags, chunks];
        for (id, bytes) in files {
            let len = u16::try_from(bytes.len()).expect("seed files stay small");
            input.push(*id);
            input.extend_from_slice(&len.to_be_bytes());
            input.extend_from_slice(bytes);
        }
        write(&recover_dir, name, &input);
    }

    let record_dir = corpus.join("storage_record");
    std::fs::create_dir_all(&record_dir).expect("corpus directory");
    let file = |files: &[(u8, Vec<u8>)], id: u8| {
        files
            .iter()
            .find(|(i, _)| *i == id)
            .expect("file")
            .1
            .clone()
    };
    let record_seeds = [
        ("log", 0u8, file(&clean, FIRST_LOG_ID)),
        ("log-fix-checksums", 1, file(&segments, FIRST_LOG_ID + 1)),
        ("snapshot", 0, file(&clean, SNAPSHOT_ID)),
        ("torn-log", 0, file(&torn, FIRST_LOG_ID)),
        ("chunk-data", 0, file(&clean, CHUNK_DATA_ID)),
        // A CHUNK_INDEX payload on its own (the target also searches the input as one).
        (
            "chunk-index",
            0,
            encode_chunk_index([
                (LogOffset::new(100, 0), 0),
                (LogOffset::new(100, 2), 130),
                (LogOffset::new(120, 0), 260),
            ]),
        ),
    ];
    for (name, flags, bytes) in record_seeds {
        let mut input = vec![flags];
        input.extend_from_slice(&bytes);
        write(&record_dir, name, &input);
    }
    std::fs::remove_dir_all(&scratch).expect("remove the scratch directory");
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("write a seed");
}

/// Two snapshot chunks, then transactions (one empty) with a chunk closed between two of
/// them and one inside a transaction.
fn clean_history(store: &mut ShapeStore) {
    store.append_snapshot_chunk(&row(1)).expect("append");
    let mut last = row(2);
    last.push(b',');
    last.extend_from_slice(&snapshot_end());
    store.finish_snapshot(&last, pg()).expect("finish");
    let at = LogOffset::new;
    store
        .append_txn([(at(100, 0), row(3)), (at(100, 2), row(4))], 100)
        .expect("append");
    store
        .append_txn([(at(120, 0), row(5))], 120)
        .expect("append");
    close(
        store,
        &[
            (at(100, 0), row(3)),
            (at(100, 2), row(4)),
            (at(120, 0), row(5)),
        ],
    );
    store
        .append_txn(Vec::<(LogOffset, Vec<u8>)>::new(), 130)
        .expect("append");
    store
        .append_txn(
            [
                (at(140, 0), row(6)),
                (at(140, 2), row(7)),
                (at(140, 4), row(8)),
            ],
            140,
        )
        .expect("append");
    close(store, &[(at(140, 0), row(6)), (at(140, 2), row(7))]);
}

/// Creates shape `HANDLE` under `root`, runs `build`, syncs, and returns its files by the
/// target's file ids.
fn written(
    root: &Path,
    opts: StoreOptions,
    build: impl FnOnce(&mut ShapeStore),
) -> Vec<(u8, Vec<u8>)> {
    let mut store = ShapeStore::create_with(root, &meta(), opts).expect("create the shape");
    build(&mut store);
    store.sync().expect("sync");
    drop(store);
    let dir = layout::shape_dir(root, HANDLE);
    let mut files = vec![
        (META_ID, std::fs::read(dir.join(META_FILE)).expect("meta")),
        (
            SNAPSHOT_ID,
            std::fs::read(dir.join(SNAPSHOT_FILE)).expect("snapshot"),
        ),
        (
            INDEX_ID,
            std::fs::read(dir.join(INDEX_FILE)).expect("index"),
        ),
    ];
    files.push((
        CHUNK_DATA_ID,
        std::fs::read(dir.join(CHUNK_DATA_FILE)).expect("chunks.data"),
    ));
    for n in 0..4 {
        match std::fs::read(dir.join(layout::segment_name(n))) {
            Ok(bytes) => files.push((FIRST_LOG_ID + n as u8, bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
            Err(e) => panic!("read log.{n}: {e}"),
        }
    }
    files
}

fn without_meta(files: &[(u8, Vec<u8>)]) -> Vec<(u8, Vec<u8>)> {
    files
        .iter()
        .filter(|(id, _)| *id != META_ID && *id != INDEX_ID)
        .cloned()
        .collect()
}

fn meta() -> ShapeMeta {
    ShapeMeta::new(
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
    )
}

fn pg() -> SnapshotRecord {
    SnapshotRecord {
        xmin: 740,
        xmax: 745,
        xip: vec![741, 743],
    }
}

/// Closes the chunk of `entries` (those after the previous chunk end) as the engine does: its
/// entries comma-joined as served, and where each starts in them.
fn close(store: &mut ShapeStore, entries: &[(LogOffset, Vec<u8>)]) {
    let mut bytes = Vec::new();
    let mut starts = Vec::new();
    for (offset, entry) in entries {
        if !bytes.is_empty() {
            bytes.push(b',');
        }
        starts.push((*offset, bytes.len() as u32));
        bytes.extend_from_slice(entry);
    }
    let last = entries.last().expect("a chunk has entries").0;
    store.close_chunk(last, &bytes, &encode_chunk_index(starts));
}

/// A log entry as the engine encodes it.
fn row(id: u32) -> Vec<u8> {
    format!(
        r#"{{"key":"\"public\".\"items\"/\"{id}\"","value":{{"id":"{id}","title":"item {id}"}},"headers":{{"operation":"insert","relation":["public","items"]}}}}"#
    )
    .into_bytes()
}

fn snapshot_end() -> Vec<u8> {
    br#"{"headers":{"control":"snapshot-end","xmin":"740","xmax":"745","xip_list":["741","743"]}}"#
        .to_vec()
}
