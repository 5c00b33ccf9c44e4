//! Ampere's own replication client draining a slot: connect, START_REPLICATION, read every
//! XLogData up to an end LSN and decode each message with the pgoutput decoder.
//!
//! The drain runs on a fresh single-core monoio runtime built by `engine::runtime`, so the
//! driver (io_uring or epoll) is chosen exactly as the engine chooses it.

use std::pin::pin;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _, Result};
use engine::pg::{ConnectConfig, Connection};
use engine::runtime::{run_per_core, IoDriver};
use pgwire::types::Lsn;
use testkit::ConnParams;

use crate::recording::Recording;
use crate::tally::{StreamDecoder, Tally};
use crate::workload::PUBLICATION;

/// How often an idle stream checks whether the server's keepalives have passed the end LSN
/// (the end can lie past the last change, e.g. behind a background checkpoint record).
const IDLE_CHECK: Duration = Duration::from_millis(20);

/// What one drain did.
#[derive(Debug)]
pub struct ClientRun {
    /// From before connecting until the last message at or before the end LSN was decoded.
    pub elapsed: Duration,
    /// CPU time of the runtime thread (user + system) over the same span.
    pub cpu: Duration,
    pub tally: Tally,
    /// Every payload, when recording was asked for.
    pub recording: Option<Recording>,
}

/// Which slot to drain and how far.
#[derive(Clone, Debug)]
pub struct DrainTarget {
    pub params: ConnParams,
    pub slot: String,
    /// Stop once a message or keepalive reaches this position (as `pg_recvlogical -E` does).
    pub end: Lsn,
}

/// Drains `target` on a new runtime thread with `driver`, decoding every message, and keeps
/// the payloads when `record` is set.
pub fn drain(target: &DrainTarget, driver: IoDriver, record: bool) -> Result<ClientRun> {
    let url = format!(
        "{}?replication=database&application_name=bench-harness",
        target.params.url()
    );
    let config = ConnectConfig::from_url(&url).context("build connection config")?;
    let (result_tx, result_rx) = mpsc::channel();
    let slot = target.slot.clone();
    let end = target.end;
    run_per_core(1, driver, move |_core| {
        let config = config.clone();
        let slot = slot.clone();
        let result_tx = result_tx.clone();
        async move {
            let result = drain_on_runtime(config, slot, end, record).await;
            // The receiver lives until run_per_core returns, so the send cannot fail.
            let _ = result_tx.send(result);
        }
    })
    .with_context(|| format!("run the {driver} runtime"))?;
    result_rx
        .recv()
        .map_err(|_| anyhow!("the drain runtime exited without a result"))?
}

async fn drain_on_runtime(
    config: ConnectConfig,
    slot: String,
    end: Lsn,
    record: bool,
) -> Result<ClientRun> {
    let cpu_start = thread_cpu_time();
    let started = Instant::now();
    let connection = Connection::connect(&config).await.context("connect")?;
    let options = [("proto_version", "1"), ("publication_names", PUBLICATION)];
    let mut stream = connection
        .start_replication(&slot, Lsn::INVALID, &options)
        .await
        .context("start replication")?;
    let mut decoder = StreamDecoder::new();
    let mut recording = record.then(Recording::default);
    let mut idle = pin!(monoio::time::sleep(IDLE_CHECK));
    loop {
        monoio::select! {
            // Biased: the idle timer is only polled when no message is waiting.
            biased;
            next = stream.next() => {
                let xlog = next.context("read replication stream")?;
                // Like pg_recvlogical -E: a record past the end is not consumed.
                if xlog.wal_start > end {
                    break;
                }
                if let Some(recording) = recording.as_mut() {
                    recording.push(&xlog.data);
                }
                let is_commit = decoder.decode(&xlog.data).context("decode pgoutput")?;
                if is_commit {
                    stream.set_flush_lsn(xlog.wal_start);
                }
                if xlog.wal_start == end {
                    break;
                }
            }
            _ = &mut idle => {
                if stream.received_lsn() >= end {
                    break;
                }
                idle.as_mut().reset(monoio::time::Instant::now() + IDLE_CHECK);
            }
        }
    }
    let elapsed = started.elapsed();
    Ok(ClientRun {
        elapsed,
        cpu: thread_cpu_time().saturating_sub(cpu_start),
        tally: decoder.tally,
        recording,
    })
}

/// CPU time consumed by the calling thread.
fn thread_cpu_time() -> Duration {
    let mut spec = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `spec` is a valid, writable timespec and the clock id is a constant the kernel
    // knows; the call writes nothing else.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut spec) };
    assert!(
        rc == 0,
        "CLOCK_THREAD_CPUTIME_ID is always available on Linux"
    );
    Duration::new(spec.tv_sec as u64, spec.tv_nsec as u32)
}
