//! A strict, allocation-free JSON scanner over borrowed bytes: the tokens of RFC 8259, string
//! bodies left escaped (unescaped straight into a column when pushed), numbers left as text.

/// Where and why the input stopped being JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    /// Byte offset in the whole input.
    pub at: usize,
    pub what: &'static str,
}

/// The type of a scanned value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Ty {
    /// A string without escapes.
    Str,
    /// A string whose body holds backslash escapes.
    EscStr,
    Num,
    True,
    False,
    Null,
    Object,
    Array,
}

/// One scanned value: its type and its exact bytes (strings with their quotes).
#[derive(Clone, Copy, Debug)]
pub struct Val<'a> {
    pub ty: Ty,
    pub raw: &'a [u8],
    /// A number's value when the scanner could compute it exactly on the way, else NaN.
    // Kept out of `Ty`: an f64 inside the enum made every copy of a value an unaligned blob
    // move that defeats store forwarding, a third of the decode time.
    pub num: f64,
}

impl<'a> Val<'a> {
    /// The body of a string value (between the quotes).
    #[inline]
    pub fn body(&self) -> &'a [u8] {
        &self.raw[1..self.raw.len() - 1]
    }

    pub fn is_null(&self) -> bool {
        self.ty == Ty::Null
    }
}

/// Deepest nesting skipped inside unknown fields; deeper input is rejected, not recursed into.
const MAX_DEPTH: u32 = 128;

/// Bytes a string scan must stop at: `"`, `\`, control characters, and non-ASCII (UTF-8 check).
static STOP: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = i < 0x20 || i == b'"' as usize || i == b'\\' as usize || i >= 0x80;
        i += 1;
    }
    t
};

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// The first byte at or after `i` that a string scan must stop at (see [`STOP`]), or `b.len()`.
/// Eight bytes at a time: each test below is exact for its lowest match, which is all we use.
#[inline(always)]
pub(super) fn find_stop(b: &[u8], mut i: usize) -> usize {
    let zero = |v: u64| v.wrapping_sub(LO) & !v & HI;
    while let Some(chunk) = b.get(i..i + 8) {
        let mut a = [0u8; 8];
        a.copy_from_slice(chunk);
        let w = u64::from_le_bytes(a);
        let ctrl = w.wrapping_sub(0x20 * LO) & !w & HI;
        let m =
            zero(w ^ (u64::from(b'"') * LO)) | zero(w ^ (u64::from(b'\\') * LO)) | ctrl | (w & HI);
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if STOP[c as usize] {
            break;
        }
        i += 1;
    }
    i
}

pub struct Lexer<'a> {
    pub b: &'a [u8],
    pub i: usize,
    /// The last syntax error of a `scan_*` method (which return `None` then).
    pub error: SyntaxError,
}

impl<'a> Lexer<'a> {
    pub fn new(b: &'a [u8], i: usize) -> Lexer<'a> {
        Lexer {
            b,
            i,
            error: SyntaxError { at: 0, what: "" },
        }
    }

    #[cold]
    pub fn err(&self, what: &'static str) -> SyntaxError {
        SyntaxError { at: self.i, what }
    }

    #[inline]
    pub fn ws(&mut self) {
        let mut i = self.i;
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(i) {
            i += 1;
        }
        self.i = i;
    }

    #[inline]
    pub fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// Consume `c` (after whitespace) or fail with `what`.
    #[inline]
    pub fn expect(&mut self, c: u8, what: &'static str) -> Result<(), SyntaxError> {
        self.ws();
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.err(what))
        }
    }

    /// A string at the cursor (which is on its opening quote).
    #[inline(always)]
    pub fn string(&mut self) -> Result<Val<'a>, SyntaxError> {
        let start = self.i;
        match self.scan_string() {
            Some(ty) => Ok(Val {
                ty,
                raw: &self.b[start..self.i],
                num: f64::NAN,
            }),
            None => Err(self.error),
        }
    }

    /// Scan the string at the cursor; `None` on error (then in `self.error`).
    #[inline(always)]
    pub fn scan_string(&mut self) -> Option<Ty> {
        let b = self.b;
        let start = self.i;
        // A local cursor keeps the hot loop in registers.
        let mut i = start + 1;
        let mut escaped = false;
        let mut ascii = true;
        loop {
            i = find_stop(b, i);
            match b.get(i) {
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    // Skip the escaped character; `\u` digits are checked in `unescape_with`.
                    i += 2;
                }
                Some(c) if *c >= 0x80 => {
                    ascii = false;
                    i += 1;
                }
                Some(_) => {
                    return self.fail(i, "control character in string");
                }
                None => {
                    return self.fail(b.len(), "unterminated string");
                }
            }
        }
        self.i = i + 1;
        let body = &b[start + 1..i];
        if !ascii && std::str::from_utf8(body).is_err() {
            return self.fail(start, "string is not valid UTF-8");
        }
        if escaped && unescape_with(body, |_| {}).is_err() {
            return self.fail(start, "invalid escape in string");
        }
        Some(if escaped { Ty::EscStr } else { Ty::Str })
    }

    /// A number at the cursor, checked against the JSON grammar. Its value comes along when
    /// the fast path of [`parse_f64`] covers it (no exponent, at most 15 digits), else NaN.
    #[inline(always)]
    pub fn number(&mut self) -> Result<Val<'a>, SyntaxError> {
        let start = self.i;
        match self.scan_number() {
            Some(num) => Ok(Val {
                ty: Ty::Num,
                raw: &self.b[start..self.i],
                num,
            }),
            None => Err(self.error),
        }
    }

    /// Scan the number at the cursor: its value (NaN when the fast path does not cover it), or
    /// `None` on error (then in `self.error`).
    #[inline(always)]
    fn scan_number(&mut self) -> Option<f64> {
        let b = self.b;
        let start = self.i;
        let mut i = start;
        let neg = b.get(i) == Some(&b'-');
        i += usize::from(neg);
        // The mantissa is gathered while the digits are checked: one pass for both.
        let mut m: u64 = 0;
        let digits = |mut i: usize, m: &mut u64| {
            while let Some(&c @ b'0'..=b'9') = b.get(i) {
                *m = m.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
                i += 1;
            }
            i
        };
        let int_start = i;
        i = match b.get(i) {
            Some(b'0') => i + 1,
            Some(b'1'..=b'9') => digits(i, &mut m),
            _ => return self.fail(i, "invalid number"),
        };
        let mut n_digits = i - int_start;
        let mut frac = 0;
        if b.get(i) == Some(&b'.') {
            if !matches!(b.get(i + 1), Some(b'0'..=b'9')) {
                return self.fail(i + 1, "invalid number");
            }
            let frac_start = i + 1;
            i = digits(frac_start, &mut m);
            frac = i - frac_start;
            n_digits += frac;
        }
        let mut fast = n_digits <= 15 && frac < POW10.len();
        if let Some(b'e' | b'E') = b.get(i) {
            fast = false;
            i += 1;
            if let Some(b'+' | b'-') = b.get(i) {
                i += 1;
            }
            if !matches!(b.get(i), Some(b'0'..=b'9')) {
                return self.fail(i, "invalid number");
            }
            let mut ignored = 0;
            i = digits(i, &mut ignored);
        }
        self.i = i;
        let value = if fast {
            // Clinger's fast path: exact mantissa / exact power of ten is correctly rounded.
            let v = m as f64 / POW10[frac];
            if neg {
                -v
            } else {
                v
            }
        } else {
            f64::NAN
        };
        Some(value)
    }

    /// Scan the value at the cursor (no whitespace before it): its type and, for numbers, its
    /// value; its bytes are from the cursor to the new cursor. `None` on error (in
    /// `self.error`). Nothing aggregate is returned, so the hot path keeps it in registers.
    #[inline(always)]
    pub fn scan_value(&mut self) -> Option<(Ty, f64)> {
        match self.peek() {
            Some(b'"') => self.scan_string().map(|ty| (ty, f64::NAN)),
            Some(b'-' | b'0'..=b'9') => self.scan_number().map(|n| (Ty::Num, n)),
            _ => match self.other_value() {
                Ok(v) => Some((v.ty, v.num)),
                Err(e) => {
                    self.error = e;
                    None
                }
            },
        }
    }

    #[cold]
    fn fail<T>(&mut self, at: usize, what: &'static str) -> Option<T> {
        self.error = SyntaxError { at, what };
        None
    }

    fn literal(&mut self, lit: &'static [u8], ty: Ty) -> Result<Val<'a>, SyntaxError> {
        let start = self.i;
        if self.b[start..].starts_with(lit) {
            self.i += lit.len();
            Ok(Val {
                ty,
                raw: &self.b[start..self.i],
                num: f64::NAN,
            })
        } else {
            Err(self.err("invalid literal"))
        }
    }

    /// Any value at the cursor (after whitespace); objects and arrays are skipped whole.
    #[inline(always)]
    pub fn value(&mut self) -> Result<Val<'a>, SyntaxError> {
        self.ws();
        // Strings and numbers are nearly every value: keep them inline, the rest out of line.
        match self.peek() {
            Some(b'"') => self.string(),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => self.other_value(),
        }
    }

    #[inline(never)]
    fn other_value(&mut self) -> Result<Val<'a>, SyntaxError> {
        match self.peek() {
            Some(b't') => self.literal(b"true", Ty::True),
            Some(b'f') => self.literal(b"false", Ty::False),
            Some(b'n') => self.literal(b"null", Ty::Null),
            Some(b'{' | b'[') => {
                let start = self.i;
                let ty = if self.b[start] == b'{' {
                    Ty::Object
                } else {
                    Ty::Array
                };
                self.skip_composite(0)?;
                Ok(Val {
                    ty,
                    raw: &self.b[start..self.i],
                    num: f64::NAN,
                })
            }
            Some(_) => Err(self.err("expected a value")),
            None => Err(self.err("unexpected end of input")),
        }
    }

    fn skip_composite(&mut self, depth: u32) -> Result<(), SyntaxError> {
        if depth >= MAX_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        let object = self.b[self.i] == b'{';
        let close = if object { b'}' } else { b']' };
        self.i += 1;
        self.ws();
        if self.peek() == Some(close) {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.ws();
            if object {
                if self.peek() != Some(b'"') {
                    return Err(self.err("expected a string key"));
                }
                self.string()?;
                self.expect(b':', "expected ':' after object key")?;
                self.ws();
            }
            match self.peek() {
                Some(b'{' | b'[') => self.skip_composite(depth + 1)?,
                _ => {
                    self.value()?;
                }
            }
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(c) if c == close => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(self.err("expected ',' or a closing bracket")),
            }
        }
    }
}

/// Decode the body of a JSON string, handing out UTF-8 pieces. `Err(())` on a bad escape or a
/// lone surrogate.
pub fn unescape_with(body: &[u8], mut emit: impl FnMut(&[u8])) -> Result<(), ()> {
    let mut i = 0;
    while i < body.len() {
        let run = body[i..]
            .iter()
            .position(|&c| c == b'\\')
            .unwrap_or(body.len() - i);
        emit(&body[i..i + run]);
        i += run;
        if i == body.len() {
            break;
        }
        let esc = *body.get(i + 1).ok_or(())?;
        i += 2;
        let simple = match esc {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => 0,
            _ => return Err(()),
        };
        if esc != b'u' {
            emit(&[simple]);
            continue;
        }
        let hi = hex4(body.get(i..i + 4).ok_or(())?)?;
        i += 4;
        let cp = if (0xD800..0xDC00).contains(&hi) {
            if body.get(i..i + 2) != Some(b"\\u") {
                return Err(());
            }
            let lo = hex4(body.get(i + 2..i + 6).ok_or(())?)?;
            if !(0xDC00..0xE000).contains(&lo) {
                return Err(());
            }
            i += 6;
            0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
        } else {
            hi
        };
        let ch = char::from_u32(cp).ok_or(())?;
        emit(ch.encode_utf8(&mut [0; 4]).as_bytes());
    }
    Ok(())
}

fn hex4(h: &[u8]) -> Result<u32, ()> {
    h.iter().try_fold(0u32, |acc, &c| {
        let d = (c as char).to_digit(16).ok_or(())?;
        Ok(acc * 16 + d)
    })
}

/// Unescape a JSON string body into `out`.
pub fn unescape_into(body: &[u8], out: &mut Vec<u8>) -> Result<(), ()> {
    unescape_with(body, |s| out.extend_from_slice(s))
}

/// Unescape a short string body into `buf`; `None` when it does not fit (or is not JSON).
pub fn unescape_small<'b>(body: &[u8], buf: &'b mut [u8; 64]) -> Option<&'b [u8]> {
    let mut n = 0;
    let mut fits = true;
    unescape_with(body, |s| {
        if fits && n + s.len() <= buf.len() {
            buf[n..n + s.len()].copy_from_slice(s);
            n += s.len();
        } else {
            fits = false;
        }
    })
    .ok()?;
    fits.then_some(&buf[..n])
}

/// An integer JSON number (no fraction, no exponent) that fits an `i64`.
#[inline]
pub fn parse_i64(raw: &[u8]) -> Option<i64> {
    let (neg, digits) = match raw.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, raw),
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut v: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(i64::from(c - b'0'))?;
    }
    Some(if neg { -v } else { v })
}

pub(super) static POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// A JSON number (grammar already checked) as the nearest `f64`.
#[inline]
pub fn parse_f64(raw: &[u8]) -> f64 {
    // Clinger's fast path: a mantissa below 2^53 divided by an exact power of ten is
    // correctly rounded, and covers nearly every sensor reading.
    let (neg, s) = match raw.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, raw),
    };
    let mut m: u64 = 0;
    let mut frac_digits = 0usize;
    let mut seen_dot = false;
    let mut n_digits = 0usize;
    for &c in s {
        match c {
            b'0'..=b'9' => {
                m = m.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
                n_digits += 1;
                frac_digits += usize::from(seen_dot);
            }
            b'.' => seen_dot = true,
            _ => return parse_f64_slow(raw),
        }
    }
    if n_digits > 15 || frac_digits > 22 {
        return parse_f64_slow(raw);
    }
    let v = m as f64 / POW10[frac_digits];
    if neg {
        -v
    } else {
        v
    }
}

#[cold]
fn parse_f64_slow(raw: &[u8]) -> f64 {
    std::str::from_utf8(raw)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_parse_exactly() {
        for s in [
            "0",
            "-0.5",
            "21.5",
            "0.1",
            "123456789012345",
            "1e-7",
            "1.7976931348623157e308",
            "3.14159",
        ] {
            let want: f64 = s.parse().unwrap();
            assert_eq!(parse_f64(s.as_bytes()).to_bits(), want.to_bits(), "{s}");
        }
        assert_eq!(parse_i64(b"-9223372036854775808"), None);
        assert_eq!(parse_i64(b"1795352700123"), Some(1_795_352_700_123));
        assert_eq!(parse_i64(b"1.5"), None);
    }

    #[test]
    fn stop_bytes_are_found_in_every_position() {
        for stop in [b'"', b'\\', 0x00, 0x1f, 0x80, 0xff] {
            for pos in 0..20 {
                let mut b = vec![b'a'; 20];
                b[pos] = stop;
                assert_eq!(find_stop(&b, 0), pos, "{stop:#x} at {pos}");
                // A stop byte lower in the word must win over a later one.
                if pos > 0 {
                    b[pos - 1] = b'"';
                    assert_eq!(find_stop(&b, 0), pos - 1);
                }
            }
        }
        assert_eq!(find_stop(b" !#[]~\x7f", 0), 7);
        assert_eq!(find_stop(b"abc", 0), 3);
    }

    #[test]
    fn strings_unescape() {
        let mut out = Vec::new();
        unescape_into(br#"a\"b\\c\/\n\u4e0a\ud83d\ude00"#, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "a\"b\\c/\n上😀");
        assert!(unescape_with(br"\ud83d", |_| {}).is_err());
        assert!(unescape_with(br"\x", |_| {}).is_err());
        let mut lx = Lexer::new(b"\"a\nb\"", 0);
        assert_eq!(lx.string().unwrap_err().what, "control character in string");
        let mut lx = Lexer::new(b"[1, {\"a\": [true, null]}, 2.5e3]x", 0);
        let v = lx.value().unwrap();
        assert_eq!(v.ty, Ty::Array);
        assert_eq!(lx.i, 31);
    }
}
