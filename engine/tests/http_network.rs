//! The HTTP side's network settings: `ELECTRIC_LISTEN_ON_IPV6` (one dual-stack listener serves
//! IPv6 and IPv4 clients) and `ELECTRIC_TCP_READ_TIMEOUT` (a client that sends nothing is
//! disconnected after it).

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use support::{Opts, Server};

fn health(addr: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("{addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(b"GET /v1/health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

#[test]
fn dual_stack_listener_and_read_timeout() {
    let cluster = support::cluster();
    let db = cluster.create_database().expect("db");
    let server = Server::start(
        &db.url(),
        Opts {
            env: vec![
                ("ELECTRIC_LISTEN_ON_IPV6", "true".to_string()),
                ("AMPERE_LISTEN_ADDR", "0.0.0.0".to_string()),
                ("ELECTRIC_TCP_READ_TIMEOUT", "1s".to_string()),
            ],
            ..Opts::default()
        },
    );
    for addr in [
        format!("[::1]:{}", server.port),
        format!("127.0.0.1:{}", server.port),
    ] {
        let answer = health(&addr);
        assert!(answer.starts_with("HTTP/1.1 200"), "{addr}: {answer}");
    }
    // Silent client: closed after the read timeout (1 s), long before the 60 s default and
    // this client's own 20 s limit.
    let mut idle = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    idle.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut buf = [0u8; 64];
    match idle.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!(
            "an answer to nothing: {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(e) => panic!("not closed by the server: {e}"),
    }
}
