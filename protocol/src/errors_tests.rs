use super::*;

#[test]
fn bodies_match_the_reference() {
    let cases = [
        (
            unauthorized(),
            401,
            r#"{"message":"Unauthorized - Invalid API secret"}"#,
        ),
        (route_not_found(), 404, "Not found"),
        (
            delete_not_allowed(),
            405,
            r#"{"message":"DELETE not allowed"}"#,
        ),
        (
            no_existing_shape(),
            404,
            r#"{"message":"No existing shape found"}"#,
        ),
        (
            shape_definition_mismatch(),
            400,
            r#"{"message":"The specified shape definition and handle do not match. Please ensure the shape definition is correct or omit the shape handle from the request to obtain a new one."}"#,
        ),
        (
            connection_not_available(),
            503,
            r#"{"message":"Cannot connect to the database to verify the shape. Please try again later."}"#,
        ),
        (
            stack_not_ready("Timeout waiting for Postgres lock acquisition"),
            503,
            r#"{"message":"Timeout waiting for Postgres lock acquisition"}"#,
        ),
        (
            shape_creation_failed(),
            503,
            r#"{"message":"Failed to create shape, please retry"}"#,
        ),
        (
            snapshot_failed(SNAPSHOT_LOCK_TIMEOUT_MESSAGE),
            503,
            r#"{"message":"Snapshot timed out while waiting for a table lock"}"#,
        ),
        (
            snapshot_unexpected("boom"),
            500,
            r#"{"message":"Unexpected error while creating snapshot: boom"}"#,
        ),
        (
            database_unreachable(),
            503,
            r#"{"code":"database_unreachable","error":"Database is unreachable"}"#,
        ),
        (
            internal_error(),
            500,
            r#"{"error":"Internal server error"}"#,
        ),
        (
            body_not_object(),
            400,
            r#"{"error":"Request body must be a JSON object"}"#,
        ),
        (
            body_read_failed(),
            400,
            r#"{"error":"Failed to read request body"}"#,
        ),
        (
            body_too_large(),
            413,
            r#"{"error":"Request body too large"}"#,
        ),
    ];
    for (response, status, body) in cases {
        assert_eq!(response.status, status, "{body}");
        assert_eq!(response.body, body);
    }
}

#[test]
fn retry_after_and_known_error_headers() {
    assert_eq!(connection_not_available().header("retry-after"), Some("1"));
    assert_eq!(stack_not_ready("x").header("retry-after"), Some("5"));
    assert_eq!(shape_creation_failed().header("retry-after"), Some("1"));
    assert_eq!(long_poll_degraded("x").header("retry-after"), Some("10"));
    assert_eq!(database_unreachable().header("retry-after"), Some("10"));
    let snapshot = snapshot_failed("x");
    assert_eq!(snapshot.header("retry-after"), Some("10"));
    assert_eq!(
        snapshot.header("electric-internal-known-error"),
        Some("true")
    );
    assert_eq!(internal_error().extra_headers, []);
}

#[test]
fn admission_limit_body() {
    let response = admission_limit_exceeded("initial", 300, 7);
    assert_eq!(response.status, 503);
    assert_eq!(
        response.body,
        r#"{"code":"concurrent_request_limit_exceeded","message":"Concurrent initial request limit exceeded (limit: 300), please retry"}"#
    );
    assert_eq!(response.header("retry-after"), Some("7"));
    assert_eq!(response.header("cache-control"), Some("no-store"));
    assert_eq!(response.header("surrogate-control"), Some("no-store"));
}

#[test]
fn must_refetch_carries_the_active_handle() {
    let response = must_refetch(Some("123-456"));
    assert_eq!(response.status, 409);
    assert_eq!(response.body, r#"[{"headers":{"control":"must-refetch"}}]"#);
    assert_eq!(response.header("electric-handle"), Some("123-456"));
    assert_eq!(must_refetch(None).header("electric-handle"), None);
}

#[test]
fn json_details_are_escaped() {
    let response = invalid_json_body("unexpected byte at position 0: \"x\"");
    let parsed: serde_json::Value = serde_json::from_str(&response.body).unwrap();
    assert_eq!(parsed["error"], "Invalid JSON in request body");
    assert_eq!(parsed["details"], "unexpected byte at position 0: \"x\"");
    assert!(slow_snapshot_query_message(5000).contains("cancelled after 5000ms"));
}
