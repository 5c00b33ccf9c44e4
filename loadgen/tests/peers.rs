//! `write-fanout` spread over two loadgen processes (a leader that writes and a follower on its
//! table), from two loopback source addresses, with the server's metrics scraped around and
//! between the writes: both processes see every write, the leader watches the follower's CPU,
//! and the server's request counter moves by one answered long-poll per client and write.

mod support;

use std::process::{Command, Stdio};

use serde_json::Value;
use support::{ampere_bin, Server};

const WRITES: u64 = 3;
const CLIENTS_EACH: u64 = 3;

#[test]
fn a_leader_and_a_follower_share_one_run() {
    let bin = ampere_bin();
    let cluster = testkit::Cluster::start().expect("start Postgres");
    let db = cluster.create_database().expect("create database");
    let url = db.url();
    let metrics = testkit::ports::lease();
    let server = Server::start_with_env(
        &bin,
        &url,
        &[("ELECTRIC_PROMETHEUS_PORT", metrics.port().to_string())],
    );
    let sync = server.dir.join("sync");
    std::fs::create_dir_all(&sync).expect("sync dir");
    let table = format!("loadgen_peers_{}", std::process::id());
    // Global options (before the scenario), then `write-fanout` and its options.
    let global = |json: &str| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_loadgen"));
        command
            .args(["--target", &server.url()])
            .args(["--source-addrs", "127.0.0.2-127.0.0.3"])
            .args(["--database-url", &url])
            .args(["--table", &table])
            .arg("--json")
            .arg(server.dir.join(json))
            .stdin(Stdio::null());
        command
    };
    let fanout = |command: &mut Command| {
        command
            .args(["write-fanout", "--clients", &CLIENTS_EACH.to_string()])
            .args(["--writes", &WRITES.to_string(), "--writes-per-sec", "1"])
            .args(["--write-jitter-ms", "100", "--spawn-per-sec", "100"])
            .arg("--sync-dir")
            .arg(&sync);
    };
    let mut follower = global("follower.json");
    fanout(&mut follower);
    let follower = follower
        .args(["--follower-id", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the follower");
    let follower_pid = follower.id();
    let mut leader = global("leader.json");
    leader
        .args(["--server-pid", &server.pid().to_string()])
        .args(["--server-pid", &follower_pid.to_string()])
        .arg("--server-metrics")
        .arg(format!("http://127.0.0.1:{}/metrics", metrics.port()));
    fanout(&mut leader);
    let leader = leader
        .args(["--followers", "1"])
        .output()
        .expect("run the leader");
    let follower = follower.wait_with_output().expect("run the follower");
    let context = format!(
        "leader: {}\n{}\n{}\nfollower: {}\n{}\n{}\nampere:\n{}",
        leader.status,
        String::from_utf8_lossy(&leader.stdout),
        String::from_utf8_lossy(&leader.stderr),
        follower.status,
        String::from_utf8_lossy(&follower.stdout),
        String::from_utf8_lossy(&follower.stderr),
        server.log()
    );
    assert!(
        leader.status.success() && follower.status.success(),
        "{context}"
    );
    let read = |name: &str| -> Value {
        let text = std::fs::read_to_string(server.dir.join(name)).expect("a JSON report");
        serde_json::from_str(&text).expect("valid JSON")
    };
    let (leader, follower) = (read("leader.json"), read("follower.json"));
    for report in [&leader, &follower] {
        assert_eq!(report["complete"], Value::Bool(true), "{context}");
        assert_eq!(
            report["client_writes_received"],
            Value::from(CLIENTS_EACH * WRITES),
            "{context}"
        );
        let per_write = report["per_write"].as_array().expect("per_write");
        assert_eq!(per_write.len() as u64, WRITES, "{context}");
        assert!(per_write
            .iter()
            .all(|w| w["received"].as_u64() == Some(CLIENTS_EACH)));
    }
    // The follower's latencies are measured on the leader's stamps: positive, and far below
    // the run's length (a clock mismatch would show as huge or clamped values).
    let p50 = follower["latency_every_client"]["p50_ms"].as_f64().unwrap();
    assert!(p50 > 0.0 && p50 < 10_000.0, "{context}");
    let phase = &leader["resources"]["write_phase"];
    let servers = phase["servers"].as_array().expect("phase servers");
    assert_eq!(servers.len(), 2, "ampere and the follower: {context}");
    assert_eq!(servers[1]["pid"], Value::from(follower_pid));
    // Every write answered each client's held long-poll once.
    let answered = |counters: &Value| -> f64 {
        counters
            .as_object()
            .expect("counters")
            .iter()
            .filter(|(k, _)| k.starts_with("ampere_http_requests_total{route=\"shape_get\""))
            .filter_map(|(_, v)| v.as_f64())
            .sum()
    };
    let metrics = &phase["server_metrics"];
    assert_eq!(metrics["error"], Value::Null, "{context}");
    assert_eq!(
        answered(&metrics["counters"]),
        (2 * CLIENTS_EACH * WRITES) as f64,
        "{context}"
    );
    let per_write = metrics["per_write"].as_array().expect("per-write counters");
    assert_eq!(per_write.len() as u64, WRITES);
    for write in per_write {
        assert_eq!(answered(write), (2 * CLIENTS_EACH) as f64, "{context}");
    }
}
