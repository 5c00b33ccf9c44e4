//! Postgres identifier parsing for the `table` and `columns` parameters (§2.1), following
//! upstream `Electric.Postgres.Identifiers` and `Electric.Plug.Utils.parse_columns_param/1`,
//! plus [`quote_ident`] for SQL generation.
//!
//! Unquoted identifiers must look like `[\p{L}_][\p{L}\p{M}_0-9$]*` and are lower-cased (ASCII
//! only, like Postgres with a multi-byte encoding); quoted identifiers keep their case and use
//! `""` for a literal quote. Parsed names longer than 63 characters are rejected instead of being
//! truncated, so two different requests can never silently name the same relation.

use unicode_properties::{GeneralCategoryGroup, UnicodeGeneralCategory};

/// Postgres `NAMEDATALEN - 1`.
pub const MAX_IDENTIFIER_LENGTH: usize = 63;

pub const ZERO_LENGTH_MESSAGE: &str = "Invalid zero-length delimited identifier";
/// Used for an empty element of the list form `columns[]=`.
pub const ZERO_LENGTH_LIST_ELEMENT_MESSAGE: &str = "Invalid zero-length identifier";

/// A `schema.name` pair, both already unquoted/lower-cased as Postgres would store them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QualifiedTable {
    pub schema: String,
    pub name: String,
}

/// Why an identifier was rejected; `Display` gives the exact upstream message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentError {
    #[error("Invalid zero-length delimited identifier")]
    ZeroLength,
    #[error("Invalid unquoted identifier contains special characters: {0}")]
    SpecialCharacters(String),
    #[error("Invalid identifier with unescaped quote: {0}")]
    UnescapedQuote(String),
    #[error("Identifier is too long (max length is 63)")]
    TooLong,
    #[error("Invalid relation identifier, too many delimiters: {0}")]
    TooManyDelimiters(String),
}

/// Parses one identifier: `"Quoted ""x"""` keeps case, `Unquoted` is lower-cased.
pub fn parse_identifier(text: &str) -> Result<String, IdentError> {
    let parsed = if text.len() >= 2 && text.starts_with('"') && text.ends_with('"') {
        parse_quoted(&text[1..text.len() - 1])?
    } else if text == "\"" {
        // A lone quote both starts and ends with a quote; upstream slices it to "".
        return Err(IdentError::ZeroLength);
    } else {
        parse_unquoted(text)?
    };
    if parsed.chars().count() > MAX_IDENTIFIER_LENGTH {
        return Err(IdentError::TooLong);
    }
    Ok(parsed)
}

fn parse_quoted(inner: &str) -> Result<String, IdentError> {
    if inner.is_empty() {
        return Err(IdentError::ZeroLength);
    }
    if has_lone_quote(inner) {
        return Err(IdentError::UnescapedQuote(inner.to_owned()));
    }
    Ok(inner.replace("\"\"", "\""))
}

/// True if some `"` has no `"` neighbour on either side (upstream: `(?<!")"(?!")`).
fn has_lone_quote(text: &str) -> bool {
    let bytes = text.as_bytes();
    (0..bytes.len()).any(|i| {
        bytes[i] == b'"'
            && (i == 0 || bytes[i - 1] != b'"')
            && bytes.get(i + 1).is_none_or(|&next| next != b'"')
    })
}

fn parse_unquoted(text: &str) -> Result<String, IdentError> {
    if text.is_empty() {
        return Err(IdentError::ZeroLength);
    }
    if !is_valid_unquoted(text) {
        return Err(IdentError::SpecialCharacters(text.to_owned()));
    }
    Ok(text.to_ascii_lowercase())
}

fn is_valid_unquoted(text: &str) -> bool {
    // Upstream's regex ends in `$`, which in PCRE also matches before one final newline, so
    // `abc\n` is accepted there; mirror that so both servers name the same (missing) table.
    let body = text.strip_suffix('\n').unwrap_or(text);
    let mut chars = body.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    // ASCII answers without the Unicode tables (every name a request usually carries).
    let is_letter = |c: char| {
        if c.is_ascii() {
            c.is_ascii_alphabetic()
        } else {
            c.general_category_group() == GeneralCategoryGroup::Letter
        }
    };
    let is_mark =
        |c: char| !c.is_ascii() && c.general_category_group() == GeneralCategoryGroup::Mark;
    (first == '_' || is_letter(first))
        && chars.all(|c| c == '_' || c == '$' || c.is_ascii_digit() || is_letter(c) || is_mark(c))
}

/// Parses `name` or `schema.name` (dots inside quotes do not split); no schema means `public`.
pub fn parse_table(text: &str) -> Result<QualifiedTable, IdentError> {
    let parts = split_outside_quotes(text, b'.');
    match parts.as_slice() {
        [name] => Ok(QualifiedTable {
            schema: "public".to_owned(),
            name: parse_identifier(name)?,
        }),
        [schema, name] => Ok(QualifiedTable {
            schema: parse_identifier(schema)?,
            name: parse_identifier(name)?,
        }),
        _ => Err(IdentError::TooManyDelimiters(text.to_owned())),
    }
}

/// Splits on `delimiter` wherever an even number of `"` precede it (quotes toggle "inside").
fn split_outside_quotes(text: &str, delimiter: u8) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut inside_quotes = false;
    let mut start = 0;
    for (i, &byte) in text.as_bytes().iter().enumerate() {
        if byte == b'"' {
            inside_quotes = !inside_quotes;
        } else if byte == delimiter && !inside_quotes {
            parts.push(&text[start..i]);
            start = i + 1;
        }
    }
    parts.push(&text[start..]);
    parts
}

/// Parses a `columns` value: comma-separated identifiers, commas inside quotes do not split.
/// The order of the request is kept; the first invalid identifier fails the whole list.
pub fn parse_columns(text: &str) -> Result<Vec<String>, IdentError> {
    // Upstream splits on commas followed by an even number of quotes up to the end of the
    // string. Counting the quotes after each comma gives the same split points, including for
    // unbalanced quotes.
    let bytes = text.as_bytes();
    let mut quotes_after = bytes.iter().filter(|&&b| b == b'"').count();
    let mut columns = Vec::new();
    let mut start = 0;
    for (i, &byte) in bytes.iter().enumerate() {
        if byte == b'"' {
            quotes_after -= 1;
        } else if byte == b',' && quotes_after % 2 == 0 {
            columns.push(parse_identifier(&text[start..i])?);
            start = i + 1;
        }
    }
    columns.push(parse_identifier(&text[start..])?);
    Ok(columns)
}

/// Double-quotes an identifier for SQL, doubling embedded quotes. Always quoting keeps case and
/// makes reserved words safe. The caller must not pass names containing NUL (Postgres forbids
/// them in identifiers, so such a name can never refer to a real relation).
pub fn quote_ident(name: &str) -> String {
    let mut quoted = String::with_capacity(name.len() + 2);
    quoted.push('"');
    for c in name.chars() {
        if c == '"' {
            quoted.push('"');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

/// `quote_ident(schema) + "." + quote_ident(name)`.
pub fn quote_table(table: &QualifiedTable) -> String {
    format!(
        "{}.{}",
        quote_ident(&table.schema),
        quote_ident(&table.name)
    )
}

#[cfg(test)]
#[path = "ident_tests.rs"]
mod tests;
