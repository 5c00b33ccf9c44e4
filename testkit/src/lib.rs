//! Throwaway Postgres clusters for Ampere's tests and benchmarks.
//!
//! [`Cluster::start`] runs `initdb` and `postgres` from the system binaries
//! (`/usr/lib/postgresql/15/bin`, or `AMPERE_PG_BIN`) as the `postgres` OS user, in a private
//! temporary directory, with `wal_level=logical`, on a free loopback port. Every test then takes a
//! fresh database with [`Cluster::create_database`]. Dropping a [`TestDb`] drops its replication
//! slots and the database; dropping the [`Cluster`] stops the server and removes its directory,
//! also while a test panics, in which case the tail of the server log is printed first.
//!
//! Setting `AMPERE_TEST_DATABASE_URL=postgresql://user:pass@host:port/db` runs the same tests
//! against an external server instead (it must have `wal_level=logical`); the test databases are
//! still created and dropped per test.
//!
//! SQL is run through `psql` so that this crate does not depend on the client under test.

pub mod capture;
pub mod pgbouncer;
pub mod ports;

use std::fmt;
use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Default location of the Postgres 15 server binaries on Debian.
pub const DEFAULT_PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// Errors from the harness. Tests usually `expect()` these: a harness failure is fatal.
#[derive(Debug)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

fn err(msg: impl Into<String>) -> Error {
    Error(msg.into())
}

/// Connection parameters of a running server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnParams {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub dbname: String,
}

impl ConnParams {
    /// A `postgresql://` URL for these parameters.
    pub fn url(&self) -> String {
        let auth = match &self.password {
            Some(p) => format!("{}:{}", pct(&self.user), pct(p)),
            None => pct(&self.user),
        };
        format!(
            "postgresql://{auth}@{}:{}/{}",
            self.host,
            self.port,
            pct(&self.dbname)
        )
    }

    /// Parses the subset of `postgresql://user[:pass]@host[:port]/db` URLs the harness needs.
    pub fn from_url(url: &str) -> Result<Self> {
        let rest = url
            .strip_prefix("postgresql://")
            .or_else(|| url.strip_prefix("postgres://"))
            .ok_or_else(|| err(format!("not a postgresql:// URL: {url}")))?;
        let rest = rest.split('?').next().unwrap_or(rest);
        let (auth, hostpart) = rest
            .rsplit_once('@')
            .ok_or_else(|| err("database URL needs user@host"))?;
        let (user, password) = match auth.split_once(':') {
            Some((u, p)) => (unpct(u), Some(unpct(p))),
            None => (unpct(auth), None),
        };
        let (hostport, dbname) = hostpart.split_once('/').unwrap_or((hostpart, "postgres"));
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse().map_err(|_| err(format!("bad port in {url}")))?,
            ),
            None => (hostport.to_string(), 5432),
        };
        Ok(Self {
            host,
            port,
            user,
            password,
            dbname: if dbname.is_empty() {
                "postgres".into()
            } else {
                unpct(dbname)
            },
        })
    }

    fn with_db(&self, db: &str) -> Self {
        Self {
            dbname: db.to_string(),
            ..self.clone()
        }
    }
}

fn pct(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn unpct(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Options for a private cluster.
#[derive(Clone, Debug)]
pub struct Options {
    /// Extra `-c name=value` server settings, appended after the defaults.
    pub settings: Vec<(String, String)>,
    /// Authentication method for TCP connections (`trust`, `password`, `md5`, `scram-sha-256`).
    pub host_auth: String,
    /// Password of the `postgres` superuser (needed for non-trust host auth).
    pub superuser_password: Option<String>,
    /// TLS: the server's certificate (chain) and key, PEM. The server then has `ssl=on`.
    pub tls: Option<(String, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            settings: Vec::new(),
            host_auth: "trust".into(),
            superuser_password: None,
            tls: None,
        }
    }
}

/// A running Postgres server: private (owned by this process) or external.
pub struct Cluster {
    admin: ConnParams,
    private: Option<Private>,
}

struct Private {
    dir: PathBuf,
    bin: PathBuf,
}

static DB_COUNTER: AtomicU32 = AtomicU32::new(0);

impl Cluster {
    /// Starts a private cluster, or connects to `AMPERE_TEST_DATABASE_URL` when it is set.
    pub fn start() -> Result<Self> {
        match std::env::var("AMPERE_TEST_DATABASE_URL") {
            Ok(url) if !url.is_empty() => Self::external(&url),
            _ => Self::start_private(Options::default()),
        }
    }

    /// Uses an external server; tests create their own databases on it.
    pub fn external(url: &str) -> Result<Self> {
        let admin = ConnParams::from_url(url)?;
        let cluster = Self {
            admin,
            private: None,
        };
        cluster.verify_settings()?;
        Ok(cluster)
    }

    /// The directory holding the server binaries.
    pub fn pg_bin() -> PathBuf {
        std::env::var_os("AMPERE_PG_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_PG_BIN))
    }

    /// Starts a private cluster with the given options, always (ignores the env override).
    pub fn start_private(opts: Options) -> Result<Self> {
        let bin = Self::pg_bin();
        if !bin.join("initdb").exists() {
            return Err(err(format!(
                "Postgres binaries not found in {} (install postgresql-15 or set AMPERE_PG_BIN)",
                bin.display()
            )));
        }
        let dir = make_private_dir()?;
        let data = dir.join("data");
        let mut initdb = as_postgres(&bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8"])
            .arg("--auth-local=trust")
            .arg(format!("--auth-host={}", opts.host_auth));
        let pwfile = dir.join("pw");
        if let Some(pw) = &opts.superuser_password {
            std::fs::write(&pwfile, pw).map_err(|e| err(format!("write pwfile: {e}")))?;
            chown_postgres(&pwfile)?;
            initdb.arg(format!("--pwfile={}", pwfile.display()));
        }
        run(&mut initdb, "initdb")?;
        let _ = std::fs::remove_file(&pwfile);
        let mut tls_settings = Vec::new();
        if let Some((cert, key)) = &opts.tls {
            let (cert_path, key_path) = (data.join("server.crt"), data.join("server.key"));
            std::fs::write(&cert_path, cert).map_err(|e| err(format!("write cert: {e}")))?;
            std::fs::write(&key_path, key).map_err(|e| err(format!("write key: {e}")))?;
            // Postgres refuses a key others can read.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| err(format!("chmod key: {e}")))?;
            chown_postgres(&cert_path)?;
            chown_postgres(&key_path)?;
            tls_settings.push(("ssl".to_string(), "on".to_string()));
        }

        // Retry on a port race: another process may grab the port between probe and bind.
        let mut last_err = None;
        for _ in 0..5 {
            let port = free_port()?;
            let mut conf = String::new();
            let mut defaults: Vec<(String, String)> = [
                ("listen_addresses", "127.0.0.1"),
                ("wal_level", "logical"),
                ("max_replication_slots", "40"),
                ("max_wal_senders", "40"),
                ("max_connections", "200"),
                ("fsync", "off"),
                ("full_page_writes", "off"),
                ("synchronous_commit", "on"),
                ("wal_sender_timeout", "60s"),
                ("log_min_messages", "warning"),
            ]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
            defaults.push(("port".into(), port.to_string()));
            defaults.push(("unix_socket_directories".into(), dir.display().to_string()));
            defaults.extend(tls_settings.iter().cloned());
            defaults.extend(opts.settings.iter().cloned());
            for (k, v) in &defaults {
                conf.push_str(&format!("{k} = '{}'\n", v.replace('\'', "''")));
            }
            std::fs::write(data.join("postgresql.auto.conf"), conf)
                .map_err(|e| err(format!("write config: {e}")))?;
            chown_postgres(&data.join("postgresql.auto.conf"))?;
            let mut start = as_postgres(&bin.join("pg_ctl"));
            start
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(dir.join("server.log"))
                .args(["-w", "-t", "30", "start"]);
            match run(&mut start, "pg_ctl start") {
                Ok(_) => {
                    let cluster = Self {
                        admin: ConnParams {
                            host: "127.0.0.1".into(),
                            port,
                            user: "postgres".into(),
                            password: opts.superuser_password.clone(),
                            dbname: "postgres".into(),
                        },
                        private: Some(Private { dir, bin }),
                    };
                    cluster.verify_settings()?;
                    return Ok(cluster);
                }
                Err(e) => last_err = Some(e),
            }
        }
        let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
        let _ = std::fs::remove_dir_all(&dir);
        Err(err(format!(
            "could not start Postgres: {}\n{log}",
            last_err.map(|e| e.0).unwrap_or_default()
        )))
    }

    fn verify_settings(&self) -> Result<()> {
        let level = self.psql(&self.admin, "SHOW wal_level")?;
        if level.trim() != "logical" {
            return Err(err(format!(
                "server has wal_level={}, tests need logical",
                level.trim()
            )));
        }
        Ok(())
    }

    /// Superuser connection parameters for the `postgres` database.
    pub fn admin(&self) -> &ConnParams {
        &self.admin
    }

    /// The private cluster's directory (socket dir, server.log), if private.
    pub fn dir(&self) -> Option<&Path> {
        self.private.as_ref().map(|p| p.dir.as_path())
    }

    /// The path of a server binary such as `pg_recvlogical` or `pgbench`.
    pub fn bin(&self, name: &str) -> PathBuf {
        self.private
            .as_ref()
            .map(|p| p.bin.clone())
            .unwrap_or_else(Self::pg_bin)
            .join(name)
    }

    /// The server log so far (private clusters only).
    pub fn server_log(&self) -> String {
        self.dir()
            .and_then(|d| std::fs::read_to_string(d.join("server.log")).ok())
            .unwrap_or_default()
    }

    /// Creates a fresh, uniquely named database.
    pub fn create_database(&self) -> Result<TestDb<'_>> {
        let n = DB_COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("ampere_test_{}_{n}", std::process::id());
        self.psql(&self.admin, &format!("CREATE DATABASE \"{name}\""))?;
        Ok(TestDb {
            cluster: self,
            params: self.admin.with_db(&name),
        })
    }

    /// Runs SQL with `psql` (unaligned, tuples only, stop on error) and returns its stdout.
    pub fn psql(&self, params: &ConnParams, sql: &str) -> Result<String> {
        let mut cmd = Command::new(psql_path());
        cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .arg("-h")
            .arg(&params.host)
            .arg("-p")
            .arg(params.port.to_string())
            .arg("-U")
            .arg(&params.user)
            .arg("-d")
            .arg(&params.dbname)
            .env("PGCONNECT_TIMEOUT", "10")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(pw) = &params.password {
            cmd.env("PGPASSWORD", pw);
        }
        let mut child = cmd.spawn().map_err(|e| err(format!("spawn psql: {e}")))?;
        child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(sql.as_bytes())
            .map_err(|e| err(format!("write to psql: {e}")))?;
        let out = child
            .wait_with_output()
            .map_err(|e| err(format!("wait for psql: {e}")))?;
        if !out.status.success() {
            return Err(err(format!(
                "psql failed on {sql:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Replaces pg_hba.conf of a private cluster and reloads the configuration.
    pub fn set_hba(&self, hba: &str) -> Result<()> {
        let p = self
            .private
            .as_ref()
            .ok_or_else(|| err("set_hba needs a private cluster"))?;
        let path = p.dir.join("data").join("pg_hba.conf");
        std::fs::write(&path, hba).map_err(|e| err(format!("write pg_hba.conf: {e}")))?;
        chown_postgres(&path)?;
        self.psql(&self.admin, "SELECT pg_reload_conf()")?;
        // pg_reload_conf only signals; give the postmaster a moment to re-read the file.
        std::thread::sleep(Duration::from_millis(200));
        Ok(())
    }

    /// Stops the server (fast shutdown) and starts it again on the same port.
    pub fn restart(&self) -> Result<()> {
        self.stop()?;
        self.start_again()
    }

    /// Stops the server (fast shutdown: clients are disconnected); [`Self::start_again`]
    /// brings it back on the same port.
    pub fn stop(&self) -> Result<()> {
        let p = self
            .private
            .as_ref()
            .ok_or_else(|| err("stop needs a private cluster"))?;
        run(
            as_postgres(&p.bin.join("pg_ctl"))
                .arg("-D")
                .arg(p.dir.join("data"))
                .args(["-m", "fast", "-w", "stop"]),
            "pg_ctl stop",
        )?;
        Ok(())
    }

    /// Starts a stopped server again.
    pub fn start_again(&self) -> Result<()> {
        let p = self
            .private
            .as_ref()
            .ok_or_else(|| err("start needs a private cluster"))?;
        let data = p.dir.join("data");
        run(
            as_postgres(&p.bin.join("pg_ctl"))
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(p.dir.join("server.log"))
                .args(["-w", "-t", "30", "start"]),
            "pg_ctl start",
        )?;
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let Some(p) = &self.private else { return };
        if std::thread::panicking() {
            let log = self.server_log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("---- Postgres server log (last {} lines) ----", tail.len());
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
            eprintln!("---- end of server log ----");
        }
        let _ = as_postgres(&p.bin.join("pg_ctl"))
            .arg("-D")
            .arg(p.dir.join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&p.dir);
    }
}

/// A fresh database on a [`Cluster`], dropped (with its replication slots) on drop.
pub struct TestDb<'a> {
    cluster: &'a Cluster,
    params: ConnParams,
}

impl TestDb<'_> {
    pub fn params(&self) -> &ConnParams {
        &self.params
    }

    pub fn url(&self) -> String {
        self.params.url()
    }

    pub fn name(&self) -> &str {
        &self.params.dbname
    }

    pub fn cluster(&self) -> &Cluster {
        self.cluster
    }

    /// Runs SQL in this database and returns psql's unaligned, tuples-only output.
    pub fn psql(&self, sql: &str) -> Result<String> {
        self.cluster.psql(&self.params, sql)
    }

    /// Runs a query and returns its rows, columns split on `|`.
    pub fn rows(&self, sql: &str) -> Result<Vec<Vec<String>>> {
        Ok(self
            .psql(sql)?
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| l.split('|').map(str::to_string).collect())
            .collect())
    }

    /// Waits (bounded) until `sql` returns exactly `expected` (trimmed).
    pub fn wait_for(&self, sql: &str, expected: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.psql(sql)?;
            if got.trim() == expected {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(err(format!(
                    "{sql:?} returned {got:?}, wanted {expected:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for TestDb<'_> {
    fn drop(&mut self) {
        let db = self.params.dbname.replace('\'', "''");
        let sql = format!(
            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots \
               WHERE database = '{db}' AND active_pid IS NOT NULL;\n\
             SELECT pg_sleep(0.05);\n\
             SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
               WHERE database = '{db}' AND NOT active;\n\
             DROP DATABASE IF EXISTS \"{}\" WITH (FORCE);",
            self.params.dbname
        );
        if let Err(e) = self.cluster.psql(&self.cluster.admin, &sql) {
            eprintln!("testkit: cleanup of {} failed: {e}", self.params.dbname);
        }
    }
}

fn psql_path() -> PathBuf {
    let p = Cluster::pg_bin().join("psql");
    if p.exists() {
        p
    } else {
        PathBuf::from("psql")
    }
}

fn running_as_root() -> bool {
    // The effective uid, read from /proc to avoid a libc dependency.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// A command that runs as the `postgres` OS user when we are root (initdb refuses root).
fn as_postgres(program: &Path) -> Command {
    if running_as_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn chown_postgres(path: &Path) -> Result<()> {
    if running_as_root() {
        run(
            Command::new("chown").arg("postgres:postgres").arg(path),
            "chown",
        )?;
    }
    Ok(())
}

fn make_private_dir() -> Result<PathBuf> {
    let base = std::env::var_os("AMPERE_TEST_TMP")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let n = DB_COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = base.join(format!("ampere-pg-{}-{n}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| err(format!("create {}: {e}", dir.display())))?;
    chown_postgres(&dir)?;
    Ok(dir)
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| err(format!("probe port: {e}")))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| err(format!("probe port: {e}")))
}

fn run(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd
        .output()
        .map_err(|e| err(format!("{what}: spawn failed: {e}")))?;
    if !out.status.success() {
        return Err(err(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_round_trip() {
        let p = ConnParams {
            host: "127.0.0.1".into(),
            port: 5433,
            user: "us er".into(),
            password: Some("p@ss:w/rd".into()),
            dbname: "db".into(),
        };
        assert_eq!(ConnParams::from_url(&p.url()).unwrap(), p);
    }

    #[test]
    fn private_cluster_has_logical_wal_and_fresh_databases() {
        let cluster = Cluster::start().expect("start cluster");
        let a = cluster.create_database().expect("db a");
        let b = cluster.create_database().expect("db b");
        assert_ne!(a.name(), b.name());
        a.psql("CREATE TABLE t (id int primary key); INSERT INTO t VALUES (1),(2)")
            .unwrap();
        assert_eq!(a.psql("SELECT count(*) FROM t").unwrap().trim(), "2");
        assert!(
            b.psql("SELECT count(*) FROM t").is_err(),
            "databases are isolated"
        );
        assert_eq!(a.psql("SHOW wal_level").unwrap().trim(), "logical");
        a.psql("SELECT pg_create_logical_replication_slot('s1', 'pgoutput')")
            .unwrap();
        let name = a.name().to_string();
        drop(a);
        let left = cluster
            .psql(
                cluster.admin(),
                &format!("SELECT count(*) FROM pg_replication_slots WHERE database = '{name}'"),
            )
            .unwrap();
        assert_eq!(left.trim(), "0", "slots are dropped with the database");
    }
}
