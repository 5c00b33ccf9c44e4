//! Response body parts that live in files: closed log chunks leave from the page cache with
//! `sendfile(2)`, never passing through user-space memory.
//!
//! `sendfile` needs a non-blocking socket so that a slow client parks the connection's task
//! instead of the core: the epoll driver's sockets are non-blocking already; the io_uring
//! driver's are blocking (its operations never block the thread), so for the duration of a file
//! part the socket is switched to non-blocking and back. Either way, when the socket buffer is
//! full the task waits for writability through the runtime (`writable`), like any other write.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;

/// Most bytes one `sendfile` call is asked for (the kernel caps a call near 2 GiB anyway).
const SENDFILE_MAX: usize = 1 << 30;

/// `len` bytes of `file` from `offset`.
#[derive(Clone, Debug)]
pub struct FileRange {
    pub file: Arc<File>,
    pub offset: u64,
    pub len: u64,
}

impl FileRange {
    /// Reads the range into memory (for the rare consumers that need the bytes themselves,
    /// such as SSE framing of a closed chunk).
    pub fn read(&self) -> io::Result<Bytes> {
        let len = usize::try_from(self.len).map_err(io::Error::other)?;
        let mut buf = vec![0u8; len];
        self.file.read_exact_at(&mut buf, self.offset)?;
        Ok(Bytes::from(buf))
    }
}

/// One part of a response body.
#[derive(Clone, Debug)]
pub enum Part {
    Mem(Bytes),
    File(FileRange),
}

impl Part {
    pub fn len(&self) -> u64 {
        match self {
            Self::Mem(b) => b.len() as u64,
            Self::File(f) => f.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The part's bytes in memory (a file part is read).
    pub fn to_bytes(&self) -> io::Result<Bytes> {
        match self {
            Self::Mem(b) => Ok(b.clone()),
            Self::File(f) => f.read(),
        }
    }
}

impl From<Bytes> for Part {
    fn from(b: Bytes) -> Self {
        Self::Mem(b)
    }
}

/// Outcome of one non-blocking `sendfile` attempt.
pub(crate) enum Sent {
    Bytes(usize),
    /// The socket buffer is full: wait for writability and try again.
    WouldBlock,
}

/// One `sendfile` of up to `len` bytes of `file` from `offset` to `socket` (non-blocking).
pub(crate) fn send_once(socket: RawFd, file: &File, offset: u64, len: u64) -> io::Result<Sent> {
    let mut off = libc::off_t::try_from(offset).map_err(io::Error::other)?;
    let count = usize::try_from(len).unwrap_or(usize::MAX).min(SENDFILE_MAX);
    // SAFETY: both descriptors are open for the duration of the call, and `off` is a valid
    // out-pointer for the file position.
    let n = unsafe { libc::sendfile(socket, file.as_raw_fd(), &mut off, count) };
    if n > 0 {
        return Ok(Sent::Bytes(n as usize));
    }
    if n == 0 {
        // The file ended before the range did: it was cut behind our back.
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "file shorter than the response range",
        ));
    }
    let error = io::Error::last_os_error();
    match error.kind() {
        io::ErrorKind::WouldBlock => Ok(Sent::WouldBlock),
        io::ErrorKind::Interrupted => Ok(Sent::Bytes(0)),
        _ => Err(error),
    }
}

/// One non-blocking `sendmsg` of the memory bytes in `iovecs` with `MSG_MORE`: more of the
/// response (a file part) follows at once, so the kernel keeps these bytes to go out with it
/// rather than as a segment of their own. `MSG_DONTWAIT` makes the call non-blocking on either
/// driver's socket without touching its flags.
pub(crate) fn send_more(socket: RawFd, iovecs: &[libc::iovec]) -> io::Result<Sent> {
    // SAFETY: an all-zero msghdr is valid (no name, no control data).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iovecs.as_ptr().cast_mut();
    msg.msg_iovlen = iovecs.len() as _;
    // SAFETY: the iovecs point into memory the caller keeps alive and unmodified for the call.
    let n = unsafe {
        libc::sendmsg(
            socket,
            &msg,
            libc::MSG_MORE | libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if n > 0 {
        return Ok(Sent::Bytes(n as usize));
    }
    if n == 0 {
        // The window is never empty: a socket that takes nothing is broken.
        return Err(io::ErrorKind::WriteZero.into());
    }
    let error = io::Error::last_os_error();
    match error.kind() {
        io::ErrorKind::WouldBlock => Ok(Sent::WouldBlock),
        io::ErrorKind::Interrupted => Ok(Sent::Bytes(0)),
        _ => Err(error),
    }
}

/// A socket's file status flags (`F_GETFL`), read once per connection: only this module
/// changes them, and always back, so the value stays right for the connection's life.
pub(crate) fn status_flags(socket: RawFd) -> io::Result<libc::c_int> {
    // SAFETY: fcntl on an open descriptor with integer arguments.
    let flags = unsafe { libc::fcntl(socket, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(flags)
}

/// Makes `socket` non-blocking while it lives, restoring a blocking socket on drop.
pub(crate) struct NonBlocking {
    socket: RawFd,
    restore: Option<libc::c_int>,
}

impl NonBlocking {
    /// `flags` are the socket's status flags ([`status_flags`]): an already non-blocking socket
    /// (the epoll driver's) costs no system call at all.
    pub(crate) fn set(socket: RawFd, flags: libc::c_int) -> io::Result<Self> {
        if flags & libc::O_NONBLOCK != 0 {
            return Ok(Self {
                socket,
                restore: None,
            });
        }
        // SAFETY: as above.
        if unsafe { libc::fcntl(socket, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            socket,
            restore: Some(flags),
        })
    }
}

impl Drop for NonBlocking {
    fn drop(&mut self) {
        if let Some(flags) = self.restore {
            // SAFETY: as above; a failure leaves the socket non-blocking, which io_uring
            // operations handle too.
            unsafe { libc::fcntl(self.socket, libc::F_SETFL, flags) };
        }
    }
}
