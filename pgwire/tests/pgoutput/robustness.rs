//! The decoder never panics, never over-allocates, and is exact: on arbitrary bytes,
//! truncations and bit flips of valid messages it returns a value or a typed error, and any
//! bytes it accepts re-encode to themselves (nothing is skipped or normalised).

use bumpalo::Bump;
use pgwire::pgoutput::encode::encode_to_vec;
use pgwire::pgoutput::{DecodeErrorKind, Decoder};
use proptest::collection::vec;
use proptest::prelude::*;

use crate::model::case;
use crate::roundtrip::decoder_for;

const TAGS: &[u8] = b"BCORYIUDTMSEcA";

/// Decodes `bytes` and checks the properties every outcome must have.
fn check_any(decoder: &mut Decoder, bytes: &[u8]) -> Result<(), TestCaseError> {
    let arena = Bump::new();
    let before = decoder.clone();
    match decoder.decode(bytes, &arena) {
        Ok(message) => prop_assert_eq!(encode_to_vec(&message), bytes),
        Err(error) => {
            prop_assert!(error.offset <= bytes.len());
            prop_assert_eq!(&*decoder, &before, "a failed decode leaves the state alone");
        }
    }
    // Arrays are bounded by the input: at most 32 arena bytes per input byte (a relation
    // column: 32 bytes for at least 10 input bytes), plus chunk rounding and the first chunk.
    prop_assert!(arena.allocated_bytes() <= 64 * bytes.len() + 4096);
    Ok(())
}

fn any_decoder() -> impl Strategy<Value = Decoder> {
    (1u8..=2, any::<bool>(), any::<u32>()).prop_map(|(version, in_stream, xid)| {
        let mut decoder = Decoder::new(version);
        if version == 2 && in_stream {
            let mut start = vec![b'S'];
            start.extend_from_slice(&xid.to_be_bytes());
            start.push(1);
            decoder
                .decode(&start, &Bump::new())
                .expect("stream start decodes");
        }
        decoder
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn arbitrary_bytes_never_panic(
        mut decoder in any_decoder(),
        tag in proptest::sample::select(TAGS),
        body in vec(any::<u8>(), 0..64),
        raw in any::<bool>(),
    ) {
        // Half the cases start with a real tag so the body parsers are reached.
        let mut bytes = if raw { Vec::new() } else { vec![tag] };
        bytes.extend_from_slice(&body);
        check_any(&mut decoder, &bytes)?;
    }

    #[test]
    fn every_truncation_is_an_error(case in case()) {
        let arena = Bump::new();
        let bytes = encode_to_vec(&case.message.view(&arena));
        // The format is self-delimiting, so no proper prefix of a message is a message.
        // Wide rows make messages of several kB; checking every prefix of those is quadratic,
        // so long messages check the first and last 128 prefixes and a spread in between.
        let step = (bytes.len() / 64).max(1);
        let prefixes = (0..bytes.len())
            .filter(|len| *len < 128 || bytes.len() - len <= 128 || len % step == 0);
        for len in prefixes {
            let mut decoder = decoder_for(&case);
            prop_assert!(decoder.decode(&bytes[..len], &arena).is_err(), "prefix {}", len);
        }
        let mut longer = bytes.clone();
        longer.push(0);
        let error = decoder_for(&case).decode(&longer, &arena).expect_err("trailing byte");
        prop_assert_eq!(error.kind, DecodeErrorKind::TrailingBytes(1));
        prop_assert_eq!(error.offset, bytes.len());
    }

    #[test]
    fn bit_flips_never_panic(case in case(), flips in vec(any::<proptest::sample::Index>(), 1..4)) {
        let arena = Bump::new();
        let mut bytes = encode_to_vec(&case.message.view(&arena));
        for flip in flips {
            let bit = flip.index(bytes.len() * 8);
            bytes[bit / 8] ^= 1 << (bit % 8);
        }
        check_any(&mut decoder_for(&case), &bytes)?;
    }
}
