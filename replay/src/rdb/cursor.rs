//! The primitives of the RDB encoding read from a byte slice that may end early: lengths,
//! strings (plain, integer, LZF), doubles and fixed-width integers.
//!
//! A [`Cursor`] never copies: a string comes back as a [`StrRef`] holding a range of the slice,
//! turned into a `Bytes` slice by the caller once the unit is complete. Running out of input is
//! [`Fail::Incomplete`], never an error: the caller waits for more bytes and tries again from
//! the start of the unit.

use std::ops::Range;

use bytes::Bytes;

/// Why a unit could not be read (yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fail {
    /// More input is needed; nothing was consumed.
    Incomplete,
    /// The input is malformed at `at` (offset in the slice being read).
    Corrupt { at: usize, what: String },
    /// A single string needs more bytes in one piece than the limit allows.
    TooLarge { at: usize, len: u64 },
}

pub(crate) type Res<T> = Result<T, Fail>;

pub(crate) fn corrupt<T>(at: usize, what: impl Into<String>) -> Res<T> {
    Err(Fail::Corrupt {
        at,
        what: what.into(),
    })
}

/// A string of the RDB encoding, located in the slice it was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StrRef {
    /// Plain bytes at this range.
    Raw(Range<usize>),
    /// An integer-encoded string.
    Int(i64),
    /// LZF-compressed bytes at this range that expand to `len` bytes.
    Lzf { data: Range<usize>, len: usize },
}

impl StrRef {
    /// The string as `Bytes`: a slice of `unit` for plain strings (no copy), a decimal rendering
    /// for integers, the decompressed bytes for LZF. `unit` must be the bytes the cursor read.
    pub(crate) fn to_bytes(&self, unit: &Bytes) -> Result<Bytes, String> {
        match self {
            StrRef::Raw(r) => Ok(unit.slice(r.clone())),
            StrRef::Int(i) => Ok(Bytes::copy_from_slice(
                itoa::Buffer::new().format(*i).as_bytes(),
            )),
            StrRef::Lzf { data, len } => {
                if *len == 0 {
                    return Ok(Bytes::new());
                }
                let out = lzf::decompress(&unit[data.clone()], *len)
                    .map_err(|e| format!("LZF string does not decompress: {e:?}"))?;
                if out.len() != *len {
                    return Err(format!(
                        "LZF string expands to {} bytes, header says {len}",
                        out.len()
                    ));
                }
                Ok(Bytes::from(out))
            }
        }
    }
}

/// A length field: either a count or the marker of a special string encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Len {
    Plain(u64),
    /// `11xxxxxx`: the low six bits name an integer or LZF string encoding.
    Special(u8),
}

/// Reads RDB primitives from a slice; `pos` only moves forward.
#[derive(Debug)]
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pub(crate) pos: usize,
    /// Largest string accepted in one piece.
    limit: u64,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8], limit: u64) -> Self {
        Cursor { buf, pos: 0, limit }
    }

    /// The bytes at a range returned by this cursor.
    pub(crate) fn slice(&self, r: Range<usize>) -> &'a [u8] {
        &self.buf[r]
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn take(&mut self, n: usize) -> Res<Range<usize>> {
        if self.remaining() < n {
            return Err(Fail::Incomplete);
        }
        let r = self.pos..self.pos + n;
        self.pos += n;
        Ok(r)
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Res<&'a [u8]> {
        let r = self.take(n)?;
        Ok(&self.buf[r])
    }

    pub(crate) fn u8(&mut self) -> Res<u8> {
        Ok(self.bytes(1)?[0])
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Res<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    pub(crate) fn i32_le(&mut self) -> Res<i32> {
        Ok(i32::from_le_bytes(self.array()?))
    }

    pub(crate) fn i64_le(&mut self) -> Res<i64> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    pub(crate) fn u64_le(&mut self) -> Res<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub(crate) fn f64_le(&mut self) -> Res<f64> {
        Ok(f64::from_le_bytes(self.array()?))
    }

    pub(crate) fn u64_be(&mut self) -> Res<u64> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// A length field (`00` 6-bit, `01` 14-bit, `0x80` u32 BE, `0x81` u64 BE, `11` special).
    pub(crate) fn len_field(&mut self) -> Res<Len> {
        let at = self.pos;
        let first = self.u8()?;
        match first >> 6 {
            0 => Ok(Len::Plain(u64::from(first & 0x3f))),
            1 => {
                let second = self.u8()?;
                Ok(Len::Plain(
                    (u64::from(first & 0x3f) << 8) | u64::from(second),
                ))
            }
            2 => match first {
                0x80 => Ok(Len::Plain(u64::from(u32::from_be_bytes(self.array()?)))),
                0x81 => Ok(Len::Plain(self.u64_be()?)),
                _ => corrupt(at, format!("unknown length encoding {first:#04x}")),
            },
            _ => Ok(Len::Special(first & 0x3f)),
        }
    }

    /// A length that must be a plain count.
    pub(crate) fn len(&mut self) -> Res<u64> {
        let at = self.pos;
        match self.len_field()? {
            Len::Plain(n) => Ok(n),
            Len::Special(s) => corrupt(at, format!("expected a length, found encoding {s}")),
        }
    }

    /// A count of items that each take at least `min_item_bytes` bytes: a count larger than any
    /// input could hold is corrupt (this keeps later allocations honest).
    pub(crate) fn count(&mut self, what: &str) -> Res<u64> {
        let at = self.pos;
        let n = self.len()?;
        if n > (1u64 << 40) {
            return corrupt(at, format!("{what} count {n} is not plausible"));
        }
        Ok(n)
    }

    /// A string (plain, integer-encoded or LZF).
    pub(crate) fn string(&mut self) -> Res<StrRef> {
        let at = self.pos;
        match self.len_field()? {
            Len::Plain(n) => {
                if n > self.limit {
                    return Err(Fail::TooLarge { at, len: n });
                }
                Ok(StrRef::Raw(self.take(n as usize)?))
            }
            Len::Special(0) => Ok(StrRef::Int(i64::from(self.u8()? as i8))),
            Len::Special(1) => Ok(StrRef::Int(i64::from(i16::from_le_bytes(self.array()?)))),
            Len::Special(2) => Ok(StrRef::Int(i64::from(self.i32_le()?))),
            Len::Special(3) => {
                let clen = self.len()?;
                let ulen = self.len()?;
                if ulen > self.limit || clen > self.limit {
                    return Err(Fail::TooLarge {
                        at,
                        len: ulen.max(clen),
                    });
                }
                if clen == 0 && ulen != 0 {
                    return corrupt(at, "LZF string with no compressed data");
                }
                let data = self.take(clen as usize)?;
                Ok(StrRef::Lzf {
                    data,
                    len: ulen as usize,
                })
            }
            Len::Special(s) => corrupt(at, format!("unknown string encoding {s}")),
        }
    }

    /// A double in the old text form: one length byte (253 NaN, 254 +inf, 255 -inf) + ASCII.
    pub(crate) fn text_double(&mut self) -> Res<f64> {
        let at = self.pos;
        let n = self.u8()?;
        match n {
            253 => Ok(f64::NAN),
            254 => Ok(f64::INFINITY),
            255 => Ok(f64::NEG_INFINITY),
            _ => {
                let text = self.bytes(usize::from(n))?;
                std::str::from_utf8(text)
                    .ok()
                    .and_then(|s| s.trim().parse::<f64>().ok())
                    .map_or_else(|| corrupt(at, "double is not a number"), Ok)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths() {
        let mut c = Cursor::new(&[0x05, 0x41, 0x02, 0x80, 0, 1, 0, 0], 1 << 20);
        assert_eq!(c.len().ok(), Some(5));
        assert_eq!(c.len().ok(), Some(0x102));
        assert_eq!(c.len().ok(), Some(65536));
        let mut c = Cursor::new(&[0x81, 0, 0, 0, 0, 0, 0, 0], 1 << 20);
        assert_eq!(c.len(), Err(Fail::Incomplete));
    }

    #[test]
    fn strings() {
        let data = [
            0x03, b'a', b'b', b'c', 0xc0, 0xff, 0xc1, 0x00, 0x80, 0xc2, 1, 0, 0, 0,
        ];
        let mut c = Cursor::new(&data, 1 << 20);
        assert_eq!(c.string().ok(), Some(StrRef::Raw(1..4)));
        assert_eq!(c.string().ok(), Some(StrRef::Int(-1)));
        assert_eq!(c.string().ok(), Some(StrRef::Int(-32768)));
        assert_eq!(c.string().ok(), Some(StrRef::Int(1)));
    }

    #[test]
    fn lzf_roundtrip() {
        let plain = b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".to_vec();
        let packed = lzf::compress(&plain).expect("compressible");
        let mut data = vec![0xc3, packed.len() as u8, plain.len() as u8];
        data.extend_from_slice(&packed);
        let unit = Bytes::from(data);
        let mut c = Cursor::new(&unit, 1 << 20);
        let s = c.string().expect("lzf string");
        assert_eq!(s.to_bytes(&unit).expect("decompresses"), Bytes::from(plain));
    }

    #[test]
    fn oversized_string_is_refused_before_reading() {
        let mut c = Cursor::new(&[0x80, 0x10, 0, 0, 0], 1024);
        assert!(matches!(c.string(), Err(Fail::TooLarge { .. })));
    }

    #[test]
    fn bad_length_encoding() {
        let mut c = Cursor::new(&[0x85], 1024);
        assert!(matches!(c.len(), Err(Fail::Corrupt { .. })));
    }
}
