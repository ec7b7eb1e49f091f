//! [`LaneTable`]: every lane's decayed statistics plus each carrier's aggregate, updated
//! together from the engine's events, merged across partitions, read as smoothed estimates.

use super::config::ScoringConfig;
use super::decay::ForwardDecay;
use super::lane::{lane_weight, rate, shrink, AlertKind, LaneEstimate, LaneKey, LaneStats};
use super::sketch::SketchLayout;
use super::transit::Transit;
use crate::error::{Error, ErrorKind};
use hashbrown::HashMap;

/// Where a lane's statistics and its carrier's aggregate sit in a [`LaneTable`], resolved on
/// the first update through them (`Default`: not yet). The engine keeps one per lane, so its
/// updates skip the table's two hash lookups. Valid for the table that resolved them only.
#[derive(Clone, Copy, Debug)]
pub struct LaneSlots {
    lane: u32,
    carrier: u32,
}

impl Default for LaneSlots {
    fn default() -> LaneSlots {
        LaneSlots {
            lane: u32::MAX,
            carrier: u32::MAX,
        }
    }
}

/// Lane statistics. Updates to existing lanes do not allocate; a new lane allocates its sketch
/// once (~4.9 kB at α = 1 %).
#[derive(Clone, Debug)]
pub struct LaneTable {
    pub(super) config: ScoringConfig,
    pub(super) layout: SketchLayout,
    pub(super) decay: ForwardDecay,
    index: HashMap<LaneKey, u32, foldhash::fast::FixedState>,
    /// Lane `i`'s key and statistics (carrier-wide aggregates included).
    pub(super) keys: Vec<LaneKey>,
    pub(super) stats: Vec<LaneStats>,
}

impl LaneTable {
    /// An empty table; `Config` error if `config` does not validate.
    pub fn new(config: ScoringConfig) -> Result<LaneTable, Error> {
        let layout = config.validate()?;
        let decay = ForwardDecay::new(config.half_life_ms);
        Ok(LaneTable {
            config,
            layout,
            decay,
            index: HashMap::default(),
            keys: Vec::new(),
            stats: Vec::new(),
        })
    }

    pub fn config(&self) -> &ScoringConfig {
        &self.config
    }

    /// The bucket layout of every sketch of the table.
    pub fn layout(&self) -> SketchLayout {
        self.layout
    }

    /// Replaces the configuration. `alpha` and `half_life_ms` shape the stored state and must
    /// not change; the prior strength and SLAs may.
    pub fn reconfigure(&mut self, config: ScoringConfig) -> Result<(), Error> {
        let layout = config.validate()?;
        if layout != self.layout || config.half_life_ms != self.config.half_life_ms {
            return Err(Error::new(
                ErrorKind::Config,
                "scoring: alpha and half_life_ms cannot change on a live table",
            ));
        }
        self.config = config;
        Ok(())
    }

    /// The SLA of `carrier`'s lanes, ms.
    #[inline]
    pub fn sla_ms(&self, carrier: u16) -> i64 {
        self.config.sla_ms(carrier)
    }

    /// The decay clock: `now_ms()` is the latest observation time.
    pub fn decay(&self) -> &ForwardDecay {
        &self.decay
    }

    /// Lanes held, carrier-wide aggregates included.
    pub fn len(&self) -> usize {
        self.stats.len()
    }

    pub fn is_empty(&self) -> bool {
        self.stats.is_empty()
    }

    /// Bytes of memory held: lane records, their sketches, the index.
    pub fn bytes(&self) -> usize {
        let lanes: usize = self.stats.iter().map(LaneStats::bytes).sum();
        let spare = (self.stats.capacity() - self.stats.len()) * std::mem::size_of::<LaneStats>();
        let index = self.index.capacity() * (std::mem::size_of::<(LaneKey, u32)>() + 1);
        lanes + spare + self.keys.capacity() * std::mem::size_of::<LaneKey>() + index
    }

    /// The raw decayed sums of a lane (`LaneKey::carrier_wide` for a carrier's).
    pub fn get(&self, key: LaneKey) -> Option<&LaneStats> {
        self.index.get(&key).map(|&i| &self.stats[i as usize])
    }

    /// Every lane in key order (carrier-wide aggregates sort after their carrier's lanes).
    pub fn lanes(&self) -> impl Iterator<Item = (LaneKey, &LaneStats)> {
        let mut order: Vec<u32> = (0..self.keys.len() as u32).collect();
        order.sort_unstable_by_key(|&i| self.keys[i as usize]);
        order
            .into_iter()
            .map(|i| (self.keys[i as usize], &self.stats[i as usize]))
    }

    /// A PICKED_UP scan on `key` at `ts`.
    #[inline]
    pub fn on_picked_up(&mut self, key: LaneKey, ts: i64) {
        self.on_picked_up_in(&mut LaneSlots::default(), key, ts);
    }

    /// [`LaneTable::on_picked_up`] through `key`'s cached `slots`.
    #[inline]
    pub fn on_picked_up_in(&mut self, slots: &mut LaneSlots, key: LaneKey, ts: i64) {
        let w = self.advance(ts);
        self.update(slots, key, |s| s.picked_up += w);
    }

    /// A DELIVERED scan of a shipment picked up at `pickup_ts`, judged against `sla_ms`.
    /// Returns false (and records nothing) if delivery does not come after pickup.
    ///
    /// The transit time is weighted by its delivery time, not its pickup time: a stream in time
    /// order then sees every transit time as soon as it is known, with no bias between short
    /// and long ones (by pickup time, the recent, heaviest cohort would be missing its slow
    /// shipments).
    #[inline]
    pub fn on_delivered(
        &mut self,
        key: LaneKey,
        pickup_ts: i64,
        delivered_ts: i64,
        sla_ms: i64,
    ) -> bool {
        self.on_delivered_in(
            &mut LaneSlots::default(),
            key,
            pickup_ts,
            delivered_ts,
            sla_ms,
        )
    }

    /// [`LaneTable::on_delivered`] through `key`'s cached `slots`.
    #[inline]
    pub fn on_delivered_in(
        &mut self,
        slots: &mut LaneSlots,
        key: LaneKey,
        pickup_ts: i64,
        delivered_ts: i64,
        sla_ms: i64,
    ) -> bool {
        let transit = delivered_ts.saturating_sub(pickup_ts);
        if transit <= 0 {
            return false;
        }
        let w = self.advance(delivered_ts);
        let on_time = if transit <= sla_ms { w } else { 0.0 };
        let ms = transit as f64;
        self.update(slots, key, |s| {
            s.transit.insert(ms, w);
            s.delivered += w;
            s.on_time += on_time;
        });
        true
    }

    /// An engine alert of `kind` at `ts` on a shipment travelling `key`.
    #[inline]
    pub fn on_alert(&mut self, key: LaneKey, kind: AlertKind, ts: i64) {
        self.on_alert_in(&mut LaneSlots::default(), key, kind, ts);
    }

    /// [`LaneTable::on_alert`] through `key`'s cached `slots`.
    #[inline]
    pub fn on_alert_in(&mut self, slots: &mut LaneSlots, key: LaneKey, kind: AlertKind, ts: i64) {
        let w = self.advance(ts);
        self.update(slots, key, |s| match kind {
            AlertKind::Dwell => s.dwell_alerts += w,
            AlertKind::Shock => s.shock_alerts += w,
        });
    }

    /// Moves the decay clock to `ts` and returns the weight of an observation at `ts`.
    #[inline]
    fn advance(&mut self, ts: i64) -> f64 {
        if let Some(factor) = self.decay.observe(ts) {
            self.scale_all(factor);
        }
        self.decay.weight(ts)
    }

    #[cold]
    fn scale_all(&mut self, factor: f64) {
        self.stats.iter_mut().for_each(|s| s.scale(factor));
    }

    /// Applies `f` to the lane and to its carrier's aggregate (once if `key` is the latter),
    /// found through `slots` (resolved, creating the lanes, on first use).
    #[inline]
    fn update(&mut self, slots: &mut LaneSlots, key: LaneKey, f: impl Fn(&mut LaneStats)) {
        if slots.lane == u32::MAX {
            slots.lane = self.slot(key) as u32;
            if !key.is_carrier_wide() {
                slots.carrier = self.slot(LaneKey::carrier_wide(key.carrier)) as u32;
            }
        }
        debug_assert_eq!(self.keys[slots.lane as usize], key, "slots of another lane");
        f(&mut self.stats[slots.lane as usize]);
        if !key.is_carrier_wide() {
            f(&mut self.stats[slots.carrier as usize]);
        }
    }

    /// [`LaneTable::get`] through `key`'s cached `slots` if resolved.
    #[inline]
    pub fn get_in(&self, slots: &LaneSlots, key: LaneKey) -> Option<&LaneStats> {
        match self.stats.get(slots.lane as usize) {
            Some(s) => Some(s),
            None => self.get(key),
        }
    }

    #[inline]
    fn slot(&mut self, key: LaneKey) -> usize {
        match self.index.get(&key) {
            Some(&i) => i as usize,
            None => self.create(key),
        }
    }

    #[cold]
    pub(super) fn create(&mut self, key: LaneKey) -> usize {
        let i = self.stats.len();
        self.index.insert(key, i as u32);
        self.keys.push(key);
        self.stats.push(LaneStats::new(self.layout));
        i
    }

    /// Adds another partition's statistics. `Config` error if its `alpha` or half-life differ.
    pub fn merge(&mut self, other: &LaneTable) -> Result<(), Error> {
        if other.layout != self.layout || other.config.half_life_ms != self.config.half_life_ms {
            return Err(Error::new(
                ErrorKind::Config,
                "scoring: merging lane tables of different alpha or half_life_ms",
            ));
        }
        let (mine, theirs) = self.decay.align(&other.decay);
        if mine != 1.0 {
            self.scale_all(mine);
        }
        for (&key, stats) in other.keys.iter().zip(&other.stats) {
            let i = self.slot(key);
            self.stats[i].merge_scaled(stats, theirs);
        }
        if let Some(factor) = self.decay.renormalise_if_due() {
            self.scale_all(factor);
        }
        Ok(())
    }

    /// The lane's figures smoothed toward its carrier's: rates as `(x + m·r_carrier)/(n + m)`,
    /// p50/p90 as `exp(w·ln q_lane + (1−w)·ln q_carrier)` with `w = n/(n+m)`. A lane without
    /// data gets the carrier's figures; a carrier without a delivery gets `None`.
    pub fn estimate(&self, key: LaneKey) -> Option<LaneEstimate> {
        let carrier = self.get(LaneKey::carrier_wide(key.carrier))?;
        let [c50, c90] = carrier.transit.quantiles([0.5, 0.9])?;
        let norm = self.decay.norm();
        let m = self.config.prior_shipments;
        let c_exposure = carrier.exposure();
        let prior = [
            rate(carrier.on_time, carrier.delivered),
            rate(carrier.dwell_alerts, c_exposure),
            rate(carrier.shock_alerts, c_exposure),
        ];
        let lane = if key.is_carrier_wide() {
            Some(carrier)
        } else {
            self.get(key)
        };
        let Some(lane) = lane.filter(|l| !l.transit.is_empty() || l.exposure() > 0.0) else {
            let [on_time_rate, dwell_per_shipment, shock_per_shipment] = prior;
            return Some(LaneEstimate {
                p50_ms: c50,
                p90_ms: c90,
                on_time_rate,
                dwell_per_shipment,
                shock_per_shipment,
                shipments: 0.0,
                lane_weight: 0.0,
            });
        };
        let n = lane.delivered / norm;
        let w = if key.is_carrier_wide() {
            1.0
        } else {
            lane_weight(n, m)
        };
        let (p50_ms, p90_ms) = match lane.transit.quantiles([0.5, 0.9]) {
            Some([l50, l90]) => (log_blend(l50, c50, w), log_blend(l90, c90, w)),
            None => (c50, c90),
        };
        let m = if key.is_carrier_wide() { 0.0 } else { m };
        let exposure = lane.exposure() / norm;
        Some(LaneEstimate {
            p50_ms,
            p90_ms,
            on_time_rate: shrink(lane.on_time / norm, n, prior[0], m),
            dwell_per_shipment: shrink(lane.dwell_alerts / norm, exposure, prior[1], m),
            shock_per_shipment: shrink(lane.shock_alerts / norm, exposure, prior[2], m),
            shipments: n,
            lane_weight: w,
        })
    }

    /// The weight of `key`'s own data in its smoothed transit figures, `n/(n+m)` (1 for a
    /// carrier-wide key, 0 for a lane without deliveries).
    pub fn lane_weight(&self, key: LaneKey) -> f64 {
        self.lane_weight_in(&LaneSlots::default(), key)
    }

    /// [`LaneTable::lane_weight`] through `key`'s cached `slots`.
    pub fn lane_weight_in(&self, slots: &LaneSlots, key: LaneKey) -> f64 {
        if key.is_carrier_wide() {
            return 1.0;
        }
        let n = self
            .get_in(slots, key)
            .map_or(0.0, |l| l.delivered / self.decay.norm());
        lane_weight(n, self.config.prior_shipments)
    }

    /// The lane's transit-time distribution, smoothed like [`Self::estimate`]'s (empty when
    /// the carrier has no delivery): what [`super::score::delay_risk`] reads.
    pub fn transit(&self, key: LaneKey) -> Transit<'_> {
        let carrier = self.get(LaneKey::carrier_wide(key.carrier));
        if key.is_carrier_wide() {
            return Transit::blend(None, carrier.map(|c| &c.transit), 0.0);
        }
        let lane = self.get(key);
        let n = lane.map_or(0.0, |l| l.delivered / self.decay.norm());
        let w = lane_weight(n, self.config.prior_shipments);
        Transit::blend(lane.map(|l| &l.transit), carrier.map(|c| &c.transit), w)
    }
}

/// `exp(w·ln lane + (1−w)·ln carrier)`; exactly one side at the ends, so a lane without data
/// reports the carrier's figure to the bit.
#[inline]
fn log_blend(lane: f64, carrier: f64, w: f64) -> f64 {
    if w >= 1.0 {
        lane
    } else if w <= 0.0 {
        carrier
    } else {
        (w * lane.ln() + (1.0 - w) * carrier.ln()).exp()
    }
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
