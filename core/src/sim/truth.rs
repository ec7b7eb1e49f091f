//! The simulator's ground truth, against which a model learned from its feed can be checked:
//! per lane (carrier, origin province, destination province) the true distribution of the
//! transit time PICKED_UP → DELIVERED, and per carrier the true damage and stall rates. The feed
//! follows it exactly: every delivered shipment's DELIVERED − PICKED_UP is one draw from its
//! lane's distribution (the scans in between are fitted around it, see `scan.rs`), and a
//! shipment is dropped with its carrier's damage rate (see `sensor.rs`).
//!
//! - Transit time T is log-normal: ln T ~ N(ln m, σ²), so p50 = m and p90 = m·e^{1.2816 σ}.
//! - m = (20 h · a + 18 h · b · km / 1000) · r · f, with km the great-circle distance between
//!   the provinces' capitals (0 within a province), a and b the carrier's handling and
//!   line-haul factors (SF and JD fly long legs: b 0.6 and 0.75), r = 1.5 when either end is
//!   remote (偏远地区), and f = e^{U(−0.2, 0.2)} a factor per lane, hashed from the seed and the
//!   lane, so no carrier is fastest everywhere. Then, per province pair, each carrier's median
//!   is raised, if need be, to 4 % above the next faster carrier's, so every lane has one
//!   fastest carrier by a margin a model can see.
//! - σ is the carrier's (0.25 for SF … 0.42 for EMS), + 0.08 when either end is remote.
//! - Damage rate: the chance that a shipment is dropped once in transit, which its tag (if it
//!   has one and uploads at all) records as exactly one reading above 3 g. Per carrier, 6 % (SF)
//!   to 22 % (STO), times `anomaly_scale`, at most 1.
//! - Stall rate (dwell propensity): the chance that a scan gap is a 6–30 h stall,
//!   `long_gap_rate` times the carrier's factor (0.6 for SF … 1.3 for STO and EMS), at most 1.
//!   Stalls lengthen the gaps they fall in, not the transit time: that is drawn first.

use super::carrier::Carrier;
use super::geo::Geo;
use super::rng::{Rng, Stream};
use super::scan::HOUR;
use super::simulator::Simulator;

/// z with Φ(z) = 0.9.
const Z90: f64 = 1.281_551_565_544_600_4;
/// Median hours of a lane without line haul: pickup, sorting, last mile.
const HANDLING_H: f64 = 20.0;
/// Median line-haul hours per 1,000 km (trucks, with their hub stops).
const LINE_HAUL_H_PER_1000_KM: f64 = 18.0;
const REMOTE_FACTOR: f64 = 1.5;
const REMOTE_SIGMA: f64 = 0.08;
/// The per-lane factor is e^{U(−LANE_SPREAD, LANE_SPREAD)}.
const LANE_SPREAD: f64 = 0.2;
/// On one province pair, carriers' medians are at least this ratio apart.
const SEPARATION: f64 = 1.04;

/// What sets a carrier's lanes apart.
struct Profile {
    /// Multiplier on the handling hours.
    handling: f64,
    /// Multiplier on the line-haul hours.
    line_haul: f64,
    sigma: f64,
    damage: f64,
    /// Multiplier on `long_gap_rate`.
    stall: f64,
}

fn profile(c: Carrier) -> Profile {
    let p = |handling, line_haul, sigma, damage, stall| Profile {
        handling,
        line_haul,
        sigma,
        damage,
        stall,
    };
    match c {
        Carrier::Sf => p(0.85, 0.60, 0.25, 0.06, 0.6),
        Carrier::Jd => p(0.80, 0.75, 0.28, 0.08, 0.7),
        Carrier::Yto => p(1.00, 1.05, 0.35, 0.17, 1.0),
        Carrier::Zto => p(1.00, 1.00, 0.33, 0.16, 1.0),
        Carrier::Sto => p(1.10, 1.05, 0.40, 0.22, 1.3),
        Carrier::Ems => p(1.20, 0.95, 0.42, 0.12, 1.3),
        Carrier::Yunda => p(1.05, 1.00, 0.36, 0.19, 1.1),
        Carrier::Dbl => p(1.15, 1.15, 0.38, 0.10, 1.2),
    }
}

/// A lane's transit-time distribution: log-normal with this median and log-sd.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct LaneDist {
    pub median_ms: f64,
    pub sigma: f64,
}

impl LaneDist {
    /// One transit time in ms (at least 1).
    #[inline]
    pub fn draw(&self, rng: &mut Rng) -> i64 {
        let t = self.median_ms * (self.sigma * rng.normal()).exp();
        ((t + 0.5) as i64).max(1)
    }
}

/// The true figures of one lane. Quantiles are those of the continuous distribution; the feed
/// rounds each draw to the millisecond.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LaneTruth {
    pub carrier: Carrier,
    /// Province code (GB/T 2260, first two digits: `44` is Guangdong), as
    /// [`crate::scoring::province_of`] reads `CN-440000`.
    pub origin: u16,
    pub dest: u16,
    /// Median transit time PICKED_UP → DELIVERED, ms.
    pub p50_ms: f64,
    pub p90_ms: f64,
    /// Standard deviation of ln(transit time).
    pub sigma: f64,
    /// Chance that a shipment is dropped once (one sensor reading above 3 g); the carrier's.
    pub damage_rate: f64,
    /// Chance that a scan gap is a 6–30 h stall; the carrier's.
    pub stall_rate: f64,
    /// Share of the feed's shipments on this lane (0 for a lane the simulator does not use).
    pub share: f64,
}

/// Every lane's distribution and every carrier's rates, for one seed and config.
pub(crate) struct Truth {
    regions: usize,
    /// `[(carrier * regions + origin) * regions + dest]`, region indexes of the geography.
    lanes: Vec<LaneDist>,
    damage: [f64; Carrier::ALL.len()],
    stall: [f64; Carrier::ALL.len()],
}

impl Truth {
    pub fn new(seed: u64, geo: &Geo, long_gap_rate: f64, anomaly_scale: f64) -> Truth {
        let n = geo.regions.len();
        let nc = Carrier::ALL.len();
        let mut lanes = vec![
            LaneDist {
                median_ms: 0.0,
                sigma: 0.0
            };
            nc * n * n
        ];
        let at = |c: usize, o: usize, d: usize| (c * n + o) * n + d;
        for o in 0..n {
            for d in 0..n {
                let km = geo.km(o, d);
                let remote = geo.regions[o].remote || geo.regions[d].remote;
                let mut medians = [(0.0, 0usize); Carrier::ALL.len()];
                for (c, carrier) in Carrier::ALL.into_iter().enumerate() {
                    let p = profile(carrier);
                    let hours = HANDLING_H * p.handling
                        + LINE_HAUL_H_PER_1000_KM * p.line_haul * km / 1000.0;
                    let u = Rng::derive(seed, Stream::Truth, at(c, o, d) as u64).unit();
                    let lane = (LANE_SPREAD * (2.0 * u - 1.0)).exp();
                    let r = if remote { REMOTE_FACTOR } else { 1.0 };
                    medians[c] = (hours * r * lane * HOUR as f64, c);
                }
                medians.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
                for i in 1..medians.len() {
                    medians[i].0 = medians[i].0.max(medians[i - 1].0 * SEPARATION);
                }
                for (median_ms, c) in medians {
                    let sigma =
                        profile(Carrier::ALL[c]).sigma + if remote { REMOTE_SIGMA } else { 0.0 };
                    lanes[at(c, o, d)] = LaneDist { median_ms, sigma };
                }
            }
        }
        let rate = |f: &dyn Fn(Profile) -> f64| Carrier::ALL.map(|c| f(profile(c)).min(1.0));
        Truth {
            regions: n,
            lanes,
            damage: rate(&|p| p.damage * anomaly_scale),
            stall: rate(&|p| p.stall * long_gap_rate),
        }
    }

    #[inline]
    pub fn lane(&self, carrier: Carrier, origin: usize, dest: usize) -> LaneDist {
        self.lanes[(carrier as usize * self.regions + origin) * self.regions + dest]
    }

    #[inline]
    pub fn damage(&self, carrier: Carrier) -> f64 {
        self.damage[carrier as usize]
    }

    /// Stall rates, indexed by `Carrier as usize`.
    pub fn stall_rates(&self) -> [f64; Carrier::ALL.len()] {
        self.stall
    }
}

impl Simulator {
    /// The true figures of the lane `carrier` (a code such as `"SF"`) from province `origin`
    /// to province `dest` (`44`, as [`crate::scoring::province_of`] gives), for any lane of the
    /// geography (`share` 0 if this simulator sends nothing on it); `None` for an unknown
    /// carrier or province.
    pub fn lane_truth(&self, carrier: &str, origin: u16, dest: u16) -> Option<LaneTruth> {
        let carrier = Carrier::parse(carrier)?;
        let o = self.geo.region_of(origin)?;
        let d = self.geo.region_of(dest)?;
        Some(self.truth_at(carrier, o, d))
    }

    /// Every lane this simulator sends shipments on (`share` > 0): by carrier in config order,
    /// then origin and destination province.
    pub fn lane_truths(&self) -> Vec<LaneTruth> {
        let n = self.geo.regions.len();
        let mut carriers: Vec<Carrier> = Vec::new();
        for &(c, w) in &self.cfg.carriers {
            if w > 0.0 && !carriers.contains(&c) {
                carriers.push(c);
            }
        }
        let mut pairs: Vec<(usize, usize)> = (0..n * n)
            .filter(|&i| self.route_share[i] > 0.0)
            .map(|i| (i / n, i % n))
            .collect();
        pairs.sort_by_key(|&(o, d)| (self.geo.regions[o].province, self.geo.regions[d].province));
        carriers
            .into_iter()
            .flat_map(|c| pairs.iter().map(move |&(o, d)| self.truth_at(c, o, d)))
            .collect()
    }

    fn truth_at(&self, carrier: Carrier, o: usize, d: usize) -> LaneTruth {
        let dist = self.truth.lane(carrier, o, d);
        let total: f64 = self.cfg.carriers.iter().map(|c| c.1).sum();
        let carrier_share: f64 = self
            .cfg
            .carriers
            .iter()
            .filter(|c| c.0 == carrier)
            .map(|c| c.1)
            .sum::<f64>()
            / total;
        let n = self.geo.regions.len();
        LaneTruth {
            carrier,
            origin: self.geo.regions[o].province,
            dest: self.geo.regions[d].province,
            p50_ms: dist.median_ms,
            p90_ms: dist.median_ms * (dist.sigma * Z90).exp(),
            sigma: dist.sigma,
            damage_rate: self.truth.damage(carrier),
            stall_rate: self.truth.stall_rates()[carrier as usize],
            share: carrier_share * self.route_share[o * n + d],
        }
    }
}
