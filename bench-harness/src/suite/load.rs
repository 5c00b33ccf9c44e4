//! The `loadgen` scenarios: for each io driver and grid point, a fresh database and a fresh
//! `ampere` child, `loadgen --json` as a subprocess against it, and the figures read back from
//! the JSON report.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result};
use engine::runtime::IoDriver;
use testkit::{Cluster, TestDb};

use super::electric::{self, Published};
use super::plan::Plan;
use crate::serving::server::{AmpereServer, ServerSpec};

/// Admission control raised out of the way: a storm of shape requests would otherwise be
/// answered with 503 + retry-after, measuring the limiter instead of the server.
pub const MAX_CONCURRENT_REQUESTS: &str = r#"{"initial":100000,"existing":100000}"#;

/// Rows per write, as in Electric's fleet (`tx_row_count: 50`).
const ROWS_PER_WRITE: &str = "50";

/// The scenarios the suite runs through loadgen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    WriteFanout,
    UnrelatedShapes,
    ManyShapesOneClient,
    ConcurrentShapeCreation,
}

impl Scenario {
    pub const ALL: [Scenario; 4] = [
        Self::WriteFanout,
        Self::UnrelatedShapes,
        Self::ManyShapesOneClient,
        Self::ConcurrentShapeCreation,
    ];

    /// loadgen's subcommand.
    pub fn command(self) -> &'static str {
        match self {
            Self::WriteFanout => "write-fanout",
            Self::UnrelatedShapes => "unrelated-shapes-latency",
            Self::ManyShapesOneClient => "many-shapes-one-client",
            Self::ConcurrentShapeCreation => "concurrent-shape-creation",
        }
    }

    /// What the grid varies.
    pub fn x_label(self) -> &'static str {
        match self {
            Self::WriteFanout => "clients",
            _ => "shapes",
        }
    }

    /// What the figure is.
    pub fn metric(self) -> &'static str {
        match self {
            Self::ConcurrentShapeCreation => "time to up-to-date",
            Self::WriteFanout => "write → client latency (mean over clients)",
            _ => "write → client latency",
        }
    }

    pub fn published(self) -> Published {
        match self {
            Self::WriteFanout => electric::WRITE_FANOUT,
            Self::UnrelatedShapes => electric::UNRELATED_SHAPES_EQ,
            Self::ManyShapesOneClient => electric::MANY_SHAPES_ONE_CLIENT,
            Self::ConcurrentShapeCreation => electric::CONCURRENT_SHAPE_CREATION,
        }
    }

    pub fn grid(self, plan: &Plan) -> &[u64] {
        match self {
            Self::WriteFanout => &plan.fanout_clients,
            Self::UnrelatedShapes => &plan.unrelated_shapes,
            Self::ManyShapesOneClient => &plan.many_shapes,
            Self::ConcurrentShapeCreation => &plan.creation_shapes,
        }
    }

    /// The scenario's flags at grid point `x`.
    pub fn args(self, x: u64, plan: &Plan) -> Vec<String> {
        let x = x.to_string();
        let writes = [
            "--rows-per-write",
            ROWS_PER_WRITE,
            "--writes-per-sec",
            "1",
            "--duration-secs",
            &plan.write_secs.to_string(),
        ]
        .map(String::from);
        let mut args: Vec<String> = match self {
            Self::WriteFanout => vec!["--clients".into(), x],
            Self::UnrelatedShapes => {
                vec!["--shapes".into(), x, "--predicate".into(), "eq".into()]
            }
            Self::ManyShapesOneClient => vec!["--shapes".into(), x],
            Self::ConcurrentShapeCreation => {
                // One row per shape, as Electric's S1 (`name = 'c<i>'`), over a table of at
                // least Electric's 500 rows.
                let rows = plan_rows(&x);
                return vec![
                    "--shapes".into(),
                    x,
                    "--rows".into(),
                    rows,
                    "--one-row".into(),
                ];
            }
        };
        args.extend(writes);
        args
    }
}

/// Rows of the storm's table: one per shape, at least 500.
fn plan_rows(shapes: &str) -> String {
    shapes.parse::<u64>().unwrap_or(0).max(500).to_string()
}

/// One grid point's result.
#[derive(Clone, Debug)]
pub struct LoadPoint {
    pub scenario: Scenario,
    pub driver: IoDriver,
    pub x: u64,
    pub outcome: Result<Figures, String>,
}

/// The figures read from loadgen's JSON report.
#[derive(Clone, Debug, PartialEq)]
pub struct Figures {
    pub mean_ms: f64,
    pub p99_ms: f64,
    /// loadgen's verdict: every expected delivery / shape arrived.
    pub complete: bool,
    pub server_cpu_secs: Option<f64>,
    pub server_rss_peak_mb: Option<f64>,
}

/// Where the binaries are and which drivers to measure.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    pub ampere_bin: PathBuf,
    pub loadgen_bin: PathBuf,
    pub drivers: Vec<IoDriver>,
    pub cores: Option<usize>,
}

/// Runs every scenario at every grid point under every driver. A failed point is recorded
/// (with loadgen's error) rather than ending the suite.
pub fn run(plan: &Plan, options: &LoadOptions, scratch: &Path) -> Result<Vec<LoadPoint>> {
    let cluster = Cluster::start().context("start Postgres for the load scenarios")?;
    let mut points = Vec::new();
    for &driver in &options.drivers {
        for scenario in Scenario::ALL {
            for &x in scenario.grid(plan) {
                let id = format!("suite_{}_{}_{x}", driver, points.len());
                let outcome = run_point(&cluster, plan, options, scenario, driver, x, &id, scratch)
                    .map_err(|e| format!("{e:#}"));
                match &outcome {
                    Ok(f) => println!(
                        "suite: {} {x} {} ({driver}): mean {:.1} ms, p99 {:.1} ms{}",
                        scenario.command(),
                        scenario.x_label(),
                        f.mean_ms,
                        f.p99_ms,
                        if f.complete { "" } else { " (INCOMPLETE)" }
                    ),
                    Err(e) => println!("suite: {} {x} ({driver}) failed: {e}", scenario.command()),
                }
                points.push(LoadPoint {
                    scenario,
                    driver,
                    x,
                    outcome,
                });
            }
        }
    }
    Ok(points)
}

#[allow(clippy::too_many_arguments)]
fn run_point(
    cluster: &Cluster,
    plan: &Plan,
    options: &LoadOptions,
    scenario: Scenario,
    driver: IoDriver,
    x: u64,
    id: &str,
    scratch: &Path,
) -> Result<Figures> {
    let db = cluster.create_database().context("create a database")?;
    let result = measure(&db, plan, options, scenario, driver, x, id, scratch);
    // The killed server leaves its slot behind; an inactive slot holds WAL for nothing and
    // the cluster has few slots.
    let _ = db.psql(
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE NOT active",
    );
    result
}

#[allow(clippy::too_many_arguments)]
fn measure(
    db: &TestDb<'_>,
    plan: &Plan,
    options: &LoadOptions,
    scenario: Scenario,
    driver: IoDriver,
    x: u64,
    id: &str,
    scratch: &Path,
) -> Result<Figures> {
    let spec = ServerSpec {
        binary: options.ampere_bin.clone(),
        database_url: db.url(),
        driver,
        chunk_bytes: None,
        long_poll_ms: None,
        cores: options.cores,
        env: vec![(
            "ELECTRIC_MAX_CONCURRENT_REQUESTS",
            MAX_CONCURRENT_REQUESTS.to_string(),
        )],
    };
    let server = AmpereServer::start(&spec, id)?;
    let json_path = scratch.join(format!("{id}.json"));
    let output = Command::new(&options.loadgen_bin)
        .arg("--target")
        .arg(format!("http://127.0.0.1:{}", server.port))
        .arg("--database-url")
        .arg(db.url())
        .args(["--cores", "1", "--io-driver", "epoll", "--json"])
        .arg(&json_path)
        .arg("--server-pid")
        .arg(server.pid().to_string())
        .arg(scenario.command())
        .args(scenario.args(x, plan))
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run {}", options.loadgen_bin.display()))?;
    drop(server);
    // Exit 2 means "finished but incomplete": the report is still there and says so.
    if !output.status.success() && output.status.code() != Some(2) {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(3).collect();
        anyhow::bail!(
            "loadgen exited with {}: {}",
            output.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
        );
    }
    let text = std::fs::read_to_string(&json_path)
        .with_context(|| format!("read {}", json_path.display()))?;
    parse_report(scenario, &text)
}

/// Reads the figures of `scenario` out of a loadgen JSON report.
pub fn parse_report(scenario: Scenario, text: &str) -> Result<Figures> {
    let json: serde_json::Value = serde_json::from_str(text).context("parse loadgen's JSON")?;
    // Electric's charts plot the mean over clients ("write seen time, mean"); the p99 is over
    // every (client, write) pair.
    let (summary, p99_from) = if scenario == Scenario::ConcurrentShapeCreation {
        ("time_to_up_to_date", "time_to_up_to_date")
    } else {
        ("latency_mean_client", "latency_every_client")
    };
    let number = |path: &[&str]| -> Option<f64> {
        path.iter()
            .try_fold(&json, |value, key| value.get(key))
            .and_then(serde_json::Value::as_f64)
    };
    Ok(Figures {
        mean_ms: number(&[summary, "mean_ms"])
            .with_context(|| format!("no {summary}.mean_ms in loadgen's report"))?,
        p99_ms: number(&[p99_from, "p99_ms"])
            .with_context(|| format!("no {p99_from}.p99_ms in loadgen's report"))?,
        complete: json
            .get("complete")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false),
        server_cpu_secs: number(&["resources", "server", "cpu_secs"]),
        server_rss_peak_mb: number(&["resources", "server", "rss_mb_peak"]),
    })
}

/// A sibling binary: `explicit` if given, else next to this executable (or one level up, for
/// test executables in `deps/`), else the workspace's release build.
pub fn locate_binary(name: &str, explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    let exe = std::env::current_exe().context("locate this executable")?;
    let mut candidates = Vec::new();
    if let Some(dir) = exe.parent() {
        candidates.push(dir.join(name));
        if let Some(parent) = dir.parent() {
            candidates.push(parent.join(name));
        }
    }
    candidates.push(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../target/release")
            .join(name),
    );
    candidates
        .into_iter()
        .find(|path| path.exists())
        .with_context(|| format!("no {name} binary found: build it (`cargo build --release -p {name}`) or pass its path"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fanout_and_creation_reports() {
        let fanout = r#"{"complete": true,
            "latency_mean_client": {"count": 3, "mean_ms": 4.5, "p99_ms": 9.0},
            "latency_every_client": {"count": 30, "mean_ms": 4.4, "p99_ms": 12.0},
            "resources": {"server": {"cpu_secs": 1.25, "rss_mb_peak": 30.5}}}"#;
        let figures = parse_report(Scenario::WriteFanout, fanout).unwrap();
        assert_eq!(
            figures,
            Figures {
                mean_ms: 4.5,
                p99_ms: 12.0,
                complete: true,
                server_cpu_secs: Some(1.25),
                server_rss_peak_mb: Some(30.5),
            }
        );
        let creation =
            r#"{"complete": false, "time_to_up_to_date": {"mean_ms": 80.0, "p99_ms": 150.0}}"#;
        let figures = parse_report(Scenario::ConcurrentShapeCreation, creation).unwrap();
        assert_eq!((figures.mean_ms, figures.p99_ms), (80.0, 150.0));
        assert!(!figures.complete);
        assert_eq!(figures.server_cpu_secs, None);
    }

    #[test]
    fn rejects_reports_without_the_figure() {
        assert!(parse_report(Scenario::WriteFanout, "{}").is_err());
        assert!(parse_report(Scenario::WriteFanout, "not json").is_err());
    }

    #[test]
    fn flags_follow_the_plan() {
        let plan = Plan::new(super::super::plan::Size::Quick);
        let args = Scenario::UnrelatedShapes.args(1000, &plan);
        assert_eq!(&args[..4], ["--shapes", "1000", "--predicate", "eq"]);
        assert!(args.windows(2).any(|w| w == ["--rows-per-write", "50"]));
        let creation = Scenario::ConcurrentShapeCreation.args(50, &plan);
        assert_eq!(creation, ["--shapes", "50", "--rows", "500", "--one-row"]);
        let storm = Scenario::ConcurrentShapeCreation.args(3650, &plan);
        assert_eq!(storm, ["--shapes", "3650", "--rows", "3650", "--one-row"]);
    }
}
