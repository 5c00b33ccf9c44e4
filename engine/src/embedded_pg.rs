//! The embedded default: with no `DATABASE_URL`, Ampere runs a private Postgres cluster from the
//! system's binaries under `<storage dir>/postgres`, with `wal_level=logical`, listening on
//! loopback only. It is initialised once and reused across restarts (it holds the data), and
//! stopped when Ampere exits.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Default location of the Postgres server binaries on Debian (override: `AMPERE_PG_BIN`).
const DEFAULT_PG_BIN: &str = "/usr/lib/postgresql/15/bin";
/// Port of the embedded cluster unless `AMPERE_EMBEDDED_PG_PORT` says otherwise.
const DEFAULT_PORT: u16 = 54329;

pub struct EmbeddedPostgres {
    data: PathBuf,
    bin: PathBuf,
    pub url: String,
}

impl EmbeddedPostgres {
    pub fn start(storage_dir: &Path) -> Result<Self> {
        let bin = std::env::var_os("AMPERE_PG_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_PG_BIN));
        if !bin.join("initdb").exists() {
            bail!(
                "no DATABASE_URL given and no Postgres binaries in {} to start the embedded cluster (install postgresql-15, set AMPERE_PG_BIN, or set DATABASE_URL)",
                bin.display()
            );
        }
        let port: u16 = match std::env::var("AMPERE_EMBEDDED_PG_PORT") {
            Ok(p) => p.parse().context("parse AMPERE_EMBEDDED_PG_PORT")?,
            Err(_) => DEFAULT_PORT,
        };
        let root = storage_dir.join("postgres");
        std::fs::create_dir_all(&root).with_context(|| format!("create {}", root.display()))?;
        let root = root
            .canonicalize()
            .with_context(|| format!("resolve {}", root.display()))?;
        let data = root.join("data");
        let as_root = is_root();
        if as_root {
            chown_postgres(&root)?;
            ensure_traversable(&root)?;
        }
        if !data.join("PG_VERSION").exists() {
            tracing::info!(
                "initialising embedded Postgres cluster in {}",
                data.display()
            );
            run(
                pg_cmd(&bin.join("initdb"), as_root)
                    .arg("-D")
                    .arg(&data)
                    .args(["-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8"])
                    .args(["--auth-local=trust", "--auth-host=trust"]),
                "initdb",
            )?;
        }
        let conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
             wal_level = logical\nmax_replication_slots = 20\nmax_wal_senders = 20\n\
             max_connections = 200\n",
            root.display()
        );
        let auto = data.join("postgresql.auto.conf");
        std::fs::write(&auto, conf).with_context(|| format!("write {}", auto.display()))?;
        if as_root {
            chown_postgres(&auto)?;
        }
        let status = pg_cmd(&bin.join("pg_ctl"), as_root)
            .arg("-D")
            .arg(&data)
            .arg("status")
            .output()
            .context("run pg_ctl status")?;
        if !status.status.success() {
            run(
                pg_cmd(&bin.join("pg_ctl"), as_root)
                    .arg("-D")
                    .arg(&data)
                    .arg("-l")
                    .arg(root.join("server.log"))
                    .args(["-w", "-t", "60", "start"]),
                "pg_ctl start (see server.log in the storage dir)",
            )?;
        }
        let url = format!("postgresql://postgres@127.0.0.1:{port}/postgres?sslmode=disable");
        Ok(Self { data, bin, url })
    }

    /// Stops the cluster: a fast shutdown (clients disconnected, a clean checkpoint) given
    /// 3 s, then an immediate one (crash recovery at the next start) so that the whole stop
    /// stays within the process's shutdown bound (`signals::SHUTDOWN_BOUND`).
    pub fn stop(&self) {
        for (mode, seconds) in [("fast", "3"), ("immediate", "3")] {
            let stopped = pg_cmd(&self.bin.join("pg_ctl"), is_root())
                .arg("-D")
                .arg(&self.data)
                .args(["-m", mode, "-w", "-t", seconds, "stop"])
                .output()
                .is_ok_and(|o| o.status.success());
            if stopped || !self.data.join("postmaster.pid").exists() {
                return;
            }
            tracing::warn!("the embedded Postgres did not stop with -m {mode} within {seconds} s");
        }
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// initdb refuses to run as root, so as root the server runs as the `postgres` OS user.
fn pg_cmd(program: &Path, as_root: bool) -> Command {
    if as_root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn chown_postgres(path: &Path) -> Result<()> {
    run(
        Command::new("chown").arg("postgres:postgres").arg(path),
        "chown the embedded cluster directory to postgres",
    )
}

/// The `postgres` user must be able to reach the data directory through every parent.
fn ensure_traversable(dir: &Path) -> Result<()> {
    let ok = Command::new("runuser")
        .args(["-u", "postgres", "--", "test", "-x"])
        .arg(dir)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        bail!(
            "the postgres OS user cannot reach {}; choose an ELECTRIC_STORAGE_DIR outside private directories such as /root",
            dir.display()
        );
    }
    Ok(())
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd.output().with_context(|| format!("spawn {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
