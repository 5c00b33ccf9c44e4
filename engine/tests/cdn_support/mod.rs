//! The harness of `cdn_proxy.rs`: `deploy/nginx/run` as a child process (with its access log),
//! Ampere's origin counters, simulated clients (catch-up, and a follower that resyncs on 409).

use crate::support::{lease_port, Client, Opts, Resp};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use testkit::ports::PortLease;

/// Stack of each simulated client thread (a blocking request needs little).
pub const CLIENT_STACK: usize = 256 << 10;

pub fn nginx_missing() -> bool {
    let found = Command::new("sh")
        .args(["-c", "command -v nginx || test -x /usr/sbin/nginx"])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        eprintln!("SKIPPED: nginx is not installed (apt-get install nginx; CI installs it)");
    }
    !found
}

/// Lets this process hold `n` client connections at once (the soft descriptor limit is often
/// 1,024; the hard one is the ceiling).
pub fn allow_connections(n: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain get/set of this process's own limit through a valid pointer.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max.min(n + 1024).max(lim.rlim_cur);
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
    assert!(
        lim.rlim_cur >= n + 256,
        "descriptor limit {} < {n} clients",
        lim.rlim_cur
    );
}

/// `deploy/nginx/run` in the foreground, in its own process group, with an access log.
pub struct Proxy {
    child: Child,
    lease: PortLease,
    dir: PathBuf,
    output: Arc<Mutex<Vec<u8>>>,
}

impl Proxy {
    pub fn start(origins: &[u16], long_poll_s: u64, extra: &[&str]) -> Self {
        let lease = lease_port();
        let dir = std::env::temp_dir().join(format!(
            "ampere-cdn-{}-{}",
            std::process::id(),
            lease.port()
        ));
        std::fs::create_dir_all(&dir).expect("proxy test dir");
        let mut cmd = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/nginx/run"));
        for o in origins {
            cmd.args(["--origin", &format!("127.0.0.1:{o}")]);
        }
        cmd.args(["--listen", &format!("127.0.0.1:{}", lease.port())])
            .args(["--long-poll-timeout", &long_poll_s.to_string()])
            .args(["--workers", "2", "--cache-size", "256m"])
            .arg("--access-log")
            .arg(dir.join("access.log"))
            .args(extra)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn deploy/nginx/run");
        let output = crate::support::capture_output(&mut child);
        let mut proxy = Self {
            child,
            lease,
            dir,
            output,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = proxy.child.try_wait() {
                panic!("the proxy exited with {status}: {}", proxy.output_text());
            }
            if proxy
                .client()
                .try_get("/v1/health")
                .is_ok_and(|r| r.status == 200)
            {
                return proxy;
            }
            assert!(
                Instant::now() < deadline,
                "proxy not up: {}",
                proxy.output_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn port(&self) -> u16 {
        self.lease.port()
    }

    pub fn client(&self) -> Client {
        Client::new(self.port())
    }

    pub fn output_text(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().expect("sink")).into_owned()
    }

    /// The origins that answered requests whose query starts with `def`, from the access log.
    pub fn origins_of(&self, def: &str) -> BTreeSet<String> {
        let log = std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default();
        log.lines()
            .filter(|l| l.contains(&format!("/v1/shape?{def}&")))
            .filter_map(|l| l.split(" origin=").nth(1)?.split(" origin_status=").next())
            .filter(|o| *o != "-")
            .map(str::to_string)
            .collect()
    }

    /// Body bytes the origins sent for shape requests, from the access log (`origin_bytes=`
    /// lists one value per origin tried; `-` when the cache answered).
    pub fn origin_bytes(&self) -> u64 {
        let log = std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default();
        log.lines()
            .filter(|l| l.contains("/v1/shape"))
            .filter_map(|l| l.split(" origin_bytes=").nth(1)?.split(" time=").next())
            .flat_map(|v| v.split(", ").filter_map(|n| n.parse::<u64>().ok()))
            .sum()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // SIGTERM: the script stops nginx and removes its temp dir; the group is killed only if
        // that did not happen in time.
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: signals to our own child and its process group.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- proxy output ----\n{}", self.output_text());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Shape GETs the origin answered, from its metrics: with any status, or with `status`.
pub fn origin_answers(metrics: u16, status: Option<&str>) -> u64 {
    let r = Client::new(metrics).get("/metrics");
    let prefix = "ampere_http_requests_total{route=\"shape_get\",status=\"";
    r.body_str()
        .lines()
        .filter_map(|l| l.strip_prefix(prefix)?.split_once("\"} "))
        .filter(|(s, _)| status.is_none_or(|want| *s == want))
        .filter_map(|(_, n)| n.parse::<f64>().ok())
        .sum::<f64>() as u64
}

pub fn origin_requests(metrics: u16) -> u64 {
    origin_answers(metrics, None)
}

pub fn opts(metrics: &PortLease, long_poll_ms: u64) -> Opts {
    Opts {
        cores: 2,
        long_poll_ms,
        env: vec![("ELECTRIC_PROMETHEUS_PORT", metrics.port().to_string())],
        ..Opts::default()
    }
}

/// Follows `def` from `-1` to its log end: (handle, offset, requests, body bytes, rows).
pub fn sync(client: Client, def: &str) -> (String, String, usize, usize, usize) {
    let (mut handle, mut offset) = (String::new(), "-1".to_string());
    let (mut requests, mut bytes, mut rows) = (0, 0, 0);
    loop {
        let h = if handle.is_empty() {
            String::new()
        } else {
            format!("&handle={handle}")
        };
        let r = client.get(&format!("/v1/shape?{def}&offset={offset}{h}"));
        r.expect(200);
        requests += 1;
        bytes += r.body.len();
        rows += r
            .items()
            .iter()
            .filter(|i| i["headers"]["operation"] == "insert")
            .count();
        handle = r.handle();
        offset = r.offset();
        if r.has("electric-up-to-date") {
            return (handle, offset, requests, bytes, rows);
        }
    }
}

pub fn spawn_client<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    std::thread::Builder::new()
        .stack_size(CLIENT_STACK)
        .spawn(f)
        .expect("spawn client thread")
}

/// A client's rows: id → (grp, title).
pub type Rows = BTreeMap<String, (String, String)>;

/// One client following one shape through the proxy, resyncing from `-1` with the new handle on
/// 409, publishing its rows (id → (grp, title)) at every up-to-date.
pub struct Follower {
    pub rows: Arc<Mutex<Option<Rows>>>,
    pub resyncs: Arc<AtomicUsize>,
    pub thread: std::thread::JoinHandle<()>,
}

pub fn follow(port: u16, def: String, stop: Arc<AtomicBool>) -> Follower {
    let rows = Arc::new(Mutex::new(None));
    let resyncs = Arc::new(AtomicUsize::new(0));
    let (published, resynced) = (rows.clone(), resyncs.clone());
    let thread = spawn_client(move || {
        let client = Client::new(port);
        let mut state: BTreeMap<String, Value> = BTreeMap::new();
        let (mut handle, mut offset, mut cursor, mut live) =
            (String::new(), "-1".to_string(), String::new(), false);
        while !stop.load(SeqCst) {
            let mut url = format!("/v1/shape?{def}&offset={offset}");
            if !handle.is_empty() {
                url += &format!("&handle={handle}");
            }
            if live {
                url += &format!("&live=true&cursor={cursor}");
            }
            let r: Resp = match client.try_get(&url) {
                Ok(r) => r,
                // A response cut when its instance died: ask again.
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            match r.status {
                200 => {}
                409 => {
                    state.clear();
                    handle = r.header("electric-handle").unwrap_or_default().to_string();
                    (offset, live) = ("-1".to_string(), false);
                    resynced.fetch_add(1, SeqCst);
                    continue;
                }
                502..=504 => {
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
                s => panic!("{url}: {s} {}", r.body_str()),
            }
            for item in r.items() {
                let key = item["key"].as_str().unwrap_or_default().to_string();
                match item["headers"]["operation"].as_str() {
                    Some("insert") => {
                        state.insert(key, item["value"].clone());
                    }
                    Some("update") => {
                        let row = state
                            .entry(key)
                            .or_insert_with(|| Value::Object(Default::default()));
                        for (k, v) in item["value"].as_object().expect("update value") {
                            row[k] = v.clone();
                        }
                    }
                    Some("delete") => {
                        state.remove(&key);
                    }
                    _ => {}
                }
            }
            handle = r.handle();
            offset = r.offset();
            cursor = r.header("electric-cursor").unwrap_or_default().to_string();
            if r.has("electric-up-to-date") {
                live = true;
                let view = state
                    .values()
                    .map(|v| {
                        let s = |c: &str| v[c].as_str().unwrap_or_default().to_string();
                        (s("id"), (s("grp"), s("title")))
                    })
                    .collect();
                *published.lock().expect("rows") = Some(view);
            }
        }
    });
    Follower {
        rows,
        resyncs,
        thread,
    }
}
