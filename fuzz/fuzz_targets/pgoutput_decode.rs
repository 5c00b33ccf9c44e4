//! Feeds arbitrary bytes through the pgoutput decoder as a sequence of messages, for protocol
//! versions 1 and 2 and starting in or out of a stream block, so the stream state moves too.
//!
//! Input layout: byte 0 picks the version (bit 0) and an initial stream block (bit 1); the
//! rest is a series of messages, each a 2-byte big-endian length and that many bytes.
//! Oracle: no panic, and every accepted message re-encodes to exactly its input bytes.

#![no_main]

use bumpalo::Bump;
use libfuzzer_sys::fuzz_target;
use pgwire::pgoutput::encode::encode_to_vec;
use pgwire::pgoutput::Decoder;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let version = if mode & 1 == 0 { 1 } else { 2 };
    let mut decoder = Decoder::new(version);
    let mut arena = Bump::new();
    if version == 2 && mode & 2 != 0 {
        decoder
            .decode(&[b'S', 0, 0, 0, 42, 1], &arena)
            .expect("a valid stream start decodes");
    }
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        let (message, tail) = rest[2..].split_at(len);
        rest = tail;
        if let Ok(decoded) = decoder.decode(message, &arena) {
            assert_eq!(encode_to_vec(&decoded), message, "decoding is exact");
        }
        arena.reset();
    }
});
