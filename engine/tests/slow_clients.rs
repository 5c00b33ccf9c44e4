//! Slow and stalled clients: clients that request a large response and never read it must not
//! make the server copy or buffer that response per client (memory stays flat: every response
//! shares the log's bytes), and must not delay other clients, which are served meanwhile.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};
use support::{Env, Opts};

const STALLED: usize = 30;

#[test]
fn stalled_readers_neither_grow_memory_nor_delay_others() {
    let cluster = support::cluster();
    // ~8 MB of rows in one snapshot chunk: every stalled client asks for all of it.
    let env = Env::start(
        &cluster,
        "CREATE TABLE big (id int PRIMARY KEY, pad text);
         INSERT INTO big SELECT g, repeat('x', 400) FROM generate_series(1, 20000) g;",
        Opts {
            cores: 2,
            ..Opts::default()
        },
    );
    let c = env.client();
    let first = c.get("/v1/shape?table=big&offset=-1");
    assert_eq!(first.status, 200);
    let body_len = first.body.len();
    assert!(body_len > 8_000_000, "a large response ({body_len} bytes)");
    let rss_before = env.server.rss_kib();

    // Clients that send the request and never read: the kernel buffers fill, then the server's
    // writes wait (until the write timeout closes them).
    let mut stalled = Vec::new();
    for _ in 0..STALLED {
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        sock.set_recv_buffer_size(4096)
            .expect("small receive buffer");
        let addr: std::net::SocketAddr = ([127, 0, 0, 1], env.server.port).into();
        sock.connect(&addr.into()).expect("connect");
        let mut s: TcpStream = sock.into();
        write!(
            s,
            "GET /v1/shape?table=big&offset=-1 HTTP/1.1\r\nhost: x\r\n\r\n"
        )
        .expect("send");
        stalled.push(s);
    }
    // Wait until the server is writing every one of those responses: each socket has response
    // bytes queued (its small buffer cannot take the whole body, so the write is then stuck).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let waiting = stalled.iter().filter(|s| queued_bytes(s) == 0).count();
        if waiting == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{waiting} of {STALLED} stalled clients got no response bytes"
        );
        std::thread::sleep(Duration::from_millis(10));
    }

    // Everyone else is served meanwhile, completely (each request is bounded by the client's
    // own read timeout, so a stalled server fails the test instead of hanging it).
    for _ in 0..10 {
        let r = c.get("/v1/shape?table=big&offset=-1");
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len(), body_len);
        assert_eq!(c.get("/v1/health").status, 200);
    }
    let rss_held = env.server.rss_kib();
    let growth_kib = rss_held.saturating_sub(rss_before);
    eprintln!("RSS {rss_before} KiB before, {rss_held} KiB with {STALLED} stalled clients");
    // Copying the response per stalled client would be 30 × 8 MB = 240 MB.
    assert!(
        growth_kib < 48 * 1024,
        "RSS grew by {growth_kib} KiB with {STALLED} stalled clients of an {body_len}-byte response"
    );
    drop(stalled);
}

/// Bytes received on the socket and not yet read (`FIONREAD`).
fn queued_bytes(s: &TcpStream) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int through the pointer, which outlives the call.
    let rc = unsafe { libc::ioctl(s.as_raw_fd(), libc::FIONREAD, &mut n) };
    assert_eq!(rc, 0, "FIONREAD: {}", std::io::Error::last_os_error());
    usize::try_from(n).expect("non-negative")
}
