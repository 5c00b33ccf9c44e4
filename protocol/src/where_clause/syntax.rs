//! The only module that talks to `pg_query`'s parser: it wraps the clause as
//! `SELECT 1 WHERE <where>` (as Electric does, so error positions match), rejects anything but
//! one plain SELECT with a WHERE clause, and hands the WHERE expression to the lowering pass.

use std::ffi::{c_char, c_int, CStr, CString};

use pg_query::protobuf::{node::Node as N, Node, SelectStmt};

use super::error::WhereError;

/// The wrapper prepended to the clause before parsing.
pub(crate) const PREFIX: &str = "SELECT 1 WHERE ";

/// Longest clause accepted, in bytes: far above any real filter, far below anything that
/// could make parsing expensive.
pub(crate) const WHERE_BYTES_MAX: usize = 64 * 1024;

/// Parses the clause and returns its WHERE expression.
pub(crate) fn parse_where(where_sql: &str) -> Result<Node, WhereError> {
    if where_sql.len() > WHERE_BYTES_MAX {
        return Err(WhereError::Invalid {
            location: 0,
            message: format!("WHERE clause is longer than {WHERE_BYTES_MAX} bytes"),
        });
    }
    if let Some(nul) = where_sql.find('\0') {
        return Err(WhereError::Invalid {
            location: nul,
            message: "WHERE clause must not contain NUL bytes".to_string(),
        });
    }
    let wrapped = format!("{PREFIX}{where_sql}");
    let parsed = match pg_query::parse(&wrapped, 0) {
        Ok(parsed) => parsed,
        Err(pg_query::Error::Parse(message)) => return Err(syntax_error(&wrapped, message)),
        // prost refuses trees nested deeper than its recursion limit (100).
        Err(pg_query::Error::Decode(_)) => {
            return Err(WhereError::Invalid {
                location: 0,
                message: "WHERE clause is nested too deeply".to_string(),
            })
        }
        Err(other) => {
            return Err(WhereError::Invalid {
                location: 0,
                message: other.to_string(),
            })
        }
    };
    let mut stmts = parsed.protobuf.stmts;
    if stmts.len() != 1 {
        return Err(WhereError::StatementSplit);
    }
    let stmt = stmts
        .pop()
        .and_then(|raw| raw.stmt)
        .and_then(|node| node.node);
    let Some(N::SelectStmt(select)) = stmt else {
        return Err(WhereError::StatementSplit);
    };
    if has_trailing_clauses(&select) {
        return Err(WhereError::TrailingClauses);
    }
    select
        .where_clause
        .map(|node| *node)
        .ok_or(WhereError::TrailingClauses)
}

/// Anything besides `SELECT 1 WHERE expr` means the clause ran past its expression.
fn has_trailing_clauses(select: &SelectStmt) -> bool {
    // SETOP_NONE is 1 in the protobuf enum (0 is "undefined").
    let is_set_operation = select.op > 1 || select.larg.is_some() || select.rarg.is_some();
    is_set_operation
        || select.target_list.len() != 1
        || !select.from_clause.is_empty()
        || !select.window_clause.is_empty()
        || !select.group_clause.is_empty()
        || select.having_clause.is_some()
        || !select.sort_clause.is_empty()
        || !select.locking_clause.is_empty()
        || select.limit_count.is_some()
        || select.limit_offset.is_some()
        || !select.distinct_clause.is_empty()
        || select.into_clause.is_some()
        || select.with_clause.is_some()
        || !select.values_lists.is_empty()
}

fn syntax_error(wrapped: &str, fallback_message: String) -> WhereError {
    match cursor_position(wrapped) {
        Some((location, message)) => WhereError::Syntax { location, message },
        None => WhereError::Syntax {
            location: 0,
            message: fallback_message,
        },
    }
}

/// The layout of libpg_query's C structs (`pg_query.h`), needed because the crate's safe API
/// returns only the message of a syntax error and drops `cursorpos`.
#[repr(C)]
struct PgQueryError {
    message: *mut c_char,
    funcname: *mut c_char,
    filename: *mut c_char,
    lineno: c_int,
    cursorpos: c_int,
    context: *mut c_char,
}

#[repr(C)]
struct PgQueryParseResult {
    parse_tree: *mut c_char,
    stderr_buffer: *mut c_char,
    error: *mut PgQueryError,
}

extern "C" {
    // Both are exported by the libpg_query static library that the pg_query crate links.
    fn pg_query_parse(input: *const c_char) -> PgQueryParseResult;
    fn pg_query_free_parse_result(result: PgQueryParseResult);
}

/// Parses again through the C API to read the error's 1-based cursor position. Only called
/// for clauses that already failed to parse, so the cost does not matter.
fn cursor_position(wrapped: &str) -> Option<(usize, String)> {
    let input = CString::new(wrapped).ok()?;
    // SAFETY: `input` is a valid NUL-terminated string that outlives the call, and the
    // declarations above match `pg_query.h` of the libpg_query version pg_query 18.1 bundles.
    let result = unsafe { pg_query_parse(input.as_ptr()) };
    let found = if result.error.is_null() {
        None
    } else {
        // SAFETY: a non-null `error` points to a PgQueryError that stays valid until the
        // result is freed below; its `message` is a NUL-terminated string or null.
        let (cursor, message) = unsafe {
            let error = &*result.error;
            let message = if error.message.is_null() {
                String::new()
            } else {
                CStr::from_ptr(error.message).to_string_lossy().into_owned()
            };
            (error.cursorpos, message)
        };
        // Upstream reports Postgres's 1-based cursor minus one (`1 x 1` ⇒ 17).
        Some((
            usize::try_from(cursor).unwrap_or(0).saturating_sub(1),
            message,
        ))
    };
    // SAFETY: `result` came from `pg_query_parse` and is freed exactly once.
    unsafe { pg_query_free_parse_result(result) };
    found
}
