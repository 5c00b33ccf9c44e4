//! Postgres client on monoio: queries, COPY OUT and logical replication.
//!
//! Written against `monoio::net::TcpStream` and the rent-style I/O traits only, so it runs on
//! both the io_uring and the epoll (legacy) driver, in plaintext or TLS (`tls`, rustls driven by
//! hand). No Unix-domain sockets yet.
//! Message framing and parsing live in the sans-IO `pgwire` crate; this module does the I/O.

mod auth;
mod config;
mod connection;
mod error;
mod io;
pub(crate) use io::yield_now;
mod query;
mod replication;
mod stream;
pub mod tls;
mod transport;

pub use config::{ChannelBindingMode, ConnectConfig, TcpLiveness, MAX_STARTUP_MESSAGE_LEN};
pub use connection::{BackendKey, Connection};
pub use error::PgError;
pub use pgwire::frame::PgErrorFields;
pub use query::{SimpleQueryResult, SimpleRow};
pub use replication::{
    quote_replication_identifier, quote_replication_literal, start_replication_command, SlotInfo,
    SystemInfo,
};
pub use stream::{now_micros_since_2000, ReplicationStream, StreamSettings, XLogData};
