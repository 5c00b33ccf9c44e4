//! Lowering of function calls and the function-like expressions COALESCE, GREATEST and LEAST.

use pg_query::protobuf::{FuncCall, MinMaxOp, Node};

use super::coerce::{coerce, no_overload, select_common, Operand};
use super::error::WhereError;
use super::expr::Expr;
use super::func::Func;
use super::lower::{operator_name, typed, unsupported_function, user_location, Scope};
use super::types::{Category, Type};

impl Scope<'_> {
    pub(crate) fn lower_call(&mut self, call: &FuncCall) -> Result<Operand, WhereError> {
        let location = user_location(call.location);
        let plain = call.agg_order.is_empty()
            && call.agg_filter.is_none()
            && call.over.is_none()
            && !call.agg_within_group
            && !call.agg_star
            && !call.agg_distinct
            && !call.func_variadic;
        let name = operator_name(&call.funcname);
        let Some(func) = Func::from_call(&name, call.args.len()).filter(|_| plain) else {
            return Err(unsupported_function(call));
        };
        if matches!(
            func,
            Func::ArrayLength | Func::Cardinality | Func::ArrayNdims
        ) {
            return self.lower_array_func(func, call, location);
        }
        let mut args = Vec::with_capacity(call.args.len());
        for arg in &call.args {
            let operand = self.lower(arg)?;
            args.push(match func {
                // concat takes "any": untyped arguments are text, typed ones keep their type.
                Func::Concat => match operand {
                    Operand::Typed { expr, .. } => {
                        if expr.ty().category() == Category::Unsupported {
                            return Err(no_overload(location));
                        }
                        expr
                    }
                    unknown => coerce(unknown, &Type::Text)?,
                },
                // The string functions take text; varchar, bpchar and name cast implicitly.
                _ => match operand {
                    Operand::Typed { expr, .. } if !expr.ty().is_string() => {
                        return Err(no_overload(location))
                    }
                    // octet_length(bpchar) counts the padding (the cast to text would drop it).
                    Operand::Typed { expr, .. }
                        if func == Func::OctetLength && expr.ty() == Type::Bpchar =>
                    {
                        expr
                    }
                    other => coerce(other, &Type::Text)?,
                },
            });
        }
        let ty = match func {
            Func::Lower | Func::Upper | Func::Concat => Type::Text,
            Func::Length | Func::OctetLength => Type::Int4,
            _ => Type::Bool,
        };
        Ok(typed(Expr::Func { func, ty, args }, location))
    }

    /// `array_length(array, int)` and `cardinality(array)`: the array must be typed (Postgres
    /// cannot infer an array type from an untyped literal here either).
    fn lower_array_func(
        &mut self,
        func: Func,
        call: &FuncCall,
        location: usize,
    ) -> Result<Operand, WhereError> {
        let mut args = Vec::with_capacity(call.args.len());
        for (i, node) in call.args.iter().enumerate() {
            let arg = match (i, self.lower(node)?) {
                (0, Operand::Typed { expr, .. }) if matches!(expr.ty(), Type::Array(elem) if elem.is_array_element()) => {
                    expr
                }
                (1, Operand::Typed { expr, .. }) if expr.ty().is_integer() => expr,
                (1, unknown @ Operand::Unknown { .. }) => coerce(unknown, &Type::Int4)?,
                _ => return Err(no_overload(location)),
            };
            args.push(arg);
        }
        Ok(typed(
            Expr::Func {
                func,
                ty: Type::Int4,
                args,
            },
            location,
        ))
    }

    /// COALESCE, GREATEST and LEAST: the arguments are resolved to one common type.
    pub(crate) fn lower_variadic(
        &mut self,
        func: Func,
        nodes: &[Node],
        location: i32,
    ) -> Result<Operand, WhereError> {
        let location = user_location(location);
        let mut operands = Vec::with_capacity(nodes.len());
        for node in nodes {
            operands.push(self.lower(node)?);
        }
        let ty = select_common(&operands, location)?;
        // Enum order is the declaration order, which the front end does not know.
        if func != Func::Coalesce && matches!(ty, Type::Enum(_)) {
            return Err(no_overload(location));
        }
        let mut args = Vec::with_capacity(operands.len());
        for operand in operands {
            args.push(coerce(operand, &ty)?);
        }
        Ok(typed(Expr::Func { func, ty, args }, location))
    }
}

pub(crate) fn min_max_func(op: i32) -> Option<Func> {
    match MinMaxOp::try_from(op).ok()? {
        MinMaxOp::IsGreatest => Some(Func::Greatest),
        MinMaxOp::IsLeast => Some(Func::Least),
        MinMaxOp::Undefined => None,
    }
}
