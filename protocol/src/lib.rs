//! The Electric Shape HTTP API as pure, I/O-free logic.
//!
//! Everything here follows `/work/shared/reference/electric-shape-protocol.md` (upstream
//! Electric 1.7.12); literal values — header values, error strings, offsets, keys — match
//! upstream byte for byte. Modules:
//!
//! - [`offset`]: `LogOffset` and the `offset` parameter;
//! - [`query_string`], [`request`]: decoding and validating shape requests;
//! - [`ident`]: Postgres identifier parsing and quoting;
//! - [`validation`], [`errors`]: 400 bodies and every other error response;
//! - [`headers`], [`cursor`], [`handle`]: response headers and their values;
//! - [`schema`]: the `electric-schema` header and the column query that feeds it;
//! - [`json`], [`key`], [`message`]: encoding of log entries;
//! - `where_clause`: the WHERE-clause front end.
//!
//! Assumption: all text is UTF-8 (the database uses UTF-8, as Electric requires).

pub mod cursor;
mod elixir_int;
pub mod errors;
pub mod handle;
pub mod headers;
pub mod ident;
pub mod json;
pub mod key;
pub mod message;
pub mod offset;
pub mod query_string;
pub mod request;
mod request_cast;
pub mod routing;
pub mod schema;
pub mod subquery;
pub mod subset;
pub mod validation;
pub mod where_clause;
