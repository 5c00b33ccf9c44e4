//! Response heads, HEAD handling and the iovec window over partially written responses.

use super::*;

fn written_bytes(outgoing: &Outgoing) -> Vec<u8> {
    outgoing
        .iovecs
        .iter()
        // SAFETY: each iovec points into `outgoing`, which is alive and unmodified here.
        .flat_map(|iovec| unsafe {
            std::slice::from_raw_parts(iovec.iov_base as *const u8, iovec.iov_len).to_vec()
        })
        .collect()
}

fn head_text(outgoing: &Outgoing) -> String {
    String::from_utf8(outgoing.head.clone()).unwrap()
}

#[test]
fn formats_imf_fixdate() {
    assert_eq!(&imf_fixdate(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
    assert_eq!(&imf_fixdate(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
    assert_eq!(&imf_fixdate(951_782_400), b"Tue, 29 Feb 2000 00:00:00 GMT");
    assert_eq!(
        &imf_fixdate(4_102_444_799),
        b"Thu, 31 Dec 2099 23:59:59 GMT"
    );
}

#[test]
fn encodes_parts_without_concatenating() {
    let parts = vec![
        Bytes::from_static(b"ab"),
        Bytes::new(),
        Bytes::from_static(b"cde"),
    ];
    let response = Response::new(200)
        .with_header("content-type", "application/json".to_owned())
        .with_header("Content-Length", "999".to_owned())
        .with_body(Body::Parts(parts));
    let outgoing = Outgoing::new(response, true, Persistence::KeepAlive);
    let head = head_text(&outgoing);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\ndate: "), "{head}");
    assert!(
        head.contains("\r\ncontent-type: application/json\r\n"),
        "{head}"
    );
    assert!(head.ends_with("\r\ncontent-length: 5\r\n\r\n"), "{head}");
    assert!(
        !head.contains("999"),
        "handler's content-length must be ignored"
    );
    assert_eq!(outgoing.iovecs.len(), 3, "head + two non-empty parts");
    assert!(written_bytes(&outgoing).ends_with(b"\r\n\r\nabcde"));
}

#[test]
fn head_requests_announce_length_without_body() {
    let response = Response::json(404, "{}").with_header("x", "a\r\nb".to_owned());
    let outgoing = Outgoing::new(response, false, Persistence::Close);
    let head = head_text(&outgoing);
    assert!(head.starts_with("HTTP/1.1 404 Not Found\r\n"));
    assert!(
        head.contains("\r\nx: a  b\r\n"),
        "line breaks in values are neutralised"
    );
    assert!(
        head.ends_with("content-length: 2\r\nconnection: close\r\n\r\n"),
        "{head}"
    );
    assert_eq!(written_bytes(&outgoing), outgoing.head);
}

#[test]
fn bodiless_statuses_have_no_length() {
    let response = Response::new(304).with_body(Body::Full(Bytes::from_static(b"x")));
    let outgoing = Outgoing::new(response, true, Persistence::KeepAliveLegacy);
    let head = head_text(&outgoing);
    assert!(!head.contains("content-length"), "{head}");
    assert!(head.ends_with("connection: keep-alive\r\n\r\n"));
    assert_eq!(written_bytes(&outgoing), outgoing.head);
}

#[test]
fn window_follows_partial_writes_and_caps_iovecs() {
    let parts: Vec<Bytes> = (0..3000u32)
        .map(|index| Bytes::from(vec![index as u8; 3]))
        .collect();
    let mut outgoing = Outgoing::new(
        Response::new(200).with_body(Body::Parts(parts)),
        true,
        Persistence::KeepAlive,
    );
    let mut sent = Vec::new();
    while !outgoing.is_done() {
        assert!(outgoing.iovecs.len() <= IOV_MAX);
        // Pretend the kernel takes an awkward amount each time.
        let window = written_bytes(&outgoing);
        let count = window.len().min(1001);
        sent.extend_from_slice(&window[..count]);
        outgoing.advance(count);
    }
    let head_len = outgoing.head.len();
    assert_eq!(sent.len(), head_len + 9000);
    for (index, chunk) in sent[head_len..].chunks(3).enumerate() {
        assert_eq!(chunk, [index as u8; 3]);
    }
}

#[test]
fn content_length_digits_and_server_owned_names() {
    for n in [0u64, 7, 10, 99, 1_000, 10_364, u64::MAX] {
        let mut out = Vec::new();
        push_decimal(&mut out, n);
        assert_eq!(out, n.to_string().into_bytes());
    }
    for name in ["date", "Connection", "CONTENT-LENGTH", "transfer-encoding"] {
        assert!(is_server_owned(name), "{name}");
    }
    for name in [
        "dates",
        "content-type",
        "etag",
        "connectio",
        "electric-handle",
    ] {
        assert!(!is_server_owned(name), "{name}");
    }
}

/// The memory bytes right before a file part are sent with `MSG_MORE` (they share the file's
/// first segment); memory after the last file part, or with no file part, is written plainly.
#[test]
fn the_window_before_a_file_part_is_marked() {
    let path = std::env::temp_dir().join(format!("ampere-encode-{}", std::process::id()));
    std::fs::write(&path, b"[{\"a\":1}]").unwrap();
    let file = std::sync::Arc::new(std::fs::File::open(&path).unwrap());
    let range = |offset, len| {
        Part::File(FileRange {
            file: file.clone(),
            offset,
            len,
        })
    };
    // `[` from memory, the entries from the file, a control message and `]` from memory.
    let body = Body::Mixed(vec![
        Part::Mem(Bytes::from_static(b"[")),
        range(1, 7),
        Part::Mem(Bytes::from_static(b",{}]")),
    ]);
    let mut outgoing = Outgoing::new(
        Response::new(200).with_body(body),
        true,
        Persistence::KeepAlive,
    );
    let head_len = outgoing.head.len();
    assert!(
        outgoing.window_before_file(),
        "head and `[` precede the file"
    );
    assert!(outgoing.file_at_cursor().is_none());
    outgoing.advance(head_len);
    assert!(outgoing.window_before_file(), "`[` still precedes the file");
    outgoing.advance(1);
    let at = outgoing.file_at_cursor().expect("the file part is next");
    assert_eq!((at.offset, at.len), (1, 7));
    outgoing.advance(7);
    assert!(
        !outgoing.window_before_file(),
        "nothing from a file follows"
    );
    assert_eq!(written_bytes(&outgoing), b",{}]");

    // A whole chunk: the head, then one file range.
    let mut outgoing = Outgoing::new(
        Response::new(200).with_body(Body::Mixed(vec![range(0, 9)])),
        true,
        Persistence::KeepAlive,
    );
    assert!(outgoing.window_before_file());
    let head_len = outgoing.head.len();
    outgoing.advance(head_len);
    assert_eq!(outgoing.file_at_cursor().expect("file").len, 9);
    // HEAD: no body parts, nothing to hold back.
    let outgoing = Outgoing::new(
        Response::new(200).with_body(Body::Mixed(vec![range(0, 9)])),
        false,
        Persistence::KeepAlive,
    );
    assert!(!outgoing.window_before_file());
    std::fs::remove_file(&path).unwrap();
}
