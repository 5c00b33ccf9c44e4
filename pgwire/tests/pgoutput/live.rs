//! Drift check against the running Postgres: capture a few scenarios afresh and compare their
//! masked rendering (LSNs, xids, timestamps and user oids replaced by placeholders) with the
//! masked rendering of the checked-in fixtures. A Postgres upgrade that changes the pgoutput
//! bytes of these scenarios fails here before the fixtures are re-captured.

use crate::golden::{assert_same_lines, decode_all, load};
use crate::render::Renderer;

#[test]
fn live_capture_matches_checked_in_fixtures() {
    let cluster = testkit::Cluster::start().expect("start Postgres");
    for name in ["v1_all_kinds", "v1_replica_identity", "v1_unchanged_toast"] {
        let scenario = testkit::capture::scenario(name).expect("known scenario");
        let db = cluster.create_database().expect("create database");
        let fresh = testkit::capture::capture(&db, scenario).expect("capture");
        let fresh_rendering = decode_all(&fresh, &mut Renderer::masked(), |_| {});
        let stored_rendering = decode_all(&load(name), &mut Renderer::masked(), |_| {});
        assert_same_lines(&stored_rendering, &fresh_rendering, name);
    }
}
