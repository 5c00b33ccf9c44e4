//! A set of literal strings (needles), each owned by group members, searched for all at once
//! in a row's string: the needles are compiled into Aho-Corasick automata (the `aho-corasick`
//! crate, whose prefilters use SIMD), so one scan per automaton finds every needle the string
//! contains, at a cost that depends on the string, not on the number of needles.
//!
//! An automaton cannot be changed once built, so the set uses the logarithmic method (as
//! `interval` does): new needles wait in a short pending list (searched one by one) until
//! [`PENDING_MAX`] of them start a level, equal-sized levels merge by rebuilding, so inserting
//! n needles builds O(n log n) patterns in total and a search visits O(log n) automata.
//! Removal only counts the entry as stale (its owner's generation no longer matches); when
//! more than half the entries are stale, everything live is rebuilt.

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};

/// Needles searched one by one before they are compiled: building an automaton costs far more
/// per pattern for tiny sets, and a few substring searches per row cost little.
const PENDING_MAX: usize = 32;

/// An owner: (member index, member generation) in the group's member table.
pub(super) type Owner = (u32, u32);

pub(super) struct Needles {
    pending: Vec<(Box<str>, Owner)>,
    levels: Vec<Option<Level>>,
    entries: usize,
    stale: usize,
}

struct Level {
    /// Distinct needles, sorted; the automaton's pattern ids index this.
    patterns: Vec<Box<str>>,
    /// `owners[p]`: the owners of `patterns[p]`.
    owners: Vec<Vec<Owner>>,
    /// `None` if building failed (a size limit of the crate): the needles are then searched
    /// one by one, slower but still exact.
    automaton: Option<AhoCorasick>,
}

impl Level {
    fn build(mut entries: Vec<(Box<str>, Owner)>) -> Level {
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut patterns: Vec<Box<str>> = Vec::new();
        let mut owners: Vec<Vec<Owner>> = Vec::new();
        for (needle, owner) in entries {
            if patterns.last() != Some(&needle) {
                patterns.push(needle);
                owners.push(Vec::new());
            }
            owners.last_mut().expect("a pattern per owner").push(owner);
        }
        // A contiguous NFA: a DFA searches a little faster but takes far more memory and
        // time to build, and levels are rebuilt as they merge.
        let automaton = AhoCorasick::builder()
            .kind(Some(AhoCorasickKind::ContiguousNFA))
            .match_kind(MatchKind::Standard)
            .build(patterns.iter().map(|p| p.as_bytes()))
            .ok();
        Level {
            patterns,
            owners,
            automaton,
        }
    }

    fn into_entries(self) -> impl Iterator<Item = (Box<str>, Owner)> {
        self.patterns
            .into_iter()
            .zip(self.owners)
            .flat_map(|(needle, owners)| owners.into_iter().map(move |o| (needle.clone(), o)))
    }

    /// Calls `hit` once per owner of each distinct needle found in `text`.
    fn find(&self, text: &str, found: &mut Vec<u32>, hit: &mut dyn FnMut(Owner)) {
        found.clear();
        match &self.automaton {
            Some(automaton) => {
                found.extend(
                    automaton
                        .find_overlapping_iter(text)
                        .map(|m| m.pattern().as_u32()),
                );
                found.sort_unstable();
                found.dedup();
            }
            None => found.extend(
                (0..self.patterns.len() as u32)
                    .filter(|&p| text.contains(&*self.patterns[p as usize])),
            ),
        }
        for &p in found.iter() {
            self.owners[p as usize].iter().for_each(|&owner| hit(owner));
        }
    }
}

impl Needles {
    pub(super) fn new() -> Self {
        Needles {
            pending: Vec::new(),
            levels: Vec::new(),
            entries: 0,
            stale: 0,
        }
    }

    /// Adds `needle` (not empty) for `owner`.
    pub(super) fn insert(&mut self, needle: &str, owner: Owner) {
        assert!(!needle.is_empty(), "needles have at least one byte");
        self.entries += 1;
        self.pending.push((needle.into(), owner));
        if self.pending.len() < PENDING_MAX {
            return;
        }
        let mut carry = std::mem::take(&mut self.pending);
        for slot in 0.. {
            if slot == self.levels.len() {
                self.levels.push(None);
            }
            match self.levels[slot].take() {
                None => {
                    self.levels[slot] = Some(Level::build(carry));
                    return;
                }
                Some(level) => carry.extend(level.into_entries()),
            }
        }
    }

    /// Records that one entry now belongs to a removed member; `live` tells which owners are
    /// current, for the occasional rebuild.
    pub(super) fn remove(&mut self, live: &dyn Fn(Owner) -> bool) {
        let pending = self.pending.len();
        self.pending.retain(|(_, owner)| live(*owner));
        if self.pending.len() < pending {
            self.entries -= pending - self.pending.len();
            return;
        }
        self.stale += 1;
        if self.stale * 2 <= self.entries {
            return;
        }
        let entries: Vec<(Box<str>, Owner)> = self
            .levels
            .drain(..)
            .flatten()
            .flat_map(Level::into_entries)
            .chain(std::mem::take(&mut self.pending))
            .filter(|(_, owner)| live(*owner))
            .collect();
        self.entries = entries.len();
        self.stale = 0;
        if !entries.is_empty() {
            // The level a binary counter of this size would fill last.
            let slot = usize::BITS - (entries.len() / PENDING_MAX).leading_zeros();
            self.levels.resize_with(slot as usize + 1, || None);
            self.levels[slot as usize] = Some(Level::build(entries));
        }
    }

    /// Calls `hit` once for each owner of every needle `text` contains, stale owners included
    /// (an owner is stored once, so it is never called twice).
    pub(super) fn find(&self, text: &str, hit: &mut dyn FnMut(Owner)) {
        if self.entries == self.stale {
            return;
        }
        for (needle, owner) in &self.pending {
            if text.contains(&**needle) {
                hit(*owner);
            }
        }
        let mut found = Vec::new();
        for level in self.levels.iter().flatten() {
            level.find(text, &mut found, hit);
        }
    }
}
