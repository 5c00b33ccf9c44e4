//! Shape-serving benchmarks against the real `ampere` binary (a child process) and a throwaway
//! Postgres. `docs/benchmarks/serving.md` has the commands and the figures.
//!
//! - [`catchup`]: catch-up chunk serving vs nginx serving the same bytes, driven by `wrk`.
//! - [`catchup_callgrind`]: instructions per catch-up response, by component (callgrind).
//! - [`longpoll`]: server memory per held live long-poll, and a write completing all of them.
//! - [`initial_sync`]: time and peak memory of a large shape's first sync.
//! - [`subqueries`]: many subquery shapes: creation, move latency, CPU per membership change.
//! - [`cdn`]: fan-out to tens of thousands of clients through nginx (request collapsing) vs
//!   directly, with origin requests per write (`docs/benchmarks/cdn.md`).

pub mod catchup;
pub mod catchup_callgrind;
pub mod cdn;
pub mod held_polls;
pub mod http;
pub mod initial_sync;
pub mod items;
pub mod longpoll;
pub mod nginx;
pub mod scratch;
pub mod server;
pub mod shape_fetch;
pub mod subqueries;
pub mod writer;
pub mod wrk;
