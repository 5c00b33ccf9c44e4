//! Shape families and the plans built from them.
//!
//! * Disjoint shapes (`unrelated-shapes-latency`, `controlled-load`): shape i selects only rows
//!   with `name = s<i>` (zero-padded, so an `ILIKE` prefix cannot match another shape's name)
//!   or `k` in `[10i, 10i + 10)`; a write aimed at shape i carries exactly those values.
//! * Overlapping shapes (`many-shapes-one-client`, `diverse-shape-fanout`): distinct
//!   definitions that all match every written row (`name = 'hot'`, `k = 0`) and no seed row
//!   (`name = 'seed'`, `k` = [`SEED_K`]).
//!
//! Electric's fleet uses `name = '<n>'` and `name ILIKE '<n>%'` on `items`; the overlapping
//! where clauses are not published, so these follow the anchors' suggestion.

use clap::ValueEnum;
use serde::Serialize;

use crate::scenario::fanout::{FanoutParams, FanoutPlan, Subscription};
use crate::writer::{RowValues, SEED_K};

/// How shapes select their rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Predicate {
    /// `name = 's000042'` (Electric's optimised case).
    Eq,
    /// `name ILIKE 's000042%'` (Electric's non-optimised case).
    Ilike,
    /// `name ILIKE '%s000042%'` (a search box: no index prefix, issue 19).
    Contains,
    /// `name IN ('s000042', 'hot')` / `name IN ('hot', 's000042')`.
    In,
    /// `k >= 420 AND k < 430` / `k > -43`.
    Range,
}

/// Why a predicate cannot be used for a family.
#[derive(Debug, thiserror::Error)]
#[error("--predicate {0:?} cannot make distinct shapes that all match one row; use in or range")]
pub struct OverlapPredicateError(Predicate);

fn disjoint_name(i: usize) -> String {
    format!("s{i:06}")
}

/// The row values only disjoint shape `i` matches.
pub fn disjoint_target(i: usize) -> RowValues {
    RowValues::new(disjoint_name(i), 10 * i as i64)
}

/// Where clause of disjoint shape `i`.
pub fn disjoint_where(predicate: Predicate, i: usize) -> String {
    let name = disjoint_name(i);
    let k = 10 * i as i64;
    match predicate {
        Predicate::Eq => format!("name = '{name}'"),
        Predicate::Ilike => format!("name ILIKE '{name}%'"),
        Predicate::Contains => format!("name ILIKE '%{name}%'"),
        Predicate::In => format!("name IN ('{name}', 'z{name}')"),
        Predicate::Range => format!("k >= {k} AND k < {}", k + 10),
    }
}

/// The row values every overlapping shape matches.
pub fn overlap_target() -> RowValues {
    RowValues::new("hot".to_owned(), 0)
}

/// Where clause of overlapping shape `i`.
pub fn overlap_where(predicate: Predicate, i: usize) -> Result<String, OverlapPredicateError> {
    // Seed rows have k = SEED_K, far below -(i + 1) for any shape count allowed.
    debug_assert!((i as i64) < -SEED_K);
    match predicate {
        Predicate::In => Ok(format!("name IN ('hot', '{}')", disjoint_name(i))),
        Predicate::Range => Ok(format!("k > -{}", i + 1)),
        other => Err(OverlapPredicateError(other)),
    }
}

/// `clients` clients on the whole table; every write goes to all of them.
pub fn whole_table(params: FanoutParams, clients: usize) -> FanoutPlan {
    FanoutPlan {
        params,
        subscriptions: vec![
            Subscription {
                where_clause: None,
                target: None,
                start_delay_ms: 0,
            };
            clients
        ],
        passive_shapes: Vec::new(),
        targets: vec![overlap_target()],
    }
}

/// Starts subscription i at i / `spawn_per_sec` seconds instead of all at once.
pub fn stagger(plan: &mut FanoutPlan, spawn_per_sec: f64) {
    assert!(spawn_per_sec > 0.0);
    for (i, subscription) in plan.subscriptions.iter_mut().enumerate() {
        subscription.start_delay_ms = (i as f64 * 1000.0 / spawn_per_sec) as u64;
    }
}

/// `shapes` disjoint shapes; `clients` clients follow the one in the middle, which every write
/// hits; the others are created and left without a client.
pub fn unrelated(
    params: FanoutParams,
    shapes: usize,
    clients: usize,
    predicate: Predicate,
) -> FanoutPlan {
    assert!(shapes >= 1);
    let hot = shapes / 2;
    FanoutPlan {
        params,
        subscriptions: vec![
            Subscription {
                where_clause: Some(disjoint_where(predicate, hot)),
                target: Some(0),
                start_delay_ms: 0,
            };
            clients
        ],
        passive_shapes: (0..shapes)
            .filter(|&i| i != hot)
            .map(|i| disjoint_where(predicate, i))
            .collect(),
        targets: vec![disjoint_target(hot)],
    }
}

/// `shapes` overlapping shapes, all hit by every write; one client on each of the first
/// `followed` shapes, the rest created without a client.
pub fn overlapping(
    params: FanoutParams,
    shapes: usize,
    followed: usize,
    predicate: Predicate,
) -> Result<FanoutPlan, OverlapPredicateError> {
    assert!(followed <= shapes);
    let subscriptions = (0..followed)
        .map(|i| {
            Ok(Subscription {
                where_clause: Some(overlap_where(predicate, i)?),
                target: None,
                start_delay_ms: 0,
            })
        })
        .collect::<Result<_, _>>()?;
    let passive_shapes = (followed..shapes)
        .map(|i| overlap_where(predicate, i))
        .collect::<Result<_, _>>()?;
    Ok(FanoutPlan {
        params,
        subscriptions,
        passive_shapes,
        targets: vec![overlap_target()],
    })
}

/// Electric's controlled load: `clients` readers arriving at `spawn_per_sec`, each following
/// `shapes_per_client` of `shapes` disjoint shapes; writes cycle through all shapes.
pub fn controlled(
    params: FanoutParams,
    clients: usize,
    shapes_per_client: usize,
    shapes: usize,
    spawn_per_sec: f64,
    predicate: Predicate,
) -> FanoutPlan {
    assert!(shapes >= 1 && shapes_per_client >= 1 && shapes_per_client <= shapes);
    assert!(spawn_per_sec > 0.0);
    let mut subscriptions = Vec::with_capacity(clients * shapes_per_client);
    for client in 0..clients {
        let start_delay_ms = (client as f64 * 1000.0 / spawn_per_sec) as u64;
        for j in 0..shapes_per_client {
            // Consecutive shapes, so one client's shapes are distinct and load spreads evenly.
            let shape = (client * shapes_per_client + j) % shapes;
            subscriptions.push(Subscription {
                where_clause: Some(disjoint_where(predicate, shape)),
                target: Some(shape),
                start_delay_ms,
            });
        }
    }
    FanoutPlan {
        params,
        subscriptions,
        passive_shapes: Vec::new(),
        targets: (0..shapes).map(disjoint_target).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disjoint_shapes_differ_and_overlapping_ones_too() {
        for predicate in [
            Predicate::Eq,
            Predicate::Ilike,
            Predicate::Contains,
            Predicate::In,
            Predicate::Range,
        ] {
            assert_ne!(disjoint_where(predicate, 1), disjoint_where(predicate, 10));
        }
        assert_eq!(disjoint_where(Predicate::Ilike, 1), "name ILIKE 's000001%'");
        assert_eq!(overlap_where(Predicate::Range, 0).unwrap(), "k > -1");
        assert!(overlap_where(Predicate::Eq, 0).is_err());
        assert!(overlap_where(Predicate::Ilike, 0).is_err());
    }

    #[test]
    fn stagger_spreads_starts() {
        let params = FanoutParams {
            writes: 1,
            writes_per_sec: 1.0,
            rows_per_write: 1,
            payload_bytes: 1,
            ready_timeout_secs: 1,
            grace_secs: 1,
            interval_secs: 1.0,
            jitter_ms: 0,
        };
        let mut plan = whole_table(params, 5);
        stagger(&mut plan, 2.0);
        let delays: Vec<u64> = plan
            .subscriptions
            .iter()
            .map(|s| s.start_delay_ms)
            .collect();
        assert_eq!(delays, vec![0, 500, 1000, 1500, 2000]);
    }

    #[test]
    fn controlled_clients_follow_distinct_shapes() {
        let params = FanoutParams {
            writes: 6,
            writes_per_sec: 1.0,
            rows_per_write: 1,
            payload_bytes: 1,
            ready_timeout_secs: 1,
            grace_secs: 1,
            interval_secs: 1.0,
            jitter_ms: 0,
        };
        let plan = controlled(params, 4, 3, 5, 10.0, Predicate::Eq);
        assert_eq!(plan.subscriptions.len(), 12);
        for client in plan.subscriptions.chunks(3) {
            let mut targets: Vec<_> = client.iter().map(|s| s.target).collect();
            targets.dedup();
            assert_eq!(targets.len(), 3);
        }
        assert_eq!(plan.subscriptions[3].start_delay_ms, 100);
        // Write 1 goes to shape 0, followed by client 0's first subscription.
        assert!(plan.expects(0, 1) && !plan.expects(1, 1));
    }
}
