//! The load scenarios.

pub mod capacity;
pub mod fanout;
pub mod fanout_report;
pub mod large_shape;
pub mod shape_creation;
pub mod shapes;
