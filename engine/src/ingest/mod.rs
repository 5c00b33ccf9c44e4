//! Replication ingest: the core that owns the replication connection decodes pgoutput into
//! committed transactions and hands each one to every shape-owning core.

pub mod assemble;
pub mod setup;
pub mod txn;
