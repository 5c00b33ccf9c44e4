//! Shapes: definitions, their logs, and how replicated changes become log entries.

pub mod apply;
pub mod def;
pub mod dep_rows;
pub mod dep_view;
pub mod log;
pub mod moves;
pub mod shape;
pub mod snapshot;
pub mod subquery;
pub mod subquery_sql;
pub mod subset_query;
pub mod views_file;
