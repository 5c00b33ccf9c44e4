//! The report: one table per phase, one row per io driver (and kind).

use crate::report::{grouped, Table};

use super::moves::MoveSamples;
use super::{percentile_ms, DriverRun, SubqueryOptions};

pub fn all(options: &SubqueryOptions, runs: &[DriverRun]) -> Vec<Table> {
    vec![
        setup(options, runs),
        moves(options, runs),
        burst(options, runs),
        sync(options, runs),
    ]
}

fn ms(d: std::time::Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

fn setup(options: &SubqueryOptions, runs: &[DriverRun]) -> Table {
    let mut t = Table::new(
        format!(
            "Creating {} subquery shapes (one per user), each synced to up-to-date",
            grouped(options.shapes as f64)
        ),
        &[
            "driver",
            "created",
            "time (s)",
            "shapes/s",
            "per shape p50 (ms)",
            "p99 (ms)",
            "server CPU µs / shape",
            "of which kernel",
            "Postgres CPU µs / shape",
            "Postgres sessions opened",
            "503 retried",
            "reconnects",
            "failed",
            "wrong row count",
            "RSS before (MiB)",
            "RSS after (MiB)",
            "KiB / shape",
        ],
    );
    for run in runs {
        let s = &run.setup;
        let secs = s.elapsed.as_secs_f64();
        let created = s.created.max(1) as f64;
        t.row(vec![
            run.driver.to_string(),
            grouped(s.created as f64),
            format!("{secs:.1}"),
            grouped(s.created as f64 / secs),
            format!("{:.1}", percentile_ms(&s.per_shape, 50.0)),
            format!("{:.1}", percentile_ms(&s.per_shape, 99.0)),
            format!("{:.0}", s.server_cpu.as_secs_f64() * 1e6 / created),
            format!("{:.0} %", s.server_system_share * 100.0),
            s.postgres_cpu.map_or("n/a".into(), |p| {
                format!("{:.0}", p.as_secs_f64() * 1e6 / created)
            }),
            grouped(s.pg_sessions as f64),
            grouped(s.unavailable as f64),
            grouped(s.reconnects as f64),
            grouped(s.failed as f64),
            grouped(s.wrong_rows as f64),
            format!("{:.1}", s.rss_before_kib as f64 / 1024.0),
            format!("{:.1}", s.rss_after_kib as f64 / 1024.0),
            format!(
                "{:.1}",
                s.rss_after_kib.saturating_sub(s.rss_before_kib) as f64 / s.created.max(1) as f64
            ),
        ]);
        for e in &s.errors {
            t.note(format!("{}: {e}", run.driver));
        }
    }
    t.note(format!(
        "WHERE `id IN (SELECT doc_id FROM memberships WHERE user_id = $1)`, params[1] = the user; \
         each user holds one doc; {} docs. {} concurrent clients (blocking, one keep-alive \
         connection each); ELECTRIC_MAX_CONCURRENT_REQUESTS {{\"initial\":2000,\"existing\":20000}}; \
         default ELECTRIC_DB_POOL_SIZE (20); Ampere with {} core(s).",
        grouped(options.docs() as f64),
        options.concurrency,
        options.cores
    ));
    t.note(
        "per shape: from its first request (offset=-1) to its up-to-date response, under the \
         concurrency above. CPU / shape: the server's threads' run time (schedstat) and all of \
         Postgres's processes (utime+stime, 10 ms ticks) over the whole creation, divided by \
         the shapes; of which kernel = the server's stime / (utime + stime). Postgres sessions opened: pg_stat_database.sessions before and after \
         (the server's pool holds at most ELECTRIC_DB_POOL_SIZE connections at once). RSS: \
         VmRSS before the first shape and once settled after the last.",
    );
    t
}

fn moves(options: &SubqueryOptions, runs: &[DriverRun]) -> Table {
    let mut t = Table::new(
        "Move latency: membership change committed → held long-poll answered with the move",
        &[
            "driver",
            "move",
            "samples",
            "p50 (ms)",
            "p95 (ms)",
            "p99 (ms)",
            "max (ms)",
            "in 1st response",
            "most responses",
            "failed",
        ],
    );
    for run in runs {
        let kinds = [("in", &run.moves.move_in), ("out", &run.moves.move_out)];
        for (kind, m) in kinds {
            t.row(move_row(run, kind, m));
            for (what, n) in &m.anomalies {
                t.note(format!("{} move-{kind}: {what}: {n}", run.driver));
            }
            for e in &m.errors {
                t.note(format!("{} move-{kind} error: {e}", run.driver));
            }
            let odd: Vec<String> = m
                .statuses
                .iter()
                .filter(|(s, _)| **s != 200)
                .map(|(s, n)| format!("{s} × {n}"))
                .collect();
            if !odd.is_empty() {
                t.note(format!(
                    "{} move-{kind}: non-200 responses: {}",
                    run.driver,
                    odd.join(", ")
                ));
            }
        }
    }
    t.note(format!(
        "{} users spread evenly over the {} shapes, one after the other. Per user: a live \
         long-poll at the shape's up-to-date offset, 5 ms for it to be parked, then INSERT of a \
         membership (a doc nobody holds) over an already open Postgres connection; latency = \
         from reading the commit's reply to having read the response carrying the \
         `is_move_in` row of that doc. Then the same for the DELETE of that membership and \
         the `move-out` event.",
        options.samples.min(options.shapes as usize),
        grouped(options.shapes as f64)
    ));
    t.note(
        "A response without the wanted message (e.g. only the move-in event) is followed by \
         the next long-poll at its offset; \"in 1st response\" counts samples that needed \
         none, \"most responses\" is the worst sample. Client and server share the machine.",
    );
    t
}

fn move_row(run: &DriverRun, kind: &str, m: &MoveSamples) -> Vec<String> {
    let l = &m.latencies;
    vec![
        run.driver.to_string(),
        format!("move-{kind}"),
        grouped(l.len() as f64),
        format!("{:.2}", percentile_ms(l, 50.0)),
        format!("{:.2}", percentile_ms(l, 95.0)),
        format!("{:.2}", percentile_ms(l, 99.0)),
        format!("{:.2}", percentile_ms(l, 100.0)),
        grouped(m.first_response as f64),
        m.max_responses.to_string(),
        grouped(m.failed as f64),
    ]
}

fn burst(options: &SubqueryOptions, runs: &[DriverRun]) -> Table {
    let mut t = Table::new(
        "Server CPU per membership change (no clients attached)",
        &[
            "driver",
            "table",
            "changes",
            "writes took (s)",
            "until idle (s)",
            "server CPU (s)",
            "utime+stime (s)",
            "idle floor (s)",
            "server µs / change",
            "× baseline",
            "Postgres µs / change",
            "Postgres sessions opened",
        ],
    );
    for run in runs {
        let b = &run.burst;
        let base = b.baseline.server_us_per_change();
        for (label, cost) in [
            ("memberships (subquery shapes)", &b.subquery),
            ("memberships_base (no shapes)", &b.baseline),
        ] {
            let us = cost.server_us_per_change();
            t.row(vec![
                run.driver.to_string(),
                label.to_string(),
                grouped(cost.changes as f64),
                format!("{:.2}", cost.write_time.as_secs_f64()),
                format!("{:.2}", cost.span.as_secs_f64()),
                format!("{:.3}", cost.server_cpu.as_secs_f64()),
                format!("{:.2}", cost.server_ticks.as_secs_f64()),
                format!("{:.3}", cost.floor.0.as_secs_f64()),
                format!("{us:.1}"),
                if base > 0.0 {
                    format!("{:.1}", us / base)
                } else {
                    "n/a".into()
                },
                cost.postgres_us_per_change()
                    .map_or("n/a".into(), |p| format!("{p:.0}")),
                grouped(cost.pg_sessions as f64),
            ]);
            if !cost.settled {
                t.note(format!(
                    "{} {label}: the server or Postgres was not idle within 120 s",
                    run.driver
                ));
            }
        }
        t.note(format!(
            "{}: idle floor: server {:.1} ms/s with the shapes ({:.1} ms/s before any shape \
             existed), Postgres {:.1} ms/s; read back {} burst users' shapes: {} as expected \
             (1 move-in event, 1 move-in row, 1 move-out event), {} answered non-200",
            run.driver,
            b.floor.server_ms_per_s,
            run.empty_floor.server_ms_per_s,
            b.floor.postgres_ms_per_s,
            b.checked,
            b.as_expected,
            b.not_ok
        ));
        for m in &b.mismatches {
            t.note(format!("{}: {m}", run.driver));
        }
    }
    t.note(format!(
        "{} random users (of {}): one INSERT of a membership each, then the DELETEs, one \
         autocommit transaction per change over one connection. Each insert moves one doc into \
         one shape (a move-in query), each delete out of it. The baseline repeats the same \
         statements on an identical table that is in the publication but read by no shape.",
        grouped((options.burst / 2).min(options.shapes) as f64),
        grouped(options.shapes as f64)
    ));
    t.note(
        "Between idle marks (idle: in 500 ms the server ran ≤ 5 ms and Postgres ≤ 20 ms more \
         than their idle floor, measured over 2 s before the bursts): server CPU = run time of \
         its threads (/proc/<pid>/task/*/schedstat, ns); utime+stime = /proc/<pid>/stat in \
         10 ms ticks, a cross-check. µs / change and × baseline are net of the idle floor's \
         share of the span (server CPU − idle floor). Postgres (utime+stime+cutime+cstime, \
         net of its floor) = the postmaster, its \
         reaped children and its live children (backends incl. the writer's, walsender); its \
         figure includes executing the statements themselves.",
    );
    t
}

fn sync(options: &SubqueryOptions, runs: &[DriverRun]) -> Table {
    let mut t = Table::new(
        format!(
            "Initial sync of one user's {} docs: subquery shape vs literal IN list",
            grouped(options.sync_docs as f64)
        ),
        &[
            "driver",
            "shape",
            "rows",
            "body (KiB)",
            "median (ms)",
            "min (ms)",
            "max (ms)",
            "× IN list",
            "existing shape re-read, median (ms)",
        ],
    );
    for run in runs {
        let list = run.sync.list.median().as_secs_f64();
        for (label, s) in [
            ("id IN (SELECT … user_id = $1)", &run.sync.subquery),
            ("id IN (1, 2, …)", &run.sync.list),
        ] {
            t.row(vec![
                run.driver.to_string(),
                label.to_string(),
                grouped(s.rows as f64),
                format!("{:.1}", s.body_bytes as f64 / 1024.0),
                ms(s.median()),
                s.elapsed.first().map_or("n/a".into(), |d| ms(*d)),
                s.elapsed.last().map_or("n/a".into(), |d| ms(*d)),
                format!("{:.2}", s.median().as_secs_f64() / list),
                format!("{:.2}", s.reread_median().as_secs_f64() * 1e3),
            ]);
        }
    }
    t.note(format!(
        "{} repetitions, order alternating; each sync is offset=-1 → up-to-date over one \
         keep-alive connection (every chunk read), then DELETE /v1/shape?handle=… \
         (ELECTRIC_ENABLE_INTEGRATION_TESTING=true), so each repetition creates its shape \
         (and the subquery's dependency view) anew. Re-read: the same offset=-1 catch-up \
         repeated before the DELETE, answered from the existing shape's log. The subquery \
         shape's rows also carry `tags` and `active_conditions`, hence the larger body.",
        options.repetitions.max(1)
    ));
    t
}
