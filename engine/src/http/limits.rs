//! Bounds the HTTP server enforces on every connection.

use std::time::Duration;

/// Per-connection and per-core limits. `Default` gives production values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body accepted; a larger `content-length` (or a chunked body growing past
    /// it) is answered `413` and the connection closed.
    pub max_body: usize,
    /// Largest request head (request line and headers); past it: `431` and close.
    pub max_head: usize,
    /// How long a keep-alive connection may wait for the first byte of its next request.
    pub idle_timeout: Duration,
    /// How long a client may take, from its first byte, to finish sending a request head.
    pub header_timeout: Duration,
    /// How long a request body may stall between two reads.
    pub body_timeout: Duration,
    /// How long a response write may stall (a client that stops reading).
    pub write_timeout: Duration,
    /// Open connections per core. A connection accepted past it is answered with a fixed `503`
    /// (`retry-after: 1`, `connection: close`) without reading its request, then closed.
    pub max_connections_per_core: usize,
    /// Initial read buffer per connection. It grows only while a request needs more and shrinks
    /// back afterwards, keeping idle (long-poll) connections small.
    pub read_buffer: usize,
}

/// Maximum header count per request; more is answered `431`.
pub const MAX_HEADERS: usize = 64;

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body: 8 * 1024 * 1024,
            max_head: 16 * 1024,
            idle_timeout: Duration::from_secs(60),
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(60),
            max_connections_per_core: 20_000,
            read_buffer: 4 * 1024,
        }
    }
}

impl Limits {
    /// Asserts the relationships the connection code relies on; a violation is a configuration
    /// bug, not an operating error.
    pub(crate) fn assert_valid(&self) {
        assert!(
            self.read_buffer >= 256,
            "read buffer too small for a request line"
        );
        assert!(
            self.max_head >= 256,
            "max_head too small for a request line"
        );
        assert!(self.max_connections_per_core > 0);
    }
}
