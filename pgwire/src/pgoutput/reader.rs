//! A bounds-checked big-endian cursor over one message. Every read either returns data that
//! lies inside the message or an error carrying the offset where it would have started.

use super::error::{DecodeError, DecodeErrorKind};
use crate::types::{Lsn, Oid, TimestampTz, Xid};

pub(crate) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    #[inline]
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    #[inline]
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    #[inline]
    pub(crate) fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    #[inline]
    pub(crate) fn error(&self, kind: DecodeErrorKind) -> DecodeError {
        DecodeError::new(kind, self.pos)
    }

    #[inline]
    pub(crate) fn bytes(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        if len > self.remaining() {
            return Err(self.error(DecodeErrorKind::UnexpectedEof));
        }
        let out = &self.data[self.pos..self.pos + len];
        self.pos += len;
        Ok(out)
    }

    #[inline]
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let bytes = self.bytes(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    #[inline]
    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    #[inline]
    pub(crate) fn i16(&mut self) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    #[inline]
    pub(crate) fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    #[inline]
    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    #[inline]
    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    #[inline]
    pub(crate) fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    #[inline]
    pub(crate) fn lsn(&mut self) -> Result<Lsn, DecodeError> {
        self.u64().map(Lsn)
    }

    #[inline]
    pub(crate) fn xid(&mut self) -> Result<Xid, DecodeError> {
        self.u32().map(Xid)
    }

    #[inline]
    pub(crate) fn oid(&mut self) -> Result<Oid, DecodeError> {
        self.u32().map(Oid)
    }

    #[inline]
    pub(crate) fn timestamp(&mut self) -> Result<TimestampTz, DecodeError> {
        self.i64().map(TimestampTz)
    }

    /// A byte that must be 0 or 1.
    #[inline]
    pub(crate) fn bool_flag(&mut self) -> Result<bool, DecodeError> {
        let start = self.pos;
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(DecodeError::new(DecodeErrorKind::InvalidFlag(other), start)),
        }
    }

    /// A NUL-terminated UTF-8 string; the NUL is consumed but not returned.
    #[inline]
    pub(crate) fn cstr(&mut self) -> Result<&'a str, DecodeError> {
        let rest = &self.data[self.pos..];
        let Some(len) = memchr::memchr(0, rest) else {
            return Err(self.error(DecodeErrorKind::MissingNulTerminator));
        };
        let text = std::str::from_utf8(&rest[..len])
            .map_err(|_| self.error(DecodeErrorKind::InvalidUtf8))?;
        self.pos += len + 1;
        Ok(text)
    }

    /// An Int16 element count, validated to be non-negative, at most `max`, and such that
    /// `count * min_element_bytes` fits in what remains, so the caller may allocate `count`.
    #[inline]
    pub(crate) fn count16(
        &mut self,
        max: usize,
        min_element_bytes: usize,
    ) -> Result<usize, DecodeError> {
        let start = self.pos;
        let raw = self.i16()?;
        self.check_count(i32::from(raw), max, min_element_bytes, start)
    }

    /// An Int32 element count, validated like [`Reader::count16`].
    #[inline]
    pub(crate) fn count32(
        &mut self,
        max: usize,
        min_element_bytes: usize,
    ) -> Result<usize, DecodeError> {
        let start = self.pos;
        let raw = self.i32()?;
        self.check_count(raw, max, min_element_bytes, start)
    }

    fn check_count(
        &self,
        raw: i32,
        max: usize,
        min_element_bytes: usize,
        start: usize,
    ) -> Result<usize, DecodeError> {
        let Ok(count) = usize::try_from(raw) else {
            return Err(DecodeError::new(DecodeErrorKind::NegativeCount(raw), start));
        };
        let fits = count
            .checked_mul(min_element_bytes)
            .is_some_and(|needed| needed <= self.remaining());
        if count > max || !fits {
            let kind = DecodeErrorKind::CountTooLarge(raw.unsigned_abs());
            return Err(DecodeError::new(kind, start));
        }
        Ok(count)
    }

    /// An Int32 byte length followed by that many bytes.
    #[inline]
    pub(crate) fn length_prefixed(&mut self) -> Result<&'a [u8], DecodeError> {
        let start = self.pos;
        let raw = self.i32()?;
        let Ok(len) = usize::try_from(raw) else {
            return Err(DecodeError::new(
                DecodeErrorKind::NegativeLength(raw),
                start,
            ));
        };
        if len > self.remaining() {
            let kind = DecodeErrorKind::LengthTooLarge(raw.unsigned_abs());
            return Err(DecodeError::new(kind, start));
        }
        self.bytes(len)
    }

    /// Fails unless the whole message has been read.
    #[inline]
    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            left => Err(self.error(DecodeErrorKind::TrailingBytes(left))),
        }
    }
}
