//! Decoding a stream message by message and counting what it held.

use bumpalo::Bump;
use pgwire::pgoutput::{DecodeError, Decoder, Message};

/// Counts of decoded messages. `values` (column values seen in new and old tuples) doubles as
/// a result checksum, so the optimizer cannot drop the decoding work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub messages: u64,
    pub bytes: u64,
    pub transactions: u64,
    pub inserts: u64,
    pub updates: u64,
    pub deletes: u64,
    pub values: u64,
}

impl Tally {
    /// Inserts, updates and deletes.
    pub fn changes(&self) -> u64 {
        self.inserts + self.updates + self.deletes
    }

    fn note(&mut self, message: &Message<'_>) {
        match message {
            Message::Commit(_) => self.transactions += 1,
            Message::Insert(insert) => {
                self.inserts += 1;
                self.values += insert.new.columns.len() as u64;
            }
            Message::Update(update) => {
                self.updates += 1;
                let old = update.old.map_or(0, |old| old.tuple().columns.len());
                self.values += (old + update.new.columns.len()) as u64;
            }
            Message::Delete(delete) => {
                self.deletes += 1;
                self.values += delete.old.tuple().columns.len() as u64;
            }
            _ => {}
        }
    }
}

/// A decoder with its arena, reset after every transaction as the engine does.
pub struct StreamDecoder {
    decoder: Decoder,
    arena: Bump,
    pub tally: Tally,
}

impl StreamDecoder {
    /// A decoder for `proto_version` 1, the version both benchmarks request.
    pub fn new() -> Self {
        Self {
            decoder: Decoder::new(1),
            arena: Bump::new(),
            tally: Tally::default(),
        }
    }

    /// Decodes one XLogData payload; returns whether it was a Commit.
    #[inline]
    pub fn decode(&mut self, data: &[u8]) -> Result<bool, DecodeError> {
        let is_commit = {
            let message = self.decoder.decode(data, &self.arena)?;
            std::hint::black_box(&message);
            self.tally.note(&message);
            matches!(message, Message::Commit(_))
        };
        self.tally.messages += 1;
        self.tally.bytes += data.len() as u64;
        if is_commit {
            self.arena.reset();
        }
        Ok(is_commit)
    }
}

impl Default for StreamDecoder {
    fn default() -> Self {
        Self::new()
    }
}
