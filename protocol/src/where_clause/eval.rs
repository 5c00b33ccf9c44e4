//! Evaluation of a typed expression over one row in pgoutput text form, with SQL's
//! three-valued logic. Any evaluation error (a value that does not parse, a failing cast)
//! makes the whole predicate false, as upstream treats it.

use std::borrow::Cow;
use std::cell::OnceCell;

use super::arith;
use super::array;
use super::cast;
use super::datum::{compare, Datum};
use super::eval_array;
use super::expr::{BoolTest, Expr};
use super::func::{self, Func};
use super::input;
use super::like;
use super::types::{Category, Type};

/// The row could not be evaluated; the predicate counts as false.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct EvalError;

type Value<'a> = Result<Datum<'a>, EvalError>;

/// One row: the text form of column `i`, `None` for NULL.
pub(crate) type Row<'r> = dyn Fn(usize) -> Option<&'r [u8]> + 'r;

pub(crate) fn eval<'a, 'r: 'a>(expr: &'a Expr, row: &Row<'r>) -> Value<'a> {
    eval_in(expr, &Env { row, columns: None })
}

/// [`eval`] with the row's decoded columns shared through `columns`, so each column is
/// decoded once per row however many predicates read it.
pub(crate) fn eval_shared<'a, 'r: 'a>(
    expr: &'a Expr,
    row: &Row<'r>,
    columns: &'a Columns<'r>,
) -> Value<'a> {
    eval_in(
        expr,
        &Env {
            row,
            columns: Some(columns),
        },
    )
}

/// The decoded columns of one row, filled as predicates read them (see [`eval_shared`]).
pub(crate) struct Columns<'r> {
    /// Per column: the type it was decoded as and its value (`None`: it failed to decode).
    cells: Vec<OnceCell<(Type, Option<Datum<'r>>)>>,
}

impl Columns<'_> {
    /// Room for columns `0..width`; others are decoded on each read.
    pub(crate) fn new(width: usize) -> Self {
        Columns {
            cells: (0..width).map(|_| OnceCell::new()).collect(),
        }
    }
}

/// What evaluation reads: the row, and optionally the row's shared decoded columns.
struct Env<'e, 'c, 'r> {
    row: &'e Row<'r>,
    columns: Option<&'c Columns<'r>>,
}

impl<'r> Env<'_, '_, 'r> {
    fn bytes(&self, index: usize) -> Option<&'r [u8]> {
        (self.row)(index)
    }
}

fn column<'r>(index: usize, ty: &Type, row: &Row<'r>) -> Value<'r> {
    let Some(bytes) = row(index) else {
        return Ok(Datum::Null);
    };
    let text = std::str::from_utf8(bytes).map_err(|_| EvalError)?;
    let readable_array = matches!(ty, Type::Array(elem) if elem.is_array_element());
    if ty.category() == Category::Unsupported && !readable_array {
        return Ok(Datum::Text(Cow::Borrowed(text)));
    }
    input::parse(ty, text).map_err(|_| EvalError)
}

fn eval_in<'a, 'r: 'a>(expr: &'a Expr, row: &Env<'_, 'a, 'r>) -> Value<'a> {
    match expr {
        Expr::Const { value, .. } => Ok(value.reborrow()),
        // Memberships are answered by the subquery plan from the dependency's view; a plain
        // evaluation has no view, so it cannot say (routing uses a relaxed clause instead).
        Expr::Sublink { .. } => Err(EvalError),
        Expr::Column { index, ty, .. } => {
            let Some(cell) = row.columns.and_then(|c| c.cells.get(*index)) else {
                return column(*index, ty, row.row);
            };
            let (decoded_as, value) =
                cell.get_or_init(|| (ty.clone(), column(*index, ty, row.row).ok()));
            if decoded_as != ty {
                return column(*index, ty, row.row);
            }
            value.as_ref().map(Datum::reborrow).ok_or(EvalError)
        }
        Expr::Cast { arg, to, .. } => {
            let value = eval_in(arg, row)?;
            cast::cast(value, &arg.ty(), to).map_err(|_| EvalError)
        }
        Expr::Compare { op, ty, lhs, rhs } => {
            let (l, r) = (eval_in(lhs, row)?, eval_in(rhs, row)?);
            if l.is_null() || r.is_null() {
                return Ok(Datum::Null);
            }
            let ordering = compare(ty, &l, &r).ok_or(EvalError)?;
            Ok(Datum::Bool(op.holds(ordering)))
        }
        Expr::Distinct {
            negated,
            ty,
            lhs,
            rhs,
        } => {
            let (l, r) = (eval_in(lhs, row)?, eval_in(rhs, row)?);
            let distinct = match (l.is_null(), r.is_null()) {
                (true, true) => false,
                (true, false) | (false, true) => true,
                (false, false) => !compare(ty, &l, &r).ok_or(EvalError)?.is_eq(),
            };
            Ok(Datum::Bool(distinct != *negated))
        }
        Expr::And(items) => junction(items, row, false),
        Expr::Or(items) => junction(items, row, true),
        Expr::Not(arg) => Ok(match truth(eval_in(arg, row)?)? {
            Some(v) => Datum::Bool(!v),
            None => Datum::Null,
        }),
        Expr::NullTest { arg, negated } => {
            // A column need not be parsed to know whether it is NULL.
            let is_null = match arg.as_ref() {
                Expr::Column { index, .. } => row.bytes(*index).is_none(),
                other => eval_in(other, row)?.is_null(),
            };
            Ok(Datum::Bool(is_null != *negated))
        }
        Expr::BoolTest { arg, test } => {
            let v = truth(eval_in(arg, row)?)?;
            Ok(Datum::Bool(match test {
                BoolTest::True => v == Some(true),
                BoolTest::NotTrue => v != Some(true),
                BoolTest::False => v == Some(false),
                BoolTest::NotFalse => v != Some(false),
                BoolTest::Unknown => v.is_none(),
                BoolTest::NotUnknown => v.is_some(),
            }))
        }
        Expr::Like {
            arg,
            pattern,
            negated,
            case_insensitive,
        } => {
            let (text, pattern) = (eval_in(arg, row)?, eval_in(pattern, row)?);
            let (Datum::Text(text), Datum::Text(pattern)) = (&text, &pattern) else {
                return Ok(Datum::Null);
            };
            let hit = like::matches(text, pattern, *case_insensitive).map_err(|_| EvalError)?;
            Ok(Datum::Bool(hit != *negated))
        }
        Expr::In {
            arg,
            items,
            negated,
        } => {
            let value = eval_in(arg, row)?;
            if value.is_null() {
                return Ok(Datum::Null);
            }
            let ty = arg.ty();
            let mut saw_null = false;
            for item in items {
                let candidate = eval_in(item, row)?;
                if candidate.is_null() {
                    saw_null = true;
                } else if compare(&ty, &value, &candidate).ok_or(EvalError)?.is_eq() {
                    return Ok(Datum::Bool(!*negated));
                }
            }
            Ok(if saw_null {
                Datum::Null
            } else {
                Datum::Bool(*negated)
            })
        }
        Expr::Arith { op, ty, lhs, rhs } => {
            let (l, r) = (eval_in(lhs, row)?, eval_in(rhs, row)?);
            if l.is_null() || r.is_null() {
                return Ok(Datum::Null);
            }
            arith::binary(*op, ty, &l, &r).map_err(|_| EvalError)
        }
        Expr::Unary { op, ty, arg } => {
            let value = eval_in(arg, row)?;
            if value.is_null() {
                return Ok(Datum::Null);
            }
            arith::unary(*op, ty, &value).map_err(|_| EvalError)
        }
        Expr::Concat { lhs, rhs } => {
            let (l, r) = (eval_in(lhs, row)?, eval_in(rhs, row)?);
            match (l, r) {
                (Datum::Text(l), Datum::Text(r)) => {
                    let mut out = String::with_capacity(l.len() + r.len());
                    out.push_str(&l);
                    out.push_str(&r);
                    Ok(Datum::Text(Cow::Owned(out)))
                }
                (Datum::Null, _) | (_, Datum::Null) => Ok(Datum::Null),
                _ => Err(EvalError),
            }
        }
        Expr::Func { func, ty, args } => eval_func(*func, ty, args, row),
        Expr::AnyAll {
            op,
            all,
            ty,
            arg,
            array,
        } => eval_array::any_all(
            *op,
            *all,
            ty,
            eval_in(arg, row)?,
            eval_in(array, row)?,
            &array.ty(),
        ),
        Expr::ArrayOp { op, lhs, rhs } => {
            let elem = match lhs.ty() {
                Type::Array(elem) => *elem,
                _ => return Err(EvalError),
            };
            eval_array::array_op(*op, &elem, eval_in(lhs, row)?, eval_in(rhs, row)?)
        }
        Expr::Subscript {
            arg, subscripts, ..
        } => {
            let value = eval_in(arg, row)?;
            let mut indexes = [0i64; array::DIMS_MAX];
            if subscripts.len() > array::DIMS_MAX {
                return Ok(Datum::Null);
            }
            for (slot, subscript) in indexes.iter_mut().zip(subscripts) {
                match eval_in(subscript, row)? {
                    Datum::Int(i) => *slot = i,
                    Datum::Null => return Ok(Datum::Null),
                    _ => return Err(EvalError),
                }
            }
            eval_array::subscript(value, &indexes[..subscripts.len()])
        }
        Expr::ArrayCtor { items, .. } => {
            let mut elems = Vec::with_capacity(items.len());
            for item in items {
                elems.push(eval_in(item, row)?);
            }
            let len = i32::try_from(elems.len()).map_err(|_| EvalError)?;
            Ok(Datum::Array(Box::new(array::ArrayDatum {
                elems,
                dims: vec![(1, len)],
            })))
        }
    }
}

fn eval_func<'a, 'r: 'a>(
    func: Func,
    ty: &Type,
    args: &'a [Expr],
    row: &Env<'_, 'a, 'r>,
) -> Value<'a> {
    match func {
        Func::Coalesce => {
            // Later arguments are not evaluated once a value is found, as in Postgres.
            for arg in args {
                let value = eval_in(arg, row)?;
                if !value.is_null() {
                    return Ok(value);
                }
            }
            Ok(Datum::Null)
        }
        Func::Greatest | Func::Least => {
            let mut best = Datum::Null;
            for arg in args {
                let value = eval_in(arg, row)?;
                if value.is_null() {
                    continue;
                }
                best = if best.is_null() {
                    value
                } else {
                    func::pick(func == Func::Greatest, ty, best, value).ok_or(EvalError)?
                };
            }
            Ok(best)
        }
        Func::Concat => {
            let mut out = String::new();
            for arg in args {
                let value = eval_in(arg, row)?;
                if !value.is_null() {
                    out.push_str(&func::concat_piece(value, &arg.ty()));
                }
            }
            Ok(Datum::Text(Cow::Owned(out)))
        }
        _ => {
            let mut values = Vec::with_capacity(args.len());
            for arg in args {
                let value = eval_in(arg, row)?;
                if value.is_null() {
                    return Ok(Datum::Null);
                }
                values.push(value);
            }
            func::apply_strict(func, &values).ok_or(EvalError)
        }
    }
}

fn truth(value: Datum<'_>) -> Result<Option<bool>, EvalError> {
    match value {
        Datum::Bool(v) => Ok(Some(v)),
        Datum::Null => Ok(None),
        _ => Err(EvalError),
    }
}

/// AND (`is_or == false`) / OR: the deciding value wins at once, otherwise NULL if any operand
/// was NULL. Operands are evaluated left to right, as Postgres does in practice.
fn junction<'a, 'r: 'a>(items: &'a [Expr], row: &Env<'_, 'a, 'r>, is_or: bool) -> Value<'a> {
    let mut saw_null = false;
    for item in items {
        match truth(eval_in(item, row)?)? {
            Some(v) if v == is_or => return Ok(Datum::Bool(is_or)),
            Some(_) => {}
            None => saw_null = true,
        }
    }
    Ok(if saw_null {
        Datum::Null
    } else {
        Datum::Bool(!is_or)
    })
}
