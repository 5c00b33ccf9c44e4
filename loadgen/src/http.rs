//! A minimal HTTP/1.1 client on `monoio::net::TcpStream`: one keep-alive connection, GET only,
//! content-length, chunked and read-to-close bodies.
//!
//! Every size the server controls (head, chunk-size line, body) is bounded before anything is
//! buffered, so a misbehaving server yields an [`HttpError`], never unbounded memory.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd as _, FromRawFd as _};

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

/// Largest response head (status line + headers) accepted.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most headers accepted in one response.
const MAX_HEADERS: usize = 64;
/// Longest chunk-size line (hex size + extensions) accepted.
const MAX_CHUNK_LINE: usize = 1024;
/// Most trailer lines accepted after a chunked body.
const MAX_TRAILERS: usize = 64;
/// Bytes requested from the socket per read.
const READ_CHUNK: usize = 16 * 1024;

/// What can go wrong talking HTTP.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("I/O: {0}")]
    Io(#[from] io::Error),
    #[error("connection closed by the server")]
    Closed,
    #[error("malformed response head: {0}")]
    Parse(#[from] httparse::Error),
    #[error("response head longer than {MAX_HEAD_BYTES} bytes")]
    HeadTooLarge,
    #[error("response body longer than the {0}-byte limit")]
    BodyTooLarge(usize),
    #[error("invalid content-length")]
    BadContentLength,
    #[error("malformed chunked body")]
    BadChunk,
}

/// One response, fully read.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Header names lower-cased; values lossily decoded (Electric headers are ASCII).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header called `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// A keep-alive HTTP/1.1 connection.
pub struct HttpConn {
    stream: TcpStream,
    host: String,
    /// Bytes read but not consumed yet (a response may arrive in several reads).
    buf: Vec<u8>,
    max_body: usize,
    /// Set when the server said `connection: close` or ended a body by closing.
    closed: bool,
}

impl HttpConn {
    /// Connects, from `source` when given; `host` is sent as the `Host` header.
    pub async fn connect(
        addr: SocketAddr,
        host: &str,
        source: Option<IpAddr>,
        max_body: usize,
    ) -> Result<Self, HttpError> {
        let stream = match source {
            None => TcpStream::connect_addr(addr).await?,
            Some(source) => connect_from(source, addr).await?,
        };
        // Requests are tiny and latency is what we measure: do not let Nagle hold them.
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            host: host.to_owned(),
            buf: Vec::with_capacity(READ_CHUNK),
            max_body,
            closed: false,
        })
    }

    /// False once the server has asked to close the connection; open a new one then.
    pub fn is_reusable(&self) -> bool {
        !self.closed
    }

    /// Sends `GET path_and_query` and reads the whole response.
    pub async fn get(&mut self, path_and_query: &str) -> Result<Response, HttpError> {
        let request = format!(
            "GET {path_and_query} HTTP/1.1\r\nhost: {}\r\naccept: application/json\r\n\
             connection: keep-alive\r\n\r\n",
            self.host
        );
        let (result, _) = self.stream.write_all(request.into_bytes()).await;
        result?;
        let (status, headers) = self.read_head().await?;
        let connection_close = header_is(&headers, "connection", "close");
        let body = if status < 200 || status == 204 || status == 304 {
            Vec::new()
        } else if header_is(&headers, "transfer-encoding", "chunked") {
            self.read_chunked().await?
        } else if let Some(length) = header_value(&headers, "content-length") {
            let length: usize = length
                .trim()
                .parse()
                .map_err(|_| HttpError::BadContentLength)?;
            if length > self.max_body {
                return Err(HttpError::BodyTooLarge(self.max_body));
            }
            self.read_exact(length).await?
        } else {
            self.closed = true;
            self.read_to_close().await?
        };
        if connection_close {
            self.closed = true;
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    async fn read_head(&mut self) -> Result<(u16, Vec<(String, String)>), HttpError> {
        loop {
            let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut response = httparse::Response::new(&mut slots);
            if let httparse::Status::Complete(used) = response.parse(&self.buf)? {
                let status = response.code.ok_or(httparse::Error::Status)?;
                let headers = response
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_ascii_lowercase(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect();
                self.buf.drain(..used);
                return Ok((status, headers));
            }
            if self.buf.len() >= MAX_HEAD_BYTES {
                return Err(HttpError::HeadTooLarge);
            }
            self.fill().await?;
        }
    }

    async fn read_exact(&mut self, length: usize) -> Result<Vec<u8>, HttpError> {
        while self.buf.len() < length {
            self.fill().await?;
        }
        Ok(self.buf.drain(..length).collect())
    }

    async fn read_to_close(&mut self) -> Result<Vec<u8>, HttpError> {
        loop {
            if self.buf.len() > self.max_body {
                return Err(HttpError::BodyTooLarge(self.max_body));
            }
            match self.fill().await {
                Ok(()) => {}
                Err(HttpError::Closed) => return Ok(std::mem::take(&mut self.buf)),
                Err(other) => return Err(other),
            }
        }
    }

    async fn read_chunked(&mut self) -> Result<Vec<u8>, HttpError> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line().await?;
            let size_text = line.split(|&b| b == b';').next().unwrap_or_default();
            let size_text = std::str::from_utf8(size_text).map_err(|_| HttpError::BadChunk)?;
            let size =
                usize::from_str_radix(size_text.trim(), 16).map_err(|_| HttpError::BadChunk)?;
            if size == 0 {
                // Trailer section: header lines up to an empty line.
                for _ in 0..=MAX_TRAILERS {
                    if self.read_line().await?.is_empty() {
                        return Ok(body);
                    }
                }
                return Err(HttpError::BadChunk);
            }
            if size > self.max_body.saturating_sub(body.len()) {
                return Err(HttpError::BodyTooLarge(self.max_body));
            }
            while self.buf.len() < size + 2 {
                self.fill().await?;
            }
            if &self.buf[size..size + 2] != b"\r\n" {
                return Err(HttpError::BadChunk);
            }
            body.extend_from_slice(&self.buf[..size]);
            self.buf.drain(..size + 2);
        }
    }

    /// One CRLF-terminated line, without the CRLF.
    async fn read_line(&mut self) -> Result<Vec<u8>, HttpError> {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.buf[..end].to_vec();
                self.buf.drain(..end + 2);
                return Ok(line);
            }
            if self.buf.len() > MAX_CHUNK_LINE {
                return Err(HttpError::BadChunk);
            }
            self.fill().await?;
        }
    }

    /// Appends one read's worth of bytes to `buf`.
    async fn fill(&mut self) -> Result<(), HttpError> {
        if self.buf.capacity() - self.buf.len() < READ_CHUNK / 2 {
            self.buf.reserve(READ_CHUNK);
        }
        let filled = self.buf.len();
        // monoio reads into the buffer from its start; slicing past `filled` appends instead.
        let spare = std::mem::take(&mut self.buf).slice_mut(filled..);
        let (result, spare) = self.stream.read(spare).await;
        self.buf = spare.into_inner();
        match result? {
            0 => {
                self.closed = true;
                Err(HttpError::Closed)
            }
            _ => Ok(()),
        }
    }
}

/// Connects to `addr` from the local address `source` (port chosen by the kernel).
///
/// `IP_BIND_ADDRESS_NO_PORT` defers the choice of the local port to `connect`, where the kernel
/// only needs the whole (source, destination) 4-tuple to be unique: without it `bind` would
/// reserve a port per source address across all destinations, and one source address could
/// not hold more connections than its port range in total.
async fn connect_from(source: IpAddr, addr: SocketAddr) -> io::Result<TcpStream> {
    let domain = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain socket(2); the result is checked before use.
    let fd = unsafe {
        libc::socket(
            domain,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh socket nothing else owns; the std stream closes it on drop.
    let socket = unsafe { std::net::TcpStream::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    // SAFETY: `one` outlives the call and its size is passed. A failure (an old kernel) only
    // costs port range, so it is ignored.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    let (local, local_len) = sockaddr(SocketAddr::new(source, 0));
    // SAFETY: `local` is a valid sockaddr of `local_len` bytes.
    if unsafe {
        libc::bind(
            fd,
            (&local as *const libc::sockaddr_storage).cast(),
            local_len,
        )
    } != 0
    {
        let error = io::Error::last_os_error();
        return Err(io::Error::new(
            error.kind(),
            format!("bind to source address {source}: {error}"),
        ));
    }
    let (remote, remote_len) = sockaddr(addr);
    // SAFETY: `remote` is a valid sockaddr of `remote_len` bytes.
    let rc = unsafe {
        libc::connect(
            fd,
            (&remote as *const libc::sockaddr_storage).cast(),
            remote_len,
        )
    };
    let in_progress = if rc == 0 {
        false
    } else {
        let error = io::Error::last_os_error();
        if error.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(error);
        }
        true
    };
    let stream = TcpStream::from_std(socket)?;
    if in_progress {
        stream.writable(false).await?;
        let mut error: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `error` and `len` are valid for writes of the sizes given.
        let rc = unsafe {
            libc::getsockopt(
                stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ERROR,
                (&mut error as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        if error != 0 {
            return Err(io::Error::from_raw_os_error(error));
        }
    }
    Ok(stream)
}

/// A socket address as the C structure `bind` and `connect` take.
fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: v6.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: v6.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

fn header_value<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

fn header_is(headers: &[(String, String)], name: &str, token: &str) -> bool {
    header_value(headers, name).is_some_and(|value| {
        value
            .split(',')
            .any(|part| part.trim().eq_ignore_ascii_case(token))
    })
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};
    use std::net::TcpListener;

    use super::*;

    /// Serves each canned response (in order, on one connection) after reading a request head.
    fn serve(responses: Vec<&'static [u8]>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            for response in responses {
                let mut seen = Vec::new();
                let mut byte = [0u8; 1];
                while !seen.ends_with(b"\r\n\r\n") && socket.read(&mut byte).unwrap() == 1 {
                    seen.push(byte[0]);
                }
                // Dribble the response so the client must reassemble it across reads.
                for piece in response.chunks(7) {
                    socket.write_all(piece).unwrap();
                    socket.flush().unwrap();
                }
            }
        });
        addr
    }

    fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn reads_length_and_chunked_bodies_on_one_connection() {
        let addr = serve(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nElectric-Offset: 0_0\r\n\r\nhello",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\nA\r\n0123456789\r\n0\r\nT: v\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n",
        ]);
        block_on(async move {
            let mut conn = HttpConn::connect(addr, "h", None, 1024).await.unwrap();
            let first = conn.get("/a").await.unwrap();
            assert_eq!(first.status, 200);
            assert_eq!(first.body, b"hello");
            assert_eq!(first.header("electric-offset"), Some("0_0"));
            let second = conn.get("/b").await.unwrap();
            assert_eq!(second.body, b"abc0123456789");
            let third = conn.get("/c").await.unwrap();
            assert_eq!(third.status, 204);
            assert!(!conn.is_reusable());
        });
    }

    #[test]
    fn connects_from_a_given_source_address() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = std::thread::spawn(move || {
            let (mut socket, peer) = listener.accept().unwrap();
            let mut seen = Vec::new();
            let mut byte = [0u8; 1];
            while !seen.ends_with(b"\r\n\r\n") && socket.read(&mut byte).unwrap() == 1 {
                seen.push(byte[0]);
            }
            socket
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .unwrap();
            peer
        });
        let source: IpAddr = "127.0.0.3".parse().unwrap();
        block_on(async move {
            let mut conn = HttpConn::connect(addr, "h", Some(source), 1024)
                .await
                .unwrap();
            assert_eq!(conn.get("/").await.unwrap().body, b"ok");
        });
        assert_eq!(peer.join().unwrap().ip(), source);
        // Nothing listens on port 1: the refusal comes back as an error, not a hang.
        let closed = SocketAddr::from(([127, 0, 0, 1], 1));
        block_on(async move {
            assert!(HttpConn::connect(closed, "h", Some(source), 1024)
                .await
                .is_err());
        });
    }

    #[test]
    fn refuses_oversized_and_malformed_bodies() {
        let addr = serve(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 4096\r\n\r\n"]);
        block_on(async move {
            let mut conn = HttpConn::connect(addr, "h", None, 1024).await.unwrap();
            assert!(matches!(
                conn.get("/").await,
                Err(HttpError::BodyTooLarge(1024))
            ));
        });
        let addr = serve(vec![
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ]);
        block_on(async move {
            let mut conn = HttpConn::connect(addr, "h", None, 1024).await.unwrap();
            assert!(matches!(conn.get("/").await, Err(HttpError::BadChunk)));
        });
        let addr = serve(vec![
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFF\r\n",
        ]);
        block_on(async move {
            let mut conn = HttpConn::connect(addr, "h", None, 1024).await.unwrap();
            assert!(matches!(
                conn.get("/").await,
                Err(HttpError::BodyTooLarge(1024))
            ));
        });
        let addr = serve(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"]);
        block_on(async move {
            let mut conn = HttpConn::connect(addr, "h", None, 1024).await.unwrap();
            assert!(matches!(conn.get("/").await, Err(HttpError::Closed)));
        });
    }
}
