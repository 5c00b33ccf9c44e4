//! Closed intervals of keys, queried by a point (which intervals contain it?), for shapes with
//! a lower and an upper bound on one column (`x BETWEEN a AND b`, `x > a AND x < b`).
//!
//! Each level is a static centered interval tree (O(log n + hits) per query). Insertions use
//! the logarithmic method: a new interval starts a one-element level, and equal-sized levels
//! merge by rebuilding, like a binary counter, so inserting n intervals costs O(n log² n) and a
//! query visits O(log n) levels. Removal only counts the entry as stale (the router ignores
//! references to removed shapes); when more than half the entries are stale, everything live
//! is rebuilt.

pub(super) struct IntervalIndex {
    levels: Vec<Option<Level>>,
    entries: usize,
    stale: usize,
}

struct Item {
    lo: Box<[u8]>,
    hi: Box<[u8]>,
    shape: u64,
}

struct Node {
    /// Index of the item whose lower bound is this node's center.
    center: u32,
    /// Items containing the center, by lower bound ascending.
    by_lo: Vec<u32>,
    /// The same items by upper bound descending.
    by_hi: Vec<u32>,
    left: Option<u32>,
    right: Option<u32>,
}

struct Level {
    items: Vec<Item>,
    nodes: Vec<Node>,
    root: Option<u32>,
}

impl Level {
    fn build(mut items: Vec<Item>) -> Level {
        assert!(
            u32::try_from(items.len()).is_ok(),
            "interval count fits u32"
        );
        items.sort_unstable_by(|a, b| a.lo.cmp(&b.lo));
        let mut level = Level {
            items,
            nodes: Vec::new(),
            root: None,
        };
        let all: Vec<u32> = (0..level.items.len() as u32).collect();
        level.root = level.build_node(all);
        level
    }

    /// `indexes` are sorted by lower bound; each recursion at least halves them.
    fn build_node(&mut self, indexes: Vec<u32>) -> Option<u32> {
        if indexes.is_empty() {
            return None;
        }
        let center = indexes[indexes.len() / 2];
        let (mut left, mut right, mut middle) = (Vec::new(), Vec::new(), Vec::new());
        {
            let c = &self.items[center as usize].lo;
            for &i in &indexes {
                let item = &self.items[i as usize];
                if item.hi < *c {
                    left.push(i);
                } else if item.lo > *c {
                    right.push(i);
                } else {
                    middle.push(i);
                }
            }
        }
        let mut by_hi = middle.clone();
        by_hi.sort_unstable_by(|&a, &b| self.items[b as usize].hi.cmp(&self.items[a as usize].hi));
        left.shrink_to_fit();
        right.shrink_to_fit();
        let left = self.build_node(left);
        let right = self.build_node(right);
        self.nodes.push(Node {
            center,
            by_lo: middle,
            by_hi,
            left,
            right,
        });
        Some((self.nodes.len() - 1) as u32)
    }

    fn stab(&self, point: &[u8], out: &mut Vec<u64>) {
        let mut at = self.root;
        while let Some(n) = at {
            let node = &self.nodes[n as usize];
            let center = &*self.items[node.center as usize].lo;
            match point.cmp(center) {
                std::cmp::Ordering::Less => {
                    for &i in &node.by_lo {
                        let item = &self.items[i as usize];
                        if *item.lo > *point {
                            break;
                        }
                        out.push(item.shape);
                    }
                    at = node.left;
                }
                std::cmp::Ordering::Greater => {
                    for &i in &node.by_hi {
                        let item = &self.items[i as usize];
                        if *item.hi < *point {
                            break;
                        }
                        out.push(item.shape);
                    }
                    at = node.right;
                }
                std::cmp::Ordering::Equal => {
                    out.extend(node.by_lo.iter().map(|&i| self.items[i as usize].shape));
                    return;
                }
            }
        }
    }
}

impl IntervalIndex {
    pub(super) fn new() -> Self {
        IntervalIndex {
            levels: Vec::new(),
            entries: 0,
            stale: 0,
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.entries == self.stale
    }

    /// Adds `[lo, hi]` for `shape`; an empty interval (lo > hi) can contain nothing and is
    /// not stored.
    pub(super) fn insert(&mut self, lo: &[u8], hi: &[u8], shape: u64) {
        if lo > hi {
            return;
        }
        let mut carry = vec![Item {
            lo: lo.into(),
            hi: hi.into(),
            shape,
        }];
        self.entries += 1;
        for slot in 0.. {
            if slot == self.levels.len() {
                self.levels.push(None);
            }
            match self.levels[slot].take() {
                None => {
                    self.levels[slot] = Some(Level::build(carry));
                    return;
                }
                Some(level) => carry.extend(level.items),
            }
        }
    }

    /// Records that one entry of `[lo, hi]` now refers to a removed shape; `live` tells
    /// which references are still current, for the occasional rebuild.
    pub(super) fn remove(&mut self, lo: &[u8], hi: &[u8], live: &dyn Fn(u64) -> bool) {
        if lo > hi {
            return;
        }
        self.stale += 1;
        if self.stale * 2 <= self.entries {
            return;
        }
        let items: Vec<Item> = self
            .levels
            .drain(..)
            .flatten()
            .flat_map(|level| level.items)
            .filter(|item| live(item.shape))
            .collect();
        self.entries = items.len();
        self.stale = 0;
        if !items.is_empty() {
            // The level a binary counter of this size would fill last.
            let slot = usize::BITS - items.len().leading_zeros();
            self.levels.resize_with(slot as usize + 1, || None);
            self.levels[slot as usize] = Some(Level::build(items));
        }
    }

    /// Appends the shapes of every interval containing `point`.
    pub(super) fn stab(&self, point: &[u8], out: &mut Vec<u64>) {
        for level in self.levels.iter().flatten() {
            level.stab(point, out);
        }
    }
}
