//! The accept loop: one task per connection, a per-core connection cap, no locks.

use std::cell::Cell;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use monoio::io::AsyncWriteRentExt;
use monoio::net::{TcpListener, TcpStream};
use monoio::time::timeout;

use super::connection::serve_connection;
use super::limits::Limits;
use super::Handler;

/// Connections being refused at once; past it, further ones are closed without a response.
const MAX_REFUSING: usize = 1024;
/// How long a refusal may take to write before the connection is simply dropped.
const REFUSE_TIMEOUT: Duration = Duration::from_secs(1);
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\nretry-after: 1\r\ncontent-length: 32\r\n\
connection: close\r\n\r\n{\"error\":\"Too many connections\"}";

/// Serves HTTP/1.1 on `listener` forever, one task per connection on the current core.
///
/// Past `limits.max_connections_per_core` open connections, a new connection gets a fixed `503`
/// (without its request being read) and is closed. Accept errors such as running out of file
/// descriptors are logged and retried after a short pause.
pub async fn serve(listener: TcpListener, handler: Rc<dyn Handler>, limits: Limits) {
    limits.assert_valid();
    let open = Rc::new(Cell::new(0_usize));
    let refusing = Rc::new(Cell::new(0_usize));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                accept_failed(&error).await;
                continue;
            }
        };
        if open.get() >= limits.max_connections_per_core {
            if refusing.get() < MAX_REFUSING {
                monoio::spawn(refuse(stream, Counted::new(&refusing)));
            }
            continue;
        }
        // Responses go out in one writev; waiting for more data (Nagle) only adds latency.
        let _ = stream.set_nodelay(true);
        let counted = Counted::new(&open);
        let handler = Rc::clone(&handler);
        monoio::spawn(async move {
            let _counted = counted;
            serve_connection(stream, handler, limits).await;
        });
    }
}

async fn accept_failed(error: &io::Error) {
    match error.raw_os_error() {
        // The peer gave up before we accepted: nothing to do.
        Some(libc::ECONNABORTED) | Some(libc::EINTR) => {}
        // Out of descriptors or memory: pause so the loop does not spin while others close.
        _ => {
            tracing::warn!("failed to accept a connection: {error}");
            monoio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn refuse(mut stream: TcpStream, counted: Counted) {
    let _counted = counted;
    let _ = timeout(REFUSE_TIMEOUT, stream.write_all(REFUSAL)).await;
}

/// Counts a live task in a per-core counter for as long as it exists.
struct Counted(Rc<Cell<usize>>);

impl Counted {
    fn new(counter: &Rc<Cell<usize>>) -> Self {
        counter.set(counter.get() + 1);
        Self(Rc::clone(counter))
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let count = self.0.get();
        assert!(count > 0, "connection counter underflow");
        self.0.set(count - 1);
    }
}
