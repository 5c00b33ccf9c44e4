//! Groups of shapes whose clauses are one `expression OP constant` template: the expression is
//! evaluated once per row for the whole group. Equality groups look the value up in a hash
//! map; other operators compare the value with each member's constant.

use std::collections::HashMap;

use super::buckets;
use crate::where_clause::analyze::Template;

pub(super) struct TemplateGroup {
    /// Evaluates the group's expression (any member's template would do).
    head: Template,
    /// Equality groups: members by their constant's key, as (id, slot).
    by_key: HashMap<Box<[u8]>, Vec<u64>>,
    /// Other groups: members with their own constant.
    members: Vec<Member>,
    len: usize,
}

pub(super) struct Member {
    pub(super) id: u64,
    pub(super) slot: u32,
    template: Template,
}

/// Where a member sits, for removal.
#[derive(Clone, Debug)]
pub(super) enum Position {
    Keyed(Box<[u8]>),
    At(usize),
}

impl TemplateGroup {
    pub(super) fn new(head: Template) -> Self {
        TemplateGroup {
            head,
            by_key: HashMap::new(),
            members: Vec::new(),
            len: 0,
        }
    }

    /// Adds a member with the same signature as the group's head.
    pub(super) fn insert(&mut self, id: u64, slot: u32, template: Template) -> Position {
        assert_eq!(template.signature(), self.head.signature());
        self.len += 1;
        if self.head.is_equality() {
            if let Some(key) = template.constant_key() {
                buckets::add(&mut self.by_key, key.clone(), id);
                return Position::Keyed(key);
            }
        }
        self.members.push(Member { id, slot, template });
        Position::At(self.members.len() - 1)
    }

    /// Removes a member; returns the member moved into its place (whose position is now
    /// `position`), if any.
    pub(super) fn remove(&mut self, id: u64, position: &Position) -> Option<&Member> {
        self.len -= 1;
        match position {
            Position::Keyed(key) => {
                buckets::remove_one(&mut self.by_key, &**key, id);
                None
            }
            Position::At(at) => {
                self.members.swap_remove(*at);
                self.members.get(*at)
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
        if !self.by_key.is_empty() {
            if let Some(key) = self.head.value_key(&value) {
                if let Some(ids) = self.by_key.get(key.bytes()) {
                    out.extend_from_slice(ids);
                }
            }
        }
        out.extend(
            self.members
                .iter()
                .filter(|m| m.template.holds(&value))
                .map(|m| m.id),
        );
    }
}
