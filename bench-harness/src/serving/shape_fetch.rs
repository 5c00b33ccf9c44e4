//! Following a shape from `offset=-1` to up-to-date, as a catching-up client does: every chunk
//! read fully over one keep-alive connection, rows counted from the bodies.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _, Result};

use super::http::HttpClient;

/// Bound on the number of requests one catch-up may take (a 1M-row shape at 64 KiB chunks
/// takes about 3,000).
const MAX_REQUESTS: usize = 100_000;

/// The JSON every row message carries exactly once (Ampere's and Electric's encoders agree).
const INSERT_MARK: &[u8] = br#""operation":"insert""#;

/// One response of the catch-up.
#[derive(Debug)]
pub struct FetchedChunk {
    /// The request path (with query) that produced it.
    pub path: String,
    /// The body, when bodies are kept.
    pub body: Option<Vec<u8>>,
    pub body_len: usize,
    pub rows: u64,
}

/// A whole catch-up.
#[derive(Debug)]
pub struct ShapeFetch {
    pub chunks: Vec<FetchedChunk>,
    pub handle: String,
    /// `electric-offset` of the up-to-date response: where a live request continues.
    pub offset: String,
    pub rows: u64,
    pub body_bytes: u64,
    /// From sending the first request to reading the up-to-date response.
    pub elapsed: Duration,
    /// From sending the first request to the first byte of its response head being parsed.
    pub first_response: Duration,
}

/// Catches `table` up from `offset=-1`, keeping the bodies when `keep_bodies` is set.
pub fn fetch_shape(port: u16, table: &str, keep_bodies: bool) -> Result<ShapeFetch> {
    let mut client = HttpClient::connect(port)?;
    fetch_definition(&mut client, &format!("table={table}"), keep_bodies)
}

/// Catches up the shape that the query string `def` (`table=…&where=…`, already encoded)
/// defines, from `offset=-1`, over `client`'s connection.
pub fn fetch_definition(
    client: &mut HttpClient,
    def: &str,
    keep_bodies: bool,
) -> Result<ShapeFetch> {
    let started = Instant::now();
    let mut path = format!("/v1/shape?{def}&offset=-1");
    let mut chunks = Vec::new();
    let mut first_response = None;
    loop {
        ensure!(
            chunks.len() < MAX_REQUESTS,
            "no up-to-date after {MAX_REQUESTS} requests"
        );
        let response = client.get(&path).with_context(|| format!("GET {path}"))?;
        first_response.get_or_insert_with(|| started.elapsed());
        ensure!(
            response.status == 200,
            "GET {path}: status {} ({})",
            response.status,
            response.body_str()
        );
        let handle = response
            .header("electric-handle")
            .context("no electric-handle")?
            .to_string();
        let offset = response
            .header("electric-offset")
            .context("no electric-offset")?
            .to_string();
        let up_to_date = response.header("electric-up-to-date").is_some();
        let rows = count_inserts(&response.body);
        chunks.push(FetchedChunk {
            path: path.clone(),
            body_len: response.body.len(),
            body: keep_bodies.then_some(response.body),
            rows,
        });
        if up_to_date {
            let elapsed = started.elapsed();
            return Ok(ShapeFetch {
                rows: chunks.iter().map(|c| c.rows).sum(),
                body_bytes: chunks.iter().map(|c| c.body_len as u64).sum(),
                chunks,
                handle,
                offset,
                elapsed,
                first_response: first_response.unwrap_or(elapsed),
            });
        }
        path = format!("/v1/shape?{def}&handle={handle}&offset={offset}");
    }
}

/// Row messages in a response body.
pub fn count_inserts(body: &[u8]) -> u64 {
    memchr::memmem::find_iter(body, INSERT_MARK).count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_insert_messages() {
        let body = br#"[{"key":"k","value":{},"headers":{"operation":"insert","relation":["public","items"]}},{"headers":{"operation":"insert"}},{"headers":{"control":"up-to-date"}}]"#;
        assert_eq!(count_inserts(body), 2);
        assert_eq!(count_inserts(b"[]"), 0);
    }
}
