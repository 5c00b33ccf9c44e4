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
use protocol::message::{self, Change as ChangeMessage, Operation};

/// Errors of the snapshot; `Pg` carries the SQLSTATE for the 409-vs-503 decision.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{0}")]
    Pg(#[from] PgError),
    #[error("malformed COPY row: {0}")]
    Copy(&'static str),
    #[error("unexpected snapshot result: {0}")]
    Protocol(String),
}

/// The SELECT the snapshot copies: the needed columns (selected ∪ key), in table order.
pub fn snapshot_select(def: &ShapeDef) -> (String, Vec<usize>) {
    filtered_select(def, None)
}

/// [`snapshot_select`] with an extra condition ANDed to the shape's own (a subset's `where`,
/// already rendered as canonical SQL).
pub fn filtered_select(def: &ShapeDef, extra_where: Option<&str>) -> (String, Vec<usize>) {
    let mut needed: Vec<usize> = def.selected.clone();
    for k in &def.key_cols {
        if !needed.contains(k) {
            needed.push(*k);
        }
    }
    needed.sort_unstable();
    let cols: Vec<String> = needed
        .iter()
        .map(|&i| {
            let c = &def.table.columns[i].info;
            let name = quote_ident(&c.name);
            // Upstream's snapshot renders values with `::text`, which spells booleans
            // `true`/`false` (their output function, used by COPY and pgoutput, says `t`/`f`).
            if c.type_name == "bool" && !c.is_array {
                format!("{name}::text")
            } else {
                name
            }
        })
        .collect();
    let mut sql = format!("SELECT {} FROM {}", cols.join(", "), def.table.quoted());
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
    (sql, needed)
}

/// Runs the snapshot transaction. `on_snapshot` gets the xid snapshot before any row;
/// `on_row` gets each row's JSON. Returns the snapshot and the row count.
pub async fn run(
    conn: &mut Connection,
    def: &ShapeDef,
    mut on_row: impl FnMut(&[u8]),
) -> Result<(PgSnapshot, u64), SnapshotError> {
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?;
    let result = run_in_txn(conn, def, &mut on_row).await;
    // Ending a read-only transaction cannot lose anything; a failed one must be rolled back
    // before the connection goes back to the pool.
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    conn.execute(end).await?;
    result
}

async fn run_in_txn(
    conn: &mut Connection,
    def: &ShapeDef,
    on_row: &mut impl FnMut(&[u8]),
) -> Result<(PgSnapshot, u64), SnapshotError> {
    let res = conn
        .simple_query("SELECT pg_current_snapshot()::text")
        .await?;
    let text = res
        .iter()
        .flat_map(|r| r.rows.iter())
        .next()
        .and_then(|row| row.get(0).map(str::to_string))
        .ok_or_else(|| SnapshotError::Protocol("no pg_current_snapshot() row".into()))?;
    let snapshot = PgSnapshot::parse(&text)
        .ok_or_else(|| SnapshotError::Protocol(format!("bad snapshot {text:?}")))?;
    if def.log == protocol::request::LogMode::ChangesOnly {
        return Ok((snapshot, 0));
    }
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
    Ok((snapshot, rows))
}

/// Decodes COPY text rows and encodes them as insert messages, reusing its buffers.
pub struct RowEncoder<'d> {
    def: &'d ShapeDef,
    /// Table column index of each COPY field.
    needed: Vec<usize>,
    /// Decoded field values (None = NULL) as ranges of `text`.
    fields: Vec<Option<(usize, usize)>>,
    text: Vec<u8>,
    key: Vec<u8>,
    out: Vec<u8>,
}

impl<'d> RowEncoder<'d> {
    pub fn new(def: &'d ShapeDef, needed: Vec<usize>) -> Self {
        Self {
            def,
            fields: Vec::with_capacity(needed.len()),
            needed,
            text: Vec::with_capacity(256),
            key: Vec::with_capacity(64),
            out: Vec::with_capacity(512),
        }
    }

    /// One COPY data message (one row, ending in `\n`) to one JSON line.
    pub fn encode(&mut self, row: &[u8]) -> Result<&[u8], SnapshotError> {
        decode_copy_row(row, &mut self.text, &mut self.fields)?;
        if self.fields.len() != self.needed.len() {
            return Err(SnapshotError::Copy("column count differs from the query"));
        }
        let def = self.def;
        let key_vals: Vec<Option<&[u8]>> = def
            .key_cols
            .iter()
            .map(|&c| value_of(&self.fields, &self.text, &self.needed, c))
            .collect();
        self.key.clear();
        protocol::key::push_row_key(&mut self.key, &def.table.schema, &def.table.name, &key_vals);
        let value: Vec<(&str, Option<&[u8]>)> = def
            .selected
            .iter()
            .map(|&c| {
                (
                    def.table.columns[c].info.name.as_str(),
                    value_of(&self.fields, &self.text, &self.needed, c),
                )
            })
            .collect();
        self.out.clear();
        message::encode_change(
            &mut self.out,
            &ChangeMessage {
                op: Operation::Insert,
                key: &self.key,
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
        Ok(&self.out)
    }
}

/// The decoded value of table column `col`, if the COPY selected it and it is not NULL.
fn value_of<'t>(
    fields: &[Option<(usize, usize)>],
    text: &'t [u8],
    needed: &[usize],
    col: usize,
) -> Option<&'t [u8]> {
    let pos = needed.iter().position(|&c| c == col)?;
    fields[pos].map(|(s, e)| &text[s..e])
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
        fields.push(Some((start, text.len())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
