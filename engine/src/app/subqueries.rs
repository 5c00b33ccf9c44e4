//! Subquery shapes on a core (`electric-subqueries.md`, ARCHITECTURE.md "Subqueries"): the
//! core's dependency views (one per distinct subquery, shared by its shapes, found for a
//! replicated row through a routing index per table), the task that loads a view, and the
//! move-in query of a shape.
//!
//! Views live on every core that owns a shape using them (a view is small next to the shapes
//! it serves, and a core never waits on another for a membership), and apply each
//! transaction before the core's shapes do, so a shape sees a move before the changes of
//! the same transaction.

use super::core::{Core, ShapeRef};
use crate::fast_map::FastMap;
use crate::ingest::txn::Txn;
use crate::shapes::dep_view::{DepView, Moves, ViewState};
use crate::shapes::moves::{MoveInRows, Step, SubState};
use crate::shapes::shape::PgSnapshot;
use crate::shapes::snapshot::{decode_copy_row, SnapshotError};
use crate::shapes::subquery::{encode_value, normalize, DepDef};
use protocol::routing::Router;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

pub type ViewRef = Rc<RefCell<DepView>>;

/// The dependency views of one table on this core.
#[derive(Default)]
struct TableViews {
    router: Router,
    by_id: FastMap<u64, ViewRef>,
}

#[derive(Default)]
pub struct Registry {
    views: FastMap<String, (u64, ViewRef)>,
    tables: FastMap<u32, TableViews>,
    next_id: u64,
}

/// The moves a transaction caused, per view that moved, and the views it broke.
pub struct TxnMoves {
    pub moved: Vec<(ViewRef, Moves)>,
    pub broken: Vec<ViewRef>,
}

impl Registry {
    /// The view of `def`, and the views created now (they must be loaded; inner ones
    /// first). A nested dependency's inner views are views of their own, shared like any.
    fn get_or_create(&mut self, def: &Arc<DepDef>, created: &mut Vec<ViewRef>) -> ViewRef {
        if let Some((_, v)) = self.views.get(&def.key) {
            return v.clone();
        }
        let nested = def.nested.as_ref().map(|plan| {
            let views: Vec<ViewRef> = plan
                .deps
                .iter()
                .map(|inner| self.get_or_create(inner, created))
                .collect();
            crate::shapes::dep_rows::NestedRows::new(
                plan.clone(),
                views,
                def.stored_columns(),
                def.columns.clone(),
                def.key_columns(),
            )
        });
        let depth = nested.as_ref().map_or(0, |n| {
            1 + n.views.iter().map(|v| v.borrow().depth).max().unwrap_or(0)
        });
        let inner: Vec<ViewRef> = nested.as_ref().map(|n| n.views.clone()).unwrap_or_default();
        self.next_id += 1;
        let id = self.next_id;
        let view = Rc::new(RefCell::new(DepView::new(def.clone(), nested, depth)));
        for (i, v) in inner.iter().enumerate() {
            v.borrow_mut().parents.push((def.key.clone(), i));
        }
        let table = self.tables.entry(def.table.oid).or_default();
        // A nested dependency's rows are kept whatever its subqueries say: route by its
        // clause with memberships taken as true.
        let routing = match &def.nested {
            Some(plan) => plan.routing.as_ref(),
            None => def.predicate.as_ref(),
        };
        table.router.insert(id, routing);
        table.by_id.insert(id, view.clone());
        self.views.insert(def.key.clone(), (id, view.clone()));
        created.push(view.clone());
        view
    }

    /// A broken view breaks the views built on it, up to the top: every shape using any of
    /// them must rotate.
    fn break_with_parents(&self, view: &ViewRef, broken: &mut Vec<ViewRef>) {
        if broken.iter().any(|b| Rc::ptr_eq(b, view)) {
            return;
        }
        broken.push(view.clone());
        let parents: Vec<String> = view
            .borrow()
            .parents
            .iter()
            .map(|(k, _)| k.clone())
            .collect();
        for key in parents {
            if let Some((_, parent)) = self.views.get(&key) {
                if !matches!(parent.borrow().state, ViewState::Broken(_)) {
                    parent
                        .borrow_mut()
                        .fail("a subquery inside it broke".into());
                }
                self.break_with_parents(parent, broken);
            }
        }
    }

    /// Whether a view is still needed: by a shape or by another view.
    fn unused(view: &ViewRef) -> bool {
        let v = view.borrow();
        v.subscribers.is_empty() && v.parents.is_empty()
    }

    /// Drops an unused view, and then the inner views only it used.
    fn drop_view(&mut self, key: &str) {
        let Some((id, view)) = self.views.remove(key) else {
            return;
        };
        let inner: Vec<ViewRef> = view
            .borrow()
            .nested
            .as_ref()
            .map(|n| n.views.clone())
            .unwrap_or_default();
        for v in inner {
            let inner_key = {
                let mut v = v.borrow_mut();
                v.parents.retain(|(k, _)| k != key);
                v.def.key.clone()
            };
            if Self::unused(&v) {
                self.drop_view(&inner_key);
            }
        }
        let oid = view.borrow().def.table.oid;
        if let Some(table) = self.tables.get_mut(&oid) {
            table.router.remove(id);
            table.by_id.remove(&id);
            if table.by_id.is_empty() {
                self.tables.remove(&oid);
            }
        }
    }

    /// Applies a transaction to the views of the tables it touches.
    pub fn on_txn(&self, txn: &Arc<Txn>) -> TxnMoves {
        let mut out = TxnMoves {
            moved: Vec::new(),
            broken: Vec::new(),
        };
        if self.tables.is_empty() {
            return out;
        }
        let mut whole: Vec<u32> = txn.truncated.clone();
        whole.extend(txn.overflowed.iter().copied());
        whole.extend(txn.relations.iter().map(|r| r.oid));
        let mut hits: FastMap<u64, Vec<usize>> = FastMap::default();
        let mut routed = Vec::new();
        for (i, change) in txn.changes.iter().enumerate() {
            let oid = change.relation.oid;
            if whole.contains(&oid) {
                continue;
            }
            let Some(table) = self.tables.get(&oid) else {
                continue;
            };
            routed.clear();
            crate::shapes::apply::route_change(&table.router, change, &mut routed);
            routed.sort_unstable();
            routed.dedup();
            for &id in &routed {
                hits.entry(id).or_default().push(i);
            }
        }
        // Views to apply, with their own changes (`None`: all) and the moves below them.
        type Work = (Option<Vec<usize>>, Vec<(usize, Moves)>);
        let mut work: FastMap<String, (ViewRef, Work)> = FastMap::default();
        for oid in &whole {
            if let Some(table) = self.tables.get(oid) {
                for view in table.by_id.values() {
                    let key = view.borrow().def.key.clone();
                    work.insert(key, (view.clone(), (None, Vec::new())));
                }
            }
        }
        for (id, only) in hits {
            let view = self
                .tables
                .values()
                .find_map(|t| t.by_id.get(&id))
                .expect("a routed view is registered");
            let key = view.borrow().def.key.clone();
            work.entry(key)
                .or_insert_with(|| (view.clone(), (Some(Vec::new()), Vec::new())))
                .1
                 .0
                .get_or_insert_with(Vec::new)
                .extend(only);
        }
        // Inner views before the views that use them.
        let mut depth = 0;
        while !work.is_empty() {
            let now: Vec<String> = work
                .iter()
                .filter(|(_, (v, _))| v.borrow().depth == depth)
                .map(|(k, _)| k.clone())
                .collect();
            for key in now {
                let (view, (only, inner)) = work.remove(&key).expect("listed");
                let was_broken = matches!(view.borrow().state, ViewState::Broken(_));
                let moves = view.borrow_mut().on_txn(txn, only.as_deref(), &inner);
                if !was_broken && matches!(view.borrow().state, ViewState::Broken(_)) {
                    self.break_with_parents(&view, &mut out.broken);
                    continue;
                }
                if moves.is_empty() {
                    continue;
                }
                for (parent, dep) in &view.borrow().parents {
                    if let Some((_, p)) = self.views.get(parent) {
                        work.entry(parent.clone())
                            .or_insert_with(|| (p.clone(), (Some(Vec::new()), Vec::new())))
                            .1
                             .1
                            .push((*dep, moves.clone()));
                    }
                }
                out.moved.push((view.clone(), moves));
            }
            depth += 1;
            if depth > protocol::where_clause::SUBQUERIES_MAX + 1 {
                break;
            }
        }
        out
    }
}

/// The stack id tags hash (`ELECTRIC_DATABASE_ID`, upstream's default `single_stack`).
fn stack_id(core: &Core) -> Rc<str> {
    core.shared
        .config
        .database_id
        .as_deref()
        .unwrap_or(protocol::subquery::tags::DEFAULT_STACK_ID)
        .into()
}

/// Gives a new subquery shape its views (created and loading if new) and move state.
pub fn attach(core: &Rc<Core>, shape: &ShapeRef) {
    let (def, handle) = {
        let s = shape.borrow();
        (s.def.clone(), s.handle.clone())
    };
    let sub = def.subquery.clone().expect("a subquery shape");
    let mut views = Vec::with_capacity(sub.deps.len());
    let mut created = Vec::new();
    for (i, dep) in sub.deps.iter().enumerate() {
        let view = core.deps.borrow_mut().get_or_create(dep, &mut created);
        view.borrow_mut().subscribers.push((handle.clone(), i));
        views.push(view);
    }
    for view in created {
        let core = core.clone();
        monoio::spawn(async move { load_view(core, view).await });
    }
    let buffer_max = core.shared.config.subquery_buffer_max_transactions as usize;
    let mut s = shape.borrow_mut();
    s.sub = Some(SubState::new(sub, views, stack_id(core), buffer_max));
    if s.store.is_some() {
        // Served only up to its cuts (`durability`): a new log has none yet, a restored one
        // ends at its cut.
        let cap = crate::shapes::log::Cap(s.log.last_real_offset());
        s.log.set_cap(cap);
        // Its snapshot (taken after this) holds every transaction applied so far; a restored
        // log every one through its last.
        let lsn = if s.log.snapshot_done() {
            s.last_seen_lsn
        } else {
            core.last_lsn.get()
        };
        s.log.set_served_lsn(lsn);
    }
    if s.sub
        .as_ref()
        .is_some_and(|sub| sub.replay_from().is_some())
    {
        drop(s);
        hold(core, shape);
    }
}

/// A removed shape leaves its views; a view nobody uses any more is dropped.
pub fn detach(core: &Core, shape: &ShapeRef) {
    let s = shape.borrow();
    let Some(sub) = s.sub.as_ref() else {
        return;
    };
    for view in &sub.views {
        let key = {
            let mut v = view.borrow_mut();
            v.subscribers.retain(|(h, _)| *h != s.handle);
            v.def.key.clone()
        };
        if Registry::unused(view) {
            core.deps.borrow_mut().drop_view(&key);
        }
    }
}

/// Waits until every view of the shape is loaded; `Err` if one cannot be.
pub async fn views_ready(shape: &ShapeRef) -> Result<(), String> {
    let views = {
        let s = shape.borrow();
        s.sub.as_ref().expect("a subquery shape").views.clone()
    };
    ready(&views).await
}

async fn ready(views: &[ViewRef]) -> Result<(), String> {
    loop {
        let pending = {
            let mut pending = None;
            for view in views {
                let v = view.borrow();
                match &v.state {
                    ViewState::Ready { .. } => {}
                    ViewState::Broken(why) => return Err(format!("a subquery failed: {why}")),
                    ViewState::Loading { .. } => {
                        pending = Some(v.loaded.listen());
                        break;
                    }
                }
            }
            pending
        };
        match pending {
            Some(listener) => listener.await,
            None => return Ok(()),
        }
    }
}

/// Reads the rows of a dependency (one consistent snapshot) into its view; a nested one once
/// the views below it are loaded (its rows are evaluated against them).
async fn load_view(core: Rc<Core>, view: ViewRef) {
    let def = view.borrow().def.clone();
    let inner: Vec<ViewRef> = view
        .borrow()
        .nested
        .as_ref()
        .map(|n| n.views.clone())
        .unwrap_or_default();
    if let Err(why) = ready(&inner).await {
        view.borrow_mut().fail(why);
        return;
    }
    let result = async {
        let mut conn = core.conn().await.map_err(SnapshotError::Pg)?;
        core.ensure_published(&mut conn, &def.table)
            .await
            .map_err(SnapshotError::Pg)?;
        core.begin_seeing_applied(&mut conn).await?;
        let r = read_view(&mut conn, &def, &view).await;
        let end = if r.is_ok() { "COMMIT" } else { "ROLLBACK" };
        conn.execute(end).await?;
        if r.is_ok() {
            core.put_conn(conn);
        }
        r
    }
    .await;
    match result {
        Ok(snapshot) => view.borrow_mut().finish_loading(snapshot),
        Err(e) => {
            tracing::warn!("cannot read the subquery {}: {e}", def.sql);
            view.borrow_mut().fail(e.to_string());
        }
    }
}

async fn read_view(
    conn: &mut crate::pg::Connection,
    def: &DepDef,
    view: &ViewRef,
) -> Result<PgSnapshot, SnapshotError> {
    let (snapshot, _) = crate::shapes::snapshot::snapshot_position(conn).await?;
    let mut text = Vec::new();
    let mut fields = Vec::new();
    let mut value = Vec::new();
    if def.nested.is_some() {
        let stored = def.stored_columns();
        let cols: Vec<String> = stored
            .iter()
            .map(|&c| protocol::ident::quote_ident(&def.table.columns[c].info.name))
            .collect();
        let mut sql = format!("SELECT {} FROM {}", cols.join(", "), def.table.quoted());
        if let Some(routing) = def.nested.as_ref().and_then(|n| n.routing.as_ref()) {
            sql.push_str(" WHERE ");
            sql.push_str(&routing.to_sql());
        }
        conn.copy_out(&format!("COPY ({sql}) TO STDOUT"), |row: &[u8]| {
            decode_copy_row(row, &mut text, &mut fields)?;
            if fields.len() != stored.len() {
                return Err(SnapshotError::Copy("column count differs from the query"));
            }
            let get = |c: usize| {
                let at = stored.binary_search(&c).ok()?;
                fields[at].map(|(s, e)| &text[s..e])
            };
            view.borrow_mut().add_loaded_row(&get);
            if view.borrow().over_bounds() {
                return Err(SnapshotError::Protocol(
                    "the subquery holds too many rows".into(),
                ));
            }
            Ok::<(), SnapshotError>(())
        })
        .await?;
        return Ok(snapshot);
    }
    conn.copy_out(&format!("COPY ({}) TO STDOUT", def.sql), |row: &[u8]| {
        decode_copy_row(row, &mut text, &mut fields)?;
        if fields.len() != def.columns.len() {
            return Err(SnapshotError::Copy("column count differs from the query"));
        }
        let values: Vec<Option<std::borrow::Cow<'_, [u8]>>> = fields
            .iter()
            .zip(&def.columns)
            .map(|(f, &c)| normalize(def.canon[c], f.map(|(s, e)| &text[s..e])))
            .collect();
        let refs: Vec<Option<&[u8]>> = values.iter().map(|v| v.as_deref()).collect();
        value.clear();
        encode_value(&refs, &mut value);
        view.borrow_mut().add_loaded(&value);
        if view.borrow().over_bounds() {
            return Err(SnapshotError::Protocol(
                "the subquery holds too many values".into(),
            ));
        }
        Ok::<(), SnapshotError>(())
    })
    .await?;
    Ok(snapshot)
}

/// Starts the shape's pending move-in query, if any.
pub fn start_move_in(core: &Rc<Core>, shape: &ShapeRef) {
    if shape
        .borrow()
        .sub
        .as_ref()
        .is_some_and(|sub| sub.replay_from().is_some())
    {
        hold(core, shape);
    }
    let Some(sql) = shape.borrow_mut().move_in_to_start() else {
        return;
    };
    hold(core, shape);
    let core = core.clone();
    let shape = shape.clone();
    monoio::spawn(async move { move_in(core, shape, sql).await });
}

async fn move_in(core: Rc<Core>, shape: ShapeRef, sql: String) {
    let (def, stack, handle) = {
        let s = shape.borrow();
        let sub = s.sub.as_ref().expect("a subquery shape");
        (s.def.clone(), sub.stack_id.clone(), s.handle.clone())
    };
    let result = async {
        let mut conn = core.conn().await.map_err(SnapshotError::Pg)?;
        // A transaction this core applied already may still be committing for other
        // sessions (its commit is streamed first): the query must see all of them, else it
        // would miss their effects while the shape has them. Rare and brief: start again.
        let (snapshot, lsn) = core.begin_seeing_applied(&mut conn).await?;
        let r = async {
            let select = {
                let s = shape.borrow();
                let moving = s.sub.as_ref().and_then(|sub| sub.moving.as_ref());
                match moving {
                    Some(m) => crate::shapes::subquery_sql::SubSelect {
                        sql: sql.clone(),
                        needed: m.select.needed.clone(),
                        lhs_columns: m.select.lhs_columns.clone(),
                    },
                    None => return Err(SnapshotError::Protocol("the move-in was dropped".into())),
                }
            };
            let mut encoder = crate::shapes::subquery_sql::SubRows::new(
                &def,
                &select,
                stack.clone(),
                handle.clone(),
                true,
            );
            let mut rows = Vec::new();
            let mut bytes = 0usize;
            conn.copy_out(&format!("COPY ({sql}) TO STDOUT"), |row: &[u8]| {
                let json = encoder.encode(row)?.to_vec();
                bytes += json.len();
                if bytes > MOVE_IN_BYTES_MAX {
                    return Err(SnapshotError::Protocol(format!(
                        "a move-in brought more than {MOVE_IN_BYTES_MAX} bytes of rows"
                    )));
                }
                rows.push(json);
                Ok::<(), SnapshotError>(())
            })
            .await?;
            Ok(MoveInRows {
                snapshot,
                lsn,
                rows,
            })
        }
        .await;
        let end = if r.is_ok() { "COMMIT" } else { "ROLLBACK" };
        conn.execute(end).await?;
        if r.is_ok() {
            core.put_conn(conn);
        }
        r
    }
    .await;
    if shape.borrow().invalidated {
        return;
    }
    match result {
        Ok(rows) => {
            if let Some(m) = shape
                .borrow_mut()
                .sub
                .as_mut()
                .and_then(|s| s.moving.as_mut())
            {
                m.result = Some(rows);
            }
            try_splice(&core, &shape, 0);
        }
        Err(e) => {
            tracing::warn!("move-in query of shape {handle} failed: {e}");
            core.remove(&handle);
        }
    }
}

/// Delivers a transaction's view moves: notes them on every subscribed shape (before any of
/// them processes the transaction) and returns, per shape handle, its moves as a step's.
pub fn deliver(core: &Core, moves: &TxnMoves) -> FastMap<String, Vec<(usize, Moves)>> {
    let mut out: FastMap<String, Vec<(usize, Moves)>> = FastMap::default();
    for (view, m) in &moves.moved {
        for (handle, dep) in &view.borrow().subscribers {
            let Some(shape) = core.shape(handle) else {
                continue;
            };
            if let Some(sub) = shape.borrow_mut().sub.as_mut() {
                sub.note_moves(*dep, m);
            }
            out.entry(handle.clone())
                .or_default()
                .push((*dep, m.clone()));
        }
    }
    out
}

/// The subscribers of views a transaction broke: their shapes are removed (409).
pub fn broken_shapes(moves: &TxnMoves) -> Vec<String> {
    let mut out = Vec::new();
    for view in &moves.broken {
        let v = view.borrow();
        if let ViewState::Broken(why) = &v.state {
            tracing::info!("subquery {} broke: {why}", v.def.sql);
        }
        out.extend(v.subscribers.iter().map(|(h, _)| h.clone()));
    }
    out
}

/// A step for a subquery shape.
pub fn step(txn: &Arc<Txn>, only: Option<Vec<usize>>, moves: Vec<(usize, Moves)>) -> Step {
    Step {
        txn: Some(txn.clone()),
        only,
        moves,
        queued_ins: Vec::new(),
        txids: Vec::new(),
    }
}

/// Builds a definition, looking up the tables its subqueries read: each pass parses with the
/// tables known so far and records the ones it asked for in vain; those are looked up and the
/// clause parsed again (one more level of nesting per pass, bounded).
pub async fn build_definition(
    core: &Rc<Core>,
    q: &crate::shapes::def::DefParams<'_>,
    queryable: Option<&[String]>,
    table: Arc<crate::catalog::TableInfo>,
) -> Result<
    Result<crate::shapes::def::ShapeDef, protocol::validation::ValidationErrors>,
    crate::pg::PgError,
> {
    use crate::catalog::TableInfo;
    use crate::shapes::def::ShapeDef;
    type Known = std::collections::HashMap<(String, String), Option<Arc<TableInfo>>>;
    let mut known: Known = Known::new();
    for _ in 0..=protocol::where_clause::SUBQUERIES_MAX {
        let missing = RefCell::new(Vec::new());
        let lookup = |schema: &str, name: &str| {
            let key = (schema.to_string(), name.to_string());
            match known.get(&key) {
                Some(found) => found.clone(),
                None => {
                    missing.borrow_mut().push(key);
                    None
                }
            }
        };
        let built = ShapeDef::build_full(q, queryable, table.clone(), Some(&lookup));
        let missing = missing.into_inner();
        if missing.is_empty() {
            return Ok(built);
        }
        for (schema, name) in missing {
            let found = match core.cached_table(&schema, &name) {
                Some(t) => Some(t),
                None => Box::pin(core.table(&schema, &name)).await?,
            };
            known.insert((schema, name), found);
        }
    }
    Ok(Err(protocol::validation::where_error(
        "too many subqueries",
    )))
}

/// A subquery shape restored after a clean stop: subscribes to its views (loading them) with
/// its saved view, and once they are loaded turns the difference into its first moves.
pub fn attach_restored(
    core: &Rc<Core>,
    shape: &ShapeRef,
    saved: Vec<Vec<crate::shapes::subquery::Value>>,
) {
    attach(core, shape);
    if let Some(sub) = shape.borrow_mut().sub.as_mut() {
        sub.restoring = Some(saved);
    }
    hold(core, shape);
    let core = core.clone();
    let shape = shape.clone();
    monoio::spawn(async move {
        if let Err(why) = views_ready(&shape).await {
            let handle = shape.borrow().handle.clone();
            tracing::warn!("restored shape {handle}: {why}");
            core.remove(&handle);
            return;
        }
        if shape.borrow().invalidated {
            return;
        }
        let applied = shape.borrow_mut().finish_restore();
        core.after_applied(&shape, applied);
        start_move_in(&core, &shape);
    });
}

/// The shape may now queue transactions its log does not hold (`Core::holding`).
pub fn hold(core: &Core, shape: &ShapeRef) {
    let key = Rc::as_ptr(shape) as usize;
    core.holding
        .borrow_mut()
        .entry(key)
        .or_insert_with(|| shape.clone());
}

/// Largest result of one move-in query, held in memory until spliced; above it the shape
/// rotates (409) and its clients resync.
const MOVE_IN_BYTES_MAX: usize = 256 * 1024 * 1024;

/// Splices a shape's move-in rows once its boundary is known: a queued transaction the
/// query's snapshot does not see (the ones before it were all seen), or the stream past the
/// query's position (every transaction it saw has arrived). Otherwise the shape waits for
/// the stream (`CoreMsg::Progress`). `at` is the end of a transaction being applied now.
pub fn try_splice(core: &Rc<Core>, shape: &ShapeRef, at: u64) {
    let position = core.processed_lsn.get().max(core.stream_lsn.get()).max(at);
    let wait = {
        let s = shape.borrow();
        match s.sub.as_ref().and_then(|sub| sub.splice_wait(position)) {
            Some(wait) => wait,
            None => return,
        }
    };
    if let Some(lsn) = wait {
        core.shared.progress.want(lsn);
        let mut waiters = core.splice_waiters.borrow_mut();
        if !waiters.iter().any(|w| Rc::ptr_eq(w, shape)) {
            waiters.push(shape.clone());
        }
        return;
    }
    core.splice_waiters
        .borrow_mut()
        .retain(|w| !Rc::ptr_eq(w, shape));
    let applied = shape.borrow_mut().splice();
    core.after_applied(shape, applied);
    start_move_in(core, shape);
}

/// The stream moved on: shapes waiting for it may splice.
pub fn progress(core: &Rc<Core>) {
    let waiters: Vec<ShapeRef> = core.splice_waiters.borrow().clone();
    for shape in waiters {
        if shape.borrow().invalidated {
            core.splice_waiters
                .borrow_mut()
                .retain(|w| !Rc::ptr_eq(w, &shape));
            continue;
        }
        try_splice(core, &shape, 0);
    }
}
