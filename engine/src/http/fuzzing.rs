//! Entry points for the `http_head` fuzz target (`fuzz/`), not part of the engine's API. The
//! head parser and the chunked body decoder are crate-private; these thin wrappers expose them
//! with plain types, so nothing else about the server has to become public.

use bytes::BytesMut;

use super::chunked::{ChunkedDecoder, ChunkedError};
use super::parse::{self, Framing};
use super::Request;

/// An accepted request head, as [`parse_head`] saw it.
#[derive(Debug)]
pub struct ParsedHead {
    pub request: Request,
    /// The declared body length (0 without `content-length`); `None` for a chunked body.
    pub content_length: Option<u64>,
    pub keep_alive: bool,
    /// HTTP/1.0.
    pub legacy: bool,
    pub expect_continue: bool,
}

/// The connection's head delimiter search: the end of the head (just past the empty line),
/// scanning from `from`.
pub fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    parse::find_head_end(buf, from)
}

/// The connection's head parser; a refused head comes back as its response status and reason.
pub fn parse_head(bytes: &[u8]) -> Result<ParsedHead, (u16, String)> {
    match parse::parse_head(bytes) {
        Ok(head) => Ok(ParsedHead {
            request: head.request,
            content_length: match head.framing {
                Framing::Length(length) => Some(length),
                Framing::Chunked => None,
            },
            keep_alive: head.keep_alive,
            legacy: head.legacy,
            expect_continue: head.expect_continue,
        }),
        Err(error) => Err((error.status(), error.to_string())),
    }
}

/// The connection's `transfer-encoding: chunked` body decoder.
#[derive(Debug)]
pub struct ChunkedBody(ChunkedDecoder);

impl ChunkedBody {
    pub fn new(max_body: usize) -> Self {
        Self(ChunkedDecoder::new(max_body))
    }

    /// Consumes what it can from the front of `input`; `Ok(true)` once the body is complete.
    /// A refusal is the status the connection answers with (413 too large, 400 malformed).
    pub fn decode(&mut self, input: &mut BytesMut) -> Result<bool, u16> {
        self.0.decode(input).map_err(|error| match error {
            ChunkedError::TooLarge => 413,
            ChunkedError::Malformed => 400,
        })
    }

    /// The decoded body; only after `decode` returned `Ok(true)`.
    pub fn into_body(self) -> BytesMut {
        self.0.into_body()
    }
}
