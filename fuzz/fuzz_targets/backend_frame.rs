//! Splits arbitrary bytes into backend messages with `pgwire::frame::split_frame`, parses
//! every CopyData body as a replication message, and decodes XLogData payloads as pgoutput
//! (protocol 2), the path the replication stream takes through `pgwire`.
//! Oracle: no panic, no hang, no allocation beyond the frame limit.

#![no_main]

use bumpalo::Bump;
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pgwire::frame::split_frame;
use pgwire::pgoutput::Decoder;
use pgwire::replication::{parse_copy_data, ReplicationMessage};

/// Small enough that a declared length cannot make the fuzzer reserve much memory.
const MAX_FRAME_LEN: usize = 1 << 16;

fuzz_target!(|data: &[u8]| {
    let mut buffer = BytesMut::from(data);
    let mut decoder = Decoder::new(2);
    let mut arena = Bump::new();
    // Each successful split consumes at least the 5-byte header, so this loop ends.
    while let Ok(Some(frame)) = split_frame(&mut buffer, MAX_FRAME_LEN) {
        if frame.tag != b'd' {
            continue;
        }
        if let Ok(ReplicationMessage::XLogData { data, .. }) = parse_copy_data(frame.body) {
            let _ = decoder.decode(&data, &arena);
            arena.reset();
        }
    }
});
