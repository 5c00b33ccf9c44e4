//! `large-shape-sync`: one client syncs one shape over a big table from `offset=-1` to
//! up-to-date; then further clients, one after another, sync the same shape again (the server's
//! cached path). Measures time to the first response, time to up-to-date, rows/s and MB/s.

use std::time::Duration;

use serde::Serialize;

use crate::body::Op;
use crate::clock::now_ns;
use crate::progress::{self, COUNTERS};
use crate::runner::{run_once, Context};
use crate::shape::ShapeClient;

#[derive(Clone, Debug, Serialize)]
pub struct LargeShapeParams {
    pub rows: u64,
    pub payload_bytes: usize,
    /// Clients that sync the shape, one after another (the first creates it).
    pub clients: usize,
    /// Time allowed per client.
    pub timeout_secs: u64,
}

/// One client's sync.
#[derive(Debug, Serialize)]
pub struct ClientSync {
    pub complete: bool,
    pub rows: u64,
    pub body_bytes: u64,
    pub requests: u64,
    /// From the first request's send to its response fully read.
    pub first_response_ms: f64,
    pub up_to_date_ms: f64,
    pub rows_per_sec: f64,
    pub mb_per_sec: f64,
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct LargeShapeReport {
    pub scenario: String,
    pub target: String,
    pub params: LargeShapeParams,
    /// Every client received exactly `rows` rows and reached up-to-date.
    pub complete: bool,
    pub error_count: u64,
    pub errors: Vec<String>,
    pub syncs: Vec<ClientSync>,
}

/// Runs the scenario; the table must already hold `params.rows` rows.
pub fn run(ctx: &Context, params: &LargeShapeParams) -> anyhow::Result<LargeShapeReport> {
    let (target, table, params_owned) = (ctx.target.clone(), ctx.table.clone(), params.clone());
    let syncs = run_once(ctx.driver, move || async move {
        let mut syncs = Vec::with_capacity(params_owned.clients);
        for _ in 0..params_owned.clients {
            let client = ShapeClient::new(target.clone(), &table, None);
            syncs.push(sync_one(client, &params_owned).await);
        }
        syncs
    })?;
    let errors: Vec<String> = syncs.iter().filter_map(|s| s.error.clone()).collect();
    Ok(LargeShapeReport {
        scenario: "large-shape-sync".to_owned(),
        target: ctx.target.host.clone(),
        params: params.clone(),
        complete: syncs.len() == params.clients && syncs.iter().all(|s| s.complete),
        error_count: errors.len() as u64,
        errors,
        syncs,
    })
}

async fn sync_one(mut client: ShapeClient, params: &LargeShapeParams) -> ClientSync {
    let start = now_ns();
    let deadline = start + params.timeout_secs * 1_000_000_000;
    let mut rows = 0u64;
    let mut first_response_ns = 0;
    let mut error = None;
    while !client.is_up_to_date() {
        let now = now_ns();
        if now >= deadline {
            error = Some("not up-to-date within the timeout".to_owned());
            break;
        }
        match monoio::time::timeout(Duration::from_nanos(deadline - now), client.poll()).await {
            Err(_elapsed) => {
                error = Some("timed out".to_owned());
                break;
            }
            Ok(Err(e)) => {
                error = Some(e.to_string().chars().take(300).collect());
                break;
            }
            Ok(Ok(batch)) => {
                if first_response_ns == 0 {
                    first_response_ns = now_ns() - start;
                }
                if batch.reset {
                    rows = 0;
                }
                let inserts = batch.changes.iter().filter(|c| c.op == Op::Insert).count();
                rows += inserts as u64;
                progress::add(&COUNTERS.rows, inserts as u64);
            }
        }
    }
    let elapsed_ns = now_ns() - start;
    let secs = elapsed_ns as f64 / 1e9;
    if error.is_none() && rows != params.rows {
        error = Some(format!("received {rows} rows, expected {}", params.rows));
    }
    if error.is_none() {
        progress::add(&COUNTERS.shapes_ready, 1);
    }
    let ms = |ns: u64| (ns as f64 / 1e3).round() / 1e3;
    ClientSync {
        complete: error.is_none(),
        rows,
        body_bytes: client.body_bytes,
        requests: client.requests,
        first_response_ms: ms(first_response_ns),
        up_to_date_ms: ms(elapsed_ns),
        rows_per_sec: (rows as f64 / secs).round(),
        mb_per_sec: (client.body_bytes as f64 / 1e6 / secs * 1000.0).round() / 1000.0,
        error,
    }
}

impl LargeShapeReport {
    pub fn text(&self) -> String {
        let mut out = format!(
            "{} against {}: {} rows x {} B payload, {} sequential clients ({})\n\
             {:<8} {:>10} {:>12} {:>9} {:>12} {:>12} {:>12} {:>9}\n",
            self.scenario,
            self.target,
            self.params.rows,
            self.params.payload_bytes,
            self.params.clients,
            if self.complete {
                "complete"
            } else {
                "INCOMPLETE"
            },
            "client",
            "rows",
            "body bytes",
            "requests",
            "first ms",
            "synced ms",
            "rows/s",
            "MB/s",
        );
        for (i, sync) in self.syncs.iter().enumerate() {
            out.push_str(&format!(
                "{:<8} {:>10} {:>12} {:>9} {:>12.2} {:>12.2} {:>12.0} {:>9.1}\n",
                i + 1,
                sync.rows,
                sync.body_bytes,
                sync.requests,
                sync.first_response_ms,
                sync.up_to_date_ms,
                sync.rows_per_sec,
                sync.mb_per_sec,
            ));
        }
        for error in &self.errors {
            out.push_str(&format!("error: {error}\n"));
        }
        out
    }
}
