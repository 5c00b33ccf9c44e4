//! A minimal blocking HTTP/1.1 client for loopback benchmarks: one keep-alive connection,
//! requests without a body (`GET`, `DELETE`), `content-length` bodies (what Ampere and nginx send

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{bail, ensure, Context as _, Result};

/// Longest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Largest body accepted (a 10 MiB chunk plus slack, many times over).
const MAX_BODY: u64 = 1 << 30;
/// Bound on any single read, so a stuck server fails the benchmark instead of hanging it.
const READ_TIMEOUT: Duration = Duration::from_secs(120);

/// One response.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One keep-alive connection to `127.0.0.1:<port>`.
pub struct HttpClient {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl HttpClient {
    pub fn connect(port: u16) -> Result<Self> {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .with_context(|| format!("connect to 127.0.0.1:{port}"))?;
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    /// Sends `GET path` and reads the whole response.
    pub fn get(&mut self, path: &str) -> Result<HttpResponse> {
        self.request("GET", path)
    }

    /// Sends `method path` (no body) and reads the whole response.
    pub fn request(&mut self, method: &str, path: &str) -> Result<HttpResponse> {
        self.send(method, path)?;
        self.read_response()
    }

    /// Sends `method path` without reading the answer: a live request can be held while the
    /// caller does something else (such as the write that completes it).
    pub fn send(&mut self, method: &str, path: &str) -> Result<()> {
        let request = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        self.stream
            .write_all(request.as_bytes())
            .context("send request")
    }

    /// Reads the whole response to the request sent last.
    pub fn read_response(&mut self) -> Result<HttpResponse> {
        let head_len = loop {
            if let Some(end) = find_head_end(&self.buf) {
                break end;
            }
            ensure!(
                self.buf.len() <= MAX_HEAD,
                "response head over {MAX_HEAD} bytes"
            );
            self.fill()?;
        };
        let head = std::str::from_utf8(&self.buf[..head_len]).context("response head is UTF-8")?;
        let (status, headers) = parse_head(head)?;
        let length = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map(|(_, v)| v.parse::<u64>())
            .transpose()
            .context("bad content-length")?;
        if headers
            .iter()
            .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"))
        {
            bail!("chunked responses are not supported by this client");
        }
        let length = length.context("response without content-length")?;
        ensure!(
            length <= MAX_BODY,
            "body of {length} bytes is over the bound"
        );
        let length = length as usize;
        // The body is read straight into its own buffer (one copy out of the kernel): a large
        // sync is megabytes per response, and this client shares the machine with the server.
        let buffered = (self.buf.len() - head_len).min(length);
        let mut body = vec![0u8; length];
        body[..buffered].copy_from_slice(&self.buf[head_len..head_len + buffered]);
        self.buf.drain(..head_len + buffered);
        let mut filled = buffered;
        while filled < length {
            let n = self
                .stream
                .read(&mut body[filled..])
                .context("read response body")?;
            ensure!(n > 0, "connection closed mid-response");
            filled += n;
        }
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }

    fn fill(&mut self) -> Result<()> {
        let mut chunk = [0u8; 64 * 1024];
        let n = self.stream.read(&mut chunk).context("read response")?;
        ensure!(n > 0, "connection closed mid-response");
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

/// Index just past `\r\n\r\n`.
pub fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Status code and headers of a response head.
pub fn parse_head(head: &str) -> Result<(u16, Vec<(String, String)>)> {
    let mut lines = head.split("\r\n");
    let status_line = lines.next().context("empty response head")?;
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let headers = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok((status, headers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_head() {
        let head = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nelectric-up-to-date: \r\n\r\n";
        assert_eq!(find_head_end(head.as_bytes()), Some(head.len()));
        let (status, headers) = parse_head(head).unwrap();
        assert_eq!(status, 200);
        assert_eq!(headers[0], ("content-length".into(), "2".into()));
        assert_eq!(headers[1], ("electric-up-to-date".into(), String::new()));
    }
}
