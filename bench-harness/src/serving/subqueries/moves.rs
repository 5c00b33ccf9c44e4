//! Move latency: for sampled users, one after the other, a live long-poll is held on the
//! user's shape, a membership is inserted (move-in) over a Postgres connection opened
//! beforehand, and the time from the commit (its reply read) until the response carrying the
//! moved-in row (`is_move_in`) had been read is noted — re-polling at the new offset if an
//! earlier response carried only part of the move (the event, say). Then the membership is
//! deleted the same way and the move-out event is waited for. The user's memberships end as
//! they began.
//!
//! Whatever deviates from the reference's §6 (a missing event or snapshot-end, a delete
//! message on a move-out, a non-200) is counted, not fatal: a benchmark should report it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use serde_json::Value;

use super::super::http::HttpClient;
use super::super::writer::Writer;
use super::{header, is_event, is_move_in_row, messages, Follow, SubqueryOptions};

/// Time for the long-poll to reach the server and be parked before the write.
const HOLD: Duration = Duration::from_millis(5);
/// Longest wait for one move's message.
const MOVE_BOUND: Duration = Duration::from_secs(30);
const KEPT_ERRORS: usize = 5;

/// The samples of one kind of move.
#[derive(Debug, Default)]
pub struct MoveSamples {
    /// Commit → the response with the wanted message read, ascending.
    pub latencies: Vec<Duration>,
    /// Samples whose first response already carried the wanted message.
    pub first_response: u64,
    /// Most responses one sample took.
    pub max_responses: u32,
    /// Response statuses seen.
    pub statuses: BTreeMap<u16, u64>,
    /// Deviations from the expected messages, by kind.
    pub anomalies: BTreeMap<&'static str, u64>,
    pub failed: u64,
    pub errors: Vec<String>,
}

#[derive(Debug, Default)]
pub struct Moves {
    pub move_in: MoveSamples,
    pub move_out: MoveSamples,
}

#[derive(Clone, Copy)]
enum Want {
    /// The move-in row of this doc.
    MoveIn(u64),
    MoveOut,
}

pub fn measure(
    port: u16,
    writer: &mut Writer,
    follows: &mut [Option<Follow>],
    options: &SubqueryOptions,
) -> Result<Moves> {
    let mut moves = Moves::default();
    let mut client = HttpClient::connect(port)?;
    let samples = (options.samples as u64).min(options.shapes);
    for i in 0..samples {
        // Spread over the users, so shapes on every core and of every creation age are hit.
        let user = 1 + i * options.shapes / samples.max(1);
        let Some(follow) = follows[user as usize - 1].as_mut() else {
            continue;
        };
        let doc = options.spare_doc(i);
        let insert = format!("INSERT INTO memberships VALUES ({user}, {doc})");
        let delete = format!("DELETE FROM memberships WHERE user_id = {user} AND doc_id = {doc}");
        let outcome = one_move(
            &mut client,
            writer,
            follow,
            (&insert, "INSERT 0 1"),
            Want::MoveIn(doc),
            &mut moves.move_in,
        )
        .and_then(|()| {
            one_move(
                &mut client,
                writer,
                follow,
                (&delete, "DELETE 1"),
                Want::MoveOut,
                &mut moves.move_out,
            )
        });
        if let Err(e) = outcome {
            eprintln!("subqueries: move of user {user}: {e:#}");
            // Undo the insert if it happened; this shape is no longer followed.
            let _ = writer.execute(&delete, "DELETE 1");
            follows[user as usize - 1] = None;
            client = HttpClient::connect(port)?;
        }
    }
    moves.move_in.latencies.sort_unstable();
    moves.move_out.latencies.sort_unstable();
    Ok(moves)
}

/// One held long-poll, one write, responses read (and re-polled) until the wanted message.
fn one_move(
    client: &mut HttpClient,
    writer: &mut Writer,
    follow: &mut Follow,
    (sql, tag): (&str, &str),
    want: Want,
    samples: &mut MoveSamples,
) -> Result<()> {
    let result = (|| -> Result<()> {
        client.send("GET", &follow.path(true))?;
        std::thread::sleep(HOLD);
        let commit = writer.execute(sql, tag)?;
        let mut responses = 0u32;
        let mut event_seen = false;
        loop {
            let response = client.read_response()?;
            let at = Instant::now();
            responses += 1;
            *samples.statuses.entry(response.status).or_default() += 1;
            ensure!(
                response.status == 200,
                "status {}: {}",
                response.status,
                response.body_str()
            );
            follow.advance(&response)?;
            let items = messages(&response)?;
            let found = match want {
                Want::MoveIn(doc) => {
                    event_seen |= items.iter().any(|m| is_event(m, "move-in"));
                    let row = items.iter().position(|m| is_move_in_row(m, Some(doc)));
                    if let Some(row) = row {
                        let end = items[row..].iter().any(|m| is_control(m, "snapshot-end"));
                        note(samples, !end, "move-in row without a snapshot-end after it");
                    }
                    row.is_some()
                }
                Want::MoveOut => {
                    let deletes = items
                        .iter()
                        .any(|m| header(m, "operation").and_then(Value::as_str) == Some("delete"));
                    note(samples, deletes, "delete message on a move-out");
                    event_seen |= items.iter().any(|m| is_event(m, "move-out"));
                    event_seen
                }
            };
            if found {
                let kind = matches!(want, Want::MoveIn(_));
                note(
                    samples,
                    kind && !event_seen,
                    "move-in row without a move-in event",
                );
                samples
                    .latencies
                    .push(at.saturating_duration_since(commit.committed));
                samples.first_response += u64::from(responses == 1);
                samples.max_responses = samples.max_responses.max(responses);
                return Ok(());
            }
            ensure!(
                commit.committed.elapsed() < MOVE_BOUND,
                "no {} after {MOVE_BOUND:?} ({responses} responses)",
                match want {
                    Want::MoveIn(_) => "move-in row",
                    Want::MoveOut => "move-out event",
                }
            );
            client.send("GET", &follow.path(true))?;
        }
    })();
    if let Err(e) = &result {
        samples.failed += 1;
        if samples.errors.len() < KEPT_ERRORS {
            samples.errors.push(format!("{e:#}"));
        }
    }
    result
}

fn is_control(message: &Value, control: &str) -> bool {
    header(message, "control").and_then(Value::as_str) == Some(control)
}

fn note(samples: &mut MoveSamples, happened: bool, what: &'static str) {
    if happened {
        *samples.anomalies.entry(what).or_default() += 1;
    }
}
