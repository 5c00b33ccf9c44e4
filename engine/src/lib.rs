//! Ampere engine library.
