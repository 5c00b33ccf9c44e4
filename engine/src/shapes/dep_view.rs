//! The materialized view of one dependency on one core: how many rows of the inner table that
//! are in the dependency currently carry each value (`value → count`, a value is in the view
//! while its count is positive), and the values that crossed in or out per transaction.
//!
//! One view per dependency per core, shared by every outer shape of that core using it: the
//! view applies each transaction once, before the shapes that use it (so one membership
//! change costs one evaluation, whatever the number of outer shapes). A shape that is behind
//! the view (its snapshot or a move-in still running) sees the view through its own overlay
//! (`shape_moves::Overlay`), which the view's moves keep exact.

use super::shape::PgSnapshot;
use super::subquery::{DepDef, Value};
use crate::fast_map::FastMap;
use crate::ingest::txn::{ChangeKind, Txn};
use std::sync::Arc;

/// Values that entered and left a view in one transaction (a value that did both is in
/// neither).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Moves {
    pub entered: Vec<Value>,
    pub left: Vec<Value>,
}

impl Moves {
    pub fn is_empty(&self) -> bool {
        self.entered.is_empty() && self.left.is_empty()
    }
}

pub enum ViewState {
    /// Its rows are being read: transactions are kept until the read's snapshot is known.
    Loading { buffered: Vec<Arc<Txn>> },
    Ready {
        snapshot: PgSnapshot,
        filtering: bool,
    },
    /// The view cannot follow its table any more (TRUNCATE, schema change, failed load):
    /// its shapes are invalidated.
    Broken(String),
}

pub struct DepView {
    pub def: Arc<DepDef>,
    counts: FastMap<Value, u32>,
    /// Values holding a NULL (they make a failed membership test unknown, as in SQL).
    with_null: FastMap<Value, ()>,
    pub state: ViewState,
    /// Outer shapes using the view: (handle, the shape's index of this dependency).
    pub subscribers: Vec<(String, usize)>,
    /// Woken when loading ends.
    pub loaded: crate::event::Event,
    /// Commit LSN of the last transaction applied.
    pub last_lsn: u64,
    /// For a dependency with subqueries of its own: its rows and the views below it.
    pub nested: Option<super::dep_rows::NestedRows>,
    /// Views using this one as their inner dependency: (key, their index of it).
    pub parents: Vec<(String, usize)>,
    /// 0 for a dependency without subqueries, else one more than its deepest inner view:
    /// views apply a transaction in this order.
    pub depth: usize,
}

/// Most distinct values a view holds: beyond it the view breaks (its shapes get 409) instead
/// of growing without bound.
pub const VIEW_VALUES_MAX: usize = 10_000_000;

impl DepView {
    pub fn new(
        def: Arc<DepDef>,
        nested: Option<super::dep_rows::NestedRows>,
        depth: usize,
    ) -> Self {
        Self {
            nested,
            parents: Vec::new(),
            depth,
            def,
            counts: FastMap::default(),
            with_null: FastMap::default(),
            state: ViewState::Loading {
                buffered: Vec::new(),
            },
            subscribers: Vec::new(),
            loaded: crate::event::Event::new(),
            last_lsn: 0,
        }
    }

    pub fn is_ready(&self) -> bool {
        matches!(self.state, ViewState::Ready { .. })
    }

    pub fn contains(&self, value: &[u8]) -> bool {
        self.counts.contains_key(value)
    }

    pub fn len(&self) -> usize {
        self.counts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    pub fn values(&self) -> impl Iterator<Item = &Value> {
        self.counts.keys()
    }

    pub fn null_values(&self) -> impl Iterator<Item = &Value> {
        self.with_null.keys()
    }

    /// Counts one row of the initial read (the selected columns' value).
    pub fn add_loaded(&mut self, value: &[u8]) {
        self.bump(value, true);
    }

    /// Keeps one row of a nested dependency's initial read (its stored columns).
    pub fn add_loaded_row<'r>(&mut self, get: &(dyn Fn(usize) -> Option<&'r [u8]> + 'r)) {
        let nested = self.nested.as_mut().expect("a nested dependency");
        let delta = nested.insert(get);
        self.apply_delta(delta, None);
    }

    fn apply_delta(
        &mut self,
        delta: super::dep_rows::Delta,
        mut before: Option<&mut FastMap<Value, bool>>,
    ) {
        for (value, up) in [(delta.out, false), (delta.into, true)] {
            let Some(value) = value else { continue };
            if let Some(before) = before.as_deref_mut() {
                if !before.contains_key(&value) {
                    let was = self.contains(&value);
                    before.insert(value.clone(), was);
                }
            }
            self.bump(&value, up);
        }
    }

    /// SQL's `values IN (view)` (see `moves::SubState::member`, which adds a shape's overlay).
    pub fn member(&self, values: &[Option<&[u8]>], buf: &mut Vec<u8>) -> Option<bool> {
        if self.counts.is_empty() {
            return Some(false);
        }
        // A value that could equal the left side, NULLs on either side being unknown.
        let could_match = |v: &[u8]| {
            super::subquery::decode_value(v)
                .iter()
                .zip(values)
                .all(|(a, b)| a.is_none() || b.is_none() || a == b)
        };
        if values.iter().any(Option::is_none) {
            return if self.counts.keys().any(|v| could_match(v)) {
                None
            } else {
                Some(false)
            };
        }
        buf.clear();
        super::subquery::encode_value(values, buf);
        if self.contains(buf) {
            return Some(true);
        }
        if self.with_null.keys().any(|v| could_match(v)) {
            None
        } else {
            Some(false)
        }
    }

    /// Loading ended at `snapshot`: the transactions kept meanwhile that it does not hold are
    /// applied now (their moves concern no shape yet: shapes subscribe once the view is ready).
    pub fn finish_loading(&mut self, snapshot: PgSnapshot) {
        let buffered = match std::mem::replace(
            &mut self.state,
            ViewState::Ready {
                snapshot,
                filtering: true,
            },
        ) {
            ViewState::Loading { buffered } => buffered,
            other => {
                self.state = other;
                return;
            }
        };
        for txn in &buffered {
            self.apply(txn, None, &[]);
        }
        // Moves of the views below during the load were not followed: every kept row is
        // evaluated against them as they are now.
        if let Some(nested) = self.nested.as_mut() {
            for delta in nested.recheck_all() {
                self.apply_delta(delta, None);
            }
        }
        self.loaded.notify();
    }

    /// Whether the initial read went past the view's bounds (it then fails).
    pub fn over_bounds(&self) -> bool {
        self.counts.len() > VIEW_VALUES_MAX
            || self
                .nested
                .as_ref()
                .is_some_and(|n| n.len() > super::dep_rows::NESTED_ROWS_MAX)
    }

    pub fn fail(&mut self, why: String) {
        self.state = ViewState::Broken(why);
        self.loaded.notify();
    }

    /// Applies a transaction touching the view's table; returns the moves it causes (empty
    /// while loading, or when the snapshot already holds it). `only` lists the changes that
    /// can affect the view (from the table's routing index), `None`: all of them.
    /// `inner` are the moves of the views below it in this transaction (applied first: its
    /// rows are re-evaluated against them).
    pub fn on_txn(
        &mut self,
        txn: &Arc<Txn>,
        only: Option<&[usize]>,
        inner: &[(usize, Moves)],
    ) -> Moves {
        match &mut self.state {
            ViewState::Loading { buffered } => {
                // Only its own table's changes: a move below is read from the inner view's
                // state when loading ends.
                if txn
                    .changes
                    .iter()
                    .any(|c| c.relation.oid == self.def.table.oid)
                    || !txn.truncated.is_empty()
                    || !txn.relations.is_empty()
                    || !txn.overflowed.is_empty()
                {
                    buffered.push(txn.clone());
                }
                Moves::default()
            }
            ViewState::Ready { .. } => self.apply(txn, only, inner),
            ViewState::Broken(_) => Moves::default(),
        }
    }

    fn apply(&mut self, txn: &Txn, only: Option<&[usize]>, inner: &[(usize, Moves)]) -> Moves {
        let ViewState::Ready {
            snapshot,
            filtering,
        } = &mut self.state
        else {
            return Moves::default();
        };
        let mut own = true;
        if *filtering {
            if snapshot.visible(txn.xid) {
                own = false;
            } else if snapshot.after(txn.xid) {
                *filtering = false;
            }
        }
        if txn.commit_lsn <= self.last_lsn {
            own = false;
        }
        // Per value: the count before the transaction, to report only real crossings.
        let mut before: FastMap<Value, bool> = FastMap::default();
        // Moves below apply even when the read already holds this transaction's own changes.
        for (dep, moves) in inner {
            let Some(nested) = self.nested.as_mut() else {
                break;
            };
            let mut values = moves.entered.clone();
            values.extend(moves.left.iter().cloned());
            for delta in nested.on_inner_move(*dep, &values) {
                self.apply_delta(delta, Some(&mut before));
            }
        }
        if !own {
            return self.crossings(before);
        }
        self.last_lsn = txn.commit_lsn;
        let oid = self.def.table.oid;
        if txn.truncated.contains(&oid) {
            self.fail("its table was truncated".into());
            return Moves::default();
        }
        if txn.overflowed.contains(&oid) {
            self.fail("a transaction too large to hold changed its table".into());
            return Moves::default();
        }
        for rel in &txn.relations {
            if rel.oid == oid && !super::apply::relation_matches(&self.def.table, rel) {
                self.fail("its table's columns changed".into());
                return Moves::default();
            }
        }
        let mut buf = Vec::new();
        let count = only.map_or(txn.changes.len(), <[usize]>::len);
        for k in 0..count {
            let change = &txn.changes[only.map_or(k, |indexes| indexes[k])];
            if change.relation.oid != oid {
                continue;
            }
            match &change.kind {
                ChangeKind::Insert { new } => {
                    self.count_row(&|i| new.get(i), true, &mut before, &mut buf)
                }
                ChangeKind::Delete { old } => {
                    self.count_row(&|i| old.get(i), false, &mut before, &mut buf)
                }
                ChangeKind::Update { old, new } => {
                    let fill = |i: usize| {
                        if new.is_missing(i) {
                            old.as_ref().and_then(|o| o.get(i))
                        } else {
                            new.get(i)
                        }
                    };
                    if let Some(old) = old {
                        self.count_row(&|i| old.get(i), false, &mut before, &mut buf);
                    }
                    self.count_row(&fill, true, &mut before, &mut buf);
                }
            }
        }
        if self.counts.len() > VIEW_VALUES_MAX
            || self
                .nested
                .as_ref()
                .is_some_and(|n| n.len() > super::dep_rows::NESTED_ROWS_MAX)
        {
            self.fail(format!(
                "more than {VIEW_VALUES_MAX} distinct values or too many rows"
            ));
            return Moves::default();
        }
        self.crossings(before)
    }

    fn crossings(&self, before: FastMap<Value, bool>) -> Moves {
        let mut moves = Moves::default();
        for (value, was_in) in before {
            match (was_in, self.contains(&value)) {
                (false, true) => moves.entered.push(value),
                (true, false) => moves.left.push(value),
                _ => {}
            }
        }
        moves
    }

    /// Counts a row in (`up`) or out, if it is in the dependency, remembering the first state
    /// of its value in `before`.
    fn count_row<'r>(
        &mut self,
        row: &(dyn Fn(usize) -> Option<&'r [u8]> + 'r),
        up: bool,
        before: &mut FastMap<Value, bool>,
        buf: &mut Vec<u8>,
    ) {
        if let Some(nested) = self.nested.as_mut() {
            let delta = if up {
                nested.insert(row)
            } else {
                nested.remove(row)
            };
            self.apply_delta(delta, Some(before));
            return;
        }
        if !self.def.matches(row) {
            return;
        }
        self.def.value(row, buf);
        if !before.contains_key(buf.as_slice()) {
            before.insert(buf.clone().into_boxed_slice(), self.contains(buf));
        }
        let value = std::mem::take(buf);
        self.bump(&value, up);
        *buf = value;
    }

    fn bump(&mut self, value: &[u8], up: bool) {
        if up {
            match self.counts.get_mut(value) {
                Some(n) => *n += 1,
                None => {
                    self.counts.insert(value.into(), 1);
                    if has_null(value) {
                        self.with_null.insert(value.into(), ());
                    }
                }
            }
            return;
        }
        // A delete of a row the view never counted (its replica identity was not full when
        // it was written) has nothing to take away.
        if let Some(n) = self.counts.get_mut(value) {
            *n -= 1;
            if *n == 0 {
                self.counts.remove(value);
                self.with_null.remove(value);
            }
        }
    }
}

fn has_null(value: &[u8]) -> bool {
    super::subquery::decode_value(value)
        .iter()
        .any(Option::is_none)
}
