//! `ELECTRIC_DB_POOL_SIZE` bounds the server's Postgres connections: many shapes created at
//! once queue for a connection instead of opening one each (which Postgres would refuse past
//! `max_connections`), and every one of them still syncs.
//!
//! Method: a session holds an exclusive lock on the table, so every snapshot blocks on it. With
//! all 40 requests inside the server (the admission gauge says so) and the pool's connections
//! blocked on the lock, an unbounded pool would by now have opened a connection per shape; the
//! count of the server's connections is checked then, at the storm's peak, and sampled all along
//! by a second thread until every shape has synced.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::crash::Pg;
use support::{enc, metric, wait_until, Client, Env, Opts};

const SHAPES: usize = 40;
const POOL: u64 = 2;
/// Bound on each wait (a hung server fails the test instead of hanging it).
const WAIT: Duration = Duration::from_secs(60);
const SERVER_CONNECTIONS: &str =
    "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'ampere_core_%'";

#[test]
fn a_shape_storm_stays_within_the_pool_and_every_shape_syncs() {
    let cluster = support::cluster();
    let metrics = support::lease_port();
    let env = Env::start(
        &cluster,
        "CREATE TABLE items (id int PRIMARY KEY, k int NOT NULL);
         INSERT INTO items SELECT g, g % 40 FROM generate_series(1, 400) g;",
        Opts {
            cores: 2,
            env: vec![
                ("ELECTRIC_DB_POOL_SIZE", POOL.to_string()),
                ("ELECTRIC_PROMETHEUS_PORT", metrics.port().to_string()),
            ],
            ..Opts::default()
        },
    );
    let url = env.db.url();
    let mut locker = Pg::connect(&url).expect("connect the locking session");
    locker.exec("BEGIN");
    locker.exec("LOCK TABLE items IN ACCESS EXCLUSIVE MODE");

    // The peak of the server's connections, sampled until the storm is over.
    let peak = Arc::new(AtomicU64::new(0));
    let storm_over = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, storm_over, url) = (peak.clone(), storm_over.clone(), url.clone());
        std::thread::spawn(move || {
            let mut pg = Pg::connect(&url).expect("connect the sampling session");
            let mut samples = 0u64;
            while !storm_over.load(Ordering::Relaxed) {
                let n: u64 = pg
                    .value(SERVER_CONNECTIONS)
                    .expect("count")
                    .parse()
                    .expect("digits");
                peak.fetch_max(n, Ordering::Relaxed);
                samples += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            samples
        })
    };

    let port = env.server.port;
    let workers: Vec<_> = (0..SHAPES)
        .map(|k| {
            std::thread::spawn(move || {
                let c = Client::new(port);
                let q = format!("table=items&where={}", enc(&format!("k = {k}")));
                let mut r = c.get(&format!("/v1/shape?{q}&offset=-1"));
                let mut rows = 0;
                loop {
                    assert_eq!(r.status, 200, "{}", r.body_str());
                    rows += r
                        .items()
                        .iter()
                        .filter(|m| m["headers"]["operation"] == "insert")
                        .count();
                    if r.has("electric-up-to-date") {
                        return rows;
                    }
                    r = c.get(&format!(
                        "/v1/shape?{q}&handle={}&offset={}",
                        r.handle(),
                        r.offset()
                    ));
                }
            })
        })
        .collect();

    // Every request is inside the server, and the pool's connections wait on the lock.
    wait_until("all requests admitted", WAIT, || {
        metric(
            metrics.port(),
            "ampere_admission_in_flight{kind=\"initial\"}",
        ) >= SHAPES as f64
    });
    let blocked = "SELECT count(*) FROM pg_stat_activity \
                   WHERE application_name LIKE 'ampere_core_%' AND wait_event_type = 'Lock'";
    wait_until("the pool's connections blocked on the lock", WAIT, || {
        locker.value(blocked).as_deref() == Some(&POOL.to_string())
    });
    let at_peak: u64 = locker
        .value(SERVER_CONNECTIONS)
        .expect("count")
        .parse()
        .expect("digits");
    assert_eq!(
        at_peak, POOL,
        "{SHAPES} shapes waiting for a snapshot hold {at_peak} connections"
    );
    locker.exec("COMMIT");

    for w in workers {
        assert_eq!(w.join().expect("worker"), 10, "each shape has its 10 rows");
    }
    storm_over.store(true, Ordering::Relaxed);
    let samples = sampler.join().expect("sampler");
    assert!(samples > 0, "the sampler ran");
    let peak = peak.load(Ordering::Relaxed);
    assert!(
        peak <= POOL,
        "{peak} pooled connections at the peak ({samples} samples)"
    );
}
