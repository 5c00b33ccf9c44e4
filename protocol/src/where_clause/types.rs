//! The SQL types the WHERE front end understands, and how Postgres spells them.

use std::fmt;

/// A Postgres type as the WHERE front end sees it.
///
/// Only types with comparison semantics implemented here are listed by name; any other column
/// type is kept as [`Type::Other`] so that `IS NULL` still works on it while operators reject it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Type {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Numeric,
    Text,
    Varchar,
    Bpchar,
    Name,
    Uuid,
    Date,
    Timestamp,
    Timestamptz,
    /// `interval`: months, days and microseconds (see `interval`).
    Interval,
    /// A user-defined enum, by its type name.
    Enum(String),
    /// An array of the element type (columns only for now).
    Array(Box<Type>),
    /// The type of a string literal, a `$n` parameter or NULL before context decides.
    Unknown,
    /// A column type with no operators yet (jsonb, bytea, time, ...), by its typname.
    Other(String),
}

/// Broad groups that decide implicit coercions between comparison operands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Category {
    Boolean,
    Number,
    String,
    DateTime,
    /// Compared only with itself; combines with date/time types in arithmetic.
    Interval,
    Uuid,
    Enum,
    Unknown,
    Unsupported,
}

impl Type {
    /// Maps a `pg_type.typname` (as found in the catalog) to a type.
    pub fn from_typname(typname: &str) -> Option<Type> {
        Some(match typname {
            "bool" => Type::Bool,
            "int2" => Type::Int2,
            "int4" => Type::Int4,
            "int8" => Type::Int8,
            "float4" => Type::Float4,
            "float8" => Type::Float8,
            "numeric" => Type::Numeric,
            "text" => Type::Text,
            "varchar" => Type::Varchar,
            "bpchar" => Type::Bpchar,
            "name" => Type::Name,
            "uuid" => Type::Uuid,
            "date" => Type::Date,
            "timestamp" => Type::Timestamp,
            "timestamptz" => Type::Timestamptz,
            "interval" => Type::Interval,
            _ => return None,
        })
    }

    /// The catalog name used when rendering casts (`'5'::int4`). Never user-controlled for
    /// built-in types; enum and other names are quoted by the renderer.
    pub fn typname(&self) -> &str {
        match self {
            Type::Bool => "bool",
            Type::Int2 => "int2",
            Type::Int4 => "int4",
            Type::Int8 => "int8",
            Type::Float4 => "float4",
            Type::Float8 => "float8",
            Type::Numeric => "numeric",
            Type::Text => "text",
            Type::Varchar => "varchar",
            Type::Bpchar => "bpchar",
            Type::Name => "name",
            Type::Uuid => "uuid",
            Type::Date => "date",
            Type::Timestamp => "timestamp",
            Type::Timestamptz => "timestamptz",
            Type::Interval => "interval",
            Type::Enum(name) | Type::Other(name) => name,
            Type::Array(_) => "array",
            Type::Unknown => "unknown",
        }
    }

    /// The name Postgres uses in input-syntax errors (`invalid input syntax for type integer`).
    pub(crate) fn sql_name(&self) -> &str {
        match self {
            Type::Bool => "boolean",
            Type::Int2 => "smallint",
            Type::Int4 => "integer",
            Type::Int8 => "bigint",
            Type::Float4 => "real",
            Type::Float8 => "double precision",
            Type::Varchar => "character varying",
            Type::Bpchar => "character",
            Type::Timestamp => "timestamp",
            Type::Timestamptz => "timestamp with time zone",
            other => other.typname(),
        }
    }

    pub(crate) fn category(&self) -> Category {
        match self {
            Type::Bool => Category::Boolean,
            Type::Int2 | Type::Int4 | Type::Int8 => Category::Number,
            Type::Float4 | Type::Float8 | Type::Numeric => Category::Number,
            Type::Text | Type::Varchar | Type::Bpchar | Type::Name => Category::String,
            Type::Date | Type::Timestamp | Type::Timestamptz => Category::DateTime,
            Type::Interval => Category::Interval,
            Type::Uuid => Category::Uuid,
            Type::Enum(_) => Category::Enum,
            Type::Unknown => Category::Unknown,
            Type::Array(_) | Type::Other(_) => Category::Unsupported,
        }
    }

    pub(crate) fn is_integer(&self) -> bool {
        matches!(self, Type::Int2 | Type::Int4 | Type::Int8)
    }

    pub(crate) fn is_float(&self) -> bool {
        matches!(self, Type::Float4 | Type::Float8)
    }

    /// Whether arrays of this type can be read and operated on.
    /// Interval arrays are not read yet (their elements' quoting is untested).
    pub(crate) fn is_array_element(&self) -> bool {
        !matches!(
            self.category(),
            Category::Unsupported | Category::Unknown | Category::Interval
        )
    }

    pub(crate) fn is_string(&self) -> bool {
        self.category() == Category::String
    }
}

impl fmt::Display for Type {
    /// Upstream's readable form, used in type errors (`int4`, `text[]`, `enum mood`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Array(inner) => write!(f, "{inner}[]"),
            Type::Enum(name) => write!(f, "enum {name}"),
            other => f.write_str(other.typname()),
        }
    }
}

/// Resolves a type name written in a cast (`::integer`, `CAST(x AS pg_catalog.int8)`). The
/// grammar already maps SQL spellings (`integer`, `double precision`, `timestamp with time
/// zone`) to catalog names under `pg_catalog`; a bare identifier may name them too.
pub(crate) fn resolve_cast_type(names: &[&str]) -> Option<Type> {
    match names {
        ["pg_catalog", name] | [name] => Type::from_typname(name),
        _ => None,
    }
}
