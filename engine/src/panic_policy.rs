//! One rule for panics: **a panic stops the node.**
//!
//! A panic means a bug: an internal invariant did not hold (offsets went backwards, a log entry
//! arrived before its snapshot ended, a buffer was not where its index said). All of a core's
//! state lives in `Rc<RefCell<…>>` shared by every task on that core, so the task that panicked
//! may have left a shape half-updated — a log with an entry and no index, a snapshot marked done
//! with rows missing — and another request on the same core would serve it. Catching the panic
//! per request (a 500, and carry on) would turn a bug into silently wrong data for clients. A
//! core cannot stop alone either: it owns a share of the shapes and the ingest core blocks on
//! its bounded channel. So the whole process stops.
//!
//! Stopping is safe because it is the same as `kill -9`, which durability is built and tested
//! for: the replication slot is only acknowledged after every core fsynced what it applied, so
//! on restart Postgres replays what was not yet durable, shapes skip what they already hold,
//! and clients resume with the same handles. A supervisor (systemd, Kubernetes) restarts it.
//!
//! How: `install` (called first thing by `ampere`'s `main`) replaces the panic hook with one that
//! logs the panic once — thread (core), message, location and a backtrace — and then aborts, so
//! nothing unwinds and no other task runs after the bug was seen. Nothing in the engine catches
//! panics: a library embedding without the hook still stops, because `runtime::run_per_core`
//! returns the first core's panic as an error.
//!
//! Operating errors (bad input, a lost connection, a full disk) are never panics: they are
//! `Result`s handled where they occur (`docs/error-handling.md`).

use std::backtrace::Backtrace;
use std::panic::PanicHookInfo;

/// Installs the hook: log the panic, then abort the process.
pub fn install() {
    std::panic::set_hook(Box::new(|info| {
        report(info);
        std::process::abort();
    }));
}

/// Logs one panic through `tracing` (and to stderr, in case logging is not set up or a panic
/// happened inside the logger).
fn report(info: &PanicHookInfo<'_>) {
    let thread = std::thread::current();
    let thread = thread.name().unwrap_or("unnamed");
    let message = message(info);
    let location = info
        .location()
        .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
        .unwrap_or_else(|| "unknown location".to_owned());
    let backtrace = Backtrace::force_capture();
    tracing::error!(
        thread,
        location = %location,
        "panicked: {message}; stopping the process (a panic is a bug and the state it touched \
         cannot be trusted; durable data is recovered on restart)\n{backtrace}"
    );
    eprintln!("ampere: thread '{thread}' panicked at {location}: {message}; aborting");
}

fn message(info: &PanicHookInfo<'_>) -> String {
    let payload = info.payload();
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
