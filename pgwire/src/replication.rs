//! Replication sub-protocol messages inside CopyData.
