//! A tag-aware client for subquery shapes, as the Elixir client's `TagTracker` (subqueries
//! reference §7.1). The server writes no deletes on a move-out: a client has to work out from
//! each row's `tags` and `active_conditions` which rows fell out, so tests that only read the
//! changes would not see what a real client ends up with. Feed every message of every
//! response in order; `rows()` is then the client's view of the shape.

use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// One non-empty slot of a row's tag strings: `(position, slot text)`.
type Entry = (usize, String);

#[derive(Debug, Default)]
pub struct TagTracker {
    /// Row key → value, updates merged in (an update carries the changed columns and the PK).
    rows: BTreeMap<String, Value>,
    /// `(pos, hash)` → keys whose tags hold that slot: what a move pattern is matched against.
    index: BTreeMap<Entry, BTreeSet<String>>,
    entries: BTreeMap<String, BTreeSet<Entry>>,
    /// Last `active_conditions` per key (absent: the server sent none, pre-1.6 behaviour).
    conditions: BTreeMap<String, Vec<bool>>,
    /// For each disjunct, its positions (the non-empty slots of its tag string); taken from
    /// the first tagged message, as the Elixir client does: every row has the same structure.
    disjuncts: Option<Vec<Vec<usize>>>,
    /// Keys deleted by move-outs, in order, so tests can tell these from server deletes.
    pub synthetic_deletes: Vec<String>,
}

impl TagTracker {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn feed_all(&mut self, messages: &[Value]) {
        for m in messages {
            self.feed(m);
        }
    }

    /// Applies one message of a response body.
    pub fn feed(&mut self, msg: &Value) {
        let h = &msg["headers"];
        if let Some(op) = h["operation"].as_str() {
            self.change(op, msg);
            return;
        }
        match (h["event"].as_str(), h["control"].as_str()) {
            (Some("move-out"), _) => self.move_out(&h["patterns"]),
            (Some("move-in"), _) => self.move_in(&h["patterns"]),
            (Some(other), _) => panic!("unknown event {other:?}: {msg}"),
            (None, Some("must-refetch")) => *self = Self::default(),
            // `up-to-date` and `snapshot-end` (also the move-in one) carry no client state.
            (None, Some(_)) => {}
            (None, None) => panic!("neither change, event nor control: {msg}"),
        }
    }

    /// The client's rows: key → value.
    pub fn rows(&self) -> BTreeMap<String, Value> {
        self.rows.clone()
    }

    pub fn active_conditions(&self, key: &str) -> Option<Vec<bool>> {
        self.conditions.get(key).cloned()
    }

    fn change(&mut self, op: &str, msg: &Value) {
        let key = msg["key"]
            .as_str()
            .unwrap_or_else(|| panic!("change without key: {msg}"))
            .to_string();
        match op {
            "insert" => {
                self.rows.insert(key.clone(), msg["value"].clone());
            }
            "update" => {
                let row = self
                    .rows
                    .entry(key.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let (Some(row), Some(new)) = (row.as_object_mut(), msg["value"].as_object()) {
                    row.extend(new.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
            "delete" => {
                self.rows.remove(&key);
                self.forget(&key);
                return;
            }
            other => panic!("unknown operation {other:?}: {msg}"),
        }
        let h = &msg["headers"];
        let tags = strings(&h["tags"]);
        if self.disjuncts.is_none() && !tags.is_empty() {
            self.disjuncts = Some(
                tags.iter()
                    .map(|t| slots(t).map(|(p, _)| p).collect())
                    .collect(),
            );
        }
        let mut entries = self.entries.get(&key).cloned().unwrap_or_default();
        for e in strings(&h["removed_tags"]).iter().flat_map(|t| slots(t)) {
            entries.remove(&e);
        }
        entries.extend(tags.iter().flat_map(|t| slots(t)));
        self.forget(&key);
        if entries.is_empty() {
            return;
        }
        for e in &entries {
            self.index.entry(e.clone()).or_default().insert(key.clone());
        }
        self.entries.insert(key.clone(), entries);
        if let Some(ac) = h["active_conditions"].as_array().filter(|a| !a.is_empty()) {
            let ac = ac
                .iter()
                .map(|b| b.as_bool().expect("bool condition"))
                .collect();
            self.conditions.insert(key, ac);
        }
    }

    /// Flips the matched positions to false; a row with no all-true disjunct left is deleted.
    fn move_out(&mut self, patterns: &Value) {
        for (key, matched) in self.matches(patterns) {
            let gone = match self.conditions.get_mut(&key) {
                Some(ac) => {
                    for (pos, _) in &matched {
                        if let Some(c) = ac.get_mut(*pos) {
                            *c = false;
                        }
                    }
                    let ac = &*ac;
                    !self
                        .disjuncts
                        .iter()
                        .flatten()
                        .any(|d| d.iter().all(|p| ac.get(*p) == Some(&true)))
                }
                // Without active_conditions, a row lives as long as it has unmatched entries.
                None => {
                    let entries = self.entries.get_mut(&key).expect("indexed key");
                    for m in &matched {
                        entries.remove(m);
                        if let Some(keys) = self.index.get_mut(m) {
                            keys.remove(&key);
                        }
                    }
                    entries.is_empty()
                }
            };
            if gone {
                self.rows.remove(&key);
                self.forget(&key);
                self.synthetic_deletes.push(key);
            }
        }
    }

    /// Flips the matched positions back to true; the rows themselves come as inserts.
    fn move_in(&mut self, patterns: &Value) {
        for (key, matched) in self.matches(patterns) {
            if let Some(ac) = self.conditions.get_mut(&key) {
                for (pos, _) in matched {
                    if let Some(c) = ac.get_mut(pos) {
                        *c = true;
                    }
                }
            }
        }
    }

    /// Each key holding any of the patterns, with the patterns it holds.
    fn matches(&self, patterns: &Value) -> BTreeMap<String, Vec<Entry>> {
        let mut out: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
        for p in patterns.as_array().expect("patterns array") {
            let pos = p["pos"].as_u64().expect("pattern pos") as usize;
            let value = p["value"].as_str().expect("pattern value").to_string();
            let entry = (pos, value);
            for key in self.index.get(&entry).into_iter().flatten() {
                out.entry(key.clone()).or_default().push(entry.clone());
            }
        }
        out
    }

    /// Drops a key's index entries and conditions (not its row).
    fn forget(&mut self, key: &str) {
        for e in self.entries.remove(key).unwrap_or_default() {
            if let Some(keys) = self.index.get_mut(&e) {
                keys.remove(key);
                if keys.is_empty() {
                    self.index.remove(&e);
                }
            }
        }
        self.conditions.remove(key);
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|s| s.as_str().expect("tag is a string").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The non-empty slots of one tag string (one disjunct), with their positions.
fn slots(tag: &str) -> impl Iterator<Item = Entry> + '_ {
    tag.split('/')
        .enumerate()
        .filter(|(_, s)| !s.is_empty())
        .map(|(p, s)| (p, s.to_string()))
}

/// A subquery slot hash: lowercase hex MD5 of `stack ‖ handle ‖ input`, where input is e.g.
/// `v:1`, `NULL` or `user_id:v:2team_id:v:2` (reference §5.2). Computed here rather than
/// with the server's own function, so the tests check the formula instead of repeating it.
pub fn tag_hash(stack: &str, handle: &str, input: &str) -> String {
    md5_hex(format!("{stack}{handle}{input}").as_bytes())
}

/// MD5 (RFC 1321). The engine's tests have no md5 crate, and a dozen lines beat a dependency.
fn md5_hex(input: &[u8]) -> String {
    const SHIFTS: [[u32; 4]; 4] = [
        [7, 12, 17, 22],
        [5, 9, 14, 20],
        [4, 11, 16, 23],
        [6, 10, 15, 21],
    ];
    // K[i] = floor(|sin(i + 1)| * 2^32); exact in f64 (checked by the RFC vectors below).
    let k: Vec<u32> = (0..64)
        .map(|i| ((i as f64 + 1.0).sin().abs() * 4_294_967_296.0) as u32)
        .collect();
    let mut msg = input.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((input.len() as u64).wrapping_mul(8)).to_le_bytes());
    let mut state: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
    for block in msg.chunks(64) {
        let m: Vec<u32> = block
            .chunks(4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect();
        let [mut a, mut b, mut c, mut d] = state;
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(k[i]).wrapping_add(m[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(SHIFTS[i / 16][i % 4]));
        }
        for (s, v) in state.iter_mut().zip([a, b, c, d]) {
            *s = s.wrapping_add(v);
        }
    }
    state
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const K1: &str = r#""public"."child"/"1""#;

    /// A change of child `id` (value `{"id": id}`) with these tags; no `active_conditions`
    /// header when `ac` is empty.
    fn msg(op: &str, id: &str, tags: &[&str], ac: &[bool]) -> Value {
        let mut headers = json!({"operation": op, "relation": ["public", "child"], "tags": tags});
        if !ac.is_empty() {
            headers["active_conditions"] = json!(ac);
        }
        let key = format!(r#""public"."child"/"{id}""#);
        json!({"key": key, "value": {"id": id}, "headers": headers})
    }

    fn event(kind: &str, patterns: &[(u64, &str)]) -> Value {
        let patterns: Vec<Value> = patterns
            .iter()
            .map(|(pos, v)| json!({"pos": pos, "value": v}))
            .collect();
        json!({"headers": {"event": kind, "patterns": patterns, "txids": [7]}})
    }

    #[test]
    fn md5_matches_rfc_1321_vectors() {
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5_hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            md5_hex(b"message digest"),
            "f96b697d7cb7938d525a2f31aaf161d0"
        );
        // Two blocks (the length padding spills over).
        let digits = "1234567890".repeat(8);
        assert_eq!(
            md5_hex(digits.as_bytes()),
            "57edf4a22be3c955ac49da2e2107b67a"
        );
        let expected = md5_hex(b"single_stack1-2v:1");
        assert_eq!(tag_hash("single_stack", "1-2", "v:1"), expected);
    }

    #[test]
    fn move_out_of_the_only_disjunct_deletes() {
        let mut t = TagTracker::new();
        t.feed_all(&[
            msg("insert", "1", &["h1"], &[true]),
            msg("insert", "2", &["h2"], &[true]),
            json!({"headers": {"control": "snapshot-end",
                               "xmin": "1", "xmax": "1", "xip_list": []}}),
        ]);
        // A pattern at another position, or an unknown hash, matches nothing.
        t.feed(&event("move-out", &[(1, "h1"), (0, "nope")]));
        assert_eq!(t.rows().len(), 2);
        t.feed(&event("move-out", &[(0, "h1")]));
        assert_eq!(
            t.rows().keys().collect::<Vec<_>>(),
            [r#""public"."child"/"2""#]
        );
        assert_eq!(t.synthetic_deletes, [K1]);
        assert_eq!(t.active_conditions(K1), None);
    }

    #[test]
    fn or_keeps_the_row_until_no_disjunct_holds() {
        let mut t = TagTracker::new();
        // `p IN sq OR flag`: two disjuncts, positions 0 and 1.
        t.feed(&msg("insert", "1", &["h1/", "/1"], &[true, true]));
        t.feed(&event("move-out", &[(0, "h1")]));
        assert_eq!(t.rows().len(), 1);
        assert_eq!(t.active_conditions(K1), Some(vec![false, true]));
        // A move-in re-activates the kept entries; no row message is needed for that.
        t.feed(&event("move-in", &[(0, "h1")]));
        assert_eq!(t.active_conditions(K1), Some(vec![true, true]));
        // The row's own predicate turns false: the update says so ...
        let mut update = msg("update", "1", &["h1/", "/1"], &[true, false]);
        update["headers"]["removed_tags"] = json!([]);
        t.feed(&update);
        // ... so the next move-out of its value removes it.
        t.feed(&event("move-out", &[(0, "h1")]));
        assert!(t.rows().is_empty());
        assert_eq!(t.synthetic_deletes, [K1]);
    }

    #[test]
    fn and_needs_every_position() {
        let mut t = TagTracker::new();
        // `x IN sq AND y IN sq`: one disjunct, two positions.
        t.feed(&msg("insert", "1", &["h1/h2"], &[true, true]));
        t.feed(&event("move-out", &[(1, "h2")]));
        assert!(t.rows().is_empty());
    }

    #[test]
    fn updates_merge_values_and_move_tags() {
        let mut t = TagTracker::new();
        let mut insert = msg("insert", "1", &["ha"], &[true]);
        insert["value"] = json!({"id": "1", "p": "a", "v": "x"});
        t.feed(&insert);
        let mut update = msg("update", "1", &["hb"], &[true]);
        update["value"] = json!({"id": "1", "p": "b"});
        update["headers"]["removed_tags"] = json!(["ha"]);
        t.feed(&update);
        assert_eq!(t.rows()[K1], json!({"id": "1", "p": "b", "v": "x"}));
        // The old parent's move-out no longer concerns the row.
        t.feed(&event("move-out", &[(0, "ha")]));
        assert_eq!(t.rows().len(), 1);
        assert!(t.synthetic_deletes.is_empty());
        t.feed(&event("move-out", &[(0, "hb")]));
        assert!(t.rows().is_empty());
    }

    #[test]
    fn deletes_and_must_refetch_forget_rows() {
        let mut t = TagTracker::new();
        t.feed(&msg("insert", "1", &["h1"], &[true]));
        t.feed(&msg("delete", "1", &["h1"], &[true]));
        assert!(t.rows().is_empty());
        // Nothing left to delete: the move-out is a no-op.
        t.feed(&event("move-out", &[(0, "h1")]));
        assert!(t.synthetic_deletes.is_empty());
        t.feed(&msg("insert", "2", &["h1"], &[true]));
        t.feed(&json!({"headers": {"control": "up-to-date", "global_last_seen_lsn": "1"}}));
        assert_eq!(t.rows().len(), 1);
        t.feed(&json!({"headers": {"control": "must-refetch"}}));
        assert!(t.rows().is_empty());
        t.feed(&event("move-out", &[(0, "h1")]));
        assert!(t.synthetic_deletes.is_empty());
    }

    #[test]
    fn without_active_conditions_entries_are_removed() {
        // Pre-1.6 servers: a row lives while any of its tag entries is unmatched.
        let mut t = TagTracker::new();
        t.feed(&msg("insert", "1", &["h1/", "/h2"], &[]));
        t.feed(&event("move-out", &[(0, "h1")]));
        assert_eq!(t.rows().len(), 1);
        t.feed(&event("move-out", &[(1, "h2")]));
        assert!(t.rows().is_empty());
        assert_eq!(t.synthetic_deletes, [K1]);
    }
}
