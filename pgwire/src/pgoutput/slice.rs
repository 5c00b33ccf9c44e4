//! Turning borrowed values back into owned, reference-counted [`Bytes`] without copying.
//!
//! A caller that holds the message as `Bytes` (for example the body of a CopyData frame)
//! decodes it with borrowed slices, then keeps the values it needs beyond the arena's lifetime
//! as sub-slices of that `Bytes`, which share its buffer.

use bytes::Bytes;

/// The part of `parent` that `sub` borrows, as a `Bytes` sharing `parent`'s buffer.
///
/// # Panics
/// If `sub` is not inside `parent` (a caller bug: it passed a slice of some other buffer).
/// An empty `sub` always succeeds.
#[inline]
pub fn slice_of(parent: &Bytes, sub: &[u8]) -> Bytes {
    try_slice_of(parent, sub).expect("slice_of: sub-slice does not lie within the parent Bytes")
}

/// Like [`slice_of`], but returns `None` when `sub` does not lie within `parent`.
#[inline]
pub fn try_slice_of(parent: &Bytes, sub: &[u8]) -> Option<Bytes> {
    if sub.is_empty() {
        return Some(Bytes::new());
    }
    let parent_start = parent.as_ptr() as usize;
    let sub_start = sub.as_ptr() as usize;
    let offset = sub_start.checked_sub(parent_start)?;
    let end = offset.checked_add(sub.len())?;
    (end <= parent.len()).then(|| parent.slice(offset..end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_slices_share_the_parent_buffer() {
        let parent = Bytes::from_static(b"hello world");
        let sub = &parent[6..];
        let owned = slice_of(&parent, sub);
        assert_eq!(&owned[..], b"world");
        assert_eq!(owned.as_ptr(), sub.as_ptr(), "no copy was made");
        assert_eq!(slice_of(&parent, &[]), Bytes::new());
    }

    #[test]
    fn foreign_slices_are_rejected() {
        let parent = Bytes::from_static(b"hello");
        let other = b"other".to_vec();
        assert_eq!(try_slice_of(&parent, &other), None);
        // A slice that starts inside but runs past the end must also be rejected.
        let longer = Bytes::from_static(b"hello world");
        let head = longer.slice(0..5);
        assert_eq!(try_slice_of(&head, &longer[3..8]), None);
    }
}
