//! The client's error type.

use pgwire::frame::{FrameError, PgErrorFields};
use pgwire::replication::ReplicationError;

/// Everything that can go wrong talking to Postgres.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The server answered with an ErrorResponse (boxed: the fields are large and errors rare).
    #[error("{0}")]
    Db(Box<PgErrorFields>),
    #[error("I/O error talking to Postgres: {0}")]
    Io(#[from] std::io::Error),
    /// The server sent something that breaks the protocol; the connection is unusable.
    #[error("Postgres protocol violation: {0}")]
    Protocol(String),
    #[error("authentication failed: {0}")]
    Auth(String),
    /// The database is not set up as Ampere needs and Ampere may not change it (manual
    /// publishing): the message names the fix.
    #[error("{0}")]
    Misconfigured(String),
    /// TLS could not be set up: refused by the server while required, a failed handshake, a
    /// certificate that does not verify, an unreadable CA file.
    #[error("TLS: {0}")]
    Tls(String),
    /// The connection string or settings are invalid or ask for something unsupported.
    #[error("invalid connection configuration: {0}")]
    Config(String),
    /// The server closed the connection, or an earlier failure left it unusable.
    #[error("connection to Postgres is closed")]
    Closed,
    /// The server ended a replication stream in an orderly way (CopyDone / CommandComplete):
    /// it is shutting down, or its WAL sender was stopped.
    #[error("Postgres ended the replication stream (the server is shutting down or stopped its WAL sender)")]
    StreamEnded,
    /// A caller-supplied argument cannot be sent (a NUL byte in SQL or a name, for example).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("timed out: {0}")]
    Timeout(&'static str),
    /// The caller's COPY callback failed; the COPY was drained and the connection stays usable.
    #[error("COPY consumer failed: {0}")]
    Callback(Box<dyn std::error::Error + Send + Sync>),
}

impl PgError {
    /// The SQLSTATE code when this is a server error.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Db(fields) => Some(&fields.code),
            _ => None,
        }
    }

    /// The server's error fields when this is a server error.
    pub fn db_fields(&self) -> Option<&PgErrorFields> {
        match self {
            Self::Db(fields) => Some(fields),
            _ => None,
        }
    }

    pub(crate) fn protocol(msg: impl Into<String>) -> Self {
        Self::Protocol(msg.into())
    }
}

impl From<FrameError> for PgError {
    fn from(e: FrameError) -> Self {
        Self::Protocol(e.to_string())
    }
}

impl From<ReplicationError> for PgError {
    fn from(e: ReplicationError) -> Self {
        Self::Protocol(e.to_string())
    }
}
