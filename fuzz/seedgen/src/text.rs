//! Seeds of the text targets (`http_head`, `shape_query`, `subset_body`, `where_clause`):
//! requests, queries, bodies and clauses as clients send them, accepted and refused ones.

use std::path::Path;

use super::write;

fn seeds(corpus: &Path, target: &str, seeds: &[(&str, Vec<u8>)]) {
    let dir = corpus.join(target);
    std::fs::create_dir_all(&dir).expect("corpus directory");
    for (name, bytes) in seeds {
        write(&dir, name, bytes);
    }
}

/// `http_head`: byte 0 is the read size (0: everything at once), the rest the client's bytes.
pub fn http_head(corpus: &Path) {
    let wire = |step: u8, text: &str| {
        let mut input = vec![step];
        input.extend_from_slice(text.as_bytes());
        input
    };
    seeds(
        corpus,
        "http_head",
        &[
            (
                "get",
                wire(
                    0,
                    "GET /v1/shape?table=items&offset=-1 HTTP/1.1\r\nHost: localhost:3000\r\n\
                     User-Agent: electric-client\r\nAccept: */*\r\n\r\n",
                ),
            ),
            (
                "pipelined-keep-alive",
                wire(
                    7,
                    "GET /v1/shape?table=items&offset=0_0&handle=1-2&live=true HTTP/1.1\r\n\
                     Host: a\r\n\r\nPOST /v1/shape?table=items&offset=-1 HTTP/1.1\r\nHost: a\r\n\
                     Content-Type: application/json\r\nContent-Length: 27\r\n\r\n\
                     {\"subset\":{\"where\":\"id>1\"}}GET /health HTTP/1.1\r\n\r\n",
                ),
            ),
            (
                "chunked",
                wire(
                    1,
                    "POST /v1/shape?table=items&offset=-1 HTTP/1.1\r\nHost: a\r\n\
                     Transfer-Encoding: chunked\r\n\r\n5;ext=1\r\n{\"a\":\r\n3\r\n 1}\r\n\
                     0\r\nTrailer: x\r\n\r\n",
                ),
            ),
            (
                "http10-keep-alive",
                wire(
                    0,
                    "\r\n\r\nGET /v1/shape?table=t&offset=now HTTP/1.0\r\nConnection: keep-alive\r\n\
                     \r\nGET / HTTP/1.0\r\n\r\n",
                ),
            ),
            (
                "expect-continue",
                wire(
                    2,
                    "POST /v1/shape?table=t&offset=-1 HTTP/1.1\r\nExpect: 100-continue\r\n\
                     Content-Length: 2\r\nConnection: close\r\n\r\n{}",
                ),
            ),
            (
                "delete-bare-lf",
                wire(
                    3,
                    "DELETE /v1/shape?table=t&handle=1-2 HTTP/1.1\nHost: a\nX-Many: a, b\n\
                     x-many: c\n\n",
                ),
            ),
            (
                "absolute-form",
                wire(
                    0,
                    "GET http://example.com:3000/v1/shape?table=%22a%20b%22&offset=-1 HTTP/1.1\r\n\
                     Host: example.com\r\n\r\nOPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
                ),
            ),
            (
                "refused-framing",
                wire(
                    0,
                    "POST /v1/shape HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\
                     Transfer-Encoding: gzip, chunked\r\n\r\nhello",
                ),
            ),
            (
                "refused-line",
                wire(
                    5,
                    "BREW /pot HTTP/2.0\r\nFolded: a\r\n b\r\nBad Name: x\r\n\r\n",
                ),
            ),
        ],
    );
}

/// `shape_query`: the raw query string of a shape request.
pub fn shape_query(corpus: &Path) {
    let queries: &[(&str, &str)] = &[
        ("initial", "table=items&offset=-1"),
        (
            "live",
            "table=electric_test.%22issues%20for%201%22&offset=26800584_4&handle=3-4\
             &live=true&cursor=123&where=id%20%3E%20%241&params%5B1%5D=5&columns=id,%22Title%22\
             &replica=full&log=changes_only&secret=s&expired_handle=x&cache-buster=y",
        ),
        (
            "sse",
            "table=t&offset=0_inf&handle=1-2&live&live_sse=true&experimental_live_sse=false",
        ),
        ("now", "table=t&offset=now&handle=1-2&live=false"),
        (
            "params-map",
            "table=public.t&offset=-1&where=a=$1%20AND%20b=$2&params[1]=x&params[2]=%27y%27",
        ),
        (
            "params-json",
            "table=t&offset=-1&where=a%20IN%20($1)&params=%7B%221%22%3A%221%22%7D",
        ),
        (
            "subset",
            "table=t&offset=-1&subset__where=id>1&subset__order_by=id%20DESC\
             &subset__limit=10&subset__offset=0&subset__params[1]=3",
        ),
        (
            "unicode-table",
            "table=_val1d_sch%C3%ABma%CE%A6%24.%CE%A6t%C3%A0ble&offset=-1&columns=&replica=",
        ),
        (
            "invalid",
            "table=a.b.c&offset=0_-1&live=maybe&log=x&replica=y&handle=+&columns=,,",
        ),
        ("malformed", "table=%zz&offset=%&&=&a[b]=1&a[]=2&a=3"),
        (
            "compaction",
            "table=t&offset=-1&experimental_compaction=true&queryable_columns=id,t",
        ),
    ];
    let list: Vec<(&str, Vec<u8>)> = queries
        .iter()
        .map(|(name, query)| (*name, query.as_bytes().to_vec()))
        .collect();
    seeds(corpus, "shape_query", &list);
}

/// `subset_body`: the query string, `\n`, then the POST body.
pub fn subset_body(corpus: &Path) {
    let requests: &[(&str, &str, &str)] = &[
        (
            "body-subset",
            "table=items&offset=-1",
            r#"{"subset":{"where":"id > $1 AND title ILIKE $2","params":{"1":"5","2":"a%"},"order_by":"title desc nulls last, \"Mixed\", id ASC","limit":5,"offset":"2"}}"#,
        ),
        (
            "flat-body",
            "offset=-1",
            r#"{"table":"items","where":"id > 1","limit":3,"order_by":"id","params":{"1":"x"},"log":"changes_only"}"#,
        ),
        (
            "query-subset",
            "table=items&offset=-1&subset__where=done&subset__order_by=ts&subset__limit=1",
            "",
        ),
        (
            "params-string",
            "table=items&offset=-1",
            r#"{"subset":{"where":"u = $1 OR n > $2","params":"{\"1\":\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\",\"2\":1.5}"}}"#,
        ),
        (
            "arrays-enums",
            "table=items&offset=-1",
            r#"{"subset":{"where":"tags @> '{a}' AND mood = 'happy' AND ts > '2024-01-01'","order_by":"id","limit":"10"}}"#,
        ),
        (
            "invalid",
            "table=items&offset=-1",
            r#"{"subset":{"limit":"0","offset":-1,"where":3,"order_by":"lower(title)"}}"#,
        ),
        ("not-an-object", "table=items&offset=-1", r#"["subset"]"#),
        (
            "bad-json",
            "table=items&offset=-1",
            r#"{"subset": {"where": "#,
        ),
    ];
    let list: Vec<(&str, Vec<u8>)> = requests
        .iter()
        .map(|(name, query, body)| (*name, format!("{query}\n{body}").into_bytes()))
        .collect();
    seeds(corpus, "subset_body", &list);
}

/// `where_clause`: the clause, NUL, params split by `\x1f`, then NUL-separated rows of
/// `\x1f`-separated values (in the target's column order: id i2 i4 i8 n f f4 t title v c nm b
/// done d ts tsn u iv Mixed mood j by tm tags ta ia na da ba).
pub fn where_clause(corpus: &Path) {
    let row = |values: &[&str]| values.join("\x1f");
    let clauses: Vec<(&str, String)> = vec![
        ("compare", "id > 5 AND i2 <= i4 OR i8 <> -1".into()),
        (
            "params",
            format!(
                "id > $1 AND title LIKE $2\0{}\0{}",
                row(&["5", "a%"]),
                row(&["7", "1", "2", "3", "4.5", "1e10", "0.5", "abc", "abcdef"])
            ),
        ),
        (
            "arithmetic",
            "i4 + i2 * 3 >= i8 - 1 % 7 AND -f < 1.5e3 AND n / 3 <> 0 AND 10 / i4 > 0".into(),
        ),
        (
            "text",
            "t ILIKE '%AbC%' AND title NOT LIKE 'x\\_%' AND t || 'x' = 'abcx' AND \
             lower(v) = upper(c) AND length(nm) > 2 AND \"Mixed\" = 'M'"
                .into(),
        ),
        (
            "types",
            "u = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11' AND d < '2024-02-01' AND \
             ts >= '2024-01-05 10:00:00.5+02' AND tsn + iv < '2025-01-01' AND \
             iv > interval '1 day' AND mood = 'happy'"
                .into(),
        ),
        (
            "null-bool",
            format!(
                "(b IS TRUE) = (done IS NOT FALSE) AND NOT (t IS NULL) OR id IS DISTINCT FROM NULL\0\0{}",
                row(&["\x1e", "\x1e", "1", "\x1e"])
            ),
        ),
        (
            "in-coalesce",
            "COALESCE(i4, 0) IN (1, 2, 3) AND id NOT IN (4, 5) AND GREATEST(i2, i4, 5) > LEAST(id, 10)"
                .into(),
        ),
        (
            "arrays",
            "tags @> ARRAY['a'] AND ia && '{1,2}' AND id = ANY('{1,2,3}') AND \
             NOT (i2 < ALL(ia)) AND tags[1] = 'b' AND array_length(na, 1) = 2 AND \
             ta <@ '{x,NULL}' AND da IS NOT NULL AND ba = '{t,f}'"
                .into(),
        ),
        (
            "casts",
            "f::numeric > 1 AND n::float8 = f AND id::text = '1' AND t::int4 = 1 AND \
             f4 = 2.5 AND c::text = 'ab' AND '5'::int2 + i2 = 12"
                .into(),
        ),
        (
            "folding",
            "10 / 0 > 1 OR true AND coalesce(NULL, 2, i4) = 2 AND id > 1 - 1".into(),
        ),
        (
            "unsupported",
            "j->>'a' = '1' OR by = '\\x00' OR tm > '10:00' OR id IN (SELECT 1)".into(),
        ),
    ];
    let list: Vec<(&str, Vec<u8>)> = clauses
        .into_iter()
        .map(|(name, text)| (name, text.into_bytes()))
        .collect();
    seeds(corpus, "where_clause", &list);
}
