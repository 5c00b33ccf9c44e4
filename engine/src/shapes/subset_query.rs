//! The query behind a subset snapshot (§2.6): in its own `REPEATABLE READ READ ONLY`
//! transaction, record `pg_current_snapshot()` and `pg_current_wal_lsn()`, then copy
//! `SELECT … WHERE (<shape where>) AND (<subset where>) ORDER BY … LIMIT … OFFSET …` in COPY
//! text form, encoding each row exactly as the shape's snapshot rows are (see `snapshot`), plus
//! the `snapshot_mark` header.
//!
//! The result is held in memory until the response is sent (as upstream does), so it is
//! bounded by [`SUBSET_BYTES_MAX`].

use super::def::ShapeDef;
use super::snapshot::{filtered_select, RowEncoder, SnapshotError};
use crate::pg::{Connection, PgError};
use protocol::subset::{push_row_with_mark, SnapshotMetadata, Subset};

/// Largest encoded result of one subset request; past it the request fails (add a `limit`).
pub const SUBSET_BYTES_MAX: usize = 256 * 1024 * 1024;

/// Errors of a subset query.
#[derive(Debug, thiserror::Error)]
pub enum SubsetQueryError {
    /// From Postgres; `code()` tells a bad value in `where` (class 22) from an outage.
    #[error("{0}")]
    Pg(#[from] PgError),
    #[error("the subset result is larger than {SUBSET_BYTES_MAX} bytes")]
    TooLarge,
    #[error("{0}")]
    Snapshot(#[from] SnapshotError),
}

/// Encodes a subset's rows as its shape's snapshot rows are, with the SELECT it reads.
enum Encoder {
    Plain(RowEncoder, String),
    Sub(super::subquery_sql::SubRows, String),
}

/// The rows as a JSON array (`[row,row,…]`) and where the snapshot stands.
pub struct SubsetRows {
    pub metadata: SnapshotMetadata,
    pub data: Vec<u8>,
    pub rows: u64,
}

/// Runs the subset query on `conn`, which must have the display settings applied. On error
/// the transaction is rolled back; the connection stays usable unless the error says it broke.
pub async fn run(
    conn: &mut Connection,
    def: &ShapeDef,
    subset: &Subset,
    mark: u32,
    tags: Option<(std::rc::Rc<str>, String)>,
) -> Result<SubsetRows, SubsetQueryError> {
    assert!(mark < 1 << 31, "snapshot marks are 31-bit, as upstream's");
    conn.execute(super::snapshot::begin_snapshot_sql()).await?;
    let result = run_in_txn(conn, def, subset, mark, tags).await;
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    conn.execute(end).await?;
    result
}

async fn run_in_txn(
    conn: &mut Connection,
    def: &ShapeDef,
    subset: &Subset,
    mark: u32,
    tags: Option<(std::rc::Rc<str>, String)>,
) -> Result<SubsetRows, SubsetQueryError> {
    let (snapshot, lsn) = super::snapshot::snapshot_position(conn).await?;
    // A subquery shape's rows carry `tags` and `active_conditions`, as its snapshot rows.
    let mut encoder = match (def.subquery.as_deref(), tags) {
        (Some(sub), Some((stack, handle))) => {
            let select = super::subquery_sql::select_with(def, sub, subset.where_sql.as_deref());
            Encoder::Sub(
                super::subquery_sql::SubRows::new(def, &select, stack, handle, false),
                select.sql,
            )
        }
        _ => {
            let (select, needed) = filtered_select(def, subset.where_sql.as_deref());
            Encoder::Plain(RowEncoder::new(def, needed), select)
        }
    };
    let select = match &encoder {
        Encoder::Sub(_, sql) | Encoder::Plain(_, sql) => sql.clone(),
    };
    let copy = format!("COPY ({select}{}) TO STDOUT", subset.tail_sql());
    let mut data = Vec::with_capacity(4096);
    data.push(b'[');
    let mut rows = 0u64;
    let copied = conn
        .copy_out(&copy, |row: &[u8]| -> Result<(), SubsetQueryError> {
            let json = match &mut encoder {
                Encoder::Sub(e, _) => e.encode(row)?,
                Encoder::Plain(e, _) => e.encode(row)?,
            };
            if data.len() + json.len() + 32 > SUBSET_BYTES_MAX {
                return Err(SubsetQueryError::TooLarge);
            }
            if rows > 0 {
                data.push(b',');
            }
            push_row_with_mark(&mut data, json, mark);
            rows += 1;
            Ok(())
        })
        .await;
    match copied {
        Ok(_) => {}
        // The callback's own error, passed through COPY as a boxed error.
        Err(PgError::Callback(e)) => {
            return Err(match e.downcast::<SubsetQueryError>() {
                Ok(own) => *own,
                Err(other) => {
                    SubsetQueryError::Snapshot(SnapshotError::Protocol(other.to_string()))
                }
            })
        }
        Err(e) => return Err(e.into()),
    }
    data.push(b']');
    let metadata = SnapshotMetadata {
        xmin: snapshot.xmin,
        xmax: snapshot.xmax,
        xip_list: snapshot.xip,
        snapshot_mark: mark,
        database_lsn: lsn,
    };
    Ok(SubsetRows {
        metadata,
        data,
        rows,
    })
}
