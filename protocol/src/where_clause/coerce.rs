//! Type resolution: which common type two operands are compared in, and turning untyped
//! literals and parameters into typed constants (`'5'` next to an int4 column becomes int4 5).

use super::cast::{self, is_castable};
use super::datum::Datum;
use super::error::WhereError;
use super::expr::Expr;
use super::input;
use super::types::{Category, Type};

/// A lowered operand: either typed, or an untyped string literal / parameter / NULL whose type
/// comes from context, as in Postgres.
#[derive(Debug)]
pub(crate) enum Operand {
    Unknown {
        /// `None` is the NULL literal.
        text: Option<String>,
        location: usize,
    },
    Typed {
        expr: Expr,
        location: usize,
    },
}

impl Operand {
    pub(crate) fn location(&self) -> usize {
        match self {
            Operand::Unknown { location, .. } | Operand::Typed { location, .. } => *location,
        }
    }

    fn typed(&self) -> Option<Type> {
        match self {
            Operand::Unknown { .. } => None,
            Operand::Typed { expr, .. } => Some(expr.ty()),
        }
    }
}

pub(crate) fn invalid(location: usize, message: impl Into<String>) -> WhereError {
    WhereError::Invalid {
        location,
        message: message.into(),
    }
}

pub(crate) fn no_overload(location: usize) -> WhereError {
    invalid(location, "Could not select an operator overload")
}

/// The type Postgres compares two different types in, if it has such an operator.
/// Mirrors operator resolution for the supported types: integers compare exactly across widths,
/// any float makes it float8 (float8 is the preferred numeric type), else numeric; strings of
/// different kinds compare as text; mixed date/time types as the most precise one.
pub(crate) fn common_type(left: &Type, right: &Type) -> Option<Type> {
    if left == right {
        return match left.category() {
            Category::Unsupported | Category::Unknown => None,
            _ => Some(left.clone()),
        };
    }
    match (left.category(), right.category()) {
        (Category::Number, Category::Number) => Some(if left.is_integer() && right.is_integer() {
            Type::Int8
        } else if left.is_float() || right.is_float() {
            Type::Float8
        } else {
            Type::Numeric
        }),
        (Category::String, Category::String) => Some(Type::Text),
        (Category::DateTime, Category::DateTime) => {
            if *left == Type::Timestamptz || *right == Type::Timestamptz {
                Some(Type::Timestamptz)
            } else {
                Some(Type::Timestamp)
            }
        }
        _ => None,
    }
}

/// Gives an operand type `to`: untyped literals are parsed with the type's input function,
/// typed expressions get an implicit cast (folded right away for constants).
pub(crate) fn coerce(operand: Operand, to: &Type) -> Result<Expr, WhereError> {
    match operand {
        Operand::Unknown { text: None, .. } => Ok(Expr::Const {
            value: Datum::Null,
            ty: to.clone(),
        }),
        Operand::Unknown {
            text: Some(text),
            location,
        } => {
            let value = input::parse(to, &text)
                .map_err(|e| invalid(location, e.0))?
                .into_owned();
            Ok(Expr::Const {
                value,
                ty: to.clone(),
            })
        }
        Operand::Typed { expr, location } => convert(expr, to, true, location),
    }
}

/// Converts a typed expression; `implicit` marks casts the user did not write.
pub(crate) fn convert(
    expr: Expr,
    to: &Type,
    implicit: bool,
    location: usize,
) -> Result<Expr, WhereError> {
    let from = expr.ty();
    if from == *to {
        return Ok(expr);
    }
    // Integers of any width share one representation and Postgres has cross-width operators,
    // so an implicit widening needs no node (and keeps the rendered SQL index-friendly).
    if implicit && from.is_integer() && to.is_integer() && !matches!(expr, Expr::Const { .. }) {
        return Ok(expr);
    }
    if !is_castable(&from, to) {
        return Err(invalid(
            location,
            format!("unknown cast from type {from} to type {to}"),
        ));
    }
    match expr {
        Expr::Const { value, .. } => {
            let value = cast::cast(value, &from, to)
                .map_err(|e| invalid(location, e.0))?
                .into_owned();
            Ok(Expr::Const {
                value,
                ty: to.clone(),
            })
        }
        other => Ok(Expr::Cast {
            arg: Box::new(other),
            to: to.clone(),
            implicit,
        }),
    }
}

/// Resolves the comparison type of several operands (a comparison's two sides, or an IN
/// list with its left side). All-untyped operands compare as text.
pub(crate) fn resolve_common(operands: &[Operand], location: usize) -> Result<Type, WhereError> {
    let mut common: Option<Type> = None;
    for operand in operands {
        let Some(ty) = operand.typed() else { continue };
        common = Some(match common {
            None => match ty.category() {
                Category::Unsupported => return Err(no_overload(location)),
                _ => ty,
            },
            Some(acc) => common_type(&acc, &ty).ok_or_else(|| no_overload(location))?,
        });
    }
    Ok(common.unwrap_or(Type::Text))
}

/// The result type of COALESCE, GREATEST, LEAST and ARRAY[] (Postgres's `select_common_type`):
/// as [`resolve_common`], except that integers widen only to the widest integer present
/// (`COALESCE(int2, int4)` is int4, where comparing them is done in int8).
pub(crate) fn select_common(operands: &[Operand], location: usize) -> Result<Type, WhereError> {
    let common = resolve_common(operands, location)?;
    if common != Type::Int8 {
        return Ok(common);
    }
    let widest = operands
        .iter()
        .filter_map(Operand::typed)
        .map(|ty| match ty {
            Type::Int2 => 2,
            Type::Int4 => 4,
            _ => 8,
        })
        .max();
    Ok(match widest {
        Some(2) => Type::Int2,
        Some(4) => Type::Int4,
        _ => Type::Int8,
    })
}

/// Coerces an operand of AND/OR/NOT or IS TRUE to bool.
pub(crate) fn to_bool(operand: Operand) -> Result<Expr, WhereError> {
    match operand {
        Operand::Typed { expr, location } if expr.ty() != Type::Bool => {
            let what = match &expr {
                Expr::Column { name, ty, .. } => format!("reference {name} of type {ty}"),
                other => format!("expression of type {}", other.ty()),
            };
            Err(invalid(location, format!("{what} is not castable to bool")))
        }
        other => coerce(other, &Type::Bool),
    }
}
