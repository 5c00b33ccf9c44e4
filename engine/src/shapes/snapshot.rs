//! The initial snapshot of a shape: a `REPEATABLE READ READ ONLY` transaction records
//! `pg_current_snapshot()` (to classify replicated transactions by xid) and streams the rows with
//! `COPY (SELECT …) TO STDOUT` in text format. Ampere decodes COPY text itself and writes each
//! row's JSON once, straight into the shape's log.
//!
//! Why COPY text rather than JSON built in SQL (upstream's way): the server does less work per
//! row (no string concatenation and `to_json` per column), the wire carries about half the
//! bytes, and the values are exactly the type output functions' text, the same form pgoutput
//! sends for replicated changes. The measurement is in `docs/benchmarks/snapshot.md`.

use super::def::ShapeDef;
use super::shape::PgSnapshot;
use crate::pg::{Connection, PgError};
use protocol::ident::quote_ident;
use protocol::message::Operation;

/// Errors of the snapshot; `Pg` carries the SQLSTATE for the 409-vs-503 decision.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{0}")]
    Pg(#[from] PgError),
    #[error("malformed COPY row: {0}")]
    Copy(&'static str),
    #[error("unexpected snapshot result: {0}")]
    Protocol(String),
    /// One error shared by every shape of a failed shared snapshot (`app::snapshot_batch`).
    #[error("{0}")]
    Shared(std::sync::Arc<SnapshotError>),
}

/// What a client is told about a failed snapshot (`docs/error-handling.md`: no internal
/// details such as addresses or I/O errors in bodies; those are logged).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapshotFailure {
    /// The connection could not be made or broke: 503 `database_unreachable`.
    Unreachable,
    /// Postgres refused the query: its own message (e.g. a permission or a lock timeout).
    Refused(String),
    /// Anything else (a result Ampere could not read): a generic message.
    Failed,
}

impl SnapshotError {
    pub fn failure(&self) -> SnapshotFailure {
        match self {
            Self::Shared(e) => e.failure(),
            // Connection exceptions (08), operator intervention (57P: shutdown, crash recovery,
            // "cannot connect now"), refused logins (28: the message names the role),
            // insufficient resources (53: too many clients) and a missing database (3D000):
            // the database cannot be used right now, it is not refusing this query.
            Self::Pg(PgError::Db(fields))
                if ["08", "57P", "28", "53", "3D000"]
                    .iter()
                    .any(|c| fields.code.starts_with(c)) =>
            {
                SnapshotFailure::Unreachable
            }
            // Written for the user: the statement to run (manual publishing).
            Self::Pg(PgError::Misconfigured(fix)) => SnapshotFailure::Refused(fix.clone()),
            Self::Pg(PgError::Db(fields)) => SnapshotFailure::Refused(fields.message.clone()),
            Self::Pg(
                PgError::Io(_)
                | PgError::Closed
                | PgError::StreamEnded
                | PgError::Timeout(_)
                | PgError::Tls(_)
                | PgError::Auth(_)
                | PgError::Config(_)
                | PgError::Protocol(_),
            ) => SnapshotFailure::Unreachable,
            Self::Pg(_) | Self::Copy(_) | Self::Protocol(_) => SnapshotFailure::Failed,
        }
    }
}

/// The SELECT the snapshot copies: the needed columns (selected ∪ key), in table order.
pub fn snapshot_select(def: &ShapeDef) -> (String, Vec<usize>) {
    filtered_select(def, None)
}

/// [`snapshot_select`] with an extra condition ANDed to the shape's own (a subset's `where`,
/// already rendered as canonical SQL).
pub fn filtered_select(def: &ShapeDef, extra_where: Option<&str>) -> (String, Vec<usize>) {
    let (cols, needed) = select_list(def);
    (select_from(def, &cols, extra_where), needed)
}

/// The columns a snapshot row needs (selected ∪ key, in table order) as a SELECT list.
pub fn select_list(def: &ShapeDef) -> (String, Vec<usize>) {
    let mut needed: Vec<usize> = def.selected.clone();
    for k in &def.key_cols {
        if !needed.contains(k) {
            needed.push(*k);
        }
    }
    needed.sort_unstable();
    let cols: Vec<String> = needed.iter().map(|&i| column_expr(&def.table, i)).collect();
    (cols.join(", "), needed)
}

/// `SELECT <cols> FROM <table>` with the shape's WHERE and `extra_where` ANDed.
pub fn select_from(def: &ShapeDef, cols: &str, extra_where: Option<&str>) -> String {
    let mut sql = format!("SELECT {cols} FROM {}", def.table.quoted());
    match (def.where_sql.as_deref(), extra_where) {
        (None, None) => {}
        (Some(w), None) | (None, Some(w)) => {
            sql.push_str(" WHERE ");
            sql.push_str(w);
        }
        (Some(shape_where), Some(extra)) => {
            sql.push_str(&format!(" WHERE ({shape_where}) AND ({extra})"));
        }
    }
    sql
}

/// Opens a snapshot transaction with the display settings (`ingest::setup::DISPLAY_SETTINGS`)
/// set for it alone, in the same round trip: behind a pooler in transaction mode
/// (`ELECTRIC_POOLED_DATABASE_URL`) the session's own settings may belong to another client's
/// server connection, so a snapshot must not rely on them.
pub fn begin_snapshot_sql() -> &'static str {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let mut sql = String::from("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
        for s in crate::ingest::setup::DISPLAY_SETTINGS {
            let local = s
                .strip_prefix("SET ")
                .expect("display settings are SET statements");
            sql.push_str("; SET LOCAL ");
            sql.push_str(local);
        }
        sql
    });
    &SQL
}

/// Runs the snapshot transaction. `on_snapshot` gets the xid snapshot before any row;
/// `on_row` gets each row's JSON. Returns the snapshot and the row count.
/// `tags` names the shape (stack id, handle) whose rows carry subquery tags; `None` for a
/// shape without subqueries.
///
/// `applied`: xids of the transactions the core applied last (`Core::applied_xids`). The
/// shape receives only the transactions after it was registered, so its snapshot must see
/// every one before: see [`begin_seeing`].
pub async fn run(
    conn: &mut Connection,
    def: &ShapeDef,
    tags: Option<(std::rc::Rc<str>, String)>,
    applied: &[u32],
    mut on_row: impl FnMut(&[u8]),
) -> Result<(PgSnapshot, u64), SnapshotError> {
    let (snapshot, _) = begin_seeing(conn, applied).await?;
    let result = run_in_txn(conn, def, snapshot, tags, &mut on_row).await;
    // Ending a read-only transaction cannot lose anything; a failed one must be rolled back
    // before the connection goes back to the pool.
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    conn.execute(end).await?;
    result
}

/// Attempts to start a snapshot again before giving up on seeing every applied xid.
const VISIBILITY_TRIES: u32 = 200;

/// Opens a snapshot transaction ([`begin_snapshot_sql`]) that sees every transaction of
/// `applied` (xids the core applied already): a commit reaches the replication stream a moment
/// before other sessions see it, and a snapshot that missed a transaction the core had already
/// applied would miss it for good. Rare and brief: start again (1 ms apart, at most
/// `VISIBILITY_TRIES` times). Returns the snapshot and its WAL position
/// ([`snapshot_position`]).
pub async fn begin_seeing(
    conn: &mut Connection,
    applied: &[u32],
) -> Result<(PgSnapshot, u64), SnapshotError> {
    let mut tries = 0;
    loop {
        conn.execute(begin_snapshot_sql()).await?;
        let (snapshot, lsn) = snapshot_position(conn).await?;
        if applied.iter().all(|&x| snapshot.visible(x)) || tries >= VISIBILITY_TRIES {
            return Ok((snapshot, lsn));
        }
        tries += 1;
        conn.execute("ROLLBACK").await?;
        monoio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

/// `pg_current_snapshot()` and `pg_current_wal_lsn()` of the running transaction: which
/// transactions it sees, and a WAL position every one of them committed before.
pub async fn snapshot_position(conn: &mut Connection) -> Result<(PgSnapshot, u64), SnapshotError> {
    let res = conn
        .simple_query("SELECT pg_current_snapshot()::text, pg_current_wal_lsn()::text")
        .await?;
    let row = res
        .iter()
        .flat_map(|r| r.rows.iter())
        .next()
        .ok_or_else(|| SnapshotError::Protocol("no pg_current_snapshot() row".into()))?;
    let (Some(text), Some(lsn)) = (row.get(0), row.get(1)) else {
        return Err(SnapshotError::Protocol("NULL snapshot position".into()));
    };
    let snapshot = PgSnapshot::parse(text)
        .ok_or_else(|| SnapshotError::Protocol(format!("bad snapshot {text:?}")))?;
    let lsn: pgwire::types::Lsn = lsn
        .parse()
        .map_err(|e: pgwire::types::ParseLsnError| SnapshotError::Protocol(e.to_string()))?;
    Ok((snapshot, lsn.0))
}

async fn run_in_txn(
    conn: &mut Connection,
    def: &ShapeDef,
    snapshot: PgSnapshot,
    tags: Option<(std::rc::Rc<str>, String)>,
    on_row: &mut impl FnMut(&[u8]),
) -> Result<(PgSnapshot, u64), SnapshotError> {
    if def.log == protocol::request::LogMode::ChangesOnly {
        return Ok((snapshot, 0));
    }
    if let (Some(sub), Some((stack, handle))) = (def.subquery.as_deref(), tags) {
        let select = super::subquery_sql::snapshot_select(def, sub);
        let mut encoder = super::subquery_sql::SubRows::new(def, &select, stack, handle, false);
        let mut rows = 0u64;
        conn.copy_out(
            &format!("COPY ({}) TO STDOUT", select.sql),
            |data: &[u8]| {
                on_row(encoder.encode(data)?);
                rows += 1;
                Ok::<(), SnapshotError>(())
            },
        )
        .await?;
        return Ok((snapshot, rows));
    }
    let rows = copy_rows(conn, def, on_row).await?;
    Ok((snapshot, rows))
}

/// Copies the rows of a shape without subqueries in the transaction open on `conn`, each
/// row's JSON to `on_row`; returns the row count.
pub async fn copy_rows(
    conn: &mut Connection,
    def: &ShapeDef,
    mut on_row: impl FnMut(&[u8]),
) -> Result<u64, SnapshotError> {
    let (select, needed) = snapshot_select(def);
    let copy = format!("COPY ({select}) TO STDOUT");
    let mut encoder = RowEncoder::new(def, needed);
    let mut rows = 0u64;
    conn.copy_out(&copy, |data: &[u8]| -> Result<(), SnapshotError> {
        let json = encoder.encode(data)?;
        on_row(json);
        rows += 1;
        Ok(())
    })
    .await?;
    Ok(rows)
}

/// `SELECT` of every column of `table` in table order, spelled as a shape's own snapshot
/// spells them (booleans as `::text`), and those columns' indexes (all of them).
pub fn whole_table_select(table: &crate::catalog::TableInfo) -> (String, Vec<usize>) {
    let cols: Vec<String> = (0..table.columns.len())
        .map(|i| column_expr(table, i))
        .collect();
    (
        format!("SELECT {} FROM {}", cols.join(", "), table.quoted()),
        (0..table.columns.len()).collect(),
    )
}

/// A column as a snapshot selects it: upstream's snapshot renders values with `::text`, which
/// spells booleans `true`/`false` (their output function, used by COPY and pgoutput, says
/// `t`/`f`).
fn column_expr(table: &crate::catalog::TableInfo, i: usize) -> String {
    let c = &table.columns[i].info;
    let name = quote_ident(&c.name);
    if c.type_name == "bool" && !c.is_array {
        format!("{name}::text")
    } else {
        name
    }
}

/// Decodes COPY text rows and encodes them as insert messages, reusing its buffers.
///
/// Everything that is the same in every row (the key's table prefix, each `"column":` and the
/// headers) is encoded once, here; per row only the values are written, each escaped straight
/// from the COPY field (a field without a backslash escape is not copied first). The output is
/// byte for byte what [`message::encode_change`] writes for the row (checked in the tests).
pub struct RowEncoder {
    /// Number of COPY fields a row has.
    width: usize,
    /// Fields after those (a subquery shape's position booleans and left-side columns), read
    /// with [`RowEncoder::field`].
    extra: usize,
    /// COPY field index of each key column, in key order.
    key_fields: Vec<usize>,
    /// COPY field index of each selected column, in `def.selected` order, and the range of
    /// `fragments` that goes before its value: `"name":` (`,"name":` after the first).
    value_fields: Vec<(usize, std::ops::Range<usize>)>,
    fragments: Vec<u8>,
    /// `{"key":"\"schema\".\"table\"`: the message up to the key's values.
    head: std::ops::Range<usize>,
    /// `},"headers":{"operation":"insert","relation":["schema","table"]}}`.
    tail: std::ops::Range<usize>,
    /// Each field of the current row: where its text is, or `None` for NULL.
    fields: Vec<Option<FieldText>>,
    /// Text of the fields that had backslash escapes, decoded.
    decoded: Vec<u8>,
    out: Vec<u8>,
}

/// Where a field's text is: a range of the row itself, or of the decoded buffer.
#[derive(Clone, Copy, Debug)]
enum FieldText {
    Row(usize, usize),
    Decoded(usize, usize),
}

impl RowEncoder {
    pub fn new(def: &ShapeDef, needed: Vec<usize>) -> Self {
        Self::with_extra(def, needed, 0)
    }

    /// An encoder for rows with `extra` fields after the ones the JSON needs.
    pub fn with_extra(def: &ShapeDef, needed: Vec<usize>, extra: usize) -> Self {
        let field_of = |col: usize| {
            needed
                .iter()
                .position(|&c| c == col)
                .expect("the COPY selects every key and selected column")
        };
        let (schema, table) = (&def.table.schema, &def.table.name);
        let mut fragments = Vec::with_capacity(256);
        fragments.extend_from_slice(b"{\"key\":");
        let mut key_prefix = Vec::new();
        protocol::key::push_row_key(&mut key_prefix, schema, table, &[]);
        protocol::json::push_json_string(&mut fragments, &key_prefix);
        fragments.pop(); // the key string goes on with the values
        let head = 0..fragments.len();
        let mut value_fields = Vec::with_capacity(def.selected.len());
        for (n, &col) in def.selected.iter().enumerate() {
            let start = fragments.len();
            fragments.extend_from_slice(if n == 0 { b"\",\"value\":{" } else { b"," });
            protocol::json::push_json_str(&mut fragments, &def.table.columns[col].info.name);
            fragments.push(b':');
            value_fields.push((field_of(col), start..fragments.len()));
        }
        let start = fragments.len();
        if def.selected.is_empty() {
            fragments.extend_from_slice(b"\",\"value\":{");
        }
        fragments.extend_from_slice(b"},\"headers\":{\"operation\":\"");
        fragments.extend_from_slice(Operation::Insert.as_str().as_bytes());
        fragments.extend_from_slice(b"\",\"relation\":[");
        protocol::json::push_json_str(&mut fragments, schema);
        fragments.push(b',');
        protocol::json::push_json_str(&mut fragments, table);
        fragments.extend_from_slice(b"]}}");
        let tail = start..fragments.len();
        Self {
            width: needed.len(),
            extra,
            key_fields: def.key_cols.iter().map(|&c| field_of(c)).collect(),
            value_fields,
            fragments,
            head,
            tail,
            fields: Vec::with_capacity(needed.len()),
            decoded: Vec::with_capacity(256),
            out: Vec::with_capacity(512),
        }
    }

    /// One COPY data message (one row, ending in `\n`) to one JSON line.
    pub fn encode(&mut self, row: &[u8]) -> Result<&[u8], SnapshotError> {
        let row = row.strip_suffix(b"\n").unwrap_or(row);
        self.split(row)?;
        let out = &mut self.out;
        out.clear();
        out.extend_from_slice(&self.fragments[self.head.clone()]);
        for &field in &self.key_fields {
            match self.fields[field] {
                None => out.extend_from_slice(b"/_"),
                Some(at) => {
                    out.extend_from_slice(b"/\\\"");
                    let text = at.text(row, &self.decoded);
                    protocol::json::push_json_string_body::<true>(out, text);
                    out.extend_from_slice(b"\\\"");
                }
            }
        }
        // The next fragment closes the key string (`","value":{…`).
        for (field, fragment) in &self.value_fields {
            out.extend_from_slice(&self.fragments[fragment.clone()]);
            match self.fields[*field] {
                None => out.extend_from_slice(b"null"),
                Some(at) => {
                    protocol::json::push_json_string(out, at.text(row, &self.decoded));
                }
            }
        }
        out.extend_from_slice(&self.fragments[self.tail.clone()]);
        Ok(out)
    }

    /// Finds the fields of `row` (its final newline removed), decoding the ones with escapes.
    fn split(&mut self, row: &[u8]) -> Result<(), SnapshotError> {
        self.fields.clear();
        self.decoded.clear();
        let mut start = 0;
        loop {
            let mut end = next_tab_or_backslash(row, start);
            let escaped = row.get(end) == Some(&b'\\');
            if escaped {
                end = memchr::memchr(b'\t', &row[end..]).map_or(row.len(), |n| end + n);
            }
            let raw = &row[start..end];
            let field = if !escaped {
                Some(FieldText::Row(start, end))
            } else if raw == b"\\N" {
                None
            } else {
                let from = self.decoded.len();
                decode_copy_field(raw, &mut self.decoded)?;
                Some(FieldText::Decoded(from, self.decoded.len()))
            };
            self.fields.push(field);
            if end == row.len() {
                break;
            }
            start = end + 1;
        }
        if self.fields.len() != self.width + self.extra {
            return Err(SnapshotError::Copy("column count differs from the query"));
        }
        Ok(())
    }

    /// Field `width + i` of the row last encoded (`row` as given to [`RowEncoder::encode`]).
    pub fn field<'a>(&'a self, row: &'a [u8], i: usize) -> Option<&'a [u8]> {
        let row = row.strip_suffix(b"\n").unwrap_or(row);
        self.fields[self.width + i].map(|at| at.text(row, &self.decoded))
    }
}

/// Index of the first tab or backslash at or after `from`, or `row.len()`: eight bytes at a
/// time (fields are short, so this beats a `memchr` call per field).
fn next_tab_or_backslash(row: &[u8], from: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
    // The high bit of each zero byte, exact up to the lowest one.
    let zero_bytes = |w: u64| w.wrapping_sub(ONES) & !w & HIGH_BITS;
    let mut i = from;
    while let Some(chunk) = row.get(i..i + 8) {
        let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        let mask = zero_bytes(word ^ (u64::from(b'\t') * ONES))
            | zero_bytes(word ^ (u64::from(b'\\') * ONES));
        if mask != 0 {
            return i + (mask.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    row[i.min(row.len())..]
        .iter()
        .position(|&b| b == b'\t' || b == b'\\')
        .map_or(row.len(), |n| i + n)
}

impl FieldText {
    fn text<'a>(self, row: &'a [u8], decoded: &'a [u8]) -> &'a [u8] {
        match self {
            Self::Row(s, e) => &row[s..e],
            Self::Decoded(s, e) => &decoded[s..e],
        }
    }
}

/// Splits one COPY text-format row into fields, undoing its backslash escapes into `text`.
/// `\N` is NULL. Postgres emits only `\\ \b \f \n \r \t \v` and `\N`, but octal (`\123`) and hex
/// (`\x41`) escapes are accepted too, as COPY FROM would.
pub fn decode_copy_row(
    row: &[u8],
    text: &mut Vec<u8>,
    fields: &mut Vec<Option<(usize, usize)>>,
) -> Result<(), SnapshotError> {
    text.clear();
    fields.clear();
    let row = row.strip_suffix(b"\n").unwrap_or(row);
    for raw in row.split(|b| *b == b'\t') {
        if raw == b"\\N" {
            fields.push(None);
            continue;
        }
        let start = text.len();
        decode_copy_field(raw, text)?;
        fields.push(Some((start, text.len())));
    }
    Ok(())
}

/// Appends one COPY text field (not `\N`) to `text` with its backslash escapes undone.
fn decode_copy_field(raw: &[u8], text: &mut Vec<u8>) -> Result<(), SnapshotError> {
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b != b'\\' {
            // Copy the run up to the next backslash in one go.
            let run = memchr::memchr(b'\\', &raw[i..]).map_or(raw.len(), |n| i + n);
            text.extend_from_slice(&raw[i..run]);
            i = run;
            continue;
        }
        let c = *raw
            .get(i + 1)
            .ok_or(SnapshotError::Copy("backslash at end of field"))?;
        i += 2;
        let decoded = match c {
            b'b' => 8,
            b'f' => 12,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'v' => 11,
            b'0'..=b'7' => {
                let mut v = u32::from(c - b'0');
                let mut n = 0;
                while n < 2 && i < raw.len() && (b'0'..=b'7').contains(&raw[i]) {
                    v = v * 8 + u32::from(raw[i] - b'0');
                    i += 1;
                    n += 1;
                }
                (v & 0xff) as u8
            }
            b'x' => {
                let mut v = 0u32;
                let mut n = 0;
                while n < 2 && i < raw.len() && raw[i].is_ascii_hexdigit() {
                    v = v * 16 + (raw[i] as char).to_digit(16).unwrap_or(0);
                    i += 1;
                    n += 1;
                }
                if n == 0 {
                    b'x'
                } else {
                    v as u8
                }
            }
            other => other,
        };
        text.push(decoded);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_see_no_internal_details_of_a_failure() {
        let db = |code: &str, message: &str| {
            SnapshotError::Pg(PgError::Db(Box::new(pgwire::frame::PgErrorFields {
                code: code.into(),
                message: message.into(),
                ..Default::default()
            })))
        };
        let io = SnapshotError::Pg(PgError::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "connect to 10.1.2.3:5432",
        )));
        assert_eq!(io.failure(), SnapshotFailure::Unreachable);
        assert_eq!(
            SnapshotError::Shared(std::sync::Arc::new(io)).failure(),
            SnapshotFailure::Unreachable
        );
        let shutdown = db(
            "57P01",
            "terminating connection due to administrator command",
        );
        assert_eq!(shutdown.failure(), SnapshotFailure::Unreachable);
        assert_eq!(
            db("08006", "connection failure").failure(),
            SnapshotFailure::Unreachable
        );
        let denied = db("42501", "permission denied for table t");
        assert_eq!(
            SnapshotError::Shared(std::sync::Arc::new(denied)).failure(),
            SnapshotFailure::Refused("permission denied for table t".into())
        );
        assert_eq!(
            SnapshotError::Copy("a row of another width").failure(),
            SnapshotFailure::Failed
        );
        for code in ["53300", "28P01", "3D000"] {
            assert_eq!(
                db(code, "x").failure(),
                SnapshotFailure::Unreachable,
                "{code}"
            );
        }
        let fix = "run ALTER PUBLICATION p ADD TABLE t";
        assert_eq!(
            SnapshotError::Pg(PgError::Misconfigured(fix.into())).failure(),
            SnapshotFailure::Refused(fix.into())
        );
    }

    fn fields(row: &[u8]) -> Vec<Option<String>> {
        let mut text = Vec::new();
        let mut f = Vec::new();
        decode_copy_row(row, &mut text, &mut f).unwrap();
        f.iter()
            .map(|r| r.map(|(s, e)| String::from_utf8(text[s..e].to_vec()).unwrap()))
            .collect()
    }

    #[test]
    fn copy_text_escapes() {
        assert_eq!(
            fields(b"1\ta\\tb\\nc\t\\N\t\\\\x\t\n"),
            vec![
                Some("1".into()),
                Some("a\tb\nc".into()),
                None,
                Some("\\x".into()),
                Some("".into())
            ]
        );
        assert_eq!(fields(b"\\101\\x42"), vec![Some("AB".into())]);
        let mut t = Vec::new();
        let mut f = Vec::new();
        assert!(decode_copy_row(b"abc\\", &mut t, &mut f).is_err());
    }

    use crate::catalog::{TableColumn, TableInfo};
    use crate::shapes::def::DefParams;
    use proptest::prelude::*;
    use protocol::message::{self, Change as ChangeMessage};
    use std::sync::Arc;

    /// The encoder as it was before fragments were precomputed: COPY decode of the whole row,
    /// then the generic key and message encoders. The reference the fast encoder must match.
    fn reference(def: &ShapeDef, needed: &[usize], row: &[u8]) -> Vec<u8> {
        let mut text = Vec::new();
        let mut fields = Vec::new();
        decode_copy_row(row, &mut text, &mut fields).unwrap();
        let value_of = |col: usize| {
            let pos = needed.iter().position(|&c| c == col).unwrap();
            fields[pos].map(|(s, e)| &text[s..e])
        };
        let key_vals: Vec<Option<&[u8]>> = def.key_cols.iter().map(|&c| value_of(c)).collect();
        let mut key = Vec::new();
        protocol::key::push_row_key(&mut key, &def.table.schema, &def.table.name, &key_vals);
        let value: Vec<(&str, Option<&[u8]>)> = def
            .selected
            .iter()
            .map(|&c| (def.table.columns[c].info.name.as_str(), value_of(c)))
            .collect();
        let mut out = Vec::new();
        message::encode_change(
            &mut out,
            &ChangeMessage {
                op: Operation::Insert,
                key: &key,
                relation: (&def.table.schema, &def.table.name),
                value: &value,
                old_value: None,
                lsn: None,
                op_position: None,
                txid: None,
                last: false,
                key_change_to: None,
                key_change_from: None,
            },
        );
        out
    }

    fn column(name: &str, pk_index: Option<u32>) -> TableColumn {
        TableColumn {
            info: protocol::schema::ColumnInfo {
                name: name.into(),
                type_oid: 25,
                type_name: "text".into(),
                dims: 0,
                is_array: false,
                pk_index,
                not_null: false,
                type_mod: -1,
                type_kind: protocol::schema::TypeKind::Base,
                element_kind: None,
                is_generated: false,
                formatted_type: "text".into(),
            },
            type_oid: 25,
            is_enum: false,
        }
    }

    /// Shapes on tables with awkward names: a composite key in another order than the columns,
    /// a `columns` subset, and a PK-less table (every column is the key, NULLs included).
    fn defs() -> Vec<ShapeDef> {
        let keyed = Arc::new(TableInfo {
            oid: 1,
            schema: "my\"sch/ema.".into(),
            name: "t/a.b\\".into(),
            columns: vec![
                column("k2", Some(1)),
                column("we\"ird/col.\n", None),
                column("k1", Some(0)),
                column("n", None),
            ],
            pk: vec![2, 0],
            generated: Vec::new(),
        });
        let keyless = Arc::new(TableInfo {
            oid: 2,
            schema: "public".into(),
            name: "loose".into(),
            columns: vec![column("z", None), column("a", None)],
            pk: Vec::new(),
            generated: Vec::new(),
        });
        let build = |query: &str, table: &Arc<TableInfo>| {
            let q = protocol::request::parse_shape_query(query).expect("query");
            ShapeDef::build(&DefParams::of_shape(&q).expect("table"), table.clone()).expect("def")
        };
        vec![
            build("table=t&offset=-1", &keyed),
            build("table=t&offset=-1&columns=k1,n,k2", &keyed),
            build("table=loose&offset=-1", &keyless),
        ]
    }

    /// One field's text as COPY writes it, with the escapes COPY uses (and, when `odd`, the
    /// octal and hex forms COPY FROM accepts).
    fn copy_escape(text: &[u8], odd: bool) -> Vec<u8> {
        let mut out = Vec::new();
        for &b in text {
            match b {
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\t' => out.extend_from_slice(b"\\t"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                8 => out.extend_from_slice(b"\\b"),
                12 => out.extend_from_slice(b"\\f"),
                11 => out.extend_from_slice(b"\\v"),
                b'A'..=b'F' if odd => out.extend_from_slice(format!("\\{:o}", b).as_bytes()),
                0x80.. if odd => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
                _ => out.push(b),
            }
        }
        out
    }

    fn field_text() -> impl Strategy<Value = Option<Vec<u8>>> {
        let byte = prop_oneof![
            3 => proptest::sample::select(b"abcDEF019 ".to_vec()),
            2 => proptest::sample::select(b"\"\\/.\t\n\r\x08\x0b\x0c\x01\x1f\x7f_".to_vec()),
            1 => any::<u8>(),
        ];
        prop_oneof![
            1 => Just(None),
            2 => any::<String>().prop_map(|s| Some(s.into_bytes())),
            6 => proptest::collection::vec(byte, 0..40).prop_map(Some),
        ]
    }

    proptest! {
        #[test]
        fn encodes_rows_as_the_generic_encoders_do(
            values in proptest::collection::vec(field_text(), 4),
            odd in any::<bool>(),
            newline in any::<bool>(),
        ) {
            for def in defs() {
                let (_, needed) = snapshot_select(&def);
                let mut row = Vec::new();
                for (n, _) in needed.iter().enumerate() {
                    if n > 0 {
                        row.push(b'\t');
                    }
                    match &values[n] {
                        None => row.extend_from_slice(b"\\N"),
                        Some(text) => row.extend_from_slice(&copy_escape(text, odd)),
                    }
                }
                if newline {
                    row.push(b'\n');
                }
                let mut encoder = RowEncoder::new(&def, needed.clone());
                let fast = encoder.encode(&row).expect("encodes").to_vec();
                let expected = reference(&def, &needed, &row);
                prop_assert_eq!(
                    String::from_utf8_lossy(&fast),
                    String::from_utf8_lossy(&expected)
                );
                prop_assert_eq!(&fast, &expected);
                let _: serde_json::Value = serde_json::from_slice(&fast).expect("valid JSON");
                // The encoder's buffers are reused: a second row gives the same bytes again.
                prop_assert_eq!(encoder.encode(&row).expect("encodes"), &fast[..]);
            }
        }
    }

    #[test]
    fn a_row_with_the_wrong_width_is_refused() {
        let def = &defs()[0];
        let (_, needed) = snapshot_select(def);
        let mut encoder = RowEncoder::new(def, needed);
        assert!(encoder.encode(b"1\t2\t3\n").is_err());
        assert!(encoder.encode(b"1\t2\t3\t4\t5\n").is_err());
        assert!(
            encoder.encode(b"1\t2\t3\t4\\\n").is_err(),
            "backslash at the end"
        );
        let row = encoder.encode(b"1\t\\N\t2\t3\n").expect("encodes").to_vec();
        let value: serde_json::Value = serde_json::from_slice(&row).expect("JSON");
        assert_eq!(value["value"]["we\"ird/col.\n"], serde_json::Value::Null);
        assert_eq!(value["value"]["k1"], "2");
    }
}
