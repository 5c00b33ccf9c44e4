//! Parsing `--target http://host:port`.

use std::net::{SocketAddr, ToSocketAddrs};

/// An HTTP server to drive: the resolved address and the `Host` header to send.
#[derive(Clone, Debug)]
pub struct Target {
    pub addr: SocketAddr,
    pub host: String,
}

/// Why a `--target` value was refused.
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
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_and_port() {
        let target = Target::parse("http://127.0.0.1:3000").unwrap();
        assert_eq!(target.addr.port(), 3000);
        assert_eq!(target.host, "127.0.0.1:3000");
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
}
