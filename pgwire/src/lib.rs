//! Sans-IO Postgres wire protocol pieces for Ampere: backend message framing, the replication
//! (CopyBoth) sub-protocol messages, and a zero-copy `pgoutput` decoder. No I/O happens here.

pub mod frame;
pub mod pgoutput;
pub mod replication;
pub mod types;
