//! Listening sockets: one per core on the same port (SO_REUSEPORT), so the kernel spreads new
//! connections across cores without any cross-core hand-off.

use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

/// Pending-connection queue length per listener.
const BACKLOG: i32 = 4096;

/// Binds a nonblocking listener with SO_REUSEPORT and SO_REUSEADDR. Call it once per core with
/// the same address; turn each into a `monoio::net::TcpListener` on its core with `from_std`.
pub fn bind_reuseport(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Binds `count` listeners on `addr` with [`bind_reuseport`]. Port 0 is resolved by the first
/// bind and reused for the rest, so all of them share one ephemeral port.
pub fn bind_reuseport_group(addr: SocketAddr, count: usize) -> io::Result<Vec<TcpListener>> {
    let mut listeners = Vec::with_capacity(count);
    let mut bound = addr;
    for _ in 0..count {
        let listener = bind_reuseport(bound)?;
        bound = listener.local_addr()?;
        listeners.push(listener);
    }
    Ok(listeners)
}
