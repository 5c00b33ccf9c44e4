//! Ampere engine: replication ingest, shape logs and HTTP serving, thread-per-core on monoio.

pub mod http;
pub mod pg;
pub mod runtime;
