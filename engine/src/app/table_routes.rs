//! The shapes of one table on one core, with the routing index that finds, for a replicated
//! row, the shapes whose WHERE clause holds (`protocol::routing`), so a change costs work in
//! proportion to the shapes it reaches rather than to every shape of its table.

use crate::fast_map::FastMap;
use crate::shapes::def::ShapeDef;
use protocol::routing::Router;

#[derive(Default)]
pub struct TableShapes {
    pub router: Router,
    /// Route id → handle, and back.
    handles: FastMap<u64, String>,
    ids: FastMap<String, u64>,
    next_id: u64,
}

impl TableShapes {
    pub fn insert(&mut self, handle: &str, def: &ShapeDef) {
        assert!(
            !self.ids.contains_key(handle),
            "shape {handle} registered twice"
        );
        self.next_id += 1;
        let id = self.next_id;
        // A subquery shape is routed by its clause with memberships taken as true; its views
        // decide the rest.
        let predicate = match &def.subquery {
            Some(sub) => sub.routing.as_ref(),
            None => def.predicate.as_ref(),
        };
        self.router.insert(id, predicate);
        self.handles.insert(id, handle.to_string());
        self.ids.insert(handle.to_string(), id);
    }

    pub fn remove(&mut self, handle: &str) {
        if let Some(id) = self.ids.remove(handle) {
            self.router.remove(id);
            self.handles.remove(&id);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn handle(&self, id: u64) -> Option<&str> {
        self.handles.get(&id).map(String::as_str)
    }

    pub fn handles(&self) -> impl Iterator<Item = &str> {
        self.ids.keys().map(String::as_str)
    }
}
