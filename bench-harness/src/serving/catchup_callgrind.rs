//! Instructions per catch-up response, counted by valgrind's callgrind: the proof that body bytes
//! are never copied in user space (a copy would cost instructions in proportion to the body),
//! and where a response's instructions go.
//!
//! Method: load the `items` table, start `ampere` on one core (epoll) under callgrind, catch
//! the shape up once (the shape is created, every code path warmed), then ask `requests` times
//! for one chunk from the middle of the snapshot over one keep-alive connection, with the
//! counters zeroed before (`callgrind_control -z`) and dumped after (`-d`): the dump holds
//! exactly those requests. Repeated for each chunk size and for chunks served from their files
//! (`AMPERE_CHUNK_CACHE_BYTES=0`, `sendfile`) and from memory (budget larger than the log,
//! `writev` of the chunk's buffer). If a body were copied, `memcpy` instructions per response
//! would grow with the chunk size (at least one instruction per 32 bytes with AVX2, one per
//! byte under `rep movsb`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context as _, Result};
use engine::runtime::IoDriver;
use testkit::Cluster;

use super::http::HttpClient;
use super::items;
use super::scratch::Scratch;
use super::server::{AmpereServer, ServerSpec};
use super::shape_fetch::fetch_shape;
use crate::report::{grouped, Table};

#[derive(Clone, Debug)]
pub struct CallgrindOptions {
    pub rows: u64,
    pub chunk_sizes: Vec<u64>,
    /// Requests counted per measurement.
    pub requests: u64,
    pub ampere_bin: PathBuf,
    /// Copy each callgrind dump here (for `callgrind_annotate --tree=caller` by hand).
    pub keep_dumps: Option<PathBuf>,
}

/// Where the chunks are served from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    File,
    Memory,
}

/// One measurement: instructions of `requests` responses, by component.
#[derive(Clone, Debug)]
pub struct Measurement {
    pub chunk_threshold: u64,
    pub body_bytes: usize,
    pub from_file: bool,
    /// Every request had a URL of its own (a miss in the server's closed-chunk cache).
    pub distinct_urls: bool,
    pub requests: u64,
    /// (component label, instructions) over all counted requests.
    pub components: Vec<(&'static str, u64)>,
}

/// Inclusive components (the largest inclusive count of a function whose `file:function`
/// contains the pattern) and exclusive ones (summed self cost of every matching function).
const INCLUSIVE: &[(&str, &str)] = &[
    ("total", "PROGRAM TOTALS"),
    (
        "handler (routing + serving)",
        "engine::app::router::route::{{closure}}",
    ),
    (
        "  query decoding, auth, admission and validation",
        "engine::app::router::accept",
    ),
    (
        "  shape definition lookup",
        "engine::app::router::definition::{{closure}}",
    ),
    (
        "  serving (app/serve.rs)",
        "engine::app::serve::serve_shape::{{closure}}",
    ),
    (
        "response head encoding",
        "engine::http::encode::Outgoing::new",
    ),
    ("request head parsing", "engine::http::parse::parse_head"),
];
const EXCLUSIVE: &[(&str, &[&str])] = &[
    (
        "memcpy/memmove (self)",
        &["__memcpy_", "__memmove_", "memcpy@", "memmove@"],
    ),
    ("malloc/free (self)", &["malloc.c:", "arena.c:"]),
];

/// The row counting calls into the allocator (not instructions).
const ALLOCATIONS: &str = "heap allocations (calls, not instructions)";
/// Entry points that hand out new memory; `free` is not counted.
const ALLOCATORS: &[&str] = &[
    "malloc",
    "calloc",
    "realloc",
    "aligned_alloc",
    "posix_memalign",
    "memalign",
];

/// Calls to the allocator in a callgrind dump: the `calls=` lines under a `cfn=` naming one of
/// [`ALLOCATORS`]. Function names are compressed in the dump (`(id) name` the first time, `(id)`
/// after), so ids are resolved as they are defined.
fn allocator_calls(dump: &str) -> u64 {
    let mut names = std::collections::HashMap::new();
    let mut callee_allocates = false;
    let mut total = 0;
    for line in dump.lines() {
        if let Some(spec) = line.strip_prefix("cfn=") {
            callee_allocates = is_allocator(&mut names, spec).unwrap_or(false);
        } else if let Some(spec) = line.strip_prefix("fn=") {
            is_allocator(&mut names, spec);
        } else if let Some(calls) = line.strip_prefix("calls=") {
            if callee_allocates {
                total += calls
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    total
}

/// Whether a compressed function name of the dump (`(id) name` or `(id)`) is an allocator;
/// `None` for an id not defined yet.
fn is_allocator<'a>(
    names: &mut std::collections::HashMap<&'a str, &'a str>,
    spec: &'a str,
) -> Option<bool> {
    let spec = spec.trim();
    let name = match spec.split_once(") ") {
        Some((id, name)) if id.starts_with('(') => {
            names.insert(&id[1..], name.trim());
            name.trim()
        }
        _ => names.get(spec.trim_start_matches('(').trim_end_matches(')'))?,
    };
    let bare = name.split(['\'', ' ']).next().unwrap_or(name);
    Some(ALLOCATORS.contains(&bare))
}

pub fn run(options: &CallgrindOptions) -> Result<Vec<Table>> {
    ensure!(valgrind_available(), "valgrind is not installed");
    let cluster = Cluster::start().context("start Postgres")?;
    let db = cluster.create_database().context("create database")?;
    items::create_and_fill(&db, options.rows)?;
    let scratch = Scratch::new("catchup-callgrind")?;
    let mut measurements = Vec::new();
    let mut counter = 0;
    for &chunk_bytes in &options.chunk_sizes {
        // The same URL again and again (what a catch-up storm asks), and a new URL per request
        // (an unknown parameter that changes nothing but the URL): the path a first request
        // for a chunk takes.
        for (source, distinct_urls) in [
            (Source::File, false),
            (Source::Memory, false),
            (Source::Memory, true),
        ] {
            counter += 1;
            let out_dir = scratch.dir(&format!("cg{counter}"))?;
            let wrapper = wrapper_script(&out_dir, &options.ampere_bin)?;
            let budget = match source {
                Source::File => 0u64,
                Source::Memory => 1 << 30,
            };
            let spec = ServerSpec {
                binary: wrapper,
                database_url: db.url(),
                driver: IoDriver::Epoll,
                chunk_bytes: Some(chunk_bytes),
                long_poll_ms: None,
                cores: Some(1),
                env: vec![("AMPERE_CHUNK_CACHE_BYTES", budget.to_string())],
            };
            let server = AmpereServer::start(&spec, &format!("callgrind_{counter}"))?;
            let fetch = fetch_shape(server.port, items::TABLE, false)?;
            ensure!(
                fetch.rows == options.rows,
                "catch-up returned {} rows",
                fetch.rows
            );
            let chunk = &fetch.chunks[fetch.chunks.len() / 2];
            let mut client = HttpClient::connect(server.port)?;
            let mut n = 0u64;
            let mut url = || {
                n += 1;
                if distinct_urls {
                    format!("{}&bench-url={n}", chunk.path)
                } else {
                    chunk.path.clone()
                }
            };
            // Warm the connection and the chunk (its checksum check, descriptor, page cache).
            for _ in 0..20 {
                ensure!(client.get(&url())?.status == 200, "warm-up request");
            }
            control(server.pid(), "-z")?;
            for _ in 0..options.requests {
                let response = client.get(&url())?;
                ensure!(response.status == 200, "status {}", response.status);
                ensure!(response.body.len() == chunk.body_len, "body length changed");
            }
            control(server.pid(), "-d")?;
            let dump = out_dir.join(format!("cg.{}.1", server.pid()));
            if let Some(keep) = &options.keep_dumps {
                std::fs::create_dir_all(keep)?;
                std::fs::copy(&dump, keep.join(format!("cg{counter}.out")))
                    .context("keep the callgrind dump")?;
            }
            let mut components = components(&dump)?;
            let text = std::fs::read_to_string(&dump).context("read the callgrind dump")?;
            components.push((ALLOCATIONS, allocator_calls(&text)));
            measurements.push(Measurement {
                chunk_threshold: chunk_bytes,
                body_bytes: chunk.body_len,
                from_file: source == Source::File,
                distinct_urls,
                requests: options.requests,
                components,
            });
        }
    }
    Ok(vec![table(options, &measurements)])
}

fn valgrind_available() -> bool {
    Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A script that runs `ampere` under callgrind with its output in `dir` (`cg.<pid>.<n>`);
/// it execs, so the server's pid is valgrind's.
fn wrapper_script(dir: &Path, ampere: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join("ampere-callgrind.sh");
    let text = format!(
        "#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file={}/cg.%p {}\n",
        dir.display(),
        ampere.display()
    );
    std::fs::write(&path, text).context("write the callgrind wrapper")?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .context("make the wrapper executable")?;
    Ok(path)
}

fn control(pid: u32, flag: &str) -> Result<()> {
    let out = Command::new("callgrind_control")
        .arg(flag)
        .arg(pid.to_string())
        .output()
        .context("run callgrind_control")?;
    ensure!(
        out.status.success(),
        "callgrind_control {flag} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// `(count, file:function)` lines of `callgrind_annotate`.
fn annotate(dump: &Path, inclusive: bool) -> Result<Vec<(u64, String)>> {
    let out = Command::new("callgrind_annotate")
        .arg(format!(
            "--inclusive={}",
            if inclusive { "yes" } else { "no" }
        ))
        .arg("--threshold=100")
        .arg(dump)
        .output()
        .context("run callgrind_annotate")?;
    if !out.status.success() {
        bail!(
            "callgrind_annotate failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(parse_annotate(&String::from_utf8_lossy(&out.stdout)))
}

/// Reads lines such as `47,433,629 (100.0%)  file:function [object]`.
fn parse_annotate(text: &str) -> Vec<(u64, String)> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let (count, rest) = line.split_once(' ')?;
            let count: u64 = count.replace(',', "").parse().ok()?;
            let (_, name) = rest.trim_start().split_once(")  ")?;
            Some((count, name.trim().to_string()))
        })
        .collect()
}

fn components(dump: &Path) -> Result<Vec<(&'static str, u64)>> {
    let inclusive = annotate(dump, true)?;
    let exclusive = annotate(dump, false)?;
    let mut out = Vec::new();
    for &(label, pattern) in INCLUSIVE {
        let count = inclusive
            .iter()
            .filter(|(_, name)| name.contains(pattern))
            .map(|(c, _)| *c)
            .max()
            .unwrap_or(0);
        out.push((label, count));
    }
    for &(label, patterns) in EXCLUSIVE {
        let count = exclusive
            .iter()
            .filter(|(_, name)| patterns.iter().any(|p| name.contains(p)))
            .map(|(c, _)| *c)
            .sum();
        out.push((label, count));
    }
    Ok(out)
}

fn table(options: &CallgrindOptions, measurements: &[Measurement]) -> Table {
    let mut headers = vec!["component (instructions per response)"];
    let labels: Vec<String> = measurements
        .iter()
        .map(|m| {
            format!(
                "{} B body, {}{}",
                grouped(m.body_bytes as f64),
                if m.from_file { "file" } else { "memory" },
                if m.distinct_urls {
                    ", every URL new"
                } else {
                    ""
                }
            )
        })
        .collect();
    headers.extend(labels.iter().map(String::as_str));
    let mut table = Table::new(
        "Catch-up responses under callgrind (epoll, 1 core)",
        &headers,
    );
    let rows = INCLUSIVE.len() + EXCLUSIVE.len() + 1;
    for i in 0..rows {
        let mut row = vec![measurements
            .first()
            .map_or("", |m| m.components[i].0)
            .to_string()];
        for m in measurements {
            row.push(grouped(m.components[i].1 as f64 / m.requests as f64));
        }
        table.row(row);
    }
    table.note(format!(
        "{} rows; chunk thresholds {:?} B; {} requests for the middle snapshot chunk over one keep-alive connection, counted between `callgrind_control -z` and `-d` after a catch-up and 20 warm-up requests.",
        grouped(options.rows as f64),
        options.chunk_sizes,
        options.requests,
    ));
    table.note(
        "file: AMPERE_CHUNK_CACHE_BYTES=0 (sendfile from snapshot.data); memory: budget 1 GiB (writev of the chunk's buffer); every URL new: an extra `bench-url=<n>` parameter makes each request miss the closed-chunk cache (the first request for a chunk). Inclusive counts, except the (self) rows; indented rows are inside the handler.",
    );
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_calls_into_the_allocator() {
        let dump = "fn=(1) engine::f\ncfn=(2) malloc\ncalls=3 0\n0 90\ncfn=(3) free\ncalls=2 0\n0 10\n\
fn=(4) engine::g\ncfn=(2)\ncalls=4 0\n0 40\ncfn=(5) realloc'2\ncalls=1 0\n0 7\ncfn=(1)\ncalls=9 0\n0 1\n";
        assert_eq!(allocator_calls(dump), 8);
    }

    #[test]
    fn reads_callgrind_annotate_lines() {
        let text = "--------\n47,433,629 (100.0%)  PROGRAM TOTALS\n\n\
  3,481,260 ( 7.34%)  ./string/../memmove-vec-unaligned-erms.S:__memcpy_avx_unaligned_erms [/usr/lib/libc.so.6]\n";
        let lines = parse_annotate(text);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0], (47_433_629, "PROGRAM TOTALS".to_string()));
        assert_eq!(lines[1].0, 3_481_260);
        assert!(lines[1].1.contains("__memcpy_avx_unaligned_erms"));
    }
}
