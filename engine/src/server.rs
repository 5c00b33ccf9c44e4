//! Starting the engine: one listener and one runtime per core, the inbox of every core, and the
//! replication ingest on core 0.

use crate::app::core::Core;
use crate::app::router::App;
use crate::app::{CoreMsg, Shared, INBOX_CAPACITY};
use crate::config::Config;
use crate::http::{self, Limits};
use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

/// What each core takes at start: its listener and its inbox.
type CoreStart = (std::net::TcpListener, flume::Receiver<CoreMsg>);

/// Runs Ampere until the process is stopped.
pub fn run(config: Config, db_url: String) -> Result<()> {
    let cores = config.cores();
    let addr = SocketAddr::new(config.listen_addr, config.port);
    let listeners =
        http::bind_reuseport_group(addr, cores).with_context(|| format!("listen on {addr}"))?;
    let mut senders = Vec::with_capacity(cores);
    let mut receivers = Vec::with_capacity(cores);
    for _ in 0..cores {
        let (tx, rx) = flume::bounded::<CoreMsg>(INBOX_CAPACITY);
        senders.push(tx);
        receivers.push(Some(rx));
    }
    let driver = config.io_driver;
    tracing::info!("ampere listening on {addr} with {cores} cores ({driver:?} driver)");
    let shared = Arc::new(Shared::new(config, db_url, senders));
    // Start-up hand-off only: each core takes its listener and inbox once.
    let per_core: Arc<Mutex<Vec<Option<CoreStart>>>> = Arc::new(Mutex::new(
        listeners
            .into_iter()
            .zip(receivers)
            .map(|(l, r)| r.map(|r| (l, r)))
            .collect(),
    ));
    crate::runtime::run_per_core(cores, driver, move |id| {
        let shared = shared.clone();
        let taken = per_core.lock().expect("start-up lock")[id].take();
        async move {
            let (listener, inbox) = taken.expect("each core starts once");
            let core = Core::new(id, shared.clone());
            monoio::spawn(core.clone().run_inbox(inbox));
            if id == 0 {
                monoio::spawn(crate::ingest::setup::run(shared.clone()));
            }
            let listener = match monoio::net::TcpListener::from_std(listener) {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!("core {id}: cannot use listener: {e}");
                    return;
                }
            };
            let app: Rc<dyn http::Handler> = Rc::new(App { core });
            http::serve(listener, app, Limits::default()).await;
        }
    })
    .context("run cores")
}
