//! The shapes whose clauses are LIKE / ILIKE patterns on one source string (see
//! `analyze::like`): the source is evaluated (and folded, for ILIKE) once per row for the whole
//! group, then each kind of pattern is found without looking at the others: equal strings by
//! hash, `abc%` and `%abc` by hashing the string's start and end at each literal length
//! present, `%abc%` and the longest literal of other patterns by one multi-needle search
//! (`needles`). Only the other patterns are confirmed with the matcher, and only when their
//! literal was found (or when they have none). Results are exact. A group of `NOT LIKE`
//! clauses emits the members whose pattern does not match a non-null string (one pass over
//! the members, as template groups do for `<>`).

use std::collections::{BTreeMap, HashMap};

use super::buckets;
use super::needles::Needles;
use super::Row;
use crate::where_clause::analyze::{LikePattern, LikeTerm, LikeValue, PatternKind};

/// Most members per group; a shape past it is evaluated one by one instead.
pub(super) const MEMBERS_MAX: usize = 1 << 20;

pub(super) struct LikeGroup {
    /// Evaluates the group's source (any member's term would do).
    head: LikeTerm,
    members: Vec<Member>,
    free: Vec<u32>,
    len: usize,
    equals: HashMap<Box<str>, Vec<u32>>,
    starts: Affix,
    ends: Affix,
    needles: Needles,
    /// Members without a literal to search for (`%`, `_%`, …): checked on every string.
    unsearched: Vec<u32>,
}

struct Member {
    /// What the group emits for this member (a shape id, or a packed reference to verify).
    output: u64,
    /// Bumped when the member is removed, so stale needle entries never resolve to a new one.
    generation: u32,
    pattern: Option<LikePattern>,
}

/// Literals the string must start (or end) with, by literal, with the byte lengths present.
#[derive(Default)]
struct Affix {
    by_literal: HashMap<Box<str>, Vec<u32>>,
    lengths: BTreeMap<usize, u32>,
}

impl Affix {
    fn insert(&mut self, literal: &str, member: u32) {
        buckets::add(&mut self.by_literal, literal.into(), member);
        *self.lengths.entry(literal.len()).or_default() += 1;
    }

    fn remove(&mut self, literal: &str, member: u32) {
        if buckets::remove_one(&mut self.by_literal, literal, member) {
            let count = self
                .lengths
                .get_mut(&literal.len())
                .expect("length counted");
            *count -= 1;
            if *count == 0 {
                self.lengths.remove(&literal.len());
            }
        }
    }

    /// Calls `hit` for members whose literal is the start (`from_end`: the end) of `text`.
    fn probe(&self, text: &str, from_end: bool, hit: &mut dyn FnMut(u32)) {
        for &len in self.lengths.keys() {
            if len > text.len() {
                break;
            }
            let part = if from_end {
                text.get(text.len() - len..)
            } else {
                text.get(..len)
            };
            if let Some(members) = part.and_then(|p| self.by_literal.get(p)) {
                members.iter().for_each(|&m| hit(m));
            }
        }
    }
}

impl LikeGroup {
    pub(super) fn new(head: LikeTerm) -> Self {
        LikeGroup {
            head,
            members: Vec::new(),
            free: Vec::new(),
            len: 0,
            equals: HashMap::new(),
            starts: Affix::default(),
            ends: Affix::default(),
            needles: Needles::new(),
            unsearched: Vec::new(),
        }
    }

    pub(super) fn is_full(&self) -> bool {
        self.len >= MEMBERS_MAX
    }

    /// Adds a member with the same signature as the group's head; returns its handle.
    pub(super) fn insert(&mut self, term: &LikeTerm, output: u64) -> u32 {
        assert_eq!(term.signature(), self.head.signature());
        self.len += 1;
        let at = match self.free.pop() {
            Some(at) => at,
            None => {
                let at = u32::try_from(self.members.len()).expect("fewer than 2^32 members");
                self.members.push(Member {
                    output,
                    generation: 0,
                    pattern: None,
                });
                at
            }
        };
        let member = &mut self.members[at as usize];
        member.output = output;
        member.pattern = Some(term.pattern.clone());
        let generation = member.generation;
        match &term.pattern.kind {
            PatternKind::Equals(literal) => {
                buckets::add(&mut self.equals, literal.clone(), at);
            }
            PatternKind::StartsWith(literal) => self.starts.insert(literal, at),
            PatternKind::EndsWith(literal) => self.ends.insert(literal, at),
            PatternKind::Contains(literal) => self.needles.insert(literal, (at, generation)),
            PatternKind::General { fragment } if !fragment.is_empty() => {
                self.needles.insert(fragment, (at, generation));
            }
            PatternKind::General { .. } | PatternKind::Any => self.unsearched.push(at),
        }
        at
    }

    /// Removes the member `at` returned by `insert`.
    pub(super) fn remove(&mut self, at: u32) {
        let member = &mut self.members[at as usize];
        let Some(pattern) = member.pattern.take() else {
            return;
        };
        member.generation = member.generation.wrapping_add(1);
        self.len -= 1;
        self.free.push(at);
        match &pattern.kind {
            PatternKind::Equals(literal) => {
                buckets::remove_one(&mut self.equals, &**literal, at);
            }
            PatternKind::StartsWith(literal) => self.starts.remove(literal, at),
            PatternKind::EndsWith(literal) => self.ends.remove(literal, at),
            PatternKind::General { fragment } if fragment.is_empty() => {
                self.unsearched.retain(|&m| m != at);
            }
            PatternKind::Any => self.unsearched.retain(|&m| m != at),
            PatternKind::Contains(_) | PatternKind::General { .. } => {
                let members = &self.members;
                self.needles.remove(&|(m, generation)| {
                    members
                        .get(m as usize)
                        .is_some_and(|s| s.generation == generation && s.pattern.is_some())
                });
            }
        }
    }

    /// Appends the outputs of the members whose clause is TRUE for the row: whose pattern
    /// matches the row's string, or (a `NOT LIKE` group) does not.
    pub(super) fn route<'r>(&self, row: &Row<'r>, out: &mut Vec<u64>) {
        if self.len == 0 {
            return;
        }
        // A NULL or failed string makes LIKE and NOT LIKE alike not TRUE.
        let Some(value) = self.head.evaluate(row) else {
            return;
        };
        if !self.head.negated {
            return self.matches(&value, out);
        }
        let mut matched = Vec::new();
        self.matches(&value, &mut matched);
        matched.sort_unstable();
        out.extend(
            self.members
                .iter()
                .filter(|m| m.pattern.is_some() && matched.binary_search(&m.output).is_err())
                .map(|m| m.output),
        );
    }

    /// Appends the outputs of the members whose pattern matches `value`, each once.
    fn matches(&self, value: &LikeValue<'_>, out: &mut Vec<u64>) {
        let folded = value.folded();
        let members = &self.members;
        let mut emit = |m: u32| out.push(members[m as usize].output);
        if let Some(found) = self.equals.get(folded) {
            found.iter().for_each(|&m| emit(m));
        }
        self.starts.probe(folded, false, &mut emit);
        self.ends.probe(folded, true, &mut emit);
        let mut check = |m: u32| {
            let member = &members[m as usize];
            let holds = match &member.pattern {
                Some(pattern) => match pattern.kind {
                    PatternKind::Contains(_) | PatternKind::Any => true,
                    PatternKind::General { .. } => pattern.confirm(&value.text),
                    _ => false,
                },
                None => false,
            };
            if holds {
                out.push(member.output);
            }
        };
        self.needles.find(folded, &mut |(m, generation)| {
            if members[m as usize].generation == generation {
                check(m);
            }
        });
        self.unsearched.iter().for_each(|&m| check(m));
    }
}
