//! Orderly shutdown on SIGINT/SIGTERM: the signals are blocked in every thread and one thread
//! waits for them, so a shutdown action (stopping the embedded Postgres) runs on a normal
//! thread rather than in a signal handler.

/// A shutdown never takes longer than this: supervisors (systemd, Kubernetes) send SIGKILL after
/// their own grace period, and an orchestrated restart should not wait on a Postgres that is
/// down. Exiting early loses nothing: what is not durable yet is replayed from the slot.
pub const SHUTDOWN_BOUND: std::time::Duration = std::time::Duration::from_secs(9);

/// Exits the process (status 1) if the orderly shutdown is still running after
/// [`SHUTDOWN_BOUND`].
fn watchdog() {
    let spawned = std::thread::Builder::new()
        .name("ampere-shutdown-watchdog".into())
        .spawn(|| {
            std::thread::sleep(SHUTDOWN_BOUND);
            tracing::error!(
                "shutdown did not finish within {SHUTDOWN_BOUND:?}; exiting now (data not yet \
                 durable is replayed from the replication slot at the next start)"
            );
            std::process::exit(1);
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot start the shutdown watchdog: {e}");
    }
}

/// Blocks SIGINT and SIGTERM for this thread and every thread it spawns afterwards, and starts a
/// thread that runs `on_signal` when one arrives, then exits the process with status 0.
pub fn on_shutdown(on_signal: impl FnOnce() + Send + 'static) {
    // SAFETY: sigset_t is plain data; sigemptyset/sigaddset initialise it before use, and
    // pthread_sigmask only changes this thread's mask.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    let spawned = std::thread::Builder::new()
        .name("ampere-signals".into())
        .spawn(move || {
            let mut sig: libc::c_int = 0;
            // SAFETY: `set` is an initialised signal set and `sig` a valid out pointer.
            let rc = unsafe { libc::sigwait(&set, &mut sig) };
            if rc == 0 {
                tracing::info!("received signal {sig}, shutting down");
                watchdog();
                on_signal();
                std::process::exit(0);
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot start the signal thread ({e}); stop with SIGKILL only");
    }
}
