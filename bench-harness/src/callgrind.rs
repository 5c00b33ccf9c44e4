//! Instructions per change, counted by valgrind's callgrind.
//!
//! Wall-clock time on a shared 2-core VM is noisy; instruction counts are repeatable. The
//! harness writes the recording to a file and runs itself (`decode-replay`) under callgrind
//! twice, decoding the file once and three times. The difference of the two totals is exactly
//! two steady-state decode passes: process start, reading the file and the arena's first growth
//! cancel out.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, ensure, Context as _, Result};

use crate::bench_decode::decode_recording;
use crate::recording::Recording;
use crate::report::{grouped, Table};
use crate::tally::Tally;

/// Decode passes of the two callgrind runs; their difference is what is counted.
const PASSES_LOW: u32 = 1;
const PASSES_HIGH: u32 = 3;

/// Instruction counts of the decode loop.
#[derive(Clone, Debug)]
pub struct CallgrindResult {
    pub tally: Tally,
    /// Instructions of one steady-state pass over the prefix.
    pub instructions_per_pass: f64,
    pub command: String,
}

impl CallgrindResult {
    pub fn instructions_per_change(&self) -> f64 {
        self.instructions_per_pass / self.tally.changes().max(1) as f64
    }

    pub fn table(&self) -> Table {
        let mut table = Table::new(
            "pgoutput decode under callgrind",
            &[
                "changes",
                "messages",
                "bytes",
                "instr/pass",
                "instr/change",
                "instr/byte",
            ],
        );
        let tally = &self.tally;
        table.row(vec![
            grouped(tally.changes() as f64),
            grouped(tally.messages as f64),
            grouped(tally.bytes as f64),
            grouped(self.instructions_per_pass),
            format!("{:.0}", self.instructions_per_change()),
            format!(
                "{:.2}",
                self.instructions_per_pass / tally.bytes.max(1) as f64
            ),
        ]);
        table.note(format!(
            "(Ir with {PASSES_HIGH} passes - Ir with {PASSES_LOW} pass) / {}; command: {}",
            PASSES_HIGH - PASSES_LOW,
            self.command
        ));
        table
    }
}

/// Runs the two callgrind measurements, or returns `None` (with a message) without valgrind.
pub fn measure(prefix: &Recording) -> Result<Option<CallgrindResult>> {
    if Command::new("valgrind")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_err()
    {
        eprintln!("decode: valgrind not found, skipping the callgrind count");
        return Ok(None);
    }
    let dir = std::env::temp_dir().join(format!("bench-harness-callgrind-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let result = measure_in(&dir, prefix);
    let _ = std::fs::remove_dir_all(&dir);
    result.map(Some)
}

fn measure_in(dir: &Path, prefix: &Recording) -> Result<CallgrindResult> {
    let file = dir.join("prefix.rec");
    prefix.write_file(&file)?;
    let tally = decode_recording(prefix)?;
    eprintln!(
        "decode: callgrind over {} changes (two runs, this takes a while)",
        grouped(tally.changes() as f64)
    );
    let (low, _) = instructions(dir, &file, PASSES_LOW)?;
    let (high, command) = instructions(dir, &file, PASSES_HIGH)?;
    ensure!(
        high > low,
        "more passes counted fewer instructions ({high} <= {low})"
    );
    Ok(CallgrindResult {
        tally,
        instructions_per_pass: (high - low) as f64 / f64::from(PASSES_HIGH - PASSES_LOW),
        command,
    })
}

/// Total instructions of `decode-replay` on `file` with `passes`, and the command line.
fn instructions(dir: &Path, file: &Path, passes: u32) -> Result<(u64, String)> {
    let exe = std::env::current_exe().context("find the harness executable")?;
    let out: PathBuf = dir.join(format!("callgrind.out.{passes}"));
    let args = vec![
        "--tool=callgrind".to_string(),
        format!("--callgrind-out-file={}", out.display()),
        exe.display().to_string(),
        "decode-replay".into(),
        "--file".into(),
        file.display().to_string(),
        "--passes".into(),
        passes.to_string(),
    ];
    let output = Command::new("valgrind")
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .context("run valgrind")?;
    ensure!(
        output.status.success(),
        "valgrind failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(&out).with_context(|| format!("read {}", out.display()))?;
    use crate::report::portable_path;
    let shown = format!(
        "valgrind --tool=callgrind --callgrind-out-file={} {} decode-replay --file {} --passes {passes}",
        portable_path(&out),
        portable_path(&exe),
        portable_path(file),
    );
    Ok((parse_total(&text)?, shown))
}

/// The `totals:` (or, failing that, `summary:`) instruction count of a callgrind output file.
fn parse_total(text: &str) -> Result<u64> {
    for key in ["totals:", "summary:"] {
        if let Some(line) = text.lines().find(|l| l.starts_with(key)) {
            let first = line[key.len()..].split_whitespace().next().unwrap_or("");
            return first
                .parse()
                .with_context(|| format!("callgrind {key} line {line:?}"));
        }
    }
    bail!("callgrind output has no totals or summary line")
}

/// The body of `decode-replay`: decodes a recording file `passes` times.
pub fn replay(file: &Path, passes: u32) -> Result<Tally> {
    let recording = Recording::read_file(file)?;
    let mut tally = Tally::default();
    for _ in 0..passes {
        tally = decode_recording(&recording)?;
    }
    Ok(tally)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_totals_line() {
        let text = "version: 1\nevents: Ir\nfn=main\n1 5\nsummary: 900\ntotals: 1234 5\n";
        assert_eq!(parse_total(text).unwrap(), 1234);
        assert_eq!(parse_total("summary: 77\n").unwrap(), 77);
        assert!(parse_total("events: Ir\n").is_err());
    }
}
