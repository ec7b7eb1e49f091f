//! Lanes: (carrier, origin province, destination province), their decayed statistics, and the
//! empirical-Bayes estimate read from them.
//!
//! Lanes are province to province, not district to district: China has ~2,800 county-level
//! districts, so district pairs number in the millions per carrier and almost every one would
//! see a handful of shipments a quarter, too few to learn a p90 from. The 34 provinces give at
//! most 1,156 lanes per carrier, and line-haul time (what separates lanes) is mostly decided at
//! province scale anyway.

use super::sketch::{QuantileSketch, SketchLayout};
use serde::{Deserialize, Serialize};
use std::hash::{Hash, Hasher};

/// A lane. `origin`/`dest` are province codes from [`province_of`]; the carrier is the engine's
/// interned carrier id. The carrier-wide aggregate is the lane [`LaneKey::carrier_wide`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LaneKey {
    pub carrier: u16,
    pub origin: u16,
    pub dest: u16,
}

impl LaneKey {
    /// The origin/destination of the carrier-wide aggregate (no province code is this).
    pub const ANY: u16 = u16::MAX;

    pub fn new(carrier: u16, origin: u16, dest: u16) -> LaneKey {
        LaneKey {
            carrier,
            origin,
            dest,
        }
    }

    /// The lane that aggregates every lane of `carrier`.
    pub fn carrier_wide(carrier: u16) -> LaneKey {
        LaneKey::new(carrier, LaneKey::ANY, LaneKey::ANY)
    }

    pub fn is_carrier_wide(&self) -> bool {
        self.origin == LaneKey::ANY && self.dest == LaneKey::ANY
    }

    #[inline]
    fn packed(&self) -> u64 {
        u64::from(self.carrier) << 32 | u64::from(self.origin) << 16 | u64::from(self.dest)
    }
}

impl Hash for LaneKey {
    // One word to hash instead of three.
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.packed());
    }
}

/// GB/T 2260 province-level codes (first two digits): 11–15, 21–23, 31–37, 41–46, 50–54,
/// 61–65, 71 (Taiwan), 81–82 (Hong Kong, Macau). Bit `n` set: `n` is a province.
const PROVINCES: u128 = {
    let mut bits = 0u128;
    let ranges = [
        (11, 15),
        (21, 23),
        (31, 37),
        (41, 46),
        (50, 54),
        (61, 65),
        (71, 71),
        (81, 82),
    ];
    let mut r = 0;
    while r < ranges.len() {
        let mut p = ranges[r].0;
        while p <= ranges[r].1 {
            bits |= 1 << p;
            p += 1;
        }
        r += 1;
    }
    bits
};

/// Whether `p` is a province code (the first two digits of a GB/T 2260 region code).
#[inline]
pub fn is_province(p: u16) -> bool {
    p < 128 && PROVINCES >> p & 1 == 1
}

/// The province of a region code `CN-` + 2, 4 or 6 digits (`CN-31`, `CN-3101`, `CN-310115`):
/// its first two digits as a number, if they name a province. `None` for anything else.
#[inline]
pub fn province_of(region: &[u8]) -> Option<u16> {
    let digits = region.strip_prefix(b"CN-")?;
    if !matches!(digits.len(), 2 | 4 | 6) || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let p = u16::from(digits[0] - b'0') * 10 + u16::from(digits[1] - b'0');
    is_province(p).then_some(p)
}

/// An engine alert that counts against a lane's quality.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    Dwell,
    Shock,
}

/// One lane's decayed sums, all in the frame of the table's decay landmark (divide by the
/// table's `norm()` for effective counts now).
#[derive(Clone, Debug, PartialEq)]
pub struct LaneStats {
    /// Transit times, PICKED_UP → DELIVERED, in ms.
    pub transit: QuantileSketch,
    /// Delivered shipments (with a known pickup).
    pub delivered: f64,
    /// Delivered within the SLA.
    pub on_time: f64,
    pub picked_up: f64,
    pub dwell_alerts: f64,
    pub shock_alerts: f64,
}

impl LaneStats {
    pub fn new(layout: SketchLayout) -> LaneStats {
        LaneStats {
            transit: QuantileSketch::new(layout),
            delivered: 0.0,
            on_time: 0.0,
            picked_up: 0.0,
            dwell_alerts: 0.0,
            shock_alerts: 0.0,
        }
    }

    /// Shipments exposed to alerts: picked up, or delivered if their pickup scan was missed.
    #[inline]
    pub fn exposure(&self) -> f64 {
        self.picked_up.max(self.delivered)
    }

    pub(super) fn sums_mut(&mut self) -> [&mut f64; 5] {
        [
            &mut self.delivered,
            &mut self.on_time,
            &mut self.picked_up,
            &mut self.dwell_alerts,
            &mut self.shock_alerts,
        ]
    }

    pub(super) fn sums(&self) -> [f64; 5] {
        [
            self.delivered,
            self.on_time,
            self.picked_up,
            self.dwell_alerts,
            self.shock_alerts,
        ]
    }

    pub(super) fn scale(&mut self, factor: f64) {
        self.transit.scale(factor);
        for s in self.sums_mut() {
            *s *= factor;
        }
    }

    pub(super) fn merge_scaled(&mut self, other: &LaneStats, factor: f64) {
        self.transit.merge_scaled(&other.transit, factor);
        for (a, b) in self.sums_mut().into_iter().zip(other.sums()) {
            *a += b * factor;
        }
    }

    /// Bytes of memory, inline and heap.
    pub fn bytes(&self) -> usize {
        std::mem::size_of::<LaneStats>() + self.transit.heap_bytes()
    }
}

/// What the lane's data says, smoothed toward its carrier's. Serializable for publishing.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LaneEstimate {
    /// Median transit time, ms.
    pub p50_ms: f64,
    /// 90th-percentile transit time, ms.
    pub p90_ms: f64,
    /// Share delivered within the SLA.
    pub on_time_rate: f64,
    pub dwell_per_shipment: f64,
    pub shock_per_shipment: f64,
    /// The lane's effective (decayed) number of delivered shipments.
    pub shipments: f64,
    /// The weight of the lane's own data in the transit and on-time figures, `n/(n+m)`.
    pub lane_weight: f64,
}

/// `n/(n+m)`: how much of a smoothed figure is the lane's own (0 with no data).
#[inline]
pub(super) fn lane_weight(n: f64, m: f64) -> f64 {
    if n > 0.0 {
        n / (n + m)
    } else {
        0.0
    }
}

/// Empirical-Bayes shrinkage of a rate: `(x + m·prior)/(n + m)`, the prior when `n + m = 0`.
#[inline]
pub(super) fn shrink(x: f64, n: f64, prior: f64, m: f64) -> f64 {
    let d = n + m;
    if d > 0.0 {
        (x + m * prior) / d
    } else {
        prior
    }
}

/// `x/n`, 0 when there is nothing to divide by.
#[inline]
pub(super) fn rate(x: f64, n: f64) -> f64 {
    if n > 0.0 {
        x / n
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provinces_from_region_codes() {
        assert_eq!(province_of(b"CN-310115"), Some(31));
        assert_eq!(province_of(b"CN-3101"), Some(31));
        assert_eq!(province_of(b"CN-50"), Some(50));
        assert_eq!(province_of(b"CN-820000"), Some(82));
        assert_eq!(province_of(b"CN-650100"), Some(65));
        for bad in [
            &b"CN-100000"[..],
            b"CN-720000",
            b"CN-3",
            b"CN-31011",
            b"CN-3101150",
            b"310115",
            b"cn-310115",
            b"CN-31a115",
            b"",
        ] {
            assert_eq!(province_of(bad), None, "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!((0..100u16).filter(|&p| PROVINCES >> p & 1 == 1).count(), 34);
    }

    #[test]
    fn shrinkage_has_no_nan() {
        assert_eq!(shrink(0.0, 0.0, 0.3, 0.0), 0.3);
        assert_eq!(shrink(0.0, 0.0, 0.3, 10.0), 0.3);
        assert_eq!(shrink(5.0, 10.0, 0.0, 10.0), 0.25);
        assert_eq!(lane_weight(0.0, 0.0), 0.0);
        assert_eq!(lane_weight(3.0, 0.0), 1.0);
        assert_eq!(rate(1.0, 0.0), 0.0);
        assert!(LaneKey::carrier_wide(2).is_carrier_wide());
        assert!(!LaneKey::new(2, 31, LaneKey::ANY).is_carrier_wide());
        // The figure quoted in the module docs.
        assert_eq!(std::mem::size_of::<LaneStats>(), 128);
    }
}
