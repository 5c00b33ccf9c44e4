//! HTTP/1.1 server on monoio, thread-per-core.
//!
//! Each core binds its own SO_REUSEPORT listener ([`bind_reuseport`]) and runs [`serve`] with a
//! [`Handler`]. Handler futures are `!Send`: they run on the core that accepted the connection.
//! The server owns framing (`content-length`, `connection`, `date`), keep-alive, pipelining,
//! limits and timeouts ([`Limits`]); handlers see complete [`Request`]s and return [`Response`]s.

mod chunked;
mod connection;
mod encode;
mod file_body;
#[doc(hidden)]
pub mod fuzzing;
mod limits;
mod listener;
mod message;
mod parse;
mod server;

use std::future::Future;
use std::pin::Pin;

pub use file_body::{FileRange, Part};
pub use limits::{Limits, MAX_HEADERS};
pub use listener::{bind_reuseport, bind_reuseport_group, ensure_port_free};
pub use message::{reason_phrase, Body, Method, Request, Response};
pub use server::serve;

/// The boxed, `!Send` future a handler returns.
pub type ResponseFuture = Pin<Box<dyn Future<Output = Response>>>;

/// Application logic behind the server. A handler may wait as long as it likes (long polls);
/// if the client hangs up meanwhile, its future is dropped.
pub trait Handler: 'static {
    fn handle(&self, req: Request) -> ResponseFuture;
}

impl<F> Handler for F
where
    F: Fn(Request) -> ResponseFuture + 'static,
{
    fn handle(&self, req: Request) -> ResponseFuture {
        self(req)
    }
}
