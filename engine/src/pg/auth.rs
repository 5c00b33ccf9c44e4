//! Startup and authentication: trust, cleartext password, MD5 and SCRAM-SHA-256.

use pgwire::frame::{Authentication, BackendMessage};
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{
    ChannelBinding, ScramSha256, SCRAM_SHA_256, SCRAM_SHA_256_PLUS,
};
use postgres_protocol::message::frontend;

use super::config::{ChannelBindingMode, ConnectConfig};
use super::connection::{BackendKey, Connection};
use super::error::PgError;

fn encode_err(e: std::io::Error) -> PgError {
    // frontend encoders fail only on interior NUL bytes or oversized values.
    PgError::InvalidArgument(e.to_string())
}

fn password(config: &ConnectConfig) -> Result<&str, PgError> {
    config
        .password
        .as_deref()
        .ok_or_else(|| PgError::Auth("the server asks for a password but none was given".into()))
}

impl Connection {
    /// Sends the startup packet, authenticates and consumes messages up to ReadyForQuery.
    pub(super) async fn startup(&mut self, config: &ConnectConfig) -> Result<(), PgError> {
        let mut params = vec![
            ("user", config.user.as_str()),
            ("database", config.dbname.as_str()),
            // Everything we parse as text assumes UTF-8.
            ("client_encoding", "UTF8"),
        ];
        if let Some(name) = &config.application_name {
            params.push(("application_name", name.as_str()));
        }
        if config.replication {
            params.push(("replication", "database"));
        }
        self.write_buf.clear();
        frontend::startup_message(params, &mut self.write_buf).map_err(encode_err)?;
        self.flush().await?;
        self.authenticate(config).await?;
        loop {
            match self.recv().await? {
                BackendMessage::BackendKeyData {
                    process_id,
                    secret_key,
                } => self.set_backend_key(BackendKey {
                    process_id,
                    secret_key,
                }),
                BackendMessage::ReadyForQuery(_) => return Ok(()),
                BackendMessage::ErrorResponse(fields) => return Err(PgError::Db(fields)),
                other => {
                    let msg = format!("unexpected message during startup: {other:?}");
                    return Err(PgError::Protocol(msg));
                }
            }
        }
    }

    /// Answers authentication requests until AuthenticationOk.
    async fn authenticate(&mut self, config: &ConnectConfig) -> Result<(), PgError> {
        // Whether a SCRAM-SHA-256-PLUS exchange completed: with `channel_binding=require`
        // nothing else may end in AuthenticationOk (a server, or a man in the middle, that
        // asks for nothing would otherwise be trusted).
        let mut bound = false;
        loop {
            let request = match self.recv().await? {
                BackendMessage::Authentication(request) => request,
                BackendMessage::ErrorResponse(fields) => return Err(PgError::Db(fields)),
                other => {
                    let msg = format!("expected an authentication request, got {other:?}");
                    return Err(PgError::Protocol(msg));
                }
            };
            self.write_buf.clear();
            match request {
                Authentication::Ok => {
                    if config.channel_binding == ChannelBindingMode::Require && !bound {
                        return Err(PgError::Auth(
                            "channel_binding=require, but the server authenticated the \
                             connection without channel binding"
                                .into(),
                        ));
                    }
                    return Ok(());
                }
                Authentication::CleartextPassword | Authentication::Md5Password { .. }
                    if config.channel_binding == ChannelBindingMode::Require =>
                {
                    return Err(PgError::Auth(
                        "channel_binding=require, but the server asks for a password without SCRAM"
                            .into(),
                    ));
                }
                Authentication::CleartextPassword => {
                    let pw = password(config)?;
                    frontend::password_message(pw.as_bytes(), &mut self.write_buf)
                        .map_err(encode_err)?;
                }
                Authentication::Md5Password { salt } => {
                    let pw = password(config)?;
                    let hash = md5_hash(config.user.as_bytes(), pw.as_bytes(), salt);
                    frontend::password_message(hash.as_bytes(), &mut self.write_buf)
                        .map_err(encode_err)?;
                }
                Authentication::Sasl { mechanisms } => {
                    bound = self.scram(config, &mechanisms).await?;
                    continue;
                }
                Authentication::SaslContinue(_) | Authentication::SaslFinal(_) => {
                    return Err(PgError::protocol("SASL message outside a SASL exchange"));
                }
                Authentication::Unsupported { code } => {
                    return Err(PgError::Auth(format!(
                        "unsupported authentication method (request {code}); \
                         use trust, password, md5 or scram-sha-256"
                    )));
                }
            }
            self.flush().await?;
        }
    }

    /// Runs the SCRAM-SHA-256 exchange, bound to the TLS channel (`SCRAM-SHA-256-PLUS`,
    /// `tls-server-end-point`) when the server offers it over TLS and `channel_binding` allows.
    /// Returns whether the exchange was bound to the channel.
    async fn scram(&mut self, config: &ConnectConfig, offered: &[String]) -> Result<bool, PgError> {
        let plus_offered = offered.iter().any(|m| m == SCRAM_SHA_256_PLUS);
        let binding_data = match config.channel_binding {
            ChannelBindingMode::Disable => None,
            _ => self.channel_binding_data(),
        };
        let (mechanism, binding) = match binding_data {
            Some(data) if plus_offered => (
                SCRAM_SHA_256_PLUS,
                ChannelBinding::tls_server_end_point(data),
            ),
            _ if config.channel_binding == ChannelBindingMode::Require => {
                return Err(PgError::Auth(
                    "channel_binding=require, but the server does not offer SCRAM-SHA-256-PLUS \
                     over TLS"
                        .into(),
                ));
            }
            // Over TLS the client could bind: it says so ("y"), which lets the server detect a
            // man in the middle that stripped the PLUS mechanism.
            Some(_) => (SCRAM_SHA_256, ChannelBinding::unrequested()),
            None => (SCRAM_SHA_256, ChannelBinding::unsupported()),
        };
        if !offered.iter().any(|m| m == mechanism) {
            return Err(PgError::Auth(format!(
                "server offers SASL mechanisms {offered:?}, none of which is supported"
            )));
        }
        let pw = password(config)?;
        let mut scram = ScramSha256::new(pw.as_bytes(), binding);
        self.write_buf.clear();
        frontend::sasl_initial_response(mechanism, scram.message(), &mut self.write_buf)
            .map_err(encode_err)?;
        self.flush().await?;

        let server_first = self.expect_sasl(false).await?;
        scram
            .update(&server_first)
            .map_err(|e| PgError::Auth(format!("bad SCRAM server-first message: {e}")))?;
        self.write_buf.clear();
        frontend::sasl_response(scram.message(), &mut self.write_buf).map_err(encode_err)?;
        self.flush().await?;

        let server_final = self.expect_sasl(true).await?;
        // Verifies the server's signature: the server must prove it knows the password too.
        scram
            .finish(&server_final)
            .map_err(|e| PgError::Auth(format!("SCRAM server verification failed: {e}")))?;
        Ok(mechanism == SCRAM_SHA_256_PLUS)
    }

    /// Waits for SASLContinue (or SASLFinal when `last`); a wrong password surfaces here as an
    /// ErrorResponse with SQLSTATE 28P01.
    async fn expect_sasl(&mut self, last: bool) -> Result<bytes::Bytes, PgError> {
        match self.recv().await? {
            BackendMessage::Authentication(Authentication::SaslContinue(data)) if !last => Ok(data),
            BackendMessage::Authentication(Authentication::SaslFinal(data)) if last => Ok(data),
            BackendMessage::ErrorResponse(fields) => Err(PgError::Db(fields)),
            other => Err(PgError::Protocol(format!(
                "unexpected message in SCRAM exchange: {other:?}"
            ))),
        }
    }
}
