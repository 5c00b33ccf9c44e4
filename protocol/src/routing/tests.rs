//! Unit tests: placement of typical clauses and exact results on hand-picked rows.
