//! `run_per_core`: several pinned cores, each with its own SO_REUSEPORT listener on one port,
//! all accepting; and a panicking core turning into an error instead of a hang.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::rc::Rc;
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use engine::http::{self, Body, Limits, Request, Response, ResponseFuture};
use engine::runtime::{run_per_core, IoDriver};

/// Asks for a fresh connection's serving core: each core answers with its index and its thread
/// name, so the test sees which listener the kernel picked.
fn ask_core(addr: std::net::SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    reply.split("\r\n\r\n").nth(1).unwrap().to_owned()
}

#[test]
fn two_cores_share_a_port_and_both_accept() {
    for driver in [IoDriver::Epoll, IoDriver::Uring] {
        let listeners = http::bind_reuseport_group("127.0.0.1:0".parse().unwrap(), 2).unwrap();
        let addr = listeners[0].local_addr().unwrap();
        assert_eq!(
            listeners[1].local_addr().unwrap(),
            addr,
            "one port for both cores"
        );
        let slots: Vec<Mutex<Option<std::net::TcpListener>>> = listeners
            .into_iter()
            .map(|listener| Mutex::new(Some(listener)))
            .collect();
        thread::spawn(move || {
            run_per_core(2, driver, move |core| {
                let listener = slots[core].lock().unwrap().take().unwrap();
                async move {
                    let listener = monoio::net::TcpListener::from_std(listener).unwrap();
                    let handler = move |_request: Request| -> ResponseFuture {
                        let name = thread::current().name().unwrap_or("?").to_owned();
                        let body = format!("{core} {name}");
                        Box::pin(
                            async move { Response::new(200).with_body(Body::Full(body.into())) },
                        )
                    };
                    http::serve(listener, Rc::new(handler), Limits::default()).await;
                }
            })
            .unwrap();
        });
        // The kernel hashes each new connection to one listener; with fresh source ports both
        // are hit quickly, but allow many tries so the test cannot flake.
        let mut seen = HashSet::new();
        for _ in 0..2000 {
            seen.insert(ask_core(addr));
            if seen.len() == 2 {
                break;
            }
        }
        let expected = HashSet::from(["0 ampere-core-0".to_owned(), "1 ampere-core-1".to_owned()]);
        assert_eq!(seen, expected, "{driver}");
    }
}

#[test]
fn a_panicking_core_is_an_error() {
    for driver in [IoDriver::Epoll, IoDriver::Uring, IoDriver::Auto] {
        let outcome = run_per_core(2, driver, |core| async move {
            monoio::time::sleep(Duration::from_millis(1)).await;
            assert_ne!(core, 1, "core 1 fails on purpose");
        });
        let error = outcome.unwrap_err().to_string();
        assert!(error.contains("core 1 panicked"), "{driver}: {error}");
        assert!(error.contains("core 1 fails on purpose"), "{error}");
    }
}

#[test]
fn a_failing_core_does_not_wait_for_the_others() {
    // Core 0 never finishes; core 1 panics. The call must still return.
    let outcome = run_per_core(2, IoDriver::Epoll, |core| async move {
        if core == 1 {
            panic!("core 1 stops");
        }
        std::future::pending::<()>().await;
    });
    assert!(outcome.is_err());
}

#[test]
fn cores_that_finish_return_ok() {
    let outcome = run_per_core(2, IoDriver::Auto, |_core| async move {
        monoio::time::sleep(Duration::from_millis(1)).await;
    });
    outcome.unwrap();
    assert!(run_per_core(0, IoDriver::Epoll, |_core| async {}).is_err());
}
