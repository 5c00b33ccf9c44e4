//! Shapes by the literal prefix of their LIKE / ILIKE pattern.
//!
//! A prefix of n characters is stored under a keyed hash of its characters. A row probes once
//! per distinct prefix length present, hashing its own first characters incrementally, so the
//! cost is O(row prefix length) regardless of the number of shapes. Hash collisions only add
//! candidates, which the router verifies.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher, RandomState};

use crate::where_clause::analyze::ilike_fold;

pub(super) struct PrefixIndex {
    case_insensitive: bool,
    buckets: HashMap<u64, Vec<u64>>,
    /// `lengths[n]`: how many stored prefixes have n characters.
    lengths: Vec<u32>,
}

impl PrefixIndex {
    pub(super) fn new(case_insensitive: bool) -> Self {
        PrefixIndex {
            case_insensitive,
            buckets: HashMap::new(),
            lengths: Vec::new(),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    fn hash(hasher: &RandomState, chars: &[char]) -> u64 {
        let mut state = hasher.build_hasher();
        for &c in chars {
            state.write_u32(u32::from(c));
        }
        state.finish()
    }

    /// `chars` are already folded for ILIKE (see `analyze::literal_prefix`).
    pub(super) fn insert(&mut self, hasher: &RandomState, chars: &[char], shape: u64) {
        assert!(
            !chars.is_empty(),
            "prefix probes have at least one character"
        );
        self.buckets
            .entry(Self::hash(hasher, chars))
            .or_default()
            .push(shape);
        if self.lengths.len() <= chars.len() {
            self.lengths.resize(chars.len() + 1, 0);
        }
        self.lengths[chars.len()] += 1;
    }

    pub(super) fn remove(&mut self, hasher: &RandomState, chars: &[char], shape: u64) {
        let hash = Self::hash(hasher, chars);
        if super::buckets::remove_one(&mut self.buckets, &hash, shape) {
            self.lengths[chars.len()] -= 1;
            while self.lengths.last() == Some(&0) {
                self.lengths.pop();
            }
        }
    }

    pub(super) fn probe(&self, hasher: &RandomState, text: &str, out: &mut Vec<u64>) {
        let mut state = hasher.build_hasher();
        for (n, c) in (1..self.lengths.len()).zip(text.chars()) {
            let c = if self.case_insensitive {
                ilike_fold(c)
            } else {
                c
            };
            state.write_u32(u32::from(c));
            if self.lengths[n] > 0 {
                if let Some(shapes) = self.buckets.get(&state.clone().finish()) {
                    out.extend_from_slice(shapes);
                }
            }
        }
    }
}
