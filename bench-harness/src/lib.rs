//! Ampere's benchmark harness: measurements of the replication foundation.
//!
//! - [`bench_decode`]: single-thread pgoutput decode throughput over a captured real stream,
//!   plus a callgrind instruction count per change.
//! - [`bench_drain`]: Ampere's replication client (reading and decoding every message) against
//!   `pg_recvlogical` draining identical slots, under both monoio drivers.
//! - [`suite`]: every benchmark plus the loadgen scenarios in one run, written to
//!   `docs/benchmarks/RESULTS.md` with SVG plots.
//!
//! Every benchmark starts its own throwaway Postgres through `testkit` (or uses
//! `AMPERE_TEST_DATABASE_URL`), checks that the decoded change counts equal the rows written,
//! and reports tables that `docs/benchmarks/` copies. Timings are never asserted.

pub mod bench_decode;
pub mod bench_drain;
pub mod callgrind;
pub mod client;
pub mod machine;
pub mod recording;
pub mod recvlogical;
pub mod report;
pub mod serving;
pub mod serving_cli;
pub mod snapshot_bench;
pub mod suite;
pub mod tally;
pub mod workload;
