//! The few bincode encodings the socket's hot frames use, read and written by hand: varint
//! lengths and integers, `Option` tags, enum variant indices, booleans, byte strings.
//!
//! Why: going through bincode's generic decoder and encoder cost the daemon about 430
//! instructions to decode a GenerateDataKey request of 40 bytes and 370 to encode its reply
//! (a bounds and limit check, a call and a capacity check per member), more than the rest of
//! its framing together. The bytes are bincode's own ([`super::BINCODE_CONFIG`]: little-endian,
//! varint integers); the reader only takes the common forms and says so when it meets another
//! (its callers then decode with bincode, which also produces the errors), and the tests of
//! `borrowed` hold both directions to the owned codec's bytes.

/// Largest value bincode's varint writes in one byte.
const SINGLE_BYTE_MAX: u8 = 250;
/// Marks a varint of two little-endian bytes.
const U16_BYTE: u8 = 251;
/// Marks a varint of four little-endian bytes.
const U32_BYTE: u8 = 252;
/// Marks a varint of eight little-endian bytes.
const U64_BYTE: u8 = 253;

/// Reads bincode members from the front of a body. Every method returns `None` where the
/// bytes are not in the form it reads (including the end of the body): the caller then
/// leaves the body to bincode, which decodes it or says why not.
pub(super) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(super) fn new(body: &'a [u8]) -> Reader<'a> {
        Reader { rest: body }
    }

    /// Whether the whole body was read.
    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    #[inline]
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.rest.split_first()?;
        self.rest = rest;
        Some(b)
    }

    #[inline]
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.rest.len() {
            return None;
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    /// A varint of up to 32 bits (a `u32`, a length of a body within the frame limit).
    #[inline]
    pub(super) fn varint(&mut self) -> Option<u32> {
        match self.byte()? {
            b @ 0..=SINGLE_BYTE_MAX => Some(u32::from(b)),
            U16_BYTE => Some(u32::from(u16::from_le_bytes(self.array()?))),
            U32_BYTE => Some(u32::from_le_bytes(self.array()?)),
            _ => None,
        }
    }

    /// A byte string: its varint length, then its bytes.
    #[inline]
    pub(super) fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.varint()?;
        self.take(n as usize)
    }

    /// A string (a byte string of valid UTF-8), taken from `last` when it has the same bytes
    /// (a key id the request before named too: compared, not checked as UTF-8 again); else
    /// remembered there.
    pub(super) fn str_as(&mut self, last: &mut Option<&'a str>) -> Option<&'a str> {
        let b = self.bytes()?;
        if let Some(l) = *last {
            if l.as_bytes() == b {
                return Some(l);
            }
        }
        let s = std::str::from_utf8(b).ok()?;
        *last = Some(s);
        Some(s)
    }

    /// An `Option`'s tag: `Some(false)` for None, `Some(true)` for Some.
    #[inline]
    pub(super) fn tag(&mut self) -> Option<bool> {
        self.flag()
    }

    /// A `bool`.
    #[inline]
    pub(super) fn flag(&mut self) -> Option<bool> {
        match self.byte()? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }

    /// A fieldless enum's value, by its variant index into `all` (declaration order, as
    /// bincode's derive numbers them).
    pub(super) fn variant<T: Copy>(&mut self, all: &[T]) -> Option<T> {
        all.get(self.varint()? as usize).copied()
    }

    /// An `Option` of what `read` reads.
    #[inline]
    pub(super) fn option<T>(
        &mut self,
        read: impl FnOnce(&mut Self) -> Option<T>,
    ) -> Option<Option<T>> {
        if self.tag()? {
            read(self).map(Some)
        } else {
            Some(None)
        }
    }
}

/// Bytes [`put_varint`] writes for `v`.
#[inline]
pub(super) fn varint_len(v: usize) -> usize {
    match v {
        0..=250 => 1,
        251..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

/// Appends `v` as bincode's varint (`u64`, `usize` and `u32` alike) to `out`, which has room.
/// Inlined where it is written: a length in one byte is the common case, a few per reply.
#[inline]
pub(super) fn put_varint(out: &mut Vec<u8>, v: usize) {
    if v <= usize::from(SINGLE_BYTE_MAX) {
        out.push(v as u8);
    } else {
        put_long_varint(out, v);
    }
}

/// [`put_varint`] for a value over one byte.
#[cold]
fn put_long_varint(out: &mut Vec<u8>, v: usize) {
    if let Ok(v) = u16::try_from(v) {
        out.push(U16_BYTE);
        out.extend_from_slice(&v.to_le_bytes());
    } else if let Ok(v) = u32::try_from(v) {
        out.push(U32_BYTE);
        out.extend_from_slice(&v.to_le_bytes());
    } else {
        out.push(U64_BYTE);
        out.extend_from_slice(&(v as u64).to_le_bytes());
    }
}

/// Bytes [`put_bytes`] writes for `b`.
#[inline]
pub(super) fn bytes_len(b: &[u8]) -> usize {
    varint_len(b.len()) + b.len()
}

/// Appends a byte string (or a string's bytes): its varint length, then the bytes.
#[inline]
pub(super) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len());
    out.extend_from_slice(b);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::BINCODE_CONFIG;

    #[test]
    fn varints_are_written_and_read_as_bincode_writes_them() {
        for v in [
            0u64,
            1,
            250,
            251,
            252,
            0xffff,
            0x1_0000,
            0xffff_ffff,
            0x1_0000_0000,
        ] {
            let theirs = bincode::encode_to_vec(v, BINCODE_CONFIG).unwrap();
            let mut ours = Vec::with_capacity(9);
            put_varint(&mut ours, v as usize);
            assert_eq!(
                (ours.len(), varint_len(v as usize)),
                (theirs.len(), theirs.len())
            );
            assert_eq!(ours, theirs, "{v}");
            let read = Reader::new(&theirs).varint();
            assert_eq!(read, u32::try_from(v).ok(), "{v}");
        }
    }

    #[test]
    fn what_the_reader_does_not_take_it_leaves_to_bincode() {
        assert_eq!(
            Reader::new(&[U64_BYTE, 1, 0, 0, 0, 0, 0, 0, 0]).varint(),
            None
        );
        assert_eq!(Reader::new(&[U16_BYTE, 1]).varint(), None, "cut short");
        assert_eq!(Reader::new(&[2]).tag(), None);
        assert_eq!(Reader::new(&[2, b'a']).bytes(), None, "cut short");
        assert_eq!(Reader::new(&[2, 0xc3, 0xa9]).str_as(&mut None), Some("é"));
        let mut last = Some("é");
        assert_eq!(
            Reader::new(&[2, 0xc3, 0x28]).str_as(&mut last),
            None,
            "not UTF-8"
        );
        assert_eq!(Reader::new(&[2, b'a', b'b']).str_as(&mut last), Some("ab"));
        assert_eq!(last, Some("ab"));
        assert_eq!(Reader::new(&[4]).variant(&[1, 2, 3]), None);
    }
}
