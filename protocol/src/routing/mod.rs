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
//! - a LIKE / ILIKE pattern on a row-dependent string (`name ILIKE '%abc%'`,
//!   `lower(name) LIKE '%abc'`): grouped with the patterns on the same string, which is
//!   evaluated once per row and searched for every pattern at once (`like_group`);
//! - candidate terms (`analyze::terms`): like an access plan, but a term may also be a LIKE
//!   pattern or a keyed template comparison, found by groups of their own whose members emit
//!   the shape as a candidate to verify (`id = 1 OR lower(email) = 'x'`);
//! - otherwise its clause, compiled once (`analyze::program`: keyed comparisons against the
//!   row's keys, computed once per row for all such shapes), is evaluated on every row.
//!
//! `route` takes `&self`. Per call it allocates, besides the growth of `out`: the row's
//! decoded-column table (once, when a candidate is verified or a shape scanned) and key table
//! (when shapes are scanned), array-column probes (the row's array parsed into a vector),
//! numeric keys longer than 24 bytes, ILIKE's folded copy of a group's string, the list of
//! needles a string contains and a `NOT LIKE` group's matches. The router is single-threaded
//! state (one per table per core).

mod buckets;
mod column;
mod groups;
mod interval;
mod like_group;
mod needles;
mod prefix;
mod template;

#[cfg(test)]
mod like_tests;
#[cfg(test)]
mod tests;

use std::cell::OnceCell;
use std::collections::HashMap;
use std::hash::RandomState;

use crate::where_clause::analyze::{
    self, KeyClass, Probe, ProgramRef, Programs, RowKeys, Shared, Term,
};
use crate::where_clause::{Columns, Predicate};
use column::ColumnIndex;
use groups::Groups;
use like_group::LikeGroup;
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
    /// Template groups of whole clauses: members are shape ids, results exact.
    groups: Groups<TemplateGroup>,
    /// LIKE groups of whole clauses: members are shape ids, results exact.
    likes: Groups<LikeGroup>,
    /// Groups of terms of larger clauses: members are packed references, to verify.
    checked_groups: Groups<TemplateGroup>,
    checked_likes: Groups<LikeGroup>,
    /// One more than the highest column index any clause reads: the decoded columns a row
    /// may need while verifying candidates and evaluating scanned shapes.
    width: usize,
    /// Key classes the scanned shapes' programs compare, by slot (see `analyze::program`).
    classes: Vec<KeyClass>,
    /// The scanned shapes' compiled clauses.
    programs: Programs,
    hasher: RandomState,
    /// Shapes removed since the router was built: groups emptied by removals, compiled
    /// expressions and other per-table structures are not freed one by one, so once removals
    /// outnumber the live shapes the router is rebuilt from them ([`Router::rebuild`]).
    removed: usize,
}

/// Removals before a rebuild is considered at all (below this the leftovers are small).
const REBUILD_AFTER_MIN: usize = 1024;

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
    Template {
        group: usize,
        position: Position,
    },
    Like {
        group: usize,
        member: u32,
    },
    /// Found through these terms, then verified.
    Indexed(Vec<Stored>),
}

/// Where one term of an indexed shape is stored.
enum Stored {
    /// Column index (in `columns`) and probe.
    Column(usize, Probe),
    Like {
        group: usize,
        member: u32,
    },
    /// A keyed member of a checked template group, stored under the constant's key.
    Template {
        group: usize,
        key: Box<[u8]>,
    },
}

struct Scanned {
    id: u64,
    slot: u32,
    program: ProgramRef,
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
            groups: Groups::default(),
            likes: Groups::default(),
            checked_groups: Groups::default(),
            checked_likes: Groups::default(),
            width: 0,
            classes: Vec::new(),
            programs: Programs::default(),
            hasher: RandomState::new(),
            removed: 0,
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
        if let Some(last) = predicate.and_then(|p| p.columns().last().copied()) {
            self.width = self.width.max(last + 1);
        }
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
        let shape = pack(slot, self.slots[slot as usize].generation);
        if let Some(plan) = analyze::access_plan(predicate) {
            let stored = plan
                .into_iter()
                .map(|probe| self.store(Term::Index(probe), shape))
                .collect();
            return Place::Indexed(stored);
        }
        if let Some(template) = analyze::template(predicate) {
            let group = self.groups.index(template.signature(), || {
                TemplateGroup::new(template.clone())
            });
            let position = self.groups.list[group].insert(id, slot, template);
            return Place::Template { group, position };
        }
        if let Some(like) = analyze::like_of(predicate) {
            let group = self
                .likes
                .index(like.signature(), || LikeGroup::new(like.clone()));
            if !self.likes.list[group].is_full() {
                let member = self.likes.list[group].insert(&like, id);
                return Place::Like { group, member };
            }
        }
        if let Some(terms) = analyze::terms(predicate).filter(|t| self.has_room(t)) {
            let stored = terms
                .into_iter()
                .map(|term| self.store(term, shape))
                .collect();
            return Place::Indexed(stored);
        }
        let classes = &mut self.classes;
        let program = self.programs.compile(predicate, &mut |class| {
            let at = match classes.iter().position(|c| c == class) {
                Some(at) => at,
                None => {
                    classes.push(class.clone());
                    classes.len() - 1
                }
            };
            u32::try_from(at).expect("fewer than 2^32 key classes")
        });
        self.scan.push(Scanned { id, slot, program });
        Place::Scan(self.scan.len() - 1)
    }

    /// Whether the LIKE groups of `terms` can take another member.
    fn has_room(&self, terms: &[Term]) -> bool {
        terms.iter().all(|term| match term {
            Term::Like(like) => self
                .checked_likes
                .get(like.signature())
                .is_none_or(|group| !group.is_full()),
            _ => true,
        })
    }

    /// Stores one term of the shape packed as `shape`, whose candidates are verified.
    fn store(&mut self, term: Term, shape: u64) -> Stored {
        match term {
            Term::Index(probe) => {
                let column = self.column_for(&probe);
                self.columns[column].insert(&self.hasher, &probe.kind, shape);
                Stored::Column(column, probe)
            }
            Term::Like(like) => {
                let group = self
                    .checked_likes
                    .index(like.signature(), || LikeGroup::new(like.clone()));
                let member = self.checked_likes.list[group].insert(&like, shape);
                Stored::Like { group, member }
            }
            Term::Template(template) => {
                let group = self.checked_groups.index(template.signature(), || {
                    TemplateGroup::new(template.clone())
                });
                let key = self.checked_groups.list[group]
                    .insert_keyed(shape, &template)
                    .expect("analyze::terms only gives keyed templates");
                Stored::Template { group, key }
            }
        }
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
                let removed = self.scan.swap_remove(at);
                if let Some(moved) = self.scan.get(at).map(|s| s.slot) {
                    self.set_place(moved, Place::Scan(at));
                }
                if self.programs.release(removed.program) {
                    self.programs
                        .compact(self.scan.iter_mut().map(|s| &mut s.program));
                }
            }
            Place::Template { group, position } => {
                let moved = self.groups.list[group].remove(id, &position);
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
            Place::Like { group, member } => self.likes.list[group].remove(member),
            Place::Indexed(stored) => self.unstore(stored, old),
        }
        // Keep the column list short: scans over it happen on every row.
        if self.columns.iter().any(ColumnIndex::is_empty) {
            self.compact_columns();
        }
        self.removed += 1;
        if self.removed >= REBUILD_AFTER_MIN.max(2 * self.ids.len()) {
            self.rebuild();
        }
    }

    /// Builds the router again from its live shapes. Emptied LIKE and template groups and
    /// expressions no compiled clause reads any more would otherwise stay, and each is walked
    /// or allocated for on every routed row: after many shapes come and go, a few live ones
    /// could cost as much per row as all that ever existed. Amortised O(1) per removal: a
    /// rebuild inserts at most half as many shapes as were removed since the last one.
    fn rebuild(&mut self) {
        let shapes: Vec<(u64, Option<Predicate>)> = self
            .slots
            .iter_mut()
            .filter_map(|s| s.shape.take())
            .map(|shape| (shape.id, shape.predicate))
            .collect();
        *self = Router::new();
        for (id, predicate) in shapes {
            self.insert(id, predicate.as_ref());
        }
    }

    /// Undoes `store` for every term of the shape that was packed as `old`.
    fn unstore(&mut self, stored: Vec<Stored>, old: u64) {
        let slots = &self.slots;
        let live = |shape: u64| {
            let (slot, generation) = unpack(shape);
            slots
                .get(slot as usize)
                .is_some_and(|s| s.generation == generation && s.shape.is_some())
        };
        for term in stored {
            match term {
                Stored::Column(column, probe) => {
                    self.columns[column].remove(&self.hasher, &probe.kind, old, &live);
                }
                Stored::Like { group, member } => self.checked_likes.list[group].remove(member),
                Stored::Template { group, key } => {
                    self.checked_groups.list[group].remove(old, &Position::Keyed(key));
                }
            }
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
            if let Place::Indexed(stored) = &mut shape.place {
                for term in stored.iter_mut() {
                    if let Stored::Column(column, _) = term {
                        *column = renumber[*column];
                    }
                }
            }
        }
    }

    /// Appends to `out` the id of every shape whose clause is TRUE for `row` (exactly the
    /// shapes for which [`Predicate::eval`] is true), each once, in no particular order.
    pub fn route<'r>(&self, row: &Row<'r>, out: &mut Vec<u64>) {
        let start = out.len();
        // Columns are decoded once per row for every predicate evaluated on it, made on
        // first use (a row that hits no candidate and no scanned shape needs none).
        let columns = OnceCell::new();
        let columns = || columns.get_or_init(|| Columns::new(self.width));
        // Index candidates first, as packed references, deduplicated, then verified in place.
        for column in &self.columns {
            column.candidates(&self.hasher, row, out);
        }
        for group in &self.checked_groups.list {
            group.route(row, out);
        }
        for group in &self.checked_likes.list {
            group.route(row, out);
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
            if shape
                .predicate
                .as_ref()
                .is_none_or(|p| p.eval_shared(row, columns()))
            {
                out[kept] = shape.id;
                kept += 1;
            }
        }
        out.truncate(kept);
        out.extend(self.everything.iter().map(|&(id, _)| id));
        for group in &self.groups.list {
            group.route(row, out);
        }
        for group in &self.likes.list {
            group.route(row, out);
        }
        if self.scan.is_empty() {
            return;
        }
        let keys = RowKeys::new(self.classes.len(), &self.programs);
        let shared = Shared {
            row,
            columns: columns(),
            keys: &keys,
            classes: &self.classes,
        };
        out.extend(
            self.scan
                .iter()
                .filter(|s| self.programs.holds(s.program, &shared))
                .map(|s| s.id),
        );
    }
}
