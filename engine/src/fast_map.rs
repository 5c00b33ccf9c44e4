//! Hash maps for lookups on the request path (definitions, handles, tables, cached heads).
//!
//! The standard library's SipHash costs about a thousand instructions to hash a shape
//! definition, more than the rest of a definition lookup. `ahash` is several times cheaper and
//! still seeded at random per process, so keys chosen by clients (handles, WHERE clauses) cannot
//! be aimed at one bucket without knowing the seed; every map keyed by client input is bounded
//! in size besides.

/// A `HashMap` with a fast, randomly seeded hasher.
pub type FastMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;

/// The hasher state of [`FastMap`], for maps keyed by precomputed hashes.
pub type FastState = ahash::RandomState;
