//! A simulated shape client that follows the same request sequence as `@electric-sql/client`:
//! initial sync from `offset=-1`, follow `electric-offset`/`electric-handle` until
//! `electric-up-to-date`, then `live=true&cursor=…` long-polls; a 409 restarts from `offset=-1`
//! with the handle the server sent.

use std::time::Duration;

use crate::body::{parse_changes, BodyError, Change};
use crate::http::{HttpConn, HttpError, Response};
use crate::target::Target;

/// Largest response body a client accepts (an initial sync of a big table is one response per
/// chunk, and Electric chunks at 10 MB by default).
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// Longest `retry-after` honoured, so a server cannot park a client beyond the run's bound.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(5);
/// Longest handle/offset/cursor value accepted from headers.
const MAX_TOKEN_LEN: usize = 1024;

/// What can go wrong following a shape.
#[derive(Debug, thiserror::Error)]
pub enum ShapeError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("response lacks a valid {0} header")]
    MissingHeader(&'static str),
    #[error(transparent)]
    Body(#[from] BodyError),
}

/// What one request brought.
#[derive(Debug, Default)]
pub struct Batch {
    pub changes: Vec<Change>,
    /// The shape was reset (409); rows seen so far will be delivered again.
    pub reset: bool,
}

/// One client following one shape over its own keep-alive connection.
pub struct ShapeClient {
    target: Target,
    conn: Option<HttpConn>,
    table: String,
    where_clause: Option<String>,
    handle: Option<String>,
    offset: String,
    cursor: Option<String>,
    up_to_date: bool,
    /// 409s seen so far.
    pub resets: u64,
    /// Response body bytes received so far (headers not counted).
    pub body_bytes: u64,
    /// Requests answered so far.
    pub requests: u64,
}

impl ShapeClient {
    pub fn new(target: Target, table: &str, where_clause: Option<&str>) -> Self {
        Self {
            target,
            conn: None,
            table: table.to_owned(),
            where_clause: where_clause.map(str::to_owned),
            handle: None,
            offset: "-1".to_owned(),
            cursor: None,
            up_to_date: false,
            resets: 0,
            body_bytes: 0,
            requests: 0,
        }
    }

    /// Hands over this client's connection, so a successor can reuse it (creating many shapes
    /// one after another over a few connections).
    pub fn take_conn(&mut self) -> Option<HttpConn> {
        self.conn.take()
    }

    /// Starts this client on an already open connection.
    pub fn with_conn(mut self, conn: Option<HttpConn>) -> Self {
        self.conn = conn;
        self
    }

    /// True once the client has caught up and is long-polling.
    pub fn is_up_to_date(&self) -> bool {
        self.up_to_date
    }

    fn url(&self) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("table", &self.table);
        if let Some(where_clause) = &self.where_clause {
            query.append_pair("where", where_clause);
        }
        query.append_pair("offset", &self.offset);
        if let Some(handle) = &self.handle {
            query.append_pair("handle", handle);
        }
        if self.up_to_date {
            query.append_pair("live", "true");
            if let Some(cursor) = &self.cursor {
                query.append_pair("cursor", cursor);
            }
        }
        format!("/v1/shape?{}", query.finish())
    }

    /// Issues the next request (initial, catch-up or live) and applies its headers.
    pub async fn poll(&mut self) -> Result<Batch, ShapeError> {
        let url = self.url();
        let response = self.get(&url).await?;
        match response.status {
            200 => self.on_ok(&response),
            // Older servers answer a long-poll timeout with 204; nothing changes.
            204 | 304 => Ok(Batch::default()),
            409 => {
                let handle = token(&response, "electric-handle")
                    .ok_or(ShapeError::MissingHeader("electric-handle"))?;
                self.handle = Some(handle);
                self.offset = "-1".to_owned();
                self.cursor = None;
                self.up_to_date = false;
                self.resets += 1;
                Ok(Batch {
                    changes: Vec::new(),
                    reset: true,
                })
            }
            429 | 503 => {
                let wait = response
                    .header("retry-after")
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map_or(Duration::from_secs(1), Duration::from_secs)
                    .min(MAX_RETRY_AFTER);
                monoio::time::sleep(wait).await;
                Ok(Batch::default())
            }
            status => Err(ShapeError::Status {
                status,
                body: String::from_utf8_lossy(&response.body[..response.body.len().min(512)])
                    .into_owned(),
            }),
        }
    }

    async fn get(&mut self, url: &str) -> Result<Response, ShapeError> {
        let conn = match self.conn.take() {
            Some(conn) if conn.is_reusable() => conn,
            _ => {
                HttpConn::connect(
                    self.target.addr,
                    &self.target.host,
                    self.target.source,
                    MAX_BODY_BYTES,
                )
                .await?
            }
        };
        let mut conn = conn;
        let response = conn.get(url).await?;
        self.conn = Some(conn);
        self.requests += 1;
        self.body_bytes += response.body.len() as u64;
        Ok(response)
    }

    fn on_ok(&mut self, response: &Response) -> Result<Batch, ShapeError> {
        let offset = token(response, "electric-offset")
            .ok_or(ShapeError::MissingHeader("electric-offset"))?;
        if let Some(handle) = token(response, "electric-handle") {
            self.handle = Some(handle);
        }
        if self.handle.is_none() {
            return Err(ShapeError::MissingHeader("electric-handle"));
        }
        if let Some(cursor) = token(response, "electric-cursor") {
            self.cursor = Some(cursor);
        }
        self.offset = offset;
        if response.header("electric-up-to-date").is_some() {
            self.up_to_date = true;
        }
        let changes = parse_changes(&response.body)?;
        Ok(Batch {
            changes,
            reset: false,
        })
    }
}

/// A header used as a request token: present, non-empty, bounded.
fn token(response: &Response, name: &str) -> Option<String> {
    response
        .header(name)
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= MAX_TOKEN_LEN)
        .map(str::to_owned)
}
