//! Turning a replicated change into a shape's log entries (§5.5 of the protocol reference):
//! membership of the old and new row decides insert / update / delete (move-in, move-out), a key
//! change splits an update into delete + insert at `op` and `op + 1`, and the replica mode decides
//! which columns each message carries.
//!
//! Values are borrowed from the transaction's rows (no copy per column); an entry's JSON is
//! encoded once per transaction for all shapes of the core that produce the same entry
//! ([`EncodeCache`]).

use super::def::ShapeDef;
use crate::catalog::TableInfo;
use crate::ingest::txn::{Change, ChangeKind, Relation, Row};
use bytes::Bytes;
use protocol::message::{self, Change as ChangeMessage, Column, Operation};
use protocol::offset::LogOffset;
use protocol::request::Replica;

/// Column values of an entry, by table column index, borrowed from the transaction.
pub type Vals<'t> = Vec<(usize, Option<&'t [u8]>)>;

/// One log entry produced for a shape, before the `last` flag is known.
pub struct PendingEntry<'t> {
    pub offset: LogOffset,
    pub op: Operation,
    pub key: Vec<u8>,
    pub value: Vals<'t>,
    pub old_value: Option<Vals<'t>>,
    pub key_change_to: Option<Vec<u8>>,
    pub key_change_from: Option<Vec<u8>>,
}

/// Whether the relation as published still matches the table the shape was built on.
pub fn relation_matches(table: &TableInfo, rel: &Relation) -> bool {
    rel.oid == table.oid
        && rel.schema == table.schema
        && rel.name == table.name
        && rel.columns.len() == table.columns.len()
        && rel
            .columns
            .iter()
            .zip(&table.columns)
            .all(|(r, t)| r.name == t.info.name && r.type_oid == t.type_oid)
}

/// A row as the shape sees it: unchanged-TOAST columns of a new row are read from the old row.
#[derive(Clone, Copy)]
struct View<'t> {
    row: &'t Row,
    fill: Option<&'t Row>,
}

impl<'t> View<'t> {
    fn get(&self, i: usize) -> Option<&'t [u8]> {
        match self.fill {
            Some(f) if self.row.is_missing(i) => f.get(i),
            _ => self.row.get(i),
        }
    }

    fn pick(&self, cols: &[usize]) -> Vals<'t> {
        cols.iter().map(|&i| (i, self.get(i))).collect()
    }

    fn key(&self, def: &ShapeDef) -> Vec<u8> {
        let vals: Vec<Option<&[u8]>> = def.key_cols.iter().map(|&i| self.get(i)).collect();
        let mut out = Vec::with_capacity(32);
        protocol::key::push_row_key(&mut out, &def.table.schema, &def.table.name, &vals);
        out
    }

    fn matches(&self, def: &ShapeDef) -> bool {
        def.matches(&|i| self.get(i))
    }
}

/// What a delete carries: every selected column with `replica=full`, else what identifies the
/// row (the PK, or every column without one).
fn delete_columns(def: &ShapeDef) -> &[usize] {
    if def.replica == Replica::Full || def.table.pk.is_empty() {
        &def.selected
    } else {
        &def.table.pk
    }
}

/// The update entry of a row that stays in the shape under the same key, and whether any
/// selected column changed. Full replica: every selected column plus the old values of the
/// changed ones; default: the key and the changed columns. Without the old row (identity not
/// FULL) nothing is known to be unchanged.
fn update_entry<'t>(
    def: &ShapeDef,
    offset: LogOffset,
    key: Vec<u8>,
    old_v: View<'t>,
    new_v: View<'t>,
    old_known: bool,
) -> (PendingEntry<'t>, bool) {
    let changed: Vec<usize> = def
        .selected
        .iter()
        .copied()
        .filter(|&i| !old_known || old_v.get(i) != new_v.get(i))
        .collect();
    let e = if def.replica == Replica::Full {
        let mut e = entry(offset, Operation::Update, key, new_v.pick(&def.selected));
        e.old_value = Some(old_v.pick(&changed));
        e
    } else {
        let mut cols: Vec<usize> = def.table.pk.clone();
        cols.extend(
            changed
                .iter()
                .copied()
                .filter(|c| !def.table.pk.contains(c)),
        );
        cols.sort_unstable();
        entry(offset, Operation::Update, key, new_v.pick(&cols))
    };
    (e, !changed.is_empty())
}

fn entry<'t>(offset: LogOffset, op: Operation, key: Vec<u8>, value: Vals<'t>) -> PendingEntry<'t> {
    PendingEntry {
        offset,
        op,
        key,
        value,
        old_value: None,
        key_change_to: None,
        key_change_from: None,
    }
}

/// Appends to `out` the ids of the shapes in `router` that `change` can affect: those whose
/// clause holds for the new row or for the old row (duplicates possible). The rows are seen as
/// `entries_for` sees them (unchanged TOAST columns of the new row read from the old row).
pub fn route_change(router: &protocol::routing::Router, change: &Change, out: &mut Vec<u64>) {
    match &change.kind {
        ChangeKind::Insert { new } => {
            let v = View {
                row: new,
                fill: None,
            };
            router.route(&|i| v.get(i), out);
        }
        ChangeKind::Delete { old } => {
            let v = View {
                row: old,
                fill: None,
            };
            router.route(&|i| v.get(i), out);
        }
        ChangeKind::Update { old, new } => {
            let new_v = View {
                row: new,
                fill: old.as_ref(),
            };
            router.route(&|i| new_v.get(i), out);
            if let Some(old) = old {
                let old_v = View {
                    row: old,
                    fill: None,
                };
                router.route(&|i| old_v.get(i), out);
            }
        }
    }
}

/// Computes the entries `change` contributes to the shape (0, 1 or 2).
pub fn entries_for<'t>(
    def: &ShapeDef,
    change: &'t Change,
    commit_lsn: u64,
    out: &mut Vec<PendingEntry<'t>>,
) {
    let at = |op: u64| LogOffset::new(commit_lsn, op);
    let delete_cols = delete_columns(def);
    match &change.kind {
        ChangeKind::Insert { new } => {
            let v = View {
                row: new,
                fill: None,
            };
            if v.matches(def) {
                out.push(entry(
                    at(change.op),
                    Operation::Insert,
                    v.key(def),
                    v.pick(&def.selected),
                ));
            }
        }
        ChangeKind::Delete { old } => {
            let v = View {
                row: old,
                fill: None,
            };
            if v.matches(def) {
                out.push(entry(
                    at(change.op),
                    Operation::Delete,
                    v.key(def),
                    v.pick(delete_cols),
                ));
            }
        }
        ChangeKind::Update { old, new } => {
            // REPLICA IDENTITY FULL is set on every shape table, so `old` is the whole old row;
            // without it the best knowledge of the old row is the new one.
            let old_v = View {
                row: old.as_ref().unwrap_or(new),
                fill: None,
            };
            let new_v = View {
                row: new,
                fill: old.as_ref(),
            };
            match (old_v.matches(def), new_v.matches(def)) {
                (false, false) => {}
                (false, true) => out.push(entry(
                    at(change.op),
                    Operation::Insert,
                    new_v.key(def),
                    new_v.pick(&def.selected),
                )),
                (true, false) => out.push(entry(
                    at(change.op),
                    Operation::Delete,
                    old_v.key(def),
                    old_v.pick(delete_cols),
                )),
                (true, true) => {
                    let (old_key, new_key) = (old_v.key(def), new_v.key(def));
                    if old_key != new_key {
                        let mut del = entry(
                            at(change.op),
                            Operation::Delete,
                            old_key.clone(),
                            old_v.pick(delete_cols),
                        );
                        del.key_change_to = Some(new_key.clone());
                        let mut ins = entry(
                            at(change.op + 1),
                            Operation::Insert,
                            new_key,
                            new_v.pick(&def.selected),
                        );
                        ins.key_change_from = Some(old_key);
                        out.push(del);
                        out.push(ins);
                        return;
                    }
                    let (e, changed) =
                        update_entry(def, at(change.op), new_key, old_v, new_v, old.is_some());
                    if changed {
                        out.push(e);
                    }
                }
            }
        }
    }
}

/// (op position, operation, last, replica full, projection hash).
type EncodeKey = (u64, u8, bool, bool, u64);

/// Entry bytes already encoded in this transaction, keyed by what determines them: the op
/// position, the operation, the `last` flag, the replica mode and the projection. Shapes of one
/// table that differ only in their WHERE clause share the bytes.
#[derive(Default)]
pub struct EncodeCache {
    map: crate::fast_map::FastMap<EncodeKey, (Vec<usize>, Bytes)>,
    buf: Vec<u8>,
}

impl EncodeCache {
    pub fn clear(&mut self) {
        self.map.clear();
    }
}

/// Encodes an entry into its final JSON bytes, reusing an identical entry of another shape.
pub fn encode(
    def: &ShapeDef,
    e: &PendingEntry<'_>,
    xid: u32,
    last: bool,
    cache: &mut EncodeCache,
) -> Bytes {
    let full = def.replica == Replica::Full;
    let key = (e.offset.op, e.op as u8, last, full, def.projection_hash);
    if let Some((cols, bytes)) = cache.map.get(&key) {
        if *cols == def.selected {
            return bytes.clone();
        }
    }
    let name = |i: usize| def.table.columns[i].info.name.as_str();
    let value: Vec<Column<'_>> = e.value.iter().map(|(i, v)| (name(*i), *v)).collect();
    let old_value: Option<Vec<Column<'_>>> = e
        .old_value
        .as_ref()
        .map(|ov| ov.iter().map(|(i, v)| (name(*i), *v)).collect());
    cache.buf.clear();
    message::encode_change(
        &mut cache.buf,
        &ChangeMessage {
            op: e.op,
            key: &e.key,
            relation: (&def.table.schema, &def.table.name),
            value: &value,
            old_value: old_value.as_deref(),
            lsn: Some(e.offset.tx),
            op_position: Some(e.offset.op),
            txid: Some(xid),
            last,
            key_change_to: e.key_change_to.as_deref(),
            key_change_from: e.key_change_from.as_deref(),
        },
    );
    let bytes = Bytes::copy_from_slice(&cache.buf);
    cache.map.insert(key, (def.selected.clone(), bytes.clone()));
    bytes
}

/// Encodes one entry on its own (entries of subquery shapes carry per-shape headers, so they
/// are not shared through [`EncodeCache`]).
pub fn encode_one(def: &ShapeDef, e: &PendingEntry<'_>, xid: u32, last: bool) -> Vec<u8> {
    let mut cache = EncodeCache::default();
    encode(def, e, xid, last, &mut cache).to_vec()
}

/// What a subquery shape's entries carry besides the row: its `tags`/`active_conditions`,
/// and `removed_tags` for updates.
pub type SubEntry<'t> = (
    PendingEntry<'t>,
    super::subquery::RowMeta,
    Option<Vec<String>>,
);

/// [`entries_for`] for a shape with subqueries (`electric-subqueries.md` §5.1, §6.1): rows are
/// in the shape by the plan evaluated over the views (`member`), entries carry the membership
/// headers, and an update of a row that stays in is kept even when no selected column
/// changed (its `active_conditions` may have).
pub fn entries_for_subquery<'t>(
    def: &ShapeDef,
    sub: &super::subquery::SubqueryDef,
    (stack_id, handle): (&str, &str),
    change: &'t Change,
    commit_lsn: u64,
    member: &mut super::subquery::Member<'_>,
    out: &mut Vec<SubEntry<'t>>,
) {
    let at = |op: u64| LogOffset::new(commit_lsn, op);
    let delete_cols = delete_columns(def);
    let meta = |v: &View<'t>, member: &mut super::subquery::Member<'_>| {
        sub.meta(stack_id, handle, &|i| v.get(i), member)
    };
    // An insert or a delete: one entry, when the row is in the shape.
    let mut single = |row: &'t Row, op: Operation, cols: &[usize], out: &mut Vec<SubEntry<'t>>| {
        let v = View { row, fill: None };
        let m = meta(&v, member);
        if m.included(&sub.plan) {
            out.push((entry(at(change.op), op, v.key(def), v.pick(cols)), m, None));
        }
    };
    match &change.kind {
        ChangeKind::Insert { new } => single(new, Operation::Insert, &def.selected, out),
        ChangeKind::Delete { old } => single(old, Operation::Delete, delete_cols, out),
        ChangeKind::Update { old, new } => {
            let old_v = View {
                row: old.as_ref().unwrap_or(new),
                fill: None,
            };
            let new_v = View {
                row: new,
                fill: old.as_ref(),
            };
            let old_m = meta(&old_v, member);
            let new_m = meta(&new_v, member);
            match (old_m.included(&sub.plan), new_m.included(&sub.plan)) {
                (false, false) => {}
                (false, true) => {
                    let e = entry(
                        at(change.op),
                        Operation::Insert,
                        new_v.key(def),
                        new_v.pick(&def.selected),
                    );
                    out.push((e, new_m, None));
                }
                (true, false) => {
                    let e = entry(
                        at(change.op),
                        Operation::Delete,
                        old_v.key(def),
                        old_v.pick(delete_cols),
                    );
                    out.push((e, old_m, None));
                }
                (true, true) => {
                    let (old_key, new_key) = (old_v.key(def), new_v.key(def));
                    if old_key != new_key {
                        let mut del = entry(
                            at(change.op),
                            Operation::Delete,
                            old_key.clone(),
                            old_v.pick(delete_cols),
                        );
                        del.key_change_to = Some(new_key.clone());
                        let mut union = new_m.tags.clone();
                        union.extend(protocol::subquery::tags::removed_tags(
                            &old_m.tags,
                            &new_m.tags,
                        ));
                        let del_meta = super::subquery::RowMeta {
                            active: new_m.active.clone(),
                            tags: union,
                        };
                        let mut ins = entry(
                            at(change.op + 1),
                            Operation::Insert,
                            new_key,
                            new_v.pick(&def.selected),
                        );
                        ins.key_change_from = Some(old_key);
                        out.push((del, del_meta, None));
                        out.push((ins, new_m, None));
                        return;
                    }
                    let removed = protocol::subquery::tags::removed_tags(&old_m.tags, &new_m.tags);
                    // Kept even when no selected column changed: its active_conditions may have.
                    let (e, _) =
                        update_entry(def, at(change.op), new_key, old_v, new_v, old.is_some());
                    out.push((e, new_m, Some(removed)));
                }
            }
        }
    }
}
