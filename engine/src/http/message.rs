//! Request and response values exchanged between the server and a [`super::Handler`].

use std::borrow::Cow;

use bytes::Bytes;

/// Request method; the ones the Shape API uses get their own variant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Delete,
    Options,
    /// Any other token, as sent (methods are case-sensitive).
    Other(String),
}

impl Method {
    pub(crate) fn from_token(token: &str) -> Self {
        match token {
            "GET" => Self::Get,
            "HEAD" => Self::Head,
            "POST" => Self::Post,
            "DELETE" => Self::Delete,
            "OPTIONS" => Self::Options,
            other => Self::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Get => "GET",
            Self::Head => "HEAD",
            Self::Post => "POST",
            Self::Delete => "DELETE",
            Self::Options => "OPTIONS",
            Self::Other(token) => token,
        }
    }
}

/// A range of bytes inside a [`Request`]'s head text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    start: u32,
    end: u32,
}

impl Span {
    /// The span of `part`, a slice of `whole`.
    pub(crate) fn within(whole: &str, part: &str) -> Self {
        let start = (part.as_ptr() as usize).wrapping_sub(whole.as_ptr() as usize);
        assert!(
            start <= whole.len() && part.len() <= whole.len() - start,
            "part lies outside the head"
        );
        // Heads are bounded far below 4 GiB (`Limits::max_head`).
        Self {
            start: start as u32,
            end: (start + part.len()) as u32,
        }
    }
}

/// One parsed request with its complete body.
///
/// The head is kept as one string (the request as received, invalid UTF-8 replaced) and the
/// path, query and headers are ranges of it: parsing a request costs two allocations (the text
/// and the header index) instead of one per header name and value.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: Method,
    head: String,
    /// `None` stands for `/` (an absolute-form target with an empty path).
    path: Option<Span>,
    query: Span,
    /// Names as sent (compared without regard to case), in arrival order, repeats kept.
    headers: Vec<(Span, Span)>,
    pub body: Bytes,
}

impl Request {
    /// A request from its head text and the ranges of it the parser found.
    pub(crate) fn from_head(
        method: Method,
        head: String,
        path: Option<Span>,
        query: Span,
        headers: Vec<(Span, Span)>,
    ) -> Self {
        Self {
            method,
            head,
            path,
            query,
            headers,
            body: Bytes::new(),
        }
    }

    /// A request built from its parts (tests, and requests a server makes up).
    pub fn new(method: Method, path: &str, query: &str, headers: &[(&str, &str)]) -> Self {
        let mut head = String::with_capacity(path.len() + query.len() + 64);
        let span = |head: &mut String, text: &str| {
            let start = head.len() as u32;
            head.push_str(text);
            Span {
                start,
                end: head.len() as u32,
            }
        };
        let path_span = span(&mut head, path);
        let query_span = span(&mut head, query);
        let header_spans = headers
            .iter()
            .map(|(name, value)| (span(&mut head, name), span(&mut head, value)))
            .collect();
        Self::from_head(method, head, Some(path_span), query_span, header_spans)
    }

    fn text(&self, span: Span) -> &str {
        &self.head[span.start as usize..span.end as usize]
    }

    /// The raw (still percent-encoded) path, without the query.
    pub fn path(&self) -> &str {
        self.path.map_or("/", |span| self.text(span))
    }

    /// The raw query, without the leading `?`; empty when absent.
    pub fn query(&self) -> &str {
        self.text(self.query)
    }

    /// Every header as (name as sent, value), in arrival order.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers
            .iter()
            .map(|&(name, value)| (self.text(name), self.text(value)))
    }

    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers_all(name).next()
    }

    /// Every value of header `name` (case-insensitive), in arrival order.
    pub fn headers_all<'a, 'n>(
        &'a self,
        name: &'n str,
    ) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
        self.headers()
            .filter(move |(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    }
}

/// A response body. `Parts` is written with vectored writes, never concatenated, so pre-encoded
/// log entries are served without copying.
#[derive(Clone, Debug, Default)]
pub enum Body {
    #[default]
    Empty,
    Full(Bytes),
    Parts(Vec<Bytes>),
    /// Memory and file ranges: file parts are sent from the page cache (`sendfile`).
    Mixed(Vec<super::Part>),
    /// As `Mixed`, shared by many responses (a closed chunk answered again and again).
    Shared(std::sync::Arc<[super::Part]>),
    /// A body of unknown length, written as it arrives (chunked transfer coding, or until close
    /// for HTTP/1.0 clients). Each received item is written as one chunk; the body ends when
    /// every sender is gone. The channel is bounded by its producer, so a slow client stalls
    /// the producer instead of growing memory.
    Stream(flume::Receiver<Vec<Bytes>>),
}

impl Body {
    /// Body length in bytes (the `content-length`); `None` for a stream.
    pub fn len(&self) -> Option<u64> {
        match self {
            Self::Empty => Some(0),
            Self::Full(bytes) => Some(bytes.len() as u64),
            Self::Parts(parts) => Some(parts.iter().map(|part| part.len() as u64).sum()),
            Self::Mixed(parts) => Some(parts.iter().map(super::Part::len).sum()),
            Self::Shared(parts) => Some(parts.iter().map(super::Part::len).sum()),
            Self::Stream(_) => None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }
}

/// Header slots reserved per response.
const RESPONSE_HEADERS: usize = 20;

/// A response. The server itself writes `content-length`, `connection` and `date`; the same
/// names set by a handler are ignored.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    /// Values are `Cow` so the many fixed ones (CORS, content types) cost no allocation.
    pub headers: Vec<(Cow<'static, str>, Cow<'static, str>)>,
    /// Constant header lines (`name: value\r\n` each) written before `headers`, such as the
    /// CORS lines every response of a route carries. Trusted, as `head_block`. (A reference to
    /// a `String` is one pointer: `Response` stays small enough to be moved around cheaply.)
    pub prelude: Option<&'static String>,
    /// Header lines rendered once and shared by many responses (`name: value\r\n` each),
    /// written after `headers`. Trusted: only the server renders them. A response with a block
    /// carries its own `cache-control` in it.
    pub head_block: Option<Bytes>,
    /// Written as `x-request-id` (16 hex digits) by the encoder, which formats it in place.
    pub request_id: Option<std::num::NonZeroU64>,
    /// The same request may be answered with this response again, by any core, for the life
    /// of the shape's handle (a closed chunk; see `app::closed_chunks`).
    pub reusable: bool,
    pub body: Body,
}

impl Response {
    pub fn new(status: u16) -> Self {
        Self {
            status,
            // A shape response carries about 16 headers: room for them up front.
            headers: Vec::with_capacity(RESPONSE_HEADERS),
            prelude: None,
            head_block: None,
            request_id: None,
            reusable: false,
            body: Body::Empty,
        }
    }

    /// A response whose head is a rendered block (`head_block`): no room reserved for
    /// separate headers.
    pub fn new_bare(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            prelude: None,
            head_block: None,
            request_id: None,
            reusable: false,
            body: Body::Empty,
        }
    }

    /// A response with a JSON body (`content-type: application/json`).
    pub fn json(status: u16, body: impl Into<Bytes>) -> Self {
        Self {
            status,
            headers: {
                let mut h = Vec::with_capacity(RESPONSE_HEADERS);
                h.push((
                    Cow::Borrowed("content-type"),
                    Cow::Borrowed("application/json"),
                ));
                h
            },
            prelude: None,
            head_block: None,
            request_id: None,
            reusable: false,
            body: Body::Full(body.into()),
        }
    }

    pub fn with_header(
        mut self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<Cow<'static, str>>,
    ) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn with_body(mut self, body: Body) -> Self {
        self.body = body;
        self
    }
}

/// The reason phrase for `status`; every code the server and the Shape API use is named.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// Statuses whose responses never carry a body or a `content-length` (RFC 9110 §8.6).
pub(crate) fn status_forbids_body(status: u16) -> bool {
    (100..200).contains(&status) || status == 204 || status == 304
}
