//! Golden tests over pgoutput streams captured from a real Postgres 15 (see
//! `testkit::capture` for the scenarios). Each test decodes a checked-in capture, compares the
//! rendering with `tests/fixtures/<scenario>.expected` exactly, and checks that the stream
//! really shows what the scenario is about, so an accidentally empty fixture fails.
//!
//! Re-capture all fixtures (needs Postgres; rewrites the captures and their expectations):
//!
//! ```text
//! cargo test -p pgwire --test pgoutput -- --ignored recapture_fixtures
//! ```
//!
//! After a deliberate change to the rendering only, `SNAP_UPDATE=1 cargo test -p pgwire
//! --test pgoutput` rewrites the expectations from the existing captures.

use std::collections::BTreeSet;

use pgwire::pgoutput::{
    Message, OldTuple, TupleValue, TRUNCATE_CASCADE, TRUNCATE_RESTART_IDENTITY,
};

use crate::golden::{self, check_expected, decode_all, kind, load, Summary};
use crate::render::Renderer;

/// Decodes a text fixture, compares it with its expectation and returns the kinds seen.
fn golden_text(name: &str, visit: impl FnMut(&Message<'_>)) {
    let capture = load(name);
    assert!(!capture.messages.is_empty(), "{name} has messages");
    let rendered = decode_all(&capture, &mut Renderer::exact(), visit);
    check_expected(name, "expected", &rendered, false);
}

fn kinds_of(name: &str) -> BTreeSet<&'static str> {
    let mut kinds = BTreeSet::new();
    golden_text(name, |m| {
        kinds.insert(kind(m));
    });
    kinds
}

#[test]
fn all_kinds_fixture_has_every_v1_message() {
    let kinds = kinds_of("v1_all_kinds");
    let wanted = [
        "begin", "commit", "origin", "relation", "type", "insert", "update", "delete", "truncate",
        "message",
    ];
    for kind in wanted {
        assert!(kinds.contains(kind), "v1_all_kinds lacks {kind}: {kinds:?}");
    }
}

#[test]
fn column_types_fixture_shows_text_values_and_enum_type() {
    let (mut widest, mut saw_type) = (0, false);
    golden_text("v1_column_types", |m| match m {
        Message::Relation(r) => widest = widest.max(r.columns.len()),
        Message::Type(t) => saw_type |= t.name == "mood",
        _ => {}
    });
    assert_eq!(widest, 17, "the everything table has 17 columns");
    assert!(saw_type, "the enum column announces its type");
}

#[test]
fn replica_identity_fixture_shows_key_and_full_old_tuples() {
    let mut shapes = BTreeSet::new();
    golden_text("v1_replica_identity", |m| match m {
        Message::Update(u) => {
            shapes.insert(match u.old {
                None => "update-no-old",
                Some(OldTuple::Key(_)) => "update-key",
                Some(OldTuple::Full(_)) => "update-full",
            });
        }
        Message::Delete(d) => {
            shapes.insert(match d.old {
                OldTuple::Key(_) => "delete-key",
                OldTuple::Full(_) => "delete-full",
            });
        }
        _ => {}
    });
    let wanted = [
        "update-no-old",
        "update-key",
        "update-full",
        "delete-key",
        "delete-full",
    ];
    assert_eq!(shapes, wanted.into_iter().collect());
}

#[test]
fn unchanged_toast_fixture_marks_untouched_large_value() {
    let mut unchanged = 0;
    golden_text("v1_unchanged_toast", |m| {
        if let Message::Update(u) = m {
            let count = u
                .new
                .columns
                .iter()
                .filter(|v| **v == TupleValue::UnchangedToast);
            unchanged += count.count();
        }
    });
    assert_eq!(
        unchanged, 1,
        "only the title update leaves the TOASTed body out"
    );
}

#[test]
fn truncate_fixture_lists_several_relations_with_options() {
    let mut truncates = Vec::new();
    golden_text("v1_truncate_multi", |m| {
        if let Message::Truncate(t) = m {
            truncates.push((t.rel_ids.len(), t.options));
        }
    });
    assert_eq!(
        truncates,
        [(2, TRUNCATE_RESTART_IDENTITY), (2, TRUNCATE_CASCADE)],
        "TRUNCATE a, b RESTART IDENTITY; TRUNCATE parent CASCADE (reaches child)"
    );
}

#[test]
fn multi_table_fixture_is_one_transaction_over_three_tables() {
    let (mut begins, mut relations) = (0, BTreeSet::new());
    golden_text("v1_multi_table_txn", |m| match m {
        Message::Begin(_) => begins += 1,
        Message::Insert(i) => {
            relations.insert(i.rel_id);
        }
        _ => {}
    });
    assert_eq!((begins, relations.len()), (1, 3));
}

#[test]
fn streamed_fixture_has_blocks_commit_and_both_aborts() {
    let mut facts = BTreeSet::new();
    let mut streamed_changes = 0;
    golden_text("v2_streamed", |m| match m {
        Message::StreamStart(s) if s.first_segment => {
            facts.insert("first-segment");
        }
        Message::StreamStart(_) => {
            facts.insert("later-segment");
        }
        Message::StreamCommit(_) => {
            facts.insert("stream-commit");
        }
        Message::StreamAbort(a) if a.xid == a.subxact_xid => {
            facts.insert("abort-top");
        }
        Message::StreamAbort(_) => {
            facts.insert("abort-subxact");
        }
        Message::Insert(i) if i.xid.is_some() => streamed_changes += 1,
        Message::Message(_) | Message::Truncate(_) | Message::Type(_) => {
            facts.insert(kind(m));
        }
        Message::Begin(_) => {
            facts.insert("plain-begin");
        }
        _ => {}
    });
    let wanted = [
        "abort-subxact",
        "abort-top",
        "first-segment",
        "later-segment",
        "message",
        "plain-begin",
        "stream-commit",
        "truncate",
        "type",
    ];
    assert_eq!(facts, wanted.into_iter().collect());
    assert!(streamed_changes >= 1000, "streamed inserts carry their xid");
}

#[test]
fn bulk_fixture_decodes_100k_inserts_to_known_summary() {
    check_bulk_summary(false);
}

fn check_bulk_summary(update: bool) {
    let name = "v1_bulk_100k";
    let capture = load(name);
    let mut summary = Summary::new();
    let rendered = decode_all(&capture, &mut Renderer::exact(), |m| summary.add(m));
    assert_eq!(summary.count("insert"), 100_000);
    assert_eq!(summary.count("commit"), 1);
    // The full rendering is too large to check in; its checksum stands in for it.
    let mut text = summary.render();
    text.push_str(&format!(
        "rendering_fnv1a64: {:016x}\n",
        crate::render::fnv1a(rendered.as_bytes())
    ));
    check_expected(name, "summary", &text, update);
}

/// Re-captures every fixture from a fresh private Postgres and rewrites the expectations.
#[test]
#[ignore = "needs Postgres; rewrites tests/fixtures"]
fn recapture_fixtures() {
    let cluster = testkit::Cluster::start().expect("start Postgres");
    for scenario in testkit::capture::scenarios() {
        let db = cluster.create_database().expect("create database");
        let capture = testkit::capture::capture(&db, scenario).expect("capture scenario");
        golden::store(&capture);
        if golden::BINARY_FIXTURES.contains(&scenario.name) {
            continue;
        }
        let rendered = decode_all(&capture, &mut Renderer::exact(), |_| {});
        check_expected(scenario.name, "expected", &rendered, true);
    }
    check_bulk_summary(true);
}
