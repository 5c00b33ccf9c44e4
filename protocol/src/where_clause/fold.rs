//! Constant folding, as Postgres's planner does it (`eval_const_expressions`), so that row
//! evaluation agrees with what Postgres executes:
//! - a subexpression without column references is evaluated once; if that fails (overflow,
//!   division by zero) Postgres fails to plan the query, so the clause is rejected here;
//! - AND/OR drop constant neutral arms and collapse on a constant deciding arm, in argument
//!   order (`x / 0 > 1 OR true` is true for every row, `true OR x / 0 > 1` too);
//! - a strict operator or function with a constant NULL argument is NULL without evaluating
//!   its other arguments;
//! - COALESCE stops at its first non-NULL constant argument.

use super::datum::Datum;
use super::eval::eval;
use super::expr::Expr;
use super::func::Func;
use super::types::Type;

/// A constant subexpression failed to evaluate.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct FoldError;

fn is_const(expr: &Expr) -> bool {
    matches!(expr, Expr::Const { .. })
}

fn is_null_const(expr: &Expr) -> bool {
    matches!(
        expr,
        Expr::Const {
            value: Datum::Null,
            ..
        }
    )
}

fn null_of(expr: &Expr) -> Expr {
    Expr::Const {
        value: Datum::Null,
        ty: expr.ty(),
    }
}

fn bool_const(value: bool) -> Expr {
    Expr::Const {
        value: Datum::Bool(value),
        ty: super::types::Type::Bool,
    }
}

pub(crate) fn fold(expr: Expr) -> Result<Expr, FoldError> {
    let folded = match expr {
        Expr::Const { .. } | Expr::Column { .. } | Expr::Sublink { .. } => return Ok(expr),
        Expr::And(items) => return junction(items, false),
        Expr::Or(items) => return junction(items, true),
        Expr::Func {
            func: Func::Coalesce,
            ty,
            args,
        } => {
            let mut kept = Vec::with_capacity(args.len());
            for arg in args {
                let arg = fold(arg)?;
                if is_null_const(&arg) {
                    continue;
                }
                let stop = is_const(&arg);
                kept.push(arg);
                if stop {
                    break;
                }
            }
            match kept.len() {
                0 => {
                    return Ok(Expr::Const {
                        value: Datum::Null,
                        ty,
                    })
                }
                1 if is_const(&kept[0]) => {
                    let mut value = kept.remove(0);
                    widen_int_const(&mut value, &ty);
                    return Ok(value);
                }
                _ => {
                    let mut coalesce = Expr::Func {
                        func: Func::Coalesce,
                        ty,
                        args: kept,
                    };
                    widen_int_operands(&mut coalesce);
                    coalesce
                }
            }
        }
        other => {
            let mut folded = map_children(other)?;
            widen_int_operands(&mut folded);
            folded
        }
    };
    if is_strict(&folded) && has_null_const_arg(&folded) {
        return Ok(null_of(&folded));
    }
    let mut has_column = false;
    folded.for_each_column(&mut |_| has_column = true);
    if has_column {
        return Ok(folded);
    }
    let value = eval(&folded, &|_| None)
        .map_err(|_| FoldError)?
        .into_owned();
    Ok(Expr::Const {
        value,
        ty: folded.ty(),
    })
}

/// AND (`is_or == false`) / OR over folded arms, in order.
fn junction(items: Vec<Expr>, is_or: bool) -> Result<Expr, FoldError> {
    let mut kept = Vec::with_capacity(items.len());
    let mut saw_null = false;
    for item in items {
        match fold(item)? {
            Expr::Const {
                value: Datum::Bool(v),
                ..
            } => {
                if v == is_or {
                    return Ok(bool_const(is_or));
                }
            }
            Expr::Const {
                value: Datum::Null, ..
            } => saw_null = true,
            other => kept.push(other),
        }
    }
    if saw_null {
        kept.push(Expr::Const {
            value: Datum::Null,
            ty: super::types::Type::Bool,
        });
    }
    Ok(match kept.len() {
        0 => bool_const(!is_or),
        1 => kept.remove(0),
        _ if is_or => Expr::Or(kept),
        _ => Expr::And(kept),
    })
}

/// Folds a boxed child in place, reusing its allocation.
fn fold_box(mut expr: Box<Expr>) -> Result<Box<Expr>, FoldError> {
    let inner = std::mem::replace(&mut *expr, Expr::And(Vec::new()));
    *expr = fold(inner)?;
    Ok(expr)
}

fn fold_all(items: Vec<Expr>) -> Result<Vec<Expr>, FoldError> {
    items.into_iter().map(fold).collect()
}

fn map_children(expr: Expr) -> Result<Expr, FoldError> {
    Ok(match expr {
        Expr::Cast { arg, to, implicit } => Expr::Cast {
            arg: fold_box(arg)?,
            to,
            implicit,
        },
        Expr::Compare { op, ty, lhs, rhs } => Expr::Compare {
            op,
            ty,
            lhs: fold_box(lhs)?,
            rhs: fold_box(rhs)?,
        },
        Expr::Distinct {
            negated,
            ty,
            lhs,
            rhs,
        } => Expr::Distinct {
            negated,
            ty,
            lhs: fold_box(lhs)?,
            rhs: fold_box(rhs)?,
        },
        Expr::Not(arg) => Expr::Not(fold_box(arg)?),
        Expr::NullTest { arg, negated } => Expr::NullTest {
            arg: fold_box(arg)?,
            negated,
        },
        Expr::BoolTest { arg, test } => Expr::BoolTest {
            arg: fold_box(arg)?,
            test,
        },
        Expr::Like {
            arg,
            pattern,
            negated,
            case_insensitive,
        } => Expr::Like {
            arg: fold_box(arg)?,
            pattern: fold_box(pattern)?,
            negated,
            case_insensitive,
        },
        Expr::In {
            arg,
            items,
            negated,
        } => Expr::In {
            arg: fold_box(arg)?,
            items: fold_all(items)?,
            negated,
        },
        Expr::Arith { op, ty, lhs, rhs } => Expr::Arith {
            op,
            ty,
            lhs: fold_box(lhs)?,
            rhs: fold_box(rhs)?,
        },
        Expr::Unary { op, ty, arg } => Expr::Unary {
            op,
            ty,
            arg: fold_box(arg)?,
        },
        Expr::Concat { lhs, rhs } => Expr::Concat {
            lhs: fold_box(lhs)?,
            rhs: fold_box(rhs)?,
        },
        Expr::Func { func, ty, args } => Expr::Func {
            func,
            ty,
            args: fold_all(args)?,
        },
        Expr::AnyAll {
            op,
            all,
            ty,
            arg,
            array,
        } => Expr::AnyAll {
            op,
            all,
            ty,
            arg: fold_box(arg)?,
            array: fold_box(array)?,
        },
        Expr::ArrayOp { op, lhs, rhs } => Expr::ArrayOp {
            op,
            lhs: fold_box(lhs)?,
            rhs: fold_box(rhs)?,
        },
        Expr::Subscript {
            arg,
            subscripts,
            ty,
        } => Expr::Subscript {
            arg: fold_box(arg)?,
            subscripts: fold_all(subscripts)?,
            ty,
        },
        Expr::ArrayCtor { elem, items } => Expr::ArrayCtor {
            elem,
            items: fold_all(items)?,
        },
        other @ (Expr::Const { .. }
        | Expr::Column { .. }
        | Expr::Sublink { .. }
        | Expr::And(_)
        | Expr::Or(_)) => other,
    })
}

/// Lowering gives integer operands the width of their operator (`int4 = int8` compares in
/// int8) by retyping constants and leaving other integer expressions as they are (integers
/// share one representation, and a column stays bare for indexes). A subexpression that folds
/// to a constant must be retyped the same way: `id > 1 - 1` would otherwise render as
/// `'0'::int4`, which parses back as an int8 constant (`to_sql` not a fixed point), and a
/// COALESCE folded to its narrower argument would change the type of the arithmetic around it.
fn widen_int_operands(expr: &mut Expr) {
    match expr {
        Expr::Compare { ty, lhs, rhs, .. } | Expr::Distinct { ty, lhs, rhs, .. } => {
            widen_int_const(lhs, ty);
            widen_int_const(rhs, ty);
        }
        Expr::AnyAll { ty, arg, .. } => widen_int_const(arg, ty),
        Expr::Func {
            func: Func::Coalesce | Func::Greatest | Func::Least,
            ty,
            args,
        } => args.iter_mut().for_each(|arg| widen_int_const(arg, ty)),
        Expr::ArrayCtor { elem, items } => {
            items
                .iter_mut()
                .for_each(|item| widen_int_const(item, elem));
        }
        Expr::In { arg, items, .. } => {
            // The comparison type is not stored; for integers it is the operands' type when
            // they all have the same one, else int8 (`coerce::common_type`).
            let mut types = std::iter::once(arg.ty()).chain(items.iter().map(Expr::ty));
            let first = types.next().expect("IN has its left operand");
            let mut common = Some(first.clone());
            for ty in types {
                common = match common {
                    Some(c) if c == ty => Some(c),
                    Some(c) if c.is_integer() && ty.is_integer() => Some(Type::Int8),
                    _ => None,
                };
            }
            if let Some(common) = common.filter(Type::is_integer) {
                widen_int_const(arg, &common);
                items
                    .iter_mut()
                    .for_each(|item| widen_int_const(item, &common));
            }
        }
        _ => {}
    }
}

/// Retypes an integer constant to a wider integer type (never narrower: the value may not fit).
fn widen_int_const(expr: &mut Expr, to: &Type) {
    let rank = |ty: &Type| match ty {
        Type::Int2 => 2,
        Type::Int4 => 4,
        Type::Int8 => 8,
        _ => 0,
    };
    if let Expr::Const { ty, .. } = expr {
        if rank(ty) > 0 && rank(ty) < rank(to) {
            *ty = to.clone();
        }
    }
}

/// Nodes that are strict functions or operators in Postgres (NULL in, NULL out).
fn is_strict(expr: &Expr) -> bool {
    match expr {
        Expr::Compare { .. }
        | Expr::Like { .. }
        | Expr::Arith { .. }
        | Expr::Unary { .. }
        | Expr::Concat { .. }
        | Expr::ArrayOp { .. }
        | Expr::Cast { .. } => true,
        Expr::Func { func, .. } => !matches!(
            func,
            Func::Concat | Func::Coalesce | Func::Greatest | Func::Least
        ),
        _ => false,
    }
}

fn has_null_const_arg(expr: &Expr) -> bool {
    match expr {
        Expr::Compare { lhs, rhs, .. }
        | Expr::Arith { lhs, rhs, .. }
        | Expr::Concat { lhs, rhs }
        | Expr::ArrayOp { lhs, rhs, .. } => is_null_const(lhs) || is_null_const(rhs),
        Expr::Like { arg, pattern, .. } => is_null_const(arg) || is_null_const(pattern),
        Expr::Unary { arg, .. } | Expr::Cast { arg, .. } => is_null_const(arg),
        Expr::Func { args, .. } => args.iter().any(is_null_const),
        _ => false,
    }
}
