//! Decodes arbitrary bytes as a log segment, `snapshot.data` or `chunks.data`
//! (`engine::storage::record`): `decode` record after record, `decode_header` (recovery of a
//! complete snapshot reads headers only) at every position, and `valid_record_after` (the
//! torn-tail test) from several positions for each set of kinds recovery asks about; and as a
//! CHUNK_INDEX payload, searched with `chunk_index_after`.
//!
//! Input layout: byte 0 is flags: bit 0 rewrites the checksum of each record as the bytes are
//! walked (a header whose length fits gets the CRC its bytes deserve), so that the fuzzer
//! reaches valid records with arbitrary content; bits 1..8 pick the first `from` position.
//! The rest is the file.
//! Oracle: no panic; a decoded record lies within the buffer right after its header and
//! re-encodes to exactly its bytes; `decode_header` accepts exactly the headers `decode` does
//! not refuse for their length or kind, with the same fields; `valid_record_after` returns the
//! first position at or after `from` where `decode` finds a record of the asked kinds (a
//! transaction boundary, COMMIT or CHUNK_END, only with an empty payload, as written), and
//! `None` only if there is none (checked against a plain scan); `chunk_index_after` refuses a
//! payload that is not whole entries, returns an entry and its start, and for entries in
//! ascending order (as written) the first one after the asked offset.

#![no_main]

use engine::storage::record::{
    chunk_index_after, decode, decode_header, encode, valid_record_after, Decoded,
    CHUNK_INDEX_ENTRY_LEN, HEADER_LEN, KIND_CHUNK_END, KIND_COMMIT, KIND_SNAPSHOT_CHUNK,
};
use libfuzzer_sys::fuzz_target;
use protocol::offset::LogOffset;

/// The kind sets recovery searches for (log boundaries, snapshot chunks), and one more.
const KIND_SETS: &[&[u8]] = &[
    &[KIND_COMMIT, KIND_CHUNK_END],
    &[KIND_SNAPSHOT_CHUNK],
    &[0, 1, 2, 3, 4, 5, 6],
];

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut buf = rest.to_vec();
    if flags & 1 != 0 {
        fix_checksums(&mut buf);
    }
    let mut pos = 0;
    loop {
        match decode(&buf, pos) {
            Decoded::Record(record, next) => {
                let payload_at = record.payload.as_ptr() as usize - buf.as_ptr() as usize;
                assert_eq!(payload_at, pos + HEADER_LEN, "payload not after the header");
                assert_eq!(next, payload_at + record.payload.len());
                assert!(next <= buf.len());
                let mut encoded = Vec::new();
                encode(
                    &mut encoded,
                    record.kind,
                    record.tx,
                    record.op,
                    record.payload,
                );
                assert_eq!(encoded, &buf[pos..next], "decoding is not exact");
                pos = next;
            }
            Decoded::Truncated => {
                // Short of a header, or of the payload the header announces.
                let remaining = buf.len() - pos;
                if remaining >= HEADER_LEN {
                    let len = u32::from_le_bytes(buf[pos..pos + 4].try_into().expect("4 bytes"));
                    assert!(
                        len as usize > remaining - HEADER_LEN,
                        "a whole record truncated"
                    );
                }
                break;
            }
            Decoded::Bad(_) => break,
        }
    }
    // The kind of the record that decodes at each position (decoded once, not per query),
    // as the torn-tail scan may find it: boundaries are written with empty payloads only.
    let kind_at: Vec<Option<u8>> = (0..buf.len())
        .map(|q| {
            let decoded = decode(&buf, q);
            check_header(&buf, q, &decoded);
            match decoded {
                Decoded::Record(record, _)
                    if record.payload.is_empty()
                        || !matches!(record.kind, KIND_COMMIT | KIND_CHUNK_END) =>
                {
                    Some(record.kind)
                }
                _ => None,
            }
        })
        .collect();
    check_chunk_index(&buf);
    let first_from = usize::from(flags >> 1);
    for kinds in KIND_SETS {
        for from in [first_from, 0, pos, pos + 1] {
            let found = valid_record_after(&buf, from, kinds);
            assert_eq!(
                found,
                plain_scan(&kind_at, from, kinds),
                "from {from}, {kinds:?}"
            );
        }
    }
});

/// Reads `buf` as a CHUNK_INDEX payload: `(offset, start)` per entry.
fn check_chunk_index(buf: &[u8]) {
    let entries: Vec<(LogOffset, u32)> = buf
        .chunks_exact(CHUNK_INDEX_ENTRY_LEN)
        .map(|e| {
            let u64_at = |at: usize| u64::from_le_bytes(e[at..at + 8].try_into().expect("8"));
            let start = u32::from_le_bytes(e[16..20].try_into().expect("4 bytes"));
            (LogOffset::new(u64_at(0), u64_at(8)), start)
        })
        .collect();
    let whole = buf.len() % CHUNK_INDEX_ENTRY_LEN == 0;
    let sorted = entries.windows(2).all(|w| w[0].0 < w[1].0);
    let mut afters = vec![LogOffset::new(0, 0), LogOffset::new(u64::MAX, u64::MAX)];
    for (offset, _) in entries.iter().take(8) {
        afters.push(*offset);
        afters.push(LogOffset::new(offset.tx, offset.op.wrapping_sub(1)));
    }
    for after in afters {
        let found = chunk_index_after(buf, after);
        if !whole {
            assert_eq!(found, None, "a partial entry was accepted");
            continue;
        }
        if let Some((i, start)) = found {
            assert!(i < entries.len());
            assert_eq!(start, entries[i].1, "start of another entry");
        }
        if sorted {
            let expected = entries
                .iter()
                .position(|(offset, _)| *offset > after)
                .map(|i| (i, entries[i].1));
            assert_eq!(found, expected, "after {after}");
        }
    }
}

/// The first position at or after `from` where a record of one of `kinds` decodes.
fn plain_scan(kind_at: &[Option<u8>], from: usize, kinds: &[u8]) -> Option<usize> {
    (from..kind_at.len()).find(|&q| kind_at[q].is_some_and(|kind| kinds.contains(&kind)))
}

/// `decode_header` reads the header `decode` read, and refuses it for the same reasons (a
/// length over the limit or an unknown kind), not for a checksum or a short payload.
fn check_header(buf: &[u8], q: usize, decoded: &Decoded<'_>) {
    let Some(bytes) = buf.get(q..q + HEADER_LEN) else {
        return;
    };
    let header = decode_header(bytes.try_into().expect("a whole header"));
    match decoded {
        Decoded::Record(record, next) => {
            let header = header.expect("a decoded record's header decodes");
            assert_eq!(
                (header.kind, header.tx, header.op, header.len),
                (record.kind, record.tx, record.op, record.payload.len())
            );
            assert_eq!(q + HEADER_LEN + header.len, *next);
        }
        Decoded::Bad(reason) => {
            let refused = matches!(
                *reason,
                "record length over the limit" | "unknown record kind"
            );
            assert_eq!(header.err(), refused.then_some(*reason), "at {q}");
        }
        Decoded::Truncated => assert!(header.is_ok(), "at {q}"),
    }
}

/// Walks the buffer as a sequence of records and gives each whose length fits its correct
/// checksum (CRC-32C of bytes 0..4 and 8..end of the record).
fn fix_checksums(buf: &mut [u8]) {
    let mut pos = 0;
    while buf.len() - pos >= HEADER_LEN {
        let len = u32::from_le_bytes(buf[pos..pos + 4].try_into().expect("4 bytes")) as usize;
        if len > buf.len() - pos - HEADER_LEN {
            return;
        }
        let end = pos + HEADER_LEN + len;
        let crc = crc32c::crc32c_append(crc32c::crc32c(&buf[pos..pos + 4]), &buf[pos + 8..end]);
        buf[pos + 4..pos + 8].copy_from_slice(&crc.to_le_bytes());
        pos = end;
    }
}
