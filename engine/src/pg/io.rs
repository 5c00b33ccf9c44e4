//! Reading whole backend messages from, and writing buffers to, a monoio stream.
//!
//! The stream is plain TCP or TLS (`transport`); monoio's I/O takes buffers by value
//! (completion-based I/O owns the memory while the kernel works on it), so the transport moves
//! the caller's `BytesMut` in and puts it back afterwards.

use bytes::BytesMut;
use pgwire::frame::{split_frame, Frame};

use super::error::PgError;
use super::transport::{ReadBytes, WriteBytes};

/// Reads until one complete message (bounded by `max_len`) can be split off `buf`. With
/// `silence`, every read must bring something within it (a bound on a connection that went
/// quiet, not on a large message that is still arriving).
///
/// Not cancel-safe: if the future is dropped mid-read the buffered bytes are lost, so callers
/// only cancel it when they abandon the connection.
pub(crate) async fn read_frame<R: ReadBytes>(
    io: &mut R,
    buf: &mut BytesMut,
    max_len: usize,
    silence: Option<std::time::Duration>,
) -> Result<Frame, PgError> {
    loop {
        if let Some(frame) = split_frame(buf, max_len)? {
            return Ok(frame);
        }
        let read = match silence {
            None => io.read_bytes(buf).await,
            Some(bound) => match monoio::time::timeout(bound, io.read_bytes(buf)).await {
                Ok(read) => read,
                Err(_) => {
                    return Err(PgError::Timeout(
                        "the replication connection brought nothing (no data, no keepalive) \
                         for its silence bound; it is presumed dead",
                    ))
                }
            },
        };
        match read {
            Ok(0) => return Err(PgError::Closed),
            Ok(_) => {}
            Err(e) => return Err(PgError::Io(e)),
        }
    }
}

/// Writes all of `buf` and leaves it empty (keeping its allocation) for the next message.
pub(crate) async fn write_buf<W: WriteBytes>(
    io: &mut W,
    buf: &mut BytesMut,
) -> Result<(), PgError> {
    io.write_bytes(buf).await.map_err(PgError::Io)
}

/// Lets the executor run every other ready task, and poll for I/O, before continuing.
///
/// A task that wakes itself while it runs is put back at the *front* of monoio's run queue
/// (its scheduler's `yield_now` uses `push_front`), so waking from inside `poll` would run this
/// task again before anything else: a long COPY then held its core until the end, and the
/// requests reading the snapshot as it is written (or a health check) waited for all of it.
/// The wake is therefore left to a task spawned now, which monoio queues at the back: by the
/// time it runs, every task that was ready before it has had its turn.
pub(crate) async fn yield_now() {
    struct YieldNow(bool);
    impl std::future::Future for YieldNow {
        type Output = ();
        fn poll(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<()> {
            if self.0 {
                return std::task::Poll::Ready(());
            }
            self.0 = true;
            let waker = cx.waker().clone();
            drop(monoio::spawn(async move { waker.wake() }));
            std::task::Poll::Pending
        }
    }
    YieldNow(false).await
}

#[cfg(test)]
mod tests {
    use super::yield_now;
    use std::cell::Cell;
    use std::rc::Rc;

    fn run(f: impl std::future::Future<Output = ()>) {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("runtime")
            .block_on(f);
    }

    /// A task that keeps yielding (a long COPY) lets other ready tasks run, and lets the runtime
    /// poll for I/O: here a connection already waiting in the listen queue is accepted while the
    /// busy task is still looping.
    #[test]
    fn a_yielding_task_lets_other_tasks_and_io_run() {
        run(async {
            let listener = monoio::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = listener.local_addr().expect("addr");
            let _client = std::net::TcpStream::connect(addr).expect("connect");
            let ran = Rc::new(Cell::new(false));
            let accepted = Rc::new(Cell::new(false));
            let (r, a) = (ran.clone(), accepted.clone());
            let _other = monoio::spawn(async move { r.set(true) });
            let _acceptor = monoio::spawn(async move {
                listener.accept().await.expect("accept");
                a.set(true);
            });
            let mut yields = 0;
            while !accepted.get() && yields < 100_000 {
                yield_now().await;
                yields += 1;
            }
            assert!(ran.get(), "a ready task ran while the busy task yielded");
            assert!(
                accepted.get(),
                "the pending connection was accepted while the busy task yielded"
            );
        });
    }
}
