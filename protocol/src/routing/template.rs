//! Groups of shapes whose clauses are one `expression OP constant` template: the expression is
//! evaluated once per row for the whole group, and the members whose comparison is TRUE are
//! found from the value's key (see `analyze::Layout`): a hash lookup for `=`, everything but
//! one hash bucket for `<>`, an ordered range for `<`, `<=`, `>`, `>=`; only types without
//! ordered keys (numeric ranges) compare the value with each member's constant. Results are
//! exact without verification: key equality and order are the comparison's.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

use super::buckets::{self, add_ordered, remove_ordered};
use crate::where_clause::analyze::{Layout, Template};

pub(super) struct TemplateGroup {
    /// Evaluates the group's expression (any member's template would do).
    head: Template,
    layout: Layout,
    /// `Equal` and `Unequal`: member ids by constant key.
    by_key: HashMap<Box<[u8]>, Vec<u64>>,
    /// `Unequal`: every member as (id, slot), so a row's result is one copy.
    all: Vec<(u64, u32)>,
    /// `Less` and `Greater`: member ids by constant key, in key order.
    ordered: BTreeMap<Box<[u8]>, Vec<u64>>,
    /// `Linear`: members with their own constant.
    members: Vec<Member>,
    len: usize,
}

struct Member {
    id: u64,
    slot: u32,
    template: Template,
}

/// Where a member sits, for removal.
#[derive(Clone, Debug)]
pub(super) enum Position {
    Keyed(Box<[u8]>),
    /// `at` indexes `all` (`Unequal`) or `members` (`Linear`).
    At {
        key: Option<Box<[u8]>>,
        at: usize,
    },
}

/// Above this many members equal to the row's value, `<>` results are built bucket by bucket
/// instead of by filtering a copy of every member.
const UNEQUAL_FILTER_MAX: usize = 8;

impl TemplateGroup {
    pub(super) fn new(head: Template) -> Self {
        TemplateGroup {
            layout: head.layout(),
            head,
            by_key: HashMap::new(),
            all: Vec::new(),
            ordered: BTreeMap::new(),
            members: Vec::new(),
            len: 0,
        }
    }

    /// Adds a member with the same signature as the group's head.
    pub(super) fn insert(&mut self, id: u64, slot: u32, template: Template) -> Position {
        assert_eq!(template.signature(), self.head.signature());
        self.len += 1;
        let key = template.constant_key();
        match (self.layout, key) {
            (Layout::Equal, Some(key)) => {
                buckets::add(&mut self.by_key, key.clone(), id);
                Position::Keyed(key)
            }
            (Layout::Unequal, Some(key)) => {
                buckets::add(&mut self.by_key, key.clone(), id);
                self.all.push((id, slot));
                Position::At {
                    key: Some(key),
                    at: self.all.len() - 1,
                }
            }
            (Layout::Less { .. } | Layout::Greater { .. }, Some(key)) => {
                add_ordered(&mut self.ordered, &key, id);
                Position::Keyed(key)
            }
            _ => {
                self.members.push(Member { id, slot, template });
                Position::At {
                    key: None,
                    at: self.members.len() - 1,
                }
            }
        }
    }

    /// Adds a member found by its constant's key alone (layouts `Equal`, `Less`, `Greater`),
    /// as the terms of larger clauses are; returns the key, or `None` (and adds nothing) for
    /// other layouts.
    pub(super) fn insert_keyed(&mut self, id: u64, template: &Template) -> Option<Box<[u8]>> {
        assert_eq!(template.signature(), self.head.signature());
        let key = template.constant_key()?;
        match self.layout {
            Layout::Equal => buckets::add(&mut self.by_key, key.clone(), id),
            Layout::Less { .. } | Layout::Greater { .. } => {
                add_ordered(&mut self.ordered, &key, id);
            }
            Layout::Unequal | Layout::Linear => return None,
        }
        self.len += 1;
        Some(key)
    }

    /// Removes a member; returns the slot of the member moved into its place (whose position
    /// now has the removed member's `at`), if any.
    pub(super) fn remove(&mut self, id: u64, position: &Position) -> Option<u32> {
        self.len -= 1;
        match position {
            Position::Keyed(key) => {
                if !buckets::remove_one(&mut self.by_key, &**key, id) {
                    remove_ordered(&mut self.ordered, key, id);
                }
                None
            }
            Position::At { key: Some(key), at } => {
                buckets::remove_one(&mut self.by_key, &**key, id);
                self.all.swap_remove(*at);
                self.all.get(*at).map(|&(_, slot)| slot)
            }
            Position::At { key: None, at } => {
                self.members.swap_remove(*at);
                self.members.get(*at).map(|m| m.slot)
            }
        }
    }

    /// Appends the ids of members whose comparison is TRUE for the row.
    pub(super) fn route<'r>(
        &self,
        row: &(dyn Fn(usize) -> Option<&'r [u8]> + 'r),
        out: &mut Vec<u64>,
    ) {
        if self.len == 0 {
            return;
        }
        let value = self.head.evaluate(row);
        out.extend(
            self.members
                .iter()
                .filter(|m| m.template.holds(&value))
                .map(|m| m.id),
        );
        let Some(key) = self.head.value_key(&value) else {
            return;
        };
        let key = key.bytes();
        match self.layout {
            Layout::Equal => {
                if let Some(ids) = self.by_key.get(key) {
                    out.extend_from_slice(ids);
                }
            }
            Layout::Unequal => self.route_unequal(key, out),
            Layout::Less { or_equal } => {
                // value < constant: constants above the value.
                let low = if or_equal {
                    Bound::Included(key)
                } else {
                    Bound::Excluded(key)
                };
                for ids in self.ordered.range::<[u8], _>((low, Bound::Unbounded)) {
                    out.extend_from_slice(ids.1);
                }
            }
            Layout::Greater { or_equal } => {
                let high = if or_equal {
                    Bound::Included(key)
                } else {
                    Bound::Excluded(key)
                };
                for ids in self.ordered.range::<[u8], _>((Bound::Unbounded, high)) {
                    out.extend_from_slice(ids.1);
                }
            }
            Layout::Linear => {}
        }
    }

    fn route_unequal(&self, key: &[u8], out: &mut Vec<u64>) {
        let equal = self.by_key.get(key).map_or(&[][..], Vec::as_slice);
        if equal.len() > UNEQUAL_FILTER_MAX {
            for (other, ids) in &self.by_key {
                if **other != *key {
                    out.extend_from_slice(ids);
                }
            }
            return;
        }
        let start = out.len();
        out.extend(self.all.iter().map(|&(id, _)| id));
        if !equal.is_empty() {
            let mut kept = start;
            for at in start..out.len() {
                if !equal.contains(&out[at]) {
                    out[kept] = out[at];
                    kept += 1;
                }
            }
            out.truncate(kept);
        }
    }
}
