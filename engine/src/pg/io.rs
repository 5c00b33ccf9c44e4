//! Reading whole backend messages from, and writing buffers to, a monoio stream.
//!
//! monoio's I/O takes buffers by value (completion-based I/O owns the memory while the kernel
//! works on it), so these helpers move the caller's `BytesMut` in and put it back afterwards.

use bytes::BytesMut;
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use pgwire::frame::{split_frame, Frame};

use super::error::PgError;

/// Bytes requested from the kernel per read when the buffer has little room left.
const READ_CHUNK: usize = 64 * 1024;
/// Below this much spare capacity a read is not worth a syscall; grow first.
const MIN_READ_SPACE: usize = 4 * 1024;

/// Reads until one complete message (bounded by `max_len`) can be split off `buf`.
///
/// Not cancel-safe: if the future is dropped mid-read the buffered bytes are lost, so callers
/// only cancel it when they abandon the connection.
pub(crate) async fn read_frame<R: AsyncReadRent>(
    io: &mut R,
    buf: &mut BytesMut,
    max_len: usize,
) -> Result<Frame, PgError> {
    loop {
        if let Some(frame) = split_frame(buf, max_len)? {
            return Ok(frame);
        }
        if buf.capacity() - buf.len() < MIN_READ_SPACE {
            buf.reserve(READ_CHUNK);
        }
        // monoio reads into the start of a buffer; a slice starting at `len` makes it append.
        let filled = buf.len();
        let spare = std::mem::take(buf).slice_mut(filled..);
        let (result, spare) = io.read(spare).await;
        *buf = spare.into_inner();
        match result {
            Ok(0) => return Err(PgError::Closed),
            Ok(_) => {}
            Err(e) => return Err(PgError::Io(e)),
        }
    }
}

/// Writes all of `buf` and leaves it empty (keeping its allocation) for the next message.
pub(crate) async fn write_buf<W: AsyncWriteRent>(
    io: &mut W,
    buf: &mut BytesMut,
) -> Result<(), PgError> {
    let (result, mut owned) = io.write_all(std::mem::take(buf)).await;
    owned.clear();
    *buf = owned;
    result.map(|_| ()).map_err(PgError::Io)
}

/// Lets the executor run other ready tasks once before continuing.
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
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    }
    YieldNow(false).await
}
