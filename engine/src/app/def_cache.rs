//! Per-core cache of resolved definitions, keyed structurally by what a request asked for: a
//! hash of its definition parameters as sent, plus an equality check against the parameters
//! stored with each entry. A repeated request (catch-up, long-polls) finds its definition
//! without parsing its WHERE again and without building a key string.
//!
//! Absent and present parameters stay apart by construction (`None` is not any string), so no
//! text a client sends can stand for "no WHERE" or "all columns".

use crate::shapes::def::{DefParams, ShapeDef};
use protocol::request::{LogMode, ParamsError, Replica};
use std::collections::HashMap;
use std::sync::Arc;

/// Definitions cached per core; past this the cache starts over (a bound, not an LRU).
const MAX_ENTRIES: usize = 4096;

/// A request's definition parameters, borrowed from it: everything that goes into the
/// definition it resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Asked<'a> {
    schema: &'a str,
    name: &'a str,
    where_clause: Option<&'a str>,
    params: &'a [String],
    columns: Option<&'a [String]>,
    /// `queryable_columns`: it changes validation and the projection.
    queryable: Option<&'a [String]>,
    replica: Replica,
    log: LogMode,
    params_error: Option<ParamsError>,
}

impl<'a> Asked<'a> {
    pub fn of(q: &DefParams<'a>, queryable: Option<&'a [String]>) -> Self {
        Self {
            schema: &q.table.schema,
            name: &q.table.name,
            where_clause: q.where_clause,
            params: q.params,
            columns: q.columns,
            queryable,
            replica: q.replica,
            log: q.log,
            params_error: q.params_error,
        }
    }
}

/// [`Asked`], owned, with the definition it resolved to.
struct Entry {
    schema: String,
    name: String,
    where_clause: Option<String>,
    params: Vec<String>,
    columns: Option<Vec<String>>,
    queryable: Option<Vec<String>>,
    replica: Replica,
    log: LogMode,
    params_error: Option<ParamsError>,
    def: Arc<ShapeDef>,
}

impl Entry {
    fn asked(&self) -> Asked<'_> {
        Asked {
            schema: &self.schema,
            name: &self.name,
            where_clause: self.where_clause.as_deref(),
            params: &self.params,
            columns: self.columns.as_deref(),
            queryable: self.queryable.as_deref(),
            replica: self.replica,
            log: self.log,
            params_error: self.params_error,
        }
    }
}

#[derive(Default)]
pub struct DefCache {
    by_hash: HashMap<u64, Vec<Entry>>,
    len: usize,
    hasher: crate::fast_map::FastState,
}

impl DefCache {
    /// The cached definition for what `asked` describes, if any.
    pub fn get(&self, asked: &Asked<'_>) -> Option<&Arc<ShapeDef>> {
        self.by_hash
            .get(&self.hasher.hash_one(asked))?
            .iter()
            .find(|e| e.asked() == *asked)
            .map(|e| &e.def)
    }

    /// Caches `def` for `asked` (replacing an entry for the same parameters).
    pub fn insert(&mut self, asked: &Asked<'_>, def: Arc<ShapeDef>) {
        if self.len >= MAX_ENTRIES {
            self.by_hash.clear();
            self.len = 0;
        }
        let owned = |s: Option<&[String]>| s.map(<[String]>::to_vec);
        let entry = Entry {
            schema: asked.schema.to_string(),
            name: asked.name.to_string(),
            where_clause: asked.where_clause.map(str::to_string),
            params: asked.params.to_vec(),
            columns: owned(asked.columns),
            queryable: owned(asked.queryable),
            replica: asked.replica,
            log: asked.log,
            params_error: asked.params_error,
            def,
        };
        let bucket = self.by_hash.entry(self.hasher.hash_one(asked)).or_default();
        match bucket.iter_mut().find(|e| e.asked() == *asked) {
            Some(e) => *e = entry,
            None => {
                bucket.push(entry);
                self.len += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::ident::QualifiedTable;

    fn asked<'a>(
        t: &'a QualifiedTable,
        where_clause: Option<&'a str>,
        columns: Option<&'a [String]>,
    ) -> Asked<'a> {
        Asked {
            schema: &t.schema,
            name: &t.name,
            where_clause,
            params: &[],
            columns,
            queryable: None,
            replica: Replica::Default,
            log: LogMode::Full,
            params_error: None,
        }
    }

    #[test]
    fn absent_and_present_parameters_never_collide() {
        let t = QualifiedTable {
            schema: "public".into(),
            name: "items".into(),
        };
        let cols = vec!["id".to_string()];
        let none: &[String] = &[];
        // Pairs that a string key joining the parts could confuse: a WHERE that decodes to a
        // NUL byte followed by "none", an empty WHERE, an empty column list.
        let variants = [
            asked(&t, None, None),
            asked(&t, Some("\0none"), None),
            asked(&t, Some(""), None),
            asked(&t, None, Some(none)),
            asked(&t, None, Some(&cols)),
            asked(&t, Some("id = 1"), None),
        ];
        for (i, a) in variants.iter().enumerate() {
            for (j, b) in variants.iter().enumerate() {
                assert_eq!(a == b, i == j, "{a:?} vs {b:?}");
            }
        }
    }
}
