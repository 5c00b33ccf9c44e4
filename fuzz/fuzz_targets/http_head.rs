//! Reads arbitrary bytes as the HTTP server reads a connection (`engine::http`): leading empty
//! lines skipped, the head end searched incrementally as bytes arrive (`find_head_end`), the
//! head parsed (`parse_head`), the body read by `content-length` or decoded as chunked, and
//! pipelined requests after it, until the connection would close.
//!
//! Input layout: byte 0 is the size of each read (0: everything in one read); the rest is
//! what the client sends.
//! Oracle: no panic; the same requests, bodies and refusals whatever the read size (compared
//! with one read of everything); a head end is the first empty line; an accepted head keeps
//! its path, query, header names and values as substrings of the head, at most `MAX_HEADERS`
//! headers with lower-case names, and framing and persistence that its headers justify;
//! refusals are 400, 431, 501 (head) or 400, 413 (body); bodies stay within the limit.

#![no_main]

use bytes::BytesMut;
use engine::http::fuzzing::{find_head_end, parse_head, ChunkedBody, ParsedHead};
use engine::http::MAX_HEADERS;
use libfuzzer_sys::fuzz_target;

/// Small limits, so that inputs of a few KiB reach them.
const MAX_HEAD: usize = 2048;
const MAX_BODY: usize = 512;
/// Pipelined requests read from one input at most.
const MAX_REQUESTS: usize = 16;

fuzz_target!(|data: &[u8]| {
    let Some((&step, wire)) = data.split_first() else {
        return;
    };
    let step = if step == 0 {
        wire.len()
    } else {
        usize::from(step)
    };
    let in_pieces = read_connection(wire, step);
    let at_once = read_connection(wire, wire.len());
    assert_eq!(
        in_pieces, at_once,
        "reading depends on how the bytes arrive"
    );
});

/// What the server makes of the stream, in order.
#[derive(Debug, PartialEq, Eq)]
enum Event {
    /// Where the head ended in the stream, and what was parsed.
    Head(usize, Summary),
    /// The head was refused with this status; the connection closes.
    HeadRefused(u16),
    Body(Vec<u8>),
    /// The body was refused with this status; the connection closes.
    BodyRefused(u16),
    /// The stream ended before the next complete head or body.
    Closed,
}

/// A parsed head as comparable values.
#[derive(Debug, PartialEq, Eq)]
struct Summary {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    content_length: Option<u64>,
    keep_alive: bool,
    legacy: bool,
    expect_continue: bool,
}

/// A connection's read buffer, filled `step` bytes at a time from `wire`.
struct Connection<'a> {
    wire: &'a [u8],
    arrived: usize,
    step: usize,
    buf: BytesMut,
    /// Bytes taken off the front of the buffer so far (stream position of `buf[0]`).
    consumed: usize,
}

impl Connection<'_> {
    fn read_more(&mut self) -> bool {
        if self.arrived == self.wire.len() {
            return false;
        }
        let take = self.step.max(1).min(self.wire.len() - self.arrived);
        self.buf
            .extend_from_slice(&self.wire[self.arrived..self.arrived + take]);
        self.arrived += take;
        true
    }

    fn take(&mut self, len: usize) -> BytesMut {
        self.consumed += len;
        self.buf.split_to(len)
    }
}

fn read_connection(wire: &[u8], step: usize) -> Vec<Event> {
    let mut conn = Connection {
        wire,
        arrived: 0,
        step,
        buf: BytesMut::new(),
        consumed: 0,
    };
    let mut events = Vec::new();
    for _ in 0..MAX_REQUESTS {
        let Some(end) = read_head(&mut conn) else {
            events.push(Event::Closed);
            break;
        };
        if end > MAX_HEAD {
            events.push(Event::HeadRefused(431));
            break;
        }
        let at = conn.consumed + end;
        let head = conn.take(end);
        check_head_end(&head);
        let parsed = match parse_head(&head) {
            Ok(parsed) => parsed,
            Err((status, _)) => {
                assert!(
                    matches!(status, 400 | 431 | 501),
                    "head refused with {status}"
                );
                events.push(Event::HeadRefused(status));
                break;
            }
        };
        check_parsed(&head, &parsed);
        let keep_alive = parsed.keep_alive;
        let body = match parsed.content_length {
            None => read_chunked(&mut conn),
            Some(length) => read_length(&mut conn, length),
        };
        events.push(Event::Head(at, summary(parsed)));
        let done = !matches!(body, Event::Body(_)) || !keep_alive;
        events.push(body);
        if done {
            break;
        }
    }
    events
}

/// The connection's head loop (`Connection::read_head`) without its size limit, which the
/// caller applies to the result.
fn read_head(conn: &mut Connection<'_>) -> Option<usize> {
    let mut scanned = 0;
    loop {
        if scanned == 0 {
            skip_leading_empty_lines(conn);
        }
        if !conn.buf.is_empty() {
            if let Some(end) = find_head_end(&conn.buf, scanned) {
                return Some(end);
            }
            if conn.buf.len() >= MAX_HEAD {
                return Some(conn.buf.len() + 1);
            }
            scanned = conn.buf.len().saturating_sub(2);
        }
        if !conn.read_more() {
            return None;
        }
    }
}

fn skip_leading_empty_lines(conn: &mut Connection<'_>) {
    loop {
        match conn.buf.first() {
            Some(b'\n') => drop(conn.take(1)),
            Some(b'\r') if conn.buf.get(1) == Some(&b'\n') => drop(conn.take(2)),
            _ => return,
        }
    }
}

fn read_chunked(conn: &mut Connection<'_>) -> Event {
    let mut decoder = ChunkedBody::new(MAX_BODY);
    loop {
        let before = conn.buf.len();
        match decoder.decode(&mut conn.buf) {
            Ok(true) => {
                conn.consumed += before - conn.buf.len();
                let body = decoder.into_body();
                assert!(body.len() <= MAX_BODY, "chunked body over the limit");
                return Event::Body(body.to_vec());
            }
            Ok(false) => conn.consumed += before - conn.buf.len(),
            Err(status) => {
                assert!(
                    matches!(status, 400 | 413),
                    "chunked body refused with {status}"
                );
                return Event::BodyRefused(status);
            }
        }
        if !conn.read_more() {
            return Event::Closed;
        }
    }
}

fn read_length(conn: &mut Connection<'_>, length: u64) -> Event {
    let Some(length) = usize::try_from(length).ok().filter(|&n| n <= MAX_BODY) else {
        return Event::BodyRefused(413);
    };
    while conn.buf.len() < length {
        if !conn.read_more() {
            return Event::Closed;
        }
    }
    Event::Body(conn.take(length).to_vec())
}

/// A head ends at its first empty line (`\n\n` or `\n\r\n`), and nowhere earlier.
fn check_head_end(head: &[u8]) {
    assert!(
        head.ends_with(b"\n\n") || head.ends_with(b"\n\r\n"),
        "head does not end with an empty line"
    );
    assert_eq!(
        find_head_end(&head[..head.len() - 1], 0),
        None,
        "an earlier head end was skipped"
    );
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty()
        || haystack
            .windows(needle.len())
            .any(|window| window == needle)
}

fn has_token(parsed: &ParsedHead, name: &str, token: &str) -> bool {
    parsed
        .request
        .headers_all(name)
        .flat_map(|value| value.split(','))
        .any(|member| member.trim().eq_ignore_ascii_case(token))
}

fn check_parsed(head: &[u8], parsed: &ParsedHead) {
    let request = &parsed.request;
    let line_end = head
        .iter()
        .position(|&b| b == b'\n')
        .expect("a head has lines");
    let line = &head[..line_end];
    assert!(line.starts_with(request.method.as_str().as_bytes()));
    let path = request.path();
    let query = request.query();
    assert!(path.starts_with('/') || path == "*", "{request:?}");
    assert!(!path.contains('?'), "query left in the path");
    // The request keeps the head as text, invalid UTF-8 replaced: compare with the line as
    // that text.
    let text = String::from_utf8_lossy(line);
    // An absolute-form target without a path gets "/".
    assert!(path == "/" || text.contains(path), "path not from the target");
    assert!(text.contains(query), "query not from the target");
    assert!(request.headers().count() <= MAX_HEADERS);
    for (name, value) in request.headers() {
        // Names as sent (compared without regard to case by the server).
        assert!(!name.is_empty());
        assert!(
            contains(head, name.as_bytes()),
            "header name not from the head"
        );
        assert_eq!(
            request.headers_all(&name.to_ascii_uppercase()).count(),
            request.headers_all(name).count()
        );
        if !value.contains(char::REPLACEMENT_CHARACTER) {
            assert!(
                contains(head, value.as_bytes()),
                "header value not from the head"
            );
        }
    }
    assert_eq!(
        parsed.legacy,
        line.ends_with(b"HTTP/1.0") || line.ends_with(b"HTTP/1.0\r")
    );
    match parsed.content_length {
        None => {
            assert!(!parsed.legacy, "chunked HTTP/1.0 request");
            assert!(request.header("content-length").is_none());
            assert!(has_token(parsed, "transfer-encoding", "chunked"));
        }
        Some(0) => {}
        Some(_) => assert!(request.header("content-length").is_some()),
    }
    if parsed.legacy && parsed.keep_alive {
        assert!(has_token(parsed, "connection", "keep-alive"));
    }
    if !parsed.legacy && !parsed.keep_alive {
        assert!(has_token(parsed, "connection", "close"));
    }
    if parsed.expect_continue {
        let expect = request.header("expect").expect("expect header");
        assert!(expect.eq_ignore_ascii_case("100-continue"));
    }
}

fn summary(parsed: ParsedHead) -> Summary {
    Summary {
        method: parsed.request.method.as_str().to_owned(),
        path: parsed.request.path().to_owned(),
        query: parsed.request.query().to_owned(),
        headers: parsed
            .request
            .headers()
            .map(|(name, value)| (name.to_ascii_lowercase(), value.to_owned()))
            .collect(),
        content_length: parsed.content_length,
        keep_alive: parsed.keep_alive,
        legacy: parsed.legacy,
        expect_continue: parsed.expect_continue,
    }
}
