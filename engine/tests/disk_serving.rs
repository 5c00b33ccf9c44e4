//! Closed snapshot chunks are served from their files (issue: the disk is the log), black-box
//! with a real server and Postgres:
//! - a snapshot much larger than the server's memory growth allowance syncs completely, with
//!   every row equal to `SELECT`, while the server's RSS grows by far less than the log;
//! - after a restart (recovery reads headers only) a flipped byte in a closed chunk on disk is
//!   found when that chunk is first read: the shape answers 409 and is rebuilt from Postgres,
//!   and the damaged bytes are never served.

mod support;

use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;
use support::crash::{CrashOpts, Restartable};
use support::{Client, Env, Follower, Opts};

/// Follows a shape from `offset=-1` to up-to-date; returns the rows by id, the handle, and the
/// status of the first non-200 answer if any.
fn sync(c: &Client, table: &str) -> Result<(BTreeMap<String, Value>, String), u16> {
    let mut rows = BTreeMap::new();
    let mut r = c.get(&format!("/v1/shape?table={table}&offset=-1"));
    loop {
        if r.status != 200 {
            return Err(r.status);
        }
        for m in r.items() {
            match m["headers"]["operation"].as_str() {
                Some("insert") => {
                    let id = m["value"]["id"].as_str().expect("id").to_string();
                    rows.insert(id, m["value"].clone());
                }
                Some(other) => panic!("unexpected {other} in a snapshot"),
                None => {}
            }
        }
        if r.has("electric-up-to-date") {
            return Ok((rows, r.handle()));
        }
        r = c.get(&format!(
            "/v1/shape?table={table}&handle={}&offset={}",
            r.handle(),
            r.offset()
        ));
    }
}

/// Positions `(payload start, payload length)` of the records of `kind` in a record file
/// (`snapshot.data`: every record is a snapshot chunk, kind 4; `chunks.data`: CHUNK_DATA, kind
/// 5, alternates with CHUNK_INDEX, kind 6).
fn records(bytes: &[u8], kind: u8) -> Vec<(usize, usize)> {
    const HEADER: usize = 25;
    let mut out = Vec::new();
    let mut at = 0;
    while at + HEADER <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        if bytes[at + 8] == kind {
            out.push((at + HEADER, len));
        }
        at += HEADER + len;
    }
    out
}

/// Turns a row's `x` in the payload at `(start, len)` into `h`: still valid JSON, so only the
/// record's checksum can tell.
fn flip_an_x(bytes: &mut [u8], (start, len): (usize, usize)) {
    let at = bytes[start..start + len]
        .iter()
        .position(|b| *b == b'x')
        .expect("an x")
        + start;
    bytes[at] ^= 0x10;
}

#[test]
fn a_large_snapshot_is_served_from_disk_without_growing_memory() {
    let cluster = support::cluster();
    // About 80 MB of log: 200,000 rows of ~400 bytes.
    let env = Env::start(
        &cluster,
        "CREATE TABLE big (id int PRIMARY KEY, pad text);
         INSERT INTO big SELECT g, repeat(md5(g::text), 12) FROM generate_series(1, 200000) g;",
        Opts {
            cores: 2,
            chunk_bytes: Some(1 << 20),
            env: vec![("AMPERE_CHUNK_CACHE_BYTES", CACHE.to_string())],
            ..Opts::default()
        },
    );
    let c = env.client();
    assert_eq!(c.get("/v1/health").status, 200);
    let rss_before = env.server.rss_kib();
    let (rows, _) = sync(&c, "big").expect("sync");
    let rss_after = env.server.rss_kib();
    assert_eq!(rows.len(), 200_000);
    let want = env
        .db
        .rows("SELECT id, pad FROM big ORDER BY id LIMIT 3")
        .expect("rows");
    for w in want {
        assert_eq!(rows[&w[0]]["pad"], w[1].as_str(), "row {}", w[0]);
    }
    let log_bytes: u64 = env
        .db
        .rows("SELECT sum(length(pad) + 40) FROM big")
        .expect("size")[0][0]
        .parse()
        .expect("digits");
    let growth_kib = rss_after.saturating_sub(rss_before);
    eprintln!(
        "RSS {rss_before} KiB before, {rss_after} KiB after a {} MiB snapshot",
        log_bytes >> 20
    );
    // Holding the snapshot in memory would grow RSS by the log's size (~80 MB); the budget
    // plus a fixed allowance (allocator, buffers) is what may be used.
    assert!(
        growth_kib * 1024 < CACHE + (12 << 20),
        "RSS grew by {growth_kib} KiB for a {log_bytes}-byte snapshot (budget {CACHE} B)"
    );
    // Concurrent readers of chunks evicted from the budget (re-read from disk) and of cached
    // ones all get the same rows.
    let port = env.server.port;
    let readers: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(move || sync(&Client::new(port), "big").expect("sync")))
        .collect();
    for r in readers {
        assert_eq!(r.join().expect("reader").0, rows);
    }
}

/// `AMPERE_CHUNK_CACHE_BYTES` for the memory test: a tenth of the log.
const CACHE: u64 = 8 << 20;

#[test]
fn a_damaged_chunk_on_disk_gets_409_and_a_rebuilt_shape() {
    let cluster = support::cluster();
    let db = cluster.create_database().expect("database");
    db.psql(
        "CREATE TABLE items (id int PRIMARY KEY, pad text);
         INSERT INTO items SELECT g, repeat('x', 200) FROM generate_series(1, 3000) g;",
    )
    .expect("table");
    let mut server = Restartable::start(
        &db.url(),
        CrashOpts {
            env: vec![("ELECTRIC_SHAPE_CHUNK_BYTES_THRESHOLD", "65536".to_string())],
            ..CrashOpts::default()
        },
    );
    let (rows, handle) = sync(&server.client(), "items").expect("sync");
    assert_eq!(rows.len(), 3000);
    server.stop();

    let path = support::crash::shape_dir(&server.storage, &handle).join("snapshot.data");
    let mut bytes = std::fs::read(&path).expect("snapshot.data");
    let chunks = records(&bytes, 4);
    assert!(chunks.len() >= 4, "{} chunks", chunks.len());
    flip_an_x(&mut bytes, chunks[2]);
    std::fs::write(&path, &bytes).expect("write");

    server.restart();
    let c = server.client();
    // Chunks 0 and 1 are intact and served.
    let r = c.get(&format!("/v1/shape?table=items&handle={handle}&offset=0_0"));
    assert_eq!(r.status, 200, "{}", r.body_str());
    // Chunk 2 is not.
    let r = c.get(&format!("/v1/shape?table=items&handle={handle}&offset=0_1"));
    assert_eq!(r.status, 409, "{}", r.body_str());
    assert!(!r.body_str().contains("hxx"), "damaged bytes served");
    let next = r.handle();
    assert_ne!(next, handle);
    assert!(
        server.log().contains("dropping the shape"),
        "{}",
        server.log_tail(20)
    );
    // The rebuilt shape has every row, undamaged.
    let (again, rebuilt) = sync(&c, "items").expect("resync");
    assert_eq!(rebuilt, next);
    assert_eq!(again, rows);
    // The old handle stays gone.
    let r = c.get(&format!("/v1/shape?table=items&handle={handle}&offset=0_0"));
    assert_eq!(r.status, 409);
    server.stop();
}

/// The same for a closed chunk of the real log after a restart: recovery reads only the
/// record headers of `chunks.data` (lazy recovery), so the damage is found when the chunk is
/// first read, and never sent.
#[test]
fn a_damaged_real_log_chunk_after_a_restart_gets_409() {
    let cluster = support::cluster();
    let db = cluster.create_database().expect("database");
    db.psql("CREATE TABLE items (id int PRIMARY KEY, pad text);")
        .expect("table");
    let mut server = Restartable::start(
        &db.url(),
        CrashOpts {
            env: vec![("ELECTRIC_SHAPE_CHUNK_BYTES_THRESHOLD", "4096".to_string())],
            ..CrashOpts::default()
        },
    );
    let c = server.client();
    sync(&c, "items").expect("empty shape");
    for t in 0..10 {
        db.psql(&format!(
            "INSERT INTO items SELECT g, repeat('x', 200) FROM generate_series({}, {}) g",
            t * 30 + 1,
            t * 30 + 30
        ))
        .expect("insert");
    }
    let mut synced = None;
    support::wait_until("the inserts", std::time::Duration::from_secs(30), || {
        synced = sync(&c, "items").ok().filter(|(rows, _)| rows.len() == 300);
        synced.is_some()
    });
    let rows = synced.expect("synced");
    let handle = rows.1.clone();
    server.stop();

    let path = support::crash::shape_dir(&server.storage, &handle).join("chunks.data");
    let mut bytes = std::fs::read(&path).expect("chunks.data");
    let data = records(&bytes, 5);
    assert!(data.len() >= 4, "{} closed chunks", data.len());
    flip_an_x(&mut bytes, data[2]);
    std::fs::write(&path, &bytes).expect("write");

    server.restart();
    let c = server.client();
    let mut offset = "-1".to_string();
    let mut refused = false;
    for _ in 0..1000 {
        let r = c.get(&format!(
            "/v1/shape?table=items&handle={handle}&offset={offset}"
        ));
        assert!(!r.body_str().contains("hxx"), "damaged bytes served");
        if r.status == 409 {
            refused = true;
            break;
        }
        assert_eq!(r.status, 200, "{}", r.body_str());
        assert!(!r.has("electric-up-to-date"), "read past the damaged chunk");
        offset = r.offset();
    }
    assert!(refused, "never refused");
    assert!(
        server.log().contains("dropping the shape"),
        "{}",
        server.log_tail(20)
    );
    // The rebuilt shape has every row, undamaged.
    let (again, rebuilt) = sync(&c, "items").expect("resync");
    assert_ne!(rebuilt, handle);
    assert_eq!(again, rows.0);
    server.stop();
}

/// Closed real-log chunks are served from `chunks.data`, whose records hold each chunk as its
/// response body, brackets included (a whole chunk is one file range): a whole chunk, a request
/// from inside a closed chunk, and a chunk that ends at the log end (its up-to-date message
/// goes before the `]`) answer what a server holding every chunk in memory answers.
#[test]
fn closed_log_chunks_on_disk_answer_as_from_memory() {
    let cluster = support::cluster();
    let opts = |budget: &str| Opts {
        cores: 1,
        chunk_bytes: Some(1024),
        env: vec![("AMPERE_CHUNK_CACHE_BYTES", budget.to_string())],
        ..Opts::default()
    };
    let env = Env::start(
        &cluster,
        "CREATE TABLE t (id int PRIMARY KEY, pad text); INSERT INTO t VALUES (0, 'seed');",
        opts("0"),
    );
    // The same shape on a second server whose budget keeps every closed chunk in memory.
    let memory = support::Server::start(&env.db.url(), opts("67108864"));
    let (mut disk_f, _) = Follower::start(env.client(), "table=t");
    let (mut mem_f, _) = Follower::start(memory.client(), "table=t");
    for f in [&mut disk_f, &mut mem_f] {
        while !f.next(false).has("electric-up-to-date") {}
    }
    // Two rows, followed live: the followers' position is then inside the first real-log
    // chunk, which the rows below close.
    env.sql("INSERT INTO t SELECT g, repeat('a', 50) FROM generate_series(1, 2) g");
    for f in [&mut disk_f, &mut mem_f] {
        support::wait_until("the two rows replicated", Duration::from_secs(30), || {
            let r = f.next(true);
            r.expect(200);
            r.body_str().contains(r#""id":"2""#)
        });
    }
    assert_eq!(disk_f.offset, mem_f.offset);
    // Rows in several transactions close chunks after that position; the last row is larger
    // than a chunk, so the log ends exactly at a chunk's end.
    for i in 0..8 {
        let first = 10 + i * 4;
        env.sql(&format!(
            "INSERT INTO t SELECT g, repeat('b', 60) FROM generate_series({first}, {}) g",
            first + 3
        ));
    }
    env.sql("INSERT INTO t VALUES (1000, repeat('z', 2000))");
    // Both servers have every row once a live request from the start position sees id 1000.
    let inside = disk_f.offset.clone();
    for f in [&disk_f, &mem_f] {
        let mut at = f.offset.clone();
        support::wait_until("the last row replicated", Duration::from_secs(30), || {
            let r = f.client.get(&format!(
                "/v1/shape?table=t&handle={}&offset={at}&live=true",
                f.handle
            ));
            r.expect(200);
            at = r.offset();
            r.body_str().contains("zzzz")
        });
    }
    // A request from the first real-log entry: that offset lies inside a closed chunk.
    let first_row = disk_f.client.get(&format!(
        "/v1/shape?table=t&handle={}&offset={inside}",
        disk_f.handle
    ));
    first_row.expect(200);
    let first_ops = first_row.items();
    assert!(first_ops.len() >= 2, "{}", first_row.body_str());

    // Catch up from the position after the snapshot on both servers: same offsets, same
    // messages (control messages carry each server's last seen LSN, so those are compared by
    // kind), and every body is a JSON array whose length is the content-length.
    let (mut at_disk, mut at_mem) = (inside.clone(), inside.clone());
    let mut ids = Vec::new();
    let mut responses = 0;
    loop {
        let d = disk_f.client.get(&format!(
            "/v1/shape?table=t&handle={}&offset={at_disk}",
            disk_f.handle
        ));
        let m = mem_f.client.get(&format!(
            "/v1/shape?table=t&handle={}&offset={at_mem}",
            mem_f.handle
        ));
        d.expect(200);
        m.expect(200);
        assert_eq!(d.h("content-length"), d.body.len().to_string());
        assert_eq!(d.offset(), m.offset(), "chunk boundaries differ");
        let (d_items, m_items) = (d.items(), m.items());
        assert_eq!(
            d_items.len(),
            m_items.len(),
            "{}\n{}",
            d.body_str(),
            m.body_str()
        );
        for (a, b) in d_items.iter().zip(&m_items) {
            if a["headers"]["control"].is_string() {
                assert_eq!(a["headers"]["control"], b["headers"]["control"]);
            } else {
                assert_eq!(a, b);
                ids.push(a["value"]["id"].as_str().expect("id").to_string());
            }
        }
        responses += 1;
        if d.has("electric-up-to-date") {
            // The last chunk ends at the log end: its entries, then the up-to-date message.
            let last = d_items.last().expect("up-to-date message");
            assert_eq!(last["headers"]["control"], "up-to-date", "{}", d.body_str());
            assert!(d_items.len() >= 2, "{}", d.body_str());
            break;
        }
        at_disk = d.offset();
        at_mem = m.offset();
    }
    assert!(
        responses >= 3,
        "{responses} responses: too few closed chunks"
    );
    // Every row after the position once, in commit order; the first response started inside
    // the chunk with the two rows' successor.
    let want: Vec<String> = (10..42)
        .chain(std::iter::once(1000))
        .map(|i| i.to_string())
        .collect();
    assert_eq!(ids, want);
    assert_eq!(first_ops[0]["value"]["id"], "10");
    // HEAD of a whole chunk from disk announces the same length and sends no body.
    let r = disk_f.client.request(
        "HEAD",
        &format!("/v1/shape?table=t&handle={}&offset={inside}", disk_f.handle),
        &[],
    );
    assert_eq!(r.h("content-length"), first_row.body.len().to_string());
    assert!(r.body.is_empty());
}
