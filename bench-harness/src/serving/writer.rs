//! A Postgres connection opened ahead of a measurement, so that timing a write never includes
//! process start or connection set-up. Runs on a monoio runtime owned by the measuring thread:
//! driven only while a statement runs, idle (nothing polled) otherwise.

use std::time::Instant;

use anyhow::{ensure, Context as _, Result};
use engine::pg::{ConnectConfig, Connection};
use monoio::time::TimeDriver;
use monoio::{LegacyDriver, Runtime, RuntimeBuilder};

pub struct Writer {
    runtime: Runtime<TimeDriver<LegacyDriver>>,
    conn: Connection,
}

/// When a write was sent and when its commit's reply (CommandComplete, ReadyForQuery) had
/// been read: the commit instant.
pub struct Commit {
    pub sent: Instant,
    pub committed: Instant,
}

impl Writer {
    pub fn connect(url: &str) -> Result<Self> {
        let config = ConnectConfig::from_url(url).context("writer connection config")?;
        let mut runtime = RuntimeBuilder::<LegacyDriver>::new()
            .enable_timer()
            .build()
            .context("build the writer's runtime")?;
        let conn = runtime
            .block_on(Connection::connect(&config))
            .context("open the writer's connection")?;
        Ok(Self { runtime, conn })
    }

    /// Runs `sql` (one autocommit statement) and checks its command tag is `expected_tag`.
    pub fn execute(&mut self, sql: &str, expected_tag: &str) -> Result<Commit> {
        let conn = &mut self.conn;
        let (sent, tag, committed) = self.runtime.block_on(async move {
            let sent = Instant::now();
            let tag = conn.execute(sql).await;
            (sent, tag, Instant::now())
        });
        let tag = tag.with_context(|| format!("{sql:?} over the writer's connection"))?;
        ensure!(
            tag == expected_tag,
            "{sql:?} returned {tag:?}, expected {expected_tag:?}"
        );
        Ok(Commit { sent, committed })
    }

    /// The first column of the first row `sql` returns.
    pub fn query_value(&mut self, sql: &str) -> Result<String> {
        let conn = &mut self.conn;
        let results = self
            .runtime
            .block_on(conn.simple_query(sql))
            .with_context(|| format!("{sql:?} over the writer's connection"))?;
        results
            .iter()
            .flat_map(|r| r.rows.iter())
            .next()
            .and_then(|row| row.get(0))
            .map(str::to_string)
            .with_context(|| format!("{sql:?} returned no value"))
    }

    pub fn close(self) -> Result<()> {
        let Self { mut runtime, conn } = self;
        runtime
            .block_on(conn.close())
            .context("close the writer's connection")
    }
}
