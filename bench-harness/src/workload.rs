//! The pgbench-style table and the write bursts that the benchmarks replicate.
//!
//! The table mirrors `pgbench_accounts` (`aid int primary key, bid int, abalance int,
//! filler char(84)`) with REPLICA IDENTITY FULL, so updates and deletes carry the whole old row:
//! the most bytes per change that pgoutput sends, and what Ampere asks its users to configure.
//!
//! Writes happen in rounds of `batch_rows` consecutive `aid`s. Each round inserts its rows in one
//! transaction and, when the workload has a change mix, updates every 5th row and deletes every
//! 10th (counted from 1) in two more transactions. Any prefix of whole rounds therefore has the
//! same mix as the full stream, which lets the callgrind run use a short prefix.

use anyhow::{ensure, Context as _, Result};
use testkit::TestDb;

/// Name of the benchmark table.
pub const TABLE: &str = "pgbench_accounts";
/// Name of the publication the slots stream.
pub const PUBLICATION: &str = "bench_pub";
/// `bid` groups 100,000 accounts per branch, as pgbench does.
const ACCOUNTS_PER_BRANCH: u64 = 100_000;
/// Rows written per psql call (at least one round).
const ROWS_PER_CALL: u64 = 100_000;

/// What one burst writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Workload {
    /// Rows inserted in total (`aid` 1..=rows).
    pub rows: u64,
    /// Rows per round (one insert transaction each).
    pub batch_rows: u64,
    /// Whether each round also updates and deletes some of its rows.
    pub with_updates_and_deletes: bool,
}

/// Changes a burst produces, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Expected {
    pub inserts: u64,
    pub updates: u64,
    pub deletes: u64,
    pub transactions: u64,
}

impl Expected {
    pub fn changes(&self) -> u64 {
        self.inserts + self.updates + self.deletes
    }
}

impl Workload {
    /// Number of rounds (the last one may be short).
    pub fn rounds(&self) -> u64 {
        self.rows.div_ceil(self.batch_rows)
    }

    /// The changes the whole burst writes, computed from the row numbers alone. Postgres 15's
    /// pgoutput skips transactions without changes, so a short last round whose update or
    /// delete matched nothing adds no transaction.
    pub fn expected(&self) -> Expected {
        let mut expected = Expected::default();
        for round in 0..self.rounds() {
            let (first, last) = self.round_range(round);
            expected.inserts += last - first + 1;
            expected.transactions += 1;
            if self.with_updates_and_deletes {
                let updates = count_in(first, last, 5, 0);
                let deletes = count_in(first, last, 10, 1);
                expected.updates += updates;
                expected.deletes += deletes;
                expected.transactions += u64::from(updates > 0) + u64::from(deletes > 0);
            }
        }
        expected
    }

    /// The first and last `aid` of a round.
    fn round_range(&self, round: u64) -> (u64, u64) {
        let first = round * self.batch_rows + 1;
        (first, ((round + 1) * self.batch_rows).min(self.rows))
    }

    /// Creates the table (REPLICA IDENTITY FULL) and the publication.
    pub fn create_schema(db: &TestDb<'_>) -> Result<()> {
        db.psql(&format!(
            "CREATE TABLE {TABLE} (aid int PRIMARY KEY, bid int, abalance int, filler char(84));\n\
             ALTER TABLE {TABLE} REPLICA IDENTITY FULL;\n\
             CREATE PUBLICATION {PUBLICATION} FOR TABLE {TABLE};"
        ))
        .context("create benchmark schema")?;
        Ok(())
    }

    /// Runs the burst. Rounds run inside DO blocks that COMMIT after every statement, so even
    /// one-row transactions cost no client round trip; each psql call covers about
    /// `ROWS_PER_CALL` rows so that progress stays visible in long runs.
    pub fn run(&self, db: &TestDb<'_>) -> Result<()> {
        ensure!(self.rows > 0, "--rows must be positive");
        ensure!(self.batch_rows > 0, "--batch-rows must be positive");
        ensure!(
            self.rows <= i32::MAX as u64,
            "--rows must fit the int primary key"
        );
        let rounds_per_call = (ROWS_PER_CALL / self.batch_rows).max(1);
        let mut round = 0;
        while round < self.rounds() {
            let last_round = (round + rounds_per_call).min(self.rounds()) - 1;
            db.psql(&self.rounds_sql(round, last_round))
                .with_context(|| format!("write rounds {round}..={last_round}"))?;
            round = last_round + 1;
        }
        Ok(())
    }

    /// A DO block running rounds `first_round..=last_round`, one transaction per statement.
    fn rounds_sql(&self, first_round: u64, last_round: u64) -> String {
        let (batch, rows) = (self.batch_rows, self.rows);
        // pgbench stores '' in filler, which char(84) pads to 84 blanks on the wire.
        let mut body = format!(
            "lo := r * {batch} + 1;\n\
             hi := least((r + 1) * {batch}, {rows});\n\
             INSERT INTO {TABLE} (aid, bid, abalance, filler) \
             SELECT g, (g - 1) / {ACCOUNTS_PER_BRANCH} + 1, 0, '' \
             FROM generate_series(lo, hi) AS g;\n\
             COMMIT;\n"
        );
        if self.with_updates_and_deletes {
            body.push_str(&format!(
                "UPDATE {TABLE} SET abalance = abalance + 7 \
                 WHERE aid BETWEEN lo AND hi AND aid % 5 = 0;\n\
                 COMMIT;\n\
                 DELETE FROM {TABLE} WHERE aid BETWEEN lo AND hi AND aid % 10 = 1;\n\
                 COMMIT;\n"
            ));
        }
        format!(
            "DO $$\nDECLARE lo bigint; hi bigint;\nBEGIN\n\
             FOR r IN {first_round}..{last_round} LOOP\n{body}END LOOP;\nEND $$;\n"
        )
    }
}

/// How many `x` in `first..=last` have `x % modulus == residue`.
fn count_in(first: u64, last: u64, modulus: u64, residue: u64) -> u64 {
    // Counts up to n: whole periods, plus one if the partial period reaches the residue.
    let up_to = |n: u64| n / modulus + u64::from(residue > 0 && n % modulus >= residue);
    up_to(last) - up_to(first - 1)
}

/// Creates `names` pgoutput slots in one session, before any burst, so all of them stream
/// exactly the same transactions.
pub fn create_slots(db: &TestDb<'_>, names: &[String]) -> Result<()> {
    let sql: String = names
        .iter()
        .map(|name| format!("SELECT pg_create_logical_replication_slot('{name}', 'pgoutput');\n"))
        .collect();
    db.psql(&sql).context("create replication slots")?;
    Ok(())
}

/// The current WAL insert position: every change of a finished burst lies before it.
pub fn current_wal_lsn(db: &TestDb<'_>) -> Result<pgwire::types::Lsn> {
    let text = db.psql("SELECT pg_current_wal_lsn()")?;
    text.trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("pg_current_wal_lsn() returned {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_counts_match_a_brute_force_count() {
        for rows in [1, 4, 9, 10, 11, 99, 1000, 1003, 1011, 12_345] {
            let workload = Workload {
                rows,
                batch_rows: 1000,
                with_updates_and_deletes: true,
            };
            let mut brute = Expected::default();
            for round in 0..rows.div_ceil(1000) {
                let aids = round * 1000 + 1..=((round + 1) * 1000).min(rows);
                let updates = aids.clone().filter(|a| a % 5 == 0).count() as u64;
                let deletes = aids.clone().filter(|a| a % 10 == 1).count() as u64;
                brute.inserts += aids.count() as u64;
                brute.updates += updates;
                brute.deletes += deletes;
                brute.transactions += 1 + u64::from(updates > 0) + u64::from(deletes > 0);
            }
            assert_eq!(workload.expected(), brute, "rows = {rows}");
        }
    }

    #[test]
    fn inserts_only_is_one_transaction_per_round() {
        let workload = Workload {
            rows: 250_001,
            batch_rows: 100_000,
            with_updates_and_deletes: false,
        };
        let expected = workload.expected();
        assert_eq!(expected.inserts, 250_001);
        assert_eq!(expected.changes(), 250_001);
        assert_eq!(expected.transactions, 3);
    }
}
