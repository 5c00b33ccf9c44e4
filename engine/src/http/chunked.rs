//! Incremental decoder for `transfer-encoding: chunked` request bodies.
//!
//! It consumes bytes from the front of the connection's read buffer as they arrive, so the work
//! is linear in the body size however the client splits its writes. The decoded body and the
//! trailer section are both bounded.

use bytes::{Buf, BytesMut};

/// Longest chunk-size line (with extensions) accepted before giving up.
const MAX_SIZE_LINE: usize = 1024;
/// Largest trailer section accepted; trailers are read and dropped.
const MAX_TRAILERS: usize = 8 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum ChunkedError {
    #[error("chunked body larger than the limit")]
    TooLarge,
    #[error("malformed chunked body")]
    Malformed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Size,
    Data { remaining: u64 },
    DataEnd,
    Trailers { seen: usize },
    Done,
}

#[derive(Debug)]
pub(crate) struct ChunkedDecoder {
    state: State,
    body: BytesMut,
    max_body: usize,
}

impl ChunkedDecoder {
    pub(crate) fn new(max_body: usize) -> Self {
        Self {
            state: State::Size,
            body: BytesMut::new(),
            max_body,
        }
    }

    /// Consumes what it can from `input`; `Ok(true)` once the whole body has been read.
    pub(crate) fn decode(&mut self, input: &mut BytesMut) -> Result<bool, ChunkedError> {
        loop {
            self.state = match self.state {
                State::Size => match self.size_line(input)? {
                    Some(0) => State::Trailers { seen: 0 },
                    Some(size) => State::Data { remaining: size },
                    None => return Ok(false),
                },
                State::Data { remaining } => {
                    let available = u64::try_from(input.len()).unwrap_or(u64::MAX);
                    // Bounded by `remaining`, which the size check kept within max_body.
                    let take = usize::try_from(remaining.min(available))
                        .expect("chunk data fits in the buffer it came from");
                    self.body.extend_from_slice(&input[..take]);
                    input.advance(take);
                    match remaining - take as u64 {
                        0 => State::DataEnd,
                        left => {
                            self.state = State::Data { remaining: left };
                            return Ok(false);
                        }
                    }
                }
                State::DataEnd => match input.get(..2) {
                    Some(b"\r\n") => {
                        input.advance(2);
                        State::Size
                    }
                    Some(_) => return Err(ChunkedError::Malformed),
                    None => return Ok(false),
                },
                State::Trailers { seen } => match trailer_line(input, seen)? {
                    Some(0) => State::Done,
                    Some(length) => State::Trailers {
                        seen: seen + length,
                    },
                    None => return Ok(false),
                },
                State::Done => return Ok(true),
            };
        }
    }

    /// The decoded body; call after `decode` returned `Ok(true)`.
    pub(crate) fn into_body(self) -> BytesMut {
        assert_eq!(self.state, State::Done, "body taken before the last chunk");
        self.body
    }

    /// Parses one chunk-size line; `None` when more input is needed.
    fn size_line(&mut self, input: &mut BytesMut) -> Result<Option<u64>, ChunkedError> {
        match httparse::parse_chunk_size(input) {
            // The line limit holds for a complete line too, or whether a long line is refused
            // would depend on how its bytes arrive (found by the `http_head` fuzz target).
            Ok(httparse::Status::Complete((consumed, _))) if consumed > MAX_SIZE_LINE => {
                Err(ChunkedError::Malformed)
            }
            Ok(httparse::Status::Complete((consumed, size))) => {
                input.advance(consumed);
                let total = (self.body.len() as u64).checked_add(size);
                if total.is_none_or(|total| total > self.max_body as u64) {
                    return Err(ChunkedError::TooLarge);
                }
                Ok(Some(size))
            }
            Ok(httparse::Status::Partial) if input.len() > MAX_SIZE_LINE => {
                Err(ChunkedError::Malformed)
            }
            Ok(httparse::Status::Partial) => Ok(None),
            Err(_) => Err(ChunkedError::Malformed),
        }
    }
}

/// Consumes one trailer line; `Some(0)` for the empty line that ends the body.
fn trailer_line(input: &mut BytesMut, seen: usize) -> Result<Option<usize>, ChunkedError> {
    let Some(newline) = memchr::memchr(b'\n', input) else {
        if seen + input.len() > MAX_TRAILERS {
            return Err(ChunkedError::Malformed);
        }
        return Ok(None);
    };
    let length = newline + 1;
    let empty = input[..newline].iter().all(|&byte| byte == b'\r') && newline <= 1;
    input.advance(length);
    if empty {
        return Ok(Some(0));
    }
    if seen + length > MAX_TRAILERS {
        return Err(ChunkedError::Malformed);
    }
    Ok(Some(length))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `wire` to a decoder in pieces of `step` bytes, as a slow client would send it.
    fn decode_in_steps(wire: &[u8], step: usize, max_body: usize) -> Result<Vec<u8>, ChunkedError> {
        let mut decoder = ChunkedDecoder::new(max_body);
        let mut input = BytesMut::new();
        for piece in wire.chunks(step) {
            input.extend_from_slice(piece);
            if decoder.decode(&mut input)? {
                assert!(input.is_empty(), "test bodies have no trailing bytes");
                return Ok(decoder.into_body().to_vec());
            }
        }
        panic!("body incomplete");
    }

    #[test]
    fn decodes_whatever_the_split() {
        let wire = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nx-trailer: 1\r\n\r\n";
        for step in 1..wire.len() {
            assert_eq!(
                decode_in_steps(wire, step, 100).unwrap(),
                b"hello, world",
                "{step}"
            );
        }
    }

    #[test]
    fn leaves_the_next_request_in_the_buffer() {
        let mut decoder = ChunkedDecoder::new(100);
        let mut input = BytesMut::from(&b"3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n"[..]);
        assert!(decoder.decode(&mut input).unwrap());
        assert_eq!(&input[..], b"GET / HTTP/1.1\r\n");
        assert_eq!(&decoder.into_body()[..], b"abc");
    }

    #[test]
    fn enforces_the_body_limit() {
        let wire = b"6\r\nhello!\r\n0\r\n\r\n";
        assert_eq!(decode_in_steps(wire, 4, 5), Err(ChunkedError::TooLarge));
        let huge = b"ffffffffffffffff\r\n";
        assert_eq!(decode_in_steps(huge, 18, 5), Err(ChunkedError::TooLarge));
    }

    #[test]
    fn a_long_size_line_is_refused_however_it_arrives() {
        // A line over the limit ending in a bare LF (complete at once, partial in pieces), and
        // a line of exactly the limit with its CRLF.
        let long = format!("5;x={}\nhello\r\n0\r\n\r\n", "a".repeat(MAX_SIZE_LINE));
        let short = format!(
            "5;x={}\r\nhello\r\n0\r\n\r\n",
            "a".repeat(MAX_SIZE_LINE - 6)
        );
        for step in [1, 7, 1000, long.len()] {
            assert_eq!(
                decode_in_steps(long.as_bytes(), step, 10),
                Err(ChunkedError::Malformed),
                "{step}"
            );
            assert_eq!(
                decode_in_steps(short.as_bytes(), step, 10).unwrap(),
                b"hello",
                "{step}"
            );
        }
    }

    #[test]
    fn rejects_malformed_chunks() {
        assert_eq!(
            decode_in_steps(b"zz\r\n", 4, 10),
            Err(ChunkedError::Malformed)
        );
        assert_eq!(
            decode_in_steps(b"1\r\nab\r\n", 7, 10),
            Err(ChunkedError::Malformed)
        );
    }
}
