//! Running futures on the engine's thread-per-core runtime from the synchronous `main`.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use engine::pg::ConnectConfig;
use engine::runtime::{run_per_core, IoDriver};

use crate::target::Target;
use crate::writer;

/// What every scenario needs: where to send load and how to run it.
#[derive(Clone, Debug)]
pub struct Context {
    pub target: Target,
    pub database: ConnectConfig,
    pub cores: usize,
    pub driver: IoDriver,
    pub table: String,
}

/// Locks, ignoring poisoning: a panicking client task must not hide the others' results.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs one future on a single monoio runtime and returns its output (setup and teardown).
pub fn run_once<T, F, Fut>(driver: IoDriver, f: F) -> anyhow::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
{
    let output = Arc::new(Mutex::new(None));
    let slot = Arc::clone(&output);
    let f = Mutex::new(Some(f));
    run_per_core(1, driver, move |_| {
        let f = lock(&f).take();
        let slot = Arc::clone(&slot);
        async move {
            if let Some(f) = f {
                let value = f().await;
                *lock(&slot) = Some(value);
            }
        }
    })?;
    let value = lock(&output).take();
    value.ok_or_else(|| anyhow::anyhow!("the runtime finished without a result"))
}

/// Creates the run's table (with `seed_rows` rows of `seed_payload_bytes` filler), runs `body`,
/// then drops the table unless `keep`.
pub fn with_table<T>(
    ctx: &Context,
    seed_rows: u64,
    seed_payload_bytes: usize,
    keep: bool,
    body: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let (database, table) = (ctx.database.clone(), ctx.table.clone());
    run_once(ctx.driver, move || async move {
        writer::create_table(&database, &table, seed_rows, seed_payload_bytes).await
    })?
    .map_err(|e| anyhow::anyhow!("creating the load table {}: {e}", ctx.table))?;
    let result = body();
    if !keep {
        let (database, table) = (ctx.database.clone(), ctx.table.clone());
        let dropped = run_once(ctx.driver, move || async move {
            writer::drop_table(&database, &table).await
        });
        if let Err(error) = dropped.and_then(|r| r.map_err(anyhow::Error::from)) {
            eprintln!("loadgen: could not drop table {}: {error:#}", ctx.table);
        }
    }
    result
}
