//! `concurrent-shape-creation`: N clients each create a distinct shape over the same seeded
//! table at the same moment and sync it to up-to-date; measures the time from the common start
//! to each client's up-to-date and to the last one's.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use engine::runtime::run_per_core;
use serde::Serialize;

use crate::body::Op;
use crate::clock::now_ns;
use crate::progress::{self, COUNTERS};
use crate::runner::{lock, Context};
use crate::shape::ShapeClient;
use crate::stats::{new_histogram, record, Summary};

/// Errors kept per run; further ones are only counted.
const MAX_KEPT_ERRORS: usize = 20;
/// Lead time so every core's clients are spawned before the common start.
const START_LEAD: Duration = Duration::from_millis(200);

#[derive(Clone, Debug, Serialize)]
pub struct ShapeCreationParams {
    pub shapes: usize,
    /// Rows in the table, all matched by every shape.
    pub rows: u64,
    pub timeout_secs: u64,
    /// Electric's variant S1b: every client requests the same shape.
    pub same_shape: bool,
    /// Shape i selects only the row `id = i + 1`.
    pub one_row: bool,
}

#[derive(Debug, Serialize)]
pub struct ShapeCreationReport {
    pub scenario: String,
    pub target: String,
    pub params: ShapeCreationParams,
    /// Shapes synced to up-to-date with exactly their rows (`rows`, or 1 with `one_row`).
    pub shapes_complete: usize,
    pub complete: bool,
    /// From the common start to the last client's up-to-date (only if complete).
    pub time_to_all_ms: f64,
    pub error_count: u64,
    pub errors: Vec<String>,
    /// Per shape: common start → up-to-date.
    pub time_to_up_to_date: Summary,
}

struct Outcome {
    elapsed_ns: Option<u64>,
}

/// Runs the scenario; the table must already hold `params.rows` rows.
pub fn run(ctx: &Context, params: &ShapeCreationParams) -> anyhow::Result<ShapeCreationReport> {
    let start_ns = now_ns() + u64::try_from(START_LEAD.as_nanos()).unwrap_or(0);
    let deadline_ns = start_ns + params.timeout_secs * 1_000_000_000;
    let outcomes = Arc::new(Mutex::new(Vec::with_capacity(params.shapes)));
    let errors = Arc::new(Mutex::new((Vec::<String>::new(), 0u64)));
    let cores = ctx.cores;
    let shared = (
        Arc::new(ctx.clone()),
        Arc::new(params.clone()),
        Arc::clone(&outcomes),
        Arc::clone(&errors),
    );
    run_per_core(cores, ctx.driver, move |core| {
        let (ctx, params, outcomes, errors) = shared.clone();
        async move {
            let tasks: Vec<_> = (core..params.shapes)
                .step_by(cores)
                .map(|index| {
                    let ctx = Arc::clone(&ctx);
                    let params = Arc::clone(&params);
                    let outcomes = Arc::clone(&outcomes);
                    let errors = Arc::clone(&errors);
                    monoio::spawn(async move {
                        let outcome =
                            sync_one(&ctx, &params, index, start_ns, deadline_ns, &errors).await;
                        lock(&outcomes).push(outcome);
                    })
                })
                .collect();
            for task in tasks {
                task.await;
            }
        }
    })?;
    let outcomes = lock(&outcomes);
    let (errors, error_count) = lock(&errors).clone();
    let mut histogram = new_histogram();
    for ns in outcomes.iter().filter_map(|o| o.elapsed_ns) {
        record(&mut histogram, ns);
    }
    let shapes_complete = outcomes.iter().filter(|o| o.elapsed_ns.is_some()).count();
    let complete = shapes_complete == params.shapes;
    let summary = Summary::of(&histogram);
    Ok(ShapeCreationReport {
        scenario: "concurrent-shape-creation".to_owned(),
        target: ctx.target.host.clone(),
        params: params.clone(),
        shapes_complete,
        complete,
        time_to_all_ms: if complete { summary.max_ms } else { 0.0 },
        error_count,
        errors,
        time_to_up_to_date: summary,
    })
}

async fn sync_one(
    ctx: &Context,
    params: &ShapeCreationParams,
    index: usize,
    start_ns: u64,
    deadline_ns: u64,
    errors: &Mutex<(Vec<String>, u64)>,
) -> Outcome {
    let fail = |message: String| {
        progress::add(&COUNTERS.errors, 1);
        let mut errors = lock(errors);
        errors.1 += 1;
        if errors.0.len() < MAX_KEPT_ERRORS {
            errors.0.push(message);
        }
        Outcome { elapsed_ns: None }
    };
    // Every row matches, but each definition differs, so each client creates its own shape
    // (unless all are asked for the same one); or each shape has its own single row.
    let distinct = if params.same_shape { 0 } else { index as u64 };
    let (where_clause, expected) = if params.one_row {
        (format!("id = {}", index + 1), 1)
    } else {
        (format!("id < {}", params.rows + 1 + distinct), params.rows)
    };
    let mut client = ShapeClient::new(ctx.target.clone(), &ctx.table, Some(&where_clause));
    let now = now_ns();
    if start_ns > now {
        monoio::time::sleep(Duration::from_nanos(start_ns - now)).await;
    }
    let mut rows = 0u64;
    while !client.is_up_to_date() {
        let now = now_ns();
        if now >= deadline_ns {
            return fail(format!("shape {index}: not up-to-date within the timeout"));
        }
        match monoio::time::timeout(Duration::from_nanos(deadline_ns - now), client.poll()).await {
            Err(_elapsed) => return fail(format!("shape {index}: timed out")),
            Ok(Err(error)) => return fail(format!("shape {index}: {error}")),
            Ok(Ok(batch)) => {
                if batch.reset {
                    rows = 0;
                }
                let inserts = batch.changes.iter().filter(|c| c.op == Op::Insert).count();
                rows += inserts as u64;
                progress::add(&COUNTERS.rows, inserts as u64);
            }
        }
    }
    let elapsed = now_ns().saturating_sub(start_ns).max(1);
    progress::add(&COUNTERS.shapes_ready, 1);
    if rows != expected {
        return fail(format!(
            "shape {index}: received {rows} rows, expected {expected}"
        ));
    }
    Outcome {
        elapsed_ns: Some(elapsed),
    }
}

impl ShapeCreationReport {
    pub fn text(&self) -> String {
        let mut out = format!(
            "{} against {}: {} shapes over {} rows\n\
             complete: {} of {} shapes ({}), time to all up-to-date {:.2} ms, {} errors\n",
            self.scenario,
            self.target,
            self.params.shapes,
            self.params.rows,
            self.shapes_complete,
            self.params.shapes,
            if self.complete {
                "complete"
            } else {
                "INCOMPLETE"
            },
            self.time_to_all_ms,
            self.error_count,
        );
        out.push_str(&Summary::header());
        out.push('\n');
        out.push_str(&self.time_to_up_to_date.row("per shape"));
        out.push('\n');
        for error in &self.errors {
            out.push_str(&format!("error: {error}\n"));
        }
        out
    }
}
