//! The baseline: `pg_recvlogical` draining a slot into /dev/null.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _, Result};

use crate::client::DrainTarget;
use crate::workload::PUBLICATION;

/// What one `pg_recvlogical` run took.
#[derive(Debug)]
pub struct RecvlogicalRun {
    /// From spawning the process until it exited.
    pub elapsed: Duration,
    /// User + system CPU time of the process.
    pub cpu: Duration,
    /// The exact command line, for the report.
    pub command: String,
}

/// Drains `target` with `pg_recvlogical --start --no-loop -E <end> -f /dev/null`.
pub fn drain(binary: &Path, target: &DrainTarget) -> Result<RecvlogicalRun> {
    let params = &target.params;
    let args = [
        "-h".to_string(),
        params.host.clone(),
        "-p".into(),
        params.port.to_string(),
        "-U".into(),
        params.user.clone(),
        "-d".into(),
        params.dbname.clone(),
        "--slot".into(),
        target.slot.clone(),
        "--start".into(),
        "--no-loop".into(),
        "-E".into(),
        target.end.to_string(),
        "-f".into(),
        "/dev/null".into(),
        "-o".into(),
        "proto_version=1".into(),
        "-o".into(),
        format!("publication_names={PUBLICATION}"),
    ];
    let mut command = Command::new(binary);
    command
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(password) = &params.password {
        command.env("PGPASSWORD", password);
    }
    let cpu_before = children_cpu_time();
    let started = Instant::now();
    let output = command
        .output()
        .with_context(|| format!("run {}", binary.display()))?;
    let elapsed = started.elapsed();
    // Only this child is reaped between the two readings, so the difference is its CPU time.
    let cpu = children_cpu_time().saturating_sub(cpu_before);
    ensure!(
        output.status.success(),
        "pg_recvlogical failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(RecvlogicalRun {
        elapsed,
        cpu,
        command: format!(
            "{} {}",
            crate::report::portable_path(binary),
            args.join(" ")
        ),
    })
}

/// User + system CPU time of all reaped children of this process.
fn children_cpu_time() -> Duration {
    // SAFETY: rusage is plain old data, for which all-zero bytes are a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is valid and writable; RUSAGE_CHILDREN is a valid `who`.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    assert!(
        rc == 0,
        "getrusage(RUSAGE_CHILDREN) cannot fail with valid arguments"
    );
    let to_duration = |t: libc::timeval| Duration::new(t.tv_sec as u64, (t.tv_usec as u32) * 1000);
    to_duration(usage.ru_utime) + to_duration(usage.ru_stime)
}
