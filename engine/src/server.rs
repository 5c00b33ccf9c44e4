//! Starting the engine: one listener and one runtime per core, the inbox of every core, and the
//! replication ingest on core 0.

use crate::app::core::Core;
use crate::app::router::App;
use crate::app::{CoreMsg, Shared, INBOX_CAPACITY};
use crate::config::Config;
use crate::http;
use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

/// What each core takes at start: its listener, its inbox, the stored shapes it owns and its
/// storage worker.
type CoreStart = (
    std::net::TcpListener,
    flume::Receiver<CoreMsg>,
    Vec<crate::storage::StoredShape>,
    flume::Sender<crate::app::durability::Job>,
);

/// Finds every shape under the storage dir by its metadata (nothing else is read: a shape is
/// loaded when first needed, `app::dormant`) and sorts them by owning core (the handle carries
/// the definition hash that decides the owner). Shapes whose metadata is unreadable are
/// dropped: their handles get 409 and clients resync.
fn recover(config: &Config, cores: usize) -> Result<Vec<Vec<crate::storage::StoredShape>>> {
    let root = &config.storage_dir;
    std::fs::create_dir_all(root.join("shapes"))
        .with_context(|| format!("create the storage dir {}", root.display()))?;
    let started = std::time::Instant::now();
    let found = crate::storage::list_stored(root)
        .with_context(|| format!("read the storage dir {}", root.display()))?;
    let mut per_core: Vec<Vec<_>> = (0..cores).map(|_| Vec::new()).collect();
    let (mut ok, mut bad) = (0usize, 0usize);
    for r in found {
        match r {
            Ok(shape) => {
                let owner = protocol::handle::parse_handle(&shape.meta.handle)
                    .map_or(0, |(h, _)| h as usize % cores);
                per_core[owner].push(shape);
                ok += 1;
            }
            Err(f) => {
                tracing::warn!(
                    "shape {} cannot be recovered ({}); dropping it",
                    f.handle,
                    f.error
                );
                if let Err(e) = crate::storage::remove_shape_dir(&f.dir) {
                    tracing::warn!("cannot remove {}: {e}", f.dir.display());
                }
                bad += 1;
            }
        }
    }
    tracing::info!(
        "found {ok} stored shapes and {bad} in an invalid state in {:?}",
        started.elapsed()
    );
    Ok(per_core)
}

/// The running engine, for the signal thread's orderly shutdown.
static RUNNING: std::sync::OnceLock<Arc<Shared>> = std::sync::OnceLock::new();
/// Set once shutdown has begun: ended connections are then expected, not retried.
static SHUTTING_DOWN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether the process is shutting down.
pub fn shutting_down() -> bool {
    SHUTTING_DOWN.load(std::sync::atomic::Ordering::Relaxed)
}

/// Asks every core to write its shapes out, waits (bounded: 5 s) for them, then syncs the
/// storage file system once. Called from the signal thread before the process exits.
pub fn shutdown() {
    SHUTTING_DOWN.store(true, std::sync::atomic::Ordering::Relaxed);
    let Some(shared) = RUNNING.get() else { return };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut replies = Vec::new();
    for inbox in &shared.inboxes {
        let (tx, rx) = flume::bounded(1);
        if inbox
            .send_timeout(
                CoreMsg::Shutdown { reply: tx },
                deadline.saturating_duration_since(std::time::Instant::now()),
            )
            .is_ok()
        {
            replies.push(rx);
        }
    }
    for rx in replies {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if rx.recv_timeout(left).is_err() {
            tracing::warn!("a core did not finish writing its shapes before shutdown");
        }
    }
    if let Err(e) = crate::storage::sync_filesystem(&shared.config.storage_dir) {
        tracing::warn!("final sync of the storage dir failed: {e}");
    }
}

/// Runs Ampere until the process is stopped. `_owner` proves this process holds the storage
/// directory (it stays locked while the process lives).
pub fn run(config: Config, db_url: String, _owner: crate::storage::StorageLock) -> Result<()> {
    let cores = config.cores();
    let addr = SocketAddr::new(config.http_listen_ip(), config.port);
    http::ensure_port_free(addr).with_context(|| format!("listen on {addr}"))?;
    let listeners =
        http::bind_reuseport_group(addr, cores).with_context(|| format!("listen on {addr}"))?;
    raise_fd_limit();
    let metrics_listener = match config.prometheus_port {
        Some(port) => {
            let addr = SocketAddr::new(config.http_listen_ip(), port);
            http::ensure_port_free(addr)
                .with_context(|| format!("listen on {addr} (ELECTRIC_PROMETHEUS_PORT)"))?;
            let l = http::bind_reuseport(addr)
                .with_context(|| format!("listen on {addr} (ELECTRIC_PROMETHEUS_PORT)"))?;
            tracing::info!("metrics on http://{addr}/metrics");
            Some(l)
        }
        None => None,
    };
    let metrics_listener = Arc::new(Mutex::new(metrics_listener));
    let mut recovered = recover(&config, cores)?;
    let mut senders = Vec::with_capacity(cores);
    let mut receivers = Vec::with_capacity(cores);
    for _ in 0..cores {
        let (tx, rx) = flume::bounded::<CoreMsg>(INBOX_CAPACITY);
        senders.push(tx);
        receivers.push(Some(rx));
    }
    // Started here, where failing to start one is an error for the caller: without its worker a
    // core could never make anything durable.
    let workers = (0..cores)
        .map(|id| {
            crate::app::durability::start_worker(id)
                .with_context(|| format!("start the storage worker of core {id}"))
        })
        .collect::<Result<Vec<_>>>()?;
    let driver = config.io_driver;
    tracing::info!("ampere listening on {addr} with {cores} cores ({driver:?} driver)");
    let shared = Arc::new(Shared::new(config, db_url, senders));
    let _ = RUNNING.set(shared.clone());
    // Start-up hand-off only: each core takes its listener and inbox once.
    let per_core: Arc<Mutex<Vec<Option<CoreStart>>>> = Arc::new(Mutex::new(
        listeners
            .into_iter()
            .zip(receivers)
            .zip(recovered.drain(..))
            .zip(workers)
            .map(|(((l, r), found), w)| r.map(|r| (l, r, found, w)))
            .collect(),
    ));
    crate::runtime::run_per_core(cores, driver, move |id| {
        let shared = shared.clone();
        let taken = per_core.lock().expect("start-up lock")[id].take();
        let metrics_listener = metrics_listener.clone();
        async move {
            let (listener, inbox, found, worker) = taken.expect("each core starts once");
            let limits = shared.config.http_limits();
            let cache_share = shared.config.chunk_cache_bytes / cores as u64;
            crate::storage::chunk_cache::set_budget(
                usize::try_from(cache_share).unwrap_or(usize::MAX),
            );
            shared.metrics.core(id).register_thread_clock();
            let core = Core::new(id, shared.clone(), found, worker);
            monoio::spawn(core.clone().run_inbox(inbox));
            monoio::spawn(crate::app::durability::sync_loop(core.clone()));
            monoio::spawn(core.timers.clone().sweep());
            if id == 0 {
                monoio::spawn(crate::ingest::setup::run(shared.clone()));
                let metrics = metrics_listener.lock().expect("start-up lock").take();
                if let Some(l) = metrics {
                    match monoio::net::TcpListener::from_std(l) {
                        Ok(l) => {
                            let handler = crate::metrics::listener::handler(shared.clone());
                            monoio::spawn(http::serve(l, handler, limits));
                        }
                        Err(e) => tracing::error!("cannot use the metrics listener: {e}"),
                    }
                }
            }
            let listener = match monoio::net::TcpListener::from_std(listener) {
                Ok(l) => l,
                Err(e) => {
                    // A core without its listener would still own shapes nobody could reach
                    // through it; running on degraded is worse than a clear stop.
                    tracing::error!("core {id}: cannot use its listener: {e}; stopping");
                    std::process::exit(1);
                }
            };
            let app: Rc<dyn http::Handler> = Rc::new(App { core });
            http::serve(listener, app, limits).await;
        }
    })
    .context("run cores")
}

/// Each open shape holds a few file descriptors and each client a socket: use the hard limit.
fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                tracing::warn!("cannot raise the open-file limit");
            }
        }
    }
}
