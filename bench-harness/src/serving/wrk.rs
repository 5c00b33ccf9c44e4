//! `wrk` driving a list of URLs through a generated Lua script, and what its report says.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context as _, Result};

/// How clients pick URLs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// Every request asks for the same URL.
    Same,
    /// Each thread cycles through all URLs from its own starting point.
    Spread,
}

impl Pattern {
    pub fn label(self) -> &'static str {
        match self {
            Self::Same => "same chunk",
            Self::Spread => "spread over all chunks",
        }
    }
}

/// One wrk run.
#[derive(Clone, Debug)]
pub struct WrkSpec {
    pub threads: usize,
    pub connections: usize,
    pub duration: Duration,
}

/// What wrk reported.
#[derive(Clone, Debug, Default)]
pub struct WrkResult {
    pub requests: u64,
    pub seconds: f64,
    /// Responses that were not 2xx or 3xx.
    pub non_2xx: u64,
    /// connect/read/write/timeout errors summed.
    pub socket_errors: u64,
    /// Bytes read (headers and bodies), as wrk counts them.
    pub bytes_read: u64,
    pub latency_avg: String,
    pub command: String,
    /// wrk's whole report.
    pub output: String,
}

impl WrkResult {
    pub fn requests_per_second(&self) -> f64 {
        self.requests as f64 / self.seconds.max(1e-9)
    }
}

/// Writes the Lua script that requests `paths` in `pattern` order.
pub fn write_script(path: &Path, paths: &[String], pattern: Pattern) -> Result<()> {
    ensure!(!paths.is_empty(), "no URLs to request");
    let mut lua = String::from("local paths = {\n");
    for p in paths {
        // Paths are our own ASCII URLs; %q quoting is not needed but escape quotes anyway.
        lua.push_str(&format!(
            "  \"{}\",\n",
            p.replace('\\', "\\\\").replace('"', "\\\"")
        ));
    }
    lua.push_str("}\n");
    match pattern {
        Pattern::Same => lua.push_str(
            // Built in init(): wrk only fills in the Host header after the script loads.
            "local req\nfunction init(args) req = wrk.format(\"GET\", paths[1]) end\n\
             function request() return req end\n",
        ),
        Pattern::Spread => lua.push_str(
            // Threads start at different points so they do not walk in lock step.
            "local next_id = 0\n\
             function setup(thread) thread:set(\"tid\", next_id); next_id = next_id + 1 end\n\
             local i = 0\n\
             function init(args) i = (tid or 0) * 7919 end\n\
             function request()\n\
             \x20 i = i + 1\n\
             \x20 return wrk.format(\"GET\", paths[(i % #paths) + 1])\n\
             end\n",
        ),
    }
    // Inspecting statuses in Lua slows every response, so only on request (diagnosis).
    if std::env::var_os("BENCH_WRK_DEBUG").is_some() {
        lua.push_str(
            "local shown = 0\n\
             function response(status, headers, body)\n\
             \x20 if status ~= 200 and shown < 5 then shown = shown + 1; print(status, body) end\n\
             end\n",
        );
    }
    std::fs::write(path, lua).with_context(|| format!("write {}", path.display()))
}

/// Runs wrk against `127.0.0.1:<port>` with `script`.
pub fn run(spec: &WrkSpec, port: u16, script: &Path) -> Result<WrkResult> {
    let args = vec![
        format!("-t{}", spec.threads),
        format!("-c{}", spec.connections),
        format!("-d{}s", spec.duration.as_secs().max(1)),
        "--latency".to_string(),
        "-s".to_string(),
        script.display().to_string(),
        format!("http://127.0.0.1:{port}/"),
    ];
    let output = Command::new("wrk")
        .args(&args)
        .output()
        .context("run wrk (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    ensure!(
        output.status.success(),
        "wrk failed: {}{}",
        text,
        String::from_utf8_lossy(&output.stderr)
    );
    let mut result = parse(&text).with_context(|| format!("parse wrk output:\n{text}"))?;
    result.command = format!("wrk {}", args.join(" "));
    result.output = text;
    Ok(result)
}

/// Reads wrk's summary: `N requests in 10.00s, X MB read`, errors, non-2xx, latency.
pub fn parse(text: &str) -> Result<WrkResult> {
    let mut result = WrkResult::default();
    for line in text.lines().map(str::trim) {
        if let Some((count, rest)) = line.split_once(" requests in ") {
            result.requests = count.trim().parse().context("request count")?;
            let (secs, read) = rest.split_once(',').context("requests line")?;
            result.seconds = parse_seconds(secs.trim())?;
            let read = read.trim().trim_end_matches(" read");
            result.bytes_read = parse_size(read)?;
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            result.non_2xx = rest.trim().parse().context("non-2xx count")?;
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            result.socket_errors = rest
                .split(',')
                .filter_map(|part| part.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum();
        } else if let Some(rest) = line.strip_prefix("Latency") {
            if result.latency_avg.is_empty() {
                if let Some(avg) = rest.split_whitespace().next() {
                    result.latency_avg = avg.to_string();
                }
            }
        }
    }
    ensure!(result.seconds > 0.0, "no summary line");
    Ok(result)
}

fn parse_seconds(text: &str) -> Result<f64> {
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        (text, 1.0)
    };
    Ok(number.parse::<f64>().context("duration")? * scale)
}

/// wrk's sizes: `1.23GB`, `456.78MB`, `12.00KB`, `100B` (binary units).
fn parse_size(text: &str) -> Result<u64> {
    let units = [
        ("TB", 1u64 << 40),
        ("GB", 1 << 30),
        ("MB", 1 << 20),
        ("KB", 1 << 10),
    ];
    for (suffix, scale) in units {
        if let Some(n) = text.strip_suffix(suffix) {
            return Ok((n.parse::<f64>().context("size")? * scale as f64) as u64);
        }
    }
    let n = text.strip_suffix('B').unwrap_or(text);
    n.parse().context("size")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_wrk_report() {
        let text = "Running 10s test @ http://127.0.0.1:8080/\n  2 threads and 64 connections\n\
  Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency     1.50ms  300.00us  10.00ms   90.00%\n\
  153020 requests in 10.00s, 9.50GB read\n  Socket errors: connect 0, read 2, write 0, timeout 1\n\
  Non-2xx or 3xx responses: 7\nRequests/sec:  15302.00\nTransfer/sec:    0.95GB\n";
        let r = parse(text).unwrap();
        assert_eq!(r.requests, 153_020);
        assert!((r.seconds - 10.0).abs() < 1e-9);
        assert_eq!(r.bytes_read, (9.5 * (1u64 << 30) as f64) as u64);
        assert_eq!(r.non_2xx, 7);
        assert_eq!(r.socket_errors, 3);
        assert_eq!(r.latency_avg, "1.50ms");
    }
}
