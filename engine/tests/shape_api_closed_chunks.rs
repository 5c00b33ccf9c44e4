//! Closed chunks are answered by the core that holds the connection (`app/closed_chunks.rs`):
//! on two cores, every repeat of a catch-up request gets the owner's bytes and headers, the
//! hits are counted, a request naming the handle with another definition or revalidating with
//! `if-none-match` still gets the owner's answer, and once the shape is deleted every core
//! answers its chunks 409.

mod support;

use std::time::Duration;
use support::{cluster, enc, metric, wait_until, Env, Follower, Opts, Resp};
use testkit::ports::PortLease;

const HITS: &str = "ampere_closed_chunk_hits_total";
/// Each chunk URL is asked this many more times, each on a new connection (the kernel spreads
/// them over both cores).
const REPEATS: usize = 6;

fn opts(io_driver: &'static str, metrics: &PortLease, chunks_in_memory: bool) -> Opts {
    let mut env = vec![("ELECTRIC_PROMETHEUS_PORT", metrics.port().to_string())];
    if !chunks_in_memory {
        // Closed chunks are served from their files (`sendfile`), on whichever core.
        env.push(("AMPERE_CHUNK_CACHE_BYTES", "0".to_string()));
    }
    Opts {
        cores: 2,
        io_driver,
        chunk_bytes: Some(2048),
        env,
        ..Opts::default()
    }
}

/// Headers compared between a first answer and its repeats (sorted: the order is not part
/// of the protocol).
fn stable(r: &Resp) -> Vec<(String, String)> {
    let mut headers = r.stable_headers();
    headers.sort();
    headers
}

fn closed_chunks_answered_everywhere(io_driver: &'static str, chunks_in_memory: bool) {
    let cluster = cluster();
    let metrics = support::lease_port();
    let env = Env::start(
        &cluster,
        "CREATE TABLE items (id int PRIMARY KEY, title text NOT NULL);
         INSERT INTO items SELECT i, repeat('x', 40) || i FROM generate_series(1, 400) i;",
        opts(io_driver, &metrics, chunks_in_memory),
    );
    let def = format!("table=items&where={}", enc("id > 0"));
    // Catch up once, keeping every closed chunk's URL and first answer.
    let (mut f, _) = Follower::start(env.client(), &def);
    let mut closed = Vec::new();
    loop {
        let url = f.url(false);
        let r = f.next(false);
        r.expect(200);
        if r.has("electric-up-to-date") {
            break;
        }
        closed.push((url, r));
    }
    assert!(closed.len() >= 5, "{} closed chunks", closed.len());
    // A live change after the catch-up does not alter closed chunks.
    env.sql("INSERT INTO items VALUES (1000, 'later');");
    let before = metric(metrics.port(), HITS);
    for (url, first) in &closed {
        for _ in 0..REPEATS {
            let r = env.client().get(url);
            r.expect(200);
            assert_eq!(r.body, first.body, "{url}");
            assert_eq!(stable(&r), stable(first), "{url}");
            assert_ne!(r.h("x-request-id"), first.h("x-request-id"));
            assert!(r.has("access-control-allow-origin"));
        }
        let head = env.client().request("HEAD", url, &[]);
        head.expect(200);
        assert!(head.body.is_empty());
        assert_eq!(head.h("etag"), first.h("etag"));
    }
    let hits = metric(metrics.port(), HITS) - before;
    assert!(
        hits >= (closed.len() * REPEATS / 2) as f64,
        "{hits} hits for {} repeats",
        closed.len() * REPEATS
    );
    let (url, first) = &closed[1];
    // Revalidation is the owner's: 304 for the current etag.
    env.client()
        .get_with(url, &[("if-none-match", first.h("etag"))])
        .expect(304);
    // The handle with another definition: 409 naming that definition's own shape.
    let other = format!("table=items&where={}", enc("id > 1"));
    let (g, _) = Follower::start(env.client(), &other);
    let foreign = url.replace(&def, &other);
    assert_ne!(&foreign, url);
    for _ in 0..REPEATS {
        let r = env.client().get(&foreign);
        r.expect(409);
        assert_eq!(r.h("electric-handle"), g.handle);
    }
    // Deleted: every core forgets the chunks; from then on each repeat gets 409.
    env.client()
        .request(
            "DELETE",
            &format!("/v1/shape?{def}&handle={}", f.handle),
            &[],
        )
        .expect(202);
    wait_until(
        "every core forgot the chunks",
        Duration::from_secs(10),
        || (0..2 * REPEATS).all(|_| env.client().get(url).status == 409),
    );
    for (url, _) in &closed {
        for _ in 0..REPEATS {
            env.client().get(url).expect(409);
        }
    }
}

#[test]
fn closed_chunks_from_memory_epoll() {
    closed_chunks_answered_everywhere("epoll", true);
}

#[test]
fn closed_chunks_from_files_epoll() {
    closed_chunks_answered_everywhere("epoll", false);
}

#[test]
fn closed_chunks_from_files_uring() {
    closed_chunks_answered_everywhere("uring", false);
}

#[test]
fn a_kept_chunk_is_only_answered_to_its_own_url_with_the_secret() {
    let cluster = cluster();
    let metrics = support::lease_port();
    let mut opts = opts("epoll", &metrics, true);
    opts.secret = Some("s3cret".to_string());
    let env = Env::start(
        &cluster,
        "CREATE TABLE items (id int PRIMARY KEY, title text NOT NULL);
         INSERT INTO items SELECT i, repeat('y', 40) || i FROM generate_series(1, 200) i;",
        opts,
    );
    let (mut f, _) = Follower::start(env.client(), "table=items&secret=s3cret");
    let url = f.url(false);
    let first = f.next(false);
    first.expect(200);
    assert!(!first.has("electric-up-to-date"), "a closed chunk");
    let before = metric(metrics.port(), HITS);
    for _ in 0..REPEATS {
        let r = env.client().get(&url);
        r.expect(200);
        assert_eq!(r.body, first.body);
    }
    assert!(metric(metrics.port(), HITS) > before, "repeats were kept");
    for wrong in ["secret=wrong", "secret=", "api_secret=wrong"] {
        let r = env.client().get(&url.replace("secret=s3cret", wrong));
        r.expect(401);
    }
    let r = env.client().get(&url.replace("&secret=s3cret", ""));
    r.expect(401);
}
