//! A subquery shape on its owner core (`electric-subqueries.md` §6): each transaction reaches
//! it as a [`Step`]: the moves of its dependencies' views, then its own table's changes.
//!
//! - The shape sees each view through an overlay of the values whose membership differs from
//!   the view's current state (it is behind the view while its snapshot or a move-in runs):
//!   `perceived(v) = overlay.get(v) or view.contains(v)`. The core records a value's state
//!   before the view moves it ([`SubState::note_moves`]); the shape sets the new state when it
//!   processes the move and drops the entry once it agrees with the view.
//! - A move-out (a value leaving an `IN` view, or entering a `NOT IN` one) is an event.
//! - A move-in starts a query of the rows it brings in (views bound as arrays, so the result
//!   agrees with where the shape is). Steps wait behind it; when the rows arrive, the steps the
//!   query's snapshot already saw are applied with the view as before the move (their own moves
//!   afterwards), then the event, the rows and `snapshot-end`, then the others as usual. A
//!   change both in a later step and in the rows repeats what the rows hold (clients upsert).
//! - Outer changes are evaluated over the views: insert / update / delete by membership of
//!   the old and new row, updates kept when only `active_conditions` changed, with `tags`,
//!   `removed_tags` and `active_conditions` headers.

use super::apply::{self, PendingEntry};
use super::dep_view::{DepView, Moves};
use super::shape::{Applied, PgSnapshot, Phase, Shape};
use super::subquery::{encode_value, RowMeta, SubqueryDef, Value};
use crate::fast_map::FastMap;
use crate::ingest::txn::Txn;
use protocol::message;
use protocol::offset::LogOffset;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;

/// One transaction (or, with `txn: None`, moves put off by a move-in) for a subquery shape.
pub struct Step {
    pub txn: Option<Arc<Txn>>,
    /// Indexes of the changes that can affect the shape (`None`: all).
    pub only: Option<Vec<usize>>,
    /// Per dependency index: the view's moves in this transaction (not yet in the overlay).
    pub moves: Vec<(usize, Moves)>,
    /// Move-ins already in the overlay, still to query (after a move-in of the same step).
    pub queued_ins: Vec<(usize, Vec<Value>, Vec<u32>)>,
    /// Xids of the transactions whose moves a step without `txn` carries (for events).
    pub txids: Vec<u32>,
}

/// A move-in in flight.
pub struct MoveIn {
    pub dep: usize,
    pub values: Vec<Value>,
    pub txids: Vec<u32>,
    /// The query, built when the move started (from the views at that point).
    pub select: super::subquery_sql::SubSelect,
    /// The core started the query.
    pub started: bool,
    /// The query's rows, once it is done (spliced when the boundary is known).
    pub result: Option<MoveInRows>,
}

/// The result of a move-in query: its snapshot, the WAL position when it ran (every
/// transaction it saw committed before it) and the rows' JSON.
pub struct MoveInRows {
    pub snapshot: PgSnapshot,
    pub lsn: u64,
    pub rows: Vec<Vec<u8>>,
}

/// Most groups of synthetic entries (events, move-in rows) between two transactions of a
/// shape's log (see `Shape::append_group`).
pub const SYNTHETIC_GROUPS_MAX: u64 = 16;

/// Most steps a shape keeps behind one move-in (`ELECTRIC_SUBQUERY_BUFFER_MAX_TRANSACTIONS`).
pub const BUFFER_MAX_DEFAULT: usize = 1000;

pub struct SubState {
    pub def: Arc<SubqueryDef>,
    /// The view of each dependency (shared with the core's other shapes).
    pub views: Vec<Rc<RefCell<DepView>>>,
    overlay: Vec<FastMap<Value, bool>>,
    pub moving: Option<MoveIn>,
    pending: VecDeque<Step>,
    pub stack_id: Rc<str>,
    pub buffer_max: usize,
    /// A shape restored after a clean stop: per dependency, the values its view held then.
    /// Steps wait until the views are loaded and [`Shape::finish_restore`] turned the
    /// difference into moves.
    pub restoring: Option<Vec<Vec<Value>>>,
    /// Its views were saved for a restart (the server is stopping): it takes no more steps,
    /// so no client sees an entry after the saved position (entries after it would be lost
    /// with the process, and the restored shape would write different ones there).
    pub frozen: bool,
}

impl SubState {
    pub fn new(
        def: Arc<SubqueryDef>,
        views: Vec<Rc<RefCell<DepView>>>,
        stack_id: Rc<str>,
        buffer_max: usize,
    ) -> Self {
        let n = views.len();
        Self {
            def,
            views,
            overlay: (0..n).map(|_| FastMap::default()).collect(),
            moving: None,
            pending: VecDeque::new(),
            stack_id,
            buffer_max,
            restoring: None,
            frozen: false,
        }
    }

    /// Whether a finished move-in can be spliced with the stream at `position`: `None` when
    /// there is nothing to splice, `Some(None)` when it can, `Some(Some(lsn))` when the stream
    /// must reach `lsn` first (or a transaction the query did not see arrive).
    pub fn splice_wait(&self, position: u64) -> Option<Option<u64>> {
        let result = self.moving.as_ref()?.result.as_ref()?;
        let unseen = self
            .pending
            .iter()
            .filter_map(|step| step.txn.as_ref())
            .any(|t| !result.snapshot.visible(t.xid));
        if unseen || position >= result.lsn {
            Some(None)
        } else {
            Some(Some(result.lsn))
        }
    }

    /// The commit LSN of the first transaction queued and not applied (behind a move-in or a
    /// restore), which the slot must send again after a crash.
    pub fn replay_from(&self) -> Option<u64> {
        self.pending
            .iter()
            .find_map(|step| step.txn.as_ref().map(|t| t.commit_lsn))
    }

    /// Per dependency, its key and the values of the shape's view as of the last entry of
    /// its log (for its cut, `views_file`); `None` when that is not known now (steps queued
    /// without a move-in in front of them: the snapshot's moves are not sorted out yet).
    ///
    /// Restoring, the saved views are still the shape's. Otherwise the view the shape sees
    /// is the one at its log end, but for a move-in in flight: its values already count as
    /// moved (so its query agrees with the views), its event and rows are not in the log yet.
    /// Queued steps' moves are not in the shape's view (`note_moves`).
    pub fn views_at_log_end(&self) -> Option<crate::shapes::views_file::Views> {
        let keys = self.def.deps.iter().map(|d| d.key.clone());
        if let Some(saved) = &self.restoring {
            return Some(keys.zip(saved.iter().cloned()).collect());
        }
        if self.moving.is_none() && !self.pending.is_empty() {
            return None;
        }
        let views = (0..self.views.len())
            .map(|d| {
                let mut values = self.view_values(d);
                if let Some(m) = self.moving.as_ref().filter(|m| m.dep == d) {
                    if self.def.plan.dep_negated[d] {
                        // A `NOT IN` move-in: its values left the view.
                        values.extend(m.values.iter().cloned());
                    } else {
                        let moving: FastMap<&Value, ()> =
                            m.values.iter().map(|v| (v, ())).collect();
                        values.retain(|v| !moving.contains_key(v));
                    }
                }
                values
            })
            .collect::<Vec<_>>();
        Some(keys.zip(views).collect())
    }

    /// Before the views apply moves of `dep`: remembers the shape's state of each moved value
    /// (unless it already differs from the view).
    pub fn note_moves(&mut self, dep: usize, moves: &Moves) {
        let overlay = &mut self.overlay[dep];
        for v in &moves.entered {
            overlay.entry(v.clone()).or_insert(false);
        }
        for v in &moves.left {
            overlay.entry(v.clone()).or_insert(true);
        }
    }

    /// Moves a snapshot already holds: the view follows them, nothing is emitted.
    fn apply_silently(&mut self, moves: impl IntoIterator<Item = (usize, Moves)>) {
        for (dep, moves) in moves {
            for v in &moves.entered {
                self.set(dep, v, true);
            }
            for v in &moves.left {
                self.set(dep, v, false);
            }
        }
    }

    fn set(&mut self, dep: usize, value: &Value, state: bool) {
        if self.views[dep].borrow().contains(value) == state {
            self.overlay[dep].remove(value);
        } else {
            self.overlay[dep].insert(value.clone(), state);
        }
    }

    /// How many values the shape's view of `dep` holds; with `before`, as it was before the
    /// step's `moved` values (value, state before) were set.
    fn perceived_len(&self, dep: usize, moved: &[(Value, bool)], before: bool) -> usize {
        let view = self.views[dep].borrow();
        let overlay = &self.overlay[dep];
        let hidden = overlay
            .iter()
            .filter(|&(v, &s)| !s && view.contains(v))
            .count();
        let added = overlay
            .iter()
            .filter(|&(v, &s)| s && !view.contains(v))
            .count();
        let now = view.len() - hidden + added;
        if !before {
            return now;
        }
        let gained = moved
            .iter()
            .filter(|(v, was)| !was && self.perceived(dep, v))
            .count();
        let lost = moved
            .iter()
            .filter(|(v, was)| *was && !self.perceived(dep, v))
            .count();
        now + lost - gained
    }

    fn perceived(&self, dep: usize, value: &[u8]) -> bool {
        match self.overlay[dep].get(value) {
            Some(state) => *state,
            None => self.views[dep].borrow().contains(value),
        }
    }

    /// Every value of the view as the shape sees it.
    pub fn view_values(&self, dep: usize) -> Vec<Value> {
        let view = self.views[dep].borrow();
        let overlay = &self.overlay[dep];
        let mut out: Vec<Value> = view
            .values()
            .filter(|v| overlay.get(v.as_ref()) != Some(&false))
            .cloned()
            .collect();
        out.extend(
            overlay
                .iter()
                .filter(|(v, state)| **state && !view.contains(v))
                .map(|(v, _)| v.clone()),
        );
        out
    }

    /// SQL's `values IN (view)`: TRUE on a match; NULL when the left side has a NULL or the
    /// view holds a value with a NULL that could match (unless the view is empty); else FALSE.
    fn member(&self, dep: usize, values: &[Option<&[u8]>], buf: &mut Vec<u8>) -> Option<bool> {
        let view = self.views[dep].borrow();
        let overlay = &self.overlay[dep];
        if values.iter().all(Option::is_some) {
            buf.clear();
            encode_value(values, buf);
            if self.perceived(dep, buf) {
                return Some(true);
            }
        }
        let present = |v: &[u8]| overlay.get(v).copied().unwrap_or_else(|| view.contains(v));
        if self.perceived_len(dep, &[], false) == 0 {
            return Some(false);
        }
        // Unknown (NULL) when some value of the view could equal the left side, the NULLs on
        // either side being unknown; else FALSE.
        let unknown = if let [None] = values {
            // A single NULL could equal any value, and the view is not empty.
            true
        } else if values.iter().any(Option::is_none) {
            view.values()
                .filter(|v| present(v))
                .chain(
                    overlay
                        .iter()
                        .filter(|(v, s)| **s && !view.contains(v))
                        .map(|(v, _)| v),
                )
                .any(|v| could_match(values, &super::subquery::decode_value(v)))
        } else {
            view.null_values()
                .any(|v| present(v) && could_match(values, &super::subquery::decode_value(v)))
                || overlay.iter().any(|(v, s)| {
                    *s && has_null(v) && could_match(values, &super::subquery::decode_value(v))
                })
        };
        if unknown {
            None
        } else {
            Some(false)
        }
    }
}

/// Put-off move-ins as the view moves they came from (values entering an `IN` view, leaving
/// a `NOT IN` one), not yet applied to the shape's view.
fn queued_as_moves(
    def: &SubqueryDef,
    queued: Vec<(usize, Vec<Value>, Vec<u32>)>,
) -> Vec<(usize, Moves)> {
    queued
        .into_iter()
        .map(|(dep, values, _)| {
            let moves = if def.plan.dep_negated[dep] {
                Moves {
                    entered: Vec::new(),
                    left: values,
                }
            } else {
                Moves {
                    entered: values,
                    left: Vec::new(),
                }
            };
            (dep, moves)
        })
        .collect()
}

/// Most columns of a row membership whose NULL-masked values are enumerated (2^n − 1 each).
const MASKED_COLUMNS_MAX: usize = 6;

/// Each value with one or more of its columns replaced by NULL (what the slot of a row whose
/// left side has NULLs there hashes), without duplicates.
fn masked_variants(values: &[Value]) -> Result<Vec<Value>, &'static str> {
    let mut out: Vec<Value> = Vec::new();
    for v in values {
        let cols = super::subquery::decode_value(v);
        if cols.len() > MASKED_COLUMNS_MAX {
            return Err("a NOT IN row subquery with too many columns moved");
        }
        for mask in 1u32..(1 << cols.len()) {
            let masked: Vec<Option<&[u8]>> = cols
                .iter()
                .enumerate()
                .map(|(i, c)| if mask & (1 << i) != 0 { None } else { *c })
                .collect();
            let mut buf = Vec::new();
            super::subquery::encode_value(&masked, &mut buf);
            let m = buf.into_boxed_slice();
            if !out.contains(&m) {
                out.push(m);
            }
        }
    }
    Ok(out)
}

/// Whether a left side (NULLs unknown) could equal a value of the view (NULLs unknown): SQL's
/// row comparison is then NULL or TRUE, not FALSE.
fn could_match(lhs: &[Option<&[u8]>], value: &[Option<&[u8]>]) -> bool {
    lhs.iter()
        .zip(value)
        .all(|(a, b)| a.is_none() || b.is_none() || a == b)
}

fn has_null(value: &[u8]) -> bool {
    super::subquery::decode_value(value).contains(&None)
}

impl Shape {
    /// Offers a transaction to a subquery shape with its views' moves (see the module doc).
    pub fn on_step(&mut self, step: Step) -> Applied {
        if self.invalidated {
            return Applied::Nothing;
        }
        let sub = self.sub.as_mut().expect("a subquery shape");
        if sub.frozen {
            return Applied::Nothing;
        }
        sub.pending.push_back(step);
        if sub.moving.is_some() && sub.pending.len() > sub.buffer_max {
            return Applied::Invalidate("too many transactions during a move-in");
        }
        self.drain()
    }

    /// Processes queued steps while the snapshot is known and no move-in runs.
    pub fn drain(&mut self) -> Applied {
        let mut total = 0;
        loop {
            if !matches!(self.phase, Phase::Ready { .. }) {
                break;
            }
            let sub = self.sub.as_mut().expect("a subquery shape");
            if sub.moving.is_some() || sub.restoring.is_some() || sub.frozen {
                break;
            }
            let Some(step) = sub.pending.pop_front() else {
                break;
            };
            match self.process_step(step) {
                Ok(n) => total += n,
                Err(why) => return Applied::Invalidate(why),
            }
        }
        if total > 0 {
            self.changed.notify();
            Applied::Appended(total)
        } else {
            Applied::Nothing
        }
    }

    /// Whether the snapshot (or an earlier application) already holds `txn`.
    fn already_holds(&mut self, txn: &Txn) -> bool {
        let Phase::Ready {
            snapshot,
            filtering,
        } = &mut self.phase
        else {
            unreachable!("steps are processed once the snapshot is known");
        };
        if *filtering {
            if snapshot.visible(txn.xid) {
                return true;
            }
            if snapshot.after(txn.xid) {
                *filtering = false;
            }
        }
        txn.commit_lsn <= self.last_seen_lsn
    }

    fn process_step(&mut self, mut step: Step) -> Result<usize, &'static str> {
        if let Some(txn) = step.txn.clone() {
            if self.already_holds(&txn) {
                let sub = self.sub.as_mut().expect("a subquery shape");
                sub.apply_silently(step.moves);
                return Ok(0);
            }
            self.check_table(&txn)?;
        }
        let mut appended = 0;
        let mut xids: Vec<u32> = step.txn.iter().map(|t| t.xid).collect();
        xids.extend(std::mem::take(&mut step.txids));
        for (_, _, queued) in &step.queued_ins {
            xids.extend(queued);
        }
        xids.sort_unstable();
        xids.dedup();
        let sub = self.sub.as_mut().expect("a subquery shape");
        let mut outs: Vec<(usize, Vec<Value>)> = Vec::new();
        // Move-ins put off behind an earlier one come first: later moves of the same values
        // then net against them (a value queued in and then gone again does not move).
        let queued = queued_as_moves(&sub.def, std::mem::take(&mut step.queued_ins));
        let mut moves = queued;
        moves.append(&mut step.moves);
        step.moves = moves;
        let mut ins: Vec<(usize, Vec<Value>, Vec<u32>)> = Vec::new();
        // Net moves per dependency: a value that entered and left within the step (moves put
        // off by a move-in come several transactions at a time) did not move.
        let mut net: Vec<(usize, Vec<(Value, bool)>)> = Vec::new();
        for (dep, moves) in std::mem::take(&mut step.moves) {
            let at = match net.iter().position(|(d, _)| *d == dep) {
                Some(at) => at,
                None => {
                    net.push((dep, Vec::new()));
                    net.len() - 1
                }
            };
            for (values, state) in [(moves.entered, true), (moves.left, false)] {
                for v in values {
                    let seen = &mut net[at].1;
                    if !seen.iter().any(|(x, _)| *x == v) {
                        seen.push((v.clone(), sub.perceived(dep, &v)));
                    }
                    sub.set(dep, &v, state);
                }
            }
        }
        for (dep, values) in net {
            let negated = sub.def.plan.dep_negated[dep];
            let mut entered = Vec::new();
            let mut left = Vec::new();
            for (v, was) in values {
                match (was, sub.perceived(dep, &v)) {
                    (false, true) => entered.push(v),
                    (true, false) => left.push(v),
                    _ => {}
                }
            }
            let (into, out_of) = if negated {
                // `NOT IN`: a NULL in the result makes every non-matching row unknown, which
                // no value pattern can express: the shape rotates (clients resync).
                if entered.iter().any(|v| has_null(v)) {
                    return Err("a NULL entered the result of a NOT IN subquery");
                }
                // A row whose left side has NULLs where an entering value has values is
                // unknown now (`(NULL, 1) NOT IN ((2, 1))` is NULL): its slot is that value
                // with those columns NULL.
                // Only slots that no value already in the view could match: those rows were
                // TRUE until now (the others were unknown already).
                let mut out_of = entered.clone();
                let masks = masked_variants(&entered)?;
                if !masks.is_empty() {
                    let before: Vec<Value> = sub
                        .view_values(dep)
                        .into_iter()
                        .filter(|v| !entered.contains(v))
                        .collect();
                    for m in masks {
                        let decoded = super::subquery::decode_value(&m);
                        let was_true = before
                            .iter()
                            .all(|t| !could_match(&decoded, &super::subquery::decode_value(t)));
                        if was_true {
                            out_of.push(m);
                        }
                    }
                }
                (left, out_of)
            } else {
                // A value with a NULL makes no row TRUE: nothing to query for.
                entered.retain(|v| !has_null(v));
                (entered, left)
            };
            if !out_of.is_empty() {
                outs.push((dep, out_of));
            }
            if !into.is_empty() {
                // A move-in's values join the shape's view when its query starts: a query
                // must not count rows as already in through a move not yet queried.
                for v in &into {
                    sub.set(dep, v, negated);
                }
                ins.push((dep, into, xids.clone()));
            }
        }
        let mut events = Vec::with_capacity(outs.len());
        for (dep, values) in outs {
            let sub = self.sub.as_ref().expect("a subquery shape");
            let patterns = sub.def.patterns(&sub.stack_id, &self.handle, dep, &values);
            events.push(message::move_event(false, &patterns, &xids));
        }
        appended += self.append_group(events)?;
        if !ins.is_empty() {
            let (dep, values, txids) = ins.remove(0);
            self.start_move_in(dep, values, txids);
            let sub = self.sub.as_mut().expect("a subquery shape");
            sub.pending.push_front(Step {
                txn: step.txn,
                only: step.only,
                moves: Vec::new(),
                queued_ins: ins,
                txids: Vec::new(),
            });
            return Ok(appended);
        }
        if let Some(txn) = &step.txn {
            appended += self.apply_changes(txn, step.only.as_deref())?;
            self.last_seen_lsn = txn.commit_lsn;
        }
        Ok(appended)
    }

    fn check_table(&self, txn: &Txn) -> Result<(), &'static str> {
        let oid = self.def.table.oid;
        if txn.truncated.contains(&oid) {
            return Err("truncate");
        }
        if txn.overflowed.contains(&oid) {
            return Err("a transaction too large to hold changed its table");
        }
        for rel in &txn.relations {
            if rel.oid == oid && !apply::relation_matches(&self.def.table, rel) {
                return Err("relation changed");
            }
        }
        Ok(())
    }

    /// Applies a move-in's values to the shape's view and builds its query from the views as
    /// the shape sees them then (after the move).
    fn start_move_in(&mut self, dep: usize, values: Vec<Value>, txids: Vec<u32>) {
        let sub = self.sub.as_mut().expect("a subquery shape");
        let negated = sub.def.plan.dep_negated[dep];
        for v in &values {
            sub.set(dep, v, !negated);
        }
        let sub = self.sub.as_ref().expect("a subquery shape");
        let after: Vec<Vec<Value>> = (0..sub.views.len()).map(|d| sub.view_values(d)).collect();
        let mut before = after.clone();
        let entering = !sub.def.plan.dep_negated[dep];
        if entering {
            before[dep].retain(|v| !values.contains(v));
        } else {
            before[dep].extend(values.iter().cloned());
        }
        // For `NOT IN`, the move-in is values leaving the view: `after` lacks them.
        let select = super::subquery_sql::move_in_select(&self.def, &sub.def, dep, &after, &before);
        self.sub.as_mut().expect("a subquery shape").moving = Some(MoveIn {
            dep,
            values,
            txids,
            select,
            started: false,
            result: None,
        });
    }

    /// The move-in's rows are here and its boundary known: splice (see the module doc) and go
    /// on with queued steps.
    pub fn splice(&mut self) -> Applied {
        if self.invalidated {
            return Applied::Nothing;
        }
        let sub = self.sub.as_mut().expect("a subquery shape");
        let Some(mut moving) = sub.moving.take() else {
            return Applied::Nothing;
        };
        let Some(result) = moving.result.take() else {
            sub.moving = Some(moving);
            return Applied::Nothing;
        };
        // Steps the query's snapshot saw: changes with the view as before the move.
        let mut pre = Vec::new();
        while let Some(front) = sub.pending.front() {
            let seen = front
                .txn
                .as_ref()
                .is_none_or(|t| result.snapshot.visible(t.xid));
            if !seen {
                break;
            }
            pre.push(sub.pending.pop_front().expect("front"));
        }
        let entering = !sub.def.plan.dep_negated[moving.dep];
        let mut appended = 0;
        let mut deferred = Step {
            txn: None,
            only: None,
            moves: Vec::new(),
            queued_ins: Vec::new(),
            txids: Vec::new(),
        };
        for v in &moving.values {
            sub.set(moving.dep, v, !entering);
        }
        let sub_def = sub.def.clone();
        for mut step in pre {
            // The put-off moves keep the xids of the transactions that made them.
            for (_, _, xids) in &step.queued_ins {
                deferred.txids.extend(xids);
            }
            if !step.moves.is_empty() {
                deferred.txids.extend(step.txn.iter().map(|t| t.xid));
            }
            deferred.txids.append(&mut step.txids);
            let queued = queued_as_moves(&sub_def, std::mem::take(&mut step.queued_ins));
            deferred.moves.extend(queued);
            let moved_now = step.moves.len();
            deferred.moves.append(&mut step.moves);
            if let Some(txn) = step.txn {
                if self.already_holds(&txn) {
                    // Its moves too are in the snapshot: applied silently, as a step would.
                    let sub = self.sub.as_mut().expect("a subquery shape");
                    let n = deferred.moves.len() - moved_now;
                    sub.apply_silently(deferred.moves.drain(n..));
                    continue;
                }
                if let Err(why) = self.check_table(&txn) {
                    return Applied::Invalidate(why);
                }
                match self.apply_changes(&txn, step.only.as_deref()) {
                    Ok(n) => appended += n,
                    Err(why) => return Applied::Invalidate(why),
                }
            }
        }
        let sub = self.sub.as_mut().expect("a subquery shape");
        for v in &moving.values {
            sub.set(moving.dep, v, entering);
        }
        // No row is TRUE through a value with a NULL: such values have no pattern to turn on
        // (the rows the query found carry their own active_conditions).
        let mut values: Vec<Value> = moving
            .values
            .iter()
            .filter(|v| !has_null(v))
            .cloned()
            .collect();
        if sub.def.plan.dep_negated[moving.dep] {
            // Rows whose left side has NULLs where a leaving value had values are TRUE again
            // if no value left in the view could match them (`NULL NOT IN ()` is TRUE).
            let view = sub.view_values(moving.dep);
            if let Ok(masks) = masked_variants(&moving.values) {
                for m in masks {
                    let decoded = super::subquery::decode_value(&m);
                    let unmatched = view
                        .iter()
                        .all(|t| !could_match(&decoded, &super::subquery::decode_value(t)));
                    if unmatched {
                        values.push(m);
                    }
                }
            }
        }
        let patterns = sub
            .def
            .patterns(&sub.stack_id, &self.handle, moving.dep, &values);
        let mut group = Vec::with_capacity(result.rows.len() + 2);
        group.push(message::move_event(true, &patterns, &moving.txids));
        let any_rows = !result.rows.is_empty();
        group.extend(result.rows);
        if any_rows {
            let s = &result.snapshot;
            group.push(message::snapshot_end(s.xmin, s.xmax, &s.xip));
        }
        match self.append_group(group) {
            Ok(n) => appended += n,
            Err(why) => return Applied::Invalidate(why),
        }
        let sub = self.sub.as_mut().expect("a subquery shape");
        if !deferred.moves.is_empty() || !deferred.queued_ins.is_empty() {
            sub.pending.push_front(deferred);
        }
        self.changed.notify();
        match self.drain() {
            Applied::Appended(n) => Applied::Appended(n + appended),
            Applied::Nothing => Applied::Appended(appended),
            inv @ Applied::Invalidate(_) => inv,
        }
    }

    /// Appends messages that are not replicated changes (events, move-in rows,
    /// `snapshot-end`) after the log's last entry, as one group of their own in the log and the
    /// store: offsets `(C, 0…)` with `C` one past the last group's LSN. A group's entries then
    /// share its LSN, as a transaction's do (what recovery expects), and `C` stays below the
    /// next transaction's commit LSN: commit records are more than [`SYNTHETIC_GROUPS_MAX`]
    /// bytes apart in the WAL, and at most that many groups follow one transaction.
    fn append_group(&mut self, messages: Vec<Vec<u8>>) -> Result<usize, &'static str> {
        if messages.is_empty() {
            return Ok(0);
        }
        let last = self.log.last_real_offset().map_or(0, |o| o.tx);
        let lsn = last.max(self.last_seen_lsn) + 1;
        if lsn - self.last_seen_lsn > SYNTHETIC_GROUPS_MAX {
            return Err("too many moves between two transactions");
        }
        let n = messages.len();
        let mut written = Vec::with_capacity(n);
        let mut chunk_ends = Vec::new();
        for (op, json) in messages.into_iter().enumerate() {
            let offset = LogOffset::new(lsn, op as u64);
            let bytes = bytes::Bytes::from(json);
            if let Some(end) = self.log.append(offset, bytes.clone()) {
                chunk_ends.push(end);
            }
            written.push((offset, bytes));
        }
        self.store_entries(written, chunk_ends, lsn)
            .map_err(|()| "storage error")?;
        Ok(n)
    }

    /// The entries of `txn`'s changes of the shape's table, evaluated over the views.
    fn apply_changes(&mut self, txn: &Txn, only: Option<&[usize]>) -> Result<usize, &'static str> {
        let oid = self.def.table.oid;
        let sub = self.sub.as_ref().expect("a subquery shape");
        let mut out: Vec<(PendingEntry<'_>, RowMeta, Option<Vec<String>>)> = Vec::new();
        let count = only.map_or(txn.changes.len(), <[usize]>::len);
        let mut buf = Vec::new();
        for k in 0..count {
            let change = &txn.changes[only.map_or(k, |indexes| indexes[k])];
            if change.relation.oid != oid {
                continue;
            }
            if !apply::relation_matches(&self.def.table, &change.relation) {
                return Err("relation changed");
            }
            let mut member =
                |dep: usize, values: &[Option<&[u8]>]| sub.member(dep, values, &mut buf);
            apply::entries_for_subquery(
                &self.def,
                &sub.def,
                (&sub.stack_id, &self.handle),
                change,
                txn.commit_lsn,
                &mut member,
                &mut out,
            );
        }
        let n = out.len();
        let mut written = Vec::with_capacity(n);
        for (i, (e, meta, removed)) in out.iter().enumerate() {
            let mut json = apply::encode_one(&self.def, e, txn.xid, i + 1 == n);
            message::push_subquery_headers(
                &mut json,
                &meta.tags,
                removed.as_deref(),
                &meta.active,
                false,
            );
            written.push((e.offset, json));
        }
        let mut stored = Vec::with_capacity(written.len());
        let mut chunk_ends = Vec::new();
        for (offset, json) in written {
            let bytes = bytes::Bytes::from(json);
            if let Some(end) = self.log.append(offset, bytes.clone()) {
                chunk_ends.push(end);
            }
            stored.push((offset, bytes));
        }
        self.last_seen_lsn = txn.commit_lsn;
        if n > 0 {
            self.store_entries(stored, chunk_ends, txn.commit_lsn)
                .map_err(|()| "storage error")?;
        }
        Ok(n)
    }

    /// A restored shape's views are loaded: its view becomes what it was when the server
    /// stopped, and the difference to the views now (what changed while it was down) is the
    /// first step: events and move-in queries like any move. Moves the views made since they
    /// loaded are in steps already queued, so the difference is taken to the views as they
    /// stood before those (the state noted for their values).
    pub fn finish_restore(&mut self) -> Applied {
        let sub = self.sub.as_mut().expect("a subquery shape");
        let Some(saved) = sub.restoring.take() else {
            return Applied::Nothing;
        };
        let mut moves = Vec::new();
        for (dep, values) in saved.into_iter().enumerate() {
            let saved: crate::fast_map::FastMap<Value, ()> =
                values.into_iter().map(|v| (v, ())).collect();
            // The view before the queued steps: the noted state, else the view's.
            let now: Vec<Value> = sub.view_values(dep);
            let mut m = Moves::default();
            for v in &now {
                if !saved.contains_key(v) {
                    m.entered.push(v.clone());
                }
            }
            let now_set: crate::fast_map::FastMap<&Value, ()> =
                now.iter().map(|v| (v, ())).collect();
            for v in saved.keys() {
                if !now_set.contains_key(v) {
                    m.left.push(v.clone());
                }
            }
            // The shape's view is the saved one until the step applies `m`.
            for v in &m.entered {
                sub.set(dep, v, false);
            }
            for v in &m.left {
                sub.set(dep, v, true);
            }
            if !m.is_empty() {
                moves.push((dep, m));
            }
        }
        if !moves.is_empty() {
            sub.pending.push_front(Step {
                txn: None,
                only: None,
                moves,
                queued_ins: Vec::new(),
                txids: Vec::new(),
            });
        }
        self.drain()
    }

    /// The move-in query to start, if one waits (marks it started).
    pub fn move_in_to_start(&mut self) -> Option<String> {
        let moving = self.sub.as_mut()?.moving.as_mut()?;
        if moving.started {
            return None;
        }
        moving.started = true;
        Some(moving.select.sql.clone())
    }
}
