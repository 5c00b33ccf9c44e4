//! Many idle live long-polls from one small client: a single-thread monoio runtime (epoll) with
//! one task per connection, each sending one request and reading one response. As the official
//! client does, a long-poll answered with the row sends its next long-poll (from the response's
//! `electric-offset`, with its `electric-cursor`) on the same connection at once; connections
//! (SSE streams too) stay open until every client has been answered, so the server's fan-out
//! is measured with the re-polls it causes and without connection teardown.
//!
//! Progress is shared through atomics so the measuring thread can watch the server's memory
//! while the connections are held, then trigger the write that completes them all. Each
//! connection that receives the row notes the [`Instant`] it did (a long-poll: its whole
//! response read; SSE: the whole insert event read); the thread returns those instants.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context as _, Result};
use engine::runtime::{run_per_core, IoDriver};
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};

use super::http::{find_head_end, parse_head};
use super::shape_fetch::count_inserts;

/// Connections allowed to be between `connect` and "request written" at once, so the
/// server's accept backlog never overflows (an overflow costs a 1 s SYN retry).
const CONNECT_WINDOW: u64 = 256;
/// Longest response head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// Largest body accepted (one small transaction's change plus the up-to-date).
const MAX_BODY: usize = 1 << 20;

/// Counters updated by the client runtime.
#[derive(Debug, Default)]
pub struct Progress {
    /// Requests fully written (the connection is then held by the server).
    pub written: AtomicU64,
    /// Responses fully read.
    pub completed: AtomicU64,
    /// Completed responses with status 200 that carried at least one row.
    pub with_row: AtomicU64,
    /// Connections that failed (connect, I/O, bad response, timeout).
    pub failed: AtomicU64,
}

impl Progress {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Acquire)
    }
}

/// Starts `count` long-polls for `path` on a client thread; join the handle for its result:
/// the instant each connection that got a 200 with the row received it (one per such
/// connection, in no particular order).
pub fn hold(
    port: u16,
    path: String,
    count: u64,
    timeout: Duration,
) -> (Arc<Progress>, JoinHandle<Result<Vec<Instant>>>) {
    let progress = Arc::new(Progress::default());
    let shared = progress.clone();
    let handle = std::thread::spawn(move || -> Result<Vec<Instant>> {
        let request_text =
            Arc::new(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").into_bytes());
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let (answers_tx, answers_rx) = mpsc::channel::<Vec<Instant>>();
        run_per_core(1, IoDriver::Epoll, move |_core| {
            let progress = shared.clone();
            let request: Rc<[u8]> = Rc::from(request_text.as_slice());
            let path: Rc<str> = Rc::from(path.as_str());
            let answers_tx = answers_tx.clone();
            async move {
                let mut handles = Vec::with_capacity(count as usize);
                for started in 0..count {
                    // Keep the number of half-open connections bounded.
                    while started
                        - Progress::get(&progress.written)
                        - Progress::get(&progress.failed)
                        >= CONNECT_WINDOW
                    {
                        monoio::time::sleep(Duration::from_millis(1)).await;
                    }
                    let progress = progress.clone();
                    let request = request.clone();
                    let path = path.clone();
                    handles.push(monoio::spawn(async move {
                        let outcome =
                            monoio::time::timeout(timeout, one(addr, &request, &path, &progress))
                                .await;
                        match outcome {
                            Ok(Ok((answered, stream))) => {
                                progress.completed.fetch_add(1, Ordering::AcqRel);
                                if answered.is_some() {
                                    progress.with_row.fetch_add(1, Ordering::AcqRel);
                                }
                                (answered, Some(stream))
                            }
                            Ok(Err(_)) | Err(_) => {
                                progress.failed.fetch_add(1, Ordering::AcqRel);
                                (None, None)
                            }
                        }
                    }));
                }
                let mut answers = Vec::with_capacity(handles.len());
                // Closed only once every client is answered.
                let mut open = Vec::with_capacity(handles.len());
                for handle in handles {
                    let (answered, stream) = handle.await;
                    answers.extend(answered);
                    open.extend(stream);
                }
                drop(open);
                // The receiver outlives the runtime, so the send cannot fail.
                let _ = answers_tx.send(answers);
            }
        })
        .map_err(|e| anyhow!("client runtime: {e}"))?;
        answers_rx
            .recv()
            .map_err(|_| anyhow!("the client runtime exited without its answers"))
    });
    (progress, handle)
}

/// One long-poll: connect, send, read one response. When it was a 200 with a row in it, the
/// instant the response (SSE: the insert event) had been read in full; then (long-poll) the
/// next long-poll is sent on the connection, which is returned open.
async fn one(
    addr: SocketAddr,
    request: &[u8],
    path: &str,
    progress: &Progress,
) -> Result<(Option<Instant>, monoio::net::TcpStream)> {
    let mut stream = monoio::net::TcpStream::connect(addr)
        .await
        .context("connect")?;
    let (written, _) = stream.write_all(request.to_vec()).await;
    written.context("write request")?;
    progress.written.fetch_add(1, Ordering::AcqRel);
    let mut received: Vec<u8> = Vec::new();
    let mut buf = Vec::with_capacity(4096);
    let (head_len, status, body_len, next) = loop {
        if let Some(end) = find_head_end(&received) {
            let head = std::str::from_utf8(&received[..end]).context("head is UTF-8")?;
            let (status, headers) = parse_head(head)?;
            let header = |name: &str| {
                headers
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.as_str())
            };
            if header("transfer-encoding") == Some("chunked") {
                // An SSE stream: read until the write's events and their up-to-date arrived.
                ensure!(status == 200, "stream with status {status}");
                let answered = read_stream_until_row(&mut stream, buf, received, end).await?;
                return Ok((answered, stream));
            }
            let length: usize = header("content-length")
                .and_then(|v| v.parse().ok())
                .context("no content-length")?;
            ensure!(length <= MAX_BODY, "body over {MAX_BODY} bytes");
            let next = match (header("electric-offset"), header("electric-cursor")) {
                (Some(offset), Some(cursor)) => Some(next_poll(path, offset, cursor)),
                _ => None,
            };
            break (end, status, length, next);
        }
        ensure!(received.len() <= MAX_HEAD, "head over {MAX_HEAD} bytes");
        buf = read_some(&mut stream, buf, &mut received).await?;
    };
    while received.len() < head_len + body_len {
        buf = read_some(&mut stream, buf, &mut received).await?;
    }
    let answered = Instant::now();
    let body = &received[head_len..head_len + body_len];
    let with_row = status == 200 && count_inserts(body) > 0;
    if let (true, Some(next)) = (with_row, next) {
        let (written, _) = stream.write_all(next.into_bytes()).await;
        written.context("write the next long-poll")?;
    }
    Ok((with_row.then_some(answered), stream))
}

/// The request following a long-poll answered at `offset`: the same query with that offset
/// and the response's cursor.
fn next_poll(path: &str, offset: &str, cursor: &str) -> String {
    let (route, query) = path.split_once('?').unwrap_or((path, ""));
    let mut pairs: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("offset=") && !p.starts_with("cursor="))
        .map(str::to_string)
        .collect();
    pairs.push(format!("offset={offset}"));
    pairs.push(format!("cursor={cursor}"));
    format!(
        "GET {route}?{} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        pairs.join("&")
    )
}

/// Reads an SSE stream until an insert event and a later up-to-date event have arrived (the
/// chunk framing is left in place: the markers are searched in the raw bytes); returns the
/// instant the insert event had been read up to its terminating blank line.
async fn read_stream_until_row(
    stream: &mut monoio::net::TcpStream,
    mut buf: Vec<u8>,
    mut received: Vec<u8>,
    head_len: usize,
) -> Result<Option<Instant>> {
    const INSERT: &[u8] = br#""operation":"insert""#;
    const EVENT_END: &[u8] = b"\n\n";
    const UP_TO_DATE: &[u8] = br#""control":"up-to-date""#;
    let mut answered = None;
    loop {
        let body = &received[head_len..];
        if let Some(at) = find(body, INSERT) {
            if let Some(end) = find(&body[at..], EVENT_END) {
                // Set by the first read that completed the event (this one or an earlier one).
                let event_read = *answered.get_or_insert_with(Instant::now);
                if find(&body[at + end..], UP_TO_DATE).is_some() {
                    return Ok(Some(event_read));
                }
            }
        }
        ensure!(
            body.len() <= MAX_BODY,
            "stream over {MAX_BODY} bytes without the row"
        );
        buf = read_some(stream, buf, &mut received).await?;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Reads once into `buf` (monoio fills from the start) and appends what came to `received`.
async fn read_some(
    stream: &mut monoio::net::TcpStream,
    mut buf: Vec<u8>,
    received: &mut Vec<u8>,
) -> Result<Vec<u8>> {
    buf.clear();
    let (n, buf) = stream.read(buf).await;
    let n = n.context("read")?;
    if n == 0 {
        bail!("connection closed mid-response");
    }
    received.extend_from_slice(&buf[..n]);
    Ok(buf)
}
