//! Runs `bench-harness suite` at its smallest grid (one point per scenario, epoll only) against
//! a real Postgres, the real `ampere` and the real `loadgen`, into a temporary directory, and
//! checks that RESULTS.md and the plots are there with every expected section.
//!
//! Only structure and completeness are asserted, never timings. `ampere` and `loadgen` are
//! `AMPERE_BIN`/`LOADGEN_BIN` if set, else built here into this test's target directory.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds `ampere` and `loadgen` into this test's target directory and profile.
fn binaries() -> (PathBuf, PathBuf) {
    let from_env = (
        std::env::var_os("AMPERE_BIN").map(PathBuf::from),
        std::env::var_os("LOADGEN_BIN").map(PathBuf::from),
    );
    if let (Some(ampere), Some(loadgen)) = from_env {
        return (ampere, loadgen);
    }
    // <target>/<profile>/deps/suite_smoke-<hash>
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    let target_dir = profile_dir.parent().unwrap();
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args([
            "build", "-p", "engine", "--bin", "ampere", "-p", "loadgen", "--bin", "loadgen",
        ])
        .arg("--target-dir")
        .arg(target_dir);
    if release {
        build.arg("--release");
    }
    let status = build.status().expect("run cargo build");
    assert!(status.success(), "building ampere and loadgen failed");
    (profile_dir.join("ampere"), profile_dir.join("loadgen"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

#[test]
fn suite_writes_results_and_plots() {
    let (ampere, loadgen) = binaries();
    let out = std::env::temp_dir().join(format!("suite-smoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let status = Command::new(env!("CARGO_BIN_EXE_bench-harness"))
        .args([
            "suite",
            "--quick",
            "--smallest",
            "--drivers",
            "epoll",
            "--cores",
            "1",
        ])
        .arg("--out")
        .arg(&out)
        .arg("--ampere-bin")
        .arg(&ampere)
        .arg("--loadgen-bin")
        .arg(&loadgen)
        .status()
        .expect("run bench-harness suite");
    assert!(status.success(), "suite failed: {status}");

    let results = read(&out.join("RESULTS.md"));
    for expected in [
        "# Benchmark results",
        "## Run",
        "- Commit: ",
        "- Machine: ",
        "## Ratios against same-run baselines",
        "| pg_recvlogical |",
        "| nginx |",
        "ELECTRIC_MAX_CONCURRENT_REQUESTS={\"initial\":100000,\"existing\":100000}",
        "### `write-fanout`",
        "### `unrelated-shapes-latency`",
        "### `many-shapes-one-client`",
        "### `concurrent-shape-creation`",
        "Electric mean ms",
        "](latency-vs-clients-write-fanout.svg)",
        "](latency-vs-shapes-unrelated-shapes-latency.svg)",
        "### Replication drain vs pg_recvlogical",
        "vs pg_recvlogical",
        "### Catch-up serving vs nginx",
        "vs nginx",
        "### Held live requests (long-poll and SSE)",
        "### Initial sync",
        "### Shape routing",
    ] {
        assert!(
            results.contains(expected),
            "RESULTS.md lacks {expected:?}:\n{results}"
        );
    }
    // Every benchmark ran and every load point produced figures.
    assert!(!results.contains("**Failed:**"), "{results}");
    assert!(!results.contains("failed:"), "{results}");
    // One row per load scenario at the smallest grid, Electric's figure beside it.
    assert!(results.contains("| 10 | ampere (epoll) |"), "{results}");
    assert!(results.contains("| 50 | ampere (epoll) |"), "{results}");

    for plot in [
        "latency-vs-clients-write-fanout.svg",
        "latency-vs-shapes-unrelated-shapes-latency.svg",
        "latency-vs-shapes-many-shapes-one-client.svg",
        "latency-vs-shapes-concurrent-shape-creation.svg",
    ] {
        let svg = read(&out.join(plot));
        assert!(svg.starts_with("<svg"), "{plot}");
        assert!(svg.trim_end().ends_with("</svg>"), "{plot}");
        assert!(svg.contains("ampere (epoll)"), "{plot}");
        assert!(svg.contains("Electric (published)"), "{plot}");
        assert!(svg.contains("<circle"), "{plot} has no measured point");
    }
    let _ = std::fs::remove_dir_all(&out);
}
