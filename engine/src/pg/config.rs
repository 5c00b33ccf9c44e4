//! Connection settings, parsed from a `postgresql://` URL.

use std::str::FromStr;
use std::time::Duration;

use super::error::PgError;
use super::tls::{RootCerts, SslMode, TlsOptions};

/// Where and how to connect. Build it with [`ConnectConfig::from_url`] (or `str::parse`).
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectConfig {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub dbname: String,
    pub application_name: Option<String>,
    /// Adds `replication=database` to the startup packet, enabling the replication commands.
    pub replication: bool,
    /// Bounds TCP connect, startup and authentication together.
    pub connect_timeout: Duration,
    /// Bound on any one message after startup (length field included).
    pub max_message_len: usize,
    /// `sslmode`, `sslrootcert` and the CA file from the environment (`tls`).
    pub tls: TlsOptions,
    pub channel_binding: ChannelBindingMode,
    /// URL parameters Ampere does not use, ignored as Electric does (the caller warns).
    pub ignored_params: Vec<String>,
    /// Of a host name's addresses, try the IPv6 ones first (`ELECTRIC_DATABASE_USE_IPV6`);
    /// otherwise IPv4 first. Every address is tried, in that order.
    pub prefer_ipv6: bool,
    /// TCP keepalive and user timeout, so a connection a NAT or load balancer dropped silently
    /// is found (`ELECTRIC_DATABASE_TCP_*`); unset: the OS defaults.
    pub tcp: TcpLiveness,
}

/// Socket options that find dead connections (see [`ConnectConfig::tcp`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TcpLiveness {
    pub keepalive_idle: Option<Duration>,
    pub keepalive_interval: Option<Duration>,
    pub keepalive_count: Option<u32>,
    pub user_timeout: Option<Duration>,
}

impl TcpLiveness {
    pub fn keepalive(&self) -> bool {
        self.keepalive_idle.is_some()
            || self.keepalive_interval.is_some()
            || self.keepalive_count.is_some()
    }
}

/// `channel_binding`, as libpq: `prefer` binds SCRAM to the TLS channel when the server offers
/// it, `require` refuses to authenticate otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ChannelBindingMode {
    Disable,
    #[default]
    Prefer,
    Require,
}

/// Startup-phase messages (authentication, parameters, startup errors) are small; a much lower
/// bound limits what an impostor server can make us buffer before we know who it is.
pub const MAX_STARTUP_MESSAGE_LEN: usize = 64 * 1024;
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest URL we parse; connection strings are short, so this only stops nonsense early.
const MAX_URL_LEN: usize = 8 * 1024;

impl std::fmt::Debug for ConnectConfig {
    // Hand-written so that the password never reaches logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("dbname", &self.dbname)
            .field("application_name", &self.application_name)
            .field("replication", &self.replication)
            .field("connect_timeout", &self.connect_timeout)
            .field("tls", &self.tls)
            .field("channel_binding", &self.channel_binding)
            .field("prefer_ipv6", &self.prefer_ipv6)
            .field("tcp", &self.tcp)
            .finish()
    }
}

fn config_err(msg: impl Into<String>) -> PgError {
    PgError::Config(msg.into())
}

/// Decodes `%XX` escapes; a malformed escape or non-UTF-8 result is an error, not a guess.
fn percent_decode(s: &str) -> Result<String, PgError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .ok_or_else(|| config_err(format!("bad percent-escape in {s:?}")))?;
        out.push(hex);
        i += 3;
    }
    String::from_utf8(out).map_err(|_| config_err("percent-decoded URL part is not UTF-8"))
}

fn parse_port(s: &str) -> Result<u16, PgError> {
    s.parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| config_err(format!("invalid port {s:?}")))
}

/// Splits `host[:port]` where host may be a bracketed IPv6 literal.
fn split_host_port(hostport: &str) -> Result<(String, Option<u16>), PgError> {
    if let Some(rest) = hostport.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| config_err("unterminated [IPv6] host"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(parse_port(p)?),
            None if after.is_empty() => None,
            None => return Err(config_err(format!("junk after host: {after:?}"))),
        };
        return Ok((host.to_string(), port));
    }
    if hostport.contains(',') {
        return Err(config_err("multiple hosts are not supported"));
    }
    match hostport.rsplit_once(':') {
        Some((host, port)) => Ok((percent_decode(host)?, Some(parse_port(port)?))),
        None => Ok((percent_decode(hostport)?, None)),
    }
}

impl ConnectConfig {
    /// Parses `postgresql://user:pass@host:port/db?sslmode=disable&application_name=x`.
    /// `postgres://` is accepted too. Query parameters: `host`, `port`, `user`, `password`,
    /// `dbname`, `sslmode` (libpq's six modes, default `prefer`), `sslrootcert` (a PEM file, or
    /// `system`), `channel_binding`, `application_name`, `connect_timeout` (seconds) and
    /// `replication` (`database`). Any other parameter is ignored and listed in
    /// `ignored_params`, as Electric ignores what it does not use.
    pub fn from_url(url: &str) -> Result<Self, PgError> {
        if url.len() > MAX_URL_LEN {
            return Err(config_err("connection URL too long"));
        }
        let rest = url
            .strip_prefix("postgresql://")
            .or_else(|| url.strip_prefix("postgres://"))
            .ok_or_else(|| config_err("URL must start with postgresql:// or postgres://"))?;
        let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = main.split_once('/').unwrap_or((main, ""));
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (mut user, mut password) = (None, None);
        if let Some(info) = userinfo {
            let (u, p) = match info.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (info, None),
            };
            user = Some(percent_decode(u)?).filter(|u| !u.is_empty());
            password = p.map(percent_decode).transpose()?;
        }
        let (host, port) = split_host_port(hostport)?;
        let mut cfg = Self {
            host: if host.is_empty() {
                "localhost".into()
            } else {
                host
            },
            port: port.unwrap_or(5432),
            user: user.unwrap_or_default(),
            password,
            dbname: percent_decode(path)?,
            application_name: None,
            replication: false,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_message_len: pgwire::frame::MAX_MESSAGE_LEN,
            tls: TlsOptions::default(),
            channel_binding: ChannelBindingMode::default(),
            ignored_params: Vec::new(),
            prefer_ipv6: false,
            tcp: TcpLiveness::default(),
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            cfg.apply_param(&percent_decode(key)?, percent_decode(value)?)?;
        }
        if cfg.user.is_empty() {
            return Err(config_err("no user name in connection URL"));
        }
        if cfg.dbname.is_empty() {
            cfg.dbname = cfg.user.clone();
        }
        Ok(cfg)
    }

    fn apply_param(&mut self, key: &str, value: String) -> Result<(), PgError> {
        match key {
            "host" if value.starts_with('/') => {
                return Err(config_err("Unix-domain sockets are not supported yet"));
            }
            "host" => self.host = value,
            "port" => self.port = parse_port(&value)?,
            "user" => self.user = value,
            "password" => self.password = Some(value),
            "dbname" => self.dbname = value,
            "application_name" => self.application_name = Some(value),
            "sslmode" => {
                self.tls.mode = SslMode::parse(&value).ok_or_else(|| {
                    config_err(format!(
                        "unknown sslmode {value:?} (disable, allow, prefer, require, verify-ca \
                         or verify-full)"
                    ))
                })?;
            }
            "sslrootcert" if value == "system" => self.tls.root_cert = Some(RootCerts::System),
            "sslrootcert" if !value.is_empty() => {
                self.tls.root_cert = Some(RootCerts::File(value.into()));
            }
            "channel_binding" => {
                self.channel_binding = match value.as_str() {
                    "disable" => ChannelBindingMode::Disable,
                    "prefer" => ChannelBindingMode::Prefer,
                    "require" => ChannelBindingMode::Require,
                    _ => {
                        return Err(config_err(format!(
                            "unknown channel_binding {value:?} (disable, prefer or require)"
                        )))
                    }
                };
            }
            "connect_timeout" => {
                let secs: u64 = value
                    .parse()
                    .map_err(|_| config_err(format!("invalid connect_timeout {value:?}")))?;
                // libpq treats 0 as "wait forever"; we keep a bound and cap it at an hour.
                let secs = if secs == 0 { 3600 } else { secs.min(3600) };
                self.connect_timeout = Duration::from_secs(secs);
            }
            "replication" => {
                self.replication = match value.as_str() {
                    "database" => true,
                    "false" | "off" | "0" | "no" => false,
                    _ => return Err(config_err("only replication=database is supported")),
                }
            }
            _ => {
                if self.ignored_params.len() < 64 && !self.ignored_params.iter().any(|k| k == key) {
                    self.ignored_params.push(key.to_string());
                }
            }
        }
        Ok(())
    }
}

impl FromStr for ConnectConfig {
    type Err = PgError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_url(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_url_with_escapes() {
        let c = ConnectConfig::from_url(
            "postgresql://us%40er:p%3Ass%2Fw@db.example:6543/my%20db?sslmode=disable&application_name=amp%20ere",
        )
        .unwrap();
        assert_eq!(c.user, "us@er");
        assert_eq!(c.password.as_deref(), Some("p:ss/w"));
        assert_eq!((c.host.as_str(), c.port), ("db.example", 6543));
        assert_eq!(c.dbname, "my db");
        assert_eq!(c.application_name.as_deref(), Some("amp ere"));
        assert!(!c.replication);
        assert!(!format!("{c:?}").contains("p:ss/w"));
    }

    #[test]
    fn applies_defaults_and_query_overrides() {
        let c: ConnectConfig = "postgres://bob@/?host=10.0.0.1&port=7000&replication=database"
            .parse()
            .unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.dbname.as_str()),
            ("10.0.0.1", 7000, "bob")
        );
        assert!(c.replication);
        let c = ConnectConfig::from_url("postgresql://a@[::1]:5433/x").unwrap();
        assert_eq!((c.host.as_str(), c.port), ("::1", 5433));
        let c = ConnectConfig::from_url("postgresql://a@h?connect_timeout=3").unwrap();
        assert_eq!(c.connect_timeout, Duration::from_secs(3));
    }

    #[test]
    fn rejects_unsupported_or_malformed_urls() {
        let err = |u: &str| ConnectConfig::from_url(u).unwrap_err().to_string();
        assert!(err("postgresql://a@h/db?sslmode=required").contains("unknown sslmode"));
        assert!(err("postgresql://a@h/db?channel_binding=maybe").contains("channel_binding"));
        assert!(err("mysql://a@h/db").contains("postgresql://"));
        assert!(err("postgresql://a@h:99999/db").contains("port"));
        assert!(err("postgresql://a%zz@h/db").contains("percent"));
        assert!(err("postgresql://h/db").contains("user"));
        assert!(err("postgresql://a@h/db?host=/var/run").contains("Unix"));
    }

    #[test]
    fn tls_settings_and_provider_parameters() {
        let c = ConnectConfig::from_url(
            "postgresql://u:p@db.neon.tech/app?sslmode=verify-full&sslrootcert=/etc/ca.pem\
             &channel_binding=require&options=endpoint%3Dep-1&sslcert=x&options=y",
        )
        .unwrap();
        assert_eq!(c.tls.mode, SslMode::VerifyFull);
        assert_eq!(c.tls.root_cert, Some(RootCerts::File("/etc/ca.pem".into())));
        assert_eq!(c.channel_binding, ChannelBindingMode::Require);
        // Ignored (each named once), as Electric ignores what it does not use.
        assert_eq!(c.ignored_params, ["options", "sslcert"]);
        let c = ConnectConfig::from_url("postgresql://u@h/db?sslrootcert=system").unwrap();
        assert_eq!(c.tls.root_cert, Some(RootCerts::System));
        // Electric's default: TLS when offered.
        assert_eq!(
            ConnectConfig::from_url("postgresql://u@h/db")
                .unwrap()
                .tls
                .mode,
            SslMode::Prefer
        );
    }
}
