//! Running futures on the engine's thread-per-core runtime from the synchronous `main`.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use engine::pg::ConnectConfig;
use engine::runtime::{run_per_core, IoDriver};

use crate::target::Target;
use crate::writer;

/// What every scenario needs: where to send load and how to run it.
#[derive(Clone, Debug)]
pub struct Context {
    /// The first endpoint: used by every scenario for setup requests, and by the scenarios
    /// that do not spread clients.
    pub target: Target,
    /// Every (source address, target) pair; the clients of the fan-out scenarios are spread
    /// over them round-robin (see [`Context::client_target`]).
    pub endpoints: Vec<Target>,
    pub database: ConnectConfig,
    pub cores: usize,
    pub driver: IoDriver,
    pub table: String,
    /// Several loadgen processes sharing one fan-out run (`write-fanout --followers`).
    pub peering: Option<Peering>,
}

/// Several loadgen processes in one fan-out run: one process can only open as many
/// connections as its open-file limit allows, so tens of thousands of clients may need
/// several. The leader creates the table and writes; followers only run clients on its table.
/// They meet through files in an empty directory: `table` (the leader created the table),
/// `ready.<id>` (a follower's clients are all up to date), `done.<id>` (a follower's clients
/// have all finished) and `marked` (the leader marked the end of the write phase; followers
/// may close their connections).
#[derive(Clone, Debug)]
pub enum Peering {
    Leader { dir: PathBuf, followers: usize },
    Follower { dir: PathBuf, id: usize },
}

impl Peering {
    pub fn dir(&self) -> &Path {
        match self {
            Self::Leader { dir, .. } | Self::Follower { dir, .. } => dir,
        }
    }

    /// Creates the (empty) signal file `name`.
    pub fn signal(&self, name: &str) -> std::io::Result<()> {
        std::fs::write(self.dir().join(name), b"")
    }

    pub fn signalled(&self, name: &str) -> bool {
        self.dir().join(name).exists()
    }

    /// Whether every follower has signalled `prefix.<id>` (a leader's question).
    pub fn all_followers(&self, prefix: &str) -> bool {
        match self {
            Self::Leader { followers, .. } => {
                (1..=*followers).all(|id| self.signalled(&format!("{prefix}.{id}")))
            }
            Self::Follower { .. } => true,
        }
    }

    pub fn is_follower(&self) -> bool {
        matches!(self, Self::Follower { .. })
    }
}

impl Context {
    /// The endpoint of live client `i`.
    pub fn client_target(&self, i: usize) -> Target {
        self.endpoints[i % self.endpoints.len()].clone()
    }

    /// The targets, for reports: `host, host[ from source, source]`.
    pub fn targets_label(&self) -> String {
        let mut hosts: Vec<&str> = Vec::new();
        let mut sources: Vec<String> = Vec::new();
        for endpoint in &self.endpoints {
            if !hosts.contains(&endpoint.host.as_str()) {
                hosts.push(&endpoint.host);
            }
            if let Some(source) = endpoint.source.map(|s| s.to_string()) {
                if !sources.contains(&source) {
                    sources.push(source);
                }
            }
        }
        let mut label = hosts.join(", ");
        if !sources.is_empty() {
            label.push_str(" from ");
            label.push_str(&sources.join(", "));
        }
        label
    }
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
