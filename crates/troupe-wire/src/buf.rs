//! Bounds-checked reading and size-first writing of the primitive field types
//!
//! Every read checks the bytes remaining before it looks at them and reports a typed
//! [`WireError`]; nothing here indexes, unwraps or allocates more than the bytes present.

use bytes::{BufMut, BytesMut};

use crate::WireError;

/// Largest number of bytes a `u32` varint takes.
const MAX_VARINT_LEN: usize = 5;

/// A cursor over one frame body
///
/// Tracks how many bytes were consumed so that a field can be handed out later as a range of the
/// body (the zero-copy payload).
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(body: &'a [u8]) -> Self {
        Self { rest: body, pos: 0 }
    }

    /// Offset of the next unread byte from the start of the body.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], WireError> {
        let (head, rest) = self
            .rest
            .split_first_chunk::<N>()
            .ok_or(WireError::Truncated { what })?;
        self.rest = rest;
        self.pos += N;
        Ok(*head)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        self.array::<1>(what).map(|[b]| b)
    }

    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, WireError> {
        self.array(what).map(u16::from_be_bytes)
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, WireError> {
        self.array(what).map(u32::from_be_bytes)
    }

    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, WireError> {
        self.array(what).map(u64::from_be_bytes)
    }

    /// Reads an unsigned LEB128 varint of at most 5 bytes that fits a `u32`
    ///
    /// Only the minimal encoding is accepted, so that every value has exactly one encoding.
    pub(crate) fn varint(&mut self, what: &'static str) -> Result<u32, WireError> {
        let mut value: u32 = 0;
        for i in 0..MAX_VARINT_LEN {
            let [byte] = self.array::<1>(what)?;
            let low = u32::from(byte & 0x7f);
            // The fifth byte may only carry the top 4 bits of a u32.
            if i == MAX_VARINT_LEN - 1 && low > 0x0f {
                return Err(WireError::Malformed { what });
            }
            value |= low << (7 * i);
            if byte & 0x80 == 0 {
                // A zero last byte after the first is a non-minimal encoding.
                if i > 0 && byte == 0 {
                    return Err(WireError::Malformed { what });
                }
                return Ok(value);
            }
        }
        Err(WireError::Malformed { what })
    }

    /// Takes the next `len` bytes, failing if fewer remain.
    pub(crate) fn bytes(&mut self, len: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        let (head, rest) = self
            .rest
            .split_at_checked(len)
            .ok_or(WireError::Truncated { what })?;
        self.rest = rest;
        self.pos += len;
        Ok(head)
    }

    /// Reads a varint length, then that many bytes.
    pub(crate) fn len_prefixed(&mut self, what: &'static str) -> Result<&'a [u8], WireError> {
        let len = self.varint(what)?;
        // A u32 always fits a usize on the targets troupe supports (32 and 64 bit); a failed
        // conversion could only mean more bytes than exist, so it is reported as truncation.
        let len = usize::try_from(len).map_err(|_| WireError::Truncated { what })?;
        self.bytes(len, what)
    }

    /// Reads a varint length, then that many bytes of UTF-8, into a `String` of exactly that size.
    pub(crate) fn string(&mut self, what: &'static str) -> Result<String, WireError> {
        let raw = self.len_prefixed(what)?;
        let s = std::str::from_utf8(raw).map_err(|_| WireError::InvalidUtf8 { what })?;
        Ok(s.to_owned())
    }

    /// Succeeds only if every byte of the body was read.
    pub(crate) fn finish(self) -> Result<(), WireError> {
        match self.rest.len() {
            0 => Ok(()),
            len => Err(WireError::TrailingBytes { len }),
        }
    }
}

/// Bytes [`put_varint`] writes for `value`; values above `u32::MAX` count as 5 (the frame size
/// check rejects them before anything is written).
pub(crate) fn varint_len(value: usize) -> usize {
    match value {
        0..0x80 => 1,
        0x80..0x4000 => 2,
        0x4000..0x20_0000 => 3,
        0x20_0000..0x1000_0000 => 4,
        _ => MAX_VARINT_LEN,
    }
}

/// Bytes a length-prefixed field of `len` bytes takes.
pub(crate) fn len_prefixed_len(len: usize) -> usize {
    varint_len(len).saturating_add(len)
}

/// Writes `value` as a minimal unsigned LEB128 varint.
pub(crate) fn put_varint(dst: &mut BytesMut, mut value: u32) {
    while value >= 0x80 {
        // Truncation to the low 7 bits is the point of the cast.
        dst.put_u8((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    dst.put_u8(value as u8);
}

/// Writes a varint length, then the bytes
///
/// The caller has checked the frame size, which bounds `bytes.len()` by `u32::MAX`.
pub(crate) fn put_len_prefixed(dst: &mut BytesMut, bytes: &[u8]) {
    let len =
        u32::try_from(bytes.len()).expect("the frame size check bounds every field by u32::MAX");
    put_varint(dst, len);
    dst.put_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_round_trips_at_every_width_boundary() {
        for value in [
            0,
            1,
            0x7f,
            0x80,
            0x3fff,
            0x4000,
            0x1f_ffff,
            0x20_0000,
            0xfff_ffff,
            0x1000_0000,
            u32::MAX,
        ] {
            let mut dst = BytesMut::new();
            put_varint(&mut dst, value);
            assert_eq!(dst.len(), varint_len(value as usize), "width of {value:#x}");
            let mut r = Reader::new(&dst);
            assert_eq!(r.varint("v"), Ok(value));
            assert_eq!(r.finish(), Ok(()));
        }
    }

    #[test]
    fn varint_rejects_non_minimal_overlong_and_overflowing_encodings() {
        for bad in [
            &[0x80, 0x00][..],
            &[0xff, 0x80, 0x00],
            &[0xff, 0xff, 0xff, 0xff, 0x10],
            &[0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
        ] {
            assert_eq!(
                Reader::new(bad).varint("v"),
                Err(WireError::Malformed { what: "v" }),
                "{bad:x?}"
            );
        }
        assert_eq!(
            Reader::new(&[0x80]).varint("v"),
            Err(WireError::Truncated { what: "v" })
        );
    }

    #[test]
    fn reads_check_the_bytes_remaining() {
        let mut r = Reader::new(&[0, 1, 2]);
        assert_eq!(r.u32("x"), Err(WireError::Truncated { what: "x" }));
        assert_eq!(r.u16("y"), Ok(1));
        assert_eq!(r.position(), 2);
        assert_eq!(r.bytes(2, "z"), Err(WireError::Truncated { what: "z" }));
        assert_eq!(
            Reader::new(&[5, b'a']).string("s"),
            Err(WireError::Truncated { what: "s" })
        );
        assert_eq!(
            Reader::new(&[1, 0xff]).string("s"),
            Err(WireError::InvalidUtf8 { what: "s" })
        );
        assert_eq!(
            Reader::new(&[1, 2]).finish(),
            Err(WireError::TrailingBytes { len: 2 })
        );
    }
}
