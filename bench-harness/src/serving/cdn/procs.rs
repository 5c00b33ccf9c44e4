//! The processes a point runs besides Ampere: loadgen children, nginx (`deploy/nginx/run`), and
//! the file limit and load average they need.

use super::*;

/// The loadgen processes of one point.
#[derive(Default)]
pub(super) struct Children {
    children: Vec<Child>,
}

impl Children {
    pub(super) fn spawn(&mut self, command: &mut Command, log: &Path) -> Result<()> {
        let file =
            std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .context("start loadgen")?;
        self.children.push(child);
        Ok(())
    }

    pub(super) fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }

    /// Waits for every child, killing those still running after `limit`; statuses in spawn
    /// order.
    pub(super) fn wait_all(
        &mut self,
        limit: Duration,
    ) -> Vec<Result<std::process::ExitStatus, String>> {
        let deadline = Instant::now() + limit;
        let mut statuses: Vec<Option<Result<std::process::ExitStatus, String>>> =
            self.children.iter().map(|_| None).collect();
        while statuses.iter().any(Option::is_none) {
            for (child, status) in self.children.iter_mut().zip(statuses.iter_mut()) {
                if status.is_none() {
                    match child.try_wait() {
                        Ok(Some(s)) => *status = Some(Ok(s)),
                        Ok(None) => {}
                        Err(e) => *status = Some(Err(e.to_string())),
                    }
                }
            }
            if Instant::now() > deadline {
                for (child, status) in self.children.iter_mut().zip(statuses.iter_mut()) {
                    if status.is_none() {
                        let _ = child.kill();
                        let _ = child.wait();
                        *status = Some(Err(format!("still running after {limit:?}; killed")));
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        statuses.into_iter().flatten().collect()
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.children {
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// `deploy/nginx/run` as a child: the script's process, nginx's master pid, its listening
/// ports. Dropping it sends SIGTERM to the script (which stops nginx and removes its files).
pub(super) struct Nginx {
    pub(super) script: Child,
    pub(super) master: u32,
    pub(super) ports: Vec<u16>,
}

impl Nginx {
    pub(super) fn start(
        options: &CdnOptions,
        origin_port: u16,
        access_log: Option<&Path>,
    ) -> Result<Self> {
        let ports: Vec<u16> = (0..options.listen_ports)
            .map(|_| free_port())
            .collect::<Result<_>>()?;
        let mut command = Command::new(&options.nginx_run);
        command
            .arg("--origin")
            .arg(format!("127.0.0.1:{origin_port}"));
        for port in &ports {
            command.arg("--listen").arg(format!("127.0.0.1:{port}"));
        }
        if let Some(workers) = options.nginx_workers {
            command.arg("--workers").arg(workers.to_string());
        }
        if let Some(log) = access_log {
            command.arg("--access-log").arg(log);
        }
        let script = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("start {}", options.nginx_run.display()))?;
        let mut nginx = Self {
            script,
            master: 0,
            ports,
        };
        nginx.wait_ready()?;
        Ok(nginx)
    }

    pub(super) fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + NGINX_READY;
        loop {
            if let Some(status) = self.script.try_wait()? {
                bail!("deploy/nginx/run exited during start-up: {status}");
            }
            if self.master == 0 {
                self.master = child_named(self.script.id(), "nginx").unwrap_or(0);
            }
            if self.master != 0 && self.ports.iter().all(|&p| health_ok(p)) {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "nginx not answering /v1/health on every port after {NGINX_READY:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SAFETY: kill has no memory preconditions; the pid is our own child, not yet reaped.
        unsafe {
            libc::kill(self.script.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.script.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.script.kill();
        let _ = self.script.wait();
    }
}

pub(super) fn health_ok(port: u16) -> bool {
    HttpClient::connect(port)
        .and_then(|mut c| c.get("/v1/health"))
        .is_ok_and(|r| r.status == 200)
}

/// A child process of `parent` whose command name is `name`.
pub(super) fn child_named(parent: u32, name: &str) -> Option<u32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        let ppid = stat[close + 1..]
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if comm == name && ppid == Some(parent) {
            return Some(pid);
        }
    }
    None
}

/// Raises the open-file limit (soft and hard) to `wanted` when allowed (root), else the soft
/// limit to the hard one; children inherit it. Returns the soft limit in force.
pub(super) fn raise_nofile(wanted: u64) -> Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit.
    ensure!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0,
        "getrlimit: {}",
        std::io::Error::last_os_error()
    );
    let want = libc::rlimit {
        rlim_cur: wanted.max(limit.rlim_cur),
        rlim_max: wanted.max(limit.rlim_max),
    };
    // SAFETY: `want` is a valid rlimit (soft ≤ hard).
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } == 0 {
        return Ok(want.rlim_cur);
    }
    let soft = libc::rlimit {
        rlim_cur: limit.rlim_max,
        rlim_max: limit.rlim_max,
    };
    // SAFETY: `soft` is a valid rlimit (soft = hard).
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &soft) } == 0 {
        return Ok(soft.rlim_cur);
    }
    Ok(limit.rlim_cur)
}

/// Samples the 1-minute load average in a thread while a point runs.
pub(super) struct LoadSampler {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<f64>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LoadSampler {
    pub(super) fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (flag, sink) = (Arc::clone(&stop), Arc::clone(&samples));
        let thread = std::thread::spawn(move || {
            let mut waited = LOAD_SAMPLE_EVERY;
            while !flag.load(Ordering::Relaxed) {
                if waited >= LOAD_SAMPLE_EVERY {
                    if let Some(load) = load_average() {
                        if let Ok(mut s) = sink.lock() {
                            s.push(load);
                        }
                    }
                    waited = Duration::ZERO;
                }
                std::thread::sleep(Duration::from_millis(100));
                waited += Duration::from_millis(100);
            }
        });
        Self {
            stop,
            samples,
            thread: Some(thread),
        }
    }

    pub(super) fn finish(mut self) -> (f64, f64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let samples = self.samples.lock().map(|s| s.clone()).unwrap_or_default();
        let min = samples.iter().copied().fold(f64::INFINITY, f64::min);
        let max = samples.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if samples.is_empty() {
            (f64::NAN, f64::NAN)
        } else {
            (min, max)
        }
    }
}

/// The 1-minute load average.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
