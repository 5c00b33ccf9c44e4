//! Clauses compiled once for evaluation on every row (the shapes the router cannot index,
//! group or find by terms), into one flat array of operations shared by all of a table's
//! programs (prefix order, each operation knowing the size of its subtree, so AND and OR skip
//! the rest on a deciding value), with the constants' key bytes in one byte array: evaluating
//! thousands of programs walks memory in order instead of chasing a tree per shape.
//!
//! The boolean structure (AND, OR, NOT, IS [NOT] TRUE/FALSE/UNKNOWN) is kept. Each `column OP
//! constant` comparison of a keyed type becomes a comparison of key bytes (see `key`: keys are
//! equal and ordered exactly as Postgres compares the values), with the row's key for each
//! column computed once per row and shared by every program. Other `expression OP constant`
//! comparisons share their expression (`lower(name)`, `a * 2 + b`, …) across every program
//! of the table: it is evaluated once per row and compared with each constant. Any other leaf
//! is evaluated by the general evaluator, with the row's decoded columns shared the same way.
//!
//! The result is exactly `Predicate::eval`'s: operands are visited in the same order with the
//! same short-circuits, a column that fails to parse is an evaluation error (the predicate is
//! false), and NULL follows three-valued logic.

use std::cell::OnceCell;

use std::collections::HashMap;

use super::super::datum::{compare, Datum};
use super::super::eval::{self, Columns, EvalError, Row};
use super::super::expr::{BoolTest, CmpOp, Expr};
use super::super::types::Type;
use super::super::Predicate;
use super::key::{Key, KeyTy};
use super::{flip, key, key_class, KeyClass};

/// Most operations per program; the rest of a larger clause is evaluated as leaves by the
/// evaluator.
const OPS_MAX: usize = 4096;

/// Most shared expressions per table; past it, comparisons go to the evaluator whole.
const SOURCES_MAX: usize = 1 << 16;

/// The operations of every compiled program, in one array.
#[derive(Default)]
pub(crate) struct Programs {
    ops: Vec<Op>,
    /// Constant keys, referred to by `Op::Key` as ranges.
    keys: Vec<u8>,
    /// Leaves for the evaluator (`None` once released).
    evals: Vec<Option<Expr>>,
    /// Expressions compared with constants, shared by every program that compares them.
    sources: Vec<Expr>,
    source_of: HashMap<String, u32>,
    /// Constants of `Op::Source` with their comparison type (`None` once released).
    constants: Vec<Option<(Type, Datum<'static>)>>,
    /// Operations of released programs, still in `ops`.
    garbage: usize,
}

/// One program: a range of `Programs::ops`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ProgramRef {
    start: u32,
    len: u32,
}

#[derive(Clone, Copy)]
enum Op {
    /// `column OP constant`: the row's key for class `slot` compared with `keys[start..end]`.
    Key {
        slot: u32,
        op: CmpOp,
        start: u32,
        end: u32,
    },
    /// `sources[source] OP constants[constant]` (the constant on the left if `flipped`).
    Source {
        source: u32,
        op: CmpOp,
        constant: u32,
        flipped: bool,
    },
    /// `sources[source] OP constant` for a keyed comparison type: the value's key (with the
    /// expression on the left) against the constant's key, `keys[start..end]`.
    SourceKey {
        source: u32,
        key_ty: KeyTy,
        op: CmpOp,
        start: u32,
        end: u32,
    },
    /// Any other boolean expression: `evals[at]`.
    Eval {
        at: u32,
    },
    /// `size`: operations in the subtree, this one included.
    And {
        size: u32,
    },
    Or {
        size: u32,
    },
    Not {
        size: u32,
    },
    Test {
        test: BoolTest,
        size: u32,
    },
}

impl Op {
    fn size(self) -> usize {
        match self {
            Op::Key { .. } | Op::Source { .. } | Op::SourceKey { .. } | Op::Eval { .. } => 1,
            Op::And { size } | Op::Or { size } | Op::Not { size } | Op::Test { size, .. } => {
                size as usize
            }
        }
    }
}

/// The row's key per key class slot and value per shared expression, computed on first use.
pub(crate) struct RowKeys<'r> {
    cells: Vec<OnceCell<RowKey<'r>>>,
    /// `None`: the expression failed to evaluate.
    sources: Vec<OnceCell<Option<Datum<'r>>>>,
}

enum RowKey<'r> {
    Null,
    /// The value does not parse: evaluation fails.
    Failed,
    Key(Key<'r>),
}

impl RowKeys<'_> {
    /// Room for `slots` key classes and the programs' shared expressions.
    pub(crate) fn new(slots: usize, programs: &Programs) -> Self {
        RowKeys {
            cells: (0..slots).map(|_| OnceCell::new()).collect(),
            sources: (0..programs.sources.len())
                .map(|_| OnceCell::new())
                .collect(),
        }
    }
}

/// What programs read for one row: the row, its decoded columns, its keys per class and its
/// shared expressions' values (`'v`: as long as values borrowed from the programs live).
pub(crate) struct Shared<'s, 'r, 'v> {
    pub(crate) row: &'s Row<'r>,
    pub(crate) columns: &'v Columns<'r>,
    pub(crate) keys: &'s RowKeys<'v>,
    pub(crate) classes: &'s [KeyClass],
}

/// Three-valued truth, or an evaluation error.
type Truth = Result<Option<bool>, EvalError>;

impl Programs {
    /// Compiles `predicate`; `slot` gives the slot of a key class (the caller keeps the
    /// classes, in slot order, for [`Programs::holds`]).
    pub(crate) fn compile(
        &mut self,
        predicate: &Predicate,
        slot: &mut dyn FnMut(&KeyClass) -> u32,
    ) -> ProgramRef {
        let start = self.ops.len();
        self.push(&predicate.expr, start, slot);
        ProgramRef {
            start: u32::try_from(start).expect("fewer than 2^32 operations"),
            len: u32::try_from(self.ops.len() - start).expect("bounded program"),
        }
    }

    /// Appends the operations of `expr`; the subtree of a composite is patched in after.
    fn push(&mut self, expr: &Expr, start: usize, slot: &mut dyn FnMut(&KeyClass) -> u32) {
        let at = self.ops.len();
        let budget_left = at - start < OPS_MAX;
        let composite = match expr {
            _ if !budget_left => None,
            Expr::And(items) => Some((Op::And { size: 0 }, &items[..])),
            Expr::Or(items) => Some((Op::Or { size: 0 }, &items[..])),
            Expr::Not(arg) => Some((Op::Not { size: 0 }, std::slice::from_ref(&**arg))),
            Expr::BoolTest { arg, test } => Some((
                Op::Test {
                    test: *test,
                    size: 0,
                },
                std::slice::from_ref(&**arg),
            )),
            _ => None,
        };
        let Some((op, children)) = composite else {
            let op = self.leaf(expr, budget_left, slot);
            self.ops.push(op);
            return;
        };
        self.ops.push(op);
        for child in children {
            self.push(child, start, slot);
        }
        let size = u32::try_from(self.ops.len() - at).expect("bounded program");
        self.ops[at] = match op {
            Op::And { .. } => Op::And { size },
            Op::Or { .. } => Op::Or { size },
            Op::Not { .. } => Op::Not { size },
            Op::Test { test, .. } => Op::Test { test, size },
            leaf => leaf,
        };
    }

    fn leaf(&mut self, expr: &Expr, keyed_ok: bool, slot: &mut dyn FnMut(&KeyClass) -> u32) -> Op {
        if keyed_ok && self.keys.len() < u32::MAX as usize / 2 {
            if let Some((class, op, key)) = keyed(expr) {
                let start = self.keys.len() as u32;
                self.keys.extend_from_slice(&key);
                return Op::Key {
                    slot: slot(&class),
                    op,
                    start,
                    end: self.keys.len() as u32,
                };
            }
            if let Some(op) = self.shared_source(expr) {
                return op;
            }
        }
        self.evals.push(Some(expr.clone()));
        Op::Eval {
            at: (self.evals.len() - 1) as u32,
        }
    }

    /// `expression OP constant` with a row-dependent expression and a non-null constant, as
    /// a comparison with the expression shared by all programs.
    fn shared_source(&mut self, expr: &Expr) -> Option<Op> {
        let Expr::Compare { op, ty, lhs, rhs } = expr else {
            return None;
        };
        let (source, value, flipped) = match (lhs.as_ref(), rhs.as_ref()) {
            (_, Expr::Const { value, .. }) => (lhs, value, false),
            (Expr::Const { value, .. }, _) => (rhs, value, true),
            _ => return None,
        };
        let mut reads_row = false;
        source.for_each_column(&mut |_| reads_row = true);
        if !reads_row || value.is_null() {
            return None;
        }
        let signature = format!("{source:?}");
        let source = match self.source_of.get(&signature) {
            Some(&at) => at,
            None if self.sources.len() < SOURCES_MAX => {
                self.sources.push(source.as_ref().clone());
                let at = (self.sources.len() - 1) as u32;
                self.source_of.insert(signature, at);
                at
            }
            None => return None,
        };
        // A keyed type compares key bytes kept in line with the other constants' keys.
        let keyed = KeyTy::of(ty).filter(|k| k.is_ordered() || matches!(op, CmpOp::Eq | CmpOp::Ne));
        if let Some(key) = keyed.and_then(|k| key::encode(k, value).map(|key| (k, key))) {
            let (key_ty, key) = key;
            let start = self.keys.len() as u32;
            self.keys.extend_from_slice(key.bytes());
            return Some(Op::SourceKey {
                source,
                key_ty,
                op: if flipped { flip(*op) } else { *op },
                start,
                end: self.keys.len() as u32,
            });
        }
        self.constants.push(Some((ty.clone(), value.clone())));
        Some(Op::Source {
            source,
            op: *op,
            constant: (self.constants.len() - 1) as u32,
            flipped,
        })
    }

    /// Whether the program's clause is TRUE for the row (exactly `Predicate::eval`).
    pub(crate) fn holds<'v, 'r: 'v>(
        &'v self,
        program: ProgramRef,
        shared: &Shared<'_, 'r, 'v>,
    ) -> bool {
        program.len > 0 && self.run(program.start as usize, shared) == Ok(Some(true))
    }

    fn run<'v, 'r: 'v>(&'v self, at: usize, shared: &Shared<'_, 'r, 'v>) -> Truth {
        match self.ops[at] {
            Op::Key {
                slot,
                op,
                start,
                end,
            } => {
                let class = &shared.classes[slot as usize];
                let value = shared.keys.cells[slot as usize].get_or_init(|| {
                    match (shared.row)(class.column) {
                        None => RowKey::Null,
                        Some(bytes) => class.row_key(bytes).map_or(RowKey::Failed, RowKey::Key),
                    }
                });
                match value {
                    RowKey::Null => Ok(None),
                    RowKey::Failed => Err(EvalError),
                    RowKey::Key(row_key) => {
                        let constant = &self.keys[start as usize..end as usize];
                        Ok(Some(op.holds(row_key.bytes().cmp(constant))))
                    }
                }
            }
            Op::Source {
                source,
                op,
                constant,
                flipped,
            } => {
                let value = shared.keys.sources[source as usize].get_or_init(|| {
                    let expr = &self.sources[source as usize];
                    eval::eval_shared(expr, shared.row, shared.columns).ok()
                });
                let (Some(value), Some((ty, constant))) =
                    (value, &self.constants[constant as usize])
                else {
                    return Err(EvalError);
                };
                if value.is_null() {
                    return Ok(None);
                }
                // The operands in the clause's order, as the evaluator compares them.
                let ordering = if flipped {
                    compare(ty, constant, value)
                } else {
                    compare(ty, value, constant)
                };
                Ok(Some(op.holds(ordering.ok_or(EvalError)?)))
            }
            Op::SourceKey {
                source,
                key_ty,
                op,
                start,
                end,
            } => {
                let value = shared.keys.sources[source as usize].get_or_init(|| {
                    let expr = &self.sources[source as usize];
                    eval::eval_shared(expr, shared.row, shared.columns).ok()
                });
                let Some(value) = value else {
                    return Err(EvalError);
                };
                if value.is_null() {
                    return Ok(None);
                }
                // Borrowed, so a computed string (`lower(x)`) is not copied into its key.
                let value = value.reborrow();
                let key = key::encode(key_ty, &value).ok_or(EvalError)?;
                let constant = &self.keys[start as usize..end as usize];
                Ok(Some(op.holds(key.bytes().cmp(constant))))
            }
            Op::Eval { at } => match &self.evals[at as usize] {
                Some(expr) => truth(eval::eval_shared(expr, shared.row, shared.columns)?),
                None => Err(EvalError),
            },
            Op::And { size } => self.junction(at, size as usize, shared, false),
            Op::Or { size } => self.junction(at, size as usize, shared, true),
            Op::Not { .. } => Ok(self.run(at + 1, shared)?.map(|v| !v)),
            Op::Test { test, .. } => {
                let v = self.run(at + 1, shared)?;
                Ok(Some(match test {
                    BoolTest::True => v == Some(true),
                    BoolTest::NotTrue => v != Some(true),
                    BoolTest::False => v == Some(false),
                    BoolTest::NotFalse => v != Some(false),
                    BoolTest::Unknown => v.is_none(),
                    BoolTest::NotUnknown => v.is_some(),
                }))
            }
        }
    }

    /// As the evaluator's AND / OR: left to right, the deciding value wins at once, otherwise
    /// NULL if any operand was NULL; an error stops everything.
    fn junction<'v, 'r: 'v>(
        &'v self,
        at: usize,
        size: usize,
        shared: &Shared<'_, 'r, 'v>,
        is_or: bool,
    ) -> Truth {
        let mut saw_null = false;
        let mut child = at + 1;
        while child < at + size {
            match self.run(child, shared)? {
                Some(v) if v == is_or => return Ok(Some(is_or)),
                Some(_) => {}
                None => saw_null = true,
            }
            child += self.ops[child].size();
        }
        Ok(if saw_null { None } else { Some(!is_or) })
    }

    /// Marks a program's operations as garbage; returns whether more than half of the
    /// operations are, so the caller should [`Programs::compact`].
    pub(crate) fn release(&mut self, program: ProgramRef) -> bool {
        let range = program.start as usize..(program.start + program.len) as usize;
        for op in &self.ops[range] {
            match op {
                Op::Eval { at } => self.evals[*at as usize] = None,
                Op::Source { constant, .. } => self.constants[*constant as usize] = None,
                _ => {}
            }
        }
        self.garbage += program.len as usize;
        self.garbage * 2 > self.ops.len()
    }

    /// Rebuilds the arrays from the live programs, updating their references.
    pub(crate) fn compact<'p>(&mut self, live: impl Iterator<Item = &'p mut ProgramRef>) {
        let mut old = std::mem::take(self);
        // Shared expressions stay where they are: programs refer to them by index.
        self.sources = std::mem::take(&mut old.sources);
        self.source_of = std::mem::take(&mut old.source_of);
        let mut old_evals = old.evals;
        let mut old_constants = old.constants;
        for program in live {
            let start = self.ops.len() as u32;
            let range = program.start as usize..(program.start + program.len) as usize;
            for op in &old.ops[range] {
                self.ops.push(match *op {
                    Op::Key {
                        slot,
                        op,
                        start,
                        end,
                    } => {
                        let (start, end) = copy_keys(&mut self.keys, &old.keys, start, end);
                        Op::Key {
                            slot,
                            op,
                            start,
                            end,
                        }
                    }
                    Op::Eval { at } => {
                        self.evals.push(old_evals[at as usize].take());
                        Op::Eval {
                            at: (self.evals.len() - 1) as u32,
                        }
                    }
                    Op::SourceKey {
                        source,
                        key_ty,
                        op,
                        start,
                        end,
                    } => {
                        let (start, end) = copy_keys(&mut self.keys, &old.keys, start, end);
                        Op::SourceKey {
                            source,
                            key_ty,
                            op,
                            start,
                            end,
                        }
                    }
                    Op::Source {
                        source,
                        op,
                        constant,
                        flipped,
                    } => {
                        self.constants.push(old_constants[constant as usize].take());
                        Op::Source {
                            source,
                            op,
                            constant: (self.constants.len() - 1) as u32,
                            flipped,
                        }
                    }
                    other => other,
                });
            }
            program.start = start;
        }
    }
}

/// Appends `old[start..end]` to `keys` (compaction); returns the bytes' new range.
fn copy_keys(keys: &mut Vec<u8>, old: &[u8], start: u32, end: u32) -> (u32, u32) {
    let new_start = keys.len() as u32;
    keys.extend_from_slice(&old[start as usize..end as usize]);
    (new_start, keys.len() as u32)
}

/// `column OP constant` on a keyed column class, as (class, operator with the column on the
/// left, constant key).
fn keyed(expr: &Expr) -> Option<(KeyClass, CmpOp, Box<[u8]>)> {
    let Expr::Compare { op, ty, lhs, rhs } = expr else {
        return None;
    };
    let (column, value, op) = match (lhs.as_ref(), rhs.as_ref()) {
        (_, Expr::Const { value, .. }) => (lhs, value, *op),
        (Expr::Const { value, .. }, _) => (rhs, value, flip(*op)),
        _ => return None,
    };
    let class = key_class(column, ty)?;
    // An unordered key (numeric) only decides equality.
    if !class.is_ordered() && !matches!(op, CmpOp::Eq | CmpOp::Ne) {
        return None;
    }
    let key = key::encode(class.key, value)?.into_boxed();
    Some((class, op, key))
}

fn truth(value: Datum<'_>) -> Truth {
    match value {
        Datum::Bool(v) => Ok(Some(v)),
        Datum::Null => Ok(None),
        _ => Err(EvalError),
    }
}
