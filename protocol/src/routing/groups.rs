//! A list of groups (template or LIKE) found by their signature. Groups are never removed: an
//! empty one costs a length check per row, and its index stays valid for the shapes' places.

use std::collections::HashMap;

pub(super) struct Groups<G> {
    pub(super) list: Vec<G>,
    by_signature: HashMap<String, usize>,
}

impl<G> Default for Groups<G> {
    fn default() -> Self {
        Groups {
            list: Vec::new(),
            by_signature: HashMap::new(),
        }
    }
}

impl<G> Groups<G> {
    /// The index of the group with `signature`, made by `new` if there is none.
    pub(super) fn index(&mut self, signature: &str, new: impl FnOnce() -> G) -> usize {
        if let Some(&at) = self.by_signature.get(signature) {
            return at;
        }
        self.list.push(new());
        self.by_signature
            .insert(signature.to_string(), self.list.len() - 1);
        self.list.len() - 1
    }

    pub(super) fn get(&self, signature: &str) -> Option<&G> {
        self.by_signature.get(signature).map(|&at| &self.list[at])
    }
}
