//! Templates: predicates of the form `expression OP constant` where the expression reads the
//! row. Shapes with the same expression and operator differ only in their constant, so the
//! router evaluates the expression once per row and compares the result with each shape's
//! constant. That is exactly what evaluating each predicate does: a NULL or failed expression,
//! or a failed comparison, makes the comparison not TRUE for every shape of the group.

use super::super::datum::{compare, Datum};
use super::super::eval::{self, Row};
use super::super::expr::{CmpOp, Expr};
use super::super::render;
use super::super::types::Type;
use super::super::Predicate;
use super::key::{self, Key, KeyTy};

#[derive(Clone, Debug)]
pub(crate) struct Template {
    /// Equal for two templates exactly when they have the same expression, comparison type
    /// and operator (the expression is rendered canonically).
    signature: String,
    source: Expr,
    op: CmpOp,
    ty: Type,
    constant: Datum<'static>,
}

/// How the comparison `value OP constant` relates keys: keys are equal exactly when values
/// are, and for ordered key types order like them, so a group's TRUE members are the ones
/// with equal, unequal, greater or smaller constant keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    Equal,
    Unequal,
    /// TRUE when value < constant (or ≤).
    Less {
        or_equal: bool,
    },
    /// TRUE when value > constant (or ≥).
    Greater {
        or_equal: bool,
    },
    /// Compare with each constant.
    Linear,
}

/// The expression's value for one row; `None` when it is NULL or failed to evaluate.
pub(crate) struct TemplateValue<'a>(Option<Datum<'a>>);

/// The predicate's template, if it is a comparison of a row-dependent expression with a
/// non-null constant.
pub(crate) fn template(predicate: &Predicate) -> Option<Template> {
    template_of(&predicate.expr)
}

/// [`template`] of one expression (a conjunct or a branch of a larger clause).
pub(crate) fn template_of(expr: &Expr) -> Option<Template> {
    let Expr::Compare { op, ty, lhs, rhs } = expr else {
        return None;
    };
    let (source, constant, op) = match (lhs.as_ref(), rhs.as_ref()) {
        (_, Expr::Const { value, .. }) => (lhs, value, *op),
        (Expr::Const { value, .. }, _) => (rhs, value, super::flip(*op)),
        _ => return None,
    };
    let mut reads_row = false;
    source.for_each_column(&mut |_| reads_row = true);
    if !reads_row || constant.is_null() {
        return None;
    }
    let mut signature = String::new();
    render::render(source, &mut signature);
    signature.push('\0');
    signature.push_str(op.sql());
    signature.push('\0');
    signature.push_str(&ty.to_string());
    Some(Template {
        signature,
        source: source.as_ref().clone(),
        op,
        ty: ty.clone(),
        constant: constant.clone(),
    })
}

impl Template {
    pub(crate) fn signature(&self) -> &str {
        &self.signature
    }

    /// How a group of this template can find its TRUE members from the value's key.
    pub(crate) fn layout(&self) -> Layout {
        let Some(key_ty) = KeyTy::of(&self.ty) else {
            return Layout::Linear;
        };
        match self.op {
            CmpOp::Eq => Layout::Equal,
            CmpOp::Ne => Layout::Unequal,
            _ if !key_ty.is_ordered() => Layout::Linear,
            CmpOp::Lt => Layout::Less { or_equal: false },
            CmpOp::Le => Layout::Less { or_equal: true },
            CmpOp::Gt => Layout::Greater { or_equal: false },
            CmpOp::Ge => Layout::Greater { or_equal: true },
        }
    }

    /// The constant's key (for every layout but `Linear`).
    pub(crate) fn constant_key(&self) -> Option<Box<[u8]>> {
        let key = key::encode(KeyTy::of(&self.ty)?, &self.constant)?;
        Some(key.into_boxed())
    }

    pub(crate) fn evaluate<'a, 'r: 'a>(&'a self, row: &Row<'r>) -> TemplateValue<'a> {
        TemplateValue(eval::eval(&self.source, row).ok().filter(|v| !v.is_null()))
    }

    /// Whether the comparison is TRUE for this value (computed by a template with the same
    /// signature).
    pub(crate) fn holds(&self, value: &TemplateValue<'_>) -> bool {
        value.0.as_ref().is_some_and(|v| {
            compare(&self.ty, v, &self.constant).is_some_and(|ordering| self.op.holds(ordering))
        })
    }

    /// The value's key (for every layout but `Linear`); `None` when the value is NULL or
    /// failed, so the comparison is TRUE for no member.
    pub(crate) fn value_key<'v>(&self, value: &'v TemplateValue<'_>) -> Option<Key<'v>> {
        key::encode(KeyTy::of(&self.ty)?, value.0.as_ref()?)
    }
}
