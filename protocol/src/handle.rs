//! Shape handles: `<hash>-<unix time in µs>` (§2.4), e.g. `3833821-1721812114261`.
//!
//! Upstream's hash is Erlang's `phash2` of the shape's comparable form (0..2^27). Clients treat
//! handles as opaque strings, so Ampere only keeps the format and range: [`shape_hash`] is
//! FNV-1a (64-bit) of the engine's canonical shape definition bytes, folded to 27 bits. It is
//! stable across runs and platforms, but deliberately not equal to `phash2`.

/// Hashes are below `2^27`, like `phash2` with its default range.
pub const HASH_BITS: u32 = 27;
pub const HASH_LIMIT: u32 = 1 << HASH_BITS;

const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Stable 27-bit hash of a canonical shape definition.
pub fn shape_hash(canonical_definition: &[u8]) -> u32 {
    let mut hash = FNV_OFFSET_BASIS;
    for &byte in canonical_definition {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    // Fold all 64 bits in so every input bit influences the kept 27.
    let folded = hash ^ (hash >> HASH_BITS) ^ (hash >> (2 * HASH_BITS));
    let truncated = (folded & u64::from(HASH_LIMIT - 1)) as u32;
    assert!(truncated < HASH_LIMIT);
    truncated
}

/// `<hash>-<unix_micros>`.
pub fn format_handle(hash: u32, unix_micros: u64) -> String {
    format!("{hash}-{unix_micros}")
}

/// Parses a handle produced by [`format_handle`] (or by upstream): two canonical decimal
/// numbers (no sign, no leading zeros) joined by `-`, the first below `2^27`.
pub fn parse_handle(handle: &str) -> Option<(u32, u64)> {
    let (hash_text, micros_text) = handle.split_once('-')?;
    let hash: u32 = parse_canonical(hash_text)?.try_into().ok()?;
    if hash >= HASH_LIMIT {
        return None;
    }
    Some((hash, parse_canonical(micros_text)?))
}

fn parse_canonical(text: &str) -> Option<u64> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if !canonical {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formats_and_parses_upstream_example() {
        assert_eq!(
            format_handle(3833821, 1721812114261),
            "3833821-1721812114261"
        );
        assert_eq!(
            parse_handle("3833821-1721812114261"),
            Some((3833821, 1721812114261))
        );
    }

    #[test]
    fn rejects_non_canonical_handles() {
        for bad in [
            "",
            "-",
            "1-",
            "-1",
            "1--2",
            "01-2",
            "1-02",
            "+1-2",
            "1-2-3",
            "a-1",
            "1-a",
            "134217728-1",
            " 1-2",
            "1-2 ",
        ] {
            assert_eq!(parse_handle(bad), None, "{bad:?}");
        }
        assert_eq!(parse_handle("134217727-0"), Some((134217727, 0)));
    }

    #[test]
    fn hash_is_stable() {
        // Pinned values: changing the hash would change every handle.
        assert_eq!(shape_hash(b""), shape_hash(b""));
        assert_ne!(shape_hash(b"a"), shape_hash(b"b"));
        assert_eq!(shape_hash(b"public.items"), 78102454);
    }

    proptest! {
        #[test]
        fn hash_is_in_range(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert!(shape_hash(&bytes) < HASH_LIMIT);
        }

        #[test]
        fn format_parse_round_trip(hash in 0..HASH_LIMIT, micros in any::<u64>()) {
            prop_assert_eq!(parse_handle(&format_handle(hash, micros)), Some((hash, micros)));
        }
    }
}
