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
    dual_stack(&socket, addr)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Fails when anything is bound to `addr` already. `SO_REUSEPORT` would otherwise let this
/// process share a port another process serves (the kernel then splits connections between
/// them); a probe bound without it fails with `EADDRINUSE` instead. Port 0 always passes.
///
/// A port still in use is probed again for up to [`PORT_WAIT`]: right after a previous
/// process of ours was killed, its listening sockets can outlive it briefly (with the io_uring
/// driver the kernel releases the ring's sockets asynchronously after exit), and a supervisor
/// restarting at once should not fail on that.
pub fn ensure_port_free(addr: SocketAddr) -> io::Result<()> {
    if addr.port() == 0 {
        return Ok(());
    }
    let deadline = std::time::Instant::now() + PORT_WAIT;
    loop {
        match probe_port(addr) {
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                if std::time::Instant::now() >= deadline {
                    return Err(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        "the port is already in use by another process",
                    ));
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

/// How long [`ensure_port_free`] waits for a port in use to be released.
pub const PORT_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

fn probe_port(addr: SocketAddr) -> io::Result<()> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    dual_stack(&socket, addr)?;
    // SO_REUSEADDR only skips TIME_WAIT leftovers of our own earlier run; a listener still fails.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())
}

/// `::` serves IPv4 too (mapped addresses), whatever the system's `bindv6only` default.
fn dual_stack(socket: &Socket, addr: SocketAddr) -> io::Result<()> {
    if addr.ip() == std::net::IpAddr::from(std::net::Ipv6Addr::UNSPECIFIED) {
        socket.set_only_v6(false)?;
    }
    Ok(())
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
