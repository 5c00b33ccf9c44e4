//! Every index over one column (as one key class): shapes are stored by their probes, and a
//! row's value yields the candidate shapes whose probe it hits.

use std::collections::{BTreeMap, HashMap};
use std::hash::RandomState;
use std::ops::Bound;

use super::buckets::{self, add, add_ordered, distinct, remove_ordered};
use super::interval::IntervalIndex;
use super::prefix::PrefixIndex;
use crate::where_clause::analyze::{KeyClass, ProbeKind};

/// `shape` values are the router's packed shape references.
pub(super) struct ColumnIndex {
    pub(super) class: KeyClass,
    one_of: HashMap<Box<[u8]>, Vec<u64>>,
    /// Shapes needing key ≥ bound, by bound.
    at_least: BTreeMap<Box<[u8]>, Vec<u64>>,
    /// Shapes needing key ≤ bound, by bound.
    at_most: BTreeMap<Box<[u8]>, Vec<u64>>,
    within: IntervalIndex,
    like: PrefixIndex,
    ilike: PrefixIndex,
    has_element: HashMap<Box<[u8]>, Vec<u64>>,
    any_element: HashMap<Box<[u8]>, Vec<u64>>,
    /// `<@` shapes by each element of their array; all of them again in `within_all`.
    elements_within: HashMap<Box<[u8]>, Vec<u64>>,
    within_all: Vec<u64>,
    not_null: Vec<u64>,
    /// Probes stored (a stale interval counts until rebuilt), to drop empty indexes.
    probes: usize,
}

fn remove_from(list: &mut Vec<u64>, shape: u64) {
    if let Some(at) = list.iter().position(|&s| s == shape) {
        list.swap_remove(at);
    }
}

impl ColumnIndex {
    pub(super) fn new(class: KeyClass) -> Self {
        ColumnIndex {
            class,
            one_of: HashMap::new(),
            at_least: BTreeMap::new(),
            at_most: BTreeMap::new(),
            within: IntervalIndex::new(),
            like: PrefixIndex::new(false),
            ilike: PrefixIndex::new(true),
            has_element: HashMap::new(),
            any_element: HashMap::new(),
            elements_within: HashMap::new(),
            within_all: Vec::new(),
            not_null: Vec::new(),
            probes: 0,
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.probes == 0
    }

    pub(super) fn insert(&mut self, hasher: &RandomState, kind: &ProbeKind, shape: u64) {
        self.probes += 1;
        match kind {
            ProbeKind::OneOf(keys) => {
                for key in distinct(keys) {
                    add(&mut self.one_of, key.into(), shape);
                }
            }
            ProbeKind::AtLeast(key) => add_ordered(&mut self.at_least, key, shape),
            ProbeKind::AtMost(key) => add_ordered(&mut self.at_most, key, shape),
            ProbeKind::Within(lo, hi) => self.within.insert(lo, hi, shape),
            ProbeKind::Prefix {
                chars,
                case_insensitive,
            } => {
                let index = if *case_insensitive {
                    &mut self.ilike
                } else {
                    &mut self.like
                };
                index.insert(hasher, chars, shape);
            }
            ProbeKind::HasElement(key) => add(&mut self.has_element, key.clone(), shape),
            ProbeKind::AnyElementOf(keys) => {
                for key in distinct(keys) {
                    add(&mut self.any_element, key.into(), shape);
                }
            }
            ProbeKind::ElementsWithin(keys) => {
                for key in distinct(keys) {
                    add(&mut self.elements_within, key.into(), shape);
                }
                self.within_all.push(shape);
            }
            ProbeKind::NotNull => self.not_null.push(shape),
        }
    }

    /// Undoes `insert` of the same probe; `live` tells which shape references are current.
    pub(super) fn remove(
        &mut self,
        hasher: &RandomState,
        kind: &ProbeKind,
        shape: u64,
        live: &dyn Fn(u64) -> bool,
    ) {
        self.probes -= 1;
        match kind {
            ProbeKind::OneOf(keys) => {
                for key in distinct(keys) {
                    buckets::remove_one(&mut self.one_of, key, shape);
                }
            }
            ProbeKind::AtLeast(key) => remove_ordered(&mut self.at_least, key, shape),
            ProbeKind::AtMost(key) => remove_ordered(&mut self.at_most, key, shape),
            ProbeKind::Within(lo, hi) => self.within.remove(lo, hi, live),
            ProbeKind::Prefix {
                chars,
                case_insensitive,
            } => {
                let index = if *case_insensitive {
                    &mut self.ilike
                } else {
                    &mut self.like
                };
                index.remove(hasher, chars, shape);
            }
            ProbeKind::HasElement(key) => {
                buckets::remove_one(&mut self.has_element, &**key, shape);
            }
            ProbeKind::AnyElementOf(keys) => {
                for key in distinct(keys) {
                    buckets::remove_one(&mut self.any_element, key, shape);
                }
            }
            ProbeKind::ElementsWithin(keys) => {
                for key in distinct(keys) {
                    buckets::remove_one(&mut self.elements_within, key, shape);
                }
                remove_from(&mut self.within_all, shape);
            }
            ProbeKind::NotNull => remove_from(&mut self.not_null, shape),
        }
    }

    /// Appends the shapes whose probe on this column the row's value hits (with duplicates
    /// and stale references; the router sorts them out).
    pub(super) fn candidates<'r>(
        &self,
        hasher: &RandomState,
        row: &(dyn Fn(usize) -> Option<&'r [u8]> + 'r),
        out: &mut Vec<u64>,
    ) {
        // Every probe needs a non-null value to be TRUE.
        let Some(bytes) = row(self.class.column) else {
            return;
        };
        out.extend_from_slice(&self.not_null);
        let keyed = !self.one_of.is_empty()
            || !self.at_least.is_empty()
            || !self.at_most.is_empty()
            || !self.within.is_empty();
        if keyed {
            if let Some(key) = self.class.row_key(bytes) {
                let key = key.bytes();
                if let Some(shapes) = self.one_of.get(key) {
                    out.extend_from_slice(shapes);
                }
                let up_to = (Bound::Unbounded, Bound::Included(key));
                for shapes in self.at_least.range::<[u8], _>(up_to).map(|(_, s)| s) {
                    out.extend_from_slice(shapes);
                }
                let from = (Bound::Included(key), Bound::Unbounded);
                for shapes in self.at_most.range::<[u8], _>(from).map(|(_, s)| s) {
                    out.extend_from_slice(shapes);
                }
                self.within.stab(key, out);
            }
        }
        if !self.like.is_empty() || !self.ilike.is_empty() {
            if let Some(text) = self.class.row_text(bytes) {
                self.like.probe(hasher, &text, out);
                self.ilike.probe(hasher, &text, out);
            }
        }
        let arrays = !self.has_element.is_empty()
            || !self.any_element.is_empty()
            || !self.within_all.is_empty();
        if arrays {
            self.array_candidates(bytes, out);
        }
    }

    fn array_candidates(&self, bytes: &[u8], out: &mut Vec<u64>) {
        let Some(elements) = self.class.row_elements(bytes) else {
            return;
        };
        for key in elements.iter().flatten() {
            for map in [&self.has_element, &self.any_element] {
                if let Some(shapes) = map.get(key.bytes()) {
                    out.extend_from_slice(shapes);
                }
            }
        }
        // `<@`: an empty array is contained in anything; a NULL element in nothing; otherwise
        // the first element must be among the shape's elements.
        match elements.first() {
            None => out.extend_from_slice(&self.within_all),
            Some(None) => {}
            Some(Some(first)) => {
                if let Some(shapes) = self.elements_within.get(first.bytes()) {
                    out.extend_from_slice(shapes);
                }
            }
        }
    }
}
