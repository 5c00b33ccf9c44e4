//! Round trip: for any generated message valid in its stream state,
//! `decode(encode(m)) == m`, and the decoder's stream state moves as the message says.

use bumpalo::Bump;
use pgwire::pgoutput::encode::encode_to_vec;
use pgwire::pgoutput::{Decoder, Message, StreamStart};
use pgwire::types::Xid;
use proptest::prelude::*;

use crate::model::{case, Case};

/// A decoder in the state the case asks for: inside a stream block if `stream_xid` is set.
pub fn decoder_for(case: &Case) -> Decoder {
    let mut decoder = Decoder::new(case.proto_version);
    if let Some(xid) = case.stream_xid {
        let start = Message::StreamStart(StreamStart {
            xid: Xid(xid),
            first_segment: true,
        });
        let arena = Bump::new();
        decoder
            .decode(&encode_to_vec(&start), &arena)
            .expect("stream start decodes");
    }
    decoder
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decode_inverts_encode(case in case()) {
        let arena = Bump::new();
        let message = case.message.view(&arena);
        let bytes = encode_to_vec(&message);
        let mut decoder = decoder_for(&case);
        let decoded = decoder.decode(&bytes, &arena);
        prop_assert_eq!(decoded, Ok(message));
        let expected_state = match message {
            Message::StreamStart(s) => Some(s.xid),
            Message::StreamStop => None,
            _ => case.stream_xid.map(Xid),
        };
        prop_assert_eq!(decoder.stream_xid(), expected_state);
    }
}
