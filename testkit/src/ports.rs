//! Loopback ports for test servers that no other test can be handed at the same time.
//!
//! Probing a free port by binding port 0 and releasing it races with every other process, and
//! Ampere binds with `SO_REUSEPORT` (one listener per core), so a server started on a port that
//! another test server already holds does not fail: both bind, the kernel splits connections
//! between them, and a test talks to the wrong server while its health check passes. A crash
//! test also restarts its server on the same port, which leaves the port unbound for a while.
//!
//! A [`PortLease`] therefore owns its port for the life of the test: ports are taken from below
//! the kernel's ephemeral range (so no `bind(0)` anywhere on the machine is handed one), each
//! lease holds an exclusive lock on a file named after its port in a directory shared by every
//! test process, and the port is checked to be unbound when leased.

use std::fs::{File, OpenOptions};
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

/// Leased ports come from `[LOW, low end of the ephemeral range)`.
const LOW: u16 = 20_000;
/// Used when the ephemeral range cannot be read (Linux's default low end).
const DEFAULT_EPHEMERAL_LOW: u16 = 32_768;
/// Attempts before giving up (each one a random port).
const ATTEMPTS: usize = 500;

/// A port reserved for one test; released (lock dropped) when this is dropped.
#[derive(Debug)]
pub struct PortLease {
    port: u16,
    _lock: File,
}

impl PortLease {
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// Leases a loopback port no other lease holds and nothing is bound to right now.
///
/// # Panics
/// When no port could be leased after many attempts (the machine's ports are exhausted or the
/// lock directory is unusable): a harness failure, fatal for the test.
pub fn lease() -> PortLease {
    let dir = std::env::temp_dir().join("ampere-test-ports");
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("create port lock directory {}: {e}", dir.display()));
    let high = ephemeral_low().max(LOW + 1000);
    let span = u64::from(high - LOW);
    let mut state = seed();
    for _ in 0..ATTEMPTS {
        state = xorshift(state);
        let port = LOW + (state % span) as u16;
        if let Some(lock) = try_lock(dir.join(port.to_string())) {
            // Locked by us: no other test holds it. Something outside the tests might.
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return PortLease { port, _lock: lock };
            }
        }
    }
    panic!(
        "no free loopback port in {LOW}..{high} after {ATTEMPTS} attempts (locks in {})",
        dir.display()
    );
}

fn try_lock(path: PathBuf) -> Option<File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("open port lock {}: {e}", path.display()));
    file.try_lock().ok().map(|()| file)
}

fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(DEFAULT_EPHEMERAL_LOW)
}

/// Differs between processes and between calls, so concurrent tests start at different ports.
fn seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let pid = u64::from(std::process::id());
    (nanos ^ (pid << 32) ^ pid).max(1)
}

fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_are_exclusive_until_dropped() {
        let leases: Vec<PortLease> = (0..20).map(|_| lease()).collect();
        let mut ports: Vec<u16> = leases.iter().map(PortLease::port).collect();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 20, "a port leased twice");
        let dir = std::env::temp_dir().join("ampere-test-ports");
        let held = leases[0].port();
        assert!(
            try_lock(dir.join(held.to_string())).is_none(),
            "a held lease can be locked again"
        );
        drop(leases);
        assert!(try_lock(dir.join(held.to_string())).is_some());
        assert!(ports
            .iter()
            .all(|&p| p >= LOW && p < ephemeral_low().max(LOW + 1000)));
    }
}
