//! Parsing `--target http://host:port` (repeatable) and `--source-addrs`, and spreading clients
//! over every (source address, target) pair.
//!
//! One source address connecting to one destination `ip:port` can hold at most as many
//! connections as the kernel's ephemeral port range has ports (`net.ipv4.ip_local_port_range`,
//! 28,232 by default). Tens of thousands of clients on one machine therefore need several
//! destinations (several listening ports) and/or several source addresses (on Linux every
//! `127.x.y.z` is a loopback address, with no setup): each pair has its own port range.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};

/// Most source addresses accepted (a range is expanded).
pub const MAX_SOURCE_ADDRS: usize = 256;

/// An HTTP server to drive: the resolved address, the `Host` header to send, and the local
/// address to connect from (`None`: the kernel's choice).
#[derive(Clone, Debug)]
pub struct Target {
    pub addr: SocketAddr,
    pub host: String,
    pub source: Option<IpAddr>,
}

/// Why a `--target` or `--source-addrs` value was refused.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("target must start with http:// (no TLS support): {0:?}")]
    Scheme(String),
    #[error("target must be http://host[:port] with no path: {0:?}")]
    Path(String),
    #[error("invalid port in target {0:?}")]
    Port(String),
    #[error("cannot resolve target {0:?}: {1}")]
    Resolve(String, std::io::Error),
    #[error("target {0:?} resolved to no address")]
    NoAddress(String),
    #[error("invalid source address {0:?} (an IP address, or an IPv4 range A-B)")]
    Source(String),
    #[error("source address range {0:?} is empty or longer than {MAX_SOURCE_ADDRS} addresses")]
    SourceRange(String),
    #[error("at most {MAX_SOURCE_ADDRS} source addresses")]
    TooManySources,
    #[error("source address {source_addr} and target {target} are of different IP families")]
    Family { source_addr: IpAddr, target: String },
}

impl Target {
    pub fn parse(url: &str) -> Result<Self, TargetError> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| TargetError::Scheme(url.to_owned()))?;
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
            return Err(TargetError::Path(url.to_owned()));
        }
        // A bracketed IPv6 literal contains colons; the port colon is the one after `]`.
        let port_colon = match authority.rfind(']') {
            Some(close) => authority[close..].find(':').map(|i| close + i),
            None => authority.rfind(':'),
        };
        let (host, port) = match port_colon {
            Some(colon) => {
                let port: u16 = authority[colon + 1..]
                    .parse()
                    .map_err(|_| TargetError::Port(url.to_owned()))?;
                (&authority[..colon], port)
            }
            None => (authority, 80),
        };
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addr = (bare, port)
            .to_socket_addrs()
            .map_err(|e| TargetError::Resolve(url.to_owned(), e))?
            .next()
            .ok_or_else(|| TargetError::NoAddress(url.to_owned()))?;
        Ok(Self {
            addr,
            host: authority.to_owned(),
            source: None,
        })
    }
}

/// Parses `--source-addrs`: comma-separated IP addresses and inclusive IPv4 ranges
/// (`127.0.0.2-127.0.0.9`), in order, duplicates refused.
pub fn parse_source_addrs(text: &str) -> Result<Vec<IpAddr>, TargetError> {
    let mut out: Vec<IpAddr> = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let expanded = match item.split_once('-') {
            Some((first, last)) => {
                let parse = |s: &str| {
                    s.trim()
                        .parse::<Ipv4Addr>()
                        .map_err(|_| TargetError::Source(item.to_owned()))
                };
                let (first, last) = (u32::from(parse(first)?), u32::from(parse(last)?));
                if last < first || (last - first) as usize >= MAX_SOURCE_ADDRS {
                    return Err(TargetError::SourceRange(item.to_owned()));
                }
                (first..=last)
                    .map(|n| IpAddr::V4(Ipv4Addr::from(n)))
                    .collect()
            }
            None => vec![item
                .parse::<IpAddr>()
                .map_err(|_| TargetError::Source(item.to_owned()))?],
        };
        for addr in expanded {
            if out.contains(&addr) {
                return Err(TargetError::Source(addr.to_string()));
            }
            out.push(addr);
            if out.len() > MAX_SOURCE_ADDRS {
                return Err(TargetError::TooManySources);
            }
        }
    }
    if out.is_empty() {
        return Err(TargetError::Source(text.to_owned()));
    }
    Ok(out)
}

/// Every (source, target) pair, targets varying fastest, so that consecutive clients go to
/// different targets and every pair gets an even share. No sources: the targets as they are.
pub fn endpoints(targets: &[Target], sources: &[IpAddr]) -> Result<Vec<Target>, TargetError> {
    if sources.is_empty() {
        return Ok(targets.to_vec());
    }
    let mut out = Vec::with_capacity(targets.len() * sources.len());
    for &source in sources {
        for target in targets {
            if source.is_ipv4() != target.addr.is_ipv4() {
                return Err(TargetError::Family {
                    source_addr: source,
                    target: target.host.clone(),
                });
            }
            out.push(Target {
                source: Some(source),
                ..target.clone()
            });
        }
    }
    Ok(out)
}

/// The kernel's ephemeral port range (`net.ipv4.ip_local_port_range`, which also governs
/// IPv6): how many connections one source address can hold to one destination.
pub fn ephemeral_ports() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    parse_port_range(&text)
}

fn parse_port_range(text: &str) -> Option<u64> {
    let mut parts = text.split_whitespace().map(str::parse::<u64>);
    let (low, high) = (parts.next()?.ok()?, parts.next()?.ok()?);
    (high >= low).then(|| high - low + 1)
}

/// Clients on the busiest endpoint when `clients` are spread round-robin over `endpoints`.
pub fn clients_per_endpoint(clients: usize, endpoints: usize) -> usize {
    clients.div_ceil(endpoints.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_and_port() {
        let target = Target::parse("http://127.0.0.1:3000").unwrap();
        assert_eq!(target.addr.port(), 3000);
        assert_eq!(target.host, "127.0.0.1:3000");
        assert_eq!(target.source, None);
        let target = Target::parse("http://[::1]:8080/").unwrap();
        assert_eq!(target.addr.port(), 8080);
        assert_eq!(Target::parse("http://127.0.0.1").unwrap().addr.port(), 80);
    }

    #[test]
    fn refuses_other_forms() {
        assert!(Target::parse("https://127.0.0.1:3000").is_err());
        assert!(Target::parse("http://127.0.0.1:3000/v1").is_err());
        assert!(Target::parse("http://127.0.0.1:99999").is_err());
        assert!(Target::parse("http://").is_err());
    }

    #[test]
    fn parses_source_addresses_and_ranges() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            parse_source_addrs("127.0.0.2-127.0.0.4, 10.0.0.1,::1").unwrap(),
            vec![
                ip("127.0.0.2"),
                ip("127.0.0.3"),
                ip("127.0.0.4"),
                ip("10.0.0.1"),
                ip("::1")
            ]
        );
        assert_eq!(
            parse_source_addrs("127.0.0.255-127.0.1.1").unwrap().len(),
            3,
            "a range may cross an octet"
        );
        assert_eq!(
            parse_source_addrs("127.0.0.9").unwrap(),
            vec![ip("127.0.0.9")]
        );
        for bad in [
            "",
            ",",
            "localhost",
            "127.0.0.300",
            "127.0.0.5-127.0.0.2",
            "127.0.0.1-127.0.2.1",
            "::1-::2",
            "127.0.0.1,127.0.0.1",
            "127.0.0.1-127.0.0.3,127.0.0.2",
        ] {
            assert!(parse_source_addrs(bad).is_err(), "{bad:?} accepted");
        }
        assert!(matches!(
            parse_source_addrs("10.0.0.0-10.0.0.200,10.0.1.0-10.0.1.200"),
            Err(TargetError::TooManySources)
        ));
    }

    #[test]
    fn endpoints_pair_every_source_with_every_target() {
        let targets = vec![
            Target::parse("http://127.0.0.1:3001").unwrap(),
            Target::parse("http://127.0.0.1:3002").unwrap(),
        ];
        assert_eq!(endpoints(&targets, &[]).unwrap().len(), 2);
        let sources = parse_source_addrs("127.0.0.2-127.0.0.4").unwrap();
        let all = endpoints(&targets, &sources).unwrap();
        assert_eq!(all.len(), 6);
        let pairs: Vec<(String, u16)> = all
            .iter()
            .map(|e| (e.source.unwrap().to_string(), e.addr.port()))
            .collect();
        assert_eq!(pairs[0], ("127.0.0.2".to_owned(), 3001));
        assert_eq!(pairs[1], ("127.0.0.2".to_owned(), 3002));
        assert_eq!(pairs[5], ("127.0.0.4".to_owned(), 3002));
        let v6 = parse_source_addrs("::1").unwrap();
        assert!(matches!(
            endpoints(&targets, &v6),
            Err(TargetError::Family { .. })
        ));
    }

    #[test]
    fn port_range_bounds_clients_per_endpoint() {
        assert_eq!(parse_port_range("32768\t60999\n"), Some(28_232));
        assert_eq!(parse_port_range("1024 65535"), Some(64_512));
        assert_eq!(parse_port_range("9 1"), None);
        assert_eq!(parse_port_range("garbage"), None);
        assert_eq!(clients_per_endpoint(50_000, 16), 3_125);
        assert_eq!(clients_per_endpoint(50_000, 1), 50_000);
        assert_eq!(clients_per_endpoint(5, 2), 3);
    }
}
