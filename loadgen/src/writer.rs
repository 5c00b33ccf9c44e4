//! The write side: table setup and stamped transactions through `engine::pg::Connection`.

use engine::pg::{ConnectConfig, Connection, PgError};

use crate::clock::now_ns;

/// Longest table name accepted (Postgres truncates identifiers at 63 bytes).
const MAX_TABLE_NAME: usize = 48;

/// Why a table name was refused.
#[derive(Debug, thiserror::Error)]
#[error("table name must be 1..={MAX_TABLE_NAME} characters of [a-z0-9_], not starting with a digit: {0:?}")]
pub struct TableNameError(String);

/// Checks that `name` is a plain lower-case identifier, so it can be spliced into SQL and URLs
/// without quoting.
pub fn validate_table_name(name: &str) -> Result<(), TableNameError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_TABLE_NAME
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(TableNameError(name.to_owned()))
    }
}

/// The `k` value of seed rows: below every value a shape of this tool selects on, so seed rows
/// never match a `k` predicate (every count/index a scenario uses is far smaller than this).
pub const SEED_K: i64 = -1_000_000_000;

/// The column values that route a write to its shape(s).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowValues {
    /// `[a-z0-9]` only, so it can be spliced into SQL literals and where clauses unquoted.
    pub name: String,
    pub k: i64,
}

impl RowValues {
    pub fn new(name: String, k: i64) -> Self {
        assert!(
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
            "row names are generated as [a-z0-9]+"
        );
        Self { name, k }
    }
}

/// Creates the load table (dropping a leftover of the same name) and inserts `seed_rows` rows
/// with `write_id` = 0, `sent_ns` = 0 (never counted as writes), `name` = 'seed', `k` =
/// [`SEED_K`] and `seed_payload_bytes` bytes of filler.
pub async fn create_table(
    config: &ConnectConfig,
    table: &str,
    seed_rows: u64,
    seed_payload_bytes: usize,
) -> Result<(), PgError> {
    let mut conn = Connection::connect(config).await?;
    conn.execute(&format!(
        "drop table if exists {table}; \
         create table {table} (id bigint generated always as identity primary key, \
         write_id bigint not null, sent_ns bigint not null, name text not null, \
         k bigint not null, payload text not null)"
    ))
    .await?;
    if seed_rows > 0 {
        conn.execute(&format!(
            "insert into {table} (write_id, sent_ns, name, k, payload) \
             select 0, 0, 'seed', {SEED_K}, repeat('x', {seed_payload_bytes}) \
             from generate_series(1, {seed_rows})"
        ))
        .await?;
    }
    conn.close().await
}

/// Drops the load table.
pub async fn drop_table(config: &ConnectConfig, table: &str) -> Result<(), PgError> {
    let mut conn = Connection::connect(config).await?;
    conn.execute(&format!("drop table if exists {table}"))
        .await?;
    conn.close().await
}

/// Issues write transactions. Write ids start at 1 (0 marks seed rows).
pub struct Writer {
    conn: Connection,
    table: String,
    payload: String,
}

impl Writer {
    pub async fn connect(
        config: &ConnectConfig,
        table: &str,
        payload_bytes: usize,
    ) -> Result<Self, PgError> {
        Ok(Self {
            conn: Connection::connect(config).await?,
            table: table.to_owned(),
            // A fixed ASCII filler: no quoting needed in the SQL literal.
            payload: "x".repeat(payload_bytes),
        })
    }

    /// Inserts `rows` rows for `write_id` with `values` in one transaction; returns the stamp
    /// the rows carry (taken just before the statement is sent) and the time the commit was
    /// acknowledged.
    pub async fn write(
        &mut self,
        write_id: u64,
        rows: u32,
        values: &RowValues,
    ) -> Result<(u64, u64), PgError> {
        let sent_ns = now_ns();
        let sql = format!(
            "insert into {} (write_id, sent_ns, name, k, payload) \
             select {write_id}, {sent_ns}, '{}', {}, '{}' from generate_series(1, {rows})",
            self.table, values.name, values.k, self.payload
        );
        self.conn.execute(&sql).await?;
        Ok((sent_ns, now_ns()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names() {
        assert!(validate_table_name("loadgen_items_1").is_ok());
        for bad in ["", "1abc", "Items", "a;drop", "a b", &"a".repeat(49)] {
            assert!(validate_table_name(bad).is_err(), "{bad}");
        }
    }
}
