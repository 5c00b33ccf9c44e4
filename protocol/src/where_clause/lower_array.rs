//! Lowering of array constructs: `op ANY/ALL (array)`, `@>`/`<@`/`&&`, subscripts and
//! `ARRAY[...]`.

use pg_query::protobuf::{node::Node as N, AArrayExpr, AExpr, AIndirection};

use super::cast::is_castable;
use super::coerce::{coerce, common_type, invalid, no_overload, select_common, Operand};
use super::error::WhereError;
use super::expr::{ArrayOp, CmpOp, Expr};
use super::lower::{typed, user_location, Scope};
use super::types::{Category, Type};

/// The element type of an array-typed operand.
fn element_type(operand: &Operand) -> Option<Type> {
    match operand {
        Operand::Typed { expr, .. } => match expr.ty() {
            Type::Array(elem) if elem.is_array_element() => Some(*elem),
            _ => None,
        },
        Operand::Unknown { .. } => None,
    }
}

impl Scope<'_> {
    pub(crate) fn lower_any_all(
        &mut self,
        a_expr: &AExpr,
        name: &str,
        all: bool,
        location: usize,
    ) -> Result<Expr, WhereError> {
        let Some(op) = CmpOp::from_sql(name) else {
            return Err(invalid(location, format!("unknown binary operator {name}")));
        };
        let lhs = self.required(a_expr.lexpr.as_deref(), location)?;
        let rhs = self.required(a_expr.rexpr.as_deref(), location)?;
        let elem = match (&lhs, &rhs) {
            (_, Operand::Typed { .. }) => element_type(&rhs).ok_or_else(|| {
                invalid(
                    location,
                    format!(
                        "op {} (array) requires array on right side",
                        if all { "ALL" } else { "ANY" }
                    ),
                )
            })?,
            // An untyped array literal or parameter takes the left side's type.
            (Operand::Typed { expr, .. }, Operand::Unknown { .. }) => expr.ty(),
            (Operand::Unknown { .. }, Operand::Unknown { .. }) => Type::Text,
        };
        let ty = match &lhs {
            Operand::Typed { expr, .. } => common_type(&expr.ty(), &elem),
            Operand::Unknown { .. } => Some(elem.clone()),
        }
        .ok_or_else(|| no_overload(location))?;
        let unsupported = matches!(ty.category(), Category::Unsupported | Category::Unknown);
        let enum_order = matches!(ty, Type::Enum(_)) && !matches!(op, CmpOp::Eq | CmpOp::Ne);
        if unsupported || enum_order || !is_castable(&elem, &ty) {
            return Err(no_overload(location));
        }
        let arg = coerce(lhs, &ty)?;
        let array = coerce(rhs, &Type::Array(Box::new(elem)))?;
        Ok(Expr::AnyAll {
            op,
            all,
            ty,
            arg: Box::new(arg),
            array: Box::new(array),
        })
    }

    pub(crate) fn lower_array_op(
        &mut self,
        a_expr: &AExpr,
        op: ArrayOp,
        location: usize,
    ) -> Result<Expr, WhereError> {
        let lhs = self.required(a_expr.lexpr.as_deref(), location)?;
        let rhs = self.required(a_expr.rexpr.as_deref(), location)?;
        array_op(op, lhs, rhs, location)
    }

    /// `arr[i]`, `arr[i][j]`: integer subscripts only (no slices, no field selection).
    pub(crate) fn lower_indirection(
        &mut self,
        indirection: &AIndirection,
    ) -> Result<Operand, WhereError> {
        let arg = self.required(indirection.arg.as_deref(), 0)?;
        let location = arg.location();
        let Some(elem) = element_type(&arg) else {
            return Err(invalid(location, "only arrays can be subscripted here"));
        };
        let Operand::Typed { expr: arg, .. } = arg else {
            return Err(no_overload(location));
        };
        let mut subscripts = Vec::with_capacity(indirection.indirection.len());
        for node in &indirection.indirection {
            let index = match &node.node {
                Some(N::AIndices(indices)) if !indices.is_slice => indices.uidx.as_deref(),
                _ => {
                    return Err(invalid(
                        location,
                        "array slices and field selection are not supported",
                    ))
                }
            };
            let index = self.required(index, location)?;
            let index = match index {
                Operand::Typed { expr, .. } if expr.ty().is_integer() => expr,
                Operand::Typed { .. } => {
                    return Err(invalid(location, "array subscript must have type integer"))
                }
                unknown => coerce(unknown, &Type::Int4)?,
            };
            subscripts.push(index);
        }
        Ok(typed(
            Expr::Subscript {
                arg: Box::new(arg),
                subscripts,
                ty: elem,
            },
            location,
        ))
    }

    /// `ARRAY[a, b, ...]` of scalars, resolved to one element type.
    pub(crate) fn lower_array_ctor(&mut self, ctor: &AArrayExpr) -> Result<Operand, WhereError> {
        let location = user_location(ctor.location);
        if ctor.elements.is_empty() {
            return Err(invalid(location, "cannot determine type of empty array"));
        }
        let mut operands = Vec::with_capacity(ctor.elements.len());
        for node in &ctor.elements {
            operands.push(self.lower(node)?);
        }
        let elem = select_common(&operands, location)?;
        if !elem.is_array_element() {
            return Err(no_overload(location));
        }
        let mut items = Vec::with_capacity(operands.len());
        for operand in operands {
            items.push(coerce(operand, &elem)?);
        }
        Ok(typed(Expr::ArrayCtor { elem, items }, location))
    }
}

/// Whether a lowered operand is a (readable) array.
pub(crate) fn is_array(operand: &Operand) -> bool {
    element_type(operand).is_some()
}

/// An array operator on two lowered operands: both arrays of one element type, or one of
/// them an untyped literal or parameter read as the other's type.
pub(crate) fn array_op(
    op: ArrayOp,
    lhs: Operand,
    rhs: Operand,
    location: usize,
) -> Result<Expr, WhereError> {
    let elem = match (element_type(&lhs), element_type(&rhs)) {
        (Some(l), Some(r)) if l == r => l,
        (Some(elem), None) if matches!(rhs, Operand::Unknown { .. }) => elem,
        (None, Some(elem)) if matches!(lhs, Operand::Unknown { .. }) => elem,
        _ => return Err(no_overload(location)),
    };
    let ty = Type::Array(Box::new(elem));
    Ok(Expr::ArrayOp {
        op,
        lhs: Box::new(coerce(lhs, &ty)?),
        rhs: Box::new(coerce(rhs, &ty)?),
    })
}
