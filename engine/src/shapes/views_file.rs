//! The views of a subquery shape as its log's cut payload (`storage::log_cut`): per
//! dependency, the values the shape's view held at the cut, so a restart (clean or not)
//! brings the shape back with its handle (`docs/subqueries.md`, "Restarts").
//!
//! Format: `AMPVIEWS2`, the dependency count, per dependency its key and values (each
//! length-prefixed, little endian). The cut file carries the checksum.

use super::subquery::Value;

const MAGIC: &[u8] = b"AMPVIEWS2";

/// Per dependency: its key and the values the shape's view held.
pub type Views = Vec<(String, Vec<Value>)>;

pub fn encode(views: &Views) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(views.len() as u64).to_le_bytes());
    for (key, values) in views {
        push_bytes(&mut out, key.as_bytes());
        out.extend_from_slice(&(values.len() as u64).to_le_bytes());
        for v in values {
            push_bytes(&mut out, v);
        }
    }
    out
}

fn push_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// `None`: not views this build wrote.
pub fn decode(bytes: &[u8]) -> Option<Views> {
    let mut r = Reader(bytes.strip_prefix(MAGIC)?);
    let deps = r.u64()?;
    let mut views = Vec::new();
    for _ in 0..deps {
        let key = String::from_utf8(r.bytes()?.to_vec()).ok()?;
        let count = r.u64()?;
        let mut values = Vec::new();
        for _ in 0..count {
            values.push(Value::from(r.bytes()?));
        }
        views.push((key, values));
    }
    r.0.is_empty().then_some(views)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn u64(&mut self) -> Option<u64> {
        let (head, rest) = self.0.split_at_checked(8)?;
        self.0 = rest;
        Some(u64::from_le_bytes(head.try_into().ok()?))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.u64()?).ok()?;
        let (head, rest) = self.0.split_at_checked(len)?;
        self.0 = rest;
        Some(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let views: Views = vec![
            (
                "1|SELECT".into(),
                vec![Value::from(&b"\x01a"[..]), Value::from(&b""[..])],
            ),
            ("2|x".into(), vec![]),
        ];
        let bytes = encode(&views);
        assert_eq!(decode(&bytes), Some(views));
        for len in 0..bytes.len() {
            assert_eq!(decode(&bytes[..len]), None, "prefix of {len} bytes");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode(&longer), None);
    }
}
