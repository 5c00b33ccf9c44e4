//! A minimal blocking HTTP/1.1 client over `std::net::TcpStream`. One request per connection
//! (`connection: close`), so the response ends at EOF; chunked bodies are de-chunked. Header
//! names are lower-cased, every value is kept in order, and the body is the exact bytes sent.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Bound on any single response, so a hung server fails the test instead of hanging it.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Responses above this are a server bug as far as these tests are concerned.
const MAX_RESPONSE: usize = 64 << 20;

#[derive(Clone, Copy, Debug)]
pub struct Client {
    pub port: u16,
}

impl Client {
    pub fn new(port: u16) -> Self {
        Self { port }
    }

    pub fn get(&self, target: &str) -> Resp {
        self.request("GET", target, &[])
    }

    pub fn get_with(&self, target: &str, headers: &[(&str, &str)]) -> Resp {
        self.request("GET", target, headers)
    }

    pub fn try_get(&self, target: &str) -> Result<Resp, String> {
        self.try_request("GET", target, &[])
    }

    pub fn request(&self, method: &str, target: &str, headers: &[(&str, &str)]) -> Resp {
        self.try_request(method, target, headers)
            .unwrap_or_else(|e| panic!("{method} {target}: {e}"))
    }

    pub fn try_request(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
    ) -> Result<Resp, String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(READ_TIMEOUT))
            .map_err(|e| e.to_string())?;
        let mut req = format!(
            "{method} {target} HTTP/1.1\r\nhost: 127.0.0.1:{}\r\nconnection: close\r\n",
            self.port
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    raw.extend_from_slice(&buf[..n]);
                    if raw.len() > MAX_RESPONSE {
                        return Err("response too large".into());
                    }
                }
                Err(e) => return Err(format!("read: {e} (after {} bytes)", raw.len())),
            }
        }
        Resp::parse(&raw, method == "HEAD")
    }
}

/// One HTTP response as received.
#[derive(Clone, Debug)]
pub struct Resp {
    pub status: u16,
    /// The whole status line, e.g. `HTTP/1.1 200 OK`.
    pub status_line: String,
    /// Lower-cased names, values as sent, in order, duplicates kept.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Whether the body came with `transfer-encoding: chunked`.
    pub chunked: bool,
}

impl Resp {
    /// Parses a whole response as read from the connection (`head_request`: no body).
    pub fn parse(raw: &[u8], head_request: bool) -> Result<Self, String> {
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| format!("no end of headers in {:?}", String::from_utf8_lossy(raw)))?;
        let head = std::str::from_utf8(&raw[..end]).map_err(|e| e.to_string())?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default().to_string();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {status_line:?}"))?;
        let mut headers = Vec::new();
        for l in lines {
            let (k, v) = l
                .split_once(':')
                .ok_or_else(|| format!("bad header line {l:?}"))?;
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
        let rest = &raw[end + 4..];
        let chunked = headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
        let body = if head_request {
            if !rest.is_empty() {
                return Err(format!("HEAD response has {} body bytes", rest.len()));
            }
            Vec::new()
        } else if chunked {
            dechunk(rest)?
        } else {
            let len = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .map(|(_, v)| v.parse::<usize>().map_err(|e| e.to_string()))
                .transpose()?;
            match len {
                Some(n) if n != rest.len() => {
                    return Err(format!("content-length {n} but {} bytes", rest.len()))
                }
                _ => rest.to_vec(),
            }
        };
        Ok(Self {
            status,
            status_line,
            headers,
            body,
            chunked,
        })
    }

    /// All values of a header.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The single value of a header, `None` if absent; panics if it is repeated.
    pub fn header(&self, name: &str) -> Option<&str> {
        let all = self.all(name);
        assert!(all.len() <= 1, "header {name} repeated: {all:?}");
        all.first().copied()
    }

    /// The single value of a header that must be present.
    pub fn h(&self, name: &str) -> &str {
        self.header(name)
            .unwrap_or_else(|| panic!("missing header {name} in {:#?}", self.headers))
    }

    pub fn has(&self, name: &str) -> bool {
        self.headers.iter().any(|(k, _)| k == name)
    }

    /// Header names and values except those that differ per response by design.
    pub fn stable_headers(&self) -> Vec<(String, String)> {
        self.headers
            .iter()
            .filter(|(k, _)| k != "x-request-id" && k != "date")
            .cloned()
            .collect()
    }

    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body_str()))
    }

    /// The body as a JSON array of messages.
    pub fn items(&self) -> Vec<serde_json::Value> {
        match self.json() {
            serde_json::Value::Array(v) => v,
            other => panic!("body is not an array: {other}"),
        }
    }

    pub fn handle(&self) -> String {
        self.h("electric-handle").to_string()
    }

    pub fn offset(&self) -> String {
        self.h("electric-offset").to_string()
    }

    /// Asserts the status, showing the response when it differs.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Self {
        assert_eq!(
            self.status,
            status,
            "unexpected status; headers {:#?}\nbody {}",
            self.headers,
            self.body_str()
        );
        self
    }
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let nl = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("chunk size line not terminated")?;
        let line = std::str::from_utf8(&rest[..nl]).map_err(|e| e.to_string())?;
        let size_hex = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|e| format!("chunk size {size_hex:?}: {e}"))?;
        rest = &rest[nl + 2..];
        if size == 0 {
            return Ok(out);
        }
        if rest.len() < size + 2 || &rest[size..size + 2] != b"\r\n" {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&rest[..size]);
        if out.len() > MAX_RESPONSE {
            return Err("body too large".into());
        }
        rest = &rest[size + 2..];
    }
}
