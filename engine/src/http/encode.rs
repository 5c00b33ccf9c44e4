//! Response encoding: the head goes into one pooled `Vec<u8>`, and the head plus body parts are
//! handed to the kernel as one iovec list, so bodies are never copied. A file part ends the
//! iovec window: the connection sends it with `sendfile` (`file_at_cursor`), then the window
//! continues after it.

use std::cell::RefCell;
use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use monoio::buf::IoVecBuf;

use super::file_body::{FileRange, Part};
use super::message::{reason_phrase, status_forbids_body, Body, Response};

/// Most iovecs one `writev` accepts on Linux (`IOV_MAX`).
const IOV_MAX: usize = 1024;
/// Pooled head buffers kept per core, and the largest one worth keeping.
const POOL_BUFFERS: usize = 256;
const POOL_BUFFER_BYTES: usize = 16 * 1024;

/// How the connection will behave after this response; it decides the `connection` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Persistence {
    /// HTTP/1.1 default: say nothing.
    KeepAlive,
    /// HTTP/1.0 client that asked for keep-alive: confirm it.
    KeepAliveLegacy,
    Close,
}

/// One response on its way out: the encoded head, the body parts, and the iovec window over
/// whatever has not been written yet.
pub(crate) struct Outgoing {
    head: Vec<u8>,
    parts: Vec<Part>,
    iovecs: Vec<libc::iovec>,
    /// Bytes already written, counted from the start of the head.
    written: usize,
    total: usize,
}

// SAFETY: `iovecs` only points into `head` and `parts`, whose heap storage does not move while
// the runtime owns this value (neither is modified until `advance`, which runs after the write
// completes and rebuilds the window).
unsafe impl IoVecBuf for Outgoing {
    fn read_iovec_ptr(&self) -> *const libc::iovec {
        self.iovecs.as_ptr()
    }

    fn read_iovec_len(&self) -> usize {
        self.iovecs.len()
    }
}

impl Outgoing {
    /// Encodes `response`; for HEAD requests (`send_body == false`) the body is dropped but its
    /// length still announced.
    pub(crate) fn new(response: Response, send_body: bool, persistence: Persistence) -> Self {
        let (mut head, parts, iovecs) = pooled();
        let forbids_body = status_forbids_body(response.status);
        let framing = match response.body.len() {
            _ if forbids_body => Framing::None,
            Some(length) => Framing::Length(length),
            // An HTTP/1.0 client cannot read chunks: its stream ends when the connection closes.
            None if persistence == Persistence::Close => Framing::None,
            None => Framing::Chunked,
        };
        encode_head(&mut head, &response, framing, persistence);
        let mut outgoing = Self {
            head,
            parts,
            iovecs,
            written: 0,
            total: 0,
        };
        if send_body && !forbids_body {
            match response.body {
                Body::Empty => {}
                Body::Full(bytes) => outgoing.parts.push(Part::Mem(bytes)),
                Body::Parts(parts) => outgoing.parts.extend(parts.into_iter().map(Part::Mem)),
                Body::Mixed(parts) => outgoing.parts.extend(parts),
                Body::Shared(parts) => outgoing.parts.extend(parts.iter().cloned()),
                // Streamed by the connection after the head.
                Body::Stream(_) => {}
            }
        }
        outgoing.parts.retain(|part| !part.is_empty());
        outgoing.total = outgoing.head.len()
            + outgoing
                .parts
                .iter()
                .map(|part| part.len() as usize)
                .sum::<usize>();
        outgoing.rebuild_window();
        outgoing
    }

    /// The iovecs of the bytes to write next from memory (up to the next file part).
    pub(crate) fn window(&self) -> &[libc::iovec] {
        &self.iovecs
    }

    pub(crate) fn is_done(&self) -> bool {
        self.written == self.total
    }

    /// Records `count` more bytes written and moves the iovec window past them.
    pub(crate) fn advance(&mut self, count: usize) {
        assert!(
            self.written + count <= self.total,
            "kernel wrote more than was offered"
        );
        self.written += count;
        self.rebuild_window();
    }

    /// Whether the iovec window is followed by a file part: then the window is sent with
    /// `MSG_MORE`, so that it leaves in the same TCP segment as the file's first bytes instead
    /// of as a small segment of its own (each segment costs the loopback or NIC path, and the
    /// client a wake-up).
    pub(crate) fn window_before_file(&self) -> bool {
        if self.iovecs.is_empty() || self.iovecs.len() == IOV_MAX {
            return false;
        }
        // The window holds everything up to the first file part after the cursor.
        let mut skip = self.written.saturating_sub(self.head.len());
        for part in &self.parts {
            let len = part.len() as usize;
            if skip >= len {
                skip -= len;
                continue;
            }
            skip = 0;
            if let Part::File(_) = part {
                return true;
            }
        }
        false
    }

    /// The file part the write position is in, as `(range from the position on)`; `None` when
    /// the next bytes come from memory (the iovec window).
    pub(crate) fn file_at_cursor(&self) -> Option<FileRange> {
        let mut skip = self.written.checked_sub(self.head.len())?;
        for part in &self.parts {
            let len = part.len() as usize;
            if skip >= len {
                skip -= len;
                continue;
            }
            return match part {
                Part::Mem(_) => None,
                Part::File(range) => Some(FileRange {
                    file: range.file.clone(),
                    offset: range.offset + skip as u64,
                    len: range.len - skip as u64,
                }),
            };
        }
        None
    }

    fn rebuild_window(&mut self) {
        self.iovecs.clear();
        let mut skip = self.written;
        let segments =
            std::iter::once(Some(&self.head[..])).chain(self.parts.iter().map(|part| match part {
                Part::Mem(bytes) => Some(&bytes[..]),
                Part::File(_) => None,
            }));
        let lengths = std::iter::once(self.head.len())
            .chain(self.parts.iter().map(|part| part.len() as usize));
        for (segment, len) in segments.zip(lengths) {
            if skip >= len {
                skip -= len;
                continue;
            }
            // A file part: the window ends here (sent with sendfile when the cursor reaches it).
            let Some(segment) = segment else { break };
            let rest = &segment[skip..];
            skip = 0;
            self.iovecs.push(libc::iovec {
                iov_base: rest.as_ptr().cast_mut().cast(),
                iov_len: rest.len(),
            });
            if self.iovecs.len() == IOV_MAX {
                break;
            }
        }
    }

    /// The next chunk of a streamed body: its size line, `parts`, and the chunk's CRLF; with
    /// `chunked == false` (HTTP/1.0, close-delimited) just the parts.
    pub(crate) fn chunk(parts: Vec<Bytes>, chunked: bool) -> Self {
        let (mut head, mut list, iovecs) = pooled();
        let size: usize = parts.iter().map(Bytes::len).sum();
        if chunked {
            let _ = write!(head, "{size:x}\r\n");
        }
        list.extend(
            parts
                .into_iter()
                .filter(|part| !part.is_empty())
                .map(Part::Mem),
        );
        if chunked {
            list.push(Part::Mem(Bytes::from_static(b"\r\n")));
        }
        let mut outgoing = Self {
            total: head.len() + list.iter().map(|part| part.len() as usize).sum::<usize>(),
            head,
            parts: list,
            iovecs,
            written: 0,
        };
        outgoing.rebuild_window();
        outgoing
    }

    /// The last chunk of a streamed body (no trailers).
    pub(crate) fn last_chunk() -> Self {
        let (mut head, parts, iovecs) = pooled();
        head.extend_from_slice(b"0\r\n\r\n");
        let mut outgoing = Self {
            total: head.len(),
            head,
            parts,
            iovecs,
            written: 0,
        };
        outgoing.rebuild_window();
        outgoing
    }

    /// Returns the head buffer and part list to this core's pool for the next response.
    pub(crate) fn recycle(mut self) {
        if self.head.capacity() > POOL_BUFFER_BYTES || self.parts.capacity() > IOV_MAX {
            return;
        }
        self.head.clear();
        self.parts.clear();
        // No pointer into this response's buffers outlives it.
        self.iovecs.clear();
        POOL.with(|pool| {
            let mut pool = pool.borrow_mut();
            if pool.len() < POOL_BUFFERS {
                pool.push((self.head, self.parts, self.iovecs));
            }
        });
    }
}

/// Empty buffers for one response: from this core's pool, or new.
fn pooled() -> Pooled {
    POOL.with(|pool| pool.borrow_mut().pop())
        .unwrap_or_default()
}

/// A response's head buffer, part list and iovec list.
type Pooled = (Vec<u8>, Vec<Part>, Vec<libc::iovec>);

thread_local! {
    /// Head buffers and part lists reused across responses on this core: no lock, no per-request
    /// allocation once warm, and nothing held by idle connections.
    static POOL: RefCell<Vec<Pooled>> = const { RefCell::new(Vec::new()) };
    /// The `date` header value, recomputed at most once per second.
    static DATE: RefCell<(u64, [u8; 29])> = const { RefCell::new((u64::MAX, [0; 29])) };
}

/// How the head announces the body's end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    None,
    Length(u64),
    Chunked,
}

fn encode_head(out: &mut Vec<u8>, response: &Response, framing: Framing, mode: Persistence) {
    out.extend_from_slice(b"HTTP/1.1 ");
    let status = response.status.clamp(100, 999);
    out.extend_from_slice(&[
        b'0' + (status / 100) as u8,
        b'0' + (status / 10 % 10) as u8,
        b'0' + (status % 10) as u8,
        b' ',
    ]);
    out.extend_from_slice(reason_phrase(status).as_bytes());
    out.extend_from_slice(b"\r\ndate: ");
    DATE.with(|date| out.extend_from_slice(&current_date(&mut date.borrow_mut())));
    out.extend_from_slice(b"\r\n");
    if let Some(prelude) = response.prelude {
        out.extend_from_slice(prelude.as_bytes());
    }
    for (name, value) in &response.headers {
        if is_server_owned(name) {
            continue;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        // A handler bug must not let a value inject headers: line breaks become spaces. The
        // search is vectorised (`memchr2`): values are most of a head's bytes, and a check
        // byte by byte cost about as much as the rest of the encoding.
        let start = out.len();
        out.extend_from_slice(value.as_bytes());
        if memchr::memchr2(b'\r', b'\n', value.as_bytes()).is_some() {
            for byte in &mut out[start..] {
                if *byte == b'\r' || *byte == b'\n' {
                    *byte = b' ';
                }
            }
        }
        out.extend_from_slice(b"\r\n");
    }
    if let Some(block) = &response.head_block {
        out.extend_from_slice(block);
    }
    if let Some(id) = response.request_id.map(std::num::NonZeroU64::get) {
        out.extend_from_slice(b"x-request-id: ");
        for shift in (0..16).rev() {
            out.push(b"0123456789abcdef"[(id >> (shift * 4)) as usize & 0xf]);
        }
        out.extend_from_slice(b"\r\n");
    }
    match framing {
        Framing::None => {}
        Framing::Length(length) => {
            out.extend_from_slice(b"content-length: ");
            push_decimal(out, length);
            out.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    match mode {
        Persistence::KeepAlive => {}
        Persistence::KeepAliveLegacy => out.extend_from_slice(b"connection: keep-alive\r\n"),
        Persistence::Close => out.extend_from_slice(b"connection: close\r\n"),
    }
    out.extend_from_slice(b"\r\n");
}

fn is_server_owned(name: &str) -> bool {
    // By length first: most names are compared with nothing (every response runs this per
    // header).
    let owned = match name.len() {
        4 => "date",
        10 => "connection",
        14 => "content-length",
        17 => "transfer-encoding",
        _ => return false,
    };
    name.eq_ignore_ascii_case(owned)
}

/// Appends `n` in decimal (the formatting machinery costs more than the head's other lines).
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

fn current_date(cache: &mut (u64, [u8; 29])) -> [u8; 29] {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    if cache.0 != now {
        *cache = (now, imf_fixdate(now));
    }
    cache.1
}

/// Formats Unix seconds as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110 §5.6.7).
pub(crate) fn imf_fixdate(unix_seconds: u64) -> [u8; 29] {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let days = unix_seconds / 86_400;
    let seconds_of_day = unix_seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    let mut out = [0u8; 29];
    let mut cursor = &mut out[..];
    // 29 bytes exactly for years 1970..=9999; later years are out of scope for this server.
    let _ = write!(
        cursor,
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        std::str::from_utf8(DAYS[(days % 7) as usize]).unwrap_or("Thu"),
        day,
        std::str::from_utf8(MONTHS[(month - 1) as usize]).unwrap_or("Jan"),
        year,
        seconds_of_day / 3600,
        seconds_of_day / 60 % 60,
        seconds_of_day % 60,
    );
    out
}

/// Converts days since 1970-01-01 to a proleptic Gregorian (year, month 1-12, day 1-31), using
/// the era-based method (400-year eras of 146 097 days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let shifted = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = shifted / 146_097;
    let day_of_era = shifted % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // 0 = March
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
#[path = "encode_tests.rs"]
mod tests;
