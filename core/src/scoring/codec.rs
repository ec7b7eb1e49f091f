//! The lane table's snapshot format, so the statistics survive a restart. Integers and `f64`
//! bits little-endian:
//!
//! - header, 24 bytes: magic `SGLANE\r\n`, u32 format version, u32 CRC-32 (IEEE) of the body,
//!   u64 body length (the layout of the engine's `SGSNAP` header);
//! - config: α, half-life, prior strength, default SLA, u32 count of (u16 carrier, i64 SLA);
//! - u32 bucket count (must match α's), decay landmark and now (`i64::MIN`: unset);
//! - u32 lane count, then per lane in key order: u16 carrier, origin, dest; the five decayed
//!   sums; the sketch's total, clamped-low and clamped-high weights; u16 first and last
//!   written bucket (`first > last`: none) and the counts of that window only, so a lane
//!   costs 74 bytes plus 8 per bucket its transit times span, not 8 per bucket of the range.

use super::config::{ScoringConfig, SlaOverride};
use super::decay::ForwardDecay;
use super::lane::{LaneKey, LaneStats};
use super::sketch::QuantileSketch;
use super::table::LaneTable;
use crate::error::{Error, ErrorKind};

/// `\r\n` makes a file mangled by a text-mode copy fail on the magic, not deep inside.
const MAGIC: &[u8; 8] = b"SGLANE\r\n";
const VERSION: u32 = 1;
const HEADER: usize = 24;

impl LaneTable {
    /// Appends the table's snapshot to `out`. Equal tables give equal bytes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&[0; 12]);
        let mut w = W(out);
        let c = &self.config;
        w.f64(c.alpha);
        w.i64(c.half_life_ms);
        w.f64(c.prior_shipments);
        w.i64(c.default_sla_ms);
        w.u32(c.sla_overrides.len() as u32);
        for o in &c.sla_overrides {
            w.u16(o.carrier);
            w.i64(o.sla_ms);
        }
        w.u32(self.layout.buckets() as u32);
        let (landmark, now) = self.decay.parts();
        w.i64(landmark);
        w.i64(now);
        w.u32(self.len() as u32);
        for (key, s) in self.lanes() {
            for v in [key.carrier, key.origin, key.dest] {
                w.u16(v);
            }
            for v in s.sums().into_iter().chain(s.transit.totals()) {
                w.f64(v);
            }
            let (lo, hi) = s.transit.window();
            w.u16(lo as u16);
            w.u16(hi as u16);
            if lo <= hi {
                s.transit.counts()[lo..=hi].iter().for_each(|&v| w.f64(v));
            }
        }
        let body = start + HEADER;
        let crc = crc32fast::hash(&out[body..]);
        let len = (out.len() - body) as u64;
        out[start + 12..start + 16].copy_from_slice(&crc.to_le_bytes());
        out[start + 16..start + 24].copy_from_slice(&len.to_le_bytes());
    }

    /// Restores a table from [`Self::encode`]'s bytes (its own configuration included);
    /// `Decode` error naming what is wrong for truncated, corrupted or inconsistent input.
    pub fn decode(bytes: &[u8]) -> Result<LaneTable, Error> {
        let body = check_header(bytes)?;
        let mut r = R { buf: body, pos: 0 };
        let mut config = ScoringConfig {
            alpha: r.f64()?,
            half_life_ms: r.i64()?,
            prior_shipments: r.f64()?,
            default_sla_ms: r.i64()?,
            sla_overrides: Vec::new(),
        };
        for _ in 0..r.count(10)? {
            let carrier = r.u16()?;
            let sla_ms = r.i64()?;
            config.sla_overrides.push(SlaOverride { carrier, sla_ms });
        }
        let mut t =
            LaneTable::new(config).map_err(|e| err(format!("configuration: {}", e.message())))?;
        let buckets = t.layout.buckets();
        if r.u32()? as usize != buckets {
            return Err(err("bucket count does not match alpha"));
        }
        let (landmark, now) = (r.i64()?, r.i64()?);
        if (landmark == i64::MIN) != (now == i64::MIN) {
            return Err(err("decay clock half set"));
        }
        t.decay = ForwardDecay::from_parts(t.config.half_life_ms, landmark, now);
        let lanes = r.count(74)?;
        let mut last: Option<LaneKey> = None;
        for _ in 0..lanes {
            let key = LaneKey::new(r.u16()?, r.u16()?, r.u16()?);
            if last.is_some_and(|l| l >= key) {
                return Err(err("lanes out of order or repeated"));
            }
            last = Some(key);
            let sums = [r.f64()?, r.f64()?, r.f64()?, r.f64()?, r.f64()?];
            let totals = [r.f64()?, r.f64()?, r.f64()?];
            let (lo, hi) = (r.u16()?, r.u16()?);
            let width = if lo <= hi {
                usize::from(hi - lo) + 1
            } else {
                0
            };
            if lo <= hi && usize::from(hi) >= buckets {
                return Err(err(format!("lane {key:?}: bucket {hi} of {buckets}")));
            }
            let mut counts = vec![0.0; width];
            for c in &mut counts {
                *c = r.f64()?;
            }
            let all = sums.iter().chain(&totals).chain(&counts);
            if let Some(v) = all.into_iter().find(|v| !(v.is_finite() && **v >= 0.0)) {
                return Err(err(format!("lane {key:?}: weight {v}")));
            }
            let i = t.create(key);
            let s: &mut LaneStats = &mut t.stats[i];
            s.transit = QuantileSketch::from_parts(t.layout, (lo, hi), &counts, totals);
            for (dst, v) in s.sums_mut().into_iter().zip(sums) {
                *dst = v;
            }
        }
        if r.pos != body.len() {
            return Err(err(format!(
                "{} bytes after the last lane",
                body.len() - r.pos
            )));
        }
        Ok(t)
    }
}

#[cold]
fn err(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::Decode, format!("lane stats: {}", msg.into()))
}

fn check_header(bytes: &[u8]) -> Result<&[u8], Error> {
    if bytes.len() < HEADER || &bytes[..8] != MAGIC {
        return Err(err("not a lane statistics snapshot (bad magic)"));
    }
    let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let version = word(8);
    if version != VERSION {
        return Err(err(format!(
            "format version {version}, this build reads {VERSION}"
        )));
    }
    let len = u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"));
    let body = &bytes[HEADER..];
    if len != body.len() as u64 {
        return Err(err(format!(
            "body is {} bytes, header says {len}",
            body.len()
        )));
    }
    if crc32fast::hash(body) != word(12) {
        return Err(err("checksum mismatch (corrupted)"));
    }
    Ok(body)
}

struct W<'a>(&'a mut Vec<u8>);

impl W<'_> {
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn f64(&mut self, v: f64) {
        self.0.extend_from_slice(&v.to_bits().to_le_bytes());
    }
}

/// A reader that fails instead of reading past the end.
struct R<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl R<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let Some(b) = self.buf.get(self.pos..self.pos + N) else {
            return Err(err(format!("truncated at byte {}", self.pos)));
        };
        self.pos += N;
        Ok(b.try_into().expect("N bytes"))
    }
    fn u16(&mut self) -> Result<u16, Error> {
        self.take().map(u16::from_le_bytes)
    }
    fn u32(&mut self) -> Result<u32, Error> {
        self.take().map(u32::from_le_bytes)
    }
    fn i64(&mut self) -> Result<i64, Error> {
        self.take().map(i64::from_le_bytes)
    }
    fn f64(&mut self) -> Result<f64, Error> {
        self.take().map(|b| f64::from_bits(u64::from_le_bytes(b)))
    }
    /// A count of items of at least `min_bytes` each: checked against what is left, so a
    /// corrupted count cannot make the reader allocate gigabytes.
    fn count(&mut self, min_bytes: usize) -> Result<usize, Error> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_bytes) > self.buf.len() - self.pos {
            return Err(err(format!(
                "count {n} at byte {} exceeds the input",
                self.pos - 4
            )));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scoring::AlertKind;

    const H: i64 = 3_600_000;

    fn table() -> LaneTable {
        let mut t = LaneTable::new(ScoringConfig::default()).unwrap();
        t.on_picked_up(LaneKey::new(1, 31, 11), 0);
        t.on_delivered(LaneKey::new(1, 31, 11), 0, 30 * H, 72 * H);
        t.on_delivered(LaneKey::new(2, 44, 65), H, 90 * H, 72 * H);
        t.on_alert(LaneKey::new(2, 44, 65), AlertKind::Shock, 50 * H);
        t.on_picked_up(LaneKey::new(1, 31, 12), 100 * H);
        t
    }

    #[test]
    fn round_trip_is_exact_and_stable() {
        let t = table();
        let mut bytes = Vec::new();
        t.encode(&mut bytes);
        let back = LaneTable::decode(&bytes).unwrap();
        assert_eq!(back.config(), t.config());
        assert_eq!(back.decay(), t.decay());
        assert!(back.lanes().eq(t.lanes()));
        for key in [
            LaneKey::new(1, 31, 11),
            LaneKey::new(2, 44, 65),
            LaneKey::new(1, 31, 12),
        ] {
            assert_eq!(back.estimate(key), t.estimate(key));
        }
        let mut again = Vec::new();
        back.encode(&mut again);
        assert_eq!(again, bytes);
        // Two nearly empty lanes and their carriers: the window encoding keeps it small.
        assert!(bytes.len() < 800, "{}", bytes.len());
        let empty = LaneTable::new(ScoringConfig::default()).unwrap();
        let mut bytes = Vec::new();
        empty.encode(&mut bytes);
        let back = LaneTable::decode(&bytes).unwrap();
        assert!(back.is_empty() && back.decay().now_ms().is_none());
        assert_eq!(back.estimate(LaneKey::new(1, 31, 11)), None);
    }

    #[test]
    fn corruption_is_detected() {
        let mut bytes = Vec::new();
        table().encode(&mut bytes);
        for at in [0, 9, 13, 20, HEADER + 3, bytes.len() / 2, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[at] ^= 0x10;
            let e = LaneTable::decode(&bad).expect_err("corruption detected");
            assert_eq!(e.kind(), ErrorKind::Decode, "{e}");
        }
        for len in [0, 10, HEADER, bytes.len() - 1] {
            assert!(
                LaneTable::decode(&bytes[..len]).is_err(),
                "truncated at {len}"
            );
        }
    }

    #[test]
    fn inconsistent_bodies_are_rejected_despite_a_good_checksum() {
        let mut bytes = Vec::new();
        table().encode(&mut bytes);
        let reseal = |b: &mut Vec<u8>| {
            let crc = crc32fast::hash(&b[HEADER..]);
            b[12..16].copy_from_slice(&crc.to_le_bytes());
        };
        // α of 0.5 is out of range.
        let mut bad = bytes.clone();
        bad[HEADER..HEADER + 8].copy_from_slice(&0.5f64.to_bits().to_le_bytes());
        reseal(&mut bad);
        let e = LaneTable::decode(&bad).err().unwrap();
        assert!(e.message().contains("alpha"), "{e}");
        // A NaN sum in the first lane: after the config (36 bytes without overrides), the
        // bucket count, the clock, the lane count and the lane's key.
        let mut bad = bytes.clone();
        let at = HEADER + 36 + 4 + 16 + 4 + 6;
        bad[at..at + 8].copy_from_slice(&f64::NAN.to_bits().to_le_bytes());
        reseal(&mut bad);
        let e = LaneTable::decode(&bad).err().unwrap();
        assert!(e.message().contains("weight NaN"), "{e}");
    }
}
