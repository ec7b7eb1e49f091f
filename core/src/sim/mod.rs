//! A seeded, realistic feed of mail-in repair shipments: control-plane `shipment` events,
//! carrier scan sequences and sensor-tag readings, interleaved in arrival order on one simulated
//! clock, with the faults a real feed has (duplicates, out-of-order and late uploads, invalid
//! lines). The same seed and config give the same feed, byte for byte.
//!
//! [`Simulator`] produces the feed in batches, so tens of millions of events stream through a
//! bounded amount of memory (what the shipments in flight need, ~350 bytes each); [`generate`]
//! collects a small feed for tests. Batches of 4–16 k events are fastest (their columns stay in
//! cache): 2–3 M events/s on one core for 1 M shipments.
//!
//! The model, per shipment:
//! - a `shipment` event (carrier, origin/destination region, tier, fragile, repair order,
//!   declared value) when created; 2 % get a second one in transit (an attribute changed);
//! - the carrier's scans: INFO_RECEIVED, PICKED_UP (working hours), IN_TRANSIT on arrival at
//!   and departure from each hub of its route (customer ⇄ a depot, usually the nearest, 0–2
//!   hubs), OUT_FOR_DELIVERY, then DELIVERED with a signer, or failed attempts, a parcel-station
//!   or locker pickup, an EXCEPTION, a return; handling gaps 10 min–3 h, line-haul legs by
//!   distance (trucks ~65 km/h, SF/JD often by air), overnight waits, rare 6–30 h stalls, lost
//!   parcels;
//! - a ground truth the feed follows exactly ([`Simulator::lane_truths`], `truth.rs`): a
//!   delivered shipment's DELIVERED − PICKED_UP is a draw from its lane's log-normal (lane =
//!   carrier, origin province, destination province), with the line haul fitted to it and the
//!   last mile planned back from the delivery; a shipment is dropped once (one reading above
//!   3 g) at its carrier's damage rate; stalls come at the carrier's rate;
//! - for advanced/premium tiers, a tag sampling every 30–120 s from pickup to delivery whose
//!   readings arrive in gateway uploads of 16–64 (see `sensor.rs`), with drops, heat, cold,
//!   humidity, tilt and light episodes and a draining battery.
//!
//! On the default feed the example rules fire about: dwell-2h 2.7 times per shipment (mostly
//! line-haul legs, as on a real feed), dwell-24h on 14 % of shipments, shock-3g on 7 %,
//! heat-35 on 8 %, every other rule on 1–2 %; late carrier feeds retract ~300 dwell alerts.
//! Over half of the deliveries are collected from a locker or station, as every delivery
//! outside courier hours is.

mod carrier;
mod geo;
mod invalid;
mod lastmile;
#[cfg(test)]
mod measure;
mod network;
mod phrases;
mod queue;
mod rng;
mod scan;
mod sensor;
mod ship;
mod simulator;
#[cfg(test)]
mod tests;
mod truth;
#[cfg(test)]
mod truth_tests;

pub use carrier::{Carrier, MAX_SHIPMENTS};
pub use invalid::Defect;
pub use simulator::Simulator;
pub use truth::LaneTruth;

use crate::error::{Error, ErrorKind, Result};
use crate::event::{Event, EventBatch};

/// What to simulate. Every field has a realistic default; see [`SimConfig::default`].
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// Seeds every random choice: the same seed and config give a byte-identical feed.
    pub seed: u64,
    /// Distinct shipments (each gets a unique tracking number); at most [`MAX_SHIPMENTS`].
    pub shipments: u64,
    /// Approximate total of valid events (shipment + scan + sensor, duplicates included).
    /// Sensor readings fill what shipment and scan events leave of it; if those alone exceed
    /// it, the feed is larger than asked.
    pub events: u64,
    /// Creation time of the first shipment, ms since the epoch.
    pub start_ms: i64,
    /// Shipments are created over this window (Poisson arrivals with a daytime peak). Longer
    /// windows mean fewer shipments in flight at once, so less simulator memory.
    pub span_ms: i64,
    /// Carriers and their relative share of shipments.
    pub carriers: Vec<(Carrier, f64)>,
    /// Province codes (`44` for Guangdong, as [`crate::scoring::province_of`] gives) of the
    /// depots every shipment starts or ends at. Empty: the five default repair centres (44,
    /// 31, 51, 11, 42). A few depots bound the lanes (carriers × depots × customer provinces
    /// × 2 directions), so each gets enough shipments to learn from.
    pub depots: Vec<u16>,
    /// Province codes of the customers' regions, drawn by parcel volume. Empty: all 31.
    pub customer_provinces: Vec<u16>,
    /// Share of shipments on a sensor-tagged tier (advanced or premium; basic has no tag).
    pub sensor_share: f64,
    /// Share of sensor-tagged shipments that are premium (their tags add tilt and GPS).
    pub premium_share: f64,
    /// Share of shipments marked fragile.
    pub fragile_rate: f64,
    /// Share of shipments the control plane changes once in transit (a second `shipment`
    /// event: marked fragile, or the declared value corrected).
    pub update_rate: f64,
    /// Invalid raw lines per valid event, returned apart in `raw_invalid`.
    pub invalid_rate: f64,
    /// Share of events delivered twice in a row (at-least-once transport).
    pub duplicate_rate: f64,
    /// Share of sensor readings delivered right after their successor.
    pub out_of_order_rate: f64,
    /// Share of shipments whose carrier feed stalls once: from some scan on, scans are held
    /// back and uploaded 3–12 h late as one batch.
    pub late_feed_rate: f64,
    /// Share of scan gaps that are long stalls (6–30 h; remote regions up to 2.2× longer), times
    /// the carrier's factor (0.6 for SF … 1.3 for STO and EMS; see [`LaneTruth::stall_rate`]).
    pub long_gap_rate: f64,
    /// Share of shipments with an EXCEPTION scan in transit (a fifth of them are returned).
    pub exception_rate: f64,
    /// Share of shipments whose scans stop mid-route (lost parcels: dwell alerts that never
    /// resolve).
    pub lost_rate: f64,
    /// Multiplier on every sensor anomaly rate (drops, heat, cold, humidity, tilt, light; drops
    /// are the carriers' damage rates, [`LaneTruth::damage_rate`]); 0 gives a feed without
    /// sensor anomalies.
    pub anomaly_scale: f64,
}

impl Default for SimConfig {
    /// 10 000 shipments and about a million events over a week from Monday 2026-09-07 00:00
    /// China time, with carrier shares of a repair business (SF and JD heavy).
    fn default() -> Self {
        SimConfig {
            seed: 42,
            shipments: 10_000,
            events: 1_000_000,
            start_ms: 1_788_710_400_000,
            span_ms: 7 * 86_400_000,
            carriers: vec![
                (Carrier::Sf, 25.0),
                (Carrier::Jd, 15.0),
                (Carrier::Zto, 14.0),
                (Carrier::Yto, 12.0),
                (Carrier::Yunda, 10.0),
                (Carrier::Ems, 10.0),
                (Carrier::Sto, 9.0),
                (Carrier::Dbl, 5.0),
            ],
            depots: Vec::new(),
            customer_provinces: Vec::new(),
            sensor_share: 0.55,
            premium_share: 0.4,
            fragile_rate: 0.3,
            update_rate: 0.02,
            invalid_rate: 0.001,
            duplicate_rate: 0.002,
            out_of_order_rate: 0.001,
            late_feed_rate: 0.02,
            long_gap_rate: 0.03,
            exception_rate: 0.02,
            lost_rate: 0.002,
            anomaly_scale: 1.0,
        }
    }
}

impl SimConfig {
    /// Check ranges; the error names the field.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, why: &str| {
            Err(Error::new(
                ErrorKind::Config,
                format!("sim: `{field}` {why}"),
            ))
        };
        if self.shipments > MAX_SHIPMENTS {
            return bad("shipments", "exceeds MAX_SHIPMENTS (100 000 000)");
        }
        if !(0..=4_102_444_800_000).contains(&self.start_ms) {
            return bad("start_ms", "must be between 1970 and 2100");
        }
        if !(1..=180 * 86_400_000).contains(&self.span_ms) {
            return bad("span_ms", "must be 1 ms to 180 days");
        }
        if self.carriers.is_empty()
            || self
                .carriers
                .iter()
                .any(|c| !(c.1 >= 0.0 && c.1.is_finite()))
            || self.carriers.iter().map(|c| c.1).sum::<f64>() <= 0.0
        {
            return bad(
                "carriers",
                "needs at least one carrier and finite weights >= 0, not all 0",
            );
        }
        let g = geo::geo();
        if self.depots.len() > 64 || self.depots.iter().any(|&p| g.region_of(p).is_none()) {
            return bad(
                "depots",
                "must be at most 64 province codes of mainland China (11..65)",
            );
        }
        if self
            .customer_provinces
            .iter()
            .any(|&p| g.region_of(p).is_none())
        {
            return bad(
                "customer_provinces",
                "must be province codes of mainland China (11..65)",
            );
        }
        let rates = [
            ("sensor_share", self.sensor_share),
            ("premium_share", self.premium_share),
            ("fragile_rate", self.fragile_rate),
            ("update_rate", self.update_rate),
            ("invalid_rate", self.invalid_rate),
            ("duplicate_rate", self.duplicate_rate),
            ("out_of_order_rate", self.out_of_order_rate),
            ("late_feed_rate", self.late_feed_rate),
            ("long_gap_rate", self.long_gap_rate),
            ("exception_rate", self.exception_rate),
            ("lost_rate", self.lost_rate),
        ];
        for (name, r) in rates {
            if !(0.0..=1.0).contains(&r) {
                return bad(name, "must be within 0..=1");
            }
        }
        if !(0.0..=100.0).contains(&self.anomaly_scale) {
            return bad("anomaly_scale", "must be within 0..=100");
        }
        Ok(())
    }
}

/// The whole feed as owned events, in arrival order (small feeds: tests, examples).
///
/// # Panics
/// If `cfg` is invalid (see [`SimConfig::validate`]).
pub fn generate(cfg: &SimConfig) -> Vec<Event> {
    batches(cfg, 8192)
        .iter()
        .flat_map(|b| (0..b.len()).map(|i| b.event(i)))
        .collect()
}

/// The whole feed in batches of up to `chunk` valid events (benchmarks and profiles; invalid
/// lines are dropped).
///
/// # Panics
/// If `cfg` is invalid (see [`SimConfig::validate`]).
pub fn batches(cfg: &SimConfig, chunk: usize) -> Vec<EventBatch> {
    let mut sim = Simulator::new(cfg.clone());
    let (mut out, mut invalid) = (Vec::new(), Vec::new());
    loop {
        let mut b = EventBatch::default();
        if sim.next_batch(chunk, &mut b, &mut invalid) == 0 {
            return out;
        }
        invalid.clear();
        out.push(b);
    }
}

/// A realistic rule set (spec §3) for the simulated feed: every rule kind, `where` filters,
/// instant and sustained thresholds on both sides, and dwell rules. Same as `examples/rules.json`.
pub fn example_rules() -> &'static str {
    include_str!("rules.json")
}
