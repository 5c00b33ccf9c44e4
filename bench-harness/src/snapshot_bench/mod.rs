//! How Ampere reads a snapshot (`COPY (SELECT cols …) TO STDOUT`, JSON encoded in Rust) against
//! upstream's way (JSON built in SQL), on the same table with the engine's own pg client.
//! `docs/benchmarks/snapshot.md` has the commands and the figures.
//!
//! Method, per variant and repetition, on one connection with Electric's display settings:
//! - *server CPU*: user + system time of the Postgres backend serving the connection
//!   (`/proc/<pg_backend_pid()>/stat`), before and after the statement;
//! - *end-to-end*: wall time of `copy_out` with a callback that only counts;
//! - *bytes*: CopyData payloads, and on the wire (plus 5 bytes of framing per message);
//! - *client processing*: the work Ampere does on the received rows, timed alone over rows
//!   captured once: `RowEncoder::encode` (COPY decode + key + JSON) for the COPY variant, and only
//!   the COPY-text unescape (`decode_copy_row`) for the JSON-in-SQL variant;
//! - *end-to-end with processing*: `copy_out` with that processing inline, as the engine runs it.

pub mod json_sql;

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Context as _, Result};
use engine::catalog::load_table;
use engine::pg::{ConnectConfig, Connection};
use engine::runtime::{run_per_core, IoDriver};
use engine::shapes::def::{DefParams, ShapeDef};
use engine::shapes::snapshot::{decode_copy_row, snapshot_select, RowEncoder};
use protocol::ident::QualifiedTable;
use protocol::request::{LogMode, Replica};
use testkit::Cluster;

use crate::report::{grouped, median, Table};
use crate::serving::items;
use crate::serving::server::process_cpu_time;

/// Electric's display settings (reference §5.4), so both variants print values alike.
const DISPLAY_SETTINGS: &str = "SET bytea_output = 'hex'; SET DateStyle = 'ISO, DMY'; \
     SET TimeZone = 'UTC'; SET extra_float_digits = 1; SET IntervalStyle = 'iso_8601'";

#[derive(Clone, Debug)]
pub struct SnapshotOptions {
    pub rows: u64,
    pub repetitions: usize,
    pub driver: IoDriver,
}

/// The two ways of reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    CopyText,
    JsonInSql,
}

impl Variant {
    pub fn label(self) -> &'static str {
        match self {
            Self::CopyText => "COPY text + Rust JSON (Ampere)",
            Self::JsonInSql => "JSON built in SQL (upstream)",
        }
    }
}

#[derive(Clone, Debug)]
pub struct VariantResult {
    pub variant: Variant,
    pub statement: String,
    pub rows: u64,
    pub payload_bytes: u64,
    pub server_cpu: Vec<Duration>,
    pub end_to_end: Vec<Duration>,
    pub processing: Vec<Duration>,
    pub end_to_end_processed: Vec<Duration>,
    /// Bytes of JSON the processing produced (COPY variant) or unescaped (JSON variant).
    pub json_bytes: u64,
}

impl VariantResult {
    pub fn wire_bytes(&self) -> u64 {
        // Each CopyData message is 'd' + a 4-byte length + the row.
        self.payload_bytes + 5 * self.rows
    }
}

#[derive(Debug)]
pub struct SnapshotReport {
    pub results: Vec<VariantResult>,
    /// Rows whose JSON was byte-identical between the two variants.
    pub identical_rows: u64,
    pub tables: Vec<Table>,
}

pub fn run(options: &SnapshotOptions) -> Result<SnapshotReport> {
    ensure!(options.repetitions > 0, "at least one repetition");
    let cluster = Cluster::start().context("start Postgres")?;
    let db = cluster.create_database().context("create database")?;
    items::create_and_fill(&db, options.rows)?;
    let config = ConnectConfig::from_url(&db.url()).context("connection config")?;
    let (tx, rx) = mpsc::channel();
    let repetitions = options.repetitions;
    let config = Arc::new(config);
    run_per_core(1, options.driver, move |_core| {
        let config = config.clone();
        let tx = tx.clone();
        async move {
            let _ = tx.send(measure(&config, repetitions).await);
        }
    })
    .map_err(|e| anyhow!("run the {} runtime: {e}", options.driver))?;
    let (results, identical_rows) = rx
        .recv()
        .map_err(|_| anyhow!("the snapshot runtime exited without a result"))??;
    for result in &results {
        ensure!(
            result.rows == options.rows,
            "{} read {} rows, the table holds {}",
            result.variant.label(),
            result.rows,
            options.rows
        );
    }
    let tables = vec![table(options, &results, identical_rows)];
    Ok(SnapshotReport {
        results,
        identical_rows,
        tables,
    })
}

async fn measure(config: &ConnectConfig, repetitions: usize) -> Result<(Vec<VariantResult>, u64)> {
    let mut conn = Connection::connect(config).await.context("connect")?;
    conn.simple_query(DISPLAY_SETTINGS).await?;
    let backend_pid: u32 = conn
        .simple_query("SELECT pg_backend_pid()")
        .await?
        .first()
        .and_then(|r| r.rows.first())
        .and_then(|row| row.get(0))
        .and_then(|pid| pid.parse().ok())
        .context("pg_backend_pid()")?;
    let table = load_table(&mut conn, "public", items::TABLE)
        .await?
        .context("items table not found")?;
    let qualified = QualifiedTable {
        schema: "public".into(),
        name: items::TABLE.into(),
    };
    let params = DefParams {
        table: &qualified,
        where_clause: None,
        params: &[],
        params_error: None,
        columns: None,
        replica: Replica::Default,
        log: LogMode::Full,
    };
    let def = ShapeDef::build(&params, Arc::new(table))
        .map_err(|e| anyhow!("shape definition: {e:?}"))?;
    let (select, needed) = snapshot_select(&def);
    let statements = [
        (Variant::CopyText, format!("COPY ({select}) TO STDOUT")),
        (
            Variant::JsonInSql,
            format!("COPY ({}) TO STDOUT", json_sql::json_select(&def)),
        ),
    ];
    let mut results: Vec<VariantResult> = statements
        .iter()
        .map(|(variant, statement)| VariantResult {
            variant: *variant,
            statement: statement.clone(),
            rows: 0,
            payload_bytes: 0,
            server_cpu: Vec::new(),
            end_to_end: Vec::new(),
            processing: Vec::new(),
            end_to_end_processed: Vec::new(),
            json_bytes: 0,
        })
        .collect();

    // One untimed pass per variant warms the cache and captures the rows.
    let mut captured = Vec::new();
    for (_, statement) in &statements {
        let mut rows = CapturedRows::default();
        conn.copy_out(
            statement,
            |data: &[u8]| -> Result<(), std::convert::Infallible> {
                rows.push(data);
                Ok(())
            },
        )
        .await?;
        captured.push(rows);
    }
    let identical_rows = identical_json(&def, &needed, &captured[0], &captured[1])?;

    for repetition in 0..repetitions {
        // Alternate the order so neither variant always runs on a warmer machine.
        let order: Vec<usize> = if repetition % 2 == 0 {
            vec![0, 1]
        } else {
            vec![1, 0]
        };
        for i in order {
            let statement = &statements[i].1;
            let cpu_before = process_cpu_time(backend_pid)?;
            let started = Instant::now();
            let mut rows = 0u64;
            let mut bytes = 0u64;
            conn.copy_out(
                statement,
                |data: &[u8]| -> Result<(), std::convert::Infallible> {
                    rows += 1;
                    bytes += data.len() as u64;
                    Ok(())
                },
            )
            .await?;
            let elapsed = started.elapsed();
            let cpu = process_cpu_time(backend_pid)?.saturating_sub(cpu_before);
            let result = &mut results[i];
            result.rows = rows;
            result.payload_bytes = bytes;
            result.end_to_end.push(elapsed);
            result.server_cpu.push(cpu);

            let (processing, json_bytes) =
                process_all(&def, &needed, statements[i].0, &captured[i])?;
            result.processing.push(processing);
            result.json_bytes = json_bytes;

            let started = Instant::now();
            process_inline(&mut conn, &def, &needed, statements[i].0, statement).await?;
            result.end_to_end_processed.push(started.elapsed());
        }
    }
    conn.close().await?;
    Ok((results, identical_rows))
}

/// Rows as one buffer plus end offsets (so capturing 1M rows is two allocations).
#[derive(Default)]
struct CapturedRows {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl CapturedRows {
    fn push(&mut self, row: &[u8]) {
        self.bytes.extend_from_slice(row);
        self.ends.push(self.bytes.len());
    }

    fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(&self.ends).map(|(s, &e)| &self.bytes[s..e])
    }
}

/// Ampere's processing of every captured row, timed; returns the JSON bytes produced.
fn process_all(
    def: &ShapeDef,
    needed: &[usize],
    variant: Variant,
    rows: &CapturedRows,
) -> Result<(Duration, u64)> {
    let started = Instant::now();
    let mut json_bytes = 0u64;
    match variant {
        Variant::CopyText => {
            let mut encoder = RowEncoder::new(def, needed.to_vec());
            for row in rows.iter() {
                json_bytes += encoder.encode(row)?.len() as u64;
            }
        }
        Variant::JsonInSql => {
            let (mut text, mut fields) = (Vec::new(), Vec::new());
            for row in rows.iter() {
                decode_copy_row(row, &mut text, &mut fields)?;
                json_bytes += text.len() as u64;
            }
        }
    }
    Ok((started.elapsed(), std::hint::black_box(json_bytes)))
}

/// The same processing inside the COPY callback, as the engine does it.
async fn process_inline(
    conn: &mut Connection,
    def: &ShapeDef,
    needed: &[usize],
    variant: Variant,
    statement: &str,
) -> Result<u64> {
    let mut json_bytes = 0u64;
    match variant {
        Variant::CopyText => {
            let mut encoder = RowEncoder::new(def, needed.to_vec());
            conn.copy_out(statement, |row: &[u8]| {
                json_bytes += encoder.encode(row)?.len() as u64;
                Ok::<(), engine::shapes::snapshot::SnapshotError>(())
            })
            .await?;
        }
        Variant::JsonInSql => {
            let (mut text, mut fields) = (Vec::new(), Vec::new());
            conn.copy_out(statement, |row: &[u8]| {
                decode_copy_row(row, &mut text, &mut fields)?;
                json_bytes += text.len() as u64;
                Ok::<(), engine::shapes::snapshot::SnapshotError>(())
            })
            .await?;
        }
    }
    Ok(std::hint::black_box(json_bytes))
}

/// Rows whose JSON is byte-identical between the variants (rows arrive in the same heap order).
fn identical_json(
    def: &ShapeDef,
    needed: &[usize],
    copy_rows: &CapturedRows,
    json_rows: &CapturedRows,
) -> Result<u64> {
    let mut encoder = RowEncoder::new(def, needed.to_vec());
    let (mut text, mut fields) = (Vec::new(), Vec::new());
    let mut identical = 0;
    for (copy_row, json_row) in copy_rows.iter().zip(json_rows.iter()) {
        decode_copy_row(json_row, &mut text, &mut fields)?;
        if encoder.encode(copy_row)? == text.as_slice() {
            identical += 1;
        }
    }
    Ok(identical)
}

fn table(options: &SnapshotOptions, results: &[VariantResult], identical_rows: u64) -> Table {
    let mut table = Table::new(
        format!(
            "Snapshot read of {} rows: COPY text vs JSON built in SQL",
            grouped(options.rows as f64)
        ),
        &[
            "variant",
            "rows",
            "payload MB",
            "wire MB",
            "server CPU (s)",
            "end-to-end (s)",
            "client processing (s)",
            "end-to-end with processing (s)",
            "JSON MB",
        ],
    );
    let secs = |values: &[Duration]| format!("{:.3}", median(values).as_secs_f64());
    for r in results {
        table.row(vec![
            r.variant.label().to_string(),
            grouped(r.rows as f64),
            format!("{:.1}", r.payload_bytes as f64 / 1e6),
            format!("{:.1}", r.wire_bytes() as f64 / 1e6),
            secs(&r.server_cpu),
            secs(&r.end_to_end),
            secs(&r.processing),
            secs(&r.end_to_end_processed),
            format!("{:.1}", r.json_bytes as f64 / 1e6),
        ]);
    }
    table.note(format!(
        "median of {} repetition(s), alternating order; one connection on a monoio ({}) runtime; Postgres on the same 2-core machine.",
        options.repetitions, options.driver
    ));
    table.note(
        "server CPU: the backend's user+system time from /proc (10 ms ticks); client processing for the COPY variant is Ampere's RowEncoder (COPY decode, key, JSON), for the JSON variant only the COPY-text unescape.",
    );
    table.note(format!(
        "{} of {} rows produce byte-identical JSON in both variants (the difference: COPY prints bool as t/f, `::text` as true/false).",
        grouped(identical_rows as f64),
        grouped(results.first().map_or(0, |r| r.rows) as f64)
    ));
    for r in results {
        table.note(format!("{}: `{}`", r.variant.label(), r.statement));
    }
    table
}
