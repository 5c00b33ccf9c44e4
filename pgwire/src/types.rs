//! LSN, XID, OID and timestamp newtypes.
//!
//! Postgres hands these around as bare integers; giving each its own type keeps a transaction id
//! from being passed where a relation oid is expected and fixes one textual form per type.

use std::fmt;
use std::str::FromStr;

/// A write-ahead log position (`XLogRecPtr`), printed and parsed in Postgres's `X/Y` form where
/// `X` is the high and `Y` the low 32 bits in upper-case hex without leading zeros.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(pub u64);

impl Lsn {
    /// `InvalidXLogRecPtr`: Postgres uses 0 to mean "no position".
    pub const INVALID: Lsn = Lsn(0);

    /// Adds a byte distance, returning `None` on overflow rather than wrapping to an older
    /// position (a wrapped LSN would silently reorder the log).
    #[inline]
    pub fn checked_add(self, bytes: u64) -> Option<Lsn> {
        self.0.checked_add(bytes).map(Lsn)
    }

    /// The byte distance from `earlier` to `self`, or `None` if `earlier` is later.
    #[inline]
    pub fn checked_sub(self, earlier: Lsn) -> Option<u64> {
        self.0.checked_sub(earlier.0)
    }

    #[inline]
    pub fn is_valid(self) -> bool {
        self != Self::INVALID
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

/// Why a string is not an `X/Y` LSN.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid LSN {0:?}: expected X/Y with X and Y of 1 to 8 hex digits")]
pub struct ParseLsnError(String);

impl FromStr for Lsn {
    type Err = ParseLsnError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || ParseLsnError(s.chars().take(40).collect());
        let (high, low) = s.split_once('/').ok_or_else(invalid)?;
        let half = |part: &str| -> Result<u64, ParseLsnError> {
            // from_str_radix accepts a leading '+', which Postgres's pg_lsn_in does not.
            let hex_only = part.bytes().all(|b| b.is_ascii_hexdigit());
            if part.is_empty() || part.len() > 8 || !hex_only {
                return Err(invalid());
            }
            u32::from_str_radix(part, 16)
                .map(u64::from)
                .map_err(|_| invalid())
        };
        Ok(Lsn((half(high)? << 32) | half(low)?))
    }
}

/// A 32-bit transaction id as sent by pgoutput (no epoch).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Xid(pub u32);

impl fmt::Display for Xid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A Postgres object id: a relation, a type, ...
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Oid(pub u32);

impl fmt::Display for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A `timestamptz` in Postgres's binary form: microseconds since 2000-01-01 00:00:00 UTC.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimestampTz(pub i64);

impl TimestampTz {
    /// Seconds from the Unix epoch to the Postgres epoch (2000-01-01).
    pub const POSTGRES_EPOCH_UNIX_SECS: i64 = 946_684_800;

    /// Microseconds since the Unix epoch, or `None` if that overflows (only for values near
    /// the `i64` limits, such as `infinity`, which Postgres encodes as `i64::MAX`).
    #[inline]
    pub fn to_unix_micros(self) -> Option<i64> {
        self.0
            .checked_add(Self::POSTGRES_EPOCH_UNIX_SECS * 1_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsn_prints_and_parses_postgres_form() {
        // Goal: the X/Y form matches what pg_current_wal_lsn() prints, in both directions.
        let lsn = Lsn(0x0000_0001_0A2B_3C4D);
        assert_eq!(lsn.to_string(), "1/A2B3C4D");
        assert_eq!("1/A2B3C4D".parse::<Lsn>(), Ok(lsn));
        assert_eq!("1/a2b3c4d".parse::<Lsn>(), Ok(lsn));
        assert_eq!(Lsn(0).to_string(), "0/0");
        assert_eq!(Lsn(u64::MAX).to_string(), "FFFFFFFF/FFFFFFFF");
        assert_eq!("FFFFFFFF/FFFFFFFF".parse::<Lsn>(), Ok(Lsn(u64::MAX)));
    }

    #[test]
    fn lsn_rejects_malformed_text() {
        for bad in [
            "",
            "/",
            "1/",
            "/1",
            "1",
            "1/2/3",
            "+1/2",
            "1/-2",
            "123456789/0",
            "g/0",
        ] {
            assert!(bad.parse::<Lsn>().is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn lsn_arithmetic_is_checked_and_ordered() {
        assert_eq!(Lsn(10).checked_add(5), Some(Lsn(15)));
        assert_eq!(Lsn(u64::MAX).checked_add(1), None);
        assert_eq!(Lsn(15).checked_sub(Lsn(10)), Some(5));
        assert_eq!(Lsn(10).checked_sub(Lsn(15)), None);
        assert!(Lsn(1) < Lsn(0x1_0000_0000));
        assert!(!Lsn::INVALID.is_valid());
    }

    #[test]
    fn timestamp_converts_to_unix_time() {
        assert_eq!(TimestampTz(0).to_unix_micros(), Some(946_684_800_000_000));
        assert_eq!(TimestampTz(i64::MAX).to_unix_micros(), None);
    }
}
