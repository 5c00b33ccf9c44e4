//! Head parsing: framing, persistence and rejection of ambiguous or malformed heads.

use super::*;

fn head(text: &str) -> Result<Head, HeadError> {
    let bytes = text.as_bytes();
    let end = find_head_end(bytes, 0).expect("test heads are complete");
    assert_eq!(end, bytes.len(), "test heads end at the empty line");
    parse_head(bytes)
}

#[test]
fn finds_head_end_with_either_line_ending() {
    assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r\nrest", 0), Some(18));
    assert_eq!(find_head_end(b"GET / HTTP/1.1\n\nrest", 0), Some(16));
    assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nHost: a\r\n", 0), None);
    assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r", 0), None);
    assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n", 0), None);
    // Resuming from a later offset finds the same end.
    assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r\n", 13), Some(18));
}

#[test]
fn parses_path_query_and_headers() {
    let parsed =
        head("GET /v1/shape?table=items&offset=-1 HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nx-a: 2\r\n\r\n")
            .unwrap();
    assert_eq!(parsed.request.method, Method::Get);
    assert_eq!(parsed.request.path(), "/v1/shape");
    assert_eq!(parsed.request.query(), "table=items&offset=-1");
    assert_eq!(parsed.request.header("host"), Some("x"));
    assert_eq!(
        parsed.request.headers_all("x-a").collect::<Vec<_>>(),
        ["1", "2"]
    );
    assert_eq!(parsed.framing, Framing::Length(0));
    assert!(parsed.keep_alive);
    assert!(!parsed.expect_continue);
}

#[test]
fn reduces_absolute_targets_to_their_path() {
    let parsed = head("GET http://example.com/a/b?c=d HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(
        (parsed.request.path(), parsed.request.query()),
        ("/a/b", "c=d")
    );
    let parsed = head("GET http://example.com HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(parsed.request.path(), "/");
    let parsed = head("GET http://example.com?x=1 HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(
        (parsed.request.path(), parsed.request.query()),
        ("/", "x=1")
    );
}

#[test]
fn invalid_utf8_in_header_values_is_replaced_and_the_rest_still_read() {
    let bytes = b"GET /p?q=1 HTTP/1.1\r\nX-Bin: a\xff\xfeb\r\nHost: h\r\n\r\n";
    let parsed = parse_head(bytes).unwrap();
    assert_eq!(parsed.request.header("x-bin"), Some("a\u{fffd}\u{fffd}b"));
    assert_eq!(parsed.request.header("HOST"), Some("h"));
    assert_eq!(
        (parsed.request.path(), parsed.request.query()),
        ("/p", "q=1")
    );
    let names: Vec<_> = parsed.request.headers().map(|(name, _)| name).collect();
    assert_eq!(names, ["X-Bin", "Host"]);
}

#[test]
fn persistence_follows_version_and_connection_header() {
    assert!(!head("GET / HTTP/1.0\r\n\r\n").unwrap().keep_alive);
    assert!(
        head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
            .unwrap()
            .keep_alive
    );
    assert!(
        !head("GET / HTTP/1.1\r\nConnection: foo, close\r\n\r\n")
            .unwrap()
            .keep_alive
    );
}

#[test]
fn framing_by_length_and_chunked() {
    let parsed = head("POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n").unwrap();
    assert_eq!(parsed.framing, Framing::Length(12));
    let parsed = head("POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n").unwrap();
    assert_eq!(parsed.framing, Framing::Length(5));
    let parsed = head("POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n").unwrap();
    assert_eq!(parsed.framing, Framing::Chunked);
    let parsed = head("POST / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n").unwrap();
    assert!(parsed.expect_continue);
}

#[test]
fn refuses_ambiguous_framing() {
    let cases = [
        (
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            400,
        ),
        ("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n", 400),
        (
            "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            400,
        ),
        (
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
        ),
        ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            501,
        ),
    ];
    for (text, status) in cases {
        assert_eq!(head(text).unwrap_err().status(), status, "{text:?}");
    }
}

#[test]
fn refuses_malformed_heads() {
    for text in [
        "garbage\r\n\r\n",
        "GET / HTTP/9.9\r\n\r\n",
        "GET nopath HTTP/1.1\r\n\r\n",
    ] {
        assert_eq!(head(text).unwrap_err().status(), 400, "{text:?}");
    }
}

#[test]
fn too_many_headers_is_431() {
    let mut text = String::from("GET / HTTP/1.1\r\n");
    for index in 0..=MAX_HEADERS {
        text.push_str(&format!("x-{index}: v\r\n"));
    }
    text.push_str("\r\n");
    assert_eq!(head(&text).unwrap_err(), HeadError::TooLarge);
}
