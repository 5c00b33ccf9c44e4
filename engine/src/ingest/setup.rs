//! The replication session: connection setup as upstream does it (advisory lock per slot,
//! publication, slot), then the stream loop that assembles transactions and hands them to the
//! shape-owning cores.

use super::assemble::Assembler;
use crate::app::{CoreMsg, Shared, Status};
use crate::catalog::quote_literal;
use crate::pg::Connection;
use anyhow::{Context, Result};
use pgwire::types::Lsn;
use protocol::ident::quote_ident;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

/// Session settings that fix the text form of values (upstream's display settings).
pub const DISPLAY_SETTINGS: &[&str] = &[
    "SET bytea_output = 'hex'",
    "SET DateStyle = 'ISO, DMY'",
    "SET TimeZone = 'UTC'",
    "SET extra_float_digits = 1",
    "SET IntervalStyle = 'iso_8601'",
];

const DUPLICATE_OBJECT: &str = "42710";
/// How often durable progress is checked when no data arrives.
const ACK_INTERVAL: Duration = Duration::from_millis(100);
/// How often the server is asked for its position while a core waits for one.
const PROGRESS_POLL: Duration = Duration::from_millis(5);

/// Runs replication forever, reconnecting with capped exponential backoff.
pub async fn run(shared: Arc<Shared>) {
    let mut backoff = Duration::from_millis(200);
    let mut last_system: Option<(String, u32)> = None;
    let mut previous_backend: Option<i32> = None;
    // Chosen once: a random name stays this process's for every reconnect.
    let slot = shared.config.slot_name();
    loop {
        let outcome = session(&shared, &mut last_system, &mut previous_backend, &slot).await;
        if crate::server::shutting_down() {
            // The process is stopping (and may have stopped the embedded Postgres itself): an
            // ended stream is expected, and reconnecting would only delay the exit.
            tracing::info!("replication stopped for shutdown");
            return;
        }
        match outcome {
            Ok(()) => {
                // Idle (`ELECTRIC_REPLICATION_IDLE_TIMEOUT`): every connection is closed until a
                // shape request wakes replication.
                backoff = Duration::from_millis(200);
                // Stale wake-ups go first: one that arrives from now on must not be lost.
                while shared.wake_rx.try_recv().is_ok() {}
                shared.set_status(Status::Sleeping);
                for inbox in &shared.inboxes {
                    let _ = inbox.send_async(CoreMsg::ReleaseConnections).await;
                }
                let _ = shared.wake_rx.recv_async().await;
                tracing::info!("a shape request woke replication; reconnecting");
                shared.set_status(Status::Starting);
                continue;
            }
            Err(e) => {
                shared.set_status(Status::Starting);
                tracing::warn!("replication stopped: {e:#}; reconnecting in {backoff:?}");
            }
        }
        monoio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

async fn session(
    shared: &Arc<Shared>,
    last_system: &mut Option<(String, u32)>,
    previous_backend: &mut Option<i32>,
    slot: &str,
) -> Result<()> {
    let slot = slot.to_string();
    let publication = shared.config.publication_name();
    let mut cfg = shared
        .config
        .pg_connect_config(&shared.db_url)
        .context("parse DATABASE_URL")?;
    cfg.replication = true;
    cfg.application_name = Some("ampere_replication".into());
    let mut conn = Connection::connect(&cfg)
        .await
        .context("connect for replication")?;
    tracing::info!(
        "replication connection to {}:{}: {}",
        cfg.host,
        cfg.port,
        conn.security(&cfg)
    );
    if let Some(pid) = previous_backend.take() {
        end_previous_session(&mut conn, pid, &slot).await;
    }
    *previous_backend = conn.backend_key().map(|k| k.process_id);
    let system = conn.identify_system().await.context("IDENTIFY_SYSTEM")?;
    warn_about_locale(&mut conn).await;
    for s in DISPLAY_SETTINGS {
        conn.execute(s).await.context("apply display settings")?;
    }
    shared.set_status(Status::Waiting);
    conn.simple_query(&format!(
        "SELECT pg_advisory_lock(hashtext({}))",
        quote_literal(&slot)
    ))
    .await
    .context("take the slot's advisory lock")?;
    let mut purge = false;
    let manual = shared.config.manual_table_publishing;
    if manual {
        let exists = conn
            .simple_query(&format!(
                "SELECT 1 FROM pg_publication WHERE pubname = {}",
                quote_literal(&publication)
            ))
            .await
            .context("look up the publication")?
            .iter()
            .any(|r| !r.rows.is_empty());
        if !exists {
            anyhow::bail!(
                "publication {} does not exist and ELECTRIC_MANUAL_TABLE_PUBLISHING prevents \
                 Ampere from creating it; create it with: CREATE PUBLICATION {}",
                quote_ident(&publication),
                quote_ident(&publication)
            );
        }
    }
    if !manual {
        match conn
            .execute(&format!("CREATE PUBLICATION {}", quote_ident(&publication)))
            .await
        {
            Ok(_) => {
                // A new publication means a new stream: an old slot would replay without the
                // publication's history, so it is recreated.
                purge = true;
                let _ = conn
                    .simple_query(&format!(
                        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = {}",
                        quote_literal(&slot)
                    ))
                    .await;
            }
            Err(e) if e.code() == Some(DUPLICATE_OBJECT) => {}
            Err(e) => return Err(e).context("create publication"),
        }
    }
    let temporary = shared.config.temporary_slot();
    match conn.create_logical_slot(&slot, temporary).await {
        Ok(_) => purge = true,
        Err(e) if e.code() == Some(DUPLICATE_OBJECT) => {}
        Err(e) => return Err(e).context("create replication slot"),
    }
    let identity = (system.systemid.clone(), system.timeline);
    if last_system.as_ref().is_some_and(|s| *s != identity) {
        purge = true;
    }
    // Stored shapes belong to one Postgres system and timeline: another one means their
    // offsets mean nothing there.
    let state_file = shared.config.storage_dir.join("replication_state");
    let state = format!("{} {} {slot}\n", identity.0, identity.1);
    match std::fs::read_to_string(&state_file) {
        Ok(prev) if prev != state => {
            tracing::warn!("the database system, timeline or slot changed: purging all shapes");
            purge = true;
        }
        _ => {}
    }
    *last_system = Some(identity);
    // Shapes recovered from storage come back (or go) before any transaction is streamed, so
    // none is missed or applied to a shape that does not exist yet.
    let mut replies = Vec::with_capacity(shared.inboxes.len());
    for inbox in &shared.inboxes {
        let (tx, rx) = flume::bounded(1);
        inbox
            .send_async(CoreMsg::Restore { purge, reply: tx })
            .await
            .context("ask cores to restore their shapes")?;
        replies.push(rx);
    }
    for rx in replies {
        rx.recv_async().await.context("wait for cores to restore")?;
    }
    if purge {
        shared.reset_durable();
    }
    std::fs::write(&state_file, &state)
        .with_context(|| format!("write {}", state_file.display()))?;
    let settings = crate::pg::StreamSettings {
        silence_timeout: shared.config.replication_silence_timeout,
        forward_keepalives: true,
        ..Default::default()
    };
    let mut stream = conn
        .start_replication_with(
            &slot,
            Lsn(0),
            &[
                ("proto_version", "1"),
                ("publication_names", publication.as_str()),
            ],
            settings,
        )
        .await
        .context("START_REPLICATION")?;
    shared.set_status(Status::Active);
    tracing::info!("replicating from slot {slot} (publication {publication})");
    let mut asm = Assembler::new(usize::try_from(shared.config.max_txn_size).unwrap_or(usize::MAX));
    let mut last_report = std::time::Instant::now();
    let idle_after = shared
        .config
        .replication_idle_timeout
        .filter(|t| !t.is_zero());
    let mut last_txn = std::time::Instant::now();
    let mut last_reply_request = std::time::Instant::now();
    // The end of the last transaction handed to the cores, and the furthest position the
    // server said it had sent while no transaction was being received.
    let (mut handed_end, mut caught_up_to) = (0u64, 0u64);
    loop {
        // A core waits to know that the stream has passed a position (`Shared::progress`):
        // ask the server where it stands, often, until it has.
        let wanted = shared.progress.wanted();
        if wanted != 0 && last_reply_request.elapsed() >= PROGRESS_POLL {
            stream.request_reply();
            last_reply_request = std::time::Instant::now();
        }
        let wait = if wanted != 0 {
            PROGRESS_POLL
        } else {
            ACK_INTERVAL
        };
        // Wake up now and then even without data, to acknowledge what became durable; and at
        // once when a core starts waiting for a position (both receives are cancel-safe).
        let next = monoio::select! {
            next = monoio::time::timeout(wait, stream.next()) => next,
            _ = shared.progress.wake_rx.recv_async() => {
                let now = std::time::Instant::now();
                last_reply_request = now.checked_sub(PROGRESS_POLL).unwrap_or(now);
                continue;
            }
        };
        let durable = shared.min_durable();
        if durable > stream.flush_lsn().0 {
            // Every core has stored (or had nothing to store of) everything up to here. Tell
            // Postgres soon (not only at the periodic status update), so a crash replays little.
            stream.set_flush_lsn(Lsn(durable));
            if last_report.elapsed() >= ACK_INTERVAL {
                stream.request_status_update();
                last_report = std::time::Instant::now();
            }
        }
        let stats = &shared.metrics.ingest;
        let Ok(x) = next else {
            // Nothing for a while: everything the server announced has been handled.
            let received = stream.received_lsn().0;
            stats.note_positions(received, received, shared.metrics.started);
            if let Some(idle) = idle_after {
                if last_txn.elapsed() >= idle {
                    // Acknowledge what is durable before the connection goes.
                    stream.request_status_update();
                    monoio::time::sleep(Duration::from_millis(50)).await;
                    tracing::info!(
                        "closing all database connections after the replication stream has been \
                         idle for {} seconds",
                        idle.as_secs()
                    );
                    return Ok(());
                }
            }
            continue;
        };
        let x = x.context("read replication stream")?;
        if x.data.is_empty() {
            // A keepalive: every transaction before `wal_end` has been handed to the cores
            // (they come in stream order), so the cores may learn the position in order too.
            if !asm.in_txn() {
                caught_up_to = caught_up_to.max(x.wal_end.0);
            }
            // Once everything handed over is durable, nothing before `wal_end` is left to
            // store: acknowledge up to it, not only up to the last commit. Postgres's WAL
            // sender waits at a fast shutdown until the client confirms everything it sent
            // (its position moves past the last commit with other WAL, e.g. a transaction still
            // open), so acknowledging only commits would keep Postgres from stopping.
            // Transactions that commit after this position are still streamed after a restart.
            if shared.min_durable() >= handed_end && caught_up_to > stream.flush_lsn().0 {
                stream.set_flush_lsn(Lsn(caught_up_to));
                stream.request_status_update();
            }
            if wanted != 0 && x.wal_end.0 >= wanted {
                shared.progress.reached(x.wal_end.0);
                for inbox in &shared.inboxes {
                    inbox
                        .send_async(CoreMsg::Progress(x.wal_end.0))
                        .await
                        .context("hand progress to a core")?;
                }
            }
            continue;
        }
        stats.wal_bytes.fetch_add(x.data.len() as u64, Relaxed);
        let server_end = x.wal_end.0.max(stream.received_lsn().0);
        stats.note_positions(server_end, 0, shared.metrics.started);
        if let Some(txn) = asm.push(&x.data)? {
            last_txn = std::time::Instant::now();
            stats.transactions.fetch_add(1, Relaxed);
            stats.changes.fetch_add(txn.changes.len() as u64, Relaxed);
            stats.note_positions(server_end, txn.end_lsn, shared.metrics.started);
            handed_end = handed_end.max(txn.end_lsn);
            let txn = Arc::new(txn);
            for inbox in &shared.inboxes {
                inbox
                    .send_async(CoreMsg::Txn(txn.clone()))
                    .await
                    .context("hand transaction to a core")?;
            }
        }
    }
}

/// Ampere evaluates WHERE clauses itself, with Unicode case mapping for `ILIKE`/`lower()`/
/// `upper()` (as Postgres under a UTF-8 libc ctype) and byte order for text `<`/`>` (as the C
/// collation). A database with other settings can disagree with Ampere on those clauses, so
/// say so once per process rather than route rows differently without a word.
async fn warn_about_locale(conn: &mut Connection) {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if WARNED.load(Relaxed) {
        return;
    }
    let sql = "SELECT datctype, datcollate FROM pg_database WHERE datname = current_database()";
    let Ok(results) = conn.simple_query(sql).await else {
        return;
    };
    let Some(row) = results.iter().flat_map(|r| r.rows.iter()).next() else {
        return;
    };
    let (ctype, collate) = (row.get(0).unwrap_or(""), row.get(1).unwrap_or(""));
    WARNED.store(true, Relaxed);
    let utf8 = |l: &str| {
        let l = l.to_ascii_lowercase();
        l.ends_with(".utf-8") || l.ends_with(".utf8")
    };
    if !utf8(ctype) {
        tracing::warn!(
            "the database's LC_CTYPE is {ctype:?}: Postgres then case-maps only what that locale \
             knows in ILIKE, lower() and upper(), while Ampere maps Unicode as a UTF-8 locale \
             does; shapes using these on non-ASCII text may get different rows than Postgres \
             would select"
        );
    }
    if !matches!(collate, "C" | "POSIX" | "C.UTF-8" | "C.utf8") {
        tracing::warn!(
            "the database's LC_COLLATE is {collate:?}: Ampere compares text in byte order (the \
             C collation) for <, <=, >, >= and BETWEEN in WHERE clauses, which differs from \
             {collate:?} for mixed case and non-ASCII text"
        );
    }
}

/// Ends this process's previous replication session on the server if it is still there: a
/// connection Ampere gave up on (silent, presumed dead behind a NAT or load balancer) may live
/// on in Postgres, holding the slot and the advisory lock until `wal_sender_timeout`, and the
/// new session would wait for both. Only that backend is ended (its PID and Ampere's
/// replication `application_name`), never another instance's.
async fn end_previous_session(conn: &mut Connection, pid: i32, slot: &str) {
    // Ours only: Ampere's replication application name, and holding this stream's slot or an
    // advisory lock (after a failover or a PID reuse, the PID alone could name another
    // session).
    let sql = format!(
        "SELECT pg_terminate_backend(a.pid) FROM pg_stat_activity a \
         WHERE a.pid = {pid} AND a.application_name = 'ampere_replication' \
         AND (a.pid IN (SELECT active_pid FROM pg_replication_slots WHERE slot_name = {slot}) \
           OR a.pid IN (SELECT l.pid FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted))",
        slot = quote_literal(slot)
    );
    match conn.simple_query(&sql).await {
        Ok(results) if results.iter().any(|r| !r.rows.is_empty()) => {
            tracing::info!(
                "ended the previous replication session (backend {pid}) still open on the server"
            );
            // The slot is released once that backend has exited.
            for _ in 0..50 {
                let gone = conn
                    .simple_query(&format!("SELECT 1 FROM pg_stat_activity WHERE pid = {pid}"))
                    .await
                    .map(|r| r.iter().all(|r| r.rows.is_empty()))
                    .unwrap_or(true);
                if gone {
                    break;
                }
                monoio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(_) => {}
        Err(e) => tracing::debug!("could not check for the previous replication session: {e}"),
    }
}
