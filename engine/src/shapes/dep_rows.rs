//! The rows of a dependency whose own WHERE holds subqueries (`x IN (SELECT id FROM parent
//! WHERE gp_id IN (SELECT …))`): whether such a row is in the dependency changes when a value
//! moves in a view below it, so the view keeps the rows it may need (the columns its clause
//! and selection read, by key) and, per inner dependency, which rows carry which left-side
//! value. A move below re-evaluates just those rows; a row entering or leaving changes the
//! counts like a replicated change would. Everything is evaluated in memory, so a nested move
//! costs no query and no splice (upstream runs a move-in query per level).

use super::subquery::{encode_value, normalize, SubqueryDef, Value};
use crate::fast_map::FastMap;
use protocol::where_clause::Literal;
use std::borrow::Cow;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use super::dep_view::DepView;

/// Most rows a nested dependency keeps (beyond it the view breaks: 409 for its shapes).
pub const NESTED_ROWS_MAX: usize = 5_000_000;

struct StoredRow {
    /// Texts of `NestedRows::stored` columns, in that order.
    values: Box<[Option<Box<[u8]>>]>,
    included: bool,
}

pub struct NestedRows {
    pub plan: Arc<SubqueryDef>,
    pub views: Vec<Rc<RefCell<DepView>>>,
    /// Table columns kept per row, ascending.
    pub stored: Vec<usize>,
    /// The dependency's selected columns (its values).
    selected: Vec<usize>,
    key_cols: Vec<usize>,
    rows: FastMap<Box<[u8]>, StoredRow>,
    /// Per inner dependency: left-side value → keys of the rows carrying it.
    index: Vec<FastMap<Value, Vec<Box<[u8]>>>>,
}

/// What a row change did to the dependency: the value that left (was counted) and the value
/// that entered (is counted now).
#[derive(Default)]
pub struct Delta {
    pub out: Option<Value>,
    pub into: Option<Value>,
}

impl NestedRows {
    pub fn new(
        plan: Arc<SubqueryDef>,
        views: Vec<Rc<RefCell<DepView>>>,
        stored: Vec<usize>,
        selected: Vec<usize>,
        key_cols: Vec<usize>,
    ) -> Self {
        let n = views.len();
        Self {
            plan,
            views,
            stored,
            selected,
            key_cols,
            rows: FastMap::default(),
            index: (0..n).map(|_| FastMap::default()).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    fn key<'r>(&self, get: &(dyn Fn(usize) -> Option<&'r [u8]> + 'r)) -> Box<[u8]> {
        let mut out = Vec::new();
        let vals: Vec<Option<&[u8]>> = self.key_cols.iter().map(|&c| get(c)).collect();
        encode_value(&vals, &mut out);
        out.into_boxed_slice()
    }

    /// The left-side values of each membership position of a row, per inner dependency.
    fn lhs_values(&self, row: &StoredRow) -> Vec<(usize, Value)> {
        let mut out = Vec::new();
        for p in &self.plan.plan.positions {
            if let Literal::Member { dep, columns, .. } = &p.literal {
                let vals: Vec<Option<Cow<'_, [u8]>>> = columns
                    .iter()
                    .map(|&c| normalize(self.plan.canon[c], self.stored_get(row, c)))
                    .collect();
                let refs: Vec<Option<&[u8]>> = vals.iter().map(|v| v.as_deref()).collect();
                let mut buf = Vec::new();
                encode_value(&refs, &mut buf);
                let v = buf.into_boxed_slice();
                if !out.contains(&(*dep, v.clone())) {
                    out.push((*dep, v));
                }
            }
        }
        out
    }

    fn stored_get<'a>(&self, row: &'a StoredRow, column: usize) -> Option<&'a [u8]> {
        let at = self.stored.binary_search(&column).ok()?;
        row.values[at].as_deref()
    }

    fn evaluate(&self, row: &StoredRow) -> bool {
        let get = |c: usize| self.stored_get(row, c);
        let mut buf = Vec::new();
        let active = self.plan.active(&get, &mut |dep, vals| {
            self.views[dep].borrow().member(vals, &mut buf)
        });
        self.plan.plan.includes(&active)
    }

    /// Adds a row (insert, the new half of an update, or a loaded row).
    pub fn insert<'r>(&mut self, get: &(dyn Fn(usize) -> Option<&'r [u8]> + 'r)) -> Delta {
        let key = self.key(get);
        let mut delta = self.remove_key(&key);
        let values: Box<[Option<Box<[u8]>>]> =
            self.stored.iter().map(|&c| get(c).map(Box::from)).collect();
        let mut row = StoredRow {
            values,
            included: false,
        };
        row.included = self.evaluate(&row);
        for (dep, v) in self.lhs_values(&row) {
            self.index[dep].entry(v).or_default().push(key.clone());
        }
        if row.included {
            delta.into = Some(self.value(&row));
        }
        self.rows.insert(key, row);
        delta
    }

    /// Removes a row (delete, the old half of an update).
    pub fn remove<'r>(&mut self, get: &(dyn Fn(usize) -> Option<&'r [u8]> + 'r)) -> Delta {
        let key = self.key(get);
        self.remove_key(&key)
    }

    fn remove_key(&mut self, key: &[u8]) -> Delta {
        let Some(row) = self.rows.remove(key) else {
            return Delta::default();
        };
        for (dep, v) in self.lhs_values(&row) {
            if let Some(keys) = self.index[dep].get_mut(&v) {
                keys.retain(|k| k.as_ref() != key);
                if keys.is_empty() {
                    self.index[dep].remove(&v);
                }
            }
        }
        let mut delta = Delta::default();
        if row.included {
            delta.out = Some(self.value(&row));
        }
        delta
    }

    /// The row's value of the dependency's selected columns.
    fn value(&self, row: &StoredRow) -> Value {
        let vals: Vec<Option<Cow<'_, [u8]>>> = self
            .selected
            .iter()
            .map(|&c| normalize(self.plan.canon[c], self.stored_get(row, c)))
            .collect();
        let refs: Vec<Option<&[u8]>> = vals.iter().map(|v| v.as_deref()).collect();
        let mut out = Vec::new();
        encode_value(&refs, &mut out);
        out.into_boxed_slice()
    }

    /// A value of inner dependency `dep` moved: re-evaluates the rows that carry it. Returns
    /// the values that left and entered the dependency.
    pub fn on_inner_move(&mut self, dep: usize, values: &[Value]) -> Vec<Delta> {
        // Under NOT IN a row's truth also turns on whether the inner view is empty or holds
        // a NULL, which no moved value names: every row is checked again (nested NOT IN is
        // rare; rows are in memory).
        if self.plan.plan.dep_negated[dep] {
            return self.recheck_all();
        }
        let mut keys: Vec<Box<[u8]>> = Vec::new();
        for v in values {
            if let Some(k) = self.index[dep].get(v) {
                keys.extend(k.iter().cloned());
            }
        }
        self.recheck(keys)
    }

    /// Evaluates every row again (after loading, when moves below were not followed).
    pub fn recheck_all(&mut self) -> Vec<Delta> {
        let keys: Vec<Box<[u8]>> = self.rows.keys().cloned().collect();
        self.recheck(keys)
    }

    fn recheck(&mut self, keys: Vec<Box<[u8]>>) -> Vec<Delta> {
        let mut out = Vec::new();
        for key in keys {
            let Some(row) = self.rows.get(&key) else {
                continue;
            };
            let now = self.evaluate(row);
            if now == row.included {
                continue;
            }
            let value = self.value(row);
            self.rows.get_mut(&key).expect("present").included = now;
            out.push(if now {
                Delta {
                    out: None,
                    into: Some(value),
                }
            } else {
                Delta {
                    out: Some(value),
                    into: None,
                }
            });
        }
        out
    }
}
