//! Row keys (§5.3): `"<schema>"."<table>"/"<pk1>"/"<pk2>"…`.
//!
//! Inside the schema and table names `/` becomes `//` and `.` becomes `..`; inside each key
//! value `/` becomes `//`; a NULL value (possible only when a PK-less table uses all columns as
//! its key) is a bare `_`. Quotes are not escaped, matching upstream; the doubling alone keeps
//! the encoding injective because every separator is a single `.`/`/` between a quote and a
//! quote or `_`. The result is raw text: callers JSON-escape it (e.g. with
//! [`crate::json::push_json_string`]).

/// Appends the key for a row of `schema.table` whose key columns (in PK order, or all columns
/// sorted by name for PK-less tables) have the given text values.
pub fn push_row_key(out: &mut Vec<u8>, schema: &str, table: &str, pk: &[Option<&[u8]>]) {
    out.push(b'"');
    push_doubled(out, schema.as_bytes(), true);
    out.extend_from_slice(b"\".\"");
    push_doubled(out, table.as_bytes(), true);
    out.push(b'"');
    for value in pk {
        out.push(b'/');
        match value {
            None => out.push(b'_'),
            Some(text) => {
                out.push(b'"');
                push_doubled(out, text, false);
                out.push(b'"');
            }
        }
    }
}

/// Convenience wrapper returning the key as a `String` (input names are `str`; values are
/// expected to be UTF-8 Postgres text, invalid bytes are replaced).
pub fn row_key(schema: &str, table: &str, pk: &[Option<&[u8]>]) -> String {
    let mut out = Vec::new();
    push_row_key(&mut out, schema, table, pk);
    match String::from_utf8(out) {
        Ok(key) => key,
        Err(err) => String::from_utf8_lossy(err.as_bytes()).into_owned(),
    }
}

fn push_doubled(out: &mut Vec<u8>, text: &[u8], double_dots: bool) {
    let mut run_start = 0;
    for (i, &byte) in text.iter().enumerate() {
        if byte == b'/' || (double_dots && byte == b'.') {
            // Copy up to and including the byte, then repeat it.
            out.extend_from_slice(&text[run_start..=i]);
            out.push(byte);
            run_start = i + 1;
        }
    }
    out.extend_from_slice(&text[run_start..]);
}

#[cfg(test)]
#[path = "key_tests.rs"]
mod tests;
