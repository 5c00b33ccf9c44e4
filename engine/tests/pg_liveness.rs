//! Dead database connections are found, and addresses other than IPv4 loopback work: a TCP
//! proxy between Ampere and Postgres that stops forwarding without closing (what a NAT or load
//! balancer that dropped the connection looks like) makes the replication connection silent;
//! Ampere replaces it within its silence bound and no change is lost or duplicated. And Ampere
//! replicates from Postgres over IPv6 loopback.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{Follower, Opts, Server};

/// Forwards connections to `upstream`; [`Proxy::freeze`] stops every connection open at that
/// moment from forwarding anything (they stay open), while new ones work.
struct Proxy {
    port: u16,
    generation: Arc<AtomicU64>,
    frozen_below: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let generation = Arc::new(AtomicU64::new(0));
        let frozen_below = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (g, f, s) = (generation.clone(), frozen_below.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let id = g.fetch_add(1, Ordering::SeqCst) + 1;
                        let server = TcpStream::connect(("127.0.0.1", upstream)).expect("upstream");
                        for (from, to) in [
                            (
                                client.try_clone().expect("clone"),
                                server.try_clone().expect("clone"),
                            ),
                            (server, client),
                        ] {
                            let (f, s) = (f.clone(), s.clone());
                            std::thread::spawn(move || pump(id, from, to, &f, &s));
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self {
            port,
            generation,
            frozen_below,
            stop,
        }
    }

    /// Every connection open now stops forwarding.
    fn freeze(&self) {
        let current = self.generation.load(Ordering::SeqCst);
        self.frozen_below.store(current + 1, Ordering::SeqCst);
    }

    fn connections(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn pump(
    id: u64,
    mut from: TcpStream,
    mut to: TcpStream,
    frozen_below: &AtomicU64,
    stop: &AtomicBool,
) {
    from.set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let mut buf = [0u8; 16 * 1024];
    while !stop.load(Ordering::Relaxed) {
        if id < frozen_below.load(Ordering::SeqCst) {
            // Frozen: hold the sockets, forward nothing, never close.
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        match from.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if id < frozen_below.load(Ordering::SeqCst) {
                    continue; // dropped on the floor, as by a dead middlebox
                }
                if to.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

#[test]
fn a_silently_dead_replication_connection_is_replaced_without_loss() {
    let cluster = support::cluster();
    let db = cluster.create_database().expect("db");
    db.psql(
        "CREATE TABLE items (id int PRIMARY KEY, title text); INSERT INTO items VALUES (1, 'one');",
    )
    .expect("schema");
    let proxy = Proxy::start(db.params().port);
    let url = db.url().replace(
        &format!(":{}/", db.params().port),
        &format!(":{}/", proxy.port),
    );
    assert_ne!(url, db.url());
    let server = Server::start(
        &url,
        Opts {
            env: vec![("AMPERE_REPLICATION_SILENCE_TIMEOUT", "2s".to_string())],
            ..Opts::default()
        },
    );
    let (mut f, _) = Follower::start(server.client(), "table=items");
    while !f.next(false).has("electric-up-to-date") {}
    let before = proxy.connections();
    proxy.freeze();
    let frozen_at = Instant::now();
    let mut ids = Vec::new();
    let mut unavailable = 0;
    for i in 2..=6 {
        db.psql(&format!("INSERT INTO items VALUES ({i}, 'row {i}');"))
            .expect("insert");
    }
    // The changes arrive once the replication connection has been replaced.
    while ids.len() < 5 {
        assert!(
            frozen_at.elapsed() < Duration::from_secs(30),
            "got {ids:?}; {}",
            server.stderr_text()
        );
        let r = f.next(true);
        if r.status == 503 {
            // A catalog lookup on a pooled connection behind the frozen proxy timed out (it is
            // dropped); the client retries, as the official client does.
            unavailable += 1;
            assert!(unavailable <= 3, "{}", server.stderr_text());
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        r.expect(200);
        for item in r.items() {
            if let Some(id) = item["value"]["id"].as_str() {
                ids.push(id.to_string());
            }
        }
    }
    assert_eq!(ids, ["2", "3", "4", "5", "6"], "each change once, in order");
    assert!(
        proxy.connections() > before,
        "a new connection replaced the frozen one"
    );
    let log = server.stderr_text();
    assert!(log.contains("presumed dead"), "{log}");
    // The frozen session still lived in Postgres (holding the slot); Ampere ended it.
    assert!(
        log.contains("ended the previous replication session"),
        "{log}"
    );
    // And the new connection keeps streaming.
    let r = f.live_during(&db, "INSERT INTO items VALUES (7, 'seven');");
    r.expect(200);
    assert!(r.body_str().contains("\"seven\""), "{}", r.body_str());
}

#[test]
fn replicates_over_ipv6_loopback() {
    let cluster = testkit::Cluster::start_private(testkit::Options {
        settings: vec![("listen_addresses".into(), "127.0.0.1,::1".into())],
        ..Default::default()
    })
    .expect("cluster");
    let db = cluster.create_database().expect("db");
    db.psql(
        "CREATE TABLE items (id int PRIMARY KEY, title text); INSERT INTO items VALUES (1, 'one');",
    )
    .expect("schema");
    let url = db.url().replace("@127.0.0.1:", "@[::1]:");
    assert!(url.contains("[::1]"), "{url}");
    let server = Server::start(
        &url,
        Opts {
            env: vec![("ELECTRIC_DATABASE_USE_IPV6", "true".to_string())],
            ..Opts::default()
        },
    );
    let (mut f, first) = Follower::start(server.client(), "table=items");
    let mut body = first.body_str();
    loop {
        let r = f.next(false);
        body.push_str(&r.body_str());
        if r.has("electric-up-to-date") {
            break;
        }
    }
    assert!(body.contains("\"one\""), "{body}");
    let r = f.live_during(&db, "INSERT INTO items VALUES (2, 'two');");
    r.expect(200);
    assert!(r.body_str().contains("\"two\""), "{}", r.body_str());
}

/// Connections Ampere holds to the test database.
fn ampere_connections(db: &testkit::TestDb<'_>) -> usize {
    db.psql(&format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' \
         AND application_name LIKE 'ampere%'",
        db.name()
    ))
    .expect("pg_stat_activity")
    .trim()
    .parse()
    .expect("a count")
}

/// `ELECTRIC_REPLICATION_IDLE_TIMEOUT`: with no transaction for the timeout every database
/// connection is closed (a scale-to-zero database may sleep), health stays `active`, and the
/// next shape request reconnects; a change made meanwhile arrives.
#[test]
fn idle_replication_releases_every_connection_and_wakes_on_request() {
    let cluster = support::cluster();
    let db = cluster.create_database().expect("db");
    db.psql(
        "CREATE TABLE items (id int PRIMARY KEY, title text); INSERT INTO items VALUES (1, 'one');",
    )
    .expect("schema");
    let server = Server::start(
        &db.url(),
        Opts {
            cores: 2,
            env: vec![("ELECTRIC_REPLICATION_IDLE_TIMEOUT", "30s".to_string())],
            ..Opts::default()
        },
    );
    let (mut f, _) = Follower::start(server.client(), "table=items");
    while !f.next(false).has("electric-up-to-date") {}
    assert!(ampere_connections(&db) >= 1);
    support::wait_until("every connection closed", Duration::from_secs(90), || {
        ampere_connections(&db) == 0
    });
    assert!(server
        .stderr_text()
        .contains("closing all database connections"));
    let health = server.client().get("/v1/health");
    health.expect(200);
    assert!(
        health.body_str().contains("active"),
        "{}",
        health.body_str()
    );
    // A change while Ampere sleeps, then a request: replication resumes from the slot.
    db.psql("INSERT INTO items VALUES (2, 'while asleep');")
        .expect("insert");
    let started = Instant::now();
    let mut seen = false;
    while !seen {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{}",
            server.stderr_text()
        );
        let r = f.next(true);
        r.expect(200);
        seen = r.body_str().contains("while asleep");
    }
    assert!(ampere_connections(&db) >= 1, "replication is back");
}
