//! The `ampere` binary as a child process: started with Electric's environment variables, ready
//! once `GET /v1/health` says `active`, measured through `/proc/<pid>/status`, killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _, Result};
use engine::runtime::IoDriver;

use super::http::HttpClient;

/// How long start-up (connecting, creating the slot) may take before the benchmark gives up.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How to start one server.
#[derive(Clone, Debug)]
pub struct ServerSpec {
    pub binary: PathBuf,
    pub database_url: String,
    pub driver: IoDriver,
    /// `ELECTRIC_SHAPE_CHUNK_BYTES_THRESHOLD`; `None` keeps Ampere's default (10 MiB, as Electric).
    pub chunk_bytes: Option<u64>,
    /// `ELECTRIC_LONG_POLL_TIMEOUT` in milliseconds; `None` keeps the default (20 s).
    pub long_poll_ms: Option<u64>,
    /// `AMPERE_CORES`; `None` uses every core.
    pub cores: Option<usize>,
    /// Any other environment variables for the server.
    pub env: Vec<(&'static str, String)>,
}

/// A running server; dropping it kills the process and removes its storage directory.
pub struct AmpereServer {
    child: Child,
    pub port: u16,
    storage: PathBuf,
}

impl AmpereServer {
    /// Starts the server on a free loopback port and waits until it reports `active`.
    /// `stream_id` names its publication and slot, so successive servers never share a slot.
    pub fn start(spec: &ServerSpec, stream_id: &str) -> Result<Self> {
        ensure!(
            spec.binary.exists(),
            "no ampere binary at {} (build it with `cargo build --release --bin ampere`, or pass --ampere-bin)",
            spec.binary.display()
        );
        let port = free_port()?;
        let storage = std::env::temp_dir().join(format!(
            "bench-ampere-{}-{stream_id}-{port}",
            std::process::id()
        ));
        let mut command = Command::new(&spec.binary);
        command
            .env("ELECTRIC_INSECURE", "true")
            .env("DATABASE_URL", &spec.database_url)
            .env("ELECTRIC_PORT", port.to_string())
            .env("AMPERE_LISTEN_ADDR", "127.0.0.1")
            .env("AMPERE_IO_DRIVER", spec.driver.to_string())
            .env("ELECTRIC_STORAGE_DIR", &storage)
            .env("ELECTRIC_REPLICATION_STREAM_ID", stream_id)
            .env("AMPERE_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if let Some(bytes) = spec.chunk_bytes {
            command.env("ELECTRIC_SHAPE_CHUNK_BYTES_THRESHOLD", bytes.to_string());
        }
        if let Some(ms) = spec.long_poll_ms {
            command.env("ELECTRIC_LONG_POLL_TIMEOUT", ms.to_string());
        }
        if let Some(cores) = spec.cores {
            command.env("AMPERE_CORES", cores.to_string());
        }
        for (name, value) in &spec.env {
            command.env(name, value);
        }
        let child = command
            .spawn()
            .with_context(|| format!("start {}", spec.binary.display()))?;
        let mut server = Self {
            child,
            port,
            storage,
        };
        server.wait_ready()?;
        Ok(server)
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().context("poll the ampere process")? {
                bail!("ampere exited during start-up: {status}");
            }
            if let Ok(mut client) = HttpClient::connect(self.port) {
                if let Ok(response) = client.get("/v1/health") {
                    if response.status == 200 && response.body_str().contains("active") {
                        return Ok(());
                    }
                }
            }
            ensure!(
                Instant::now() < deadline,
                "ampere not active after {READY_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status, if the server has exited (crashed) while it should be serving.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Current resident set size, KiB.
    pub fn rss_kib(&self) -> Result<u64> {
        status_kib(self.pid(), "VmRSS")
    }

    /// Peak resident set size since start, KiB.
    pub fn hwm_kib(&self) -> Result<u64> {
        status_kib(self.pid(), "VmHWM")
    }

    /// Open file descriptors (accepted connections show up here).
    pub fn open_fds(&self) -> Result<usize> {
        let dir = format!("/proc/{}/fd", self.pid());
        Ok(std::fs::read_dir(&dir)
            .with_context(|| format!("list {dir}"))?
            .count())
    }

    /// Total CPU time (user + system) the process has used.
    pub fn cpu_time(&self) -> Result<Duration> {
        process_cpu_time(self.pid())
    }
}

impl Drop for AmpereServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.storage);
    }
}

/// A `/proc/<pid>/status` field in KiB (`VmRSS:    1234 kB`).
pub fn status_kib(pid: u32, field: &str) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    status
        .lines()
        .find_map(|line| {
            let rest = line.strip_prefix(field)?.strip_prefix(':')?;
            rest.trim().strip_suffix("kB")?.trim().parse().ok()
        })
        .with_context(|| format!("no {field} in {path}"))
}

/// User + system CPU time of a process, from `/proc/<pid>/stat` (clock ticks, 10 ms here).
pub fn process_cpu_time(pid: u32) -> Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    // The command name may contain spaces; fields are counted after its closing parenthesis.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .with_context(|| format!("malformed {path}"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After ")": state is field 3 of the man page, so utime (14) and stime (15) are at 11, 12.
    let ticks = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .with_context(|| format!("malformed {path}"))
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|&hz| hz > 0).unwrap_or(100);
    let total = ticks(11)? + ticks(12)?;
    Ok(Duration::from_micros(total * 1_000_000 / hz))
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("probe a free port")?;
    Ok(listener.local_addr()?.port())
}

/// The `ampere` binary: `explicit` if given, else the one next to this executable (same target
/// directory and profile), else the workspace's default release build.
pub fn locate_ampere(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    let exe = std::env::current_exe().context("locate this executable")?;
    let mut candidates = Vec::new();
    if let Some(dir) = exe.parent() {
        candidates.push(dir.join("ampere"));
        // Test executables live one level deeper, in `deps/`.
        if let Some(parent) = dir.parent() {
            candidates.push(parent.join("ampere"));
        }
    }
    candidates.push(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("target")
            .join("release")
            .join("ampere"),
    );
    candidates
        .into_iter()
        .find(|path| path.exists())
        .with_context(|| {
            "no ampere binary found: run `cargo build --release --bin ampere` or pass --ampere-bin"
        })
}

/// Raises this process's open-file limit to its hard limit (children inherit it), returning
/// the new soft limit.
pub fn raise_nofile_limit() -> Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    ensure!(rc == 0, "getrlimit: {}", std::io::Error::last_os_error());
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: `limit` is a valid rlimit whose soft limit does not exceed its hard limit.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    ensure!(rc == 0, "setrlimit: {}", std::io::Error::last_os_error());
    Ok(limit.rlim_cur)
}
