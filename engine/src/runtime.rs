//! Thread-per-core bootstrap: one monoio runtime per core.
