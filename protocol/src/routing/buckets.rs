//! Maps from a key to the shapes stored under it, with removal that drops empty buckets.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

pub(super) fn add<K: Hash + Eq, V>(map: &mut HashMap<K, Vec<V>>, key: K, shape: V) {
    map.entry(key).or_default().push(shape);
}

/// Removes one occurrence of `shape` under `key`; whether it was there.
pub(super) fn remove_one<K, Q, V>(map: &mut HashMap<K, Vec<V>>, key: &Q, shape: V) -> bool
where
    K: Hash + Eq + Borrow<Q>,
    Q: Hash + Eq + ?Sized,
    V: PartialEq,
{
    let Some(shapes) = map.get_mut(key) else {
        return false;
    };
    let Some(at) = shapes.iter().position(|s| *s == shape) else {
        return false;
    };
    shapes.swap_remove(at);
    if shapes.is_empty() {
        map.remove(key);
    }
    true
}

pub(super) fn add_ordered(map: &mut BTreeMap<Box<[u8]>, Vec<u64>>, key: &[u8], shape: u64) {
    match map.get_mut(key) {
        Some(shapes) => shapes.push(shape),
        None => {
            map.insert(key.into(), vec![shape]);
        }
    }
}

pub(super) fn remove_ordered(map: &mut BTreeMap<Box<[u8]>, Vec<u64>>, key: &[u8], shape: u64) {
    if let Some(shapes) = map.get_mut(key) {
        if let Some(at) = shapes.iter().position(|&s| s == shape) {
            shapes.swap_remove(at);
        }
        if shapes.is_empty() {
            map.remove(key);
        }
    }
}

/// Sorted, duplicate-free copy of a key list, so a shape is stored once per distinct key.
pub(super) fn distinct(keys: &[Box<[u8]>]) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = keys.iter().map(|k| &**k).collect();
    out.sort_unstable();
    out.dedup();
    out
}
