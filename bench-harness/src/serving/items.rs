//! The table the serving benchmarks sync: `items (id bigint primary key, title text, n int,
//! ts timestamptz, flag bool)`, filled with `generate_series` in one statement per 100k rows.

use anyhow::{ensure, Context as _, Result};
use testkit::TestDb;

/// Name of the table.
pub const TABLE: &str = "items";
/// Rows inserted per statement, so no single transaction is huge.
const ROWS_PER_INSERT: u64 = 100_000;

/// Creates `items` and inserts `rows` rows (`id` 1..=rows), then checks the count.
pub fn create_and_fill(db: &TestDb<'_>, rows: u64) -> Result<()> {
    db.psql(
        "CREATE TABLE items (id bigint PRIMARY KEY, title text NOT NULL, n int NOT NULL, \
         ts timestamptz NOT NULL, flag bool NOT NULL)",
    )
    .context("create items")?;
    let mut first = 1;
    while first <= rows {
        let last = (first + ROWS_PER_INSERT - 1).min(rows);
        insert_range(db, first, last)?;
        first = last + 1;
    }
    db.psql("VACUUM ANALYZE items").context("vacuum items")?;
    let count = count_rows(db)?;
    ensure!(count == rows, "items holds {count} rows, expected {rows}");
    Ok(())
}

/// Inserts rows `first..=last` (a 32-character title, a small int, a timestamp, a bool).
pub fn insert_range(db: &TestDb<'_>, first: u64, last: u64) -> Result<()> {
    db.psql(&insert_sql(first, last))
        .with_context(|| format!("insert items {first}..={last}"))?;
    Ok(())
}

/// The statement [`insert_range`] runs, for callers with their own connection.
pub fn insert_sql(first: u64, last: u64) -> String {
    format!(
        "INSERT INTO items SELECT i, md5(i::text), (i * 7) % 1000, \
         timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second', i % 2 = 0 \
         FROM generate_series({first}, {last}) AS i"
    )
}

pub fn count_rows(db: &TestDb<'_>) -> Result<u64> {
    let out = db.psql("SELECT count(*) FROM items")?;
    out.trim()
        .lines()
        .find_map(|l| l.trim().parse().ok())
        .with_context(|| format!("unexpected count output {out:?}"))
}
