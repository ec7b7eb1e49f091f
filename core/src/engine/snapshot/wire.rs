//! Snapshot wire primitives: little-endian writes, a length-checked reader, the checksum.

use crate::error::{Error, ErrorKind};

/// CRC-32 (IEEE, as zlib and PNG) of `data`.
pub fn crc32(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

/// Little-endian appends to a byte buffer.
pub struct W<'a>(pub &'a mut Vec<u8>);

impl W<'_> {
    pub fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn f64(&mut self, v: f64) {
        self.u64(v.to_bits());
    }
    /// A count or length; snapshots never hold 4 G of anything.
    pub fn len(&mut self, n: usize) {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }
    pub fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.0.extend_from_slice(b);
    }
    /// Raw words, no length: one resize and a loop the compiler turns into a copy.
    pub fn words(&mut self, words: &[u32]) {
        let start = self.0.len();
        self.0.resize(start + 4 * words.len(), 0);
        for (dst, w) in self.0[start..].chunks_exact_mut(4).zip(words) {
            dst.copy_from_slice(&w.to_le_bytes());
        }
    }
    /// `n` fixed-size records, each encoded by `put` into its own `size`-byte slice.
    pub fn records<T>(&mut self, items: &[T], size: usize, put: impl Fn(&T, &mut [u8])) {
        let start = self.0.len();
        self.0.resize(start + size * items.len(), 0);
        for (dst, item) in self.0[start..].chunks_exact_mut(size).zip(items) {
            put(item, dst);
        }
    }
}

#[cold]
pub fn decode_err(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::Decode, format!("snapshot: {}", msg.into()))
}

/// A reader that fails, naming the section, instead of reading past the end.
pub struct R<'a> {
    buf: &'a [u8],
    pos: usize,
    /// What is being read, for error messages.
    pub section: &'static str,
}

pub type Res<T> = Result<T, Error>;

impl<'a> R<'a> {
    pub fn new(buf: &'a [u8]) -> R<'a> {
        R {
            buf,
            pos: 0,
            section: "header",
        }
    }

    pub fn take(&mut self, n: usize) -> Res<&'a [u8]> {
        match self.buf.get(self.pos..self.pos.saturating_add(n)) {
            Some(b) => {
                self.pos += n;
                Ok(b)
            }
            None => Err(decode_err(format!(
                "truncated in {} (needs {n} bytes at offset {}, {} left)",
                self.section,
                self.pos,
                self.buf.len() - self.pos
            ))),
        }
    }

    fn arr<const N: usize>(&mut self) -> Res<[u8; N]> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    pub fn u8(&mut self) -> Res<u8> {
        Ok(self.take(1)?[0])
    }
    pub fn u16(&mut self) -> Res<u16> {
        self.arr().map(u16::from_le_bytes)
    }
    pub fn u32(&mut self) -> Res<u32> {
        self.arr().map(u32::from_le_bytes)
    }
    pub fn u64(&mut self) -> Res<u64> {
        self.arr().map(u64::from_le_bytes)
    }
    pub fn i64(&mut self) -> Res<i64> {
        self.arr().map(i64::from_le_bytes)
    }
    pub fn f64(&mut self) -> Res<f64> {
        self.u64().map(f64::from_bits)
    }
    /// A count of items of at least `min_size` bytes each, checked against what is left so a
    /// corrupt count cannot make us allocate gigabytes.
    pub fn count(&mut self, min_size: usize) -> Res<usize> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_size) > self.buf.len() - self.pos {
            return Err(decode_err(format!(
                "truncated in {}: {n} items cannot fit in the {} bytes left",
                self.section,
                self.buf.len() - self.pos
            )));
        }
        Ok(n)
    }
    pub fn bytes(&mut self) -> Res<&'a [u8]> {
        let n = self.count(1)?;
        self.take(n)
    }
    pub fn str(&mut self) -> Res<&'a str> {
        let section = self.section;
        std::str::from_utf8(self.bytes()?)
            .map_err(|_| decode_err(format!("{section}: a string is not UTF-8")))
    }
    /// `n` raw little-endian words into `dst`.
    pub fn words(&mut self, dst: &mut [u32]) -> Res<()> {
        let src = self.take(4 * dst.len())?;
        for (d, s) in dst.iter_mut().zip(src.chunks_exact(4)) {
            *d = u32::from_le_bytes([s[0], s[1], s[2], s[3]]);
        }
        Ok(())
    }
    pub fn at_end(&self) -> bool {
        self.pos == self.buf.len()
    }
    pub fn left(&self) -> usize {
        self.buf.len() - self.pos
    }
}

/// Fixed-offset little-endian field access inside one record.
pub struct Rec<'a> {
    pub buf: &'a [u8],
    pub pos: usize,
}

impl Rec<'_> {
    pub fn get<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0; N];
        a.copy_from_slice(&self.buf[self.pos..self.pos + N]);
        self.pos += N;
        a
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(super::crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(super::crc32(b""), 0);
    }
}
