//! `bench-harness suite`: every benchmark in one command. Runs the in-process benchmarks with
//! their same-run baselines ([`baselines`]), the loadgen scenarios against a fresh `ampere`
//! per io driver and grid point ([`load`]), and writes `RESULTS.md` with Electric's published
//! figures beside ours and SVG plots ([`results`], [`svg`]).

pub mod baselines;
pub mod electric;
pub mod load;
pub mod plan;
pub mod results;
pub mod svg;

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use engine::runtime::IoDriver;
use testkit::Cluster;

use crate::machine;
use crate::serving::server::raise_nofile_limit;
use baselines::{BaselineOptions, RouteBench, Section};
use load::{LoadOptions, LoadPoint};
use plan::Plan;
use results::RunFacts;

/// Everything one suite run needs.
pub struct SuiteOptions<'a> {
    pub plan: Plan,
    pub drivers: Vec<IoDriver>,
    /// Directory that receives RESULTS.md and the SVGs.
    pub out: PathBuf,
    pub ampere_bin: PathBuf,
    pub loadgen_bin: PathBuf,
    /// `AMPERE_CORES` for the servers (and nginx's workers); `None`: every core.
    pub cores: Option<usize>,
    /// The command line shown in RESULTS.md.
    pub command: String,
    pub route: Option<&'a RouteBench>,
}

/// What a run produced.
#[derive(Debug)]
pub struct SuiteOutput {
    pub points: Vec<LoadPoint>,
    pub sections: Vec<Section>,
    /// RESULTS.md last, after the SVGs.
    pub files: Vec<PathBuf>,
}

pub fn run(options: &SuiteOptions<'_>) -> Result<SuiteOutput> {
    anyhow::ensure!(!options.drivers.is_empty(), "no io driver to measure");
    // Thousands of held clients need descriptors, in this process and in its children.
    raise_nofile_limit()?;
    // Other jobs on a shared machine skew every figure; the load before the run says how much.
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load_before: Vec<&str> = load_before.split_whitespace().take(3).collect();
    let cores = options.cores.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let sections = baselines::run(
        &options.plan,
        &BaselineOptions {
            ampere_bin: options.ampere_bin.clone(),
            drivers: options.drivers.clone(),
            cores,
            route: options.route,
        },
    );
    let scratch = std::env::temp_dir().join(format!("bench-suite-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).with_context(|| format!("create {}", scratch.display()))?;
    let points = load::run(
        &options.plan,
        &LoadOptions {
            ampere_bin: options.ampere_bin.clone(),
            loadgen_bin: options.loadgen_bin.clone(),
            drivers: options.drivers.clone(),
            cores: options.cores,
        },
        &scratch,
    );
    let _ = std::fs::remove_dir_all(&scratch);
    let points = points?;
    let facts = RunFacts {
        command: options.command.clone(),
        machine: format!(
            "{}; load average (1, 5, 15 min) before the run: {}",
            machine::describe(&Cluster::pg_bin()),
            load_before.join(", ")
        ),
        size: options.plan.size.label(),
        drivers: options.drivers.clone(),
        ampere_bin: options.ampere_bin.clone(),
        loadgen_bin: options.loadgen_bin.clone(),
    };
    let files = results::write(&options.out, &facts, &points, &sections)?;
    Ok(SuiteOutput {
        points,
        sections,
        files,
    })
}
