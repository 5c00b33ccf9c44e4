//! Black-box tests of the routes around the shape endpoint (protocol §1): root, health, 404,
//! CORS preflight and headers, HEAD, the `electric-server` header, and secret authentication
//! (including Plug's path normalization, which must not bypass it).

mod support;

use support::{cluster, Env, Opts, EXPOSE_HEADERS, JSON_CT};

const TABLE: &str = "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a');";
const PLUG_DEFAULT_CC: &str = "max-age=0, private, must-revalidate";
const SHAPE_METHODS: &str = "GET, POST, HEAD, DELETE, OPTIONS";

#[track_caller]
fn assert_cors(r: &support::Resp, origin: &str, methods: &str) {
    assert_eq!(r.header("access-control-allow-origin"), Some(origin));
    assert_eq!(
        r.header("access-control-expose-headers"),
        Some(EXPOSE_HEADERS)
    );
    assert_eq!(r.header("access-control-allow-methods"), Some(methods));
    assert!(!r.has("access-control-allow-credentials"));
}

#[track_caller]
fn assert_server_header(r: &support::Resp) {
    let v = r.h("electric-server");
    assert!(v.starts_with("ElectricSQL/"), "{v}");
}

#[test]
fn root_health_not_found_and_cors() {
    let cluster = cluster();
    let env = Env::start(&cluster, TABLE, Opts::default());
    let c = env.client();

    let root = c.get("/");
    root.expect(200);
    assert_eq!(root.status_line, "HTTP/1.1 200 OK");
    assert!(root.body.is_empty());
    assert_eq!(root.header("cache-control"), Some(PLUG_DEFAULT_CC));
    assert_cors(&root, "*", "GET, HEAD");
    assert_server_header(&root);

    let health = c.get("/v1/health");
    health.expect(200);
    assert_eq!(health.json(), serde_json::json!({"status": "active"}));
    assert_eq!(
        health.header("cache-control"),
        Some("no-cache, no-store, must-revalidate")
    );
    assert_eq!(health.header("content-type"), Some(JSON_CT));
    assert_server_header(&health);

    for path in ["/nonexistent", "/v1/shapes", "/v2/shape", "/v1/health/x"] {
        let nf = c.get(path);
        nf.expect(404);
        assert_eq!(nf.status_line, "HTTP/1.1 404 Not Found");
        assert_eq!(nf.body_str(), "Not found", "{path}");
        assert_cors(&nf, "*", "GET, HEAD");
        assert_server_header(&nf);
    }

    // One Origin is echoed; without one the wildcard is sent.
    let shape = c.get_with(
        "/v1/shape?table=t&offset=-1",
        &[("origin", "https://app.example.com")],
    );
    shape.expect(200);
    assert_cors(&shape, "https://app.example.com", SHAPE_METHODS);
    assert_server_header(&shape);
    let shape = c.get("/v1/shape?table=t&offset=-1");
    assert_cors(&shape, "*", SHAPE_METHODS);

    // Errors carry CORS headers too (only 401 does not).
    let bad = c.get_with("/v1/shape?table=t", &[("origin", "http://x.test")]);
    bad.expect(400);
    assert_cors(&bad, "http://x.test", SHAPE_METHODS);
    assert_server_header(&bad);
}

#[test]
fn options_preflight() {
    let cluster = cluster();
    let env = Env::start(&cluster, TABLE, Opts::default());
    let c = env.client();

    let r = c.request("OPTIONS", "/v1/shape?table=t", &[]);
    r.expect(204);
    assert_eq!(r.status_line, "HTTP/1.1 204 No Content");
    assert!(r.body.is_empty());
    assert_eq!(r.header("access-control-max-age"), Some("86400"));
    assert!(!r.has("cache-control"), "{:?}", r.headers);
    assert!(!r.has("access-control-allow-headers"));
    assert_cors(&r, "*", SHAPE_METHODS);
    assert_server_header(&r);

    // Each request-headers value is kept whole if it names if-none-match or traceparent
    // (case-insensitively); kept values are joined with ",".
    let r = c.request(
        "OPTIONS",
        "/v1/shape",
        &[
            ("origin", "https://app.example.com"),
            ("access-control-request-headers", "If-None-Match"),
            ("access-control-request-headers", "x-custom"),
            ("access-control-request-headers", "traceparent"),
        ],
    );
    r.expect(204);
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("If-None-Match,traceparent")
    );
    assert_cors(&r, "https://app.example.com", SHAPE_METHODS);

    // A comma list in one value is not split, so it matches neither name.
    let r = c.request(
        "OPTIONS",
        "/v1/shape",
        &[(
            "access-control-request-headers",
            "if-none-match, traceparent",
        )],
    );
    r.expect(204);
    assert!(!r.has("access-control-allow-headers"), "{:?}", r.headers);
    let r = c.request(
        "OPTIONS",
        "/v1/shape",
        &[("access-control-request-headers", "x-other")],
    );
    assert!(!r.has("access-control-allow-headers"));
}

#[test]
fn head_has_the_get_headers_and_no_body() {
    let cluster = cluster();
    let env = Env::start(&cluster, TABLE, Opts::default());
    let c = env.client();
    let get = c.get("/v1/shape?table=t&offset=-1");
    get.expect(200);
    assert!(!get.body.is_empty());
    let head = c.request("HEAD", "/v1/shape?table=t&offset=-1", &[]);
    head.expect(200);
    assert!(head.body.is_empty());
    assert_eq!(get.stable_headers(), head.stable_headers());

    let get = c.get("/v1/health");
    let head = c.request("HEAD", "/v1/health", &[]);
    head.expect(200);
    assert_eq!(get.stable_headers(), head.stable_headers());
}

#[test]
fn secret_is_required_on_every_spelling_of_the_shape_route() {
    let cluster = cluster();
    let opts = Opts {
        secret: Some("s3cr3t".into()),
        ..Opts::default()
    };
    let env = Env::start(&cluster, TABLE, opts);
    let c = env.client();
    let unauthorized = r#"{"message":"Unauthorized - Invalid API secret"}"#;

    let check_401 = |method: &str, target: &str| {
        let r = c.request(method, target, &[("origin", "https://app.example.com")]);
        assert_eq!(r.status, 401, "{method} {target}: {}", r.body_str());
        assert_eq!(r.status_line, "HTTP/1.1 401 Unauthorized");
        if method != "HEAD" {
            assert_eq!(r.body_str(), unauthorized, "{method} {target}");
        }
        // 401 is sent before the CORS plug runs.
        let cors: Vec<_> = r
            .headers
            .iter()
            .filter(|(k, _)| k.starts_with("access-control-"))
            .collect();
        assert!(cors.is_empty(), "{method} {target}: {cors:?}");
        assert_server_header(&r);
    };
    for target in [
        "/v1/shape?table=t&offset=-1",
        "/v1/shape?table=t&offset=-1&secret=wrong",
        "/v1/shape?table=t&offset=-1&secret=",
        "/v1/shape?table=t&offset=-1&secret=s3cr3t2",
        "/v1/shape?table=t&offset=-1&api_secret=wrong",
        "/v1//shape?table=t&offset=-1",
        "/v1/shape/?table=t&offset=-1",
        "/v1/%73hape?table=t&offset=-1",
        "/v1/shape",
    ] {
        check_401("GET", target);
    }
    check_401("HEAD", "/v1/shape?table=t&offset=-1");
    check_401("DELETE", "/v1/shape?table=t");
    check_401("DELETE", "/v1/shape?table=t&secret=wrong");

    for target in [
        "/v1/shape?table=t&offset=-1&secret=s3cr3t",
        "/v1/shape?table=t&offset=-1&api_secret=s3cr3t",
        "/v1//shape?table=t&offset=-1&secret=s3cr3t",
        "/v1/shape/?table=t&offset=-1&secret=s3cr3t",
        "/v1/%73hape?table=t&offset=-1&secret=s3cr3t",
    ] {
        let r = c.get(target);
        assert_eq!(r.status, 200, "{target}: {}", r.body_str());
        assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    }
    // Authenticated but invalid: the 400 shows authentication passed.
    c.get("/v1/shape?secret=s3cr3t").expect(400);
    c.request("DELETE", "/v1/shape?secret=s3cr3t", &[])
        .expect(400);

    // Never authenticated.
    c.get("/").expect(200);
    c.get("/v1/health").expect(200);
    c.get("/nonexistent").expect(404);
    c.request("OPTIONS", "/v1/shape", &[]).expect(204);
}

#[test]
fn post_without_body_is_a_shape_request_that_is_not_cached() {
    let cluster = cluster();
    let env = Env::start(&cluster, TABLE, Opts::default());
    let c = env.client();
    let get = c.get("/v1/shape?table=t&offset=-1");
    get.expect(200);
    let post = c.request(
        "POST",
        "/v1/shape?table=t&offset=-1",
        &[("content-length", "0")],
    );
    post.expect(200);
    assert_eq!(post.body, get.body);
    assert_eq!(post.handle(), get.handle());
    assert_eq!(post.h("cache-control"), "no-cache");
    assert!(!post.has("surrogate-control"));
}
