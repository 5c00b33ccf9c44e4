//! What the shape router (`crate::routing`) needs to know about a predicate: which index probes
//! can find every row it accepts (its access plan), or, failing that, whether it is a
//! `expression OP constant` comparison that can be evaluated in a batch with others of the same
//! expression (its template).
//!
//! The contract of an access plan: if the predicate is TRUE for a row, at least one of the
//! plan's probes hits that row. Probes may also hit rows the predicate rejects, so the router
//! verifies candidates with [`Predicate::eval`]. An empty plan means the predicate is never
//! TRUE. Probes are derived from one conjunct of a top-level AND (the cheapest one) and from
//! every branch of an OR; anything else (NOT, `<>`, functions of columns, casts that change
//! values) has no plan.

mod key;
mod like;
mod program;
mod template;
mod terms;

pub(crate) use key::{Key, KeyTy};
pub(crate) use like::{like_of, LikePattern, LikeTerm, LikeValue, PatternKind};
pub(crate) use program::{ProgramRef, Programs, RowKeys, Shared};
pub(crate) use template::{template, Layout, Template};
pub(crate) use terms::{terms, Term};

use super::datum::Datum;
use super::expr::{ArrayOp, BoolTest, CmpOp, Expr};
use super::types::Type;
use super::Predicate;

/// How a row's column becomes keys: parsed as the column's type, keyed by the comparison's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeyClass {
    pub(crate) column: usize,
    /// The column's type (for arrays, the array type).
    parse: Type,
    key: KeyTy,
}

impl KeyClass {
    pub(crate) fn is_ordered(&self) -> bool {
        self.key.is_ordered()
    }

    /// The key of a row value; `None` if it does not parse (no probe on it can be TRUE).
    pub(crate) fn row_key<'r>(&self, bytes: &'r [u8]) -> Option<Key<'r>> {
        key::encode(self.key, &key::parse_row(&self.parse, bytes)?)
    }

    /// The keys of an array value's elements (`None` for NULL elements), or `None` if the
    /// value does not parse. Allocates the element list.
    pub(crate) fn row_elements<'r>(&self, bytes: &'r [u8]) -> Option<Vec<Option<Key<'r>>>> {
        match key::parse_row(&self.parse, bytes)? {
            Datum::Array(array) => Some(
                array
                    .elems
                    .into_iter()
                    .map(|elem| {
                        let key = key::encode(self.key, &elem)?;
                        Some(owned_key(key))
                    })
                    .collect(),
            ),
            _ => None,
        }
    }

    /// The string a row value reads as (for prefix probes), or `None` if it does not parse.
    pub(crate) fn row_text<'r>(&self, bytes: &'r [u8]) -> Option<std::borrow::Cow<'r, str>> {
        match key::parse_row(&self.parse, bytes)? {
            Datum::Text(text) => Some(text),
            _ => None,
        }
    }
}

/// A key that outlives the datum it came from (array elements are parsed into a temporary).
fn owned_key(key: Key<'_>) -> Key<'static> {
    match key {
        Key::Inline { len, buf } => Key::Inline { len, buf },
        Key::Bytes(bytes) => Key::Bytes(std::borrow::Cow::Owned(bytes.into_owned())),
    }
}

/// One index probe: the rows it hits are a superset of the rows where its conjunct is TRUE.
#[derive(Clone, Debug)]
pub(crate) struct Probe {
    pub(crate) class: KeyClass,
    pub(crate) kind: ProbeKind,
}

#[derive(Clone, Debug)]
pub(crate) enum ProbeKind {
    /// The value's key is one of these (`=`, `IN`, `= ANY`).
    OneOf(Vec<Box<[u8]>>),
    /// The value's key is ≥ this (`>`, `>=`; strictness is left to verification).
    AtLeast(Box<[u8]>),
    /// The value's key is ≤ this (`<`, `<=`).
    AtMost(Box<[u8]>),
    /// low ≤ key ≤ high (a lower and an upper bound in one AND, e.g. BETWEEN).
    Within(Box<[u8]>, Box<[u8]>),
    /// The string starts with these characters, compared after [`ilike_fold`] when
    /// `case_insensitive` (the characters are stored folded).
    Prefix {
        chars: Vec<char>,
        case_insensitive: bool,
    },
    /// The array column has an element with this key (`@>`).
    HasElement(Box<[u8]>),
    /// The array column has an element among these keys (`&&`).
    AnyElementOf(Vec<Box<[u8]>>),
    /// Every element of the array column is non-null with a key among these (`<@`); an empty
    /// array qualifies.
    ElementsWithin(Vec<Box<[u8]>>),
    /// The column is not NULL.
    NotNull,
}

impl ProbeKind {
    /// Rough cost: how many rows a probe tends to hit, for choosing among conjuncts.
    fn cost(&self) -> u64 {
        match self {
            ProbeKind::OneOf(keys) => keys.len() as u64,
            ProbeKind::Within(..) => 4,
            ProbeKind::HasElement(_) => 6,
            ProbeKind::Prefix { chars, .. } => 16u64.saturating_sub(chars.len() as u64).max(6),
            ProbeKind::AnyElementOf(keys) => 2 * keys.len() as u64,
            ProbeKind::ElementsWithin(_) => 40,
            ProbeKind::AtLeast(_) | ProbeKind::AtMost(_) => 100,
            ProbeKind::NotNull => 1000,
        }
    }
}

/// Single-character lowercase mapping, as ILIKE compares characters (see `like`): a character
/// whose lowercase is several characters stays as it is.
pub(crate) fn ilike_fold(c: char) -> char {
    if c == '\u{130}' {
        // İ: Rust lowercases it to two characters, the C library (as Postgres) to `i`.
        return 'i';
    }
    let mut lower = c.to_lowercase();
    match (lower.next(), lower.next()) {
        (Some(l), None) => l,
        _ => c,
    }
}

/// The probes that find every row `predicate` accepts, or `None` if it has no access plan.
pub(crate) fn access_plan(predicate: &Predicate) -> Option<Vec<Probe>> {
    access(&predicate.expr).map(|(_, probes)| probes)
}

type Access = (u64, Vec<Probe>);

fn never() -> Option<Access> {
    Some((0, Vec::new()))
}

fn single(class: KeyClass, kind: ProbeKind) -> Option<Access> {
    Some((kind.cost(), vec![Probe { class, kind }]))
}

fn access(expr: &Expr) -> Option<Access> {
    match expr {
        Expr::And(items) => and_access(items),
        Expr::Or(items) => {
            let mut cost = 0u64;
            let mut probes = Vec::new();
            for item in items {
                let (c, p) = access(item)?;
                cost = cost.saturating_add(c);
                probes.extend(p);
            }
            Some((cost, probes))
        }
        Expr::BoolTest {
            arg,
            test: BoolTest::True,
        } => access(arg),
        Expr::Compare { op, ty, lhs, rhs } => compare_access(*op, ty, lhs, rhs),
        Expr::In {
            arg,
            items,
            negated: false,
        } => {
            let class = key_class(arg, &arg.ty())?;
            let mut keys = Vec::new();
            for item in items {
                let Expr::Const { value, .. } = item else {
                    return None;
                };
                if !value.is_null() {
                    keys.push(key::encode(class.key, value)?.into_boxed());
                }
            }
            if keys.is_empty() {
                return never();
            }
            single(class, ProbeKind::OneOf(keys))
        }
        Expr::AnyAll {
            op: CmpOp::Eq,
            all: false,
            ty,
            arg,
            array,
        } => {
            let class = key_class(arg, ty)?;
            let Expr::Const {
                value,
                ty: array_ty,
            } = array.as_ref()
            else {
                return None;
            };
            let Type::Array(elem) = array_ty else {
                return None;
            };
            // Elements of another type would be converted before comparing; not keyed here.
            if **elem != *ty && !(elem.is_integer() && ty.is_integer()) {
                return None;
            }
            let keys = const_elements(class.key, value)?;
            if keys.is_empty() {
                return never();
            }
            single(class, ProbeKind::OneOf(keys))
        }
        Expr::Like {
            arg,
            pattern,
            negated: false,
            case_insensitive,
        } => {
            let Expr::Column { index, ty, .. } = arg.as_ref() else {
                return None;
            };
            let Expr::Const {
                value: Datum::Text(pattern),
                ..
            } = pattern.as_ref()
            else {
                return None;
            };
            if !ty.is_string() {
                return None;
            }
            let chars = literal_prefix(pattern, *case_insensitive)?;
            let class = KeyClass {
                column: *index,
                parse: ty.clone(),
                key: KeyTy::Text,
            };
            single(
                class,
                ProbeKind::Prefix {
                    chars,
                    case_insensitive: *case_insensitive,
                },
            )
        }
        Expr::ArrayOp { op, lhs, rhs } => array_access(*op, lhs, rhs),
        Expr::NullTest { arg, negated: true } => {
            let Expr::Column { index, ty, .. } = arg.as_ref() else {
                return None;
            };
            let class = KeyClass {
                column: *index,
                parse: ty.clone(),
                key: KeyTy::Text,
            };
            single(class, ProbeKind::NotNull)
        }
        _ => None,
    }
}

/// The cheapest conjunct, or a lower and an upper bound on one column combined.
fn and_access(items: &[Expr]) -> Option<Access> {
    let mut best: Option<Access> = None;
    let mut lows: Vec<(KeyClass, Box<[u8]>)> = Vec::new();
    let mut highs: Vec<(KeyClass, Box<[u8]>)> = Vec::new();
    for item in items {
        let Some((cost, probes)) = access(item) else {
            continue;
        };
        if let [probe] = probes.as_slice() {
            match &probe.kind {
                ProbeKind::AtLeast(k) => lows.push((probe.class.clone(), k.clone())),
                ProbeKind::AtMost(k) => highs.push((probe.class.clone(), k.clone())),
                _ => {}
            }
        }
        if best.as_ref().is_none_or(|(c, _)| cost < *c) {
            best = Some((cost, probes));
        }
    }
    for (class, low) in &lows {
        if let Some((_, high)) = highs.iter().find(|(c, _)| c == class) {
            let within = ProbeKind::Within(low.clone(), high.clone());
            if best.as_ref().is_none_or(|(c, _)| within.cost() < *c) {
                best = single(class.clone(), within);
            }
        }
    }
    best
}

fn compare_access(op: CmpOp, ty: &Type, lhs: &Expr, rhs: &Expr) -> Option<Access> {
    // Put the column on the left: `5 < x` is `x > 5`.
    let (column, constant, op) = match (lhs, rhs) {
        (_, Expr::Const { value, .. }) => (lhs, value, op),
        (Expr::Const { value, .. }, _) => (rhs, value, flip(op)),
        _ => return None,
    };
    let class = key_class(column, ty)?;
    if constant.is_null() {
        return never();
    }
    let key = key::encode(class.key, constant)?.into_boxed();
    let kind = match op {
        CmpOp::Eq => ProbeKind::OneOf(vec![key]),
        CmpOp::Lt | CmpOp::Le if class.is_ordered() => ProbeKind::AtMost(key),
        CmpOp::Gt | CmpOp::Ge if class.is_ordered() => ProbeKind::AtLeast(key),
        _ => return None,
    };
    single(class, kind)
}

pub(super) fn flip(op: CmpOp) -> CmpOp {
    match op {
        CmpOp::Lt => CmpOp::Gt,
        CmpOp::Le => CmpOp::Ge,
        CmpOp::Gt => CmpOp::Lt,
        CmpOp::Ge => CmpOp::Le,
        other => other,
    }
}

/// A column compared as `ty` whose row text keys directly: the bare column, or an implicit
/// cast that cannot change which values are equal (integer widening, between text types).
fn key_class(expr: &Expr, ty: &Type) -> Option<KeyClass> {
    let key = KeyTy::of(ty)?;
    let (index, column_ty) = match expr {
        Expr::Column { index, ty, .. } => (*index, ty),
        Expr::Cast {
            arg,
            implicit: true,
            ..
        } => match arg.as_ref() {
            Expr::Column { index, ty, .. } => (*index, ty),
            _ => return None,
        },
        _ => return None,
    };
    let plain_text = |t: &Type| matches!(t, Type::Text | Type::Varchar | Type::Name);
    let compatible = column_ty == ty
        || (column_ty.is_integer() && ty.is_integer())
        || (plain_text(column_ty) && plain_text(ty));
    compatible.then(|| KeyClass {
        column: index,
        parse: column_ty.clone(),
        key,
    })
}

/// Keys of a constant array's non-null elements; `None` if it is not an array of keyable
/// values. A NULL array gives no keys (nothing matches).
fn const_elements(key_ty: KeyTy, value: &Datum<'static>) -> Option<Vec<Box<[u8]>>> {
    match value {
        Datum::Null => Some(Vec::new()),
        Datum::Array(array) => array
            .elems
            .iter()
            .filter(|e| !e.is_null())
            .map(|e| key::encode(key_ty, e).map(Key::into_boxed))
            .collect(),
        _ => None,
    }
}

fn array_access(op: ArrayOp, lhs: &Expr, rhs: &Expr) -> Option<Access> {
    let (column, constant, op) = match (lhs, rhs) {
        (Expr::Column { .. }, Expr::Const { value, .. }) => (lhs, value, op),
        (Expr::Const { value, .. }, Expr::Column { .. }) => (
            rhs,
            value,
            match op {
                ArrayOp::Contains => ArrayOp::ContainedBy,
                ArrayOp::ContainedBy => ArrayOp::Contains,
                other => other,
            },
        ),
        _ => return None,
    };
    let Expr::Column {
        index,
        ty: column_ty,
        ..
    } = column
    else {
        return None;
    };
    let Type::Array(elem) = column_ty else {
        return None;
    };
    let class = KeyClass {
        column: *index,
        parse: column_ty.clone(),
        key: KeyTy::of(elem)?,
    };
    if constant.is_null() {
        return never();
    }
    let Datum::Array(array) = constant else {
        return None;
    };
    let has_null = array.elems.iter().any(Datum::is_null);
    let keys = const_elements(class.key, constant)?;
    match op {
        // A NULL needle is never found; no needles: every non-null array contains them.
        ArrayOp::Contains if has_null => never(),
        ArrayOp::Contains => match keys.into_iter().next() {
            Some(first) => single(class, ProbeKind::HasElement(first)),
            None => single(class, ProbeKind::NotNull),
        },
        ArrayOp::ContainedBy => single(class, ProbeKind::ElementsWithin(keys)),
        ArrayOp::Overlaps if keys.is_empty() => never(),
        ArrayOp::Overlaps => single(class, ProbeKind::AnyElementOf(keys)),
        ArrayOp::Eq | ArrayOp::Ne => None,
    }
}

/// The literal characters a LIKE pattern starts with (up to the first unescaped `%` or `_`),
/// folded for ILIKE; `None` if there are none (the pattern constrains no prefix) or the
/// pattern ends in a lone escape.
fn literal_prefix(pattern: &str, case_insensitive: bool) -> Option<Vec<char>> {
    let mut chars = Vec::new();
    let mut iter = pattern.chars();
    while let Some(c) = iter.next() {
        let literal = match c {
            '%' | '_' => break,
            '\\' => iter.next()?,
            other => other,
        };
        chars.push(if case_insensitive {
            ilike_fold(literal)
        } else {
            literal
        });
    }
    (!chars.is_empty()).then_some(chars)
}
