//! Errors of the WHERE front end. `Display` is exactly the text Electric puts in
//! `errors.where` (or `errors.params` for [`WhereError::Params`]).

/// Why a `where` clause (or its `params`) was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WhereError {
    /// The Postgres grammar rejected the clause; `location` is the 0-based offset
    /// in the wrapped statement `SELECT 1 WHERE <where>`, as upstream reports it.
    #[error("At location {location}: {message}")]
    Syntax { location: usize, message: String },
    /// The clause contains a `;` that ends the statement.
    #[error("unescaped \";\" causing statement split")]
    StatementSplit,
    /// The clause runs into `ORDER BY`, `LIMIT`, `GROUP BY`, `UNION`, ... after the expression.
    #[error("malformed query ending with SQL clauses")]
    TrailingClauses,
    /// A semantic error (unknown column, unsupported construct, type error, invalid literal);
    /// `location` is the 0-based byte offset in the user's clause.
    #[error("At location {location}: {message}")]
    Invalid { location: usize, message: String },
    /// The clause is well-typed but not a boolean.
    #[error("WHERE clause must return a boolean")]
    NotBoolean,
    /// A message without a location (upstream's subquery checks).
    #[error("{0}")]
    Plain(String),
    /// A subquery names a table or columns that do not exist: upstream reports these under
    /// `errors.table` / `errors.columns`, not `errors.where`.
    #[error("{message}")]
    Field {
        field: &'static str,
        message: String,
    },
    /// The `params` themselves are malformed (reported under `errors.params`).
    #[error("{0}")]
    Params(String),
}

impl WhereError {
    /// Whether the message belongs under `errors.params` rather than `errors.where`.
    pub fn is_params_error(&self) -> bool {
        matches!(self, WhereError::Params(_))
    }

    /// The `errors` field the message belongs under.
    pub fn field(&self) -> &'static str {
        match self {
            WhereError::Params(_) => "params",
            WhereError::Field { field, .. } => field,
            _ => "where",
        }
    }
}
