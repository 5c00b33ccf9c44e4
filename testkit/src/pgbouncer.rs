//! A private PgBouncer (Debian's `pgbouncer`) in front of a test cluster, for tests of pooled
//! connections: its own directory, configuration and port; stopped on drop.

use crate::{as_postgres, chown_postgres, err, free_port, make_private_dir, Result};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// Where Debian installs it.
const PGBOUNCER: &str = "/usr/sbin/pgbouncer";

pub struct PgBouncer {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl PgBouncer {
    /// Starts PgBouncer in `pool_mode` (`session`, `transaction`) for every database of the
    /// server at `127.0.0.1:upstream_port`, users trusted (`users` must list them).
    pub fn start(upstream_port: u16, pool_mode: &str, users: &[&str]) -> Result<Self> {
        if !std::path::Path::new(PGBOUNCER).exists() {
            return Err(err("pgbouncer not found (install the pgbouncer package)"));
        }
        let dir = make_private_dir()?;
        let port = free_port()?;
        let userlist: String = users.iter().map(|u| format!("\"{u}\" \"\"\n")).collect();
        std::fs::write(dir.join("userlist.txt"), userlist)
            .map_err(|e| err(format!("write userlist: {e}")))?;
        let config = format!(
            "[databases]\n* = host=127.0.0.1 port={upstream_port}\n\n[pgbouncer]\n\
             listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
             auth_type = trust\nauth_file = {dir}/userlist.txt\npool_mode = {pool_mode}\n\
             max_client_conn = 200\ndefault_pool_size = 4\nlogfile = {dir}/pgbouncer.log\n\
             pidfile = {dir}/pgbouncer.pid\n",
            dir = dir.display()
        );
        let ini = dir.join("pgbouncer.ini");
        std::fs::write(&ini, config).map_err(|e| err(format!("write config: {e}")))?;
        for f in ["userlist.txt", "pgbouncer.ini"] {
            chown_postgres(&dir.join(f))?;
        }
        chown_postgres(&dir)?;
        let child = as_postgres(std::path::Path::new(PGBOUNCER))
            .arg(&ini)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| err(format!("spawn pgbouncer: {e}")))?;
        let bouncer = Self { child, dir, port };
        let until = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > until {
                return Err(err(format!("pgbouncer did not listen: {}", bouncer.log())));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(bouncer)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// PgBouncer's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        // runuser forwards the signal to pgbouncer.
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("pgbouncer.pid")) {
            let _ = std::process::Command::new("kill").arg(pid.trim()).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
