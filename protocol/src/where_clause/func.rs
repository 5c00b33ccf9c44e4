//! The supported functions: string functions on text, `concat`, and the conditional
//! expressions `COALESCE`, `GREATEST` and `LEAST`.

use std::borrow::Cow;

use super::cast::to_text;
use super::datum::{compare, Datum};
use super::types::Type;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Func {
    Lower,
    Upper,
    /// `length` / `char_length` / `character_length`: characters, not bytes.
    Length,
    OctetLength,
    StartsWith,
    /// `array_length(array, dimension)`.
    ArrayLength,
    /// `cardinality(array)`: the number of elements over all dimensions.
    Cardinality,
    /// `array_ndims(array)`: NULL for an empty array.
    ArrayNdims,
    Concat,
    Coalesce,
    Greatest,
    Least,
}

impl Func {
    /// The function a (lowercase, unqualified or `pg_catalog`) name and arity refer to.
    pub(crate) fn from_call(name: &str, arity: usize) -> Option<Func> {
        Some(match (name, arity) {
            ("lower", 1) => Func::Lower,
            ("upper", 1) => Func::Upper,
            ("length" | "char_length" | "character_length", 1) => Func::Length,
            ("octet_length", 1) => Func::OctetLength,
            ("starts_with", 2) => Func::StartsWith,
            ("array_length", 2) => Func::ArrayLength,
            ("cardinality", 1) => Func::Cardinality,
            ("array_ndims", 1) => Func::ArrayNdims,
            ("concat", n) if n > 0 => Func::Concat,
            _ => return None,
        })
    }

    /// The SQL spelling; COALESCE, GREATEST and LEAST are keywords, rendered in upper case.
    pub(crate) fn sql(self) -> &'static str {
        match self {
            Func::Lower => "lower",
            Func::Upper => "upper",
            Func::Length => "length",
            Func::OctetLength => "octet_length",
            Func::StartsWith => "starts_with",
            Func::ArrayLength => "array_length",
            Func::Cardinality => "cardinality",
            Func::ArrayNdims => "array_ndims",
            Func::Concat => "concat",
            Func::Coalesce => "COALESCE",
            Func::Greatest => "GREATEST",
            Func::Least => "LEAST",
        }
    }
}

/// Single-character case mapping, like the C library's `towlower`/`towupper` that Postgres
/// uses under a libc UTF-8 locale: characters that map to several characters stay as they are.
fn map_case(text: &str, upper: bool) -> String {
    fn single(mut mapped: impl Iterator<Item = char>, original: char) -> char {
        match (mapped.next(), mapped.next()) {
            (Some(m), None) => m,
            _ => original,
        }
    }
    text.chars()
        .map(|c| {
            if upper {
                single(c.to_uppercase(), c)
            } else if c == '\u{130}' {
                // İ: Rust lowercases it to two characters, the C library (as Postgres) to `i`.
                'i'
            } else {
                single(c.to_lowercase(), c)
            }
        })
        .collect()
}

/// Applies a strict single-row function to non-null text arguments.
pub(crate) fn apply_strict(func: Func, args: &[Datum<'_>]) -> Option<Datum<'static>> {
    let text = |i: usize| match args.get(i) {
        Some(Datum::Text(t)) => Some(t.as_ref()),
        _ => None,
    };
    Some(match func {
        Func::Lower => Datum::Text(Cow::Owned(map_case(text(0)?, false))),
        Func::Upper => Datum::Text(Cow::Owned(map_case(text(0)?, true))),
        Func::Length => Datum::Int(i64::try_from(text(0)?.chars().count()).unwrap_or(i64::MAX)),
        Func::OctetLength => Datum::Int(i64::try_from(text(0)?.len()).unwrap_or(i64::MAX)),
        Func::StartsWith => Datum::Bool(text(0)?.starts_with(text(1)?)),
        Func::ArrayLength => {
            let (Some(Datum::Array(array)), Some(Datum::Int(dim))) = (args.first(), args.get(1))
            else {
                return None;
            };
            // NULL for an empty array or a dimension it does not have.
            let length = usize::try_from(*dim)
                .ok()
                .and_then(|d| d.checked_sub(1))
                .and_then(|d| array.dims.get(d));
            match length {
                Some((_, len)) => Datum::Int(i64::from(*len)),
                None => Datum::Null,
            }
        }
        Func::ArrayNdims => match args.first() {
            Some(Datum::Array(array)) if array.dims.is_empty() => Datum::Null,
            Some(Datum::Array(array)) => {
                Datum::Int(i64::try_from(array.dims.len()).unwrap_or(i64::MAX))
            }
            _ => return None,
        },
        Func::Cardinality => match args.first() {
            Some(Datum::Array(array)) => {
                Datum::Int(i64::try_from(array.elems.len()).unwrap_or(i64::MAX))
            }
            _ => return None,
        },
        Func::Concat | Func::Coalesce | Func::Greatest | Func::Least => return None,
    })
}

/// `concat`'s text for one argument: the type's output function, which for bool is `t`/`f`
/// and for bpchar keeps the padding (unlike the `::text` casts).
pub(crate) fn concat_piece<'a>(value: Datum<'a>, ty: &Type) -> Cow<'a, str> {
    match value {
        Datum::Bool(v) => Cow::Borrowed(if v { "t" } else { "f" }),
        Datum::Text(text) => text,
        other => to_text(other, ty),
    }
}

/// Keeps the larger (`greatest`) or smaller of two non-null values of type `ty`.
pub(crate) fn pick<'a>(
    greatest: bool,
    ty: &Type,
    best: Datum<'a>,
    candidate: Datum<'a>,
) -> Option<Datum<'a>> {
    let ordering = compare(ty, &candidate, &best)?;
    let better = if greatest {
        ordering.is_gt()
    } else {
        ordering.is_lt()
    };
    Some(if better { candidate } else { best })
}
