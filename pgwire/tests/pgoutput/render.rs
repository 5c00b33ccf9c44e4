//! A readable, line-per-message rendering of decoded pgoutput, used as the expected output of
//! the golden fixtures. In masked mode, values that differ between captures (LSNs, xids,
//! timestamps, oids of user objects) are replaced by stable placeholders so a fresh capture
//! can be compared with a checked-in one.

use std::collections::HashMap;
use std::fmt::Write as _;

use pgwire::pgoutput::{Message, OldTuple, RelationColumn, TupleData, TupleValue};
use pgwire::types::{Lsn, Oid, TimestampTz, Xid};

/// Oids below this are assigned by initdb and stable across clusters.
const FIRST_NORMAL_OBJECT_ID: u32 = 16384;

/// Values longer than this are shown by length, checksum and head.
const LONG_VALUE_BYTES: usize = 80;

#[derive(Default)]
pub struct Renderer {
    masked: bool,
    oids: HashMap<u32, usize>,
    xids: HashMap<u32, usize>,
}

impl Renderer {
    pub fn exact() -> Self {
        Self::default()
    }

    pub fn masked() -> Self {
        Self {
            masked: true,
            ..Self::default()
        }
    }

    /// One line: the peek row's LSN and xid, then the message.
    pub fn line(&mut self, lsn: u64, xid: u32, message: &Message<'_>) -> String {
        let mut out = format!("{} {} ", self.lsn(Lsn(lsn)), self.xid(Xid(xid)));
        self.message(message, &mut out);
        out.push('\n');
        out
    }

    fn lsn(&self, lsn: Lsn) -> String {
        if self.masked {
            "LSN".into()
        } else {
            lsn.to_string()
        }
    }

    fn xid(&mut self, xid: Xid) -> String {
        if !self.masked || xid.0 == 0 {
            return xid.to_string();
        }
        let next = self.xids.len() + 1;
        format!("xid#{}", self.xids.entry(xid.0).or_insert(next))
    }

    fn oid(&mut self, oid: Oid) -> String {
        if !self.masked || oid.0 < FIRST_NORMAL_OBJECT_ID {
            return oid.to_string();
        }
        let next = self.oids.len() + 1;
        format!("oid#{}", self.oids.entry(oid.0).or_insert(next))
    }

    fn ts(&self, ts: TimestampTz) -> String {
        if self.masked {
            "TS".into()
        } else {
            ts.0.to_string()
        }
    }

    fn stream_xid(&mut self, xid: Option<Xid>) -> String {
        xid.map(|x| format!(" xid={}", self.xid(x)))
            .unwrap_or_default()
    }

    fn message(&mut self, message: &Message<'_>, out: &mut String) {
        let _ = match message {
            Message::Begin(m) => write!(
                out,
                "BEGIN final_lsn={} ts={} xid={}",
                self.lsn(m.final_lsn),
                self.ts(m.commit_timestamp),
                self.xid(m.xid)
            ),
            Message::Commit(m) => write!(
                out,
                "COMMIT flags={} commit_lsn={} end_lsn={} ts={}",
                m.flags,
                self.lsn(m.commit_lsn),
                self.lsn(m.end_lsn),
                self.ts(m.commit_timestamp)
            ),
            Message::Origin(m) => write!(
                out,
                "ORIGIN commit_lsn={} name={:?}",
                self.lsn(m.commit_lsn),
                m.name
            ),
            Message::Relation(m) => {
                let head = format!(
                    "RELATION{} rel={} {:?}.{:?} identity={} columns=",
                    self.stream_xid(m.xid),
                    self.oid(m.rel_id),
                    m.namespace,
                    m.name,
                    char::from(m.replica_identity)
                );
                out.push_str(&head);
                self.columns(m.columns, out);
                Ok(())
            }
            Message::Type(m) => write!(
                out,
                "TYPE{} oid={} {:?}.{:?}",
                self.stream_xid(m.xid),
                self.oid(m.type_oid),
                m.namespace,
                m.name
            ),
            Message::Insert(m) => {
                let head = format!(
                    "INSERT{} rel={} new=",
                    self.stream_xid(m.xid),
                    self.oid(m.rel_id)
                );
                out.push_str(&head);
                tuple(&m.new, out);
                Ok(())
            }
            Message::Update(m) => {
                let head = format!(
                    "UPDATE{} rel={}",
                    self.stream_xid(m.xid),
                    self.oid(m.rel_id)
                );
                out.push_str(&head);
                if let Some(old) = &m.old {
                    out.push_str(" old=");
                    old_tuple(old, out);
                }
                out.push_str(" new=");
                tuple(&m.new, out);
                Ok(())
            }
            Message::Delete(m) => {
                let head = format!(
                    "DELETE{} rel={} old=",
                    self.stream_xid(m.xid),
                    self.oid(m.rel_id)
                );
                out.push_str(&head);
                old_tuple(&m.old, out);
                Ok(())
            }
            Message::Truncate(m) => {
                let rels: Vec<String> = m.rel_ids.iter().map(|oid| self.oid(*oid)).collect();
                let xid = self.stream_xid(m.xid);
                write!(
                    out,
                    "TRUNCATE{xid} options={} rels=[{}]",
                    m.options,
                    rels.join(", ")
                )
            }
            Message::Message(m) => {
                let head = format!(
                    "MESSAGE{} transactional={} lsn={} prefix={:?} content=",
                    self.stream_xid(m.xid),
                    m.transactional,
                    self.lsn(m.lsn),
                    m.prefix
                );
                out.push_str(&head);
                value_bytes('b', m.content, out);
                Ok(())
            }
            Message::StreamStart(m) => write!(
                out,
                "STREAM_START xid={} first_segment={}",
                self.xid(m.xid),
                m.first_segment
            ),
            Message::StreamStop => write!(out, "STREAM_STOP"),
            Message::StreamCommit(m) => write!(
                out,
                "STREAM_COMMIT xid={} flags={} commit_lsn={} end_lsn={} ts={}",
                self.xid(m.xid),
                m.flags,
                self.lsn(m.commit_lsn),
                self.lsn(m.end_lsn),
                self.ts(m.commit_timestamp)
            ),
            Message::StreamAbort(m) => write!(
                out,
                "STREAM_ABORT xid={} subxact_xid={}",
                self.xid(m.xid),
                self.xid(m.subxact_xid)
            ),
        };
    }

    fn columns(&mut self, columns: &[RelationColumn<'_>], out: &mut String) {
        out.push('[');
        for (i, column) in columns.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            let type_oid = self.oid(column.type_oid);
            let _ = write!(
                out,
                "{:?} flags={} type={} typmod={}",
                column.name, column.flags, type_oid, column.type_modifier
            );
        }
        out.push(']');
    }
}

fn old_tuple(old: &OldTuple<'_>, out: &mut String) {
    match old {
        OldTuple::Key(_) => out.push('K'),
        OldTuple::Full(_) => out.push('O'),
    }
    tuple(old.tuple(), out);
}

fn tuple(tuple: &TupleData<'_>, out: &mut String) {
    out.push('(');
    for (i, value) in tuple.columns.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        match value {
            TupleValue::Null => out.push_str("null"),
            TupleValue::UnchangedToast => out.push_str("unchanged"),
            TupleValue::Text(bytes) => value_bytes('t', bytes, out),
            TupleValue::Binary(bytes) => value_bytes('b', bytes, out),
        }
    }
    out.push(')');
}

/// `t"..."` with non-printable bytes escaped; long values by length, checksum and head.
fn value_bytes(kind: char, bytes: &[u8], out: &mut String) {
    out.push(kind);
    if bytes.len() > LONG_VALUE_BYTES {
        let _ = write!(out, "[len={} fnv={:016x} head=", bytes.len(), fnv1a(bytes));
        escaped(&bytes[..32], out);
        out.push(']');
    } else {
        escaped(bytes, out);
    }
}

fn escaped(bytes: &[u8], out: &mut String) {
    out.push('"');
    for &byte in bytes {
        match byte {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7E => out.push(char::from(byte)),
            _ => {
                let _ = write!(out, "\\x{byte:02x}");
            }
        }
    }
    out.push('"');
}

/// 64-bit FNV-1a: a simple, dependency-free checksum for values and whole streams.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    fnv1a_extend(0xcbf2_9ce4_8422_2325, bytes)
}

pub fn fnv1a_extend(mut hash: u64, bytes: &[u8]) -> u64 {
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}
