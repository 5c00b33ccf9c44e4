//! Shared plumbing of the golden fixture tests: loading captures, decoding them as a real
//! consumer would (one arena per transaction, reset at its end), and comparing renderings with
//! the checked-in expectations, which `SNAP_UPDATE=1` rewrites.

use std::collections::BTreeMap;
use std::path::PathBuf;

use bumpalo::Bump;
use pgwire::pgoutput::{Decoder, Message, TupleValue};
use testkit::capture::{self, Capture};

use crate::render::{fnv1a_extend, Renderer};

/// Fixtures too large for hex text; they use the binary format and a summary expectation.
pub const BINARY_FIXTURES: &[&str] = &["v1_bulk_100k"];

pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn fixture_path(name: &str) -> PathBuf {
    let ext = if BINARY_FIXTURES.contains(&name) {
        "pgoutput.bin"
    } else {
        "pgoutput"
    };
    fixtures_dir().join(format!("{name}.{ext}"))
}

/// Loads a checked-in capture by scenario name.
pub fn load(name: &str) -> Capture {
    let path = fixture_path(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let capture = if BINARY_FIXTURES.contains(&name) {
        capture::read_binary(&bytes)
    } else {
        capture::read_text(&String::from_utf8(bytes).expect("text fixture is UTF-8"))
    }
    .unwrap_or_else(|e| panic!("parse {}: {e}", path.display()));
    assert_eq!(capture.scenario, name, "fixture header names its scenario");
    capture
}

/// Writes a capture in the fixture format for its scenario.
pub fn store(capture: &Capture) {
    let path = fixture_path(&capture.scenario);
    let bytes = if BINARY_FIXTURES.contains(&capture.scenario.as_str()) {
        capture::write_binary(capture)
    } else {
        capture::write_text(capture).into_bytes()
    };
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Decodes every message of `capture` (panicking with its position on a decode error), calls
/// `visit` on each and returns the rendering.
pub fn decode_all(
    capture: &Capture,
    renderer: &mut Renderer,
    mut visit: impl FnMut(&Message<'_>),
) -> String {
    let mut decoder = Decoder::new(capture.proto_version);
    let mut arena = Bump::new();
    let mut out = String::new();
    for (index, captured) in capture.messages.iter().enumerate() {
        let message = decoder.decode(&captured.data, &arena).unwrap_or_else(|e| {
            panic!(
                "{} message {index} at {}: {e}",
                capture.scenario,
                capture::format_lsn(captured.lsn)
            )
        });
        out.push_str(&renderer.line(captured.lsn, captured.xid, &message));
        visit(&message);
        let ends_transaction = match message {
            Message::Commit(_) | Message::StreamCommit(_) => true,
            Message::StreamAbort(abort) => abort.xid == abort.subxact_xid,
            _ => false,
        };
        if ends_transaction {
            arena.reset();
        }
    }
    out
}

/// Compares `actual` with `tests/fixtures/<name>.<ext>`, or rewrites that file when
/// `SNAP_UPDATE=1` is set or `update` is true.
pub fn check_expected(name: &str, ext: &str, actual: &str, update: bool) {
    let path = fixtures_dir().join(format!("{name}.{ext}"));
    if update || std::env::var_os("SNAP_UPDATE").is_some_and(|v| v == "1") {
        std::fs::write(&path, actual).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read {} (SNAP_UPDATE=1 creates it): {e}", path.display()));
    assert_same_lines(&expected, actual, &path.display().to_string());
}

/// Fails at the first differing line, which reads better than a diff of two huge strings.
pub fn assert_same_lines(expected: &str, actual: &str, what: &str) {
    let mut expected_lines = expected.lines();
    let mut actual_lines = actual.lines();
    for line in 1.. {
        match (expected_lines.next(), actual_lines.next()) {
            (None, None) => return,
            (e, a) if e == a => continue,
            (e, a) => panic!("{what} differs at line {line}:\nexpected: {e:?}\nactual:   {a:?}"),
        }
    }
}

/// The name of a message's kind, for counting.
pub fn kind(message: &Message<'_>) -> &'static str {
    match message {
        Message::Begin(_) => "begin",
        Message::Commit(_) => "commit",
        Message::Origin(_) => "origin",
        Message::Relation(_) => "relation",
        Message::Type(_) => "type",
        Message::Insert(_) => "insert",
        Message::Update(_) => "update",
        Message::Delete(_) => "delete",
        Message::Truncate(_) => "truncate",
        Message::Message(_) => "message",
        Message::StreamStart(_) => "stream_start",
        Message::StreamStop => "stream_stop",
        Message::StreamCommit(_) => "stream_commit",
        Message::StreamAbort(_) => "stream_abort",
    }
}

/// Message counts and a checksum over every column value, for streams too large to render.
#[derive(Default)]
pub struct Summary {
    kinds: BTreeMap<&'static str, usize>,
    values: BTreeMap<&'static str, usize>,
    value_bytes: usize,
    checksum: u64,
}

impl Summary {
    pub fn new() -> Self {
        Self {
            checksum: crate::render::fnv1a(b""),
            ..Self::default()
        }
    }

    pub fn count(&self, kind: &str) -> usize {
        self.kinds.get(kind).copied().unwrap_or(0)
    }

    pub fn add(&mut self, message: &Message<'_>) {
        *self.kinds.entry(kind(message)).or_default() += 1;
        let tuples = match message {
            Message::Insert(m) => [Some(m.new), None],
            Message::Update(m) => [m.old.map(|o| *o.tuple()), Some(m.new)],
            Message::Delete(m) => [Some(*m.old.tuple()), None],
            _ => [None, None],
        };
        for value in tuples.iter().flatten().flat_map(|t| t.columns) {
            let (name, tag, bytes): (_, _, &[u8]) = match value {
                TupleValue::Null => ("null", b'n', &[]),
                TupleValue::UnchangedToast => ("unchanged", b'u', &[]),
                TupleValue::Text(bytes) => ("text", b't', bytes),
                TupleValue::Binary(bytes) => ("binary", b'b', bytes),
            };
            *self.values.entry(name).or_default() += 1;
            self.value_bytes += bytes.len();
            // Kind and length go into the checksum so that moving bytes between adjacent
            // values changes it.
            self.checksum = fnv1a_extend(self.checksum, &[tag]);
            self.checksum = fnv1a_extend(self.checksum, &(bytes.len() as u32).to_be_bytes());
            self.checksum = fnv1a_extend(self.checksum, bytes);
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for (kind, count) in &self.kinds {
            out.push_str(&format!("messages.{kind}: {count}\n"));
        }
        for (kind, count) in &self.values {
            out.push_str(&format!("values.{kind}: {count}\n"));
        }
        out.push_str(&format!("value_bytes: {}\n", self.value_bytes));
        out.push_str(&format!("value_checksum_fnv1a64: {:016x}\n", self.checksum));
        out
    }
}
