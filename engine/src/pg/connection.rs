//! A Postgres connection on monoio: message exchange, simple queries and COPY OUT.

use std::collections::HashMap;

use bytes::BytesMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use pgwire::frame::{BackendMessage, PgErrorFields};
use postgres_protocol::message::frontend;

use super::config::{ConnectConfig, MAX_STARTUP_MESSAGE_LEN};
use super::error::PgError;
use super::io::{read_frame, write_buf};
use super::query::{column_names, SimpleQueryResult, SimpleRow};
use super::tls::{self, SslMode, TlsReader};
use super::transport::Transport;

/// The key a CancelRequest needs, from BackendKeyData.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackendKey {
    pub process_id: i32,
    pub secret_key: i32,
}

/// One authenticated session. Not `Send`: it belongs to the monoio runtime that created it.
pub struct Connection {
    pub(super) stream: Transport,
    pub(super) read_buf: BytesMut,
    pub(super) write_buf: BytesMut,
    pub(super) max_message_len: usize,
    parameters: HashMap<String, String>,
    backend_key: Option<BackendKey>,
    /// Set when an I/O or protocol failure left the session out of step with the server.
    broken: bool,
}

/// CopyData messages handled between two yields to the executor.
const COPY_YIELD_EVERY: u64 = 1024;

impl Connection {
    /// Connects, authenticates and waits until the server is ready for queries, as `sslmode`
    /// says (see `tls::SslMode`): `allow` tries plaintext first and TLS when the server refuses
    /// it; `prefer` tries TLS first and plaintext when the server has none or the handshake
    /// fails; the verify modes and `require` take TLS or nothing. Each attempt is bounded by
    /// `config.connect_timeout` per address and again for TLS and the startup (see [`open`]).
    ///
    /// [`open`]: Self::open
    pub async fn connect(config: &ConnectConfig) -> Result<Self, PgError> {
        match config.tls.mode {
            SslMode::Disable => Self::open(config, Wire::Plain).await,
            SslMode::Allow => match Self::open(config, Wire::Plain).await {
                Err(PgError::Db(e)) if e.code == "28000" => {
                    tracing::debug!("plaintext refused ({}); trying TLS", e.message);
                    Self::open(config, Wire::Tls).await
                }
                other => other,
            },
            SslMode::Prefer => {
                match Self::open(config, Wire::TlsIfOffered).await {
                    Err(PgError::Tls(why)) => {
                        tracing::warn!("TLS to Postgres failed ({why}); sslmode=prefer: connecting in plaintext");
                        Self::open(config, Wire::Plain).await
                    }
                    other => other,
                }
            }
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                Self::open(config, Wire::Tls).await
            }
        }
    }

    /// One connection attempt over the given wire: the socket (each address of the host in
    /// turn, see [`connect_tcp`]), then TLS and the startup, within `connect_timeout`.
    async fn open(config: &ConnectConfig, wire: Wire) -> Result<Self, PgError> {
        let tcp = connect_tcp(config).await?;
        match monoio::time::timeout(
            config.connect_timeout,
            Self::start_session(config, wire, tcp),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(PgError::Timeout("connecting to Postgres")),
        }
    }

    async fn start_session(
        config: &ConnectConfig,
        wire: Wire,
        mut tcp: TcpStream,
    ) -> Result<Self, PgError> {
        let stream = match wire {
            Wire::Plain => Transport::Plain(tcp),
            Wire::Tls | Wire::TlsIfOffered => {
                let (r, _) = tcp.write_all(tls::SSL_REQUEST.to_vec()).await;
                r?;
                // Exactly one byte: nothing the server (or a man in the middle) sends after the
                // `S` may be taken as part of the TLS stream unencrypted.
                let (r, answer) = tcp.read(vec![0u8; 1]).await;
                if r? == 0 {
                    return Err(PgError::Closed);
                }
                match answer[0] {
                    b'S' => {
                        let tls_config = config.tls.client_config()?;
                        let mut session = rustls::ClientConnection::new(
                            tls_config,
                            tls::server_name(&config.host)?,
                        )
                        .map_err(|e| PgError::Tls(e.to_string()))?;
                        // Writes of any size: the caller bounds its messages, and `tls::write`
                        // hands every record to the socket at once.
                        session.set_buffer_limit(None);
                        let pending = tls::handshake(&mut tcp, &mut session).await?;
                        let session = std::rc::Rc::new(std::cell::RefCell::new(session));
                        Transport::Tls(tcp, TlsReader::new(session, pending))
                    }
                    b'N' if wire == Wire::TlsIfOffered => Transport::Plain(tcp),
                    b'N' => {
                        return Err(PgError::Tls(format!(
                            "the server does not accept TLS connections (sslmode={})",
                            config.tls.mode.as_str()
                        )))
                    }
                    other => {
                        return Err(PgError::Protocol(format!(
                            "unexpected answer {other:#04x} to SSLRequest"
                        )))
                    }
                }
            }
        };
        let mut conn = Self {
            stream,
            read_buf: BytesMut::with_capacity(8 * 1024),
            write_buf: BytesMut::with_capacity(1024),
            max_message_len: MAX_STARTUP_MESSAGE_LEN,
            parameters: HashMap::new(),
            backend_key: None,
            broken: false,
        };
        conn.startup(config).await?;
        conn.max_message_len = config.max_message_len;
        Ok(conn)
    }

    /// How the connection is protected, for logs: `TLS 1.3 (TLS13_AES_256_GCM_SHA384,
    /// verify-full)` or `plaintext`.
    pub fn security(&self, config: &ConnectConfig) -> String {
        let Some(session) = self.stream.session() else {
            return "plaintext".into();
        };
        let s = session.borrow();
        let version = match s.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLS 1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLS 1.2",
            _ => "TLS",
        };
        let suite = s
            .negotiated_cipher_suite()
            .map(|c| format!("{:?}", c.suite()))
            .unwrap_or_default();
        let checks = match config.tls.verification().0 {
            tls::Verify::Nothing => "certificate not verified",
            tls::Verify::Chain => "certificate chain verified",
            tls::Verify::ChainAndName => "certificate and host name verified",
        };
        format!("{version} ({suite}, {checks})")
    }

    /// The `tls-server-end-point` channel binding data, over TLS.
    pub(super) fn channel_binding_data(&self) -> Option<Vec<u8>> {
        let session = self.stream.session()?;
        let s = session.borrow();
        let cert = s.peer_certificates()?.first()?;
        Some(tls::server_end_point(cert))
    }

    /// A run-time parameter the server reported (`server_version`, `TimeZone`...).
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters.get(name).map(String::as_str)
    }

    pub fn backend_key(&self) -> Option<BackendKey> {
        self.backend_key
    }

    pub(super) fn set_backend_key(&mut self, key: BackendKey) {
        self.backend_key = Some(key);
    }

    /// Whether an earlier failure made the connection unusable.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Sends what `write_buf` holds.
    pub(super) async fn flush(&mut self) -> Result<(), PgError> {
        let result = write_buf(&mut self.stream, &mut self.write_buf).await;
        self.track(result)
    }

    /// Receives the next message the caller must act on. Notices are logged, parameter changes
    /// recorded and notifications dropped here, since they can arrive at any time.
    pub(super) async fn recv(&mut self) -> Result<BackendMessage, PgError> {
        loop {
            let frame = read_frame(
                &mut self.stream,
                &mut self.read_buf,
                self.max_message_len,
                None,
            );
            let result = frame.await.and_then(|f| Ok(BackendMessage::parse(f)?));
            match self.track(result)? {
                BackendMessage::NoticeResponse(notice) => log_notice(&notice),
                BackendMessage::ParameterStatus { name, value } => {
                    self.parameters.insert(name, value);
                }
                BackendMessage::NotificationResponse { channel, .. } => {
                    tracing::debug!(%channel, "ignoring LISTEN notification");
                }
                other => return Ok(other),
            }
        }
    }

    /// Marks the connection broken on any failure that desynchronizes it.
    fn track<T>(&mut self, result: Result<T, PgError>) -> Result<T, PgError> {
        if let Err(e) = &result {
            if !matches!(e, PgError::Db(_) | PgError::Callback(_)) {
                self.broken = true;
            }
        }
        result
    }

    pub(super) fn ensure_usable(&self) -> Result<(), PgError> {
        if self.broken {
            return Err(PgError::Closed);
        }
        Ok(())
    }

    pub(super) async fn send_query(&mut self, sql: &str) -> Result<(), PgError> {
        self.ensure_usable()?;
        self.write_buf.clear();
        frontend::query(sql, &mut self.write_buf)
            .map_err(|_| PgError::InvalidArgument("SQL contains a NUL byte".into()))?;
        self.flush().await
    }

    /// Runs one or more `;`-separated statements with the simple query protocol and returns one
    /// result per statement. On a server error the remaining statements are skipped (Postgres
    /// does this), the connection resynchronizes at ReadyForQuery and the error is returned.
    pub async fn simple_query(&mut self, sql: &str) -> Result<Vec<SimpleQueryResult>, PgError> {
        self.send_query(sql).await?;
        let mut results = Vec::new();
        let mut current: Option<SimpleQueryResult> = None;
        let mut failure: Option<PgError> = None;
        loop {
            match self.recv().await? {
                BackendMessage::RowDescription(rd) => {
                    current = Some(SimpleQueryResult::new(column_names(&rd)));
                }
                BackendMessage::DataRow(row) => {
                    let Some(result) = current.as_mut() else {
                        return self.track(Err(PgError::protocol("DataRow before RowDescription")));
                    };
                    let row = SimpleRow::new(result.columns.clone(), row);
                    result.rows.push(self.track(row)?);
                }
                BackendMessage::CommandComplete(tag) => {
                    let mut result = current
                        .take()
                        .unwrap_or_else(|| SimpleQueryResult::new(Vec::new().into()));
                    result.tag = tag.0;
                    results.push(result);
                }
                BackendMessage::EmptyQueryResponse => {}
                BackendMessage::ErrorResponse(fields) => failure = Some(PgError::Db(fields)),
                BackendMessage::ReadyForQuery(_) => break,
                other => self.refuse_copy(other, &mut failure).await?,
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(results),
        }
    }

    /// Runs SQL and returns the command tag of its last statement (`INSERT 0 1`...).
    pub async fn execute(&mut self, sql: &str) -> Result<String, PgError> {
        let results = self.simple_query(sql).await?;
        Ok(results
            .into_iter()
            .last()
            .map(|r| r.tag)
            .unwrap_or_default())
    }

    /// Handles messages a plain query does not expect. COPY FROM STDIN is refused with CopyFail
    /// and COPY TO STDOUT data is discarded, so the session stays in step either way.
    async fn refuse_copy(
        &mut self,
        message: BackendMessage,
        failure: &mut Option<PgError>,
    ) -> Result<(), PgError> {
        let misuse = |what: &str| PgError::InvalidArgument(format!("{what} is not supported here"));
        match message {
            BackendMessage::CopyInResponse(_) => {
                self.write_buf.clear();
                frontend::copy_fail("COPY FROM STDIN is not supported", &mut self.write_buf)
                    .map_err(|e| PgError::protocol(e.to_string()))?;
                self.flush().await?;
                failure.get_or_insert(misuse("COPY FROM STDIN"));
            }
            BackendMessage::CopyOutResponse(_) => {
                failure.get_or_insert(misuse("COPY TO STDOUT (use copy_out)"));
            }
            BackendMessage::CopyData(_) | BackendMessage::CopyDone => {}
            other => {
                let msg = format!("unexpected message in query response: {other:?}");
                return self.track(Err(PgError::Protocol(msg)));
            }
        }
        Ok(())
    }

    /// Runs a `COPY ... TO STDOUT` statement and hands each CopyData payload (one text-format row
    /// for Postgres's own COPY) to `on_data` as it arrives. Returns the row count from the
    /// command tag. If `on_data` fails, the rest of the COPY is read and discarded so that the
    /// connection stays usable, and its error is returned as [`PgError::Callback`].
    pub async fn copy_out<F, E>(&mut self, sql: &str, mut on_data: F) -> Result<u64, PgError>
    where
        F: FnMut(&[u8]) -> Result<(), E>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.send_query(sql).await?;
        let mut started = false;
        let mut rows = None;
        let mut failure: Option<PgError> = None;
        let mut copied: u64 = 0;
        loop {
            match self.recv().await? {
                BackendMessage::CopyOutResponse(_) => started = true,
                BackendMessage::CopyData(data) => {
                    if failure.is_none() {
                        if let Err(e) = on_data(&data) {
                            failure = Some(PgError::Callback(e.into()));
                        }
                    }
                    // With the epoll driver a socket that always has data never makes this
                    // task wait, so a long COPY would hold the core; let other tasks (HTTP
                    // requests reading the snapshot as it is written) run now and then.
                    copied += 1;
                    if copied.is_multiple_of(COPY_YIELD_EVERY) {
                        crate::pg::io::yield_now().await;
                    }
                }
                BackendMessage::CopyDone => {}
                BackendMessage::CommandComplete(tag) => rows = rows.or(tag.rows()),
                BackendMessage::ErrorResponse(fields) => failure = Some(PgError::Db(fields)),
                BackendMessage::ReadyForQuery(_) => break,
                BackendMessage::RowDescription(_)
                | BackendMessage::DataRow(_)
                | BackendMessage::EmptyQueryResponse => {}
                other => self.refuse_copy(other, &mut failure).await?,
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        if !started {
            let msg = "copy_out needs a COPY ... TO STDOUT statement".to_string();
            return Err(PgError::InvalidArgument(msg));
        }
        Ok(rows.unwrap_or(0))
    }

    /// Sends Terminate and closes the socket.
    pub async fn close(mut self) -> Result<(), PgError> {
        self.write_buf.clear();
        frontend::terminate(&mut self.write_buf);
        self.flush().await
    }
}

pub(super) fn log_notice(notice: &PgErrorFields) {
    tracing::info!(
        severity = %notice.severity,
        code = %notice.code,
        detail = notice.detail.as_deref().unwrap_or(""),
        "Postgres notice: {}",
        notice.message
    );
}

impl Connection {
    /// Hands the socket, any already-buffered bytes and the message bound to the replication
    /// stream.
    pub(super) fn into_parts(self) -> (Transport, BytesMut, usize) {
        (self.stream, self.read_buf, self.max_message_len)
    }
}

/// What a connection attempt speaks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wire {
    Plain,
    /// TLS, or an error if the server has none.
    Tls,
    /// TLS if the server has it, else plaintext on the same socket.
    TlsIfOffered,
}

/// Connects to the first of the host's addresses that answers, in the order
/// [`ConnectConfig::prefer_ipv6`] says, each within `connect_timeout`; the error names every
/// address tried. Sets the socket options every connection gets.
async fn connect_tcp(config: &ConnectConfig) -> Result<TcpStream, PgError> {
    let mut addrs = resolve(&config.host, config.port, config.connect_timeout).await?;
    order_addresses(&mut addrs, config.prefer_ipv6);
    connect_any(&addrs, config).await
}

/// The addresses of `host`: an IP address as it is; a name through the system resolver, which
/// blocks, on a thread of its own (a slow DNS server must not stall the core's requests),
/// within `timeout`.
async fn resolve(
    host: &str,
    port: u16,
    timeout: std::time::Duration,
) -> Result<Vec<std::net::SocketAddr>, PgError> {
    use std::net::ToSocketAddrs;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
        return Ok(vec![std::net::SocketAddr::new(ip, port)]);
    }
    let (tx, rx) = flume::bounded(1);
    let name = host.to_string();
    std::thread::Builder::new()
        .name("ampere-dns".into())
        .spawn(move || {
            let found = (name.as_str(), port)
                .to_socket_addrs()
                .map(|a| a.collect::<Vec<_>>());
            let _ = tx.send(found);
        })
        .map_err(PgError::Io)?;
    let found = match monoio::time::timeout(timeout, rx.recv_async()).await {
        Ok(Ok(found)) => found,
        Ok(Err(_)) => {
            return Err(PgError::Io(std::io::Error::other(
                "the resolver thread died",
            )))
        }
        Err(_) => return Err(PgError::Timeout("resolving the database host name")),
    };
    found.map_err(|e| {
        PgError::Io(std::io::Error::new(
            e.kind(),
            format!("cannot resolve {host:?}: {e}"),
        ))
    })
}

/// The preferred family first; within each, the resolver's order (stable sort).
fn order_addresses(addrs: &mut Vec<std::net::SocketAddr>, prefer_ipv6: bool) {
    addrs.sort_by_key(|a| a.is_ipv6() != prefer_ipv6);
    addrs.dedup();
}

/// Connects to the first of `addrs` that answers (see [`connect_tcp`]).
async fn connect_any(
    addrs: &[std::net::SocketAddr],
    config: &ConnectConfig,
) -> Result<TcpStream, PgError> {
    let mut failures = Vec::new();
    for addr in addrs {
        let attempt = monoio::time::timeout(config.connect_timeout, TcpStream::connect_addr(*addr));
        match attempt.await {
            Ok(Ok(tcp)) => {
                if !failures.is_empty() {
                    tracing::info!(
                        "connected to Postgres at {addr} after {}",
                        failures.join("; ")
                    );
                }
                // Queries and status updates are small and latency-bound.
                tcp.set_nodelay(true)?;
                set_liveness(&tcp, &config.tcp)?;
                return Ok(tcp);
            }
            Ok(Err(e)) => failures.push(format!("{addr}: {e}")),
            Err(_) => failures.push(format!("{addr}: timed out")),
        }
    }
    Err(PgError::Io(std::io::Error::new(
        std::io::ErrorKind::ConnectionRefused,
        if failures.is_empty() {
            format!("{:?} has no address", config.host)
        } else {
            format!("cannot connect to Postgres: {}", failures.join("; "))
        },
    )))
}

/// TCP keepalive and user timeout (see [`super::config::TcpLiveness`]).
fn set_liveness(tcp: &TcpStream, liveness: &super::config::TcpLiveness) -> Result<(), PgError> {
    use std::os::fd::{AsRawFd, BorrowedFd};
    if !liveness.keepalive() && liveness.user_timeout.is_none() {
        return Ok(());
    }
    // SAFETY: the descriptor belongs to `tcp`, which outlives this borrow.
    let fd = unsafe { BorrowedFd::borrow_raw(tcp.as_raw_fd()) };
    let socket = socket2::SockRef::from(&fd);
    if liveness.keepalive() {
        let mut keepalive = socket2::TcpKeepalive::new();
        if let Some(idle) = liveness.keepalive_idle {
            keepalive = keepalive.with_time(idle.max(std::time::Duration::from_secs(1)));
        }
        if let Some(interval) = liveness.keepalive_interval {
            keepalive = keepalive.with_interval(interval.max(std::time::Duration::from_secs(1)));
        }
        if let Some(count) = liveness.keepalive_count {
            keepalive = keepalive.with_retries(count.max(1));
        }
        socket.set_tcp_keepalive(&keepalive)?;
    }
    if let Some(timeout) = liveness.user_timeout {
        socket.set_tcp_user_timeout(Some(timeout))?;
    }
    Ok(())
}

#[cfg(test)]
mod address_tests {
    use super::*;
    use std::net::SocketAddr;

    #[test]
    fn preferred_family_first_resolver_order_kept() {
        let a = |s: &str| s.parse::<SocketAddr>().expect("addr");
        let resolved = vec![
            a("10.0.0.1:5432"),
            a("[2001:db8::1]:5432"),
            a("10.0.0.2:5432"),
            a("[2001:db8::2]:5432"),
        ];
        let mut v4 = resolved.clone();
        order_addresses(&mut v4, false);
        assert_eq!(
            v4,
            [
                a("10.0.0.1:5432"),
                a("10.0.0.2:5432"),
                a("[2001:db8::1]:5432"),
                a("[2001:db8::2]:5432")
            ]
        );
        let mut v6 = resolved;
        order_addresses(&mut v6, true);
        assert_eq!(
            v6,
            [
                a("[2001:db8::1]:5432"),
                a("[2001:db8::2]:5432"),
                a("10.0.0.1:5432"),
                a("10.0.0.2:5432")
            ]
        );
    }

    #[test]
    fn names_resolve_off_the_core_and_literals_without_a_lookup() {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("runtime")
            .block_on(async {
                let t = std::time::Duration::from_secs(10);
                let v6 = resolve("[::1]", 5432, t).await.expect("literal");
                assert_eq!(v6, ["[::1]:5432".parse::<SocketAddr>().expect("addr")]);
                let local = resolve("localhost", 5432, t).await.expect("localhost");
                assert!(local.iter().all(|a| a.ip().is_loopback()), "{local:?}");
                let e = resolve("no-such-host.invalid", 5432, t)
                    .await
                    .expect_err("unknown name");
                // NXDOMAIN names the host; a resolver that cannot answer hits the bound.
                let text = e.to_string();
                assert!(
                    text.contains("no-such-host.invalid") || matches!(e, PgError::Timeout(_)),
                    "{text}"
                );
            });
    }

    /// An address that refuses, then one that answers: the second is used; none answering is
    /// one error naming each.
    #[test]
    fn every_address_is_tried_in_order() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let good = listener.local_addr().expect("addr");
        let closed = {
            let l = std::net::TcpListener::bind("[::1]:0").expect("bind ::1");
            l.local_addr().expect("addr")
        };
        let config = ConnectConfig::from_url("postgresql://u@h/db").expect("url");
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("runtime")
            .block_on(async {
                let tcp = connect_any(&[closed, good], &config)
                    .await
                    .expect("second address");
                assert_eq!(tcp.peer_addr().expect("peer"), good);
                let e = connect_any(&[closed], &config).await.expect_err("refused");
                assert!(e.to_string().contains(&closed.to_string()), "{e}");
            });
    }
}
