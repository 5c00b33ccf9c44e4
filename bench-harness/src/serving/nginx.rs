//! nginx serving a directory of saved chunk bodies from a private configuration: the static-file
//! baseline for catch-up serving (sendfile, keep-alive, no access log).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _, Result};

use super::http::HttpClient;

/// A running nginx; dropping it stops the master (and with it the workers).
pub struct Nginx {
    child: Child,
    pub port: u16,
    pub config: String,
}

impl Nginx {
    /// Serves `root` (files under it at `/<name>`) on a free loopback port with `workers`
    /// worker processes. `prefix` holds the configuration, pid file and temp directories.
    pub fn start(prefix: &Path, root: &Path, workers: usize, port: u16) -> Result<Self> {
        let config = config_text(prefix, root, workers, port);
        let conf_path = prefix.join("nginx.conf");
        std::fs::write(&conf_path, &config).context("write nginx.conf")?;
        let child = Command::new("nginx")
            .arg("-c")
            .arg(&conf_path)
            .arg("-p")
            .arg(prefix)
            .arg("-e")
            .arg(prefix.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("start nginx (apt-get install nginx)")?;
        let mut nginx = Self {
            child,
            port,
            config,
        };
        nginx.wait_ready()?;
        Ok(nginx)
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("nginx exited during start-up: {status}");
            }
            if HttpClient::connect(self.port).is_ok() {
                return Ok(());
            }
            ensure!(Instant::now() < deadline, "nginx did not start listening");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM is nginx's fast shutdown; the master stops its workers before exiting.
        // SAFETY: kill has no memory preconditions; the pid is our own child, not yet reaped.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

/// The configuration: foreground master, `workers` workers, static files with sendfile.
fn config_text(prefix: &Path, root: &Path, workers: usize, port: u16) -> String {
    let p = |name: &str| -> PathBuf { prefix.join(name) };
    format!(
        "daemon off;\n\
         master_process on;\n\
         user root;\n\
         worker_processes {workers};\n\
         pid {pid};\n\
         error_log {err} warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n\
         \x20 access_log off;\n\
         \x20 sendfile on;\n\
         \x20 tcp_nopush on;\n\
         \x20 tcp_nodelay on;\n\
         \x20 keepalive_timeout 75s;\n\
         \x20 keepalive_requests 100000000;\n\
         \x20 open_file_cache max=10000 inactive=60s;\n\
         \x20 types {{ application/json json; }}\n\
         \x20 default_type application/json;\n\
         \x20 client_body_temp_path {t1};\n\
         \x20 proxy_temp_path {t2};\n\
         \x20 fastcgi_temp_path {t3};\n\
         \x20 uwsgi_temp_path {t4};\n\
         \x20 scgi_temp_path {t5};\n\
         \x20 server {{\n\
         \x20   listen 127.0.0.1:{port};\n\
         \x20   root {root};\n\
         \x20   location / {{ }}\n\
         \x20 }}\n\
         }}\n",
        pid = p("nginx.pid").display(),
        err = p("error.log").display(),
        t1 = p("client_body").display(),
        t2 = p("proxy").display(),
        t3 = p("fastcgi").display(),
        t4 = p("uwsgi").display(),
        t5 = p("scgi").display(),
        root = root.display(),
    )
}
