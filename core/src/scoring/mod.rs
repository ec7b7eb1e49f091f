//! Carrier scoring (issue 7): lane statistics learned from the scan stream, and per-shipment
//! scores read from them. Pure: no I/O, no engine types; the engine feeds a [`LaneTable`] and
//! publishes [`Score`]s.
//!
//! # The pieces
//!
//! - [`sketch`]: [`QuantileSketch`], DDSketch-style logarithmic buckets over 1 minute..120 days
//!   with relative accuracy α (1 %: 604 buckets, 4,832 bytes of `f64`). Mergeable by adding
//!   arrays, weighted so decayed observations fit.
//! - [`decay`]: forward decay with a 14-day half-life. The weight of an observation grows with
//!   its time instead of every stored weight shrinking as the clock moves, so an update is
//!   O(1); ratios (quantiles, rates) are unaffected and the landmark is renormalised, exactly,
//!   long before the weights could overflow.
//! - [`lane`]: [`LaneKey`] (carrier, origin province, destination province; see
//!   [`province_of`] for why provinces), [`LaneStats`] (a transit sketch plus five decayed
//!   sums) and [`LaneEstimate`].
//! - [`LaneTable`]: every lane plus, as the lane [`LaneKey::carrier_wide`], each carrier's
//!   aggregate, updated together. [`LaneTable::estimate`] smooths a lane toward its carrier
//!   (empirical Bayes, prior strength `m` = 10 shipments): rates `(x + m·r)/(n + m)`,
//!   quantiles blended in log space with weight `n/(n+m)`; [`LaneTable::transit`] is the
//!   matching mixture distribution, which the delay risk reads.
//! - [`score`]: ETA, delay risk `P(T > SLA | T > elapsed)`, damage risk from shock episodes
//!   and fragility, and [`materially_changed`] to decide when to publish.
//! - [`LaneTable::encode`]/[`LaneTable::decode`]: a versioned, CRC-checked snapshot, so the
//!   statistics survive a restart.
//! - [`model`]: [`Tails`] (a sketch's normalised tail sums) and [`LaneView`] (a lane's smoothed
//!   distribution over its and its carrier's tails), so scoring a shipment is a lookup and two
//!   binary searches instead of bucket walks.
//! - [`CodedLanes`]: a table with its carriers named by code: what leaves an engine (export,
//!   NATS KV, merge across partitions), since carrier ids are interned per engine.
//!
//! # Memory and the hot path
//!
//! A lane costs 4,832 bytes of bucket counts, a 128-byte [`LaneStats`] record and its index
//! entry: 5,021 bytes measured. Lanes are bounded by carriers × 34² provinces and in practice
//! by depots × provinces × 2 directions per carrier: 1,632 lanes (and 8 carrier aggregates) for
//! 8 carriers and 3 depot provinces take 7.9 MB, the keyed state of 60,000 shipments. A
//! snapshot stores only the buckets a lane has used: ~950 bytes a lane whose transit times
//! span 12 h–4.5 days.
//!
//! Updates of an existing lane (`on_picked_up`, `on_delivered`, `on_alert`) are two hash
//! lookups, an `exp2` and, for a delivery, a `ln`: no allocation (a test counts them). A new
//! lane allocates its sketch once. Reads walk the buckets. Measured on the shared 2-core box
//! (release, 1,632 lanes): `on_delivered` 80–130 ns, `on_picked_up`/`on_alert` 20–45 ns,
//! [`LaneTable::estimate`] 0.6–0.7 µs, [`delay_risk`] over [`LaneTable::transit`] 0.2–0.3 µs,
//! [`eta_after`] ~0.5 µs. So the engine should score a shipment on its scans and alerts, not
//! on sensor readings; cache a lane's estimate (and `P(T > SLA)`) until a delivery on the
//! lane's carrier; and, on a scan-heavy feed, rescore at most every few minutes of event
//! time, as delay risk moves slowly.
//!
//! # Integration notes (for the engine)
//!
//! - Key: the carrier from the `shipment` event (interned id), `origin`/`dest` through
//!   [`province_of`]; a shipment with an unparseable region has no lane and no score.
//! - Time is event time (`ts`), and the decay clock is the latest `ts` seen, so a replay gives
//!   the same statistics. A timestamp far in the future moves the clock there and forgets
//!   everything before it: pass only timestamps the engine has accepted.
//! - Partitions each keep a table; [`LaneTable::merge`] combines them (e.g. for the control
//!   plane's carrier choice), exactly up to float rounding.

pub mod codec;
pub mod coded;
pub mod config;
pub mod decay;
pub mod lane;
pub mod model;
pub mod score;
pub mod sketch;
pub mod table;
pub mod transit;

#[cfg(test)]
pub(crate) mod testing;

pub use coded::CodedLanes;
pub use config::{ScoringConfig, SlaOverride};
pub use decay::ForwardDecay;
pub use lane::{is_province, province_of, AlertKind, LaneEstimate, LaneKey, LaneStats};
pub use model::{bucket_values, LaneView, Tails};
pub use score::{
    damage_risk, delay_risk, eta_after, eta_ms, materially_changed, round_i64, Eta, Score,
};
pub use sketch::{QuantileSketch, SketchLayout};
pub use table::{LaneSlots, LaneTable};
pub use transit::Transit;
