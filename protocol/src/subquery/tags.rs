//! Row tags of subquery shapes (`tags`, `removed_tags` headers): one string per disjunct of
//! the DNF plan, each with one `/`-separated slot per position. A slot is empty when the
//! position is not in that disjunct, `1` for an ordinary literal, and for a subquery
//! membership the lowercase hex MD5 of `stack id ‖ shape handle ‖ namespaced value(s)`, where
//! a value is namespaced as `v:<text>` and NULL as `NULL`, and a row membership `(a, b) IN …`
//! hashes `a:<ns(a)>b:<ns(b)>` with the outer columns' names in order. Clients compare slots
//! with move-event patterns for equality only, but snapshot rows (hashed in SQL), replicated
//! rows and move events must all agree, so the formula is upstream's exactly.

use md5::{Digest, Md5};

/// The default stack id of a standalone Electric (`ELECTRIC_DATABASE_ID` unset).
pub const DEFAULT_STACK_ID: &str = "single_stack";

/// What a position contributes to a row's tags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot<'a> {
    /// An ordinary literal: `1`.
    Row,
    /// `col IN (SELECT …)`: the row's text value of `col` (`None`: NULL).
    Value(Option<&'a str>),
    /// `(a, b) IN (SELECT …)`: the outer columns' names and the row's text values.
    Values(&'a [(&'a str, Option<&'a str>)]),
}

fn namespaced(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        None => out.extend_from_slice(b"NULL"),
        Some(v) => {
            out.extend_from_slice(b"v:");
            out.extend_from_slice(v.as_bytes());
        }
    }
}

/// The hash slot of a membership position.
pub fn value_hash(stack_id: &str, handle: &str, slot: Slot<'_>) -> String {
    let mut input = Vec::with_capacity(stack_id.len() + handle.len() + 32);
    input.extend_from_slice(stack_id.as_bytes());
    input.extend_from_slice(handle.as_bytes());
    match slot {
        Slot::Row => return "1".to_string(),
        Slot::Value(v) => namespaced(&mut input, v),
        Slot::Values(columns) => {
            for (name, v) in columns {
                input.extend_from_slice(name.as_bytes());
                input.push(b':');
                namespaced(&mut input, *v);
            }
        }
    }
    hex(&Md5::digest(&input))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// A row's tags: for each disjunct (a range of positions), the slots of every position joined
/// by `/`, `slot(p)` giving the text of position `p`'s slot for this row.
pub fn row_tags(
    position_count: usize,
    disjuncts: &[std::ops::Range<usize>],
    mut slot: impl FnMut(usize) -> String,
) -> Vec<String> {
    // Each position's slot once: a position belongs to exactly one disjunct.
    disjuncts
        .iter()
        .map(|d| {
            let mut tag = String::new();
            for p in 0..position_count {
                if p > 0 {
                    tag.push('/');
                }
                if d.contains(&p) {
                    tag.push_str(&slot(p));
                }
            }
            tag
        })
        .collect()
}

/// `removed_tags` of an update: the old tags that are not among the new ones (whole strings).
pub fn removed_tags(old: &[String], new: &[String]) -> Vec<String> {
    old.iter().filter(|t| !new.contains(t)).cloned().collect()
}
