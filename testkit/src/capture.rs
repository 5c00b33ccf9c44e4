//! A pgoutput crafter: runs a scripted scenario against a real Postgres and records the exact
//! bytes the `pgoutput` plugin produces, with their LSNs and xids.
//!
//! Each scenario gets a fresh database: its setup SQL creates tables and the publication
//! `fixture_pub`, then a `pgoutput` slot is created, the scripts run (each in its own `psql`
//! session, so a script is one session's worth of transactions), and the changes are read
//! back with `pg_logical_slot_peek_binary_changes`.
//!
//! The decoding session (the one calling the peek function) sets `TimeZone` and `DateStyle`
//! so that text-format values are reproducible, and for streaming scenarios
//! `logical_decoding_work_mem = 64kB`: the reorder buffer that decides to stream lives in the
//! decoding session, not in the session that writes.
//!
//! Two fixture file formats are provided: a text one (`# key: value` header lines, then one
//! message per line as `LSN XID HEX`) and a compact binary one for very large streams (see
//! [`write_binary`]).

use std::fmt::Write as _;

use crate::{err, Result, TestDb};

/// One scripted run of Postgres that produces a pgoutput stream worth keeping.
#[derive(Clone, Copy, Debug)]
pub struct Scenario {
    /// Also the fixture file stem.
    pub name: &'static str,
    /// The `proto_version` option (1 or 2).
    pub proto_version: u8,
    /// Requests `streaming 'on'` and lowers `logical_decoding_work_mem` so large transactions
    /// are streamed (protocol 2 only).
    pub streaming: bool,
    /// DDL run before the slot exists: its changes are not decoded.
    pub setup: &'static str,
    /// Each entry runs in its own `psql` session after the slot was created.
    pub scripts: &'static [&'static str],
}

/// One row of `pg_logical_slot_peek_binary_changes`: one pgoutput message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapturedMessage {
    pub lsn: u64,
    pub xid: u32,
    pub data: Vec<u8>,
}

/// A captured stream with the options that produced it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capture {
    pub scenario: String,
    pub proto_version: u8,
    pub streaming: bool,
    pub messages: Vec<CapturedMessage>,
}

const SLOT: &str = "fixture_slot";

/// Runs `scenario` in `db` (a fresh database) and returns the messages it produced.
pub fn capture(db: &TestDb<'_>, scenario: &Scenario) -> Result<Capture> {
    assert!(
        scenario.proto_version == 1 || scenario.proto_version == 2,
        "scenario {} has an unsupported protocol version",
        scenario.name
    );
    assert!(
        !scenario.streaming || scenario.proto_version >= 2,
        "streaming needs version 2"
    );
    db.psql(scenario.setup)?;
    db.psql(&format!(
        "SELECT pg_create_logical_replication_slot('{SLOT}', 'pgoutput')"
    ))?;
    for script in scenario.scripts {
        db.psql(script)?;
    }
    let mut query = String::from("SET TimeZone = 'UTC';\nSET DateStyle = 'ISO, MDY';\n");
    let mut options = format!(
        "'proto_version', '{}', 'publication_names', 'fixture_pub', 'messages', 'true'",
        scenario.proto_version
    );
    if scenario.streaming {
        query.push_str("SET logical_decoding_work_mem = '64kB';\n");
        options.push_str(", 'streaming', 'on'");
    }
    let _ = write!(
        query,
        "SELECT lsn, xid, encode(data, 'hex') \
         FROM pg_logical_slot_peek_binary_changes('{SLOT}', NULL, NULL, {options})"
    );
    let messages = db
        .psql(&query)?
        .lines()
        .filter(|line| !line.is_empty())
        .map(parse_peek_row)
        .collect::<Result<Vec<_>>>()?;
    Ok(Capture {
        scenario: scenario.name.to_string(),
        proto_version: scenario.proto_version,
        streaming: scenario.streaming,
        messages,
    })
}

fn parse_peek_row(line: &str) -> Result<CapturedMessage> {
    let mut fields = line.split('|');
    let (Some(lsn), Some(xid), Some(hex), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(err(format!("unexpected peek row {line:?}")));
    };
    Ok(CapturedMessage {
        lsn: parse_lsn(lsn)?,
        xid: xid.parse().map_err(|_| err(format!("bad xid {xid:?}")))?,
        data: decode_hex(hex)?,
    })
}

/// Parses Postgres's `X/Y` LSN text form.
pub fn parse_lsn(text: &str) -> Result<u64> {
    let bad = || err(format!("bad LSN {text:?}"));
    let (high, low) = text.split_once('/').ok_or_else(bad)?;
    let high = u32::from_str_radix(high, 16).map_err(|_| bad())?;
    let low = u32::from_str_radix(low, 16).map_err(|_| bad())?;
    Ok((u64::from(high) << 32) | u64::from(low))
}

/// Formats an LSN as Postgres does (`X/Y`, upper-case hex).
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

fn decode_hex(hex: &str) -> Result<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return Err(err("odd-length hex"));
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| err(format!("bad hex at {i}")))
        })
        .collect()
}

/// The text fixture format: header lines, then `LSN XID HEX` per message.
pub fn write_text(capture: &Capture) -> String {
    let mut out = format!(
        "# scenario: {}\n# proto_version: {}\n# streaming: {}\n",
        capture.scenario, capture.proto_version, capture.streaming
    );
    for message in &capture.messages {
        let _ = write!(out, "{} {} ", format_lsn(message.lsn), message.xid);
        for byte in &message.data {
            let _ = write!(out, "{byte:02x}");
        }
        out.push('\n');
    }
    out
}

/// Parses [`write_text`] output.
pub fn read_text(text: &str) -> Result<Capture> {
    let mut capture = Capture {
        scenario: String::new(),
        proto_version: 0,
        streaming: false,
        messages: Vec::new(),
    };
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        if let Some(header) = line.strip_prefix("# ") {
            let (key, value) = header.split_once(": ").ok_or_else(|| err(line))?;
            match key {
                "scenario" => capture.scenario = value.to_string(),
                "proto_version" => capture.proto_version = value.parse().map_err(|_| err(line))?,
                "streaming" => capture.streaming = value == "true",
                _ => return Err(err(format!("unknown fixture header {key:?}"))),
            }
            continue;
        }
        let mut fields = line.split(' ');
        let (Some(lsn), Some(xid), Some(hex), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(err(format!("bad fixture line {line:?}")));
        };
        capture.messages.push(CapturedMessage {
            lsn: parse_lsn(lsn)?,
            xid: xid.parse().map_err(|_| err(line))?,
            data: decode_hex(hex)?,
        });
    }
    if capture.proto_version == 0 {
        return Err(err("fixture has no proto_version header"));
    }
    Ok(capture)
}

const BINARY_MAGIC: &[u8; 8] = b"AMPGOUT1";

/// The binary fixture format, for streams too large for hex text: the magic `AMPGOUT1`, a
/// byte with the protocol version, a byte with the streaming flag, the scenario name as a
/// varint length and bytes, then per message three LEB128 varints (the zigzag-encoded LSN
/// difference to the previous message, the zigzag xid difference, the data length) and the
/// data. Consecutive messages of one transaction differ little, so the header is ~3 bytes.
pub fn write_binary(capture: &Capture) -> Vec<u8> {
    let mut out = BINARY_MAGIC.to_vec();
    out.push(capture.proto_version);
    out.push(u8::from(capture.streaming));
    put_varint(&mut out, capture.scenario.len() as u64);
    out.extend_from_slice(capture.scenario.as_bytes());
    let (mut lsn, mut xid) = (0u64, 0u32);
    for message in &capture.messages {
        put_varint(&mut out, zigzag(message.lsn.wrapping_sub(lsn) as i64));
        put_varint(&mut out, zigzag(i64::from(message.xid) - i64::from(xid)));
        put_varint(&mut out, message.data.len() as u64);
        out.extend_from_slice(&message.data);
        (lsn, xid) = (message.lsn, message.xid);
    }
    out
}

/// Parses [`write_binary`] output.
pub fn read_binary(bytes: &[u8]) -> Result<Capture> {
    let rest = bytes
        .strip_prefix(BINARY_MAGIC)
        .ok_or_else(|| err("not a binary pgoutput fixture"))?;
    let mut cursor = BinaryCursor { rest };
    let proto_version = cursor.take(1)?[0];
    let streaming = cursor.take(1)?[0] == 1;
    let name_len = cursor.len()?;
    let scenario = String::from_utf8(cursor.take(name_len)?.to_vec())
        .map_err(|_| err("scenario name is not UTF-8"))?;
    let (mut lsn, mut xid) = (0u64, 0u32);
    let mut messages = Vec::new();
    while !cursor.rest.is_empty() {
        lsn = lsn.wrapping_add(unzigzag(cursor.varint()?) as u64);
        xid = u32::try_from(i64::from(xid) + unzigzag(cursor.varint()?))
            .map_err(|_| err("xid out of range"))?;
        let len = cursor.len()?;
        let data = cursor.take(len)?.to_vec();
        messages.push(CapturedMessage { lsn, xid, data });
    }
    Ok(Capture {
        scenario,
        proto_version,
        streaming,
        messages,
    })
}

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

struct BinaryCursor<'a> {
    rest: &'a [u8],
}

impl<'a> BinaryCursor<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8]> {
        if len > self.rest.len() {
            return Err(err("binary fixture is truncated"));
        }
        let (head, tail) = self.rest.split_at(len);
        self.rest = tail;
        Ok(head)
    }

    fn varint(&mut self) -> Result<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1)?[0];
            value |= u64::from(byte & 0x7F) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(err("varint longer than 64 bits"))
    }

    fn len(&mut self) -> Result<usize> {
        usize::try_from(self.varint()?).map_err(|_| err("length out of range"))
    }
}

/// The scenarios whose captures are checked in under `pgwire/tests/fixtures/`.
pub fn scenarios() -> &'static [Scenario] {
    &SCENARIOS
}

/// The scenario named `name`.
pub fn scenario(name: &str) -> Option<&'static Scenario> {
    SCENARIOS.iter().find(|scenario| scenario.name == name)
}

static SCENARIOS: [Scenario; 8] = [
    Scenario {
        name: "v1_all_kinds",
        proto_version: 1,
        streaming: false,
        setup: "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
            CREATE TABLE items (id int8 PRIMARY KEY, title text, feeling mood);
            CREATE TABLE tags (id int4 PRIMARY KEY);
            CREATE PUBLICATION fixture_pub FOR ALL TABLES;
            SELECT pg_replication_origin_create('upstream');",
        scripts: &[
            "INSERT INTO items VALUES (1, 'first', 'ok'), (2, 'second', NULL);
             UPDATE items SET title = 'first, edited' WHERE id = 1;
             DELETE FROM items WHERE id = 2;
             INSERT INTO tags VALUES (10);
             TRUNCATE tags;
             BEGIN;
             SELECT pg_logical_emit_message(true, 'ampere', 'transactional message');
             INSERT INTO items VALUES (3, 'third', 'happy');
             COMMIT;
             SELECT pg_logical_emit_message(false, 'ampere', '\\x00ff'::bytea);",
            // A transaction replayed from another node carries an Origin message.
            "SELECT pg_replication_origin_session_setup('upstream');
             BEGIN;
             SELECT pg_replication_origin_xact_setup('0/ABCDEF', '2024-01-01 00:00:00+00');
             INSERT INTO items VALUES (4, 'from upstream', 'sad');
             COMMIT;
             SELECT pg_replication_origin_session_reset();",
        ],
    },
    Scenario {
        name: "v1_column_types",
        proto_version: 1,
        streaming: false,
        setup: "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
            CREATE TABLE everything (
                id int8 PRIMARY KEY, small int2, medium int4, amount numeric(12, 3),
                body text, label varchar(20), flag bool, uid uuid, at timestamp,
                at_tz timestamptz, day date, doc json, docb jsonb, raw bytea, nums int8[],
                words text[], feeling mood);
            CREATE PUBLICATION fixture_pub FOR ALL TABLES;",
        scripts: &["INSERT INTO everything VALUES (1, -2, 300000, 12345.678,
                'it''s \"quoted\" \\ here', 'label', true,
                'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2024-02-29 12:34:56.789',
                '2024-02-29 12:34:56.789+02', '2024-02-29', '{\"a\": [1, 2]}',
                '{\"b\": {\"c\": null}}', '\\x00ff10', '{1,-2,9223372036854775807}',
                '{\"x\",\"y z\",NULL}', 'happy');
             INSERT INTO everything (id) VALUES (2);
             INSERT INTO everything (id, amount, at_tz, nums, words, body) VALUES
                (3, 'NaN', 'infinity', '{}', '{}', E'line1\\nline2\\ttab \\u00e9');
             UPDATE everything SET feeling = 'sad', flag = false WHERE id = 1;"],
    },
    Scenario {
        name: "v1_replica_identity",
        proto_version: 1,
        streaming: false,
        setup: "CREATE TABLE rid_default (id int4 PRIMARY KEY, v text);
            CREATE TABLE rid_full (id int4 PRIMARY KEY, v text);
            ALTER TABLE rid_full REPLICA IDENTITY FULL;
            CREATE TABLE rid_index (a int4 NOT NULL, b int4 NOT NULL, v text);
            CREATE UNIQUE INDEX rid_index_ab ON rid_index (a, b);
            ALTER TABLE rid_index REPLICA IDENTITY USING INDEX rid_index_ab;
            CREATE PUBLICATION fixture_pub FOR ALL TABLES;",
        scripts: &["INSERT INTO rid_default VALUES (1, 'a'), (2, 'b');
             INSERT INTO rid_full VALUES (1, 'a'), (2, NULL);
             INSERT INTO rid_index VALUES (1, 1, 'a');
             UPDATE rid_default SET v = 'a2' WHERE id = 1;
             UPDATE rid_default SET id = 3 WHERE id = 2;
             DELETE FROM rid_default WHERE id = 1;
             UPDATE rid_full SET v = 'a2' WHERE id = 1;
             UPDATE rid_full SET id = 3 WHERE id = 2;
             DELETE FROM rid_full WHERE id = 1;
             UPDATE rid_index SET v = 'a2';
             UPDATE rid_index SET b = 2;
             DELETE FROM rid_index;"],
    },
    Scenario {
        name: "v1_unchanged_toast",
        proto_version: 1,
        streaming: false,
        // EXTERNAL storage keeps the large value out of line and uncompressed, so it is
        // TOASTed whatever its content and an update that leaves it alone sends `u`.
        setup: "CREATE TABLE docs (id int4 PRIMARY KEY, title text, body text);
            ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL;
            CREATE PUBLICATION fixture_pub FOR ALL TABLES;",
        scripts: &[
            "INSERT INTO docs VALUES (1, 'big', repeat('0123456789abcdef', 512));
             UPDATE docs SET title = 'big, renamed' WHERE id = 1;
             UPDATE docs SET body = 'small now' WHERE id = 1;",
        ],
    },
    Scenario {
        name: "v1_truncate_multi",
        proto_version: 1,
        streaming: false,
        setup: "CREATE TABLE a (id serial PRIMARY KEY);
            CREATE TABLE b (id serial PRIMARY KEY);
            CREATE TABLE parent (id int4 PRIMARY KEY);
            CREATE TABLE child (id int4 PRIMARY KEY, parent_id int4 REFERENCES parent);
            CREATE PUBLICATION fixture_pub FOR ALL TABLES;",
        scripts: &["INSERT INTO a DEFAULT VALUES; INSERT INTO b DEFAULT VALUES;
             INSERT INTO parent VALUES (1); INSERT INTO child VALUES (1, 1);
             TRUNCATE a, b RESTART IDENTITY;
             TRUNCATE parent CASCADE;"],
    },
    Scenario {
        name: "v1_multi_table_txn",
        proto_version: 1,
        streaming: false,
        setup: "CREATE TABLE users (id int4 PRIMARY KEY, name text);
            CREATE TABLE orders (id int4 PRIMARY KEY, user_id int4, total numeric);
            CREATE TABLE audit (id bigserial PRIMARY KEY, note text);
            CREATE PUBLICATION fixture_pub FOR ALL TABLES;",
        scripts: &["BEGIN;
             INSERT INTO users VALUES (1, 'ada'), (2, 'grace');
             INSERT INTO orders VALUES (10, 1, 9.99), (11, 2, 100);
             UPDATE users SET name = 'Ada' WHERE id = 1;
             INSERT INTO audit (note) VALUES ('two users, two orders');
             DELETE FROM orders WHERE id = 11;
             COMMIT;"],
    },
    Scenario {
        name: "v2_streamed",
        proto_version: 2,
        streaming: true,
        setup: "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
            CREATE TABLE big (id int4 PRIMARY KEY, payload text, feeling mood);
            CREATE TABLE side (id int4 PRIMARY KEY);
            CREATE PUBLICATION fixture_pub FOR ALL TABLES;",
        scripts: &[
            // Small enough not to stream: plain Begin/Commit under protocol 2.
            "INSERT INTO side VALUES (1);",
            // Streamed, with a rolled-back subtransaction (Stream Abort for the subxact).
            "BEGIN;
             INSERT INTO big SELECT g, 'payload-' || g, 'ok' FROM generate_series(1, 1000) g;
             SELECT pg_logical_emit_message(true, 'ampere', 'inside a stream');
             UPDATE big SET feeling = 'happy' WHERE id <= 3;
             DELETE FROM big WHERE id = 4;
             SAVEPOINT sp;
             INSERT INTO big SELECT g, 'undone-' || g, 'sad' FROM generate_series(1001, 1800) g;
             ROLLBACK TO SAVEPOINT sp;
             TRUNCATE side;
             INSERT INTO big VALUES (5000, 'after the rollback', 'ok');
             COMMIT;",
            // Streamed and then rolled back entirely (Stream Abort for the top transaction).
            "BEGIN;
             INSERT INTO big SELECT g, 'aborted-' || g, 'sad' FROM generate_series(2001, 3000) g;
             ROLLBACK;",
            // An abort does not flush WAL and the peek stops at the flush position: this
            // commit flushes the abort record so that the Stream Abort is decoded.
            "INSERT INTO side VALUES (2);",
        ],
    },
    Scenario {
        name: "v1_bulk_100k",
        proto_version: 1,
        streaming: false,
        setup: "CREATE TABLE bulk (id int4 PRIMARY KEY, n int4);
            CREATE PUBLICATION fixture_pub FOR ALL TABLES;",
        scripts: &["INSERT INTO bulk SELECT g, g % 97 FROM generate_series(1, 100000) g;"],
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixture_formats_round_trip() {
        let capture = Capture {
            scenario: "demo".into(),
            proto_version: 2,
            streaming: true,
            messages: vec![
                CapturedMessage {
                    lsn: 0x1_0000_0100,
                    xid: 900,
                    data: vec![b'B', 1, 2],
                },
                CapturedMessage {
                    lsn: 0x0_0000_0010,
                    xid: 0,
                    data: vec![],
                },
                CapturedMessage {
                    lsn: u64::MAX,
                    xid: u32::MAX,
                    data: vec![0xFF; 300],
                },
            ],
        };
        assert_eq!(read_text(&write_text(&capture)).unwrap(), capture);
        assert_eq!(read_binary(&write_binary(&capture)).unwrap(), capture);
        let binary = write_binary(&capture);
        assert!(read_binary(&binary[..binary.len() - 1]).is_err());
    }
}
