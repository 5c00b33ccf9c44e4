//! Streaming SSE live mode (§5.7, §6.5), black-box over a raw socket: the head arrives before any
//! data, each write arrives as `data:` events ending with an up-to-date event on the same open
//! response, silence brings `: keep-alive` comments, the stream ends (chunked terminator, the
//! connection stays usable) after the SSE timeout, and an invalidated shape ends the stream with
//! the next request answered 409. Run on one and two cores (the request crosses cores) and both
//! io drivers.

mod support;

use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::{Env, Opts};

/// Bound on waiting for any single expected event: a hung stream fails the test, never hangs it.
const EVENT_WAIT: Duration = Duration::from_secs(20);

/// An open streaming response being read chunk by chunk.
struct Stream {
    sock: TcpStream,
    /// Raw bytes received and not yet de-chunked.
    raw: Vec<u8>,
    /// De-chunked body bytes not yet consumed as events.
    body: Vec<u8>,
    ended: bool,
    head: String,
}

impl Stream {
    fn open(port: u16, target: &str) -> Self {
        let mut sock = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        write!(
            sock,
            "GET {target} HTTP/1.1\r\nhost: x\r\naccept: text/event-stream\r\n\r\n"
        )
        .expect("send");
        let mut s = Self {
            sock,
            raw: Vec::new(),
            body: Vec::new(),
            ended: false,
            head: String::new(),
        };
        let deadline = Instant::now() + EVENT_WAIT;
        loop {
            if let Some(end) = s.raw.windows(4).position(|w| w == b"\r\n\r\n") {
                s.head = String::from_utf8(s.raw[..end].to_vec()).expect("head");
                s.raw.drain(..end + 4);
                s.dechunk();
                break;
            }
            assert!(Instant::now() < deadline, "no response head");
            s.read_some();
        }
        s
    }

    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    fn read_some(&mut self) {
        let mut buf = [0u8; 8192];
        match self.sock.read(&mut buf) {
            Ok(0) => panic!("connection closed; head {:?}", self.head),
            Ok(n) => self.raw.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("read: {e}"),
        }
        if !self.head.is_empty() {
            self.dechunk();
        }
    }

    /// Moves complete chunks from `raw` to `body`; notes the terminating chunk.
    fn dechunk(&mut self) {
        while !self.ended {
            let Some(line_end) = self.raw.windows(2).position(|w| w == b"\r\n") else {
                return;
            };
            let size_text = std::str::from_utf8(&self.raw[..line_end]).expect("chunk size");
            let size = usize::from_str_radix(size_text.trim(), 16).expect("hex chunk size");
            if size == 0 {
                assert!(self.raw.len() >= line_end + 4, "terminator incomplete");
                assert_eq!(&self.raw[line_end..line_end + 4], b"\r\n\r\n");
                self.raw.drain(..line_end + 4);
                self.ended = true;
                return;
            }
            let total = line_end + 2 + size + 2;
            if self.raw.len() < total {
                return;
            }
            assert_eq!(&self.raw[total - 2..total], b"\r\n", "chunk framing");
            self.body
                .extend_from_slice(&self.raw[line_end + 2..line_end + 2 + size]);
            self.raw.drain(..total);
        }
    }

    /// The next SSE block (`data: …` event or `: comment`), or `None` when the stream ended.
    fn next_block(&mut self) -> Option<String> {
        let deadline = Instant::now() + EVENT_WAIT;
        loop {
            if let Some(end) = self.body.windows(2).position(|w| w == b"\n\n") {
                let block = String::from_utf8(self.body[..end].to_vec()).expect("utf-8 event");
                self.body.drain(..end + 2);
                return Some(block);
            }
            if self.ended {
                assert!(self.body.is_empty(), "partial event at the end");
                return None;
            }
            assert!(Instant::now() < deadline, "no event within {EVENT_WAIT:?}");
            self.read_some();
        }
    }

    /// Data events up to and including the next up-to-date event (comments skipped).
    fn next_batch(&mut self) -> Vec<Value> {
        let mut out = Vec::new();
        loop {
            let block = self.next_block().expect("stream ended before up-to-date");
            let Some(data) = block.strip_prefix("data: ") else {
                assert!(block.starts_with(':'), "not an SSE block: {block:?}");
                continue;
            };
            let v: Value = serde_json::from_str(data).expect("event JSON");
            let done = v["headers"]["control"] == "up-to-date";
            out.push(v);
            if done {
                return out;
            }
        }
    }
}

fn sse_opts(cores: usize, io_driver: &'static str) -> Opts {
    Opts {
        cores,
        io_driver,
        env: vec![
            ("AMPERE_SSE_TIMEOUT", "4000".to_string()),
            ("AMPERE_SSE_KEEPALIVE", "300".to_string()),
        ],
        ..Opts::default()
    }
}

/// The shape's handle and end offset after its initial sync.
fn synced(env: &Env<'_>, query: &str) -> (String, String) {
    let c = env.client();
    let mut r = c.get(&format!("/v1/shape?{query}&offset=-1"));
    loop {
        assert_eq!(r.status, 200, "{}", r.body_str());
        let (handle, offset) = (r.handle().to_string(), r.offset().to_string());
        if r.has("electric-up-to-date") {
            return (handle, offset);
        }
        r = c.get(&format!(
            "/v1/shape?{query}&handle={handle}&offset={offset}"
        ));
    }
}

fn streams_writes(opts: Opts) {
    let cluster = support::cluster();
    let env = Env::start(
        &cluster,
        "CREATE TABLE items (id int PRIMARY KEY, v text); INSERT INTO items VALUES (1, 'a');",
        opts,
    );
    let (handle, offset) = synced(&env, "table=items");
    let target =
        format!("/v1/shape?table=items&live=true&live_sse=true&handle={handle}&offset={offset}");
    let mut s = Stream::open(env.server.port, &target);
    assert!(s.head.starts_with("HTTP/1.1 200"), "{}", s.head);
    assert_eq!(
        s.header("content-type").as_deref(),
        Some("text/event-stream")
    );
    assert_eq!(s.header("transfer-encoding").as_deref(), Some("chunked"));
    assert_eq!(s.header("content-length"), None);
    assert_eq!(
        s.header("electric-handle").as_deref(),
        Some(handle.as_str())
    );
    // max-age follows the SSE timeout (4 s here): max(1, timeout - 1).
    assert_eq!(
        s.header("cache-control").as_deref(),
        Some("public, max-age=3")
    );

    // Two separate transactions arrive as two batches on the same open response.
    for (id, v) in [(2, "b"), (3, "c")] {
        env.sql(&format!("INSERT INTO items VALUES ({id}, '{v}')"));
        let batch = s.next_batch();
        assert_eq!(batch.len(), 2, "{batch:?}");
        assert_eq!(batch[0]["headers"]["operation"], "insert");
        assert_eq!(batch[0]["value"]["id"], id.to_string());
        assert_eq!(batch[0]["value"]["v"], v);
        let lsn = batch[1]["headers"]["global_last_seen_lsn"]
            .as_str()
            .expect("lsn");
        assert!(lsn.parse::<u64>().expect("digits") > 0);
    }

    // A multi-row transaction is one batch, every row before the single up-to-date.
    env.sql(
        "BEGIN; UPDATE items SET v = 'z' WHERE id <= 2; DELETE FROM items WHERE id = 3; COMMIT;",
    );
    let batch = s.next_batch();
    let ops: Vec<&str> = batch[..batch.len() - 1]
        .iter()
        .map(|m| m["headers"]["operation"].as_str().expect("op"))
        .collect();
    assert_eq!(ops, ["update", "update", "delete"], "{batch:?}");

    // Silence: keep-alive comments, then the stream ends after the SSE timeout.
    let mut comments = 0;
    while let Some(block) = s.next_block() {
        assert_eq!(block, ": keep-alive", "only comments while nothing changes");
        comments += 1;
    }
    assert!(comments >= 1, "a keep-alive before the end");
    assert!(s.ended);

    // The connection is still usable after the stream ended.
    write!(
        s.sock,
        "GET /v1/health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    .expect("second request");
    s.sock.set_read_timeout(Some(EVENT_WAIT)).expect("timeout");
    let mut rest = Vec::new();
    s.sock.read_to_end(&mut rest).expect("second response");
    let mut all = std::mem::take(&mut s.raw);
    all.extend_from_slice(&rest);
    let text = String::from_utf8_lossy(&all);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("active"), "{text}");
}

#[test]
fn sse_streams_epoll_one_core() {
    streams_writes(sse_opts(1, "epoll"));
}

#[test]
fn sse_streams_uring_two_cores() {
    streams_writes(sse_opts(2, "uring"));
}

#[test]
fn sse_streams_epoll_two_cores() {
    streams_writes(sse_opts(2, "epoll"));
}

/// A TRUNCATE invalidates the shape: the open stream ends, and the handle then gets 409.
/// Two cores, streams that outlive the test (60 s SSE timeout), one row in `items`.
fn long_stream_env(cluster: &testkit::Cluster) -> Env<'_> {
    let mut opts = sse_opts(2, "epoll");
    opts.env[0].1 = "60000".to_string();
    Env::start(
        cluster,
        "CREATE TABLE items (id int PRIMARY KEY, v text); INSERT INTO items VALUES (1, 'a');",
        opts,
    )
}

#[test]
fn sse_stream_ends_on_invalidation() {
    let cluster = support::cluster();
    let env = long_stream_env(&cluster);
    let (handle, offset) = synced(&env, "table=items&where=id<10");
    let target = format!(
        "/v1/shape?table=items&where=id<10&live=true&live_sse=true&handle={handle}&offset={offset}"
    );
    let mut s = Stream::open(env.server.port, &target);
    assert!(s.head.starts_with("HTTP/1.1 200"), "{}", s.head);
    env.sql("TRUNCATE items");
    while let Some(block) = s.next_block() {
        assert!(block.starts_with(':'), "no data after a truncate: {block}");
    }
    let r = env.client().get(&format!(
        "/v1/shape?table=items&where=id<10&live=true&handle={handle}&offset={offset}"
    ));
    assert_eq!(r.status, 409, "{}", r.body_str());
}

/// Data already there when the SSE request arrives: still a stream, whose head names the
/// request's offset (the client keeps the head's offset as its position but applies events only
/// at their batch's up-to-date, so a head naming the batch end would skip rows when the stream is
/// cut before that event), the ready batch first, then later writes on the same response.
#[test]
fn sse_with_data_available_streams_it_first() {
    let cluster = support::cluster();
    let env = Env::start(
        &cluster,
        "CREATE TABLE items (id int PRIMARY KEY, v text); INSERT INTO items VALUES (1, 'a');",
        sse_opts(1, "epoll"),
    );
    let (handle, offset) = synced(&env, "table=items");
    env.sql("INSERT INTO items VALUES (2, 'b')");
    // Wait until the change is in the log (a plain live request sees it), then ask with SSE.
    let live = env.client().get(&format!(
        "/v1/shape?table=items&live=true&handle={handle}&offset={offset}"
    ));
    assert_eq!(live.status, 200);
    assert_eq!(live.items().len(), 2, "{}", live.body_str());
    let mut s = Stream::open(
        env.server.port,
        &format!("/v1/shape?table=items&live=true&live_sse=true&handle={handle}&offset={offset}"),
    );
    assert!(s.head.starts_with("HTTP/1.1 200"), "{}", s.head);
    assert_eq!(s.header("transfer-encoding").as_deref(), Some("chunked"));
    assert_eq!(
        s.header("electric-offset").as_deref(),
        Some(offset.as_str())
    );
    let batch = s.next_batch();
    assert_eq!(batch.len(), 2, "{batch:?}");
    assert_eq!(batch[0]["headers"]["operation"], "insert");
    assert_eq!(batch[0]["value"]["id"], "2");

    // The client resumes at `<global_last_seen_lsn>_0`: that must be after the whole batch,
    // so the next response carries only newer changes (no re-sent tail of the transaction).
    let resume = format!(
        "{}_0",
        batch[1]["headers"]["global_last_seen_lsn"]
            .as_str()
            .expect("lsn")
    );
    env.sql("BEGIN; INSERT INTO items VALUES (3, 'c'); INSERT INTO items VALUES (4, 'd'); COMMIT;");
    // The first stream stays open and carries the new transaction too.
    let on_first = s.next_batch();
    let ids: Vec<&Value> = on_first[..on_first.len() - 1]
        .iter()
        .map(|m| &m["value"]["id"])
        .collect();
    assert_eq!(ids, ["3", "4"], "{on_first:?}");
    // A request resuming from the up-to-date gets exactly that transaction.
    let mut resumed = Stream::open(
        env.server.port,
        &format!("/v1/shape?table=items&live=true&live_sse=true&handle={handle}&offset={resume}"),
    );
    assert_eq!(
        resumed.header("electric-offset").as_deref(),
        Some(resume.as_str())
    );
    let batch = resumed.next_batch();
    let ids: Vec<&Value> = batch[..batch.len() - 1]
        .iter()
        .map(|m| &m["value"]["id"])
        .collect();
    assert_eq!(ids, ["3", "4"], "{batch:?}");
    let live = env.client().get(&format!(
        "/v1/shape?table=items&live=true&handle={handle}&offset={resume}"
    ));
    assert_eq!(live.status, 200);
    let items = live.items();
    assert_eq!(items.len(), 3, "{}", live.body_str());
    assert_eq!(items[0]["value"]["id"], "3");
}

/// SIGTERM while an SSE stream and long-polls are held (two cores, so some are answered by a
/// core that does not own the shape): the stream ends with its chunked terminator and every
/// long-poll gets its complete "nothing new" answer before the process exits, instead of a
/// connection cut mid-response.
#[test]
fn shutdown_ends_held_responses_cleanly() {
    let cluster = support::cluster();
    let env = long_stream_env(&cluster);
    let (handle, offset) = synced(&env, "table=items");
    let mut s = Stream::open(
        env.server.port,
        &format!("/v1/shape?table=items&live=true&live_sse=true&handle={handle}&offset={offset}"),
    );
    assert!(s.head.starts_with("HTTP/1.1 200"), "{}", s.head);
    let polls: Vec<_> = (0..6)
        .map(|_| {
            let port = env.server.port;
            let path = format!("/v1/shape?table=items&live=true&handle={handle}&offset={offset}");
            std::thread::spawn(move || {
                let mut sock = TcpStream::connect(("127.0.0.1", port)).expect("connect");
                sock.set_read_timeout(Some(EVENT_WAIT)).expect("timeout");
                write!(sock, "GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").expect("send");
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                // Until the server closes the connection (it exits), or the bound.
                while let Ok(n @ 1..) = sock.read(&mut buf) {
                    got.extend_from_slice(&buf[..n]);
                }
                String::from_utf8_lossy(&got).into_owned()
            })
        })
        .collect();
    // Let the long-polls arrive and be held.
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: signals our own child process.
    unsafe {
        libc::kill(env.server.pid() as i32, libc::SIGTERM);
    }
    while let Some(block) = s.next_block() {
        assert!(block.starts_with(':'), "no data at shutdown: {block}");
    }
    assert!(s.ended, "the stream ended with its terminator");
    for p in polls {
        let text = p.join().expect("long-poll thread");
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        let (head, body) = text.split_once("\r\n\r\n").expect("a complete head");
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .expect("content-length")
            .trim()
            .parse()
            .expect("length");
        assert_eq!(body.len(), len, "the whole body arrived: {text}");
        assert!(body.contains("up-to-date"), "{body}");
    }
}
