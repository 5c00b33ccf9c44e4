//! The byte stream under a Postgres connection: plain TCP or TLS over it (`tls`), whole or
//! split into the replication stream's reading and writing halves.

use bytes::BytesMut;
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Splitable};
use monoio::net::TcpStream;
use std::io;

use super::tls::{self, Session, TlsReader};

/// Bytes requested from the kernel per read when the buffer has little room left.
const READ_CHUNK: usize = 64 * 1024;
/// Below this much spare capacity a read is not worth a syscall; grow first.
const MIN_READ_SPACE: usize = 4 * 1024;

/// Appends what one read brings to `buf`; `Ok(0)` at the end of the stream.
pub(crate) trait ReadBytes {
    async fn read_bytes(&mut self, buf: &mut BytesMut) -> io::Result<usize>;
}

/// Writes all of `buf` and leaves it empty (keeping its allocation).
pub(crate) trait WriteBytes {
    async fn write_bytes(&mut self, buf: &mut BytesMut) -> io::Result<()>;
}

pub enum Transport {
    Plain(TcpStream),
    Tls(TcpStream, TlsReader),
}

pub enum ReadHalf {
    Plain(OwnedReadHalf<TcpStream>),
    Tls(OwnedReadHalf<TcpStream>, TlsReader),
}

pub enum WriteHalf {
    Plain(OwnedWriteHalf<TcpStream>),
    Tls(OwnedWriteHalf<TcpStream>, Session),
}

impl Transport {
    /// The TLS session, when there is one.
    pub fn session(&self) -> Option<&Session> {
        match self {
            Self::Plain(_) => None,
            Self::Tls(_, reader) => Some(&reader.session),
        }
    }

    pub fn into_split(self) -> (ReadHalf, WriteHalf) {
        match self {
            Self::Plain(tcp) => {
                let (r, w) = tcp.into_split();
                (ReadHalf::Plain(r), WriteHalf::Plain(w))
            }
            Self::Tls(tcp, reader) => {
                let session = reader.session.clone();
                let (r, w) = tcp.into_split();
                (ReadHalf::Tls(r, reader), WriteHalf::Tls(w, session))
            }
        }
    }
}

async fn plain_read<R: AsyncReadRent>(io: &mut R, buf: &mut BytesMut) -> io::Result<usize> {
    if buf.capacity() - buf.len() < MIN_READ_SPACE {
        buf.reserve(READ_CHUNK);
    }
    // monoio reads into the start of a buffer; a slice starting at `len` makes it append.
    let filled = buf.len();
    let spare = std::mem::take(buf).slice_mut(filled..);
    let (result, spare) = io.read(spare).await;
    *buf = spare.into_inner();
    result
}

async fn plain_write<W: monoio::io::AsyncWriteRent>(
    io: &mut W,
    buf: &mut BytesMut,
) -> io::Result<()> {
    let (result, mut owned) = io.write_all(std::mem::take(buf)).await;
    owned.clear();
    *buf = owned;
    result.map(|_| ())
}

impl ReadBytes for Transport {
    async fn read_bytes(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            Self::Plain(tcp) => plain_read(tcp, buf).await,
            Self::Tls(tcp, reader) => reader.read(tcp, buf).await,
        }
    }
}

impl WriteBytes for Transport {
    async fn write_bytes(&mut self, buf: &mut BytesMut) -> io::Result<()> {
        match self {
            Self::Plain(tcp) => plain_write(tcp, buf).await,
            Self::Tls(tcp, reader) => tls::write(&reader.session, tcp, buf).await,
        }
    }
}

impl ReadBytes for ReadHalf {
    async fn read_bytes(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            Self::Plain(tcp) => plain_read(tcp, buf).await,
            Self::Tls(tcp, reader) => reader.read(tcp, buf).await,
        }
    }
}

impl WriteBytes for WriteHalf {
    async fn write_bytes(&mut self, buf: &mut BytesMut) -> io::Result<()> {
        match self {
            Self::Plain(tcp) => plain_write(tcp, buf).await,
            Self::Tls(tcp, session) => tls::write(session, tcp, buf).await,
        }
    }
}
