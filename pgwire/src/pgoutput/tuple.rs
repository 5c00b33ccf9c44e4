//! TupleData: the column values of a row in Insert, Update and Delete.

use bumpalo::Bump;

use super::error::{DecodeError, DecodeErrorKind};
use super::reader::Reader;
use super::tag;
use super::MAX_COLUMNS;

/// The columns of one row, in relation column order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TupleData<'a> {
    pub columns: &'a [TupleValue<'a>],
}

/// One column value. Text and binary values borrow the message bytes unchecked: a text value
/// is in the server encoding and is not validated as UTF-8 here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TupleValue<'a> {
    Null,
    /// A TOASTed value that the change did not touch; Postgres does not resend it.
    UnchangedToast,
    Text(&'a [u8]),
    Binary(&'a [u8]),
}

/// The old row carried by an Update or Delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OldTuple<'a> {
    /// `K`: only the replica identity key columns are set; the others are null.
    Key(TupleData<'a>),
    /// `O`: the whole old row (REPLICA IDENTITY FULL).
    Full(TupleData<'a>),
}

impl<'a> OldTuple<'a> {
    #[inline]
    pub fn tuple(&self) -> &TupleData<'a> {
        match self {
            OldTuple::Key(t) | OldTuple::Full(t) => t,
        }
    }
}

/// Smallest encoding of one column: the kind byte alone (`n` or `u`).
const MIN_COLUMN_BYTES: usize = 1;

/// Reads an Int16 column count and the columns.
pub(crate) fn read_tuple<'a>(
    reader: &mut Reader<'a>,
    arena: &'a Bump,
) -> Result<TupleData<'a>, DecodeError> {
    let count = reader.count16(MAX_COLUMNS, MIN_COLUMN_BYTES)?;
    // The count was checked against the remaining bytes, so this allocation is bounded by the
    // message size and by MAX_COLUMNS.
    let columns = arena.alloc_slice_fill_copy(count, TupleValue::Null);
    for slot in columns.iter_mut() {
        *slot = read_value(reader)?;
    }
    Ok(TupleData { columns })
}

#[inline]
fn read_value<'a>(reader: &mut Reader<'a>) -> Result<TupleValue<'a>, DecodeError> {
    let start = reader.pos();
    match reader.u8()? {
        tag::COLUMN_NULL => Ok(TupleValue::Null),
        tag::COLUMN_UNCHANGED_TOAST => Ok(TupleValue::UnchangedToast),
        tag::COLUMN_TEXT => reader.length_prefixed().map(TupleValue::Text),
        tag::COLUMN_BINARY => reader.length_prefixed().map(TupleValue::Binary),
        other => Err(DecodeError::new(
            DecodeErrorKind::InvalidTupleKind(other),
            start,
        )),
    }
}
