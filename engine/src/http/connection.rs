//! One HTTP/1.1 connection: read a head, read its body, call the handler (watching for the
//! client going away while it waits), write the response, repeat while the connection persists.
//!
//! The read buffer starts at `Limits::read_buffer` bytes and grows only while one request needs
//! more; pipelined bytes stay in it and are answered in order, one request at a time.

use std::future::{poll_fn, Future};
use std::io;
use std::os::fd::AsRawFd;
use std::pin::pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use monoio::buf::SliceMut;
use monoio::io::Canceller;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, CancelableAsyncReadRent};
use monoio::net::TcpStream;
use monoio::time::{timeout_at, Instant};

use super::chunked::{ChunkedDecoder, ChunkedError};
use super::encode::{Outgoing, Persistence};
use super::file_body::{self, FileRange, NonBlocking, Sent};
use super::limits::Limits;
use super::message::{Body, Method, Request, Response};
use super::parse::{find_head_end, parse_head, Framing, Head, HeadError};
use super::Handler;

/// Reads issued while a request needs more bytes never offer less space than this.
const MIN_READ_SPARE: usize = 512;
/// Read buffer kept while a handler waits (see `Connection::call`).
const WATCH_BUFFER: usize = 256;
/// After refusing a request, keep draining the client's input this long (and at most this much)
/// so that closing does not reset the connection before the client has read the refusal.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 256 * 1024;

pub(crate) async fn serve_connection(stream: TcpStream, handler: Rc<dyn Handler>, limits: Limits) {
    let buf = BytesMut::with_capacity(limits.read_buffer);
    let mut connection = Connection {
        stream,
        buf,
        handler,
        limits,
        peer_closed: false,
        socket_flags: None,
    };
    if let Err(error) = connection.run().await {
        tracing::debug!("connection ended: {error}");
    }
}

struct Connection {
    stream: TcpStream,
    buf: BytesMut,
    handler: Rc<dyn Handler>,
    limits: Limits,
    /// The client half-closed while its handler ran: answer, then close.
    peer_closed: bool,
    /// The socket's status flags, read at the first file part (`file_body::status_flags`).
    socket_flags: Option<libc::c_int>,
}

enum HeadOutcome {
    Head(Head),
    /// Clean end: EOF or idle timeout between requests, or a client that gave up mid-head.
    Closed,
    Refused(HeadError),
}

enum BodyOutcome {
    Body(Bytes),
    Closed,
    Refused(u16),
}

enum ReadOutcome {
    Data,
    Eof,
    TimedOut,
}

enum Called {
    Response(Response),
    ClientGone,
}

impl Connection {
    async fn run(&mut self) -> io::Result<()> {
        loop {
            let head = match self.read_head().await? {
                HeadOutcome::Head(head) => head,
                HeadOutcome::Closed => return Ok(()),
                // Rare paths are boxed so their state does not enlarge every connection's task.
                HeadOutcome::Refused(error) => return Box::pin(self.refuse(error.status())).await,
            };
            let Head {
                mut request,
                framing,
                keep_alive,
                legacy,
                expect_continue,
            } = head;
            if framing != Framing::Length(0) {
                request.body = match Box::pin(self.read_body(framing, expect_continue)).await? {
                    BodyOutcome::Body(body) => body,
                    BodyOutcome::Closed => return Ok(()),
                    BodyOutcome::Refused(status) => return Box::pin(self.refuse(status)).await,
                };
            }
            let send_body = request.method != Method::Head;
            let (response, keep_alive) = match self.call(request).await {
                Called::Response(response) => (response, keep_alive && !self.peer_closed),
                Called::ClientGone => return Ok(()),
            };
            let stream = match &response.body {
                Body::Stream(rx) if send_body => Some(rx.clone()),
                _ => None,
            };
            // An HTTP/1.0 client reads a stream until the connection closes.
            let keep_alive = keep_alive && !(legacy && stream.is_some());
            let persistence = match (keep_alive, legacy) {
                (false, _) => Persistence::Close,
                (true, false) => Persistence::KeepAlive,
                (true, true) => Persistence::KeepAliveLegacy,
            };
            self.write(Outgoing::new(response, send_body, persistence))
                .await?;
            if let Some(rx) = stream {
                // Boxed: only streaming responses need this state.
                Box::pin(self.stream_body(rx, !legacy)).await?;
            }
            if !keep_alive {
                return Ok(());
            }
            self.shrink_buffer();
        }
    }

    /// Reads until a complete head is buffered, then parses it and consumes it from the buffer.
    async fn read_head(&mut self) -> io::Result<HeadOutcome> {
        let mut scanned = 0;
        let mut header_deadline = None;
        loop {
            if scanned == 0 {
                skip_leading_empty_lines(&mut self.buf);
            }
            if !self.buf.is_empty() {
                header_deadline.get_or_insert_with(|| Instant::now() + self.limits.header_timeout);
                if let Some(end) = find_head_end(&self.buf, scanned) {
                    if end > self.limits.max_head {
                        return Ok(HeadOutcome::Refused(HeadError::TooLarge));
                    }
                    let parsed = parse_head(&self.buf[..end]);
                    self.buf.advance(end);
                    return Ok(parsed.map_or_else(HeadOutcome::Refused, HeadOutcome::Head));
                }
                if self.buf.len() >= self.limits.max_head {
                    return Ok(HeadOutcome::Refused(HeadError::TooLarge));
                }
                scanned = self.buf.len().saturating_sub(2);
            }
            let deadline =
                header_deadline.unwrap_or_else(|| Instant::now() + self.limits.idle_timeout);
            let wanted = self.limits.max_head.saturating_sub(self.buf.len()) + 1;
            match self.read_more(deadline, wanted).await? {
                ReadOutcome::Data => {}
                ReadOutcome::Eof | ReadOutcome::TimedOut => return Ok(HeadOutcome::Closed),
            }
        }
    }

    async fn read_body(&mut self, framing: Framing, expect: bool) -> io::Result<BodyOutcome> {
        let length = match framing {
            Framing::Length(0) => return Ok(BodyOutcome::Body(Bytes::new())),
            Framing::Length(length) => length,
            Framing::Chunked => return self.read_chunked(expect).await,
        };
        let Some(length) = usize::try_from(length)
            .ok()
            .filter(|&n| n <= self.limits.max_body)
        else {
            return Ok(BodyOutcome::Refused(413));
        };
        if expect && self.buf.len() < length {
            self.stream
                .write_all(&b"HTTP/1.1 100 Continue\r\n\r\n"[..])
                .await
                .0?;
        }
        while self.buf.len() < length {
            let deadline = Instant::now() + self.limits.body_timeout;
            match self.read_more(deadline, length - self.buf.len()).await? {
                ReadOutcome::Data => {}
                ReadOutcome::Eof | ReadOutcome::TimedOut => return Ok(BodyOutcome::Closed),
            }
        }
        Ok(BodyOutcome::Body(self.buf.split_to(length).freeze()))
    }

    async fn read_chunked(&mut self, expect: bool) -> io::Result<BodyOutcome> {
        if expect && self.buf.is_empty() {
            self.stream
                .write_all(&b"HTTP/1.1 100 Continue\r\n\r\n"[..])
                .await
                .0?;
        }
        let mut decoder = ChunkedDecoder::new(self.limits.max_body);
        loop {
            match decoder.decode(&mut self.buf) {
                Ok(true) => return Ok(BodyOutcome::Body(decoder.into_body().freeze())),
                Ok(false) => {}
                Err(ChunkedError::TooLarge) => return Ok(BodyOutcome::Refused(413)),
                Err(ChunkedError::Malformed) => return Ok(BodyOutcome::Refused(400)),
            }
            let deadline = Instant::now() + self.limits.body_timeout;
            match self.read_more(deadline, self.limits.read_buffer).await? {
                ReadOutcome::Data => {}
                ReadOutcome::Eof | ReadOutcome::TimedOut => return Ok(BodyOutcome::Closed),
            }
        }
    }

    /// Appends at least one byte to the buffer, or reports why not. `wanted` is how many more
    /// bytes the caller could use; the buffer grows towards it, doubling at most.
    async fn read_more(&mut self, deadline: Instant, wanted: usize) -> io::Result<ReadOutcome> {
        self.reserve_spare(wanted);
        let buf = std::mem::take(&mut self.buf);
        // On timeout the buffer stays with the cancelled read; the connection closes anyway.
        let Ok((result, tail)) = timeout_at(deadline, self.stream.read(spare_tail(buf))).await
        else {
            return Ok(ReadOutcome::TimedOut);
        };
        self.buf = tail.into_inner();
        match result {
            Ok(0) => Ok(ReadOutcome::Eof),
            Ok(_) => Ok(ReadOutcome::Data),
            Err(error) if is_disconnect(&error) => Ok(ReadOutcome::Eof),
            Err(error) => Err(error),
        }
    }

    fn reserve_spare(&mut self, wanted: usize) {
        let spare = self.buf.capacity() - self.buf.len();
        let target = wanted.clamp(1, self.buf.len().max(self.limits.read_buffer));
        if spare < target.min(MIN_READ_SPARE) || spare == 0 {
            self.buf.reserve(target.max(MIN_READ_SPARE));
        }
        assert!(
            self.buf.capacity() > self.buf.len(),
            "a read needs spare capacity"
        );
    }

    /// Runs the handler. While it waits, a read on the socket notices a client that hangs up,
    /// and the handler's future is dropped at once (cancelling a long poll).
    async fn call(&mut self, request: Request) -> Called {
        // A panicking handler is not caught: a panic stops the process (`panic_policy`).
        let response = self.handler.handle(request);
        let mut handler = pin!(async move { Called::Response(response.await) });
        // Most handlers answer from memory on their first poll; skip the watch for them.
        let first = poll_fn(|context| Poll::Ready(handler.as_mut().poll(context))).await;
        if let Poll::Ready(outcome) = first {
            return outcome;
        }
        // Pipelined bytes already buffered: no watch; they wait their turn.
        if !self.buf.is_empty() {
            return handler.await;
        }
        // A long poll holds this connection for seconds: meanwhile a small buffer suffices to
        // notice a hang-up (or the start of a pipelined request), which keeps held connections
        // cheap. The next request head grows it again.
        self.buf = BytesMut::with_capacity(WATCH_BUFFER);
        let canceller = Canceller::new();
        let buf = std::mem::take(&mut self.buf);
        let mut read = pin!(self
            .stream
            .cancelable_read(spare_tail(buf), canceller.handle()));
        let first = poll_fn(|context| {
            if let Poll::Ready(outcome) = handler.as_mut().poll(context) {
                return Poll::Ready(Ok(outcome));
            }
            read.as_mut().poll(context).map(Err)
        })
        .await;
        match first {
            Ok(outcome) => {
                // The read must finish (cancelled, or with data that arrived meanwhile) before
                // the buffer can be used again.
                drop(canceller.cancel());
                let (result, tail) = read.await;
                self.buf = tail.into_inner();
                self.peer_closed = matches!(result, Ok(0));
                outcome
            }
            Err((result, tail)) => {
                self.buf = tail.into_inner();
                match result {
                    Ok(0) | Err(_) => Called::ClientGone,
                    Ok(_) => handler.await,
                }
            }
        }
    }

    async fn write(&mut self, mut outgoing: Outgoing) -> io::Result<()> {
        while !outgoing.is_done() {
            let deadline = Instant::now() + self.limits.write_timeout;
            if let Some(range) = outgoing.file_at_cursor() {
                let sent = self.send_file(&range, deadline).await?;
                outgoing.advance(sent);
                continue;
            }
            if outgoing.window_before_file() {
                let sent = self.send_more(&outgoing, deadline).await?;
                outgoing.advance(sent);
                continue;
            }
            let Ok((result, back)) = timeout_at(deadline, self.stream.writev(outgoing)).await
            else {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "response write stalled",
                ));
            };
            outgoing = back;
            match result? {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                count => outgoing.advance(count),
            }
        }
        outgoing.recycle();
        Ok(())
    }

    /// Sends some of `range` with `sendfile` (see `file_body`): waits for the socket to take
    /// bytes, bounded by `deadline` like any write. Returns how many were sent.
    async fn send_file(&mut self, range: &FileRange, deadline: Instant) -> io::Result<usize> {
        let socket = self.stream.as_raw_fd();
        let flags = match self.socket_flags {
            Some(flags) => flags,
            None => *self.socket_flags.insert(file_body::status_flags(socket)?),
        };
        let _non_blocking = NonBlocking::set(socket, flags)?;
        loop {
            match file_body::send_once(socket, &range.file, range.offset, range.len)? {
                Sent::Bytes(0) => continue,
                Sent::Bytes(n) => return Ok(n),
                Sent::WouldBlock => self.wait_writable(deadline).await?,
            }
        }
    }

    /// Sends some of the memory window that precedes a file part, with `MSG_MORE`
    /// (`file_body::send_more`). Returns how many bytes were sent.
    async fn send_more(&mut self, outgoing: &Outgoing, deadline: Instant) -> io::Result<usize> {
        let socket = self.stream.as_raw_fd();
        loop {
            match file_body::send_more(socket, outgoing.window())? {
                Sent::Bytes(0) => continue,
                Sent::Bytes(n) => return Ok(n),
                Sent::WouldBlock => self.wait_writable(deadline).await?,
            }
        }
    }

    /// Waits until the socket takes bytes again, bounded by `deadline` like any write.
    async fn wait_writable(&self, deadline: Instant) -> io::Result<()> {
        match timeout_at(deadline, self.stream.writable(false)).await {
            Ok(ready) => ready,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "response write stalled",
            )),
        }
    }

    /// Writes a streamed body as it arrives, until its producer finishes. A client that hangs
    /// up is noticed by the next write (producers send something at least every keep-alive
    /// interval), which ends the stream and drops the receiver, stopping the producer.
    async fn stream_body(
        &mut self,
        rx: flume::Receiver<Vec<Bytes>>,
        chunked: bool,
    ) -> io::Result<()> {
        while let Ok(parts) = rx.recv_async().await {
            if parts.iter().all(Bytes::is_empty) {
                // An empty chunk would end a chunked body early.
                continue;
            }
            self.write(Outgoing::chunk(parts, chunked)).await?;
        }
        if chunked {
            self.write(Outgoing::last_chunk()).await?;
        }
        Ok(())
    }

    /// Answers a request the server refuses, then closes without resetting the connection.
    async fn refuse(&mut self, status: u16) -> io::Result<()> {
        self.write(Outgoing::new(
            error_response(status),
            true,
            Persistence::Close,
        ))
        .await?;
        // Half-close first so the client sees the end of the response, then drain what it is
        // still sending: closing with unread input would make the kernel send a reset.
        let _ = self.stream.shutdown().await;
        let deadline = Instant::now() + LINGER;
        let mut drained = 0;
        while drained < LINGER_BYTES {
            self.buf.clear();
            match self.read_more(deadline, self.limits.read_buffer).await? {
                ReadOutcome::Data => drained += self.buf.len(),
                ReadOutcome::Eof | ReadOutcome::TimedOut => break,
            }
        }
        Ok(())
    }

    /// A request that needed a big buffer should not keep it while the connection idles.
    fn shrink_buffer(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > 4 * self.limits.read_buffer {
            self.buf = BytesMut::with_capacity(self.limits.read_buffer);
        }
    }
}

/// The unfilled part of `buf` as a read target. monoio reads into a buffer from its start, so
/// appending after buffered bytes needs this view.
fn spare_tail(buf: BytesMut) -> SliceMut<BytesMut> {
    let (filled, capacity) = (buf.len(), buf.capacity());
    SliceMut::new(buf, filled, capacity)
}

/// RFC 9112 §2.2: a server should ignore empty lines received before a request line.
fn skip_leading_empty_lines(buf: &mut BytesMut) {
    loop {
        match buf.first() {
            Some(b'\n') => buf.advance(1),
            Some(b'\r') if buf.get(1) == Some(&b'\n') => buf.advance(2),
            _ => return,
        }
    }
}

fn is_disconnect(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

/// The JSON error bodies the server itself sends.
pub(crate) fn error_response(status: u16) -> Response {
    let body: &'static [u8] = match status {
        400 => br#"{"error":"Bad request"}"#,
        413 => br#"{"error":"Request body too large"}"#,
        431 => br#"{"error":"Request header fields too large"}"#,
        501 => br#"{"error":"Unsupported transfer encoding"}"#,
        503 => br#"{"error":"Too many connections"}"#,
        _ => br#"{"error":"Internal server error"}"#,
    };
    Response::json(status, Bytes::from_static(body))
}
