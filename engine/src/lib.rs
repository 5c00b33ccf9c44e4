//! Ampere engine: replication ingest, shape logs and HTTP serving, thread-per-core on monoio.
//! `ARCHITECTURE.md` at the repository root explains the data flow.

pub mod app;
pub mod catalog;
pub mod config;
pub mod embedded_pg;
pub mod event;
pub mod fast_map;
pub mod fault;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod panic_policy;
pub mod pg;
pub mod runtime;
pub mod server;
pub mod shapes;
pub mod signals;
pub mod storage;
