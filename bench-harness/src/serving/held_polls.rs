//! Many idle live long-polls from one small client: a single-thread monoio runtime (epoll) with
//! one task per connection, each sending one request and reading one response.
//!
//! Progress is shared through atomics so the measuring thread can watch the server's memory
//! while the connections are held, then trigger the write that completes them all.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

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

/// Starts `count` long-polls for `path` on a client thread; join the handle for its result.
pub fn hold(
    port: u16,
    path: String,
    count: u64,
    timeout: Duration,
) -> (Arc<Progress>, JoinHandle<Result<()>>) {
    let progress = Arc::new(Progress::default());
    let shared = progress.clone();
    let handle = std::thread::spawn(move || -> Result<()> {
        let request_text =
            Arc::new(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").into_bytes());
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        run_per_core(1, IoDriver::Epoll, move |_core| {
            let progress = shared.clone();
            let request: Rc<[u8]> = Rc::from(request_text.as_slice());
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
                    handles.push(monoio::spawn(async move {
                        let outcome =
                            monoio::time::timeout(timeout, one(addr, &request, &progress)).await;
                        match outcome {
                            Ok(Ok(has_row)) => {
                                progress.completed.fetch_add(1, Ordering::AcqRel);
                                if has_row {
                                    progress.with_row.fetch_add(1, Ordering::AcqRel);
                                }
                            }
                            Ok(Err(_)) | Err(_) => {
                                progress.failed.fetch_add(1, Ordering::AcqRel);
                            }
                        }
                    }));
                }
                for handle in handles {
                    handle.await;
                }
            }
        })
        .map_err(|e| anyhow!("client runtime: {e}"))?;
        Ok(())
    });
    (progress, handle)
}

/// One long-poll: connect, send, read one response; whether it was a 200 with a row in it.
async fn one(addr: SocketAddr, request: &[u8], progress: &Progress) -> Result<bool> {
    let mut stream = monoio::net::TcpStream::connect(addr)
        .await
        .context("connect")?;
    let (written, _) = stream.write_all(request.to_vec()).await;
    written.context("write request")?;
    progress.written.fetch_add(1, Ordering::AcqRel);
    let mut received: Vec<u8> = Vec::new();
    let mut buf = Vec::with_capacity(4096);
    let (head_len, status, body_len) = loop {
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
                return read_stream_until_row(&mut stream, buf, received, end).await;
            }
            let length: usize = header("content-length")
                .and_then(|v| v.parse().ok())
                .context("no content-length")?;
            ensure!(length <= MAX_BODY, "body over {MAX_BODY} bytes");
            break (end, status, length);
        }
        ensure!(received.len() <= MAX_HEAD, "head over {MAX_HEAD} bytes");
        buf = read_some(&mut stream, buf, &mut received).await?;
    };
    while received.len() < head_len + body_len {
        buf = read_some(&mut stream, buf, &mut received).await?;
    }
    let body = &received[head_len..head_len + body_len];
    Ok(status == 200 && count_inserts(body) > 0)
}

/// Reads an SSE stream until an insert event and a later up-to-date event have arrived (the
/// chunk framing is left in place: the markers are searched in the raw bytes).
async fn read_stream_until_row(
    stream: &mut monoio::net::TcpStream,
    mut buf: Vec<u8>,
    mut received: Vec<u8>,
    head_len: usize,
) -> Result<bool> {
    const INSERT: &[u8] = br#""operation":"insert""#;
    const UP_TO_DATE: &[u8] = br#""control":"up-to-date""#;
    loop {
        let body = &received[head_len..];
        if let Some(at) = find(body, INSERT) {
            if find(&body[at..], UP_TO_DATE).is_some() {
                return Ok(true);
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
