//! The feed generator. One monotone queue keyed by arrival time holds the next shipment
//! creation (a Poisson clock) and, per shipment in flight, at most three pending deliveries
//! (its next scan, its next sensor upload, its update), so the feed comes out in arrival order
//! with each gateway upload kept together. Memory follows the shipments in flight, not the
//! feed's length.

use super::carrier::Carrier;
use super::geo::{geo, Geo};
use super::invalid;
use super::network::Network;
use super::queue::RadixHeap;
use super::rng::{cumulative, Rng, Stream};
use super::scan::{ScanCtx, ScanGen, ScanParams, HOUR};
use super::sensor::{Reading, SensorParams, MAX_BURST};
use super::ship::{Ship, Tag};
use super::truth::Truth;
use super::SimConfig;
use crate::error::Result;
use crate::event::{Event, EventBatch, Signer};

// What a queue key schedules (its low two bits).
pub(super) const SCAN: u64 = 0;
pub(super) const SENSOR: u64 = 1;
pub(super) const CREATE: u64 = 2;
pub(super) const UPDATE: u64 = 3;
/// Queue keys pack the arrival time (ms after `start_ms`) above the slot and the `what` bits.
const TIME_SHIFT: u32 = 29;
/// Arrivals up to 2^35 ms (397 days) after the start: a 180-day window plus the longest tail.
const TIME_LIMIT: i64 = 1 << (64 - TIME_SHIFT);
// Every shipment in flight needs a distinct slot in the key's 27 slot bits.
const _: () = assert!(super::MAX_SHIPMENTS <= 1 << (TIME_SHIFT - 2));
pub(super) const NONE: u8 = u8::MAX;
/// Upcoming arrivals whose state is prefetched.
const PREFETCH: usize = 4;
/// Shipments sampled up front to learn the mean scan count and transit time.
const CALIBRATION_SHIPMENTS: u64 = 2000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Active {
    Idle,
    /// Emitting `burst[burst_pos..burst_len]`.
    Burst,
    /// The slot's pending scan arrives now (a held batch being flushed).
    Scan(u32),
}

/// The feed generator. See the module docs of [`crate::sim`].
pub struct Simulator {
    pub(super) cfg: SimConfig,
    pub(super) geo: &'static Geo,
    pub(super) net: Network,
    /// [`Network::route_shares`] of `net`.
    pub(super) route_share: Vec<f64>,
    pub(super) truth: Truth,
    pub(super) carrier_cum: Vec<f64>,
    pub(super) scan_params: ScanParams,
    pub(super) sensor_params: SensorParams,
    pub(super) readings_per_ms: f64,
    pub(super) create_rng: Rng,
    pub(super) transport: Rng,
    pub(super) created: u64,
    pub(super) next_create_at: i64,
    pub(super) now: i64,
    /// Keys: `(arrival - start_ms) << 29 | slot << 2 | what`, unique, so the order is total.
    pub(super) queue: RadixHeap,
    pub(super) ships: Vec<Ship>,
    /// Indexed like `ships`.
    pub(super) tags: Vec<Tag>,
    pub(super) free: Vec<u32>,
    pub(super) active: Active,
    pub(super) burst: Box<[Reading; MAX_BURST]>,
    pub(super) burst_len: usize,
    pub(super) burst_pos: usize,
    /// The event being emitted; its strings are reused, so emitting allocates nothing.
    pub(super) scratch: Event,
    /// The carrier of the scratch event's shipment (sensor events do not name it).
    pub(super) scratch_carrier: Carrier,
    pub(super) dup_pending: bool,
}

/// Hint the CPU to fetch `*r` (up to two cache lines): with a million shipments in flight,
/// waiting for their state is the simulator's largest cost.
#[inline(always)]
fn prefetch<T>(r: Option<&T>) {
    if let Some(r) = r {
        crate::prefetch::lines(r, 2);
    }
}

fn opt(v: f64) -> Option<f64> {
    (!v.is_nan()).then_some(v)
}

impl Simulator {
    /// A simulator for `cfg`.
    ///
    /// # Panics
    /// If `cfg` is invalid; [`Simulator::try_new`] returns the error instead.
    pub fn new(cfg: SimConfig) -> Simulator {
        match Simulator::try_new(cfg) {
            Ok(sim) => sim,
            Err(e) => panic!("{e}"),
        }
    }

    /// A simulator for `cfg`, or a [`crate::ErrorKind::Config`] error naming the bad field.
    pub fn try_new(cfg: SimConfig) -> Result<Simulator> {
        cfg.validate()?;
        let geo = geo();
        let net = geo.network(&cfg.depots, &cfg.customer_provinces);
        let truth = Truth::new(cfg.seed, geo, cfg.long_gap_rate, cfg.anomaly_scale);
        let carrier_cum = cumulative(cfg.carriers.iter().map(|c| c.1));
        let scan_params = ScanParams {
            stall_rate: truth.stall_rates(),
            exception_rate: cfg.exception_rate,
            lost_rate: cfg.lost_rate,
        };
        let sensor_params = SensorParams {
            anomaly_scale: cfg.anomaly_scale,
            out_of_order_rate: cfg.out_of_order_rate,
        };
        let (scans_per_ship, transit_ms) =
            calibrate(&cfg, geo, &net, &truth, &carrier_cum, &scan_params);
        let valid_target = cfg.events as f64 / (1.0 + cfg.duplicate_rate);
        let left = valid_target - cfg.shipments as f64 * (1.0 + cfg.update_rate + scans_per_ship);
        let tag_ms = cfg.shipments as f64 * cfg.sensor_share * transit_ms;
        let readings_per_ms = if left > 0.0 && tag_ms > 0.0 {
            left / tag_ms
        } else {
            0.0
        };
        let mut scratch = Event {
            signer: Some(Signer::default()),
            ..Event::default()
        };
        scratch.shipment.reserve(16);
        let mut sim = Simulator {
            geo,
            route_share: net.route_shares(),
            net,
            truth,
            carrier_cum,
            scan_params,
            sensor_params,
            readings_per_ms,
            create_rng: Rng::derive(cfg.seed, Stream::Create, 0),
            transport: Rng::derive(cfg.seed, Stream::Transport, 0),
            created: 0,
            next_create_at: cfg.start_ms,
            now: cfg.start_ms,
            queue: RadixHeap::new(0),
            ships: Vec::new(),
            tags: Vec::new(),
            free: Vec::new(),
            active: Active::Idle,
            burst: Box::new([Reading::default(); MAX_BURST]),
            burst_len: 0,
            burst_pos: 0,
            scratch,
            scratch_carrier: Carrier::Sf,
            dup_pending: false,
            cfg,
        };
        if sim.cfg.shipments > 0 {
            sim.schedule(sim.cfg.start_ms, 0, CREATE);
        }
        Ok(sim)
    }

    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    /// Shipments created so far.
    pub fn shipments_created(&self) -> u64 {
        self.created
    }

    /// Shipments in flight now (created, with scans or uploads still to come).
    pub fn in_flight(&self) -> usize {
        self.ships.len() - self.free.len()
    }

    /// Most shipments in flight at once so far: what the simulator's memory follows.
    pub fn peak_in_flight(&self) -> usize {
        self.ships.len()
    }

    /// Bytes of simulator state (per-shipment state and the queue), roughly.
    pub fn state_bytes(&self) -> usize {
        use std::mem::size_of;
        self.ships.capacity() * size_of::<Ship>()
            + self.tags.capacity() * size_of::<Tag>()
            + self.queue.capacity_bytes()
    }

    /// The simulated clock: arrival time of the last event produced.
    pub fn now_ms(&self) -> i64 {
        self.now
    }

    /// Append up to `max_events` valid events to `out`, in arrival order, and any invalid raw
    /// lines (NDJSON, no trailing newline) that arrived meanwhile to `raw_invalid`. Returns the
    /// number of events appended; 0 once the feed is over. The feed does not depend on how it
    /// is cut into batches.
    pub fn next_batch(
        &mut self,
        max_events: usize,
        out: &mut EventBatch,
        raw_invalid: &mut Vec<Vec<u8>>,
    ) -> usize {
        let start = out.len();
        while out.len() - start < max_events {
            if self.dup_pending {
                self.dup_pending = false;
                out.push(&self.scratch);
                continue;
            }
            match self.active {
                Active::Burst if self.burst_pos < self.burst_len => {
                    let r = self.burst[self.burst_pos];
                    self.burst_pos += 1;
                    let e = &mut self.scratch;
                    e.ts = r.ts;
                    for (m, v) in e.metrics.iter_mut().zip(r.metrics) {
                        *m = opt(v);
                    }
                    e.lat = opt(r.lat);
                    e.lon = opt(r.lon);
                    self.emit(out, raw_invalid);
                }
                Active::Burst => self.active = Active::Idle,
                Active::Scan(slot) => {
                    self.active = Active::Idle;
                    self.emit_scan(slot, out, raw_invalid);
                }
                Active::Idle => {
                    if !self.advance(out, raw_invalid) {
                        break;
                    }
                }
            }
        }
        out.len() - start
    }

    /// Push the scratch event, then draw its transport faults.
    #[inline]
    pub(super) fn emit(&mut self, out: &mut EventBatch, raw_invalid: &mut Vec<Vec<u8>>) {
        out.push(&self.scratch);
        if self.cfg.duplicate_rate > 0.0 && self.transport.chance(self.cfg.duplicate_rate) {
            self.dup_pending = true;
        }
        if self.cfg.invalid_rate > 0.0 && self.transport.chance(self.cfg.invalid_rate) {
            raw_invalid.push(invalid::line(
                &self.scratch,
                self.scratch_carrier,
                &mut self.transport,
            ));
        }
    }

    /// Produce the next arrival: a new shipment, a scan, or the start of a sensor upload.
    /// `false` when the feed is over.
    fn advance(&mut self, out: &mut EventBatch, raw_invalid: &mut Vec<Vec<u8>>) -> bool {
        let Some(key) = self.queue.pop() else {
            return false;
        };
        // Fetch the state of the next few arrivals while this one is worked on.
        let (ships, tags) = (&self.ships, &self.tags);
        self.queue.peek_next(PREFETCH, |key| {
            let slot = ((key & ((1 << TIME_SHIFT) - 1)) >> 2) as usize;
            match key & 3 {
                SCAN => prefetch(ships.get(slot)),
                SENSOR | UPDATE => {
                    prefetch(ships.get(slot));
                    prefetch(tags.get(slot));
                }
                _ => {}
            }
        });
        self.now = self.cfg.start_ms + (key >> TIME_SHIFT) as i64;
        let slot = ((key & ((1 << TIME_SHIFT) - 1)) >> 2) as u32;
        match key & 3 {
            CREATE => {
                self.create();
                self.emit(out, raw_invalid);
            }
            SCAN => self.emit_scan(slot, out, raw_invalid),
            SENSOR => self.start_burst(slot),
            _ => {
                self.emit_update(slot);
                self.emit(out, raw_invalid);
            }
        }
        true
    }

    /// Queue `what` for `slot` at `at` (never before now: the clock does not go back).
    pub(super) fn schedule(&mut self, at: i64, slot: u32, what: u64) {
        let rel = at.max(self.now) - self.cfg.start_ms;
        assert!(
            rel < TIME_LIMIT,
            "sim: arrival beyond the queue's time range"
        );
        let key = (rel as u64) << TIME_SHIFT | u64::from(slot) << 2 | what;
        self.queue.push(key);
    }

    pub(super) fn retire(&mut self, slot: u32) {
        let ship = &mut self.ships[slot as usize];
        ship.live -= 1;
        if ship.live == 0 {
            self.free.push(slot);
        }
    }
}

/// Mean scans per shipment and mean tagged transit time (pickup to last scan), from a sample of
/// shipments drawn like the real ones but from their own random stream.
fn calibrate(
    cfg: &SimConfig,
    geo: &'static Geo,
    net: &Network,
    truth: &Truth,
    carrier_cum: &[f64],
    p: &ScanParams,
) -> (f64, f64) {
    let mut r = Rng::derive(cfg.seed, Stream::Calibrate, 0);
    let (mut scans, mut transit) = (0.0, 0.0);
    for i in 0..CALIBRATION_SHIPMENTS {
        let carrier = cfg.carriers[r.weighted(carrier_cum)].0;
        let route = geo.draw_route(net, &mut r);
        let ctx = ScanCtx {
            geo,
            route,
            carrier,
            params: p,
        };
        let lane = truth.lane(carrier, route.origin(), route.dest());
        let s = ScanGen::new(
            Rng::derive(cfg.seed, Stream::Calibrate, i + 1),
            cfg.start_ms,
            &ctx,
            lane,
        )
        .summarize(&ctx);
        scans += f64::from(s.n_scans);
        // Lost parcels' tags read on for up to 12 h (6 h on average) after the last scan.
        let tail = if s.terminal { 0 } else { 6 * HOUR };
        transit += (s.t_last + tail - s.t_pick) as f64;
    }
    let n = CALIBRATION_SHIPMENTS as f64;
    (scans / n, transit / n)
}
