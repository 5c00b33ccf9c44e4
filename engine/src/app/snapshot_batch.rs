//! Shared snapshots: new shapes of one table that arrive together share one snapshot
//! transaction, and when Postgres says a scan is what their queries would do anyway, one scan
//! of the table whose rows go to every shape whose WHERE selects them.
//!
//! Why: when an application deploys or a popular page loads, thousands of clients create shapes
//! at once. One transaction and one `COPY` per shape is what made such storms Postgres-bound
//! (issue 17); one scan costs what one of them cost.
//!
//! How, per core and per table: the first new shape starts a batch at once (no waiting window);
//! shapes that arrive while a batch runs gather and form the next one, which starts when the
//! running one ends, or after [`PATIENCE`] beside it (up to [`RUNNERS_MAX`] at once, so one
//! long snapshot does not hold up the table's other new shapes). So a lone shape waits for
//! nothing, and a storm is served in a few batches.
//! A batch opens one `REPEATABLE READ` transaction that sees every transaction the core applied
//! (`snapshot::begin_seeing`); every shape of the batch was registered before it began, so the
//! one snapshot hands over to the stream exactly as a shape's own would. Then:
//!
//! - **Cost rule.** A table Postgres estimates (`pg_class.reltuples`) at no more than
//!   [`SCAN_ROWS_MAX`] rows is scanned once for the whole batch. On a bigger table, Postgres's
//!   plan for each shape's own query (`EXPLAIN`) decides: a shape whose plan reads the table
//!   sequentially anyway joins the shared scan, one with an index plan keeps its own query (in
//!   the same transaction). A scan serving one shape is its own query.
//! - **Scan.** `COPY` of every column; each row is decoded once, each shape's WHERE is
//!   evaluated in Rust (the evaluator that filters the replication stream), and the row's JSON
//!   is encoded once per distinct projection and appended to every shape that selects it.
//!   Booleans are read as `::text`, as a shape's own query reads them (upstream's spelling).
//! - Shapes the shared path does not cover (subquery shapes, `log=changes_only`) keep the
//!   per-shape path (`Core::snapshot_task`).
//!
//! Errors: a failed scan or transaction fails every shape of the batch (each gets the error,
//! its clients a new shape); a failed query of one shape in per-shape mode ends the
//! transaction, so that shape fails and the others go back to the queue for the next batch.

use super::core::{Core, ShapeRef};
use super::snapshot_writes::SnapshotRows;
use crate::fast_map::FastMap;
use crate::shapes::def::ShapeDef;
use crate::shapes::shape::PgSnapshot;
use crate::shapes::snapshot::{self, RowEncoder, SnapshotError};
use protocol::request::LogMode;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

/// Tables Postgres estimates at no more rows than this are scanned once for a whole batch
/// (a scan of 100,000 small rows takes tens of milliseconds, about what a few hundred
/// single-shape queries cost in round trips alone).
pub const SCAN_ROWS_MAX: f64 = 100_000.0;

/// Most shapes in one batch: a bound on the memory of one scan's routing and on how long the
/// first shapes of a huge storm wait for the last ones' rows.
const BATCH_MAX: usize = 4096;

/// The batches of one core, per table OID.
#[derive(Default)]
pub struct Batches {
    tables: RefCell<FastMap<u32, Waiting>>,
}

#[derive(Default)]
struct Waiting {
    /// Tasks running batches of this table (each takes the next batch when its own ends).
    running: usize,
    /// A task waits [`PATIENCE`] to start another runner if shapes still wait then.
    timer: bool,
    shapes: Vec<ShapeRef>,
}

/// How long new shapes wait for a running batch of their table before another batch starts
/// beside it (a long snapshot of a big shape must not hold up a small one for its whole
/// duration).
const PATIENCE: std::time::Duration = std::time::Duration::from_millis(25);

/// Most batches of one table running at once on a core.
const RUNNERS_MAX: usize = 4;

/// Whether the shape's snapshot goes through a shared batch.
pub fn shares(def: &ShapeDef) -> bool {
    def.subquery.is_none() && def.log == LogMode::Full
}

/// Queues a new shape's snapshot with its table's next batch.
pub fn enqueue(core: &Rc<Core>, shape: ShapeRef) {
    let oid = shape.borrow().def.table.oid;
    let (start, arm) = {
        let mut tables = core.batches.tables.borrow_mut();
        let waiting = tables.entry(oid).or_default();
        waiting.shapes.push(shape);
        if waiting.running == 0 {
            waiting.running = 1;
            (true, false)
        } else if waiting.running < RUNNERS_MAX && !waiting.timer {
            waiting.timer = true;
            (false, true)
        } else {
            (false, false)
        }
    };
    if start {
        let core = core.clone();
        monoio::spawn(async move { run(core, oid).await });
    }
    if arm {
        let core = core.clone();
        monoio::spawn(async move {
            monoio::time::sleep(PATIENCE).await;
            let start = {
                let mut tables = core.batches.tables.borrow_mut();
                let Some(waiting) = tables.get_mut(&oid) else {
                    return;
                };
                waiting.timer = false;
                let start = !waiting.shapes.is_empty() && waiting.running < RUNNERS_MAX;
                if start {
                    waiting.running += 1;
                }
                start
            };
            if start {
                run(core, oid).await;
            }
        });
    }
}

/// Runs the table's batches until none is waiting.
async fn run(core: Rc<Core>, oid: u32) {
    loop {
        let batch: Vec<ShapeRef> = {
            let mut tables = core.batches.tables.borrow_mut();
            let Some(waiting) = tables.get_mut(&oid) else {
                return;
            };
            let n = waiting.shapes.len().min(BATCH_MAX);
            let batch: Vec<ShapeRef> = waiting.shapes.drain(..n).collect();
            if batch.is_empty() {
                waiting.running -= 1;
                if waiting.running == 0 && !waiting.timer {
                    tables.remove(&oid);
                }
                return;
            }
            batch
        };
        // Shapes removed while they waited (deleted, evicted) need no snapshot.
        let batch: Vec<ShapeRef> = batch
            .into_iter()
            .filter(|s| !s.borrow().invalidated)
            .collect();
        if batch.is_empty() {
            continue;
        }
        let started = Instant::now();
        let results = run_batch(&core, &batch).await;
        for (shape, result) in batch.iter().zip(results) {
            match result {
                Some(result) => core.snapshot_done(shape, result, started),
                // Back to the queue (a shape of its transaction failed).
                None => requeue(&core, oid, shape.clone()),
            }
        }
    }
}

fn requeue(core: &Core, oid: u32, shape: ShapeRef) {
    let mut tables = core.batches.tables.borrow_mut();
    tables.entry(oid).or_default().shapes.push(shape);
}

type Outcome = Option<Result<(PgSnapshot, u64), SnapshotError>>;

/// One batch: per shape its snapshot's outcome (`None`: not run, to queue again).
async fn run_batch(core: &Rc<Core>, batch: &[ShapeRef]) -> Vec<Outcome> {
    let fail_all = |e: SnapshotError| -> Vec<Outcome> {
        let e = std::sync::Arc::new(e);
        batch
            .iter()
            .map(|_| Some(Err(SnapshotError::Shared(e.clone()))))
            .collect()
    };
    let defs: Vec<Arc<ShapeDef>> = batch.iter().map(|s| s.borrow().def.clone()).collect();
    let mut conn = match core.conn().await {
        Ok(c) => c,
        Err(e) => return fail_all(SnapshotError::Pg(e)),
    };
    if let Err(e) = core.ensure_published(&mut conn, &defs[0].table).await {
        return fail_all(SnapshotError::Pg(e));
    }
    let snapshot = match core.begin_seeing_applied(&mut conn).await {
        Ok((snapshot, _)) => snapshot,
        Err(e) => return fail_all(e),
    };
    let mut rows: Vec<Option<SnapshotRows>> = batch
        .iter()
        .map(|s| Some(SnapshotRows::new(core, s)))
        .collect();
    let mut outcomes: Vec<Outcome> = batch.iter().map(|_| None).collect();
    let result = async {
        let scanned = plan(&mut conn, &defs).await?;
        if scanned.len() > 1 {
            let counts = scan(&mut conn, &defs, &scanned, &mut rows).await?;
            for (&i, n) in scanned.iter().zip(counts) {
                outcomes[i] = Some(Ok((snapshot.clone(), n)));
            }
        }
        for i in 0..batch.len() {
            if outcomes[i].is_some() {
                continue;
            }
            let shape_rows = rows[i].as_mut().expect("rows of a shape not run yet");
            match snapshot::copy_rows(&mut conn, &defs[i], |json| shape_rows.push(json)).await {
                Ok(n) => outcomes[i] = Some(Ok((snapshot.clone(), n))),
                Err(e) => {
                    // The transaction is over: this shape fails, the rest wait for the next.
                    outcomes[i] = Some(Err(e));
                    return Err(None);
                }
            }
        }
        Ok(())
    }
    .await;
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let ended = conn.execute(end).await;
    match (result, ended) {
        (Ok(()), Ok(_)) => core.put_conn(conn),
        (Ok(()), Err(e)) => return fail_all(SnapshotError::Pg(e)),
        (Err(Some(e)), _) => return fail_all(e),
        (Err(None), _) => {
            // One shape's own query failed and ended the transaction: that shape has its
            // error, the shapes not run yet go back to the queue, and those that ran have all
            // their rows from the one snapshot, so they finish below.
        }
    }
    for (i, r) in rows.iter_mut().enumerate() {
        let Some(r) = r.take() else { continue };
        if let Some(Ok(_)) = &outcomes[i] {
            if let Err(e) = r.finish().await {
                outcomes[i] = Some(Err(e));
            }
        }
    }
    outcomes
}

/// Which shapes of the batch share one scan (their indexes); the others run their own query.
/// An error is the transaction's (`Some`) and fails the batch.
async fn plan(
    conn: &mut crate::pg::Connection,
    defs: &[Arc<ShapeDef>],
) -> Result<Vec<usize>, Option<SnapshotError>> {
    if defs.len() < 2 {
        return Ok(Vec::new());
    }
    let oid = defs[0].table.oid;
    let res = conn
        .simple_query(&format!(
            "SELECT reltuples::float8::text FROM pg_class WHERE oid = {oid}"
        ))
        .await
        .map_err(|e| Some(SnapshotError::Pg(e)))?;
    let rows = res
        .iter()
        .flat_map(|r| r.rows.iter())
        .next()
        .and_then(|r| r.get(0))
        .and_then(|t| t.parse::<f64>().ok())
        // -1: never analyzed (or vacuumed): treated as big, the plans decide.
        .unwrap_or(-1.0);
    if (0.0..=SCAN_ROWS_MAX).contains(&rows) {
        return Ok((0..defs.len()).collect());
    }
    let mut scanned = Vec::new();
    for (i, def) in defs.iter().enumerate() {
        let (select, _) = snapshot::snapshot_select(def);
        let res = conn
            .simple_query(&format!("EXPLAIN {select}"))
            .await
            .map_err(|e| Some(SnapshotError::Pg(e)))?;
        let plan: String = res
            .iter()
            .flat_map(|r| r.rows.iter())
            .filter_map(|r| r.get(0))
            .collect::<Vec<_>>()
            .join("\n");
        if reads_whole_table(&plan) {
            scanned.push(i);
        }
    }
    Ok(scanned)
}

/// Whether an `EXPLAIN` plan reads the table sequentially (no index anywhere in it).
fn reads_whole_table(plan: &str) -> bool {
    plan.contains("Seq Scan") && !plan.contains("Index")
}

/// One `COPY` of the whole table for the shapes `scanned`, each row appended to every one of
/// them whose WHERE selects it; returns their row counts.
async fn scan(
    conn: &mut crate::pg::Connection,
    defs: &[Arc<ShapeDef>],
    scanned: &[usize],
    rows: &mut [Option<SnapshotRows>],
) -> Result<Vec<u64>, Option<SnapshotError>> {
    let table = &defs[scanned[0]].table;
    let width = table.columns.len();
    let (select, needed) = snapshot::whole_table_select(table);
    debug_assert_eq!(needed.len(), width);
    // One encoder per distinct projection: shapes that select the same columns share the
    // bytes of each row.
    let mut encoders: Vec<(u64, RowEncoder)> = Vec::new();
    let mut encoder_of = Vec::with_capacity(scanned.len());
    for &i in scanned {
        let p = defs[i].projection_hash;
        let at = match encoders.iter().position(|(h, _)| *h == p) {
            Some(at) => at,
            None => {
                encoders.push((p, RowEncoder::new(&defs[i], needed.clone())));
                encoders.len() - 1
            }
        };
        encoder_of.push(at);
    }
    let mut counts = vec![0u64; scanned.len()];
    let mut text = Vec::with_capacity(256);
    let mut fields = Vec::with_capacity(width);
    let mut matched: Vec<usize> = Vec::with_capacity(scanned.len());
    conn.copy_out(&format!("COPY ({select}) TO STDOUT"), |data: &[u8]| {
        snapshot::decode_copy_row(data, &mut text, &mut fields)?;
        if fields.len() != width {
            return Err(SnapshotError::Copy("a row of another width"));
        }
        let get = |c: usize| fields[c].map(|(a, b)| &text[a..b]);
        matched.clear();
        for (k, &i) in scanned.iter().enumerate() {
            if defs[i].matches(&get) {
                matched.push(k);
            }
        }
        // Encode once per projection, in the order the shapes matched.
        let mut done: Vec<(usize, Vec<u8>)> = Vec::new();
        for &k in &matched {
            let e = encoder_of[k];
            let json = match done.iter().position(|(x, _)| *x == e) {
                Some(at) => &done[at].1,
                None => {
                    let bytes = encoders[e].1.encode(data)?.to_vec();
                    done.push((e, bytes));
                    &done[done.len() - 1].1
                }
            };
            rows[scanned[k]]
                .as_mut()
                .expect("rows of a scanned shape")
                .push(json);
            counts[k] += 1;
        }
        Ok::<(), SnapshotError>(())
    })
    .await
    .map_err(|e| Some(SnapshotError::Pg(e)))?;
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_that_read_the_whole_table() {
        assert!(reads_whole_table(
            "Seq Scan on items  (cost=0.00..35.50 rows=2550 width=4)\n  Filter: (id < 5)"
        ));
        assert!(reads_whole_table(
            "Gather  (cost=1000.00..10633.43 rows=1 width=4)\n  ->  Parallel Seq Scan on items"
        ));
        assert!(!reads_whole_table(
            "Index Scan using items_pkey on items  (cost=0.29..8.31 rows=1 width=4)"
        ));
        assert!(!reads_whole_table(
            "Bitmap Heap Scan on items\n  ->  Bitmap Index Scan on items_v_idx"
        ));
    }
}
