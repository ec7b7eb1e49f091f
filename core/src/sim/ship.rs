//! One shipment in flight: its state, and how it enters the feed: the `shipment` event at
//! creation (and at its one update), each scan, each sensor upload.

use super::carrier::{device_id, order_id, tracking_number, Carrier};
use super::geo::{Geo, Route};
use super::phrases::{fill_signer, push_raw_status};
use super::rng::{Rng, Stream};
use super::scan::{local_hour, Scan, ScanCtx, ScanGen, Summary};
use super::sensor::SensorGen;
use super::simulator::{Active, Simulator, CREATE, NONE, SCAN, SENSOR, UPDATE};
use crate::event::{Event, EventBatch, Kind, Status, Tier, N_METRICS};

/// One shipment in flight: what every scan touches, in two adjacent cache lines (with a
/// million shipments in flight, the miss on this state is the simulator's main cost).
#[repr(align(128))]
pub(super) struct Ship {
    pub(super) id: [u8; 16],
    pub(super) id_len: u8,
    pub(super) carrier: Carrier,
    pub(super) route: Route,
    pub(super) scan: ScanGen,
    /// The scheduled, not yet delivered scan.
    pub(super) pending: Scan,
    /// Index of the scan from which the carrier's feed is held back (`NONE`: never).
    pub(super) hold_from: u8,
    pub(super) hold_ms: i64,
    /// Held scans (ts before this) arrive at this time.
    pub(super) release: i64,
    /// Streams (scan, sensor, update) with something still scheduled.
    pub(super) live: u8,
}

const _: () = assert!(std::mem::size_of::<Ship>() == 128);

/// What [`Ship`] leaves out because only sensor uploads and shipment updates need it.
pub(super) struct Tag {
    pub(super) idx: u64,
    /// The attributes the control plane's update states (if an update is scheduled).
    pub(super) update: Attrs,
    pub(super) sensor: SensorGen,
}

/// A shipment's attributes as its `shipment` event states them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Attrs {
    tier: Tier,
    fragile: bool,
    declared_yuan: u32,
}

fn ascii(b: &[u8]) -> &str {
    // Ids are built from ASCII digits and letters only.
    std::str::from_utf8(b).unwrap_or_default()
}

/// Clear every field of the reused event and set its kind and shipment.
fn reset(e: &mut Event, kind: Kind, shipment: &[u8]) {
    e.kind = Some(kind);
    e.shipment.clear();
    e.shipment.push_str(ascii(shipment));
    e.id.clear();
    e.carrier.clear();
    e.status = None;
    e.location.clear();
    e.raw_status.clear();
    if let Some(s) = &mut e.signer {
        s.name.clear();
        s.proxy_id.clear();
        s.staff_id.clear();
        s.kind = None;
    }
    e.device.clear();
    e.metrics = [None; N_METRICS];
    e.lat = None;
    e.lon = None;
    e.origin.clear();
    e.dest.clear();
    e.tier = None;
    e.fragile = None;
    e.order.clear();
    e.declared_value_fen = None;
}

fn push_region(s: &mut String, geo: &Geo, region: usize) {
    s.push_str("CN-");
    s.push_str(geo.regions[region].code);
}

/// Declared values are whole yuan, log-uniform per tier: many phones, fewer workstations.
fn declared_value(tier: Tier, r: &mut Rng) -> u32 {
    let (lo, hi) = match tier {
        Tier::Basic => (200.0, 5_000.0),
        Tier::Advanced => (1_000.0, 12_000.0),
        Tier::Premium => (3_000.0, 20_000.0),
    };
    (lo * f64::powf(hi / lo, r.unit())) as u32
}

impl Simulator {
    /// When the pending scan reaches the feed: seconds to minutes after the scan, or, while the
    /// carrier's feed is held back, all at once at the release time.
    pub(super) fn scan_arrival(ship: &mut Ship) -> i64 {
        let scan = ship.pending;
        if ship.scan.count() - 1 == ship.hold_from {
            ship.release = scan.ts + ship.hold_ms;
        }
        if scan.ts < ship.release {
            ship.release
        } else {
            scan.ts + 5_000 + i64::from(scan.aux % 295_000)
        }
    }

    /// Create the next shipment: draw it, put its `shipment` event in the scratch, and queue
    /// its first scan, first sensor upload and update.
    pub(super) fn create(&mut self) {
        let (idx, ts, seed) = (self.created, self.next_create_at, self.cfg.seed);
        self.created += 1;
        self.now = ts;
        let mut r = Rng::derive(seed, Stream::Ship, idx);
        let carrier = self.cfg.carriers[r.weighted(&self.carrier_cum)].0;
        let route = self.geo.draw_route(&self.net, &mut r);
        let tier = if !r.chance(self.cfg.sensor_share) {
            Tier::Basic
        } else if r.chance(self.cfg.premium_share) {
            Tier::Premium
        } else {
            Tier::Advanced
        };
        let attrs = Attrs {
            tier,
            fragile: r.chance(self.cfg.fragile_rate),
            declared_yuan: declared_value(tier, &mut r),
        };
        // Dropped in transit: the tag, if any, records it (whatever the tier: the truth is the
        // carrier's, per shipment).
        let dropped = r.chance(self.truth.damage(carrier));
        let ctx = ScanCtx {
            geo: self.geo,
            route,
            carrier,
            params: &self.scan_params,
        };
        let lane = self.truth.lane(carrier, route.origin(), route.dest());
        let mut scan = ScanGen::new(Rng::derive(seed, Stream::Scan, idx), ts, &ctx, lane);
        let summary: Summary = scan.summarize(&ctx);
        let (hold_from, hold_ms) = if summary.n_scans > 3 && r.chance(self.cfg.late_feed_rate) {
            (
                r.int(2, i64::from(summary.n_scans) - 1) as u8,
                r.minutes(180.0, 720.0),
            )
        } else {
            (NONE, 0)
        };
        // A customer calls in: the device turns out fragile, or its value was misdeclared.
        let update = r.chance(self.cfg.update_rate).then(|| {
            let at = summary.t_pick + (r.unit() * (summary.t_last - summary.t_pick) as f64) as i64;
            let attrs = if !attrs.fragile && r.chance(0.5) {
                Attrs {
                    fragile: true,
                    ..attrs
                }
            } else {
                Attrs {
                    declared_yuan: declared_value(tier, &mut r),
                    ..attrs
                }
            };
            (at, attrs)
        });
        let rate = if tier == Tier::Basic {
            0.0
        } else {
            self.readings_per_ms
        };
        let mut sensor = SensorGen::new(
            Rng::derive(seed, Stream::Sensor, idx),
            &summary,
            tier == Tier::Premium,
            rate,
            dropped,
        );
        let pending = scan
            .next(&ctx)
            .expect("every sequence starts with INFO_RECEIVED");
        let mut id = [0u8; 16];
        let id_len = tracking_number(carrier, idx, seed, &mut id);
        self.fill_shipment(&id[..id_len as usize], carrier, &route, idx, &attrs, ts);

        let has_bursts = sensor.plan();
        let mut ship = Ship {
            id,
            id_len,
            carrier,
            route,
            scan,
            pending,
            hold_from,
            hold_ms,
            release: 0,
            live: 1 + u8::from(has_bursts) + u8::from(update.is_some()),
        };
        let scan_at = Self::scan_arrival(&mut ship);
        let upload_at = sensor.upload_at;
        let tag = Tag {
            idx,
            update: update.map_or(attrs, |u| u.1),
            sensor,
        };
        let slot = match self.free.pop() {
            Some(s) => {
                self.ships[s as usize] = ship;
                self.tags[s as usize] = tag;
                s
            }
            None => {
                self.ships.push(ship);
                self.tags.push(tag);
                (self.ships.len() - 1) as u32
            }
        };
        self.schedule(scan_at, slot, SCAN);
        if has_bursts {
            self.schedule(upload_at, slot, SENSOR);
        }
        if let Some((at, _)) = update {
            self.schedule(at, slot, UPDATE);
        }
        if self.created < self.cfg.shipments {
            self.next_create_at = ts + self.creation_gap();
            self.schedule(self.next_create_at, 0, CREATE);
        }
    }

    /// Put a `shipment` event (the control plane's full view of the shipment) in the scratch.
    fn fill_shipment(
        &mut self,
        id: &[u8],
        carrier: Carrier,
        route: &Route,
        idx: u64,
        a: &Attrs,
        ts: i64,
    ) {
        self.scratch_carrier = carrier;
        let e = &mut self.scratch;
        reset(e, Kind::Shipment, id);
        e.ts = ts;
        e.carrier.push_str(carrier.code());
        push_region(&mut e.origin, self.geo, route.origin());
        push_region(&mut e.dest, self.geo, route.dest());
        e.tier = Some(a.tier);
        e.fragile = Some(a.fragile);
        let mut order = [0u8; 16];
        let n = order_id(idx, self.cfg.seed, &mut order);
        e.order.push_str(ascii(&order[..n as usize]));
        e.declared_value_fen = Some(i64::from(a.declared_yuan) * 100);
    }

    /// The control plane re-sends a shipment with changed attributes.
    pub(super) fn emit_update(&mut self, slot: u32) {
        let (ship, tag) = (&self.ships[slot as usize], &self.tags[slot as usize]);
        let (id, carrier, route, idx) = (ship.id, ship.carrier, ship.route, tag.idx);
        let attrs = tag.update;
        self.fill_shipment(
            &id[..ship.id_len as usize],
            carrier,
            &route,
            idx,
            &attrs,
            self.now,
        );
        self.retire(slot);
    }

    /// Time to the next shipment: exponential, thinner at night (China time).
    fn creation_gap(&mut self) -> i64 {
        let mean = self.cfg.span_ms as f64 / self.cfg.shipments.max(1) as f64;
        let h = local_hour(self.next_create_at);
        let w = if h < 8.0 {
            0.3
        } else if h < 22.0 {
            1.4
        } else {
            0.7
        };
        // 0.975 is the day's mean weight, so the window still holds all shipments on average.
        self.create_rng.exp(mean * 0.975 / w) as i64
    }

    /// Emit the slot's pending scan, then queue (or, if it is due now, flush) the next one.
    pub(super) fn emit_scan(
        &mut self,
        slot: u32,
        out: &mut EventBatch,
        raw_invalid: &mut Vec<Vec<u8>>,
    ) {
        let ship = &self.ships[slot as usize];
        let scan = ship.pending;
        self.scratch_carrier = ship.carrier;
        let e = &mut self.scratch;
        reset(e, Kind::Scan, &ship.id[..ship.id_len as usize]);
        e.ts = scan.ts;
        e.carrier.push_str(ship.carrier.code());
        e.status = Some(scan.status);
        push_region(&mut e.location, self.geo, scan.loc as usize);
        push_raw_status(&mut e.raw_status, &scan, ship.carrier, self.geo);
        if scan.status == Status::Delivered {
            if let Some(s) = &mut e.signer {
                fill_signer(s, &scan, ship.carrier);
            }
        }
        if scan.has_geo {
            let r = &self.geo.regions[scan.loc as usize];
            let jitter = |bits: u32| (f64::from(bits & 0xFFFF) / 65_535.0 - 0.5) * 0.6;
            e.lat = Some(((r.lat + jitter(scan.aux)) * 1e5).round() / 1e5);
            e.lon = Some(((r.lon + jitter(scan.aux >> 16)) * 1e5).round() / 1e5);
        }
        self.emit(out, raw_invalid);

        let ship = &mut self.ships[slot as usize];
        let ctx = ScanCtx {
            geo: self.geo,
            route: ship.route,
            carrier: ship.carrier,
            params: &self.scan_params,
        };
        match ship.scan.next(&ctx) {
            Some(next) => {
                ship.pending = next;
                let at = Self::scan_arrival(ship);
                if at <= self.now {
                    self.active = Active::Scan(slot);
                } else {
                    self.schedule(at, slot, SCAN);
                }
            }
            None => self.retire(slot),
        }
    }

    /// A gateway upload arrives: generate its readings into the burst buffer, which
    /// `next_batch` then emits in order, and plan the tag's next upload.
    pub(super) fn start_burst(&mut self, slot: u32) {
        let ship = &self.ships[slot as usize];
        let tag = &mut self.tags[slot as usize];
        self.scratch_carrier = ship.carrier;
        reset(
            &mut self.scratch,
            Kind::Sensor,
            &ship.id[..ship.id_len as usize],
        );
        let mut dev = [0u8; 16];
        let n = device_id(tag.idx, self.cfg.seed, &mut dev);
        self.scratch.device.push_str(ascii(&dev[..n as usize]));
        self.burst_len =
            tag.sensor
                .fill(&ship.route, self.geo, &self.sensor_params, &mut self.burst);
        self.burst_pos = 0;
        self.active = Active::Burst;
        if tag.sensor.plan() {
            let at = tag.sensor.upload_at;
            self.schedule(at, slot, SENSOR);
        } else {
            self.retire(slot);
        }
    }
}
