//! `meta.rkyv`: what a shape is (definition, handle) and how far its snapshot got, archived
//! with rkyv so start-up reads it with one validation pass instead of parsing.
//!
//! ```text
//! offset size  field
//!      0    8  magic "AMPMETA\0"
//!      8    4  format version (u32 LE); checked before anything else
//!     12    4  archive length N (u32 LE)
//!     16    N  rkyv 0.8 archive of ShapeMeta (16-byte aligned in the file)
//!   16+N    4  CRC-32C (u32 LE) of bytes 0..16+N
//! ```
//!
//! The file is only ever replaced whole (temporary file + rename), never edited in place.

use super::error::StorageError;
use super::FORMAT_VERSION;
use rkyv::rancor;
use rkyv::util::AlignedVec;
use std::path::Path;

pub const META_MAGIC: [u8; 8] = *b"AMPMETA\0";
const META_HEADER: usize = 16;
/// Metadata is a definition and an xid list: far below this, checked before reading.
pub const MAX_META_BYTES: u64 = 16 << 20;

/// The shape definition as the engine resolved it (enough to rebuild `ShapeDef` and to match
/// a request to the shape again after a restart).
#[derive(Debug, Clone, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct DefinitionRecord {
    pub schema: String,
    pub table: String,
    pub table_oid: u32,
    pub columns: Vec<String>,
    pub where_clause: Option<String>,
    pub params: Vec<String>,
    /// The engine's own encoding of `replica=` (storage does not interpret it).
    pub replica: u8,
    /// The engine's own encoding of `log=` (storage does not interpret it).
    pub log_mode: u8,
    /// The table's columns when the shape was created (empty in version 1 files): a shape
    /// loaded after its table changed is not served (a type change rewrites rows without
    /// replicating them).
    pub table_columns: Vec<TableColumnRecord>,
}

/// One column of the shape's table: its name and type OID.
#[derive(Debug, Clone, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct TableColumnRecord {
    pub name: String,
    pub type_oid: u32,
}

/// Version 1 of the archive: without `table_columns`. Read, never written (serialized by tests).
mod v1 {
    #[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
    pub struct DefinitionRecord {
        pub schema: String,
        pub table: String,
        pub table_oid: u32,
        pub columns: Vec<String>,
        pub where_clause: Option<String>,
        pub params: Vec<String>,
        pub replica: u8,
        pub log_mode: u8,
    }

    #[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
    pub struct ShapeMeta {
        pub format_version: u32,
        pub handle: String,
        pub definition: DefinitionRecord,
        pub snapshot: Option<super::SnapshotRecord>,
        pub snapshot_complete: bool,
        pub snapshot_chunks: u32,
    }

    impl From<ShapeMeta> for super::ShapeMeta {
        fn from(m: ShapeMeta) -> Self {
            let d = m.definition;
            super::ShapeMeta {
                format_version: super::FORMAT_VERSION,
                handle: m.handle,
                definition: super::DefinitionRecord {
                    schema: d.schema,
                    table: d.table,
                    table_oid: d.table_oid,
                    columns: d.columns,
                    where_clause: d.where_clause,
                    params: d.params,
                    replica: d.replica,
                    log_mode: d.log_mode,
                    table_columns: Vec::new(),
                },
                snapshot: m.snapshot,
                snapshot_complete: m.snapshot_complete,
                snapshot_chunks: m.snapshot_chunks,
            }
        }
    }
}

/// `pg_current_snapshot()` of the snapshot transaction.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct SnapshotRecord {
    pub xmin: u64,
    pub xmax: u64,
    pub xip: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct ShapeMeta {
    pub format_version: u32,
    pub handle: String,
    pub definition: DefinitionRecord,
    pub snapshot: Option<SnapshotRecord>,
    /// Every snapshot chunk is in `snapshot.data` and the real log may follow.
    pub snapshot_complete: bool,
    /// Number of snapshot chunks when complete (0 before).
    pub snapshot_chunks: u32,
}

impl ShapeMeta {
    /// Metadata of a new shape whose snapshot has not started.
    pub fn new(handle: String, definition: DefinitionRecord) -> Self {
        ShapeMeta {
            format_version: FORMAT_VERSION,
            handle,
            definition,
            snapshot: None,
            snapshot_complete: false,
            snapshot_chunks: 0,
        }
    }
}

/// Serializes `meta` into the file format above.
pub fn encode(meta: &ShapeMeta) -> Vec<u8> {
    assert_eq!(
        meta.format_version, FORMAT_VERSION,
        "only the current format is written"
    );
    // Serializing plain strings and vectors into memory cannot fail.
    let archive = rkyv::to_bytes::<rancor::Error>(meta).expect("in-memory rkyv serialization");
    let mut out = Vec::with_capacity(META_HEADER + archive.len() + 4);
    out.extend_from_slice(&META_MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(archive.len() as u32).to_le_bytes());
    out.extend_from_slice(&archive);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Validates and decodes a `meta.rkyv` image read from `file`.
pub fn decode(file: &Path, bytes: &[u8]) -> Result<ShapeMeta, StorageError> {
    let corrupt = |offset: usize, what: &str| StorageError::corrupt(file, offset as u64, what);
    if bytes.len() < META_HEADER + 4 {
        return Err(corrupt(bytes.len(), "metadata file too short"));
    }
    if bytes[0..8] != META_MAGIC {
        return Err(corrupt(0, "bad metadata magic"));
    }
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if version != FORMAT_VERSION && version != 1 {
        return Err(StorageError::UnsupportedVersion {
            file: file.to_path_buf(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let len = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]) as usize;
    if bytes.len() - META_HEADER - 4 != len {
        return Err(corrupt(12, "metadata length does not match the file size"));
    }
    let body_end = META_HEADER + len;
    let stored = u32::from_le_bytes([
        bytes[body_end],
        bytes[body_end + 1],
        bytes[body_end + 2],
        bytes[body_end + 3],
    ]);
    if crc32c::crc32c(&bytes[..body_end]) != stored {
        return Err(corrupt(body_end, "metadata checksum mismatch"));
    }
    // rkyv needs the archive aligned; a Vec<u8> read from a file is not guaranteed to be.
    let mut aligned = AlignedVec::<16>::with_capacity(len);
    aligned.extend_from_slice(&bytes[META_HEADER..body_end]);
    let invalid =
        |e: rancor::Error| corrupt(META_HEADER, &format!("invalid metadata archive: {e}"));
    let undecodable =
        |e: rancor::Error| corrupt(META_HEADER, &format!("undecodable metadata archive: {e}"));
    let (archived_version, meta) = if version == 1 {
        let archived =
            rkyv::access::<v1::ArchivedShapeMeta, rancor::Error>(&aligned).map_err(invalid)?;
        let old =
            rkyv::deserialize::<v1::ShapeMeta, rancor::Error>(archived).map_err(undecodable)?;
        (old.format_version, ShapeMeta::from(old))
    } else {
        let archived =
            rkyv::access::<ArchivedShapeMeta, rancor::Error>(&aligned).map_err(invalid)?;
        let meta = rkyv::deserialize::<ShapeMeta, rancor::Error>(archived).map_err(undecodable)?;
        (meta.format_version, meta)
    };
    if archived_version != version {
        return Err(corrupt(
            META_HEADER,
            "archived format version differs from the header",
        ));
    }
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ShapeMeta {
        let mut m = ShapeMeta::new(
            "3833821-1721812114261".into(),
            DefinitionRecord {
                schema: "public".into(),
                table: "items".into(),
                table_oid: 16384,
                columns: vec!["id".into(), "name".into()],
                where_clause: Some("id > $1".into()),
                params: vec!["5".into()],
                replica: 1,
                log_mode: 0,
                table_columns: vec![
                    TableColumnRecord {
                        name: "id".into(),
                        type_oid: 23,
                    },
                    TableColumnRecord {
                        name: "name".into(),
                        type_oid: 25,
                    },
                ],
            },
        );
        m.snapshot = Some(SnapshotRecord {
            xmin: 10,
            xmax: 12,
            xip: vec![11],
        });
        m.snapshot_complete = true;
        m.snapshot_chunks = 3;
        m
    }

    #[test]
    fn round_trip() {
        let m = sample();
        let bytes = encode(&m);
        assert_eq!(decode(Path::new("m"), &bytes).unwrap(), m);
    }

    #[test]
    fn every_bit_flip_and_truncation_is_an_error() {
        let bytes = encode(&sample());
        for bit in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(decode(Path::new("m"), &b).is_err(), "bit {bit}");
        }
        for cut in 0..bytes.len() {
            assert!(decode(Path::new("m"), &bytes[..cut]).is_err(), "cut {cut}");
        }
    }

    #[test]
    fn version_1_files_are_read_without_table_columns() {
        let m = sample();
        let d = &m.definition;
        let old = v1::ShapeMeta {
            format_version: 1,
            handle: m.handle.clone(),
            definition: v1::DefinitionRecord {
                schema: d.schema.clone(),
                table: d.table.clone(),
                table_oid: d.table_oid,
                columns: d.columns.clone(),
                where_clause: d.where_clause.clone(),
                params: d.params.clone(),
                replica: d.replica,
                log_mode: d.log_mode,
            },
            snapshot: m.snapshot.clone(),
            snapshot_complete: m.snapshot_complete,
            snapshot_chunks: m.snapshot_chunks,
        };
        let archive = rkyv::to_bytes::<rancor::Error>(&old).unwrap();
        let mut bytes = META_MAGIC.to_vec();
        bytes.extend_from_slice(&1u32.to_le_bytes());
        bytes.extend_from_slice(&(archive.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&archive);
        let crc = crc32c::crc32c(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        let mut want = m.clone();
        want.definition.table_columns.clear();
        assert_eq!(decode(Path::new("m"), &bytes).unwrap(), want);
    }

    #[test]
    fn other_versions_are_refused() {
        let mut bytes = encode(&sample());
        bytes[8] = 3;
        assert!(matches!(
            decode(Path::new("m"), &bytes),
            Err(StorageError::UnsupportedVersion { found: 3, .. })
        ));
    }
}
