//! Shape log offsets (`LogOffset`) and the `offset` request parameter (§2.2, §6.1).
//!
//! An offset is `(tx, op)`: `tx` is the commit LSN of a transaction (or `0` for the virtual
//! snapshot part of the log) and `op` the position inside it. `op = OP_INF` ("inf") sorts after
//! every real op. `-1` ("before all") is not representable as an unsigned `(tx, op)` pair, so it
//! is a distinct variant of a private `Kind` field that is compared first: it sorts before every
//! other offset, including `0_0`, and its `tx`/`op` read as `0` (upstream's `extract_lsn` also
//! maps it to LSN 0).

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use crate::elixir_int::{parse_elixir_int, ElixirInt};

/// The `op` value printed as `inf`: larger than any real op in a transaction.
pub const OP_INF: u64 = u64::MAX;

/// The only error message upstream produces for an unparsable offset.
pub const INVALID_OFFSET_MESSAGE: &str = "has invalid format";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Kind {
    BeforeAll,
    Position,
}

/// A position in a shape log. Ordering is `BEFORE_ALL` < `(tx, op)` lexicographically, with
/// `OP_INF` greater than any integer op.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogOffset {
    // Declared first so the derived `Ord` puts `BEFORE_ALL` below everything.
    kind: Kind,
    pub tx: u64,
    pub op: u64,
}

/// `-1`: before the first entry of any shape log.
pub const BEFORE_ALL: LogOffset = LogOffset {
    kind: Kind::BeforeAll,
    tx: 0,
    op: 0,
};

/// `0_0`: the first snapshot chunk.
pub const FIRST: LogOffset = LogOffset::new(0, 0);

/// `0_inf`: the end of the virtual (snapshot) part of the log.
pub const LAST_BEFORE_REAL_LOG: LogOffset = LogOffset::new(0, OP_INF);

/// `0_<n>`: the end of snapshot chunk `n`.
pub const fn snapshot_chunk(n: u64) -> LogOffset {
    LogOffset::new(0, n)
}

impl LogOffset {
    /// A real or virtual position; use [`BEFORE_ALL`] for `-1`.
    pub const fn new(tx: u64, op: u64) -> LogOffset {
        LogOffset {
            kind: Kind::Position,
            tx,
            op,
        }
    }

    pub const fn is_before_all(&self) -> bool {
        matches!(self.kind, Kind::BeforeAll)
    }

    /// `tx == 0` (snapshot chunks and `0_inf`).
    pub const fn is_virtual(&self) -> bool {
        matches!(self.kind, Kind::Position) && self.tx == 0
    }

    /// `tx > 0`: an entry replicated from Postgres.
    pub const fn is_real(&self) -> bool {
        matches!(self.kind, Kind::Position) && self.tx > 0
    }

    pub const fn is_op_inf(&self) -> bool {
        matches!(self.kind, Kind::Position) && self.op == OP_INF
    }

    /// The `global_last_seen_lsn` of an up-to-date event that ends an SSE batch at `self`.
    ///
    /// The official client resumes after SSE at `<global_last_seen_lsn>_0` (§12.8). Given the
    /// batch's own LSN, that offset lies *inside* the last transaction, so the rest of it would
    /// be sent again. One past it instead is a position after every entry of that transaction
    /// and before any later one (commit LSNs of different transactions are at least a WAL
    /// record apart), and [`LogOffset::resumes_after`] maps it back to the log end.
    pub const fn sse_resume_lsn(&self) -> u64 {
        if self.is_real() {
            self.tx + 1
        } else {
            self.tx
        }
    }

    /// Whether a requested offset `self` is the resume point (see [`Self::sse_resume_lsn`]) of
    /// a log ending at `last`, i.e. means exactly `last`.
    pub const fn resumes_after(&self, last: &LogOffset) -> bool {
        self.is_real() && last.is_real() && self.op == 0 && self.tx == last.tx + 1
    }
}

impl fmt::Display for LogOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Kind::BeforeAll => f.write_str("-1"),
            Kind::Position if self.op == OP_INF => write!(f, "{}_inf", self.tx),
            Kind::Position => write!(f, "{}_{}", self.tx, self.op),
        }
    }
}

/// The offset string did not match the grammar of §2.2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("has invalid format")]
pub struct InvalidOffset;

impl FromStr for LogOffset {
    type Err = InvalidOffset;

    /// Accepts `-1`, `<tx>_<op>` and `<tx>_inf`, with the leniency of Elixir's `Integer.parse`
    /// (leading zeros, a `+`/`-` sign: `-1_0` is another spelling of `-1`). `now` is not a log
    /// offset; see [`OffsetParam`].
    fn from_str(text: &str) -> Result<LogOffset, InvalidOffset> {
        if text == "-1" {
            return Ok(BEFORE_ALL);
        }
        let (tx_text, op_text) = text.split_once('_').ok_or(InvalidOffset)?;
        if op_text.contains('_') {
            return Err(InvalidOffset);
        }
        let tx = match parse_elixir_int(tx_text) {
            ElixirInt::Value(v) => v,
            _ => return Err(InvalidOffset),
        };
        let op = if op_text == "inf" {
            None
        } else {
            match parse_elixir_int(op_text) {
                ElixirInt::Value(v) => Some(v),
                _ => return Err(InvalidOffset),
            }
        };
        match (tx, op) {
            (-1, Some(0)) => Ok(BEFORE_ALL),
            (tx, None) => Ok(LogOffset::new(to_u64(tx)?, OP_INF)),
            // `OP_INF` itself is reserved for `inf`, so the largest integer op is one below.
            (tx, Some(op)) if op < i128::from(OP_INF) => {
                Ok(LogOffset::new(to_u64(tx)?, to_u64(op)?))
            }
            _ => Err(InvalidOffset),
        }
    }
}

fn to_u64(value: i128) -> Result<u64, InvalidOffset> {
    u64::try_from(value).map_err(|_| InvalidOffset)
}

/// The parsed `offset` request parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetParam {
    /// `-1` (or an equivalent spelling such as `-1_0`): start from the beginning.
    BeforeAll,
    /// `now`: skip all existing data (§6.6).
    Now,
    /// A concrete position `<tx>_<op>` / `<tx>_inf`.
    At(LogOffset),
}

impl OffsetParam {
    /// The offset as a `LogOffset`, `None` for `now`.
    pub fn log_offset(&self) -> Option<LogOffset> {
        match self {
            OffsetParam::BeforeAll => Some(BEFORE_ALL),
            OffsetParam::Now => None,
            OffsetParam::At(offset) => Some(*offset),
        }
    }
}

impl fmt::Display for OffsetParam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OffsetParam::BeforeAll => f.write_str("-1"),
            OffsetParam::Now => f.write_str("now"),
            OffsetParam::At(offset) => offset.fmt(f),
        }
    }
}

impl FromStr for OffsetParam {
    type Err = InvalidOffset;

    fn from_str(text: &str) -> Result<OffsetParam, InvalidOffset> {
        if text == "now" {
            return Ok(OffsetParam::Now);
        }
        let offset: LogOffset = text.parse()?;
        Ok(if offset.is_before_all() {
            OffsetParam::BeforeAll
        } else {
            OffsetParam::At(offset)
        })
    }
}

impl PartialOrd<LogOffset> for OffsetParam {
    /// `now` has no position, so it is incomparable.
    fn partial_cmp(&self, other: &LogOffset) -> Option<Ordering> {
        self.log_offset().map(|offset| offset.cmp(other))
    }
}

impl PartialEq<LogOffset> for OffsetParam {
    fn eq(&self, other: &LogOffset) -> bool {
        self.log_offset() == Some(*other)
    }
}

#[cfg(test)]
#[path = "offset_tests.rs"]
mod tests;
