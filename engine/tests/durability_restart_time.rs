//! Measurements for `docs/benchmarks/durability.md` (ignored: minutes of work, figures only).
//!
//! ```text
//! cargo build --release --bin ampere
//! AMPERE_BIN=target/release/ampere cargo test -p engine --test durability_restart_time \
//!     -- --ignored --nocapture --test-threads=1
//! ```
//!
//! `AMPERE_SHAPES` (default 10000) sets the number of shapes for the restart measurement;
//! `AMPERE_UPDATES` (default 0) updates every row that many times with a value of
//! `AMPERE_VALUE_BYTES` (default 65536) before the restarts, to give the shapes large logs
//! (10,000 × 8 × 64 KiB ≈ 5 GiB), cut into closed chunks of `AMPERE_CHUNK_BYTES` (default
//! 131072).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::crash::{CrashOpts, Pg, Reader, Restartable};
use support::{enc, Client};

fn opts() -> CrashOpts {
    CrashOpts {
        bin: std::env::var_os("AMPERE_BIN").map(PathBuf::from),
        ..Default::default()
    }
}

/// Creates shapes `where=id = k` for k in 1..=n with `threads` concurrent clients; returns
/// the handles in order of k.
fn create_shapes(port: u16, n: usize, threads: usize) -> Vec<String> {
    let next = Arc::new(AtomicUsize::new(1));
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let next = next.clone();
            std::thread::spawn(move || {
                let c = Client::new(port);
                let mut out = Vec::new();
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k > n {
                        return out;
                    }
                    let url = format!(
                        "/v1/shape?table=t&where={}&offset=-1",
                        enc(&format!("id = {k}"))
                    );
                    let r = c.get(&url);
                    assert_eq!(r.status, 200, "shape {k}: {}", r.body_str());
                    out.push((k, r.handle()));
                }
            })
        })
        .collect();
    let mut all: Vec<(usize, String)> = workers
        .into_iter()
        .flat_map(|w| w.join().expect("creator"))
        .collect();
    all.sort();
    all.into_iter().map(|(_, h)| h).collect()
}

fn du(path: &Path) -> String {
    Command::new("du")
        .args(["-sh"])
        .arg(path)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Each shape keeps 2–3 descriptors open (docs/storage-format.md), so 10,000 shapes need more
/// than the 20,000 this machine allows by default: raise the limit the server inherits.
fn raise_nofile(to: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_max < to {
            lim.rlim_max = to;
            lim.rlim_cur = to;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                eprintln!("cannot raise RLIMIT_NOFILE to {to}");
            }
        }
    }
}

#[test]
#[ignore = "measurement: minutes of work; run by hand for docs/benchmarks/durability.md"]
fn restart_time_with_many_shapes() {
    raise_nofile(65_536);
    let n: usize = std::env::var("AMPERE_SHAPES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let cluster = support::cluster();
    let db = cluster.create_database().expect("database");
    db.psql(&format!(
        "CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL);
         INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, {n}) g;"
    ))
    .expect("setup");
    let env_num = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let updates = env_num("AMPERE_UPDATES", 0);
    let value_bytes = env_num("AMPERE_VALUE_BYTES", 65_536);
    let chunk_bytes = env_num("AMPERE_CHUNK_BYTES", 131_072);
    let mut o = opts();
    o.env.push((
        "ELECTRIC_SHAPE_CHUNK_BYTES_THRESHOLD",
        chunk_bytes.to_string(),
    ));
    let mut server = Restartable::start(&db.url(), o);
    let t0 = Instant::now();
    let handles = create_shapes(server.port, n, 16);
    eprintln!("created {n} shapes in {:?}", t0.elapsed());
    // One transaction touching every shape, so each has a log entry, then wait until durable.
    let mut pg = Pg::connect(&db.url()).expect("connect");
    let lsn = pg.current_lsn();
    pg.exec("UPDATE t SET v = v || '.'");
    pg.wait_confirmed(lsn + 1, Duration::from_secs(120));
    // Large logs: every row rewritten with a big value (random, so nothing compresses it away).
    let t0 = Instant::now();
    // In transactions of 1,000 rows (64 MiB with the default value size): a transaction over
    // 250 MiB stops replication (`ingest::assemble::MAX_TXN_BYTES`).
    for u in 0..updates {
        let mut lsn = 0;
        for from in (0..n).step_by(1000) {
            // Confirmation past the start of the last transaction covers them all.
            lsn = pg.current_lsn();
            pg.exec(&format!(
                "UPDATE t SET v = (SELECT string_agg(md5(random()::text || g::text || id || {u}), '') \
                 FROM generate_series(1, {}) g) WHERE id > {from} AND id <= {}",
                value_bytes / 32,
                from + 1000
            ));
        }
        pg.wait_confirmed(lsn + 1, Duration::from_secs(600));
    }
    if updates > 0 {
        eprintln!(
            "{updates} updates of {n} rows with {value_bytes} B values in {:?}",
            t0.elapsed()
        );
    }
    eprintln!("storage: {}", du(&server.storage));

    for (label, crash) in [("clean stop (SIGTERM)", false), ("kill -9 mid-write", true)] {
        if crash {
            // A writer updating rows of many shapes while the server is killed.
            let url = db.url();
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let s2 = stop.clone();
            let w = std::thread::spawn(move || {
                let mut pg = Pg::connect(&url).expect("writer");
                let mut k = 0;
                while !s2.load(Ordering::Relaxed) {
                    k += 1;
                    pg.exec(&format!(
                        "UPDATE t SET v = 'w{k}' WHERE id % 50 = {}",
                        k % 50
                    ));
                }
            });
            std::thread::sleep(Duration::from_secs(2));
            server.kill9();
            stop.store(true, Ordering::Relaxed);
            w.join().expect("writer");
        } else {
            server.stop();
        }
        let t = Instant::now();
        server.spawn();
        let active = server.wait_active(Duration::from_secs(300));
        let c = server.client();
        let k = n / 2;
        let url = format!(
            "/v1/shape?table=t&where={}&handle={}&offset=-1",
            enc(&format!("id = {}", k + 1)),
            handles[k]
        );
        let rss_active = rss_kib(server.pid());
        let r = c.get(&url);
        let first = t.elapsed();
        assert_eq!(r.status, 200, "old handle after restart: {}", r.body_str());
        // The same shape's live log from its start: every closed chunk and the open tail.
        let t1 = Instant::now();
        let log_bytes = read_whole_log(&c, &url, &r);
        let whole = t1.elapsed();
        eprintln!(
            "{label}: exec → health active {active:?}; exec → first response with an old handle \
             {first:?}; RSS when active {} KiB, after the first response {} KiB; that shape's \
             whole log ({log_bytes} B) in {whole:?}",
            rss_active,
            rss_kib(server.pid())
        );
    }
    // Every old handle still answers (no shape was lost).
    let c = server.client();
    let lost = handles
        .iter()
        .enumerate()
        .filter(|(i, h)| {
            let url = format!(
                "/v1/shape?table=t&where={}&handle={h}&offset=-1",
                enc(&format!("id = {}", i + 1))
            );
            c.get(&url).status != 200
        })
        .count();
    assert_eq!(lost, 0, "shapes lost across restarts");
}

/// Resident memory of a process, from `/proc`.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Follows a shape from the response `first` (to `url`) until up to date; returns the body
/// bytes read.
fn read_whole_log(c: &Client, url: &str, first: &support::http::Resp) -> usize {
    let mut bytes = first.body.len();
    let mut offset = first
        .header("electric-offset")
        .unwrap_or_default()
        .to_string();
    let base = url.split("&offset=").next().unwrap_or(url).to_string();
    for _ in 0..100_000 {
        let r = c.get(&format!("{base}&offset={offset}"));
        assert_eq!(r.status, 200, "reading the log: {}", r.body_str());
        bytes += r.body.len();
        if r.header("electric-up-to-date").is_some() {
            return bytes;
        }
        offset = r
            .header("electric-offset")
            .expect("offset header")
            .to_string();
    }
    panic!("the log did not end");
}

/// Replication throughput into one shape: `txns` transactions of `rows` inserted rows, timed
/// from the first write until the reader is up to date past a fence.
fn append_rate(storage: Option<PathBuf>, txns: usize, rows: usize) -> f64 {
    let cluster = support::cluster();
    let db = cluster.create_database().expect("database");
    db.psql("CREATE TABLE a (id int PRIMARY KEY, v text NOT NULL)")
        .expect("setup");
    let server = Restartable::start(
        &db.url(),
        CrashOpts {
            storage,
            cores: 1,
            ..opts()
        },
    );
    let reader = Reader::spawn("a", server.port, "table=a");
    reader.wait_past(0, Duration::from_secs(30));
    let mut pg = Pg::connect(&db.url()).expect("connect");
    let t = Instant::now();
    for i in 0..txns {
        pg.exec(&format!(
            "INSERT INTO a SELECT g, repeat('x', 100) FROM generate_series({}, {}) g",
            i * rows + 1,
            (i + 1) * rows
        ));
    }
    let fence = pg
        .value(
            "BEGIN; INSERT INTO a VALUES (0, 'fence'); SELECT pg_current_wal_lsn()::text; COMMIT;",
        )
        .map(|s| support::crash::parse_pg_lsn(&s))
        .expect("fence");
    reader.wait_past(fence, Duration::from_secs(300));
    let secs = t.elapsed().as_secs_f64();
    let s = reader.stop();
    assert_eq!(s.rows.len(), txns * rows + 1);
    (txns * rows) as f64 / secs
}

#[test]
#[ignore = "measurement; needs root for the tmpfs mount"]
fn append_throughput_disk_vs_tmpfs() {
    let (txns, rows) = (200, 500);
    let disk = append_rate(None, txns, rows);
    let mnt = std::env::temp_dir().join(format!("ampere-append-tmpfs-{}", std::process::id()));
    std::fs::create_dir_all(&mnt).expect("mnt");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=512m", "tmpfs"])
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    let tmpfs = mounted.then(|| append_rate(Some(mnt.join("s")), txns, rows));
    if mounted {
        let _ = Command::new("umount").arg("-l").arg(&mnt).status();
    }
    let _ = std::fs::remove_dir(&mnt);
    eprintln!(
        "{txns} txns × {rows} rows into one shape: storage on disk {disk:.0} rows/s; on tmpfs {}",
        tmpfs.map_or("n/a (mount failed)".into(), |r| format!("{r:.0} rows/s"))
    );
}
