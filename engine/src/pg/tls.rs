//! TLS to Postgres (`sslmode`), with rustls driven by hand over monoio's socket.
//!
//! rustls is sans-IO: it turns ciphertext into plaintext and back, and this module moves the
//! bytes. That keeps one code path for both io drivers, and lets the replication stream split a
//! TLS connection into a reading and a writing task as it splits a TCP one: both halves share
//! the session (`Rc<RefCell<ClientConnection>>`), borrowed only between awaits, never across.
//!
//! Negotiation is Postgres's: an `SSLRequest` on the plain socket, one byte back (`S`: go on
//! with a TLS handshake; `N`: the server has no TLS, the startup goes on in plaintext). What
//! each `sslmode` accepts, and which certificate checks apply, is [`SslMode`]'s doc.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use bytes::BytesMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore};

use super::error::PgError;

/// `sslmode`, with libpq's names and Electric's default ([`SslMode::Prefer`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Plaintext only.
    Disable,
    /// Plaintext; TLS only when the server refuses a plaintext connection.
    Allow,
    /// TLS when the server offers it, else plaintext (no certificate checks, as libpq).
    #[default]
    Prefer,
    /// TLS or nothing. Certificates are checked only when a CA is given (then as `verify-full`
    /// with a CA file from `ELECTRIC_DATABASE_CA_CERTIFICATE_FILE`, as `verify-ca` with the
    /// URL's `sslrootcert`, as libpq).
    Require,
    /// TLS, the server's chain checked against the CA (the name in it is not).
    VerifyCa,
    /// TLS, chain and host name checked.
    VerifyFull,
}

impl SslMode {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "disable" => Self::Disable,
            "allow" => Self::Allow,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Allow => "allow",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }

    /// Whether a connection without TLS is refused.
    pub fn requires_tls(self) -> bool {
        matches!(self, Self::Require | Self::VerifyCa | Self::VerifyFull)
    }
}

/// Where trusted CA certificates come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootCerts {
    /// A PEM file (`sslrootcert=…`, `ELECTRIC_DATABASE_CA_CERTIFICATE_FILE`).
    File(PathBuf),
    /// The system's store (`sslrootcert=system`, or a verify mode without a file); Mozilla's
    /// roots when the system has none.
    System,
}

/// What the certificate checks are, decided from the mode and the CA settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verify {
    Nothing,
    Chain,
    ChainAndName,
}

/// The TLS settings of a connection.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TlsOptions {
    pub mode: SslMode,
    /// `sslrootcert` from the URL.
    pub root_cert: Option<RootCerts>,
    /// `ELECTRIC_DATABASE_CA_CERTIFICATE_FILE`: full verification with this CA.
    pub ca_file: Option<PathBuf>,
}

impl TlsOptions {
    /// The checks and the roots they use. Against the system's (public) roots the name is
    /// always checked: anyone can get a publicly trusted certificate for a domain of their
    /// own, so a chain check alone would prove nothing (libpq refuses that combination).
    pub fn verification(&self) -> (Verify, Option<RootCerts>) {
        let (verify, roots) = self.requested_verification();
        match (verify, &roots) {
            (Verify::Chain, Some(RootCerts::System)) => (Verify::ChainAndName, roots),
            _ => (verify, roots),
        }
    }

    fn requested_verification(&self) -> (Verify, Option<RootCerts>) {
        if let Some(file) = &self.ca_file {
            let verify = match self.mode {
                SslMode::VerifyCa => Verify::Chain,
                _ => Verify::ChainAndName,
            };
            return (verify, Some(RootCerts::File(file.clone())));
        }
        match self.mode {
            SslMode::VerifyFull => (
                Verify::ChainAndName,
                Some(self.root_cert.clone().unwrap_or(RootCerts::System)),
            ),
            SslMode::VerifyCa => (
                Verify::Chain,
                Some(self.root_cert.clone().unwrap_or(RootCerts::System)),
            ),
            SslMode::Require if self.root_cert.is_some() => (Verify::Chain, self.root_cert.clone()),
            _ => (Verify::Nothing, None),
        }
    }

    /// The rustls client configuration (built once per connect; cheap next to a handshake).
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, PgError> {
        // `ring` builds with a C compiler alone (aws-lc-rs wants CMake); rustls deprecates its
        // default provider only for lacking post-quantum key exchange, which Postgres servers
        // do not offer either.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_err(format!("TLS setup: {e}")))?;
        let (verify, roots) = self.verification();
        let config = match verify {
            Verify::Nothing => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
                .with_no_client_auth(),
            Verify::ChainAndName | Verify::Chain => {
                let roots = Arc::new(load_roots(roots.as_ref().unwrap_or(&RootCerts::System))?);
                let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
                    roots,
                    provider.clone(),
                )
                .build()
                .map_err(|e| tls_err(format!("TLS setup: {e}")))?;
                if verify == Verify::Chain {
                    builder
                        .dangerous()
                        .with_custom_certificate_verifier(Arc::new(ChainOnly(webpki)))
                        .with_no_client_auth()
                } else {
                    builder.with_webpki_verifier(webpki).with_no_client_auth()
                }
            }
        };
        Ok(Arc::new(config))
    }
}

fn tls_err(msg: impl Into<String>) -> PgError {
    PgError::Tls(msg.into())
}

fn load_roots(source: &RootCerts) -> Result<RootCertStore, PgError> {
    let mut store = RootCertStore::empty();
    match source {
        RootCerts::File(path) => {
            let certs = read_pem_certs(path)?;
            if certs.is_empty() {
                return Err(tls_err(format!(
                    "no certificate in the CA file {}",
                    path.display()
                )));
            }
            for cert in certs {
                store
                    .add(cert)
                    .map_err(|e| tls_err(format!("a certificate in {}: {e}", path.display())))?;
            }
        }
        RootCerts::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            }
        }
    }
    Ok(store)
}

/// Bytes a CA file may have: bundles are a few hundred KB.
const MAX_CA_FILE: u64 = 16 << 20;

fn read_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, PgError> {
    use rustls::pki_types::pem::PemObject;
    let file = std::fs::File::open(path)
        .map_err(|e| tls_err(format!("cannot read the CA file {}: {e}", path.display())))?;
    let mut text = Vec::new();
    file.take(MAX_CA_FILE + 1)
        .read_to_end(&mut text)
        .map_err(|e| tls_err(format!("cannot read the CA file {}: {e}", path.display())))?;
    if text.len() as u64 > MAX_CA_FILE {
        return Err(tls_err(format!(
            "the CA file {} is too large",
            path.display()
        )));
    }
    CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_err(format!("the CA file {} is not PEM: {e}", path.display())))
}

/// `prefer` and `require` without a CA: encrypted, but anyone may answer (libpq's behaviour).
/// Handshake signatures are still checked, so the session keys belong to the certificate sent.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted CA; the name in the certificate is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The name rustls checks and sends as SNI: a DNS name, or an IP address (no SNI).
pub fn server_name(host: &str) -> Result<ServerName<'static>, PgError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(bare.to_string())
        .map_err(|_| tls_err(format!("{host:?} is not a valid TLS server name")))
}

/// The `SSLRequest` message: length 8, code 80877103.
pub const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// Bytes of ciphertext read from the socket at once.
const CIPHER_READ: usize = 32 * 1024;

/// Drives the handshake of `session` over `tcp` to its end; returns the ciphertext read past
/// it (for [`TlsReader::new`]).
pub async fn handshake<S: AsyncReadRent + AsyncWriteRent>(
    tcp: &mut S,
    session: &mut ClientConnection,
) -> Result<BytesMut, PgError> {
    let mut out = Vec::new();
    let mut pending = BytesMut::new();
    while session.is_handshaking() {
        if session.wants_write() {
            out.clear();
            while session.wants_write() {
                session.write_tls(&mut out).map_err(PgError::Io)?;
            }
            let (r, _) = tcp.write_all(std::mem::take(&mut out)).await;
            r.map_err(PgError::Io)?;
            continue;
        }
        if session.wants_read() {
            if pending.is_empty() {
                let buf = vec![0u8; CIPHER_READ];
                let (r, buf) = tcp.read(buf).await;
                let n = r.map_err(PgError::Io)?;
                if n == 0 {
                    return Err(tls_err(
                        "the server closed the connection during the TLS handshake",
                    ));
                }
                pending.extend_from_slice(&buf[..n]);
            }
            if feed(session, &mut pending).map_err(PgError::Io)? == 0 {
                // The session takes nothing more (the peer closed it): no progress is possible.
                return Err(tls_err(
                    "the server ended the TLS session during the handshake",
                ));
            }
            if let Err(e) = session.process_new_packets() {
                // Tell the server why (an alert), then give up.
                out.clear();
                let _ = session.write_tls(&mut out);
                let _ = tcp.write_all(std::mem::take(&mut out)).await;
                return Err(tls_err(format!("TLS handshake failed: {e}")));
            }
        }
    }
    // Whatever arrived with the last handshake records is read as application data.
    Ok(pending)
}

/// Hands buffered ciphertext to the session (as much as it takes now); returns how much.
fn feed(session: &mut ClientConnection, pending: &mut BytesMut) -> io::Result<usize> {
    let mut slice: &[u8] = pending;
    let before = slice.len();
    session.read_tls(&mut slice)?;
    let used = before - slice.len();
    let _ = pending.split_to(used);
    Ok(used)
}

/// The shared session of a TLS connection (both halves of a split one).
pub type Session = Rc<RefCell<ClientConnection>>;

/// The reading side of a TLS connection: ciphertext not yet handed to the session.
pub struct TlsReader {
    pub session: Session,
    pending: BytesMut,
}

impl TlsReader {
    /// `pending`: ciphertext already read past the handshake.
    pub fn new(session: Session, pending: BytesMut) -> Self {
        Self { session, pending }
    }

    /// Appends plaintext to `out`: at least one byte, or `Ok(0)` at the end of the stream.
    pub async fn read<R: AsyncReadRent>(
        &mut self,
        tcp: &mut R,
        out: &mut BytesMut,
    ) -> io::Result<usize> {
        loop {
            {
                let mut session = self.session.borrow_mut();
                let mut total = 0;
                loop {
                    // One record at most per read: zero only that much, not the whole spare
                    // capacity (a frame reserves its full length, up to a gigabyte).
                    const RECORD: usize = 16 * 1024;
                    out.reserve(RECORD);
                    let start = out.len();
                    out.resize(start + RECORD, 0);
                    let r = session.reader().read(&mut out[start..]);
                    match r {
                        Ok(0) => {
                            out.truncate(start);
                            // close_notify: the end of the stream.
                            return Ok(total);
                        }
                        Ok(n) => {
                            out.truncate(start + n);
                            total += n;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            out.truncate(start);
                            break;
                        }
                        Err(e) => {
                            out.truncate(start);
                            return Err(e);
                        }
                    }
                }
                if total > 0 {
                    return Ok(total);
                }
                if !self.pending.is_empty() {
                    let used = feed(&mut session, &mut self.pending)?;
                    session.process_new_packets().map_err(io::Error::other)?;
                    if used == 0 {
                        // The session takes nothing more: the peer ended it.
                        return Ok(0);
                    }
                    continue;
                }
            }
            let buf = vec![0u8; CIPHER_READ];
            let (r, buf) = tcp.read(buf).await;
            let n = r?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the TLS connection without close_notify",
                ));
            }
            self.pending.extend_from_slice(&buf[..n]);
        }
    }
}

/// Encrypts `buf` (left empty) and writes the records, with anything else the session has to
/// send (alerts, key updates).
pub async fn write<W: AsyncWriteRent>(
    session: &Session,
    tcp: &mut W,
    buf: &mut BytesMut,
) -> io::Result<()> {
    let records = {
        let mut s = session.borrow_mut();
        s.writer().write_all(buf)?;
        buf.clear();
        let mut records = Vec::with_capacity(buf.capacity() + 64);
        while s.wants_write() {
            s.write_tls(&mut records)?;
        }
        records
    };
    if records.is_empty() {
        return Ok(());
    }
    let (r, _) = tcp.write_all(records).await;
    r.map(|_| ())
}

/// `tls-server-end-point` channel binding data (RFC 5929): the hash of the server's
/// certificate, with the hash of its signature algorithm (SHA-256 for MD5 and SHA-1).
pub fn server_end_point(cert: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    match signature_hash(cert) {
        Some(Hash::Sha224) => sha2::Sha224::digest(cert).to_vec(),
        Some(Hash::Sha384) => sha2::Sha384::digest(cert).to_vec(),
        Some(Hash::Sha512) => sha2::Sha512::digest(cert).to_vec(),
        _ => sha2::Sha256::digest(cert).to_vec(),
    }
}

enum Hash {
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

/// The hash of a DER certificate's `signatureAlgorithm` (after `tbsCertificate`).
fn signature_hash(cert: &[u8]) -> Option<Hash> {
    // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }
    let (body, _) = der_element(cert, 0x30)?;
    let (_, rest) = der_any(body)?;
    let (alg, _) = der_element(rest, 0x30)?;
    let (oid, _) = der_element(alg, 0x06)?;
    const SHA224: [&[u8]; 2] = [
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0e], // sha224WithRSAEncryption
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x01],       // ecdsa-with-SHA224
    ];
    const SHA384: [&[u8]; 3] = [
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c], // sha384WithRSAEncryption
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03],       // ecdsa-with-SHA384
        &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02], // id-sha384
    ];
    const SHA512: [&[u8]; 3] = [
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d], // sha512WithRSAEncryption
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04],       // ecdsa-with-SHA512
        &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03], // id-sha512
    ];
    if SHA224.contains(&oid) {
        Some(Hash::Sha224)
    } else if SHA384.contains(&oid) {
        Some(Hash::Sha384)
    } else if SHA512.contains(&oid) {
        Some(Hash::Sha512)
    } else {
        Some(Hash::Sha256)
    }
}

/// An element with tag `tag` at the start of `der`: its contents and what follows it.
fn der_element(der: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    if *der.first()? != tag {
        return None;
    }
    der_any(der)
}

/// Any element at the start of `der`: its contents and what follows it.
fn der_any(der: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, header) = der_len(der.get(1..)?)?;
    let start = 1 + header;
    let end = start.checked_add(len)?;
    Some((der.get(start..end)?, der.get(end..)?))
}

/// A DER length at the start of `b`: the length and the bytes it took.
fn der_len(b: &[u8]) -> Option<(usize, usize)> {
    let first = *b.first()?;
    if first < 0x80 {
        return Some((first as usize, 1));
    }
    let n = (first & 0x7f) as usize;
    if n == 0 || n > 4 {
        return None;
    }
    let mut len = 0usize;
    for &byte in b.get(1..1 + n)? {
        len = (len << 8) | byte as usize;
    }
    Some((len, 1 + n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_decide_the_checks() {
        for m in [
            "disable",
            "allow",
            "prefer",
            "require",
            "verify-ca",
            "verify-full",
        ] {
            assert_eq!(SslMode::parse(m).map(SslMode::as_str), Some(m));
        }
        assert_eq!(SslMode::parse("required"), None);
        let opts = |mode, root_cert, ca_file| TlsOptions {
            mode,
            root_cert,
            ca_file,
        };
        let file = || Some(RootCerts::File("ca.pem".into()));
        assert_eq!(
            opts(SslMode::Prefer, None, None).verification().0,
            Verify::Nothing
        );
        assert_eq!(
            opts(SslMode::Require, None, None).verification().0,
            Verify::Nothing
        );
        assert_eq!(
            opts(SslMode::Require, file(), None).verification().0,
            Verify::Chain
        );
        assert_eq!(
            opts(SslMode::Require, None, Some("ca.pem".into()))
                .verification()
                .0,
            Verify::ChainAndName
        );
        assert_eq!(
            opts(SslMode::VerifyFull, None, None).verification(),
            (Verify::ChainAndName, Some(RootCerts::System))
        );
        assert_eq!(
            opts(SslMode::VerifyCa, file(), None).verification().0,
            Verify::Chain
        );
        // Public roots: the name is checked whatever the mode.
        assert_eq!(
            opts(SslMode::VerifyCa, None, None).verification().0,
            Verify::ChainAndName
        );
        assert_eq!(
            opts(SslMode::Require, Some(RootCerts::System), None)
                .verification()
                .0,
            Verify::ChainAndName
        );
    }

    #[test]
    fn channel_binding_hash_follows_the_signature_algorithm() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("key");
        let cert = rcgen::CertificateParams::new(vec!["db.example".into()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        let der = cert.der();
        assert_eq!(
            server_end_point(der).len(),
            48,
            "SHA-384 for ecdsa-with-SHA384"
        );
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let cert = rcgen::CertificateParams::new(vec!["db.example".into()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        assert_eq!(server_end_point(cert.der()).len(), 32);
        // Garbage is hashed with SHA-256, never a panic.
        assert_eq!(server_end_point(&[0x30, 0x82, 0xff]).len(), 32);
        assert_eq!(server_end_point(&[]).len(), 32);
    }
}
