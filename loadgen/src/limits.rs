//! Upper bounds on user-given sizes, checked before a run starts, so a typo cannot exhaust the
//! machine or run for hours.

use anyhow::bail;

use crate::cli::RunOpts;
use crate::scenario::fanout::{FanoutParams, FanoutPlan};
use crate::target::{self, Target};

/// File descriptors loadgen needs besides one per client (writer, creators, scrapes, stdio).
const FD_MARGIN: u64 = 256;

/// Live shape clients (each holds one connection and one file descriptor).
pub const MAX_CLIENTS: usize = 50_000;
/// Shapes created without a client.
pub const MAX_SHAPES: usize = 100_000;
pub const MAX_WRITES: u64 = 1_000_000;
pub const MAX_ROWS_PER_WRITE: u32 = 10_000;
pub const MAX_TOTAL_ROWS: u64 = 50_000_000;
/// Bytes of seed filler in the table (rows × payload).
pub const MAX_SEED_BYTES: u64 = 4 << 30;
/// Each client keeps a latency slot per write: bounds that memory (≈12 bytes per slot).
pub const MAX_CLIENT_WRITES: u64 = 20_000_000;
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
pub const MAX_SECS: u64 = 3_600;
pub const MAX_RATE: f64 = 1_000_000.0;

/// Fan-out parameters from the write options, validated.
pub fn fanout_params(
    writes: u64,
    writes_per_sec: f64,
    rows_per_write: u32,
    interval_secs: f64,
    run: &RunOpts,
) -> anyhow::Result<FanoutParams> {
    if writes == 0 || writes > MAX_WRITES {
        bail!("write count must be 1..={MAX_WRITES}");
    }
    if !(writes_per_sec > 0.0 && writes_per_sec <= MAX_RATE) {
        bail!("write rate must be in (0, {MAX_RATE}] per second");
    }
    if rows_per_write == 0 || rows_per_write > MAX_ROWS_PER_WRITE {
        bail!("--rows-per-write must be 1..={MAX_ROWS_PER_WRITE}");
    }
    if writes * u64::from(rows_per_write) > MAX_TOTAL_ROWS {
        bail!("at most {MAX_TOTAL_ROWS} rows per run");
    }
    if run.payload_bytes > MAX_PAYLOAD_BYTES {
        bail!("--payload-bytes must be at most {MAX_PAYLOAD_BYTES}");
    }
    if !(interval_secs >= 0.1 && interval_secs <= MAX_SECS as f64) {
        bail!("--interval-secs must be in [0.1, {MAX_SECS}]");
    }
    if run.ready_timeout_secs == 0
        || run.ready_timeout_secs > MAX_SECS
        || run.grace_secs > MAX_SECS
        || writes as f64 / writes_per_sec > MAX_SECS as f64
    {
        bail!("timeouts and the write span must each be at most {MAX_SECS} s");
    }
    Ok(FanoutParams {
        writes,
        writes_per_sec,
        rows_per_write,
        payload_bytes: run.payload_bytes,
        ready_timeout_secs: run.ready_timeout_secs,
        grace_secs: run.grace_secs,
        interval_secs,
        jitter_ms: 0,
    })
}

/// Checks the counts a plan implies.
pub fn check_plan(plan: &FanoutPlan) -> anyhow::Result<()> {
    let clients = plan.subscriptions.len();
    if clients == 0 || clients > MAX_CLIENTS {
        bail!("clients (subscriptions) must be 1..={MAX_CLIENTS}, not {clients}");
    }
    if plan.passive_shapes.len() > MAX_SHAPES {
        bail!("at most {MAX_SHAPES} shapes");
    }
    if plan.params.writes * clients as u64 > MAX_CLIENT_WRITES {
        bail!("clients × writes must be at most {MAX_CLIENT_WRITES}");
    }
    Ok(())
}

/// Checks that `clients` connections fit: the ephemeral ports of each (source, target) pair,
/// and the open-file limit (the soft limit is raised to the hard one first).
pub fn check_connections(clients: usize, endpoints: &[Target]) -> anyhow::Result<()> {
    if let Some(ports) = target::ephemeral_ports() {
        check_ports(clients, endpoints.len(), ports)?;
    }
    let needed = clients as u64 + FD_MARGIN;
    let available = raise_nofile_limit();
    if available < needed {
        bail!(
            "{clients} clients need about {needed} open files, but the limit is {available}:              raise it (`ulimit -n {needed}` or more) before running loadgen"
        );
    }
    Ok(())
}

fn check_ports(clients: usize, endpoints: usize, ports: u64) -> anyhow::Result<()> {
    let per_pair = target::clients_per_endpoint(clients, endpoints) as u64;
    if per_pair > ports {
        bail!(
            "{clients} clients over {endpoints} (source, target) pair(s) is {per_pair}              connections per pair, more than the {ports} ephemeral ports of              net.ipv4.ip_local_port_range: add --target ports or --source-addrs (or widen              the range)"
        );
    }
    Ok(())
}

/// Raises the soft open-file limit to the hard one; returns the soft limit then in force.
fn raise_nofile_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 0;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: `raised` is a valid rlimit whose soft limit equals its hard limit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        }
    }
    limit.rlim_cur
}

/// Checks a shape count.
pub fn check_shapes(shapes: usize) -> anyhow::Result<()> {
    if shapes == 0 || shapes > MAX_SHAPES {
        bail!("--shapes must be 1..={MAX_SHAPES}");
    }
    Ok(())
}

/// Checks seed rows and their filler.
pub fn check_seed(rows: u64, payload_bytes: usize) -> anyhow::Result<()> {
    if rows > MAX_TOTAL_ROWS {
        bail!("at most {MAX_TOTAL_ROWS} seed rows");
    }
    if payload_bytes > MAX_PAYLOAD_BYTES {
        bail!("--payload-bytes must be at most {MAX_PAYLOAD_BYTES}");
    }
    if rows.saturating_mul(payload_bytes as u64) > MAX_SEED_BYTES {
        bail!("rows × payload bytes must be at most {MAX_SEED_BYTES}");
    }
    Ok(())
}

/// Checks a timeout in seconds.
pub fn check_secs(name: &str, secs: u64) -> anyhow::Result<()> {
    if secs == 0 || secs > MAX_SECS {
        bail!("--{name} must be 1..={MAX_SECS}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_bound_clients_per_pair() {
        assert!(check_ports(28_232, 1, 28_232).is_ok());
        assert!(check_ports(28_233, 1, 28_232).is_err());
        assert!(check_ports(50_000, 2, 28_232).is_ok());
        assert!(check_ports(50_000, 16, 28_232).is_ok());
        assert!(check_ports(50_000, 1, 64_512).is_ok());
    }
}
