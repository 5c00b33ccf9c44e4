//! Black-box tests of a shape's life (protocol §2.4, §3, §6.3, §6.8): 409 must-refetch rules,
//! TRUNCATE rotation, `DELETE /v1/shape`, out-of-bounds offsets, and chunking of the snapshot and
//! of a large live burst (identical URLs must give identical bytes).

mod support;

use serde_json::json;
use std::time::Duration;
use support::json::raw_items;
use support::{
    cluster, is_handle, spawn, up_to_date_lsn, Env, Follower, Opts, Resp, CC_409, JSON_CT,
    MUST_REFETCH,
};

const ITEMS: &str = "CREATE TABLE items (id int PRIMARY KEY, v text); \
                     INSERT INTO items VALUES (1, 'a'), (2, 'b');";

/// Checks a 409 must-refetch and returns the handle it points at.
#[track_caller]
fn assert_must_refetch(r: &Resp) -> String {
    assert_eq!(r.status, 409, "{:?} {}", r.headers, r.body_str());
    assert_eq!(r.status_line, "HTTP/1.1 409 Conflict");
    assert_eq!(r.body_str(), MUST_REFETCH);
    assert_eq!(r.h("content-type"), JSON_CT);
    assert_eq!(r.h("cache-control"), CC_409);
    assert!(!r.has("surrogate-control"), "{:?}", r.headers);
    assert!(!r.has("electric-cursor"));
    assert!(!r.has("electric-schema"));
    let handle = r.handle();
    assert!(is_handle(&handle), "{handle}");
    // Upstream builds error responses from default params, hence the empty offsets.
    assert_eq!(r.h("etag"), format!("\"{handle}::\""));
    handle
}

#[test]
fn conflicting_handles_get_409_with_the_active_handle() {
    let cluster = cluster();
    let env = Env::start(&cluster, ITEMS, Opts::default());
    let c = env.client();

    // No shape yet: the 409 creates one and points at it.
    let r = c.get("/v1/shape?table=items&offset=0_0&handle=nonexistent&unrelated=foo");
    let created = assert_must_refetch(&r);
    let first = c.get("/v1/shape?table=items&offset=-1");
    first.expect(200);
    assert_eq!(first.handle(), created);

    // A shape exists: the 409 points at it.
    let r = c.get("/v1/shape?table=items&offset=0_0&handle=123-456");
    assert_eq!(assert_must_refetch(&r), created);
    let r = c.get("/v1/shape?table=items&offset=0_0&handle=123-456&live=true");
    assert_eq!(assert_must_refetch(&r), created);

    // The handle of another definition (a WHERE clause) is a mismatch too.
    let filtered = c.get(&format!(
        "/v1/shape?table=items&offset=-1&where={}",
        support::enc("v ILIKE 'yes%'")
    ));
    filtered.expect(200);
    let fh = filtered.handle();
    assert_ne!(fh, created);
    let r = c.get(&format!("/v1/shape?table=items&offset=0_0&handle={fh}"));
    assert_eq!(assert_must_refetch(&r), created);

    // `handle` is ignored with offset -1.
    let r = c.get(&format!("/v1/shape?table=items&offset=-1&handle={fh}"));
    r.expect(200);
    assert_eq!(r.handle(), created);
}

#[test]
fn truncate_rotates_the_shape() {
    let cluster = cluster();
    let env = Env::start(&cluster, ITEMS, Opts::default());
    let (mut f, _) = Follower::start(env.client(), "table=items");
    let old = f.handle.clone();
    let r = f.live_during(&env.db, "INSERT INTO items VALUES (3, 'c')");
    r.expect(200);

    let r = f.live_during(&env.db, "TRUNCATE items");
    assert_eq!(r.status, 409, "{}", r.body_str());
    assert_eq!(r.body_str(), MUST_REFETCH);

    let r = env.client().get(&f.url(false));
    let new = assert_must_refetch(&r);
    assert_ne!(new, old);
    let (mut g, first) = Follower::start(env.client(), "table=items");
    assert_eq!(g.handle, new);
    let items = first.items();
    assert_eq!(items.len(), 1, "{}", first.body_str());
    assert_eq!(items[0]["headers"]["control"], "snapshot-end");

    let r = g.live_during(&env.db, "INSERT INTO items VALUES (4, 'd')");
    r.expect(200);
    let items = r.items();
    assert_eq!(items.len(), 2, "{}", r.body_str());
    assert_eq!(items[0]["value"], json!({"id": "4", "v": "d"}));
}

#[test]
fn delete_by_definition_and_by_handle() {
    let cluster = cluster();
    let metrics = support::lease_port();
    let env = Env::start(
        &cluster,
        ITEMS,
        Opts {
            env: vec![("ELECTRIC_PROMETHEUS_PORT", metrics.port().to_string())],
            ..Opts::default()
        },
    );
    let held = || {
        support::metric(
            metrics.port(),
            "ampere_live_connections{mode=\"long_poll\"}",
        )
    };
    let c = env.client();
    let del = |q: &str| c.request("DELETE", &format!("/v1/shape?{q}"), &[]);

    // Nothing to delete yet; deletion never creates a shape.
    let r = del("table=items");
    assert_eq!(r.status, 404, "{}", r.body_str());
    assert_eq!(r.json(), json!({"message": "No existing shape found"}));
    assert_eq!(r.h("cache-control"), "no-cache");

    let (f, _) = Follower::start(c, "table=items");
    // A long-poll held on the shape is answered with a 409 when the shape is deleted.
    let url = f.url(true);
    let waiter = spawn(move || c.get(&url));
    // The DELETE must find it held (a long-poll arriving after the deletion would get a 409
    // too, and prove nothing).
    support::wait_until("the long-poll to be held", Duration::from_secs(30), || {
        held() == 1.0
    });
    let r = del("table=items");
    assert_eq!(r.status, 202, "{}", r.body_str());
    assert_eq!(r.status_line, "HTTP/1.1 202 Accepted");
    assert!(r.body.is_empty());
    assert_eq!(r.h("cache-control"), "no-cache");
    let answered = waiter.join();
    assert_eq!(answered.status, 409, "{}", answered.body_str());
    assert_eq!(held(), 0.0);

    let r = c.get(&f.url(false));
    let second = assert_must_refetch(&r);
    assert_ne!(second, f.handle);
    assert_eq!(del("table=items").status, 202);
    assert_eq!(del("table=items").status, 404);

    // By handle only.
    let (g, _) = Follower::start(c, "table=items");
    let r = del(&format!("handle={}", g.handle));
    assert_eq!(r.status, 202, "{}", r.body_str());
    assert_eq!(del(&format!("handle={}", g.handle)).status, 404);
    assert_must_refetch(&c.get(&g.url(false)));

    // Definition and handle must agree.
    let (h, _) = Follower::start(c, "table=items");
    let r = del("table=items&handle=123-456");
    assert_eq!(r.status, 400, "{}", r.body_str());
    assert_eq!(
        r.json(),
        json!({"message": "The specified shape definition and handle do not match. Please ensure the shape definition is correct or omit the shape handle from the request to obtain a new one."})
    );
    assert_eq!(r.h("cache-control"), "no-cache");
    assert_eq!(del(&format!("table=items&handle={}", h.handle)).status, 202);

    // Neither a definition nor a handle.
    let r = del("");
    assert_eq!(r.status, 400, "{}", r.body_str());
    assert_eq!(
        r.json(),
        json!({"message": "Invalid request", "errors": {"handle": ["can't be blank when shape definition is missing"]}})
    );
    assert_eq!(r.h("cache-control"), "no-cache");
}

#[test]
fn delete_is_405_without_integration_testing() {
    let cluster = cluster();
    let opts = Opts {
        integration_testing: false,
        ..Opts::default()
    };
    let env = Env::start(&cluster, ITEMS, opts);
    let c = env.client();
    let (f, _) = Follower::start(c, "table=items");
    let r = c.request("DELETE", "/v1/shape?table=items", &[]);
    assert_eq!(r.status, 405, "{}", r.body_str());
    assert_eq!(r.body_str(), r#"{"message":"DELETE not allowed"}"#);
    // The shape is untouched.
    c.get(&f.url(false)).expect(200);
}

#[test]
fn offset_beyond_the_log_is_400_after_half_the_long_poll() {
    let cluster = cluster();
    let env = Env::start(&cluster, ITEMS, Opts::default());
    let (f, _) = Follower::start(env.client(), "table=items");
    for live in ["", "&live=true"] {
        let r = env.client().get(&format!(
            "/v1/shape?table=items&handle={}&offset=999999999999_0{live}",
            f.handle
        ));
        assert_eq!(r.status, 400, "{}", r.body_str());
        assert_eq!(
            r.json(),
            json!({"message": "Invalid request", "errors": {"offset": ["out of bounds for this shape"]}})
        );
        assert_eq!(r.h("cache-control"), "no-store");
        assert_eq!(r.h("surrogate-control"), "no-store");
    }
}

const THRESHOLD: usize = 1000;

/// The change/insert items of a response (control messages dropped), raw bytes.
fn data_items(r: &Resp) -> Vec<Vec<u8>> {
    raw_items(&r.body)
        .into_iter()
        .filter(|raw| {
            let v: serde_json::Value = serde_json::from_slice(raw).expect("item JSON");
            v.get("key").is_some()
        })
        .map(<[u8]>::to_vec)
        .collect()
}

/// A closed chunk reaches the threshold with its last item and not before (tolerant of whether
/// the separator byte is counted).
#[track_caller]
fn assert_closed_chunk(items: &[Vec<u8>]) {
    assert!(!items.is_empty());
    let with_sep: usize = items.iter().map(|i| i.len() + 1).sum();
    let before_last: usize = items[..items.len() - 1].iter().map(Vec::len).sum();
    assert!(
        with_sep >= THRESHOLD,
        "chunk of {with_sep} bytes ended early"
    );
    assert!(
        before_last < THRESHOLD,
        "chunk went on after {before_last} bytes"
    );
}

fn ids(items: &[Vec<u8>]) -> Vec<String> {
    items
        .iter()
        .map(|raw| {
            let v: serde_json::Value = serde_json::from_slice(raw).expect("item JSON");
            v["value"]["id"].as_str().expect("id").to_string()
        })
        .collect()
}

#[test]
fn snapshot_and_live_burst_are_chunked_reproducibly() {
    let cluster = cluster();
    let opts = Opts {
        chunk_bytes: Some(THRESHOLD as u64),
        ..Opts::default()
    };
    let env = Env::start(
        &cluster,
        "CREATE TABLE big (id int PRIMARY KEY, pad text NOT NULL);
         INSERT INTO big SELECT g, repeat('x', 250) FROM generate_series(1, 10) g;",
        opts,
    );
    let c = env.client();

    // Snapshot: chunk n is served at offset 0_n; only the last one ends up-to-date.
    let (mut f, first) = Follower::start(c, "table=big");
    let mut responses: Vec<(String, Resp)> = vec![("/v1/shape?table=big&offset=-1".into(), first)];
    for n in 1..=20 {
        let last = &responses.last().expect("a response").1;
        if last.has("electric-up-to-date") {
            break;
        }
        assert_eq!(last.offset(), format!("0_{}", n - 1));
        let url = f.url(false);
        let r = f.next(false);
        r.expect(200);
        responses.push((url, r));
    }
    let (last_url, last) = responses.last().expect("a response");
    assert!(last.has("electric-up-to-date"), "never up to date");
    assert!(
        responses.len() >= 3,
        "10 rows of ~360 bytes fit in one chunk?"
    );
    let mut all = Vec::new();
    for (i, (url, r)) in responses.iter().enumerate() {
        let items = data_items(r);
        if i + 1 < responses.len() {
            assert!(!r.has("electric-up-to-date"), "{url}");
            assert_closed_chunk(&items);
        }
        all.extend(items);
    }
    let expected: Vec<String> = (1..=10).map(|i| i.to_string()).collect();
    assert_eq!(ids(&all), expected);
    let tail = last.items();
    assert_eq!(tail[tail.len() - 2]["headers"]["control"], "snapshot-end");
    up_to_date_lsn(&tail[tail.len() - 1]);
    for (url, r) in &responses {
        let again = c.get(url);
        assert_eq!(again.body, r.body, "{url}");
        assert_eq!(again.offset(), r.offset(), "{url}");
    }
    let _ = last_url;

    // A burst of ten ~420-byte changes in one transaction spans several chunks; each response
    // stops at a chunk boundary and only the last is up-to-date.
    let live_url = f.url(true);
    let live = f.live_during(
        &env.db,
        "INSERT INTO big SELECT g, repeat('y', 250) FROM generate_series(11, 20) g",
    );
    live.expect(200);
    let mut burst: Vec<(String, Resp)> = vec![(live_url, live)];
    for _ in 0..20 {
        if burst
            .last()
            .expect("a response")
            .1
            .has("electric-up-to-date")
        {
            break;
        }
        let url = f.url(false);
        let r = f.next(false);
        r.expect(200);
        burst.push((url, r));
    }
    assert!(burst.len() >= 3, "burst was not split: {}", burst.len());
    let mut changes = Vec::new();
    for (i, (url, r)) in burst.iter().enumerate() {
        let items = data_items(r);
        if i + 1 < burst.len() {
            assert!(!r.has("electric-up-to-date"), "{url}");
            assert_closed_chunk(&items);
        } else {
            assert!(r.has("electric-up-to-date"), "{url}");
        }
        changes.extend(items);
    }
    let expected: Vec<String> = (11..=20).map(|i| i.to_string()).collect();
    assert_eq!(ids(&changes), expected);
    let values: Vec<serde_json::Value> = changes
        .iter()
        .map(|raw| serde_json::from_slice(raw).expect("item JSON"))
        .collect();
    for (i, v) in values.iter().enumerate() {
        assert_eq!(v["headers"]["lsn"], values[0]["headers"]["lsn"]);
        assert_eq!(v["headers"]["op_position"], json!(2 * i));
        assert_eq!(v["headers"].get("last").is_some(), i == 9, "{v}");
    }
    // The same URLs give the same bytes (the live one too, now that its data exists).
    for (url, r) in &burst {
        let again = c.get(url);
        again.expect(200);
        assert_eq!(again.body, r.body, "{url}");
        assert_eq!(again.offset(), r.offset(), "{url}");
        assert_eq!(again.header("etag"), r.header("etag"), "{url}");
    }
}
