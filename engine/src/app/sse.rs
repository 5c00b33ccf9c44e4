//! Server-sent events framing of a live response (`live_sse=true`, §5.7): every log entry is a
//! `data: <json>` event, the batch ends with an up-to-date event when it reaches the log end.
//!
//! When data is already available the response is that batch, framed as events, after which the
//! response ends (as upstream does); otherwise the response streams (see `sse_stream`).

use bytes::Bytes;

/// Splits comma-joined JSON values (as the log stores them) at their top-level commas.
pub fn split_entries(buf: &Bytes, out: &mut Vec<Bytes>) {
    let (mut depth, mut in_str, mut escaped, mut start) = (0i32, false, false, 0usize);
    for (i, &b) in buf.iter().enumerate() {
        if in_str {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth -= 1,
            b',' if depth == 0 => {
                if i > start {
                    out.push(buf.slice(start..i));
                }
                start = i + 1;
            }
            _ => {}
        }
    }
    if buf.len() > start {
        out.push(buf.slice(start..));
    }
}

/// The event-stream body: one `data:` event per entry, then `up_to_date` (already encoded) if
/// given, in one buffer (copied once, then shared by every subscriber of the batch).
pub fn frame(parts: &[Bytes], up_to_date: Option<Vec<u8>>) -> Bytes {
    let mut entries = Vec::new();
    for p in parts {
        split_entries(p, &mut entries);
    }
    let size = entries.iter().map(|e| e.len() + 8).sum::<usize>()
        + up_to_date.as_ref().map_or(0, |u| u.len() + 8);
    let mut body = Vec::with_capacity(size);
    for e in entries.iter().map(|e| &e[..]).chain(up_to_date.as_deref()) {
        body.extend_from_slice(b"data: ");
        body.extend_from_slice(e);
        body.extend_from_slice(b"\n\n");
    }
    Bytes::from(body)
}

/// The comment an SSE stream sends after `sse_keepalive` of silence.
pub const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_top_level_commas_only() {
        let buf = Bytes::from_static(br#"{"a":"x,y","b":[1,2]},{"c":{"d":","}},{"e":"\",\\"}"#);
        let mut out = Vec::new();
        split_entries(&buf, &mut out);
        let got: Vec<&[u8]> = out.iter().map(|b| &b[..]).collect();
        assert_eq!(
            got,
            vec![
                &br#"{"a":"x,y","b":[1,2]}"#[..],
                &br#"{"c":{"d":","}}"#[..],
                &br#"{"e":"\",\\"}"#[..]
            ]
        );
        let framed = frame(
            &[buf, Bytes::from_static(b","), Bytes::from_static(b"{}")],
            Some(b"{\"u\":1}".to_vec()),
        );
        assert_eq!(
            String::from_utf8(framed.to_vec()).unwrap(),
            "data: {\"a\":\"x,y\",\"b\":[1,2]}\n\ndata: {\"c\":{\"d\":\",\"}}\n\ndata: {\"e\":\"\\\",\\\\\"}\n\ndata: {}\n\ndata: {\"u\":1}\n\n"
        );
    }
}
