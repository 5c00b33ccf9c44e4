//! The shape router: given one table's shapes and a row, which shapes' WHERE clauses are TRUE
//! for it, at a cost that depends on the shapes that match rather than on how many exist.
//!
//! Each shape is placed once, by what its clause allows:
//! - no clause: it matches every row;
//! - an access plan (see `where_clause::analyze`): its probes are stored in per-column indexes
//!   (hash for `=`/`IN`/`= ANY`, ordered maps and interval trees for ranges, a prefix index
//!   for `LIKE`/`ILIKE 'abc%'`, element indexes for `@>`/`<@`/`&&`); a row's index hits are
//!   candidates, each verified with the shape's own predicate, so results are exact;
//! - a template (`expression OP constant`): grouped with the same expression and evaluated
//!   once per group per row;
//! - otherwise its predicate is evaluated on every row.
//!
//! `route` takes `&self` and allocates nothing per call beyond the growth of `out`, except
//! for array-column probes (the row's array is parsed into a vector) and numeric keys longer
//! than 24 bytes. The router is single-threaded state (one per table per core).

mod buckets;
mod column;
mod interval;
mod prefix;
mod template;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::hash::RandomState;

use crate::where_clause::analyze::{self, Probe};
use crate::where_clause::Predicate;
use column::ColumnIndex;
use template::{Position, TemplateGroup};

/// One row: the text form of column `i` as pgoutput sends it, `None` for NULL.
pub type Row<'r> = dyn Fn(usize) -> Option<&'r [u8]> + 'r;

/// Routes rows of one table to the shapes (by the caller's `u64` ids) whose clause is TRUE.
pub struct Router {
    ids: HashMap<u64, u32>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Shapes without a clause, as (id, slot).
    everything: Vec<(u64, u32)>,
    /// Shapes evaluated one by one.
    scan: Vec<Scanned>,
    columns: Vec<ColumnIndex>,
    groups: Vec<TemplateGroup>,
    group_of: HashMap<String, usize>,
    hasher: RandomState,
}

impl Default for Router {
    fn default() -> Self {
        Router::new()
    }
}

struct Slot {
    /// Bumped when the slot is freed, so stale index entries never resolve to a new shape.
    generation: u32,
    shape: Option<Shape>,
}

struct Shape {
    id: u64,
    predicate: Option<Predicate>,
    place: Place,
}

enum Place {
    Everything(usize),
    Scan(usize),
    Template { group: usize, position: Position },
    Indexed(Vec<(usize, Probe)>),
}

struct Scanned {
    id: u64,
    slot: u32,
    predicate: Predicate,
}

/// Index entries refer to shapes by slot and generation packed into one word.
fn pack(slot: u32, generation: u32) -> u64 {
    u64::from(generation) << 32 | u64::from(slot)
}

fn unpack(shape: u64) -> (u32, u32) {
    (shape as u32, (shape >> 32) as u32)
}

impl Router {
    pub fn new() -> Self {
        Router {
            ids: HashMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            everything: Vec::new(),
            scan: Vec::new(),
            columns: Vec::new(),
            groups: Vec::new(),
            group_of: HashMap::new(),
            hasher: RandomState::new(),
        }
    }

    /// Number of shapes.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Adds (or replaces) shape `id` with `predicate`; `None` means no WHERE clause.
    pub fn insert(&mut self, id: u64, predicate: Option<&Predicate>) {
        self.remove(id);
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                let slot = u32::try_from(self.slots.len()).expect("fewer than 2^32 shapes");
                self.slots.push(Slot {
                    generation: 0,
                    shape: None,
                });
                slot
            }
        };
        let place = self.place(id, slot, predicate);
        self.slots[slot as usize].shape = Some(Shape {
            id,
            predicate: predicate.cloned(),
            place,
        });
        self.ids.insert(id, slot);
    }

    fn place(&mut self, id: u64, slot: u32, predicate: Option<&Predicate>) -> Place {
        let Some(predicate) = predicate else {
            self.everything.push((id, slot));
            return Place::Everything(self.everything.len() - 1);
        };
        if let Some(plan) = analyze::access_plan(predicate) {
            let shape = pack(slot, self.slots[slot as usize].generation);
            let mut stored = Vec::with_capacity(plan.len());
            for probe in plan {
                let column = self.column_for(&probe);
                self.columns[column].insert(&self.hasher, &probe.kind, shape);
                stored.push((column, probe));
            }
            return Place::Indexed(stored);
        }
        if let Some(template) = analyze::template(predicate) {
            let group = match self.group_of.get(template.signature()) {
                Some(&group) => group,
                None => {
                    self.groups.push(TemplateGroup::new(template.clone()));
                    let group = self.groups.len() - 1;
                    self.group_of
                        .insert(template.signature().to_string(), group);
                    group
                }
            };
            let position = self.groups[group].insert(id, slot, template);
            return Place::Template { group, position };
        }
        self.scan.push(Scanned {
            id,
            slot,
            predicate: predicate.clone(),
        });
        Place::Scan(self.scan.len() - 1)
    }

    fn column_for(&mut self, probe: &Probe) -> usize {
        match self.columns.iter().position(|c| c.class == probe.class) {
            Some(at) => at,
            None => {
                self.columns.push(ColumnIndex::new(probe.class.clone()));
                self.columns.len() - 1
            }
        }
    }

    /// Removes shape `id` (nothing happens if it is not there).
    pub fn remove(&mut self, id: u64) {
        let Some(slot) = self.ids.remove(&id) else {
            return;
        };
        let entry = &mut self.slots[slot as usize];
        let shape = entry.shape.take().expect("an id maps to an occupied slot");
        let old = pack(slot, entry.generation);
        entry.generation = entry.generation.wrapping_add(1);
        self.free.push(slot);
        match shape.place {
            Place::Everything(at) => {
                self.everything.swap_remove(at);
                if let Some(&(_, moved)) = self.everything.get(at) {
                    self.set_place(moved, Place::Everything(at));
                }
            }
            Place::Scan(at) => {
                self.scan.swap_remove(at);
                if let Some(moved) = self.scan.get(at).map(|s| s.slot) {
                    self.set_place(moved, Place::Scan(at));
                }
            }
            Place::Template { group, position } => {
                let moved = self.groups[group].remove(id, &position);
                if let (Some(moved), Position::At { at, .. }) = (moved, &position) {
                    let moved = self.slots[moved as usize].shape.as_mut();
                    if let Some(Place::Template {
                        position: Position::At { at: moved_at, .. },
                        ..
                    }) = moved.map(|s| &mut s.place)
                    {
                        *moved_at = *at;
                    }
                }
            }
            Place::Indexed(probes) => {
                let slots = &self.slots;
                let live = |shape: u64| {
                    let (slot, generation) = unpack(shape);
                    slots
                        .get(slot as usize)
                        .is_some_and(|s| s.generation == generation && s.shape.is_some())
                };
                for (column, probe) in &probes {
                    self.columns[*column].remove(&self.hasher, &probe.kind, old, &live);
                }
            }
        }
        // Keep the column list short: scans over it happen on every row.
        if self.columns.iter().any(ColumnIndex::is_empty) {
            self.compact_columns();
        }
    }

    fn set_place(&mut self, slot: u32, place: Place) {
        if let Some(shape) = self.slots[slot as usize].shape.as_mut() {
            shape.place = place;
        }
    }

    /// Drops empty column indexes and renumbers the probes that refer to the others.
    fn compact_columns(&mut self) {
        let mut renumber = Vec::with_capacity(self.columns.len());
        let mut kept = 0;
        for column in &self.columns {
            renumber.push(kept);
            if !column.is_empty() {
                kept += 1;
            }
        }
        self.columns.retain(|c| !c.is_empty());
        for shape in self.slots.iter_mut().filter_map(|s| s.shape.as_mut()) {
            if let Place::Indexed(probes) = &mut shape.place {
                for (column, _) in probes.iter_mut() {
                    *column = renumber[*column];
                }
            }
        }
    }

    /// Appends to `out` the id of every shape whose clause is TRUE for `row` (exactly the
    /// shapes for which [`Predicate::eval`] is true), each once, in no particular order.
    pub fn route<'r>(&self, row: &Row<'r>, out: &mut Vec<u64>) {
        let start = out.len();
        // Index candidates first, as packed references, deduplicated, then verified in place.
        for column in &self.columns {
            column.candidates(&self.hasher, row, out);
        }
        let tail = &mut out[start..];
        tail.sort_unstable();
        let mut kept = start;
        let mut previous = None;
        for at in start..out.len() {
            let candidate = out[at];
            if previous.replace(candidate) == Some(candidate) {
                continue;
            }
            let (slot, generation) = unpack(candidate);
            let Some(shape) = self
                .slots
                .get(slot as usize)
                .filter(|s| s.generation == generation)
                .and_then(|s| s.shape.as_ref())
            else {
                continue;
            };
            if shape.predicate.as_ref().is_none_or(|p| p.eval(row)) {
                out[kept] = shape.id;
                kept += 1;
            }
        }
        out.truncate(kept);
        out.extend(self.everything.iter().map(|&(id, _)| id));
        for group in &self.groups {
            group.route(row, out);
        }
        out.extend(
            self.scan
                .iter()
                .filter(|s| s.predicate.eval(row))
                .map(|s| s.id),
        );
    }
}
