//! `ELECTRIC_MAX_SHAPES`: past the limit the least recently used shape is evicted; its handle
//! then gets 409 must-refetch and a fresh request rebuilds it.

mod support;

use support::{cluster, Env, Opts};

const ITEMS: &str = "CREATE TABLE items (id int PRIMARY KEY, v text); \
                     INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 10) g;";

#[test]
fn least_recently_used_shape_is_evicted_past_max_shapes() {
    let cluster = cluster();
    let opts = Opts {
        max_shapes: Some(2),
        ..Opts::default()
    };
    let env = Env::start(&cluster, ITEMS, opts);
    let c = env.client();
    let url = |w: &str| format!("/v1/shape?table=items&offset=-1&where={}", support::enc(w));
    let a = c.get(&url("id < 3"));
    assert_eq!(a.status, 200);
    let b = c.get(&url("id < 5"));
    assert_eq!(b.status, 200);
    // Use A again so B is the least recently used when C arrives.
    let a_again = c.get(&format!(
        "/v1/shape?table=items&offset=0_0&handle={}&where={}",
        a.handle(),
        support::enc("id < 3")
    ));
    assert_eq!(a_again.status, 200, "{}", a_again.body_str());
    let cc = c.get(&url("id < 7"));
    assert_eq!(cc.status, 200);
    let use_a = || {
        c.get(&format!(
            "/v1/shape?table=items&offset=0_0&handle={}&where={}",
            a.handle(),
            support::enc("id < 3")
        ))
    };
    // A was used after B, so creating C evicted B, not A.
    let a_third = use_a();
    assert_eq!(a_third.status, 200, "{}", a_third.body_str());
    let b_again = c.get(&format!(
        "/v1/shape?table=items&offset=0_0&handle={}&where={}",
        b.handle(),
        support::enc("id < 5")
    ));
    assert_eq!(b_again.status, 409, "{}", b_again.body_str());
    assert_ne!(
        b_again.handle(),
        b.handle(),
        "409 points at a rebuilt shape"
    );
    // Rebuilding B evicted the least recently used of A and C: C (A was just used).
    assert_eq!(use_a().status, 200);
    let c_again = c.get(&format!(
        "/v1/shape?table=items&offset=0_0&handle={}&where={}",
        cc.handle(),
        support::enc("id < 7")
    ));
    assert_eq!(c_again.status, 409, "{}", c_again.body_str());
    assert_eq!(a.items().len(), 3, "two rows and snapshot-end");
}
