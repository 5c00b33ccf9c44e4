//! RESULTS.md and its SVG plots: run facts, one table per load scenario with Electric's
//! published figure beside ours, the same-run baseline sections, and the plots linked inline.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result};
use engine::runtime::IoDriver;

use super::baselines::Section;
use super::load::{LoadPoint, Scenario, MAX_CONCURRENT_REQUESTS};
use super::svg::{Chart, Series};
use crate::report::{grouped, Table};

/// Facts about the run printed at the top.
#[derive(Clone, Debug)]
pub struct RunFacts {
    pub command: String,
    pub machine: String,
    pub size: &'static str,
    pub drivers: Vec<IoDriver>,
    pub ampere_bin: PathBuf,
    pub loadgen_bin: PathBuf,
}

/// The file names of a scenario's plot.
pub fn plot_name(scenario: Scenario) -> String {
    format!(
        "latency-vs-{}-{}.svg",
        scenario.x_label(),
        scenario.command()
    )
}

/// Writes RESULTS.md and one SVG per load scenario into `out`; returns the paths written.
pub fn write(
    out: &Path,
    facts: &RunFacts,
    points: &[LoadPoint],
    sections: &[Section],
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).with_context(|| format!("create {}", out.display()))?;
    let mut written = Vec::new();
    for scenario in Scenario::ALL {
        let path = out.join(plot_name(scenario));
        std::fs::write(&path, chart(scenario, points, &facts.drivers).render())
            .with_context(|| format!("write {}", path.display()))?;
        written.push(path);
    }
    let path = out.join("RESULTS.md");
    std::fs::write(&path, markdown(facts, points, sections))
        .with_context(|| format!("write {}", path.display()))?;
    written.push(path);
    Ok(written)
}

/// The whole RESULTS.md text.
pub fn markdown(facts: &RunFacts, points: &[LoadPoint], sections: &[Section]) -> String {
    let mut md = String::new();
    let drivers: Vec<String> = facts.drivers.iter().map(ToString::to_string).collect();
    // Writing into a String cannot fail.
    let _ = write!(
        md,
        "# Benchmark results\n\n\
         Written by `bench-harness suite`; rerun it rather than editing this file.\n\n\
         ## Run\n\n\
         - Command: `{command}`\n\
         - Commit: {commit}\n\
         - Date: {date}\n\
         - Machine: {machine}\n\
         - Grid: {size}; Ampere io drivers: {drivers}\n\
         - Binaries: `{ampere}`, `{loadgen}`\n\
         - The machine is shared: Postgres, Ampere, the load generator (and other jobs) run on the \
         same cores, so single runs are noisy. Compare the ratios against the same-run baselines \
         more than absolute figures; Electric's published figures come from other hardware \
         (stated beside each).\n\
         - Load scenarios run with `ELECTRIC_MAX_CONCURRENT_REQUESTS={limits}` so admission \
         control does not turn shape storms into 503 + retry; each grid point gets a fresh \
         database and a fresh `ampere`; loadgen runs on one core with the epoll driver, 50-row \
         writes at 1/s (Electric's `tx_row_count`), latency from before the INSERT is sent.\n\n",
        command = facts.command,
        commit = commit(),
        date = utc_now(),
        machine = facts.machine,
        size = facts.size,
        drivers = drivers.join(", "),
        ampere = crate::report::portable_path(&facts.ampere_bin),
        loadgen = crate::report::portable_path(&facts.loadgen_bin),
        limits = MAX_CONCURRENT_REQUESTS,
    );
    md.push_str(
        &ratio_table(sections)
            .to_markdown()
            .replacen("####", "##", 1),
    );
    md.push_str("## Load scenarios (loadgen) beside Electric's published figures\n\n");
    md.push_str(
        "\"ours ÷ Electric\" below 1 means Ampere was faster; `≈` marks Electric values \
         interpolated between its published grid points.\n\n",
    );
    for scenario in Scenario::ALL {
        let _ = write!(
            md,
            "### `{}`\n\n{}\n\n",
            scenario.command(),
            scenario_table(scenario, points).to_markdown().trim_end()
        );
        let published = scenario.published();
        let _ = write!(
            md,
            "Electric: {} — {}.\n\n![{} vs {}]({})\n\n",
            published.label,
            published.source,
            scenario.metric(),
            scenario.x_label(),
            plot_name(scenario)
        );
    }
    md.push_str("## Same-run baselines and micro-benchmarks\n\n");
    for section in sections {
        let _ = write!(md, "### {}\n\n", section.title);
        for line in &section.intro {
            let _ = writeln!(md, "{line}");
        }
        md.push('\n');
        if let Some(error) = &section.error {
            let _ = write!(md, "**Failed:** {error}\n\n");
        }
        for table in &section.tables {
            md.push_str(&table.to_markdown());
        }
    }
    md
}

/// Every section's ratios against its same-run baseline, in one table.
fn ratio_table(sections: &[Section]) -> Table {
    let mut table = Table::new(
        "Ratios against same-run baselines",
        &[
            "measure",
            "ours",
            "baseline",
            "baseline figure",
            "ours ÷ baseline",
        ],
    );
    for ratio in sections.iter().flat_map(|s| &s.ratios) {
        table.row(vec![
            ratio.what.clone(),
            grouped(ratio.ours),
            ratio.baseline.clone(),
            grouped(ratio.theirs),
            format!("{:.2}×", ratio.value()),
        ]);
    }
    table.note("Higher is better for every figure here; details in the sections below.");
    table
}

fn scenario_table(scenario: Scenario, points: &[LoadPoint]) -> Table {
    let mut table = Table::new(
        format!("{}: {}", scenario.command(), scenario.metric()),
        &[
            scenario.x_label(),
            "server",
            "mean ms",
            "p99 ms",
            "Electric mean ms",
            "ours ÷ Electric",
            "server CPU s",
            "peak RSS MB",
            "complete",
        ],
    );
    for point in points.iter().filter(|p| p.scenario == scenario) {
        let x = point.x as f64;
        let published = scenario.published().at(x);
        let mut row = vec![grouped(x), format!("ampere ({})", point.driver)];
        match &point.outcome {
            Ok(f) => {
                let ratio = published
                    .value()
                    .map_or("—".into(), |e| format!("{:.2}", f.mean_ms / e));
                let opt = |v: Option<f64>| v.map_or("—".into(), |v| format!("{v:.1}"));
                row.extend([
                    format!("{:.1}", f.mean_ms),
                    format!("{:.1}", f.p99_ms),
                    published.cell(),
                    ratio,
                    opt(f.server_cpu_secs),
                    opt(f.server_rss_peak_mb),
                    if f.complete { "yes" } else { "NO" }.into(),
                ]);
            }
            Err(error) => {
                table.note(format!(
                    "{} {} ({}): failed: {error}",
                    point.x,
                    scenario.x_label(),
                    point.driver
                ));
                row.extend(["failed".into(), "—".into(), published.cell()]);
                row.extend(std::iter::repeat_n("—".to_string(), 4));
            }
        }
        table.row(row);
    }
    table
}

/// Ours per driver (solid) and Electric's at the same x (dashed).
pub fn chart(scenario: Scenario, points: &[LoadPoint], drivers: &[IoDriver]) -> Chart {
    let mine: Vec<&LoadPoint> = points.iter().filter(|p| p.scenario == scenario).collect();
    let mut series: Vec<Series> = drivers
        .iter()
        .map(|&driver| Series {
            label: format!("ampere ({driver})"),
            points: mine
                .iter()
                .filter(|p| p.driver == driver)
                .filter_map(|p| p.outcome.as_ref().ok().map(|f| (p.x as f64, f.mean_ms)))
                .collect(),
            dashed: false,
        })
        .collect();
    let mut xs: Vec<u64> = mine.iter().map(|p| p.x).collect();
    xs.sort_unstable();
    xs.dedup();
    series.push(Series {
        label: "Electric (published)".into(),
        points: xs
            .iter()
            .filter_map(|&x| {
                let x = x as f64;
                scenario.published().at(x).value().map(|y| (x, y))
            })
            .collect(),
        dashed: true,
    });
    Chart {
        title: format!("{}: {}", scenario.command(), scenario.metric()),
        x_label: scenario.x_label().into(),
        y_label: "ms (mean)".into(),
        series,
    }
}

/// The checked-out commit, marked when tracked files differ from it.
fn commit() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let git = |args: &[&str]| Command::new("git").arg("-C").arg(dir).args(args).output();
    let Ok(head) = git(&["rev-parse", "--short", "HEAD"]) else {
        return "unknown".into();
    };
    let hash = String::from_utf8_lossy(&head.stdout).trim().to_string();
    if hash.is_empty() {
        return "unknown".into();
    }
    let dirty = git(&["diff", "--quiet", "HEAD", "--"]).is_ok_and(|o| !o.status.success());
    if dirty {
        format!("`{hash}` (with uncommitted changes)")
    } else {
        format!("`{hash}`")
    }
}

fn utc_now() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::super::baselines::Ratio;
    use super::super::load::Figures;
    use super::*;

    fn point(scenario: Scenario, x: u64, outcome: Result<Figures, String>) -> LoadPoint {
        LoadPoint {
            scenario,
            driver: IoDriver::Epoll,
            x,
            outcome,
        }
    }

    fn figures(mean_ms: f64) -> Figures {
        Figures {
            mean_ms,
            p99_ms: mean_ms * 2.0,
            complete: true,
            server_cpu_secs: Some(0.5),
            server_rss_peak_mb: None,
        }
    }

    #[test]
    fn markdown_has_facts_scenarios_ratios_and_failures() {
        let facts = RunFacts {
            command: "bench-harness suite --quick".into(),
            machine: "2 cores".into(),
            size: "quick",
            drivers: vec![IoDriver::Epoll],
            ampere_bin: "ampere".into(),
            loadgen_bin: "loadgen".into(),
        };
        let points = vec![
            point(Scenario::WriteFanout, 100, Ok(figures(26.75))),
            point(Scenario::ManyShapesOneClient, 300, Err("boom".into())),
        ];
        let sections = vec![Section {
            title: "Replication drain vs pg_recvlogical".into(),
            intro: vec!["intro".into()],
            tables: vec![],
            ratios: vec![Ratio {
                what: "drain: ampere (epoll)".into(),
                baseline: "pg_recvlogical".into(),
                ours: 200.0,
                theirs: 100.0,
            }],
            error: None,
        }];
        let md = markdown(&facts, &points, &sections);
        assert!(md.contains("- Command: `bench-harness suite --quick`"));
        assert!(md.contains("## Ratios against same-run baselines"));
        assert!(md.contains("| drain: ampere (epoll) | 200 | pg_recvlogical | 100 | 2.00× |"));
        // Electric published 53.5 ms at 100 clients: ours is half of it.
        assert!(md.contains("| 100 | ampere (epoll) | 26.8 | 53.5 | 53.5 | 0.50 | 0.5 | — | yes |"));
        assert!(md.contains("| 300 | ampere (epoll) | failed | — | 127.0 |"));
        assert!(md.contains("300 shapes (epoll): failed: boom"));
        assert!(md.contains("](latency-vs-clients-write-fanout.svg)"));
        assert!(md.contains("### Replication drain vs pg_recvlogical\n\nintro\n"));
    }

    #[test]
    fn chart_pairs_each_point_with_electrics_figure() {
        let points = vec![
            point(Scenario::WriteFanout, 5, Ok(figures(3.0))),
            point(Scenario::WriteFanout, 100, Ok(figures(9.0))),
            point(Scenario::WriteFanout, 5_000, Ok(figures(90.0))),
        ];
        let chart = chart(Scenario::WriteFanout, &points, &[IoDriver::Epoll]);
        assert_eq!(chart.series.len(), 2);
        assert_eq!(chart.series[0].points.len(), 3);
        // Electric published nothing at 5,000 clients.
        assert_eq!(chart.series[1].points, vec![(5.0, 21.5), (100.0, 53.5)]);
        assert!(chart.series[1].dashed);
    }
}
