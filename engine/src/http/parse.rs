//! Request-head parsing on top of `httparse`: framing, persistence and the typed errors that map
//! to error responses. Pure functions over byte slices; the connection owns the buffer.

use super::limits::MAX_HEADERS;
use super::message::{Method, Request, Span};

/// How the request body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// `content-length` (0 when there is neither length nor transfer coding).
    Length(u64),
    Chunked,
}

/// A parsed head: the request (body still empty) and what the connection needs to know.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) request: Request,
    pub(crate) framing: Framing,
    pub(crate) keep_alive: bool,
    /// HTTP/1.0: a kept-alive connection must be confirmed with `connection: keep-alive`.
    pub(crate) legacy: bool,
    pub(crate) expect_continue: bool,
}

/// Why a request head was refused; each maps to one response status.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum HeadError {
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    #[error("request head too large")]
    TooLarge,
    #[error("unsupported transfer coding")]
    UnsupportedCoding,
}

impl HeadError {
    pub(crate) fn status(&self) -> u16 {
        match self {
            Self::Malformed(_) => 400,
            Self::TooLarge => 431,
            Self::UnsupportedCoding => 501,
        }
    }
}

/// Finds the end of the head (just past the empty line) scanning from `from`. Accepts bare `\n`
/// line ends as `httparse` does. `from` lets a caller skip bytes it has already scanned.
pub(crate) fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut start = from;
    while let Some(found) = memchr::memchr(b'\n', buf.get(start..)?) {
        let newline = start + found;
        match buf.get(newline + 1..newline + 3) {
            Some([b'\n', _]) => return Some(newline + 2),
            Some([b'\r', b'\n']) => return Some(newline + 3),
            Some(_) => {}
            None if buf.get(newline + 1) == Some(&b'\n') => return Some(newline + 2),
            None => return None,
        }
        start = newline + 1;
    }
    None
}

/// Parses the complete head `bytes` (as delimited by [`find_head_end`]).
pub(crate) fn parse_head(bytes: &[u8]) -> Result<Head, HeadError> {
    // The request keeps the head as text and refers to its parts by range; invalid UTF-8 (in
    // header values) is replaced first, so every range lies on character boundaries.
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    };
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut slots);
    match parsed.parse(text.as_bytes()) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(HeadError::Malformed("incomplete head")),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(_) => return Err(HeadError::Malformed("invalid request head")),
    }
    let method = Method::from_token(parsed.method.ok_or(HeadError::Malformed("no method"))?);
    let target = parsed.path.ok_or(HeadError::Malformed("no target"))?;
    let (path, query) = split_target(target)?;
    let path = path.map(|path| Span::within(&text, path));
    let query = Span::within(&text, query);
    let version = parsed.version.ok_or(HeadError::Malformed("no version"))?;
    let mut headers = Vec::with_capacity(parsed.headers.len());
    for header in parsed.headers.iter() {
        // Whole characters: the text is UTF-8 and httparse cuts only at ASCII bytes.
        let value = std::str::from_utf8(header.value)
            .map_err(|_| HeadError::Malformed("invalid header value"))?;
        headers.push((Span::within(&text, header.name), Span::within(&text, value)));
    }
    let request = Request::from_head(method, text.into_owned(), path, query, headers);
    let framing = framing(&request, version)?;
    let keep_alive = keep_alive(&request, version);
    let expect_continue = request
        .header("expect")
        .is_some_and(|value| value.eq_ignore_ascii_case("100-continue"));
    Ok(Head {
        request,
        framing,
        keep_alive,
        legacy: version == 0,
        expect_continue,
    })
}

/// Splits a request target into raw path and query. Absolute-form targets
/// (`http://host/path?q`) are reduced to their path (`None`: empty, which means `/`); `*`
/// (for OPTIONS) is kept as the path.
fn split_target(target: &str) -> Result<(Option<&str>, &str), HeadError> {
    let origin = if target.starts_with('/') || target == "*" {
        target
    } else if let Some(rest) = target.split_once("://").map(|(_, rest)| rest) {
        rest.find(['/', '?'])
            .map_or(&rest[rest.len()..], |at| &rest[at..])
    } else {
        return Err(HeadError::Malformed("invalid request target"));
    };
    let (path, query) = origin
        .split_once('?')
        .unwrap_or((origin, &origin[origin.len()..]));
    Ok(((!path.is_empty()).then_some(path), query))
}

/// Determines body framing, refusing the ambiguous combinations request smuggling relies on.
fn framing(request: &Request, version: u8) -> Result<Framing, HeadError> {
    let mut length: Option<u64> = None;
    for value in request.headers_all("content-length") {
        // A list such as "5, 5" is legal when all members agree (RFC 9110 §8.6).
        for member in value.split(',') {
            let parsed = parse_length(member.trim())?;
            if length.is_some_and(|seen| seen != parsed) {
                return Err(HeadError::Malformed("conflicting content-length"));
            }
            length = Some(parsed);
        }
    }
    let mut codings = request
        .headers_all("transfer-encoding")
        .flat_map(|value| value.split(','));
    let Some(first) = codings.next() else {
        return Ok(Framing::Length(length.unwrap_or(0)));
    };
    if length.is_some() {
        return Err(HeadError::Malformed(
            "both content-length and transfer-encoding",
        ));
    }
    if version == 0 {
        return Err(HeadError::Malformed(
            "transfer-encoding in an HTTP/1.0 request",
        ));
    }
    // Only a lone "chunked" is supported; compressed request bodies are not.
    if first.trim().eq_ignore_ascii_case("chunked") && codings.next().is_none() {
        Ok(Framing::Chunked)
    } else {
        Err(HeadError::UnsupportedCoding)
    }
}

fn parse_length(text: &str) -> Result<u64, HeadError> {
    const INVALID: HeadError = HeadError::Malformed("invalid content-length");
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(INVALID);
    }
    text.parse::<u64>().map_err(|_| INVALID)
}

/// HTTP/1.1 persists unless `connection: close`; HTTP/1.0 only with `connection: keep-alive`.
fn keep_alive(request: &Request, version: u8) -> bool {
    let has_token = |token: &str| {
        request
            .headers_all("connection")
            .flat_map(|value| value.split(','))
            .any(|member| member.trim().eq_ignore_ascii_case(token))
    };
    if version == 0 {
        has_token("keep-alive")
    } else {
        !has_token("close")
    }
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
