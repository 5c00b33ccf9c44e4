//! Clauses compiled once for evaluation on every row (the shapes the router cannot index,
//! group or find by terms): the boolean structure (AND, OR, NOT, IS [NOT] TRUE/FALSE/UNKNOWN)
//! is kept, and each `column OP constant` comparison of a keyed type becomes a comparison of
//! key bytes (see `key`: keys are equal and ordered exactly as Postgres compares the values),
//! with the row's key for each column computed once per row and shared by every program.
//! Any other leaf is evaluated by the general evaluator, with the row's decoded columns
//! shared the same way.
//!
//! The result is exactly `Predicate::eval`'s: operands are visited in the same order with the
//! same short-circuits, a column that fails to parse is an evaluation error (the predicate is
//! false), and NULL follows three-valued logic.

use std::cell::OnceCell;
use std::cmp::Ordering;

use super::super::datum::Datum;
use super::super::eval::{self, Columns, EvalError, Row};
use super::super::expr::{BoolTest, CmpOp, Expr};
use super::super::Predicate;
use super::key::Key;
use super::{flip, key, key_class, KeyClass};

/// Most nodes per program; a larger clause is evaluated as one leaf by the evaluator.
const NODES_MAX: usize = 4096;

pub(crate) struct Program {
    root: Node,
}

enum Node {
    /// `column OP constant`: the row's key for class `slot` compared with `key`.
    Key {
        slot: u32,
        op: CmpOp,
        key: Box<[u8]>,
    },
    /// Any other boolean expression.
    Eval(Expr),
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    Test(BoolTest, Box<Node>),
}

/// The row's key per key class slot, computed on first use.
pub(crate) struct RowKeys<'r> {
    cells: Vec<OnceCell<RowKey<'r>>>,
}

enum RowKey<'r> {
    Null,
    /// The value does not parse: evaluation fails.
    Failed,
    Key(Key<'r>),
}

impl RowKeys<'_> {
    pub(crate) fn new(slots: usize) -> Self {
        RowKeys {
            cells: (0..slots).map(|_| OnceCell::new()).collect(),
        }
    }
}

/// Three-valued truth, or an evaluation error.
type Truth = Result<Option<bool>, EvalError>;

/// Compiles `predicate`; `slot` gives the slot of a key class (the caller keeps the classes,
/// in slot order, for [`Program::holds`]).
pub(crate) fn compile(predicate: &Predicate, slot: &mut dyn FnMut(&KeyClass) -> u32) -> Program {
    let mut budget = NODES_MAX;
    Program {
        root: node(&predicate.expr, slot, &mut budget),
    }
}

fn node(expr: &Expr, slot: &mut dyn FnMut(&KeyClass) -> u32, budget: &mut usize) -> Node {
    if *budget == 0 {
        return Node::Eval(expr.clone());
    }
    *budget -= 1;
    let mut all =
        |items: &[Expr]| -> Vec<Node> { items.iter().map(|e| node(e, slot, budget)).collect() };
    match expr {
        Expr::And(items) => Node::And(all(items)),
        Expr::Or(items) => Node::Or(all(items)),
        Expr::Not(arg) => Node::Not(Box::new(node(arg, slot, budget))),
        Expr::BoolTest { arg, test } => Node::Test(*test, Box::new(node(arg, slot, budget))),
        Expr::Compare { op, ty, lhs, rhs } => {
            let keyed = match (lhs.as_ref(), rhs.as_ref()) {
                (_, Expr::Const { value, .. }) => Some((lhs, value, *op)),
                (Expr::Const { value, .. }, _) => Some((rhs, value, flip(*op))),
                _ => None,
            };
            let compiled = keyed.and_then(|(column, value, op)| {
                let class = key_class(column, ty)?;
                // An unordered key (numeric) only decides equality.
                if !class.is_ordered() && !matches!(op, CmpOp::Eq | CmpOp::Ne) {
                    return None;
                }
                let key = key::encode(class.key, value)?.into_boxed();
                Some(Node::Key {
                    slot: slot(&class),
                    op,
                    key,
                })
            });
            compiled.unwrap_or_else(|| Node::Eval(expr.clone()))
        }
        other => Node::Eval(other.clone()),
    }
}

/// What programs read for one row: the row, its decoded columns and its keys per class.
pub(crate) struct Shared<'s, 'r> {
    pub(crate) row: &'s Row<'r>,
    pub(crate) columns: &'s Columns<'r>,
    pub(crate) keys: &'s RowKeys<'r>,
    pub(crate) classes: &'s [KeyClass],
}

impl Program {
    /// Whether the clause is TRUE for the row (exactly `Predicate::eval`).
    pub(crate) fn holds(&self, shared: &Shared<'_, '_>) -> bool {
        run(&self.root, shared) == Ok(Some(true))
    }
}

fn run(node: &Node, shared: &Shared<'_, '_>) -> Truth {
    match node {
        Node::Key { slot, op, key } => {
            let cell = &shared.keys.cells[*slot as usize];
            let class = &shared.classes[*slot as usize];
            let value = cell.get_or_init(|| match (shared.row)(class.column) {
                None => RowKey::Null,
                Some(bytes) => class.row_key(bytes).map_or(RowKey::Failed, RowKey::Key),
            });
            match value {
                RowKey::Null => Ok(None),
                RowKey::Failed => Err(EvalError),
                RowKey::Key(row_key) => {
                    let ordering: Ordering = row_key.bytes().cmp(key);
                    Ok(Some(op.holds(ordering)))
                }
            }
        }
        Node::Eval(expr) => truth(eval::eval_shared(expr, shared.row, shared.columns)?),
        Node::And(items) => junction(items, shared, false),
        Node::Or(items) => junction(items, shared, true),
        Node::Not(arg) => Ok(run(arg, shared)?.map(|v| !v)),
        Node::Test(test, arg) => {
            let v = run(arg, shared)?;
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

fn truth(value: Datum<'_>) -> Truth {
    match value {
        Datum::Bool(v) => Ok(Some(v)),
        Datum::Null => Ok(None),
        _ => Err(EvalError),
    }
}

/// As the evaluator's AND / OR: left to right, the deciding value wins at once, otherwise
/// NULL if any operand was NULL; an error stops everything.
fn junction(items: &[Node], shared: &Shared<'_, '_>, is_or: bool) -> Truth {
    let mut saw_null = false;
    for item in items {
        match run(item, shared)? {
            Some(v) if v == is_or => return Ok(Some(is_or)),
            Some(_) => {}
            None => saw_null = true,
        }
    }
    Ok(if saw_null { None } else { Some(!is_or) })
}
