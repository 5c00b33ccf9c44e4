//! The load scenarios, one module each.

pub mod fanout;
pub mod shape_creation;
