//! Turning a replicated change into a shape's log entries (§5.5 of the protocol reference):
//! membership of the old and new row decides insert / update / delete (move-in, move-out), a key
//! change splits an update into delete + insert at `op` and `op + 1`, and the replica mode decides
//! which columns each message carries.

use super::def::ShapeDef;
use crate::catalog::TableInfo;
use crate::ingest::txn::{Change, ChangeKind, Relation, Row};
use protocol::message::{self, Change as ChangeMessage, Operation};
use protocol::offset::LogOffset;
use protocol::request::Replica;

/// One log entry produced for a shape, before the `last` flag is known.
pub struct PendingEntry {
    pub offset: LogOffset,
    pub op: Operation,
    pub key: Vec<u8>,
    pub value: Vec<(usize, Option<Vec<u8>>)>,
    pub old_value: Option<Vec<(usize, Option<Vec<u8>>)>>,
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

fn key_of(def: &ShapeDef, row: &Row) -> Vec<u8> {
    let vals: Vec<Option<&[u8]>> = def.key_cols.iter().map(|&i| row.get(i)).collect();
    let mut out = Vec::with_capacity(32);
    protocol::key::push_row_key(&mut out, &def.table.schema, &def.table.name, &vals);
    out
}

fn owned(row: &Row, cols: impl Iterator<Item = usize>) -> Vec<(usize, Option<Vec<u8>>)> {
    cols.map(|i| (i, row.get(i).map(<[u8]>::to_vec))).collect()
}

/// Computes the entries `change` contributes to the shape (0, 1 or 2).
pub fn entries_for(def: &ShapeDef, change: &Change, commit_lsn: u64, out: &mut Vec<PendingEntry>) {
    let at = |op: u64| LogOffset::new(commit_lsn, op);
    let full = def.replica == Replica::Full;
    let pk_or_all = |row: &Row| -> Vec<(usize, Option<Vec<u8>>)> {
        if def.table.pk.is_empty() {
            owned(row, def.selected.iter().copied())
        } else {
            owned(row, def.table.pk.iter().copied())
        }
    };
    let delete_value = |row: &Row| {
        if full {
            owned(row, def.selected.iter().copied())
        } else {
            pk_or_all(row)
        }
    };
    match &change.kind {
        ChangeKind::Insert { new } => {
            if def.matches(&|i| new.get(i)) {
                out.push(PendingEntry {
                    offset: at(change.op),
                    op: Operation::Insert,
                    key: key_of(def, new),
                    value: owned(new, def.selected.iter().copied()),
                    old_value: None,
                    key_change_to: None,
                    key_change_from: None,
                });
            }
        }
        ChangeKind::Delete { old } => {
            if def.matches(&|i| old.get(i)) {
                out.push(PendingEntry {
                    offset: at(change.op),
                    op: Operation::Delete,
                    key: key_of(def, old),
                    value: delete_value(old),
                    old_value: None,
                    key_change_to: None,
                    key_change_from: None,
                });
            }
        }
        ChangeKind::Update { old, new } => {
            // Without a full old row (REPLICA IDENTITY not FULL) the old row is the new row with
            // the key columns replaced, which is all upstream can know as well.
            let old_row = old.as_ref().unwrap_or(new);
            let old_get = |i: usize| {
                if old.is_some() {
                    old_row.get(i)
                } else {
                    new.get(i)
                }
            };
            let new_get = |i: usize| {
                if new.is_missing(i) {
                    old_row.get(i)
                } else {
                    new.get(i)
                }
            };
            let was_in = def.matches(&old_get);
            let is_in = def.matches(&new_get);
            let new_vals =
                |cols: &mut dyn Iterator<Item = usize>| -> Vec<(usize, Option<Vec<u8>>)> {
                    cols.map(|i| (i, new_get(i).map(<[u8]>::to_vec))).collect()
                };
            let new_key = {
                let vals: Vec<Option<&[u8]>> = def.key_cols.iter().map(|&i| new_get(i)).collect();
                let mut k = Vec::new();
                protocol::key::push_row_key(&mut k, &def.table.schema, &def.table.name, &vals);
                k
            };
            let old_key = {
                let vals: Vec<Option<&[u8]>> = def.key_cols.iter().map(|&i| old_get(i)).collect();
                let mut k = Vec::new();
                protocol::key::push_row_key(&mut k, &def.table.schema, &def.table.name, &vals);
                k
            };
            let old_vals =
                |cols: &mut dyn Iterator<Item = usize>| -> Vec<(usize, Option<Vec<u8>>)> {
                    cols.map(|i| (i, old_get(i).map(<[u8]>::to_vec))).collect()
                };
            match (was_in, is_in) {
                (false, false) => {}
                (false, true) => out.push(PendingEntry {
                    offset: at(change.op),
                    op: Operation::Insert,
                    key: new_key,
                    value: new_vals(&mut def.selected.iter().copied()),
                    old_value: None,
                    key_change_to: None,
                    key_change_from: None,
                }),
                (true, false) => out.push(PendingEntry {
                    offset: at(change.op),
                    op: Operation::Delete,
                    key: old_key,
                    value: if full || def.table.pk.is_empty() {
                        old_vals(&mut def.selected.iter().copied())
                    } else {
                        old_vals(&mut def.table.pk.iter().copied())
                    },
                    old_value: None,
                    key_change_to: None,
                    key_change_from: None,
                }),
                (true, true) if old_key != new_key => {
                    out.push(PendingEntry {
                        offset: at(change.op),
                        op: Operation::Delete,
                        key: old_key.clone(),
                        value: if full || def.table.pk.is_empty() {
                            old_vals(&mut def.selected.iter().copied())
                        } else {
                            old_vals(&mut def.table.pk.iter().copied())
                        },
                        old_value: None,
                        key_change_to: Some(new_key.clone()),
                        key_change_from: None,
                    });
                    out.push(PendingEntry {
                        offset: at(change.op + 1),
                        op: Operation::Insert,
                        key: new_key,
                        value: new_vals(&mut def.selected.iter().copied()),
                        old_value: None,
                        key_change_to: None,
                        key_change_from: Some(old_key),
                    });
                }
                (true, true) => {
                    // Without the old row (identity not FULL) nothing is known to be unchanged.
                    let changed: Vec<usize> = def
                        .selected
                        .iter()
                        .copied()
                        .filter(|&i| old.is_none() || old_get(i) != new_get(i))
                        .collect();
                    if changed.is_empty() {
                        return;
                    }
                    let (value, old_value) = if full {
                        (
                            new_vals(&mut def.selected.iter().copied()),
                            Some(old_vals(&mut changed.iter().copied())),
                        )
                    } else {
                        let mut cols: Vec<usize> = def.table.pk.clone();
                        cols.extend(
                            changed
                                .iter()
                                .copied()
                                .filter(|c| !def.table.pk.contains(c)),
                        );
                        cols.sort_unstable();
                        (new_vals(&mut cols.into_iter()), None)
                    };
                    out.push(PendingEntry {
                        offset: at(change.op),
                        op: Operation::Update,
                        key: new_key,
                        value,
                        old_value,
                        key_change_to: None,
                        key_change_from: None,
                    });
                }
            }
        }
    }
}

/// Encodes an entry into its final JSON bytes.
pub fn encode(def: &ShapeDef, e: &PendingEntry, xid: u32, last: bool, out: &mut Vec<u8>) {
    let name = |i: usize| def.table.columns[i].info.name.as_str();
    let value: Vec<(&str, Option<&[u8]>)> = e
        .value
        .iter()
        .map(|(i, v)| (name(*i), v.as_deref()))
        .collect();
    let old_value: Option<Vec<protocol::message::Column<'_>>> = e
        .old_value
        .as_ref()
        .map(|ov| ov.iter().map(|(i, v)| (name(*i), v.as_deref())).collect());
    message::encode_change(
        out,
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
}
