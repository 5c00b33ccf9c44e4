//! Bounded framing of backend messages, and typed parsing of the ones a client needs.
//!
//! A backend message is a one-byte tag, a big-endian `u32` length that counts itself but not the
//! tag, and a body. [`split_frame`] cuts whole messages off a read buffer; the declared length is
//! checked against a caller-chosen bound before any memory is reserved for it, so a hostile or
//! corrupt peer cannot make us allocate gigabytes. [`BackendMessage::parse`] then decodes a frame's
//! body; every count and length inside a body is validated against the bytes actually present.
//!
//! We do not use `postgres_protocol::message::backend::Message::parse` here: it reserves buffer
//! space for whatever length the peer declares and reports errors without positions. Its frontend
//! encoders and SCRAM implementation are used by the engine's client instead.

use std::ops::Range;

use bytes::{Buf, Bytes, BytesMut};

use crate::types::Oid;

/// Tag byte plus the 4-byte length field.
pub const HEADER_LEN: usize = 5;

/// The largest declared length (which includes the 4 length bytes) accepted by default: Postgres
/// itself never sends a message of 1 GiB or more (`MaxAllocSize`).
pub const MAX_MESSAGE_LEN: usize = 1 << 30;

/// One backend message: its tag and its body (without tag and length).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub tag: u8,
    pub body: Bytes,
}

/// Why bytes are not a valid backend message. `at` is a byte offset: for length errors the offset
/// of the length field in the message (always 1), otherwise an offset into the message body.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("message {tag:?} declares length {declared} (< 4) at byte 1")]
    LengthTooSmall { tag: char, declared: u32 },
    #[error("message {tag:?} declares length {declared}, above the limit of {max} bytes")]
    LengthTooLarge {
        tag: char,
        declared: u32,
        max: usize,
    },
    #[error("message {tag:?} is truncated: {what} needs {needed} bytes at byte {at}")]
    Truncated {
        tag: char,
        what: &'static str,
        at: usize,
        needed: usize,
    },
    #[error("message {tag:?} has an invalid {what} at byte {at}")]
    Invalid {
        tag: char,
        what: &'static str,
        at: usize,
    },
    #[error("message {tag:?} has {extra} unexpected trailing bytes at byte {at}")]
    TrailingBytes { tag: char, at: usize, extra: usize },
    #[error("unknown authentication request {code}")]
    UnknownAuthentication { code: i32 },
}

/// Cuts one complete message off the front of `buf`.
///
/// Returns `Ok(None)` when more bytes are needed; in that case, once the header is complete and
/// its length accepted, `buf` has been reserved to hold the whole message, so the caller can read
/// straight into its spare capacity. `max_len` bounds the declared length (length field included).
pub fn split_frame(buf: &mut BytesMut, max_len: usize) -> Result<Option<Frame>, FrameError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let tag = buf[0];
    let declared = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    if declared < 4 {
        return Err(FrameError::LengthTooSmall {
            tag: char::from(tag),
            declared,
        });
    }
    // u32 always fits usize on the 32/64-bit targets we build for.
    let declared_len = declared as usize;
    if declared_len > max_len {
        return Err(FrameError::LengthTooLarge {
            tag: char::from(tag),
            declared,
            max: max_len,
        });
    }
    let total = declared_len + 1;
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    let mut frame = buf.split_to(total);
    frame.advance(HEADER_LEN);
    Ok(Some(Frame {
        tag,
        body: frame.freeze(),
    }))
}

/// A bounds-checked reader over one message body that reports offsets on failure.
pub(crate) struct BodyReader<'a> {
    tag: char,
    body: &'a [u8],
    pos: usize,
}

impl<'a> BodyReader<'a> {
    pub(crate) fn new(tag: u8, body: &'a [u8]) -> Self {
        Self {
            tag: char::from(tag),
            body,
            pos: 0,
        }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.body.len() - self.pos
    }

    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], FrameError> {
        if self.remaining() < n {
            return Err(FrameError::Truncated {
                tag: self.tag,
                what,
                at: self.pos,
                needed: n,
            });
        }
        let out = &self.body[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, FrameError> {
        Ok(self.take(1, what)?[0])
    }

    pub(crate) fn i16(&mut self, what: &'static str) -> Result<i16, FrameError> {
        let b = self.take(2, what)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn i32(&mut self, what: &'static str) -> Result<i32, FrameError> {
        let b = self.take(4, what)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, FrameError> {
        Ok(self.i32(what)? as u32)
    }

    /// A count that Postgres sends as `Int16`; negative counts are invalid.
    pub(crate) fn count16(&mut self, what: &'static str) -> Result<usize, FrameError> {
        let at = self.pos;
        let n = self.i16(what)?;
        usize::try_from(n).map_err(|_| self.invalid(what, at))
    }

    /// A NUL-terminated string, without its terminator.
    pub(crate) fn cstr(&mut self, what: &'static str) -> Result<&'a [u8], FrameError> {
        let rest = &self.body[self.pos..];
        let Some(nul) = memchr::memchr(0, rest) else {
            return Err(FrameError::Truncated {
                tag: self.tag,
                what,
                at: self.pos,
                needed: rest.len() + 1,
            });
        };
        self.pos += nul + 1;
        Ok(&rest[..nul])
    }

    /// A NUL-terminated UTF-8 string.
    pub(crate) fn str(&mut self, what: &'static str) -> Result<&'a str, FrameError> {
        let at = self.pos;
        let raw = self.cstr(what)?;
        std::str::from_utf8(raw).map_err(|_| self.invalid(what, at))
    }

    pub(crate) fn invalid(&self, what: &'static str, at: usize) -> FrameError {
        FrameError::Invalid {
            tag: self.tag,
            what,
            at,
        }
    }

    /// Fails unless the whole body was consumed.
    pub(crate) fn finish(&self) -> Result<(), FrameError> {
        if self.remaining() == 0 {
            return Ok(());
        }
        Err(FrameError::TrailingBytes {
            tag: self.tag,
            at: self.pos,
            extra: self.remaining(),
        })
    }
}

/// A decoded backend message. Messages the client never acts on are kept as [`Self::Other`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackendMessage {
    Authentication(Authentication),
    BackendKeyData {
        process_id: i32,
        secret_key: i32,
    },
    ParameterStatus {
        name: String,
        value: String,
    },
    ReadyForQuery(TransactionStatus),
    RowDescription(RowDescription),
    DataRow(DataRow),
    CommandComplete(CommandTag),
    EmptyQueryResponse,
    ErrorResponse(Box<PgErrorFields>),
    NoticeResponse(Box<PgErrorFields>),
    CopyInResponse(CopyResponse),
    CopyOutResponse(CopyResponse),
    CopyBothResponse(CopyResponse),
    CopyData(Bytes),
    CopyDone,
    NotificationResponse {
        process_id: i32,
        channel: String,
        payload: String,
    },
    Other(Frame),
}

impl BackendMessage {
    /// Decodes a frame produced by [`split_frame`].
    pub fn parse(frame: Frame) -> Result<Self, FrameError> {
        let mut r = BodyReader::new(frame.tag, &frame.body);
        let msg = match frame.tag {
            b'R' => Self::Authentication(Authentication::parse(&mut r, &frame.body)?),
            b'K' => Self::BackendKeyData {
                process_id: r.i32("process id")?,
                secret_key: r.i32("secret key")?,
            },
            b'S' => Self::ParameterStatus {
                name: r.str("parameter name")?.to_owned(),
                value: r.str("parameter value")?.to_owned(),
            },
            b'Z' => Self::ReadyForQuery(TransactionStatus::parse(&mut r)?),
            b'T' => Self::RowDescription(RowDescription::parse(&mut r)?),
            b'D' => return DataRow::parse(frame.body).map(Self::DataRow),
            b'C' => Self::CommandComplete(CommandTag(r.str("command tag")?.to_owned())),
            b'I' => Self::EmptyQueryResponse,
            b'E' => Self::ErrorResponse(Box::new(PgErrorFields::parse(&mut r)?)),
            b'N' => Self::NoticeResponse(Box::new(PgErrorFields::parse(&mut r)?)),
            b'G' => Self::CopyInResponse(CopyResponse::parse(&mut r)?),
            b'H' => Self::CopyOutResponse(CopyResponse::parse(&mut r)?),
            b'W' => Self::CopyBothResponse(CopyResponse::parse(&mut r)?),
            b'd' => return Ok(Self::CopyData(frame.body)),
            b'c' => Self::CopyDone,
            b'A' => Self::NotificationResponse {
                process_id: r.i32("process id")?,
                channel: r.str("channel")?.to_owned(),
                payload: r.str("payload")?.to_owned(),
            },
            _ => return Ok(Self::Other(frame)),
        };
        r.finish()?;
        Ok(msg)
    }
}

/// An authentication request (`R` message).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Authentication {
    Ok,
    CleartextPassword,
    Md5Password {
        salt: [u8; 4],
    },
    /// SASL: the mechanisms the server offers, in its order of preference.
    Sasl {
        mechanisms: Vec<String>,
    },
    SaslContinue(Bytes),
    SaslFinal(Bytes),
    /// Kerberos, SCM credentials, GSSAPI or SSPI: recognised but not supported by Ampere.
    Unsupported {
        code: i32,
    },
}

impl Authentication {
    fn parse(r: &mut BodyReader<'_>, body: &Bytes) -> Result<Self, FrameError> {
        let code = r.i32("authentication code")?;
        Ok(match code {
            0 => Self::Ok,
            3 => Self::CleartextPassword,
            5 => {
                let s = r.take(4, "md5 salt")?;
                Self::Md5Password {
                    salt: [s[0], s[1], s[2], s[3]],
                }
            }
            10 => {
                let mut mechanisms = Vec::new();
                loop {
                    let name = r.str("SASL mechanism")?;
                    if name.is_empty() {
                        break;
                    }
                    mechanisms.push(name.to_owned());
                }
                Self::Sasl { mechanisms }
            }
            11 | 12 => {
                let data = body.slice(r.pos()..);
                r.take(r.remaining(), "SASL data")?;
                if code == 11 {
                    Self::SaslContinue(data)
                } else {
                    Self::SaslFinal(data)
                }
            }
            2 | 6 | 7 | 8 | 9 => {
                // GSS continuation data may follow; it is irrelevant once we refuse the method.
                r.take(r.remaining(), "authentication data")?;
                Self::Unsupported { code }
            }
            _ => return Err(FrameError::UnknownAuthentication { code }),
        })
    }
}

/// The transaction status reported by ReadyForQuery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransactionStatus {
    Idle,
    InTransaction,
    Failed,
}

impl TransactionStatus {
    fn parse(r: &mut BodyReader<'_>) -> Result<Self, FrameError> {
        let at = r.pos();
        match r.u8("transaction status")? {
            b'I' => Ok(Self::Idle),
            b'T' => Ok(Self::InTransaction),
            b'E' => Ok(Self::Failed),
            _ => Err(r.invalid("transaction status", at)),
        }
    }
}

/// A CommandComplete tag such as `INSERT 0 3` or `SELECT 10`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandTag(pub String);

impl CommandTag {
    /// The row count that ends tags such as `SELECT 10`, `UPDATE 2` or `COPY 100`, if any.
    pub fn rows(&self) -> Option<u64> {
        let (verb, last) = self.0.rsplit_once(' ')?;
        if verb.is_empty() {
            return None;
        }
        last.parse().ok()
    }
}

/// One column of a RowDescription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldDescription {
    pub name: String,
    pub table_oid: Oid,
    pub column_id: i16,
    pub type_oid: Oid,
    pub type_size: i16,
    pub type_modifier: i32,
    /// 0 for text, 1 for binary.
    pub format: i16,
}

/// The columns of the rows that follow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowDescription {
    pub fields: Vec<FieldDescription>,
}

/// The smallest encoding of one field: an empty name's NUL plus 18 bytes of fixed fields.
const MIN_FIELD_LEN: usize = 19;

impl RowDescription {
    fn parse(r: &mut BodyReader<'_>) -> Result<Self, FrameError> {
        let at = r.pos();
        let count = r.count16("field count")?;
        // Bound the allocation by what the body can actually hold.
        if count > r.remaining() / MIN_FIELD_LEN {
            return Err(r.invalid("field count", at));
        }
        let mut fields = Vec::with_capacity(count);
        for _ in 0..count {
            fields.push(FieldDescription {
                name: r.str("field name")?.to_owned(),
                table_oid: Oid(r.u32("table oid")?),
                column_id: r.i16("column number")?,
                type_oid: Oid(r.u32("type oid")?),
                type_size: r.i16("type size")?,
                type_modifier: r.i32("type modifier")?,
                format: r.i16("format code")?,
            });
        }
        Ok(Self { fields })
    }
}

/// One row of a result, validated once; columns are read lazily as ranges of `body`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataRow {
    body: Bytes,
    columns: u16,
}

impl DataRow {
    /// Validates that `body` holds exactly the declared columns.
    pub fn parse(body: Bytes) -> Result<Self, FrameError> {
        let mut r = BodyReader::new(b'D', &body);
        let at = r.pos();
        let count = r.count16("column count")?;
        let columns = u16::try_from(count).map_err(|_| r.invalid("column count", at))?;
        for _ in 0..count {
            let at = r.pos();
            let len = r.i32("column length")?;
            if len == -1 {
                continue;
            }
            let len = usize::try_from(len).map_err(|_| r.invalid("column length", at))?;
            r.take(len, "column value")?;
        }
        r.finish()?;
        Ok(Self { body, columns })
    }

    /// The number of columns.
    pub fn len(&self) -> usize {
        usize::from(self.columns)
    }

    pub fn is_empty(&self) -> bool {
        self.columns == 0
    }

    /// The whole body; [`Self::ranges`] index into it.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// Each column's byte range in [`Self::body`], or `None` for SQL NULL.
    pub fn ranges(&self) -> DataRowRanges<'_> {
        DataRowRanges {
            body: &self.body,
            pos: 2,
            left: self.columns,
        }
    }
}

/// Iterator over the column ranges of a validated [`DataRow`].
pub struct DataRowRanges<'a> {
    body: &'a [u8],
    pos: usize,
    left: u16,
}

impl Iterator for DataRowRanges<'_> {
    type Item = Option<Range<usize>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // DataRow::parse checked every length against the body, so these reads stay in bounds.
        let b = &self.body[self.pos..self.pos + 4];
        let len = i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        self.pos += 4;
        if len < 0 {
            return Some(None);
        }
        let start = self.pos;
        self.pos += len as usize;
        assert!(self.pos <= self.body.len(), "DataRow validated on parse");
        Some(Some(start..self.pos))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (usize::from(self.left), Some(usize::from(self.left)))
    }
}

impl ExactSizeIterator for DataRowRanges<'_> {}

/// CopyInResponse, CopyOutResponse and CopyBothResponse share this body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyResponse {
    /// 0: textual, 1: binary.
    pub format: u8,
    pub column_formats: Vec<i16>,
}

impl CopyResponse {
    fn parse(r: &mut BodyReader<'_>) -> Result<Self, FrameError> {
        let at = r.pos();
        let format = r.u8("copy format")?;
        if format > 1 {
            return Err(r.invalid("copy format", at));
        }
        let at = r.pos();
        let count = r.count16("column count")?;
        if count > r.remaining() / 2 {
            return Err(r.invalid("column count", at));
        }
        let mut column_formats = Vec::with_capacity(count);
        for _ in 0..count {
            column_formats.push(r.i16("column format")?);
        }
        Ok(Self {
            format,
            column_formats,
        })
    }
}

/// The fields of an ErrorResponse or NoticeResponse (see "Error and Notice Message Fields").
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PgErrorFields {
    /// `S`: possibly localized severity (`ERROR`, `FATAL`, `NOTICE`...).
    pub severity: String,
    /// `V`: severity, never localized (Postgres 9.6 and later).
    pub severity_nonlocalized: Option<String>,
    /// `C`: the SQLSTATE code.
    pub code: String,
    /// `M`: the primary message.
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
    /// `P`: 1-based character position in the query string.
    pub position: Option<u32>,
    pub internal_position: Option<u32>,
    pub internal_query: Option<String>,
    pub where_: Option<String>,
    pub schema: Option<String>,
    pub table: Option<String>,
    pub column: Option<String>,
    pub datatype: Option<String>,
    pub constraint: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub routine: Option<String>,
}

impl PgErrorFields {
    fn parse(r: &mut BodyReader<'_>) -> Result<Self, FrameError> {
        let mut f = Self::default();
        let (mut has_severity, mut has_code, mut has_message) = (false, false, false);
        loop {
            let kind = r.u8("field type")?;
            if kind == 0 {
                break;
            }
            let at = r.pos();
            // Messages may be in the server's encoding before client_encoding takes effect
            // (startup errors), so decode lossily rather than reject them.
            let value = String::from_utf8_lossy(r.cstr("field value")?).into_owned();
            let number = |v: &str| v.parse::<u32>().map_err(|_| r.invalid("number", at));
            match kind {
                b'S' => (f.severity, has_severity) = (value, true),
                b'V' => f.severity_nonlocalized = Some(value),
                b'C' => (f.code, has_code) = (value, true),
                b'M' => (f.message, has_message) = (value, true),
                b'D' => f.detail = Some(value),
                b'H' => f.hint = Some(value),
                b'P' => f.position = Some(number(&value)?),
                b'p' => f.internal_position = Some(number(&value)?),
                b'q' => f.internal_query = Some(value),
                b'W' => f.where_ = Some(value),
                b's' => f.schema = Some(value),
                b't' => f.table = Some(value),
                b'c' => f.column = Some(value),
                b'd' => f.datatype = Some(value),
                b'n' => f.constraint = Some(value),
                b'F' => f.file = Some(value),
                b'L' => f.line = Some(number(&value)?),
                b'R' => f.routine = Some(value),
                // The protocol says unknown field types must be ignored.
                _ => {}
            }
        }
        let at = r.pos();
        if !(has_severity && has_code && has_message) {
            return Err(r.invalid("error fields (S, C and M are required)", at));
        }
        Ok(f)
    }
}

impl std::fmt::Display for PgErrorFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} (SQLSTATE {})",
            self.severity, self.message, self.code
        )?;
        if let Some(detail) = &self.detail {
            write!(f, "; DETAIL: {detail}")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "; HINT: {hint}")?;
        }
        Ok(())
    }
}
