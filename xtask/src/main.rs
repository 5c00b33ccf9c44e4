//! `cargo xtask <command>`: the project's set-up and test entry points.
//!
//! - `cargo xtask run [-- ampere args]`: install missing system packages, build and run `ampere`
//!   (with its embedded Postgres when `DATABASE_URL` is unset).
//! - `cargo xtask test`: install missing system packages and test tools, then run the whole suite:
//!   fmt, clippy, every Rust test (unit, integration against a real Postgres), the official
//!   `@electric-sql/client` conformance suite, the example application's end-to-end test in
//!   headless Chromium (`examples/todo`), and short fuzz smoke runs.
//! - `cargo xtask deps`: only the installation step.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

const APT_PACKAGES: &[&str] = &[
    "postgresql-15",
    "postgresql-contrib",
    "clang",
    "libclang-dev",
    "wrk",
    "nginx",
    "hyperfine",
    // The pooled-connection tests (`engine/tests/pg_pooled.rs`).
    "pgbouncer",
    // Certificates for the conformance run against a TLS-only Postgres.
    "openssl",
    // The browser of the example application's end-to-end test (`examples/todo/test/e2e.mjs`,
    // driven by puppeteer-core: nothing downloads a browser of its own).
    "chromium",
];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root();
    std::env::set_current_dir(&root).context("enter workspace root")?;
    match args.first().map(String::as_str) {
        Some("deps") => deps(),
        Some("test") => {
            deps()?;
            test(&args[1..])
        }
        Some("run") => {
            deps()?;
            let rest: Vec<&str> = args[1..]
                .iter()
                .map(String::as_str)
                .filter(|a| *a != "--")
                .collect();
            let mut c = Command::new("cargo");
            c.args(["run", "--release", "--bin", "ampere", "--"])
                .args(rest);
            if std::env::var_os("ELECTRIC_SECRET").is_none()
                && std::env::var_os("ELECTRIC_INSECURE").is_none()
            {
                eprintln!("xtask: neither ELECTRIC_SECRET nor ELECTRIC_INSECURE set; running with ELECTRIC_INSECURE=true for local use");
                c.env("ELECTRIC_INSECURE", "true");
            }
            status(&mut c)
        }
        _ => {
            eprintln!("usage: cargo xtask <deps|test|run> [args]");
            std::process::exit(2);
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd} >/dev/null 2>&1")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn dpkg_installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

/// Installs what a fresh Debian machine of this kind lacks. Idempotent and quick when present.
fn deps() -> Result<()> {
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .copied()
        .filter(|p| !dpkg_installed(p))
        .collect();
    if !missing.is_empty() {
        eprintln!("xtask: installing {}", missing.join(" "));
        status(Command::new("apt-get").arg("update").arg("-q"))?;
        status(
            Command::new("apt-get")
                .args(["install", "-y", "-q", "--no-install-recommends"])
                .args(&missing)
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )?;
    }
    if !Path::new("/usr/lib/postgresql/15/bin/initdb").exists() {
        bail!("postgresql-15 server binaries missing after install");
    }
    Ok(())
}

fn test(args: &[String]) -> Result<()> {
    let quick = args.iter().any(|a| a == "--quick");
    status(Command::new("cargo").args(["fmt", "--all", "--check"]))?;
    status(Command::new("cargo").args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    if !have("cargo-nextest") {
        status(Command::new("cargo").args(["install", "--locked", "cargo-nextest"]))?;
    }
    status(Command::new("cargo").args([
        "build",
        "--release",
        "-p",
        "engine",
        "--bin",
        "ampere",
        "-p",
        "loadgen",
        "--bin",
        "loadgen",
    ]))?;
    // Tests that run the server or the load generator as separate programs (loadgen and
    // bench-harness smoke tests) use the release binaries built just above instead of building
    // their own inside a test's time limit.
    let ampere_bin = Path::new("target/release/ampere")
        .canonicalize()
        .context("locate target/release/ampere")?;
    let loadgen_bin = Path::new("target/release/loadgen")
        .canonicalize()
        .context("locate target/release/loadgen")?;
    status(
        Command::new("cargo")
            .args([
                "nextest",
                "run",
                "--workspace",
                "--profile",
                "ci",
                "--no-tests=warn",
            ])
            .env("AMPERE_BIN", &ampere_bin)
            .env("LOADGEN_BIN", &loadgen_bin),
    )?;
    let conformance = Path::new("tests/conformance");
    if conformance.join("package.json").exists() {
        if !conformance.join("node_modules").exists() {
            status(
                Command::new("npm")
                    .args(["ci", "--no-audit", "--no-fund"])
                    .current_dir(conformance),
            )?;
        }
        status(Command::new("node").arg("run.mjs").current_dir(conformance))?;
    }
    example_e2e(&ampere_bin)?;
    if !quick && Path::new("fuzz/Cargo.toml").exists() {
        fuzz_smoke()?;
    }
    eprintln!(
        "xtask test: every stage passed (fmt, clippy, nextest, conformance, example e2e{})",
        if quick { "" } else { ", fuzz smoke" }
    );
    Ok(())
}

/// The example application (`examples/todo`) in headless Chromium: `npm ci` when its
/// dependencies are missing or older than its lock file, the front-end build, then its
/// end-to-end test (two pages, writes from a page and from psql, a reload, a server restart).
fn example_e2e(ampere_bin: &Path) -> Result<()> {
    let example = Path::new("examples/todo");
    if !example.join("package.json").exists() {
        return Ok(());
    }
    let lock = example.join("package-lock.json");
    let modules = example.join("node_modules");
    let stale = match (modified(&lock), modified(&modules)) {
        (Some(lock), Some(modules)) => lock > modules,
        _ => true,
    };
    if stale {
        status(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .env("PUPPETEER_SKIP_DOWNLOAD", "1")
                .current_dir(example),
        )?;
    }
    status(
        Command::new("npm")
            .args(["run", "--silent", "build"])
            .current_dir(example),
    )?;
    status(
        Command::new("node")
            .arg("test/e2e.mjs")
            .env("AMPERE_BIN", ampere_bin)
            .current_dir(example),
    )
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Seconds each fuzz target runs in the smoke stage.
const FUZZ_SMOKE_SECS: u32 = 15;

/// Short runs of every fuzz target, each from its committed seed corpus
/// (`fuzz/corpus/<target>`, read only: new inputs go to a scratch directory that is removed).
/// cargo-fuzz needs nightly flags; the pinned stable toolchain accepts them with
/// `RUSTC_BOOTSTRAP=1`, so no second toolchain is needed on a fresh machine.
fn fuzz_smoke() -> Result<()> {
    if !have("cargo-fuzz") {
        status(Command::new("cargo").args(["install", "--locked", "cargo-fuzz"]))?;
    }
    let out = Command::new("cargo")
        .args(["fuzz", "list"])
        .current_dir("fuzz")
        .output()
        .context("cargo fuzz list")?;
    if !out.status.success() {
        bail!(
            "cargo fuzz list failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let targets: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    if targets.is_empty() {
        bail!("cargo fuzz list named no targets");
    }
    let scratch = std::env::temp_dir().join(format!("ampere-fuzz-smoke-{}", std::process::id()));
    let result = (|| {
        for target in &targets {
            let seeds = Path::new("fuzz/corpus").join(target);
            let has_seeds = std::fs::read_dir(&seeds)
                .map(|mut entries| entries.next().is_some())
                .unwrap_or(false);
            if !has_seeds {
                bail!(
                    "fuzz target {target} has no seed corpus in {}",
                    seeds.display()
                );
            }
            let work = scratch.join(target);
            std::fs::create_dir_all(&work).with_context(|| format!("create {work:?}"))?;
            eprintln!("xtask: fuzz smoke {target} ({FUZZ_SMOKE_SECS} s)");
            status(
                Command::new("cargo")
                    .args(["fuzz", "run", target])
                    .arg(&work)
                    .arg(format!("corpus/{target}"))
                    .args([
                        "--".to_owned(),
                        format!("-max_total_time={FUZZ_SMOKE_SECS}"),
                        "-timeout=10".to_owned(),
                    ])
                    .env("RUSTC_BOOTSTRAP", "1")
                    .current_dir("fuzz"),
            )?;
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

fn status(cmd: &mut Command) -> Result<()> {
    let st = cmd
        .status()
        .with_context(|| format!("spawn {:?}", cmd.get_program()))?;
    if !st.success() {
        bail!("{cmd:?} failed: {st}");
    }
    Ok(())
}
