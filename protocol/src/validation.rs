//! 400 "Invalid request" errors: `{"message":"Invalid request","errors":{"<field>":["…"]}}`.
//!
//! Upstream collects Ecto changeset errors per field and JSON-encodes them as a map; Elixir's
//! small maps iterate in key order, so fields appear sorted by name. Several fields can fail at
//! once only during the first (cast) phase; see `request.rs`.

use std::collections::BTreeMap;

use crate::json::push_json_str;

/// Field → messages, rendered in field-name order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationErrors {
    fields: BTreeMap<String, Vec<String>>,
}

impl ValidationErrors {
    pub fn new() -> ValidationErrors {
        ValidationErrors::default()
    }

    /// A single error on a single field.
    pub fn single(field: &str, message: impl Into<String>) -> ValidationErrors {
        let mut errors = ValidationErrors::new();
        errors.add(field, message);
        errors
    }

    /// Adds a message to a field, after any earlier ones for that field.
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.fields
            .entry(field.to_owned())
            .or_default()
            .push(message.into());
    }

    pub fn has(&self, field: &str) -> bool {
        self.fields.contains_key(field)
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    pub fn get(&self, field: &str) -> Option<&[String]> {
        self.fields.get(field).map(Vec::as_slice)
    }

    pub fn fields(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.fields
            .iter()
            .map(|(field, messages)| (field.as_str(), messages.as_slice()))
    }

    /// Always 400.
    pub const fn status(&self) -> u16 {
        400
    }

    /// The JSON body, `message` first as in the protocol reference.
    pub fn body(&self) -> String {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(br#"{"message":"Invalid request","errors":"#);
        push_field_errors(&mut out, &self.fields);
        out.push(b'}');
        String::from_utf8(out).expect("JSON built from str is UTF-8")
    }
}

impl std::fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.body())
    }
}

impl std::error::Error for ValidationErrors {}

/// `errors.table`: the relation does not exist (names shown as Elixir `inspect` does).
pub fn table_not_found(schema: &str, name: &str) -> ValidationErrors {
    ValidationErrors::single(
        "table",
        format!(
            "Table {}.{} does not exist. If the table name contains capitals or special \
             characters you must quote it.",
            elixir_inspect_string(schema),
            elixir_inspect_string(name)
        ),
    )
}

/// `errors.columns`: requested columns that the table (or `queryable_columns`) lacks.
pub fn columns_not_found(columns: &[String]) -> ValidationErrors {
    ValidationErrors::single(
        "columns",
        format!(
            "The following columns are not found on the table: {}",
            columns.join(", ")
        ),
    )
}

/// `errors.columns`: the projection omits primary-key columns.
pub fn missing_pk_columns(columns: &[String]) -> ValidationErrors {
    ValidationErrors::single(
        "columns",
        format!(
            "The list of columns must include all primary key columns, missing: {}",
            columns.join(", ")
        ),
    )
}

/// `errors.columns`: an explicitly empty projection.
pub fn empty_columns() -> ValidationErrors {
    ValidationErrors::single("columns", "The list of columns must not be empty")
}

/// `errors.columns`: generated columns cannot be replicated before Postgres 18. `implicit` is
/// true when the client did not list columns (the message then suggests listing them).
pub fn generated_columns(columns: &[String], implicit: bool) -> ValidationErrors {
    let mut message = format!(
        "The following columns are generated and cannot be included in the shape: {}",
        columns.join(", ")
    );
    if implicit {
        message.push_str(
            ". You can exclude them from the shape by explicitly listing which columns to \
             fetch in the 'columns' query param",
        );
    }
    ValidationErrors::single("columns", message)
}

/// `errors.queryable_columns`: PK columns missing from the allow-list.
pub fn queryable_missing_pk_columns(columns: &[String]) -> ValidationErrors {
    ValidationErrors::single(
        "queryable_columns",
        format!(
            "The list of queryable columns must include all primary key columns, missing: {}",
            columns.join(", ")
        ),
    )
}

/// `errors.queryable_columns`: unknown columns in the allow-list.
pub fn queryable_columns_not_found(columns: &[String]) -> ValidationErrors {
    ValidationErrors::single(
        "queryable_columns",
        format!(
            "The following queryable columns are not found on the table: {}",
            columns.join(", ")
        ),
    )
}

/// `errors.queryable_columns`: an empty allow-list.
pub fn queryable_columns_empty() -> ValidationErrors {
    ValidationErrors::single(
        "queryable_columns",
        "The list of queryable columns must not be empty",
    )
}

/// `errors.where` with a message from the WHERE front end.
pub fn where_error(message: impl Into<String>) -> ValidationErrors {
    ValidationErrors::single("where", message)
}

/// `errors.offset`: the client is ahead of the shape log after the grace period.
pub fn offset_out_of_bounds() -> ValidationErrors {
    ValidationErrors::single("offset", "out of bounds for this shape")
}

/// `errors.experimental_compaction` for shapes with subqueries.
pub fn compaction_with_subqueries() -> ValidationErrors {
    ValidationErrors::single(
        "experimental_compaction",
        "can't be enabled for shapes with subqueries",
    )
}

/// `errors.experimental_compaction` when it is enabled: upstream would compact this shape's
/// log, Ampere has no log compaction. Ampere-specific wording; refusing beats silently
/// serving an uncompacted log to a client that asked for compaction.
pub fn compaction_not_supported() -> ValidationErrors {
    ValidationErrors::single("experimental_compaction", "is not supported by this server")
}

/// Renders a string as Elixir's `inspect/1` does, used in upstream's table-not-found message:
/// printable strings are quoted with `\"`, `\\`, `\#{` and C escapes; anything else is shown as
/// a byte list `<<1, 2>>`.
pub fn elixir_inspect_string(text: &str) -> String {
    if !text.chars().all(is_elixir_printable) {
        let bytes: Vec<String> = text.bytes().map(|b| b.to_string()).collect();
        return format!("<<{}>>", bytes.join(", "));
    }
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '#' if chars.peek() == Some(&'{') => out.push_str("\\#"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{b}' => out.push_str("\\v"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            '\u{1b}' => out.push_str("\\e"),
            other => out.push(other),
        }
    }
    out.push('"');
    out
}

/// Elixir's `String.printable?/1` per code point.
fn is_elixir_printable(c: char) -> bool {
    matches!(c,
        '\u{20}'..='\u{7e}'
        | '\u{a0}'..='\u{d7ff}'
        | '\u{e000}'..='\u{fffd}'
        | '\u{10000}'..='\u{10ffff}'
        | '\u{7}' | '\u{8}' | '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | '\u{1b}')
}

/// `{"field":["message",…],…}`: the errors object of upstream's error bodies.
pub(crate) fn push_field_errors(out: &mut Vec<u8>, fields: &BTreeMap<String, Vec<String>>) {
    out.push(b'{');
    for (index, (field, messages)) in fields.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        push_json_str(out, field);
        out.extend_from_slice(b":[");
        for (position, message) in messages.iter().enumerate() {
            if position > 0 {
                out.push(b',');
            }
            push_json_str(out, message);
        }
        out.push(b']');
    }
    out.push(b'}');
}

#[cfg(test)]
#[path = "validation_tests.rs"]
mod tests;
