//! Evaluation of the array operators: `ANY`/`ALL`, containment and overlap, subscripts.

use super::array::{offset_of, ArrayDatum};
use super::cast;
use super::datum::{compare, Datum};
use super::eval::EvalError;
use super::expr::{ArrayOp, CmpOp};
use super::types::Type;

type Value<'a> = Result<Datum<'a>, EvalError>;

fn as_array<'v, 'a>(value: &'v Datum<'a>) -> Result<&'v ArrayDatum<'a>, EvalError> {
    match value {
        Datum::Array(array) => Ok(array),
        _ => Err(EvalError),
    }
}

/// `arg op ANY/ALL (array)` with SQL's NULL rules: ANY is true if some comparison is true,
/// else NULL if a comparison was NULL, else false (ALL mirrors it); an empty array gives
/// false for ANY and true for ALL even when `arg` is NULL.
pub(crate) fn any_all<'a>(
    op: CmpOp,
    all: bool,
    ty: &Type,
    arg: Datum<'a>,
    array: Datum<'a>,
    array_ty: &Type,
) -> Value<'a> {
    if array.is_null() {
        return Ok(Datum::Null);
    }
    let array = as_array(&array)?;
    if array.elems.is_empty() {
        return Ok(Datum::Bool(all));
    }
    if arg.is_null() {
        return Ok(Datum::Null);
    }
    let elem_ty = match array_ty {
        Type::Array(elem) => elem.as_ref(),
        _ => return Err(EvalError),
    };
    // Integers of every width share one representation: no conversion needed.
    let convert = elem_ty != ty && !(elem_ty.is_integer() && ty.is_integer());
    let mut saw_null = false;
    for elem in &array.elems {
        if elem.is_null() {
            saw_null = true;
            continue;
        }
        let ordering = if convert {
            let converted = cast::cast(elem.reborrow(), elem_ty, ty).map_err(|_| EvalError)?;
            compare(ty, &arg, &converted)
        } else {
            compare(ty, &arg, elem)
        }
        .ok_or(EvalError)?;
        let holds = op.holds(ordering);
        if holds != all {
            return Ok(Datum::Bool(holds));
        }
    }
    Ok(if saw_null {
        Datum::Null
    } else {
        Datum::Bool(all)
    })
}

/// Whether every element of `needles` equals some element of `haystack`; NULL elements
/// never match (so a needle array with a NULL is never contained).
fn contains(
    elem: &Type,
    haystack: &ArrayDatum<'_>,
    needles: &ArrayDatum<'_>,
) -> Result<bool, EvalError> {
    for needle in &needles.elems {
        if !found(elem, haystack, needle)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn found(elem: &Type, haystack: &ArrayDatum<'_>, needle: &Datum<'_>) -> Result<bool, EvalError> {
    if needle.is_null() {
        return Ok(false);
    }
    for candidate in &haystack.elems {
        if !candidate.is_null() && compare(elem, needle, candidate).ok_or(EvalError)?.is_eq() {
            return Ok(true);
        }
    }
    Ok(false)
}

fn equal(elem: &Type, l: &ArrayDatum<'_>, r: &ArrayDatum<'_>) -> Result<bool, EvalError> {
    if l.dims != r.dims {
        return Ok(false);
    }
    for (a, b) in l.elems.iter().zip(&r.elems) {
        let same = match (a.is_null(), b.is_null()) {
            (true, true) => true,
            (false, false) => compare(elem, a, b).ok_or(EvalError)?.is_eq(),
            _ => false,
        };
        if !same {
            return Ok(false);
        }
    }
    Ok(true)
}

pub(crate) fn array_op<'a>(op: ArrayOp, elem: &Type, lhs: Datum<'a>, rhs: Datum<'a>) -> Value<'a> {
    if lhs.is_null() || rhs.is_null() {
        return Ok(Datum::Null);
    }
    let (l, r) = (as_array(&lhs)?, as_array(&rhs)?);
    let result = match op {
        ArrayOp::Eq => equal(elem, l, r)?,
        ArrayOp::Ne => !equal(elem, l, r)?,
        ArrayOp::Contains => contains(elem, l, r)?,
        ArrayOp::ContainedBy => contains(elem, r, l)?,
        ArrayOp::Overlaps => {
            let mut any = false;
            for needle in &r.elems {
                if found(elem, l, needle)? {
                    any = true;
                    break;
                }
            }
            any
        }
    };
    Ok(Datum::Bool(result))
}

/// An element by subscripts; NULL when out of bounds or when the subscript count does not
/// match the array's dimensions.
pub(crate) fn subscript<'a>(array: Datum<'a>, subscripts: &[i64]) -> Value<'a> {
    let Datum::Array(array) = array else {
        return if array.is_null() {
            Ok(Datum::Null)
        } else {
            Err(EvalError)
        };
    };
    let mut array = *array;
    Ok(match offset_of(&array, subscripts) {
        // Move the element out rather than cloning it (it may own text).
        Some(index) => array.elems.swap_remove(index),
        None => Datum::Null,
    })
}
