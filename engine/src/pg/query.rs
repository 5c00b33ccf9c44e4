//! Results of simple-protocol queries: text rows with named columns.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use pgwire::frame::{DataRow, RowDescription};

use super::error::PgError;

/// The outcome of one statement of a simple query.
#[derive(Clone, Debug)]
pub struct SimpleQueryResult {
    /// Column names; empty for statements that return no rows.
    pub columns: Arc<[String]>,
    pub rows: Vec<SimpleRow>,
    /// The CommandComplete tag, such as `SELECT 2` or `CREATE TABLE`.
    pub tag: String,
}

impl SimpleQueryResult {
    pub(crate) fn new(columns: Arc<[String]>) -> Self {
        Self {
            columns,
            rows: Vec::new(),
            tag: String::new(),
        }
    }
}

/// Column names of a RowDescription, shared by every row of the result.
pub(crate) fn column_names(rd: &RowDescription) -> Arc<[String]> {
    rd.fields.iter().map(|f| f.name.clone()).collect()
}

/// One row in text format. Values borrow from the received message; nothing is copied.
#[derive(Clone, Debug)]
pub struct SimpleRow {
    columns: Arc<[String]>,
    body: Bytes,
    ranges: Vec<Option<Range<usize>>>,
}

impl SimpleRow {
    /// Checks the row against its description and that every value is UTF-8 text.
    pub(crate) fn new(columns: Arc<[String]>, row: DataRow) -> Result<Self, PgError> {
        if row.len() != columns.len() {
            return Err(PgError::protocol(format!(
                "DataRow has {} columns, RowDescription {}",
                row.len(),
                columns.len()
            )));
        }
        let ranges: Vec<_> = row.ranges().collect();
        for range in ranges.iter().flatten() {
            if std::str::from_utf8(&row.body()[range.clone()]).is_err() {
                return Err(PgError::protocol("column value is not valid UTF-8"));
            }
        }
        Ok(Self {
            columns,
            body: row.body().clone(),
            ranges,
        })
    }

    /// The text of column `i`, or `None` if it is NULL or out of range.
    pub fn get(&self, i: usize) -> Option<&str> {
        let range = self.ranges.get(i)?.clone()?;
        // Validated as UTF-8 in `new`, so this cannot fail.
        std::str::from_utf8(&self.body[range]).ok()
    }

    /// The text of the first column called `name`, or `None` if it is NULL or absent.
    pub fn get_by_name(&self, name: &str) -> Option<&str> {
        let i = self.columns.iter().position(|c| c == name)?;
        self.get(i)
    }

    /// Whether column `i` exists and is NULL.
    pub fn is_null(&self, i: usize) -> bool {
        matches!(self.ranges.get(i), Some(None))
    }

    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub fn columns(&self) -> &[String] {
        &self.columns
    }
}
