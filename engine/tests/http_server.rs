//! The HTTP server end to end: a real `serve` on 127.0.0.1 under both monoio drivers, driven by
//! raw `std::net::TcpStream` clients that write exact bytes and parse exact responses, so
//! framing, persistence, limits and timeouts are checked as a client on the wire sees them.

use std::collections::HashSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use engine::http::{self, Body, Limits, Request, Response, ResponseFuture};
use engine::runtime::{run_per_core, IoDriver};

const DRIVERS: [IoDriver; 2] = [IoDriver::Epoll, IoDriver::Uring];
/// Generous bound on any single client read, so a broken server fails a test instead of hanging.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(15);

/// Ids of `/forever` handler futures that have been dropped (the client went away).
static DROPPED: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct DropFlag(String);

impl Drop for DropFlag {
    fn drop(&mut self) {
        DROPPED.lock().unwrap().push(self.0.clone());
    }
}

fn handle(request: Request) -> ResponseFuture {
    Box::pin(async move {
        let text = |body: &'static str| Response::new(200).with_body(Body::Full(body.into()));
        let response = match request.path() {
            "/hello" => text("hello"),
            "/echo" => Response::new(200).with_body(Body::Full(request.body.clone())),
            "/parts" => Response::new(200).with_body(Body::Parts(vec![
                Bytes::from_static(b"ab"),
                Bytes::from_static(b"cd"),
                Bytes::from_static(b"ef"),
            ])),
            "/many-parts" => Response::new(200).with_body(Body::Parts(
                (0..3000).map(|_| Bytes::from_static(b"xyz")).collect(),
            )),
            "/big" => Response::new(200).with_body(Body::Full(vec![b'a'; 4 << 20].into())),
            "/sleep" => {
                let millis = request.query().parse().unwrap_or(10);
                monoio::time::sleep(Duration::from_millis(millis)).await;
                text("slept")
            }
            "/forever" => {
                let _flag = DropFlag(request.query().to_owned());
                std::future::pending::<()>().await;
                unreachable!("pending never completes")
            }
            "/panic" => panic!("handler panics on purpose"),
            "/no-content" => Response::new(204),
            _ => Response::new(404),
        };
        let all: Vec<&str> = request.headers_all("x-test").collect();
        response
            .with_header("x-method", request.method.as_str().to_owned())
            .with_header("x-query", request.query().to_owned())
            .with_header("x-test", all.join(","))
    })
}

/// Starts `serve` on one core with `driver` and returns its address. The listener is bound
/// before the server thread starts, so connections made right away queue in its backlog.
fn start(driver: IoDriver, limits: Limits) -> SocketAddr {
    let listener = http::bind_reuseport("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let slot = Mutex::new(Some(listener));
    thread::spawn(move || {
        run_per_core(1, driver, move |_core| {
            let listener = slot
                .lock()
                .unwrap()
                .take()
                .expect("a single core takes the listener");
            async move {
                let listener = monoio::net::TcpListener::from_std(listener).unwrap();
                http::serve(listener, Rc::new(handle), limits).await;
            }
        })
        .unwrap();
    });
    addr
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
        Self {
            stream,
            buf: Vec::new(),
        }
    }

    fn send(&mut self, bytes: &[u8]) -> &mut Self {
        self.stream.write_all(bytes).unwrap();
        self
    }

    fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(count) => {
                self.buf.extend_from_slice(&chunk[..count]);
                count
            }
            Err(error) if error.kind() == ErrorKind::ConnectionReset => 0,
            Err(error) => panic!("client read failed: {error}"),
        }
    }

    /// Reads one response; `head_request` says the body is announced but absent.
    fn reply(&mut self, head_request: bool) -> Reply {
        loop {
            let mut slots = [httparse::EMPTY_HEADER; 64];
            let mut parsed = httparse::Response::new(&mut slots);
            if let httparse::Status::Complete(head_len) = parsed.parse(&self.buf).unwrap() {
                let status = parsed.code.unwrap();
                let headers: Vec<(String, String)> = parsed
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_owned(),
                            String::from_utf8(h.value.to_vec()).unwrap(),
                        )
                    })
                    .collect();
                let mut reply = Reply {
                    status,
                    headers,
                    body: Vec::new(),
                };
                let length: usize = reply
                    .header("content-length")
                    .map_or(0, |v| v.parse().unwrap());
                let length = if head_request { 0 } else { length };
                self.buf.drain(..head_len);
                while self.buf.len() < length {
                    assert!(self.fill() > 0, "connection closed inside a body");
                }
                reply.body = self.buf.drain(..length).collect();
                return reply;
            }
            assert!(
                self.fill() > 0,
                "connection closed before a response: {:?}",
                self.buf
            );
        }
    }

    fn expect_closed(&mut self) {
        assert_eq!(
            self.fill(),
            0,
            "expected the server to close: {:?}",
            self.buf
        );
        assert!(
            self.buf.is_empty(),
            "unexpected bytes before close: {:?}",
            self.buf
        );
    }
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").into_bytes()
}

#[test]
fn get_head_and_post() {
    for driver in DRIVERS {
        let addr = start(driver, Limits::default());
        let mut client = Client::connect(addr);
        let reply = client.send(&get("/hello?a=1&b=%20")).reply(false);
        assert_eq!(reply.status, 200, "{driver}");
        assert_eq!(reply.body, b"hello");
        assert_eq!(reply.header("x-query"), Some("a=1&b=%20"));
        assert_eq!(reply.header("x-method"), Some("GET"));
        assert!(reply
            .header("date")
            .is_some_and(|date| date.ends_with(" GMT")));

        // HEAD announces the GET length but sends no body: the next reply on the same
        // connection must parse cleanly right after the head.
        let reply = client
            .send(b"HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\n")
            .reply(true);
        assert_eq!(
            (reply.status, reply.header("content-length")),
            (200, Some("5"))
        );
        let body = b"{\"some\":\"json\"}";
        let post = format!(
            "POST /echo HTTP/1.1\r\nX-Test: 1\r\nx-test: 2\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        client.send(post.as_bytes()).send(body);
        let reply = client.reply(false);
        assert_eq!((reply.status, reply.body.as_slice()), (200, &body[..]));
        assert_eq!(
            reply.header("x-test"),
            Some("1,2"),
            "repeated headers kept in order"
        );
        let reply = client.send(&get("/no-content")).reply(false);
        assert_eq!((reply.status, reply.header("content-length")), (204, None));
        assert_eq!(client.send(&get("/missing")).reply(false).status, 404);
    }
}

#[test]
fn keep_alive_and_http10_close() {
    for driver in DRIVERS {
        let addr = start(driver, Limits::default());
        let mut client = Client::connect(addr);
        for _ in 0..20 {
            let reply = client.send(&get("/hello")).reply(false);
            assert_eq!((reply.status, reply.header("connection")), (200, None));
        }
        let reply = client
            .send(b"GET /hello HTTP/1.1\r\nConnection: close\r\n\r\n")
            .reply(false);
        assert_eq!(reply.header("connection"), Some("close"));
        client.expect_closed();

        let mut legacy = Client::connect(addr);
        let reply = legacy.send(b"GET /hello HTTP/1.0\r\n\r\n").reply(false);
        assert_eq!(
            (reply.status, reply.header("connection")),
            (200, Some("close"))
        );
        legacy.expect_closed();

        let mut legacy = Client::connect(addr);
        for _ in 0..3 {
            let reply = legacy
                .send(b"GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
                .reply(false);
            assert_eq!(reply.header("connection"), Some("keep-alive"), "{driver}");
        }
    }
}

#[test]
fn requests_split_across_many_writes() {
    for driver in DRIVERS {
        let addr = start(driver, Limits::default());
        let mut client = Client::connect(addr);
        client.stream.set_nodelay(true).unwrap();
        let body = vec![b'q'; 50_000];
        let mut wire = format!(
            "POST /echo HTTP/1.1\r\nHost: t\r\nx-pad: {}\r\nContent-Length: {}\r\n\r\n",
            "p".repeat(6000),
            body.len()
        )
        .into_bytes();
        wire.extend_from_slice(&body);
        // Pauses between pieces make the server see them in separate reads (head and body both
        // span reads); the result must not depend on how the bytes were split.
        for piece in wire.chunks(997) {
            client.send(piece);
            thread::sleep(Duration::from_millis(1));
        }
        let reply = client.reply(false);
        assert_eq!(
            (reply.status, reply.body.len()),
            (200, body.len()),
            "{driver}"
        );
        assert_eq!(reply.body, body);
        for piece in get("/hello").chunks(3) {
            client.send(piece);
            thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(client.reply(false).body, b"hello");
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    for driver in DRIVERS {
        let addr = start(driver, Limits::default());
        let mut client = Client::connect(addr);
        // The slow request comes first: its reply must still come first.
        let mut batch = get("/sleep?50");
        batch.extend_from_slice(b"POST /echo HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
        batch.extend_from_slice(&get("/hello"));
        batch.extend_from_slice(b"\r\n");
        batch.extend_from_slice(&get("/parts"));
        client.send(&batch);
        let bodies: Vec<Vec<u8>> = (0..4).map(|_| client.reply(false).body).collect();
        assert_eq!(
            bodies,
            [&b"slept"[..], b"abc", b"hello", b"abcdef"],
            "{driver}"
        );
    }
}

#[test]
fn parts_and_large_bodies_are_written_whole() {
    for driver in DRIVERS {
        let addr = start(driver, Limits::default());
        let mut client = Client::connect(addr);
        let reply = client.send(&get("/parts")).reply(false);
        assert_eq!(
            (reply.header("content-length"), reply.body.as_slice()),
            (Some("6"), &b"abcdef"[..])
        );
        // More parts than one writev takes (IOV_MAX).
        let reply = client.send(&get("/many-parts")).reply(false);
        assert_eq!(reply.body, b"xyz".repeat(3000), "{driver}");
        // Larger than the socket buffer: needs several partial writes.
        let reply = client.send(&get("/big")).reply(false);
        assert_eq!(reply.body.len(), 4 << 20);
        assert!(reply.body.iter().all(|&byte| byte == b'a'));
        assert_eq!(client.send(&get("/hello")).reply(false).body, b"hello");
    }
}

#[test]
fn malformed_requests_get_400_and_close() {
    for driver in DRIVERS {
        let addr = start(driver, Limits::default());
        for garbage in [
            &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nbad header line\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ] {
            let mut client = Client::connect(addr);
            let reply = client.send(garbage).reply(false);
            assert_eq!(reply.status, 400, "{driver} {garbage:?}");
            assert_eq!(reply.header("connection"), Some("close"));
            client.expect_closed();
        }
        // The server is unharmed.
        assert_eq!(
            Client::connect(addr)
                .send(&get("/hello"))
                .reply(false)
                .status,
            200
        );
    }
}

#[test]
fn oversized_heads_get_431() {
    for driver in DRIVERS {
        let addr = start(driver, Limits::default());
        let mut client = Client::connect(addr);
        let huge = format!("GET / HTTP/1.1\r\nx-big: {}\r\n\r\n", "a".repeat(20_000));
        let reply = client.send(huge.as_bytes()).reply(false);
        assert_eq!(reply.status, 431, "{driver}");
        client.expect_closed();

        let mut many = String::from("GET / HTTP/1.1\r\n");
        for index in 0..65 {
            many.push_str(&format!("x-{index}: v\r\n"));
        }
        many.push_str("\r\n");
        let mut client = Client::connect(addr);
        assert_eq!(client.send(many.as_bytes()).reply(false).status, 431);
        client.expect_closed();
    }
}

#[test]
fn oversized_bodies_get_413() {
    for driver in DRIVERS {
        let limits = Limits {
            max_body: 1000,
            ..Limits::default()
        };
        let addr = start(driver, limits);
        let mut client = Client::connect(addr);
        let reply = client
            .send(b"POST /echo HTTP/1.1\r\nContent-Length: 1001\r\n\r\n")
            .reply(false);
        assert_eq!(reply.status, 413, "{driver}");
        assert_eq!(reply.body, br#"{"error":"Request body too large"}"#);
        assert_eq!(reply.header("content-type"), Some("application/json"));
        client.expect_closed();

        // A chunked body that grows past the limit is refused the same way.
        let mut client = Client::connect(addr);
        client.send(b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
        client.send(format!("3e8\r\n{}\r\n1\r\nx\r\n0\r\n\r\n", "y".repeat(1000)).as_bytes());
        assert_eq!(client.reply(false).status, 413);

        // Exactly at the limit is fine.
        let mut client = Client::connect(addr);
        client.send(b"POST /echo HTTP/1.1\r\nContent-Length: 1000\r\n\r\n");
        client.send(&[b'z'; 1000]);
        assert_eq!(client.reply(false).body.len(), 1000);
    }
}

#[test]
fn chunked_and_expect_continue_bodies() {
    for driver in DRIVERS {
        let addr = start(driver, Limits::default());
        let mut client = Client::connect(addr);
        client.send(b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
        client.send(b"6;name=value\r\n world\r\n0\r\ntrailer: x\r\n\r\n");
        assert_eq!(client.reply(false).body, b"hello world", "{driver}");

        client.send(b"POST /echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
        assert_eq!(
            client.reply(false).status,
            100,
            "interim response before the body"
        );
        assert_eq!(client.send(b"data").reply(false).body, b"data");
    }
}

#[test]
fn idle_and_slow_clients_are_cut_off() {
    for driver in DRIVERS {
        let limits = Limits {
            idle_timeout: Duration::from_millis(200),
            header_timeout: Duration::from_millis(200),
            body_timeout: Duration::from_millis(200),
            ..Limits::default()
        };
        let addr = start(driver, limits);
        // Idle after one request.
        let mut client = Client::connect(addr);
        assert_eq!(client.send(&get("/hello")).reply(false).status, 200);
        client.expect_closed();
        // Never finishes its head.
        let mut client = Client::connect(addr);
        client.send(b"GET /hello HTTP/1.1\r\nHost: slo");
        client.expect_closed();
        // Never finishes its body.
        let mut client = Client::connect(addr);
        client.send(b"POST /echo HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc");
        client.expect_closed();
    }
}

#[test]
fn waiting_handler_does_not_block_others_and_is_dropped_on_hang_up() {
    for driver in DRIVERS {
        let addr = start(driver, Limits::default());
        let id = format!("{driver}-{}", std::process::id());
        let mut waiting = Client::connect(addr);
        waiting.send(&get(&format!("/forever?{id}")));
        // A concurrent connection is served while the first handler waits.
        let mut other = Client::connect(addr);
        for _ in 0..3 {
            assert_eq!(
                other.send(&get("/hello")).reply(false).body,
                b"hello",
                "{driver}"
            );
        }
        assert!(!DROPPED.lock().unwrap().contains(&id), "still waiting");
        drop(waiting);
        // The hang-up must cancel the handler; poll for it with a generous bound.
        let dropped = (0..1500).any(|_| {
            thread::sleep(Duration::from_millis(10));
            DROPPED.lock().unwrap().contains(&id)
        });
        assert!(
            dropped,
            "{driver}: handler future not dropped after the client hung up"
        );
    }
}

/// The panic policy (`engine::panic_policy`): a handler's panic is not turned into a 500 for
/// its own request while the core carries on with state the panic may have left half-updated;
/// it stops the core, and `run_per_core` reports it (the `ampere` binary aborts even earlier,
/// in its panic hook: `engine/tests/panic_policy.rs`).
#[test]
fn a_panicking_handler_stops_the_core() {
    for driver in DRIVERS {
        let listener = http::bind_reuseport("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let slot = Mutex::new(Some(listener));
        let server = thread::spawn(move || {
            run_per_core(1, driver, move |_core| {
                let listener = slot.lock().unwrap().take().expect("one core");
                async move {
                    let listener = monoio::net::TcpListener::from_std(listener).unwrap();
                    http::serve(listener, Rc::new(handle), Limits::default()).await;
                }
            })
        });
        let mut healthy = Client::connect(addr);
        assert_eq!(healthy.send(&get("/hello")).reply(false).status, 200);
        let mut client = Client::connect(addr);
        client.send(&get("/panic"));
        let outcome = server
            .join()
            .expect("run_per_core returns instead of unwinding");
        let error = outcome
            .expect_err("a panicking core is an error")
            .to_string();
        assert!(
            error.contains("core 0 panicked") && error.contains("handler panics on purpose"),
            "{driver}: {error}"
        );
        // No response, not even a 500: the connection goes away with the core. (With io_uring
        // a dropped runtime keeps the sockets of operations still in the kernel open; the
        // binary aborts the whole process, which closes them: `tests/panic_policy.rs`.)
        if driver == IoDriver::Epoll {
            client.expect_closed();
        }
        drop(healthy);
    }
}

#[test]
fn connections_past_the_limit_get_503() {
    for driver in DRIVERS {
        let limits = Limits {
            max_connections_per_core: 2,
            ..Limits::default()
        };
        let addr = start(driver, limits);
        let mut held: Vec<Client> = (0..2).map(|_| Client::connect(addr)).collect();
        for client in &mut held {
            assert_eq!(client.send(&get("/hello")).reply(false).status, 200);
        }
        let mut extra = Client::connect(addr);
        let reply = extra.reply(false);
        assert_eq!(
            (reply.status, reply.header("retry-after")),
            (503, Some("1")),
            "{driver}"
        );
        extra.expect_closed();
        // Closing one frees a slot; the server notices the close and accepts again.
        drop(held.pop());
        let served = (0..500).any(|_| {
            let mut client = Client::connect(addr);
            let ok = client.send(&get("/hello")).reply(false).status == 200;
            if !ok {
                thread::sleep(Duration::from_millis(10));
            }
            ok
        });
        assert!(served, "{driver}: slot never freed");
    }
}

#[test]
fn many_connections_at_once() {
    for driver in DRIVERS {
        let addr = start(driver, Limits::default());
        let mut clients: Vec<Client> = (0..200).map(|_| Client::connect(addr)).collect();
        for client in &mut clients {
            client.send(&get("/hello"));
        }
        let statuses: HashSet<u16> = clients.iter_mut().map(|c| c.reply(false).status).collect();
        assert_eq!(statuses, HashSet::from([200]), "{driver}");
    }
}
