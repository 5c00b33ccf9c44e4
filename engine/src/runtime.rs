//! Thread-per-core bootstrap: one pinned OS thread per core, each running its own monoio runtime.
//!
//! This is the only module that constructs monoio drivers, so the I/O driver choice is made in
//! one place (`--io-driver`). Futures run here are `!Send`: everything a core owns stays on it,
//! and cores talk through bounded channels (monoio's `sync` feature makes cross-thread wakers
//! work, which flume channels between cores need).

use std::any::Any;
use std::future::Future;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::str::FromStr;
use std::sync::{mpsc, Arc};
use std::thread;

use monoio::{FusionDriver, IoUringDriver, LegacyDriver, RuntimeBuilder};

/// Submission-queue entries per io_uring ring (also the epoll event batch size).
const RING_ENTRIES: u32 = 1024;

/// Which monoio driver each core's runtime uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoDriver {
    /// io_uring; starting fails when the kernel does not offer it.
    Uring,
    /// epoll (monoio's `LegacyDriver`).
    Epoll,
    /// io_uring when available, else epoll, decided at run time (`FusionDriver`). Benchmarks
    /// should name a driver explicitly instead.
    Auto,
}

/// The error for an unknown `--io-driver` value.
#[derive(Debug, thiserror::Error)]
#[error("unknown I/O driver {0:?}: expected uring, epoll or auto")]
pub struct ParseIoDriverError(String);

impl FromStr for IoDriver {
    type Err = ParseIoDriverError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "uring" | "io_uring" | "iouring" => Ok(Self::Uring),
            "epoll" | "legacy" => Ok(Self::Epoll),
            "auto" => Ok(Self::Auto),
            _ => Err(ParseIoDriverError(text.to_owned())),
        }
    }
}

impl std::fmt::Display for IoDriver {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            Self::Uring => "uring",
            Self::Epoll => "epoll",
            Self::Auto => "auto",
        })
    }
}

/// Whether the running kernel offers the io_uring operations monoio needs.
pub fn uring_available() -> bool {
    monoio::utils::detect_uring()
}

/// Runs `f(core_index)` on `cores` pinned threads (`ampere-core-N`), one monoio runtime each,
/// and waits for all of them.
///
/// Returns an error as soon as any core fails to start its runtime or panics; the panic message
/// is included. The other cores are then left running detached (there is no general way to stop
/// an arbitrary future on another thread), so the caller is expected to exit the process.
pub fn run_per_core<F, Fut>(cores: usize, driver: IoDriver, f: F) -> io::Result<()>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + 'static,
{
    if cores == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "core count must be at least 1",
        ));
    }
    if driver == IoDriver::Uring && !uring_available() {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "io_uring was requested but this kernel does not offer it (disabled by \
             /proc/sys/kernel/io_uring_disabled, a seccomp filter, or too old); \
             use --io-driver epoll",
        ));
    }
    let core_ids = core_affinity::get_core_ids().unwrap_or_default();
    let f = Arc::new(f);
    let (done_tx, done_rx) = mpsc::channel::<(usize, Result<(), String>)>();
    let mut handles = Vec::with_capacity(cores);
    for index in 0..cores {
        let f = Arc::clone(&f);
        let done_tx = done_tx.clone();
        let core_id = (!core_ids.is_empty()).then(|| core_ids[index % core_ids.len()]);
        let handle = thread::Builder::new()
            .name(format!("ampere-core-{index}"))
            .spawn(move || {
                pin(index, core_id);
                let outcome = catch_unwind(AssertUnwindSafe(|| run_core(index, driver, &*f)));
                let outcome = match outcome {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(error)) => Err(format!("failed to start runtime: {error}")),
                    Err(payload) => Err(format!("panicked: {}", panic_message(&*payload))),
                };
                // The receiver only disappears once run_per_core has returned; nothing to do then.
                let _ = done_tx.send((index, outcome));
            })?;
        handles.push(handle);
    }
    drop(done_tx);
    for _ in 0..cores {
        match done_rx.recv() {
            Ok((_, Ok(()))) => {}
            Ok((index, Err(message))) => {
                tracing::error!(core = index, "core {index} {message}");
                return Err(io::Error::other(format!("core {index} {message}")));
            }
            Err(_) => return Err(io::Error::other("a core thread exited without reporting")),
        }
    }
    for handle in handles {
        // Every thread has reported already, so joining cannot block for long.
        let _ = handle.join();
    }
    Ok(())
}

/// Pins the current thread; a failure only costs locality, so it is a warning.
fn pin(index: usize, core_id: Option<core_affinity::CoreId>) {
    let pinned = core_id.is_some_and(core_affinity::set_for_current);
    if !pinned {
        tracing::warn!(
            core = index,
            "could not pin core thread to a CPU; running unpinned"
        );
    }
}

/// Builds this core's runtime with the chosen driver and runs the core's future to completion.
fn run_core<F, Fut>(index: usize, driver: IoDriver, f: &F) -> io::Result<()>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    match driver {
        IoDriver::Uring => {
            let build = |setup: io_uring::Builder| {
                RuntimeBuilder::<IoUringDriver>::new()
                    .with_entries(RING_ENTRIES)
                    .uring_builder(setup)
                    .enable_timer()
                    .build()
            };
            let mut runtime = match build(ring_setup()) {
                Err(error) if error.raw_os_error() == Some(libc::EINVAL) => {
                    tracing::info!(
                        core = index,
                        "io_uring without COOP_TASKRUN/SINGLE_ISSUER (older kernel)"
                    );
                    build(io_uring::IoUring::builder())
                }
                built => built,
            }
            .map_err(|error| context(error, "build io_uring runtime"))?;
            runtime.block_on(f(index));
        }
        IoDriver::Epoll => {
            let mut runtime = RuntimeBuilder::<LegacyDriver>::new()
                .with_entries(RING_ENTRIES)
                .enable_timer()
                .build()
                .map_err(|error| context(error, "build epoll runtime"))?;
            runtime.block_on(f(index));
        }
        IoDriver::Auto => {
            let mut runtime = RuntimeBuilder::<FusionDriver>::new()
                .with_entries(RING_ENTRIES)
                .enable_timer()
                .build()
                .map_err(|error| context(error, "build runtime"))?;
            runtime.block_on(f(index));
        }
    }
    Ok(())
}

/// How each core's ring is set up. Profiles of catch-up serving on a virtualized 2-CPU kernel
/// put 12% of the server's time in waking the ring's thread for completions: reschedule IPIs
/// and contended task-work locks (`io_run_task_work`), where epoll's wake-ups cost half that.
/// `COOP_TASKRUN` lets completions wait for the thread's next entry into the kernel instead of
/// interrupting it (each core enters on every loop turn anyway), and a ring is only ever used
/// by the thread that built it (`SINGLE_ISSUER`). Kernels without them (before 5.19 / 6.0)
/// refuse the flags with `EINVAL`: a plain ring is built then.
fn ring_setup() -> io_uring::Builder {
    let mut builder = io_uring::IoUring::builder();
    builder.setup_coop_taskrun().setup_single_issuer();
    builder
}

fn context(error: io::Error, what: &str) -> io::Error {
    io::Error::new(error.kind(), format!("{what}: {error}"))
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_driver_names() {
        assert_eq!("uring".parse::<IoDriver>().unwrap(), IoDriver::Uring);
        assert_eq!("EPOLL".parse::<IoDriver>().unwrap(), IoDriver::Epoll);
        assert_eq!("auto".parse::<IoDriver>().unwrap(), IoDriver::Auto);
        assert!("kqueue".parse::<IoDriver>().is_err());
        for driver in [IoDriver::Uring, IoDriver::Epoll, IoDriver::Auto] {
            assert_eq!(driver.to_string().parse::<IoDriver>().unwrap(), driver);
        }
    }
}
