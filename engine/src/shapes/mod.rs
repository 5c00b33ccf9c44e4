//! Shapes: definitions, their logs, and how replicated changes become log entries.

pub mod apply;
pub mod def;
pub mod log;
pub mod shape;
pub mod snapshot;
pub mod subset_query;
