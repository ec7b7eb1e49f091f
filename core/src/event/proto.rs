//! Protobuf `EventBatch` decoding and encoding (`proto/streamguard/v1/events.proto`).
//!
//! The decoder is hand-written over the wire format: it walks the borrowed input, takes strings
//! as slices of it and pushes each event straight into the [`EventBatch`] columns, so decoding
//! allocates nothing per event. [`wire`] holds prost structs mirroring the .proto, used to
//! cross-check this codec in tests and by tools that want owned messages.
//!
//! Errors: an event whose bytes are well framed but fail validation, or whose inside is corrupt,
//! is dead-lettered alone with its `Event` message bytes. When the batch framing itself breaks
//! (a bad key or a length running past the end), everything from that point on is one
//! `malformed` dead letter; the events before it are kept.

mod encode;
#[cfg(test)]
mod tests;
pub mod wire;

pub use encode::encode;

use super::validate::{self as v, Invalid, Row, Text};
use super::{DeadLetter, EventBatch, Kind, Reason, NONE_FEN, NONE_U8};

const VARINT: u8 = 0;
const I64: u8 = 1;
const LEN: u8 = 2;
const SGROUP: u8 = 3;
const EGROUP: u8 = 4;
const I32: u8 = 5;

/// A break in the wire format at an absolute byte offset of the input.
#[derive(Clone, Copy, Debug)]
struct WireError {
    at: usize,
    what: &'static str,
}

enum Fail {
    Wire(WireError),
    Bad(Invalid),
}

impl From<WireError> for Fail {
    fn from(e: WireError) -> Fail {
        Fail::Wire(e)
    }
}

impl From<Invalid> for Fail {
    fn from(e: Invalid) -> Fail {
        Fail::Bad(e)
    }
}

/// A cursor over one message; `base` is the absolute offset of `b[0]` (for error details).
struct Rd<'a> {
    b: &'a [u8],
    i: usize,
    base: usize,
}

impl<'a> Rd<'a> {
    #[cold]
    fn err(&self, what: &'static str) -> WireError {
        WireError {
            at: self.base + self.i,
            what,
        }
    }

    #[inline(always)]
    fn varint(&mut self) -> Result<u64, WireError> {
        if let Some(&x) = self.b.get(self.i) {
            if x < 0x80 {
                self.i += 1;
                return Ok(u64::from(x));
            }
        }
        self.varint_multi()
    }

    /// A varint of more than one byte (or a broken one).
    #[inline(never)]
    fn varint_multi(&mut self) -> Result<u64, WireError> {
        let (b, i) = (self.b, self.i);
        // With 10 bytes in hand the loop needs no bounds checks and unrolls.
        if let Some(w) = b.get(i..i + 10) {
            let mut v = 0u64;
            for (n, &x) in w.iter().enumerate() {
                v |= u64::from(x & 0x7f) << (7 * n);
                if x < 0x80 {
                    if n == 9 && x > 1 {
                        break;
                    }
                    self.i = i + n + 1;
                    return Ok(v);
                }
            }
        }
        self.varint_slow()
    }

    fn varint_slow(&mut self) -> Result<u64, WireError> {
        let mut v = 0u64;
        for n in 0..10 {
            let Some(&b) = self.b.get(self.i + n) else {
                return Err(self.err("truncated varint"));
            };
            if n == 9 && b > 1 {
                return Err(self.err("varint longer than 64 bits"));
            }
            v |= u64::from(b & 0x7f) << (7 * n);
            if b < 0x80 {
                self.i += n + 1;
                return Ok(v);
            }
        }
        Err(self.err("varint longer than 10 bytes"))
    }

    /// The next field key, or `None` at the end of the message.
    #[inline(always)]
    fn key(&mut self) -> Result<Option<(u32, u8)>, WireError> {
        if self.i >= self.b.len() {
            return Ok(None);
        }
        let at = self.i;
        let k = self.varint()?;
        let field = k >> 3;
        if field == 0 || field > u64::from(u32::MAX >> 3) {
            self.i = at;
            return Err(self.err("invalid field number"));
        }
        Ok(Some((field as u32, (k & 7) as u8)))
    }

    #[inline]
    fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let len = self.varint()?;
        if len > (self.b.len() - self.i) as u64 {
            return Err(self.err("length runs past the end of the message"));
        }
        let s = &self.b[self.i..self.i + len as usize];
        self.i += len as usize;
        Ok(s)
    }

    #[inline]
    fn fixed64(&mut self) -> Result<u64, WireError> {
        let Some(s) = self.b.get(self.i..self.i + 8) else {
            return Err(self.err("truncated fixed64"));
        };
        self.i += 8;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_le_bytes(a))
    }

    /// Skip one field's value of wire type `wt` (groups included, matched by field number).
    fn skip(&mut self, field: u32, wt: u8) -> Result<(), WireError> {
        self.skip_depth(field, wt, 0)
    }

    fn skip_depth(&mut self, field: u32, wt: u8, depth: u32) -> Result<(), WireError> {
        match wt {
            VARINT => self.varint().map(drop),
            I64 => self.fixed64().map(drop),
            LEN => self.bytes().map(drop),
            I32 => match self.b.get(self.i..self.i + 4) {
                Some(_) => {
                    self.i += 4;
                    Ok(())
                }
                None => Err(self.err("truncated fixed32")),
            },
            SGROUP if depth < 64 => loop {
                match self.key()? {
                    None => return Err(self.err("unterminated group")),
                    Some((f, EGROUP)) if f == field => return Ok(()),
                    Some((_, EGROUP)) => return Err(self.err("mismatched end of group")),
                    Some((f, w)) => self.skip_depth(f, w, depth + 1)?,
                }
            },
            SGROUP => Err(self.err("groups nested too deep")),
            EGROUP => Err(self.err("end of group without a start")),
            _ => Err(self.err("invalid wire type")),
        }
    }

    #[inline]
    fn want(&self, wt: u8, expected: u8) -> Result<(), WireError> {
        if wt == expected {
            Ok(())
        } else {
            Err(self.err("field has the wrong wire type"))
        }
    }

    /// A `string` field, checked to be UTF-8.
    #[inline]
    fn text(&mut self, wt: u8, field: &str) -> Result<Text<'a>, Fail> {
        self.want(wt, LEN)?;
        let s = self.bytes()?;
        if s.is_ascii() || std::str::from_utf8(s).is_ok() {
            Ok(Text::plain(s))
        } else {
            Err(Fail::Bad(v::bad_field(
                field,
                "UTF-8 text",
                "invalid UTF-8 bytes",
            )))
        }
    }

    #[inline]
    fn double(&mut self, wt: u8) -> Result<f64, WireError> {
        self.want(wt, I64)?;
        Ok(f64::from_bits(self.fixed64()?))
    }

    #[inline]
    fn int(&mut self, wt: u8) -> Result<u64, WireError> {
        self.want(wt, VARINT)?;
        self.varint()
    }

    /// An enum field: 0 = not given, `n` = code `n - 1`; `count` codes exist.
    #[inline]
    fn code(&mut self, wt: u8, count: u8, bad: fn(&str) -> Invalid) -> Result<u8, Fail> {
        // Enums are int32 on the wire: the low 32 bits count.
        let n = self.int(wt)? as u32 as i32;
        match n {
            0 => Ok(NONE_U8),
            1.. if n <= i32::from(count) => Ok((n - 1) as u8),
            _ => Err(Fail::Bad(bad(&n.to_string()))),
        }
    }
}

/// Decode one `EventBatch` into `out`; rejected events go to `dead`.
pub fn decode(input: &[u8], out: &mut EventBatch, dead: &mut Vec<DeadLetter>) {
    let mut rd = Rd {
        b: input,
        i: 0,
        base: 0,
    };
    loop {
        let start = rd.i;
        let step = match rd.key() {
            Ok(None) => return,
            Ok(Some((1, LEN))) => rd.bytes().map(Some),
            Ok(Some((f, wt))) => rd.skip(f, wt).map(|()| None),
            Err(e) => Err(e),
        };
        match step {
            Ok(Some(ev)) => event(ev, rd.i - ev.len(), out, dead),
            Ok(None) => {}
            Err(e) => {
                dead.push(broken_framing(input, start, e));
                return;
            }
        }
    }
}

#[cold]
fn broken_framing(input: &[u8], start: usize, e: WireError) -> DeadLetter {
    let detail = format!(
        "malformed protobuf at byte offset {}: {}; the {} bytes from offset {start} on are not decoded",
        e.at,
        e.what,
        input.len() - start
    );
    DeadLetter::new(Reason::Malformed, detail, &input[start..])
}

#[cold]
fn rejected(ev: &[u8], f: Fail) -> DeadLetter {
    match f {
        Fail::Bad(inv) => inv.into_dead(ev),
        Fail::Wire(e) => DeadLetter::new(
            Reason::Malformed,
            format!(
                "malformed protobuf event at byte offset {}: {}",
                e.at, e.what
            ),
            ev,
        ),
    }
}

#[inline]
fn event(ev: &[u8], base: usize, out: &mut EventBatch, dead: &mut Vec<DeadLetter>) {
    let mut row = Row::new(Kind::Sensor);
    match event_row(ev, base, &mut row).and_then(|()| Ok(row.push(out)?)) {
        Ok(()) => {}
        Err(f) => dead.push(rejected(ev, f)),
    }
}

fn event_row<'a>(ev: &'a [u8], base: usize, r: &mut Row<'a>) -> Result<(), Fail> {
    let mut rd = Rd { b: ev, i: 0, base };
    let mut body = None;
    while let Some((f, wt)) = rd.key()? {
        let kind = match f {
            1 => Kind::Shipment,
            2 => Kind::Scan,
            3 => Kind::Sensor,
            _ => {
                rd.skip(f, wt)?;
                continue;
            }
        };
        rd.want(wt, LEN)?;
        let bytes = rd.bytes()?;
        // A oneof seen twice: the last one wins, as in every protobuf runtime.
        body = Some((kind, bytes, rd.base + rd.i - bytes.len()));
    }
    let Some((kind, bytes, at)) = body else {
        return Err(Fail::Bad(Invalid::new(
            Reason::BadKind,
            "event has no shipment, scan or sensor body",
        )));
    };
    let mut rd = Rd {
        b: bytes,
        i: 0,
        base: at,
    };
    r.kind = kind;
    match kind {
        Kind::Shipment => shipment_body(&mut rd, r),
        Kind::Scan => scan_body(&mut rd, r),
        Kind::Sensor => sensor_body(&mut rd, r),
    }
}

/// Fields 1–3 are the same in every body.
#[inline(always)]
fn common<'a>(rd: &mut Rd<'a>, r: &mut Row<'a>, f: u32, wt: u8) -> Result<bool, Fail> {
    match f {
        1 => {
            rd.want(wt, LEN)?;
            r.shipment = Some(Text::plain(rd.bytes()?));
        }
        2 => r.ts = Some(v::ts_ms(rd.int(wt)? as i64)?),
        3 => r.id = rd.text(wt, "id")?,
        _ => return Ok(false),
    }
    Ok(true)
}

fn shipment_body<'a>(rd: &mut Rd<'a>, r: &mut Row<'a>) -> Result<(), Fail> {
    while let Some((f, wt)) = rd.key()? {
        if f <= 3 && common(rd, r, f, wt)? {
            continue;
        }
        match f {
            4 => r.carrier = rd.text(wt, "carrier")?,
            5 => r.origin = rd.text(wt, "origin")?,
            6 => r.dest = rd.text(wt, "dest")?,
            7 => r.tier = rd.code(wt, 3, v::bad_tier)?,
            8 => r.fragile = u8::from(rd.int(wt)? != 0),
            9 => r.order = rd.text(wt, "order")?,
            10 => {
                let s = rd.text(wt, "declared_value")?.bytes;
                r.declared_value_fen = if s.is_empty() {
                    NONE_FEN
                } else {
                    v::declared_value(s)?
                };
            }
            _ => rd.skip(f, wt)?,
        }
    }
    Ok(())
}

fn scan_body<'a>(rd: &mut Rd<'a>, r: &mut Row<'a>) -> Result<(), Fail> {
    while let Some((f, wt)) = rd.key()? {
        if f <= 3 && common(rd, r, f, wt)? {
            continue;
        }
        match f {
            4 => r.carrier = rd.text(wt, "carrier")?,
            5 => r.status = rd.code(wt, 9, v::bad_status)?,
            6 => r.location = rd.text(wt, "location")?,
            7 => r.lat = v::lat(rd.double(wt)?)?,
            8 => r.lon = v::lon(rd.double(wt)?)?,
            9 => {
                rd.want(wt, LEN)?;
                let bytes = rd.bytes()?;
                let mut sr = Rd {
                    b: bytes,
                    i: 0,
                    base: rd.base + rd.i - bytes.len(),
                };
                signer(&mut sr, r)?;
            }
            10 => r.raw_status = rd.text(wt, "raw_status")?,
            _ => rd.skip(f, wt)?,
        }
    }
    Ok(())
}

fn signer<'a>(rd: &mut Rd<'a>, r: &mut Row<'a>) -> Result<(), Fail> {
    while let Some((f, wt)) = rd.key()? {
        match f {
            1 => r.signer_name = rd.text(wt, "signer.name")?,
            2 => r.signer_type = rd.code(wt, 3, v::bad_signer_type)?,
            3 => r.signer_proxy_id = rd.text(wt, "signer.proxy_id")?,
            4 => r.signer_staff_id = rd.text(wt, "signer.staff_id")?,
            _ => rd.skip(f, wt)?,
        }
    }
    Ok(())
}

fn sensor_body<'a>(rd: &mut Rd<'a>, r: &mut Row<'a>) -> Result<(), Fail> {
    while let Some((f, wt)) = rd.key()? {
        if f <= 3 && common(rd, r, f, wt)? {
            continue;
        }
        match f {
            4 => r.device = rd.text(wt, "device")?,
            5..=10 => {
                let m = (f - 5) as usize;
                r.metrics[m] = v::metric(super::Metric::ALL[m].as_str(), rd.double(wt)?)?;
            }
            11 => r.lat = v::lat(rd.double(wt)?)?,
            12 => r.lon = v::lon(rd.double(wt)?)?,
            _ => rd.skip(f, wt)?,
        }
    }
    Ok(())
}
