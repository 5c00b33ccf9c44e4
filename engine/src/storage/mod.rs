//! Durable shape logs: the on-disk format under `ELECTRIC_STORAGE_DIR` and its recovery.
//!
//! Each shape owns `<storage>/shapes/<h[0..2]>/<handle>/`:
//! - `meta.rkyv`: definition, handle, xid snapshot, snapshot progress ([`meta`]);
//! - `snapshot.data`: the snapshot chunks, one checksummed record each;
//! - `log.<n>`: append-only segments of checksummed records: entries, commit markers (end of a
//!   transaction) and chunk ends ([`record`]);
//! - `chunks.idx`: fixed-size checksummed entries locating each closed chunk ([`chunk_index`]);
//! - `cut.bin` (subquery shapes): how far the log may be recovered, and what is true there
//!   ([`log_cut`]).
//!
//! Writing is synchronous `std::fs` into buffers ([`ShapeStore`]); the blocking fsync work is
//! a separate [`SyncJob`] value so it can run on a helper thread. [`scan`] recovers every shape
//! at start-up. `docs/storage-format.md` describes the format byte by byte.

pub mod chunk_cache;
pub mod chunk_index;
mod error;
pub mod fd_cache;
mod fsio;
pub mod layout;
pub mod lock;
pub mod log_cut;
pub mod meta;
pub mod record;
mod recover;
mod scan;
mod store;
mod sync;

pub use error::StorageError;
pub use fsio::{fsync_dir, replace_file, sync_filesystem, PendingWrite};
pub use lock::{LockError, StorageLock};
pub use meta::{DefinitionRecord, ShapeMeta, SnapshotRecord, TableColumnRecord};
pub use recover::{
    read_shape_meta, recover_shape, recover_shape_lazy, RecoveredChunk, RecoveredShape,
};
pub use scan::{list_stored, scan, scan_with_threads, ScanFailure, ScanResult, StoredShape};
pub use store::{remove_shape_dir, ResumePoint, ShapeStore, StoreOptions};
pub use sync::{SyncJob, SyncPoint};

/// Version of every file in a shape directory, stored in `meta.rkyv`. Version 2 added the
/// table's columns to the metadata; version 1 files are still read (without them). A build
/// refuses other versions ([`StorageError::UnsupportedVersion`]).
pub const FORMAT_VERSION: u32 = 2;
