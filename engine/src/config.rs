//! Configuration: Electric's own environment variables (so Ampere is a drop-in replacement), each
//! also a `--flag`, plus Ampere's `--cores` and `--io-driver`.

use crate::runtime::IoDriver;
use clap::Parser;
use std::path::PathBuf;
use std::time::Duration;

/// Ampere: a thread-per-core Postgres sync engine speaking the Electric Shape API.
#[derive(Parser, Debug, Clone)]
#[command(name = "ampere", version, about, long_about = None)]
pub struct Config {
    /// Postgres URL (postgresql://user:pass@host:port/db). Unset: start an embedded private
    /// cluster from the system's Postgres binaries under the storage dir.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,

    /// A pooled connection URL (PgBouncer in transaction mode, a provider's pooler) for snapshot
    /// and catalog queries; replication always uses `DATABASE_URL`. TLS settings apply to both.
    #[arg(long, env = "ELECTRIC_POOLED_DATABASE_URL")]
    pub pooled_database_url: Option<String>,

    /// The older name of `ELECTRIC_POOLED_DATABASE_URL`.
    #[arg(long, env = "ELECTRIC_QUERY_DATABASE_URL", hide = true)]
    pub query_database_url: Option<String>,

    /// HTTP port.
    #[arg(long, env = "ELECTRIC_PORT", default_value_t = 3000)]
    pub port: u16,

    /// Address to listen on.
    #[arg(long, env = "AMPERE_LISTEN_ADDR", default_value = "0.0.0.0")]
    pub listen_addr: std::net::IpAddr,

    /// With the default listen address, listen on IPv6 too (`::`, dual stack).
    #[arg(long, env = "ELECTRIC_LISTEN_ON_IPV6", value_parser = parse_bool, default_value = "false",
          action = clap::ArgAction::Set)]
    pub listen_on_ipv6: bool,

    /// How long a client connection may go without sending (waiting for its next request, or
    /// within one). Unset: 60 s between requests, 30 s within one.
    #[arg(long, env = "ELECTRIC_TCP_READ_TIMEOUT", value_parser = parse_human_time)]
    pub tcp_read_timeout: Option<Duration>,

    /// How long a response write may stall (a client that stops reading). Unset: 60 s.
    #[arg(long, env = "ELECTRIC_TCP_SEND_TIMEOUT", value_parser = parse_human_time)]
    pub tcp_send_timeout: Option<Duration>,

    /// Secret clients must pass as `?secret=`. Exactly one of this and --insecure is required.
    #[arg(long, env = "ELECTRIC_SECRET")]
    pub secret: Option<String>,

    /// Serve without a secret.
    #[arg(long, env = "ELECTRIC_INSECURE", value_parser = parse_bool, default_value = "false",
          num_args = 0..=1, default_missing_value = "true")]
    pub insecure: bool,

    /// Where shape logs (and the embedded Postgres cluster) live.
    #[arg(long, env = "ELECTRIC_STORAGE_DIR", default_value = "./persistent")]
    pub storage_dir: PathBuf,

    /// Log chunk size in bytes; a response never crosses a chunk boundary.
    #[arg(long, env = "ELECTRIC_SHAPE_CHUNK_BYTES_THRESHOLD", default_value_t = 10_485_760,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub chunk_bytes_threshold: u64,

    /// Largest transaction held in memory, in bytes of replication messages. A larger one is
    /// not kept: the shapes of the tables it changed are rebuilt (409) instead of replication
    /// stopping at it. Upstream's name and default (250 MiB).
    #[arg(long, env = "ELECTRIC_EXPERIMENTAL_MAX_TXN_SIZE", default_value_t = 262_144_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_txn_size: u64,

    /// How long a live request is held, in ms (or with a unit: 20s, 500ms).
    #[arg(long, env = "ELECTRIC_LONG_POLL_TIMEOUT", default_value = "20000", value_parser = parse_duration_ms)]
    pub long_poll_timeout: Duration,

    /// How long an SSE live response streams before it ends (the client reconnects), in ms.
    /// Upstream fixes it at 60 s; the cache-control `max-age` of SSE responses follows it.
    #[arg(long, env = "AMPERE_SSE_TIMEOUT", default_value = "60000", value_parser = parse_duration_ms)]
    pub sse_timeout: Duration,

    /// Silence after which an SSE stream sends a `: keep-alive` comment, in ms (upstream: 21 s).
    #[arg(long, env = "AMPERE_SSE_KEEPALIVE", default_value = "21000", value_parser = parse_nonzero_duration_ms)]
    pub sse_keepalive: Duration,

    /// `max-age` of non-live responses, seconds.
    #[arg(long, env = "ELECTRIC_CACHE_MAX_AGE", default_value_t = 60)]
    pub cache_max_age: u64,

    /// `stale-while-revalidate` of non-live responses, seconds.
    #[arg(long, env = "ELECTRIC_CACHE_STALE_AGE", default_value_t = 300)]
    pub cache_stale_age: u64,

    /// Enables `DELETE /v1/shape` (as upstream's integration-testing switch does).
    #[arg(long, env = "ELECTRIC_ENABLE_INTEGRATION_TESTING", value_parser = parse_bool,
          default_value = "false", num_args = 0..=1, default_missing_value = "true")]
    pub enable_integration_testing: bool,

    /// Suffix of the publication and slot names (`electric_publication_<id>`, `electric_slot_<id>`).
    #[arg(long, env = "ELECTRIC_REPLICATION_STREAM_ID", default_value = "default", value_parser = parse_stream_id)]
    pub replication_stream_id: String,

    /// The stack id subquery tags hash (upstream's `ELECTRIC_DATABASE_ID`; default
    /// `single_stack`, as a standalone Electric).
    #[arg(long, env = "ELECTRIC_DATABASE_ID")]
    pub database_id: Option<String>,

    /// Most transactions a subquery shape keeps while one of its move-in queries runs; past
    /// it the shape is dropped (409), as upstream.
    #[arg(long, env = "ELECTRIC_SUBQUERY_BUFFER_MAX_TRANSACTIONS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub subquery_buffer_max_transactions: u64,

    /// Most shapes kept; past it the least recently used shape is evicted (its handle gets
    /// 409). Enforced per core as `ceil(max / cores)`, since each core owns its shapes.
    #[arg(long, env = "ELECTRIC_MAX_SHAPES", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_shapes: Option<u64>,

    /// Admission control: most shape requests in flight per node, as JSON
    /// `{"initial":N,"existing":M}` (initial: without a handle; existing: with one). Past the
    /// initial limit a request queues for a slot, past the existing one (or a full queue) it
    /// gets 503 with `retry-after` (`app::admission`).
    #[arg(long, env = "ELECTRIC_MAX_CONCURRENT_REQUESTS",
          default_value = r#"{"initial":300,"existing":10000}"#, value_parser = parse_admission)]
    pub max_concurrent_requests: AdmissionLimits,

    /// Postgres connections for snapshots and queries, split evenly over the cores (each core
    /// gets at least one); requests past it wait for a connection.
    #[arg(long, env = "ELECTRIC_DB_POOL_SIZE", default_value_t = 20,
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub db_pool_size: u64,

    /// Port of the Prometheus `/metrics` listener (same address as the API); unset: no listener.
    #[arg(long, env = "ELECTRIC_PROMETHEUS_PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub prometheus_port: Option<u16>,

    /// Cores (one monoio runtime each). Default: all available.
    /// Memory for recently closed chunks, in bytes, for the whole node (split over the
    /// cores); other closed chunks are served from their files (the page cache).
    #[arg(long, env = "AMPERE_CHUNK_CACHE_BYTES", default_value_t = 64 << 20)]
    pub chunk_cache_bytes: u64,

    #[arg(long, env = "AMPERE_CORES")]
    pub cores: Option<usize>,

    /// A CA certificate (PEM) to verify the database server's certificate with: the
    /// connection then requires TLS and checks the certificate and host name (unless the URL
    /// asks for `sslmode=verify-ca`).
    #[arg(long, env = "ELECTRIC_DATABASE_CA_CERTIFICATE_FILE")]
    pub database_ca_certificate_file: Option<std::path::PathBuf>,

    /// Try a database host's IPv6 addresses first (its IPv4 ones follow).
    #[arg(long, env = "ELECTRIC_DATABASE_USE_IPV6", value_parser = parse_bool, default_value = "false",
          action = clap::ArgAction::Set)]
    pub database_use_ipv6: bool,

    /// TCP keepalive on database connections: idle time before the first probe (`10s`, `1m`,
    /// `500ms`; a bare number is milliseconds). Unset: the OS default (keepalive off).
    #[arg(long, env = "ELECTRIC_DATABASE_TCP_KEEPALIVE_IDLE", value_parser = parse_human_time)]
    pub database_tcp_keepalive_idle: Option<Duration>,

    /// TCP keepalive: time between probes.
    #[arg(long, env = "ELECTRIC_DATABASE_TCP_KEEPALIVE_INTERVAL", value_parser = parse_human_time)]
    pub database_tcp_keepalive_interval: Option<Duration>,

    /// TCP keepalive: unanswered probes before the connection is dropped.
    #[arg(long, env = "ELECTRIC_DATABASE_TCP_KEEPALIVE_COUNT",
          value_parser = clap::value_parser!(u32).range(1..=127))]
    pub database_tcp_keepalive_count: Option<u32>,

    /// TCP_USER_TIMEOUT on database connections: how long sent data may stay unacknowledged
    /// before the connection is dropped.
    #[arg(long, env = "ELECTRIC_DATABASE_TCP_USER_TIMEOUT", value_parser = parse_human_time)]
    pub database_tcp_user_timeout: Option<Duration>,

    /// Never create the publication, add tables to it or change a table's replica identity: an
    /// administrator does (least privilege). A table that is not ready gets a clear error.
    #[arg(long, env = "ELECTRIC_MANUAL_TABLE_PUBLISHING", value_parser = parse_bool,
          default_value = "false", action = clap::ArgAction::Set)]
    pub manual_table_publishing: bool,

    /// Use a temporary replication slot, which Postgres drops when the replication connection
    /// closes (shutdown, crash, reconnect): nothing is left behind, and stored shapes do not
    /// survive a restart (their changes were not kept).
    #[arg(long, env = "CLEANUP_REPLICATION_SLOTS_ON_SHUTDOWN", value_parser = parse_bool,
          default_value = "false", action = clap::ArgAction::Set)]
    pub cleanup_replication_slots_on_shutdown: bool,

    /// A temporary slot with a random name, so instances of one stream id (a rolling deploy)
    /// do not wait for each other's slot.
    #[arg(long, env = "ELECTRIC_TEMPORARY_REPLICATION_SLOT_USE_RANDOM_NAME", value_parser = parse_bool,
          default_value = "false", action = clap::ArgAction::Set)]
    pub temporary_replication_slot_use_random_name: bool,

    /// Close every database connection once replication has brought no transaction for this
    /// long (at least 30 s; unset or 0: never), so a scale-to-zero database can sleep; the
    /// next shape request reconnects.
    #[arg(long, env = "ELECTRIC_REPLICATION_IDLE_TIMEOUT", value_parser = parse_idle_timeout)]
    pub replication_idle_timeout: Option<Duration>,

    /// A replication connection that brings nothing (no data, no keepalive answering Ampere's
    /// status updates) for this long is declared dead and replaced.
    #[arg(long, env = "AMPERE_REPLICATION_SILENCE_TIMEOUT", default_value = "30s",
          value_parser = parse_human_time)]
    pub replication_silence_timeout: Duration,

    /// I/O driver: epoll is faster for small requests on virtualized kernels; uring and auto
    /// (io_uring when available) are there to measure.
    #[arg(long, env = "AMPERE_IO_DRIVER", default_value = "epoll")]
    pub io_driver: IoDriver,
}

impl Config {
    /// The address the HTTP server binds: `::` (both families) for the default address with
    /// `ELECTRIC_LISTEN_ON_IPV6`.
    pub fn http_listen_ip(&self) -> std::net::IpAddr {
        let unspecified_v4 = self.listen_addr == std::net::IpAddr::from([0, 0, 0, 0]);
        if self.listen_on_ipv6 && unspecified_v4 {
            std::net::IpAddr::from(std::net::Ipv6Addr::UNSPECIFIED)
        } else {
            self.listen_addr
        }
    }

    /// The HTTP server's bounds, with the configured TCP timeouts.
    pub fn http_limits(&self) -> crate::http::Limits {
        let mut limits = crate::http::Limits::default();
        if let Some(t) = self.tcp_read_timeout {
            limits.idle_timeout = t;
            limits.header_timeout = t;
            limits.body_timeout = t;
        }
        if let Some(t) = self.tcp_send_timeout {
            limits.write_timeout = t;
        }
        limits
    }

    /// The URL for snapshot and catalog queries: the pooled one when given, else `db_url`.
    pub fn query_url<'a>(&'a self, db_url: &'a str) -> &'a str {
        self.pooled_database_url
            .as_deref()
            .or(self.query_database_url.as_deref())
            .unwrap_or(db_url)
    }

    /// The Postgres connection settings for `url` (the `DATABASE_URL`) with this
    /// configuration's TLS settings applied. With a CA file, the default `sslmode=prefer`
    /// becomes `verify-full`: a CA given to verify the server must not fall back to plaintext.
    pub fn pg_connect_config(
        &self,
        url: &str,
    ) -> Result<crate::pg::ConnectConfig, crate::pg::PgError> {
        use crate::pg::tls::SslMode;
        let mut cfg = crate::pg::ConnectConfig::from_url(url)?;
        cfg.prefer_ipv6 = self.database_use_ipv6;
        cfg.tcp = crate::pg::TcpLiveness {
            keepalive_idle: self.database_tcp_keepalive_idle,
            keepalive_interval: self.database_tcp_keepalive_interval,
            keepalive_count: self.database_tcp_keepalive_count,
            user_timeout: self.database_tcp_user_timeout,
        };
        if let Some(ca) = &self.database_ca_certificate_file {
            cfg.tls.ca_file = Some(ca.clone());
            if matches!(cfg.tls.mode, SslMode::Prefer | SslMode::Allow) {
                cfg.tls.mode = SslMode::VerifyFull;
            }
        }
        Ok(cfg)
    }

    /// Checks cross-field rules; the message is one line for the user.
    pub fn validate(&self) -> Result<(), String> {
        match (&self.secret, self.insecure) {
            (Some(_), true) => {
                return Err("set either ELECTRIC_SECRET or ELECTRIC_INSECURE=true, not both".into())
            }
            (None, false) => return Err(
                "ELECTRIC_SECRET is required (or set ELECTRIC_INSECURE=true to serve without one)"
                    .into(),
            ),
            (Some(s), false) if s.is_empty() => {
                return Err("ELECTRIC_SECRET must not be empty".into())
            }
            _ => {}
        }
        if let Some(0) = self.cores {
            return Err("--cores must be at least 1".into());
        }
        if let Some(n) = self.cores {
            if n > 256 {
                return Err("--cores must be at most 256".into());
            }
        }
        // A closed snapshot chunk is one storage record: the threshold plus the row that crossed
        // it must fit the record limit, so the threshold may use half of it.
        let max_chunk = crate::storage::record::MAX_PAYLOAD as u64 / 2;
        if self.chunk_bytes_threshold > max_chunk {
            return Err(format!(
                "ELECTRIC_SHAPE_CHUNK_BYTES_THRESHOLD={} exceeds the storage format's limit of \
                 {max_chunk} bytes (half of its {} MiB record size)",
                self.chunk_bytes_threshold,
                crate::storage::record::MAX_PAYLOAD >> 20
            ));
        }
        if self.prometheus_port == Some(self.port) {
            return Err("ELECTRIC_PROMETHEUS_PORT must differ from ELECTRIC_PORT".into());
        }
        Ok(())
    }

    pub fn cores(&self) -> usize {
        self.cores.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
    }

    /// One core's share of `ELECTRIC_DB_POOL_SIZE`.
    pub fn db_pool_size_per_core(&self) -> usize {
        (self.db_pool_size as usize).div_ceil(self.cores()).max(1)
    }

    /// The shape limit of one core, if any.
    pub fn max_shapes_per_core(&self) -> Option<usize> {
        self.max_shapes
            .map(|m| (m as usize).div_ceil(self.cores()).max(1))
    }

    pub fn publication_name(&self) -> String {
        format!("electric_publication_{}", self.replication_stream_id)
    }

    /// The slot's name; with a random name, a new one per call (the caller keeps it).
    pub fn slot_name(&self) -> String {
        if self.temporary_replication_slot_use_random_name {
            let random = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0)
                ^ (u64::from(std::process::id()) << 40);
            return format!(
                "electric_slot_{}_{:012x}",
                self.replication_stream_id,
                random & 0xffff_ffff_ffff
            );
        }
        format!("electric_slot_{}", self.replication_stream_id)
    }

    /// Whether the slot is temporary (dropped by Postgres when its connection closes).
    pub fn temporary_slot(&self) -> bool {
        self.cleanup_replication_slots_on_shutdown
            || self.temporary_replication_slot_use_random_name
    }
}

/// Variables of Electric's that Ampere reads outside `Config` (the log filter in `main`).
const READ_ELSEWHERE: &[&str] = &["ELECTRIC_LOG_LEVEL"];

/// Of the environment's variable names, those that look like Electric's settings
/// (`ELECTRIC_*`, and `CLEANUP_REPLICATION_SLOTS_ON_SHUTDOWN`) but that Ampere does not read:
/// each gets a warning at start instead of being silently ignored.
pub fn unimplemented_settings(names: impl IntoIterator<Item = String>) -> Vec<String> {
    use clap::CommandFactory;
    let command = Config::command();
    let known: Vec<String> = command
        .get_arguments()
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .chain(READ_ELSEWHERE.iter().map(|s| s.to_string()))
        .collect();
    let mut unused: Vec<String> = names
        .into_iter()
        .filter(|n| n.starts_with("ELECTRIC_") || n == "CLEANUP_REPLICATION_SLOTS_ON_SHUTDOWN")
        .filter(|n| !known.contains(n))
        .collect();
    unused.sort();
    unused
}

/// Electric's human-readable times: a positive number with an optional unit, `ms`/`msec`
/// (the default), `s`/`sec`, `m`/`min`.
fn parse_human_time(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("invalid time {s:?} (e.g. 500ms, 10s, 2m)"))?;
    let ms_per = match unit.trim() {
        "" | "ms" | "msec" => 1.0,
        "s" | "sec" => 1000.0,
        "m" | "min" => 60_000.0,
        other => return Err(format!("invalid time unit {other:?} in {s:?} (ms, s or m)")),
    };
    let ms = value * ms_per;
    if !(1.0..=7.0 * 86_400_000.0).contains(&ms) {
        return Err(format!("time {s:?} out of range (1 ms to 7 days)"));
    }
    Ok(Duration::from_millis(ms as u64))
}

/// `ELECTRIC_REPLICATION_IDLE_TIMEOUT`: 0 is off; otherwise at least 30 s, as upstream (shorter
/// would churn connections; providers take minutes to scale down anyway).
fn parse_idle_timeout(s: &str) -> Result<Duration, String> {
    if s.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    let t = parse_human_time(s)?;
    if t < Duration::from_secs(30) {
        return Err(format!("{s:?} is below the minimum of 30s"));
    }
    Ok(t)
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        other => Err(format!("expected true or false, got {other:?}")),
    }
}

fn parse_duration_ms(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000)
    } else {
        (s, 1)
    };
    let v: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("expected milliseconds or a duration like 20s, got {s:?}"))?;
    let ms = v
        .checked_mul(scale)
        .filter(|ms| *ms <= 3_600_000)
        .ok_or_else(|| "must be at most one hour".to_string())?;
    Ok(Duration::from_millis(ms))
}

/// `ELECTRIC_MAX_CONCURRENT_REQUESTS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdmissionLimits {
    pub initial: u64,
    pub existing: u64,
}

fn parse_admission(s: &str) -> Result<AdmissionLimits, String> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Raw {
        initial: Option<u64>,
        existing: Option<u64>,
    }
    let raw: Raw = serde_json::from_str(s)
        .map_err(|e| format!("expected JSON like {{\"initial\":300,\"existing\":10000}}: {e}"))?;
    let limits = AdmissionLimits {
        initial: raw.initial.unwrap_or(300),
        existing: raw.existing.unwrap_or(10_000),
    };
    if limits.initial == 0 || limits.existing == 0 {
        return Err("limits must be at least 1".to_string());
    }
    Ok(limits)
}

fn parse_nonzero_duration_ms(s: &str) -> Result<Duration, String> {
    let d = parse_duration_ms(s)?;
    if d < Duration::from_millis(10) {
        return Err("must be at least 10 ms".to_string());
    }
    Ok(d)
}

fn parse_stream_id(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 40
        && s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?} is not a valid unquoted identifier (lower-case letters, digits, _; at most 40 chars)"
        ))
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn human_times_as_electric() {
        assert_eq!(parse_human_time("500"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_human_time("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_human_time("1.5 min"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_human_time("250msec"), Ok(Duration::from_millis(250)));
        for bad in ["", "s", "-1s", "0", "10h", "1e9", "nan", "99999999m"] {
            assert!(parse_human_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn settings_ampere_does_not_read_are_listed() {
        let names = [
            "ELECTRIC_PORT",
            "ELECTRIC_LOG_LEVEL",
            "ELECTRIC_DATABASE_CA_CERTIFICATE_FILE",
            "ELECTRIC_OTLP_ENDPOINT",
            "ELECTRIC_PORTT",
            "CLEANUP_REPLICATION_SLOTS_ON_SHUTDOWN",
            "ELECTRIC_STATSD_HOST",
            "DATABASE_URL",
            "AMPERE_CORES",
            "HOME",
        ]
        .map(String::from);
        assert_eq!(
            unimplemented_settings(names),
            [
                "ELECTRIC_OTLP_ENDPOINT",
                "ELECTRIC_PORTT",
                "ELECTRIC_STATSD_HOST"
            ]
        );
    }

    use super::*;

    fn parse(args: &[&str]) -> Result<Config, String> {
        let mut v = vec!["ampere"];
        v.extend_from_slice(args);
        let c = Config::try_parse_from(v).map_err(|e| e.to_string())?;
        c.validate()?;
        Ok(c)
    }

    #[test]
    fn exactly_one_of_secret_and_insecure() {
        assert!(parse(&[]).is_err());
        assert!(parse(&["--insecure"]).is_ok());
        assert!(parse(&["--secret", "s"]).is_ok());
        assert!(parse(&["--secret", "s", "--insecure"]).is_err());
    }

    #[test]
    fn chunk_threshold_fits_the_storage_format() {
        let max = (crate::storage::record::MAX_PAYLOAD / 2).to_string();
        let over = (crate::storage::record::MAX_PAYLOAD / 2 + 1).to_string();
        assert!(parse(&["--insecure", "--chunk-bytes-threshold", &max]).is_ok());
        let err = parse(&["--insecure", "--chunk-bytes-threshold", &over]).unwrap_err();
        assert!(err.contains("exceeds the storage format's limit"), "{err}");
        assert!(parse(&["--insecure", "--chunk-bytes-threshold", "0"]).is_err());
    }

    #[test]
    fn durations_and_stream_ids() {
        assert_eq!(parse_duration_ms("20000").unwrap(), Duration::from_secs(20));
        assert_eq!(parse_duration_ms("3s").unwrap(), Duration::from_secs(3));
        assert!(parse_duration_ms("x").is_err());
        assert!(parse_stream_id("default").is_ok());
        assert!(parse_stream_id("Bad-Id").is_err());
    }

    #[test]
    fn admission_limits_and_sse_settings() {
        let c = parse(&["--insecure"]).unwrap();
        assert_eq!(
            c.max_concurrent_requests,
            AdmissionLimits {
                initial: 300,
                existing: 10_000
            }
        );
        assert_eq!(c.sse_timeout, Duration::from_secs(60));
        assert_eq!(c.sse_keepalive, Duration::from_secs(21));
        assert_eq!(
            parse_admission(r#"{"existing":5}"#).unwrap(),
            AdmissionLimits {
                initial: 300,
                existing: 5
            }
        );
        assert!(parse_admission("300").is_err());
        assert!(parse_admission(r#"{"initial":0}"#).is_err());
        assert!(parse_admission(r#"{"initial":-1}"#).is_err());
        assert!(parse_admission(r#"{"initial":1,"other":2}"#).is_err());
        assert!(parse(&["--insecure", "--sse-keepalive", "0"]).is_err());
        assert!(parse(&["--insecure", "--port", "4000", "--prometheus-port", "4000"]).is_err());
        assert!(parse(&["--insecure", "--prometheus-port", "0"]).is_err());
    }
}
