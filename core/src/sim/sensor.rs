//! A parcel's sensor tag. It samples every 30–120 s from pickup to delivery into a small ring
//! buffer and uploads when it passes a gateway, so readings reach the feed in bursts of 16–64
//! consecutive readings of one shipment. How many bursts a tag gets is set by the event budget:
//! a few when events are scarce (the ring overwrote the rest), back to back when plentiful.

use super::geo::{Geo, Route};
use super::rng::Rng;
use super::scan::{local_hour, Summary, MINUTE};
use crate::event::{Metric, N_METRICS};
use std::f64::consts::TAU;

/// The largest burst: the tag's ring buffer.
pub(crate) const MAX_BURST: usize = 64;
const MIN_BURST: i64 = 16;
/// Mean burst length, for turning a reading budget into a number of bursts.
pub(crate) const MEAN_BURST: f64 = 40.0;

/// One reading; NaN = the tag does not report that value.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Reading {
    pub ts: i64,
    pub metrics: [f64; N_METRICS],
    pub lat: f64,
    pub lon: f64,
}

/// Rates that shape readings (from the simulator config).
#[derive(Clone, Copy, Debug)]
pub(crate) struct SensorParams {
    /// Multiplier on every anomaly rate below.
    pub anomaly_scale: f64,
    pub out_of_order_rate: f64,
}

// Anomaly rates at scale 1: per reading for knocks, per burst for episodes. Drops (above 3 g)
// are not drawn here but per shipment, at the carrier's true damage rate (`truth.rs`).
const KNOCK_RATE: f64 = 0.005;
const HEAT_RATE: f64 = 0.04;
const COLD_RATE: f64 = 0.01;
const HUMID_RATE: f64 = 0.015;
const TILT_RATE: f64 = 0.015;
const LIGHT_RATE: f64 = 0.006;
/// Tags that leave the depot with a nearly flat battery.
const LOW_BATTERY_RATE: f64 = 0.05;

#[derive(Clone, Copy, Debug)]
pub(crate) struct SensorGen {
    rng: Rng,
    t_pick: i64,
    t_end: i64,
    interval: i64,
    stride: i64,
    bursts: u32,
    burst: u32,
    next_start: i64,
    next_len: u8,
    /// When the planned burst reaches the feed.
    pub upload_at: i64,
    last_ts: i64,
    battery0: f64,
    drain_per_ms: f64,
    temp_base: f32,
    temp_amp: f32,
    humid_base: f32,
    /// Premium tags also report tilt and GPS.
    premium: bool,
    /// The burst that records the parcel's drop (`NO_DROP`: none); if the tag stops uploading
    /// before it, the last burst does.
    drop_burst: u32,
}

const NO_DROP: u32 = u32::MAX;

#[inline]
fn round_to(x: f64, scale: f64) -> f64 {
    // Cast-based rounding: `f64::round` is a libm call on baseline x86-64.
    let y = x * scale;
    (if y >= 0.0 { y + 0.5 } else { y - 0.5 }) as i64 as f64 / scale
}

/// An anomaly window inside one burst.
#[derive(Clone, Copy, Default)]
struct Episode {
    from: i64,
    to: i64,
    level: f64,
}

impl Episode {
    const NONE: Episode = Episode {
        from: i64::MAX,
        to: i64::MIN,
        level: 0.0,
    };

    fn draw(
        rng: &mut Rng,
        p: f64,
        start: i64,
        span: i64,
        dur: (f64, f64),
        level: (f64, f64),
    ) -> Self {
        if !rng.chance(p) {
            return Episode::NONE;
        }
        let from = start + (rng.unit() * 0.6 * span as f64) as i64;
        Episode {
            from,
            to: from + rng.minutes(dur.0, dur.1),
            level: rng.uniform(level.0, level.1),
        }
    }

    #[inline]
    fn active(&self, t: i64) -> bool {
        t >= self.from && t <= self.to
    }
}

impl SensorGen {
    /// `readings_per_ms`: the reading budget per millisecond of transit (0 = no readings).
    /// `dropped`: the parcel is dropped once, which the tag records as one reading above 3 g
    /// if it uploads at all.
    pub fn new(
        mut rng: Rng,
        s: &Summary,
        premium: bool,
        readings_per_ms: f64,
        dropped: bool,
    ) -> SensorGen {
        let t_pick = s.t_pick;
        let t_end = if s.terminal {
            s.t_last
        } else {
            s.t_last + rng.minutes(0.0, 720.0)
        };
        let span = (t_end - t_pick).max(1);
        let interval = rng.int(30_000, 120_000);
        let bursts = rng.stochastic_round(readings_per_ms * span as f64 / MEAN_BURST) as u32;
        let battery0 = if rng.chance(LOW_BATTERY_RATE) {
            rng.uniform(9.5, 13.0)
        } else {
            rng.uniform(45.0, 100.0)
        };
        let drain_per_ms = rng.uniform(0.4, 1.5) / 86_400_000.0;
        let temp_base = rng.uniform(12.0, 28.0) as f32;
        let temp_amp = rng.uniform(2.0, 6.0) as f32;
        let humid_base = rng.uniform(35.0, 70.0) as f32;
        let drop_burst = if dropped && bursts > 0 {
            rng.below(u64::from(bursts)) as u32
        } else {
            NO_DROP
        };
        SensorGen {
            rng,
            t_pick,
            t_end,
            interval,
            stride: span / i64::from(bursts.max(1)),
            bursts,
            burst: 0,
            next_start: 0,
            next_len: 0,
            upload_at: 0,
            last_ts: t_pick - interval,
            battery0,
            drain_per_ms,
            temp_base,
            temp_amp,
            humid_base,
            premium,
            drop_burst,
        }
    }

    /// Plan the next burst; `false` when the tag has nothing more to upload.
    pub fn plan(&mut self) -> bool {
        if self.burst >= self.bursts {
            return false;
        }
        let slot = self.t_pick + i64::from(self.burst) * self.stride;
        let slack = self.stride - (MEAN_BURST as i64) * self.interval;
        let jitter = if slack > 0 { self.rng.int(0, slack) } else { 0 };
        let start = (slot + jitter).max(self.last_ts + self.interval);
        if start >= self.t_end {
            return false;
        }
        self.next_start = start;
        self.next_len = self.rng.int(MIN_BURST, MAX_BURST as i64) as u8;
        let last = (start + i64::from(self.next_len - 1) * self.interval + 999).min(self.t_end);
        self.upload_at = (last + self.rng.int(3_000, 180_000)).max(self.upload_at + 1);
        self.burst += 1;
        true
    }

    /// Generate the planned burst into `buf`, in delivery order; returns its length.
    pub fn fill(
        &mut self,
        route: &Route,
        geo: &Geo,
        p: &SensorParams,
        buf: &mut [Reading; MAX_BURST],
    ) -> usize {
        let rng = &mut self.rng;
        let a = p.anomaly_scale;
        let start = self.next_start;
        let span = i64::from(self.next_len) * self.interval;
        let cold_p = COLD_RATE * if route.cold { 4.0 } else { 1.0 };
        let heat = Episode::draw(rng, HEAT_RATE * a, start, span, (10.0, 40.0), (36.0, 46.0));
        let cold = Episode::draw(rng, cold_p * a, start, span, (30.0, 90.0), (-12.0, -2.0));
        let humid = Episode::draw(rng, HUMID_RATE * a, start, span, (30.0, 90.0), (86.0, 97.0));
        let tilt = Episode::draw(rng, TILT_RATE * a, start, span, (5.0, 60.0), (65.0, 175.0));
        let light = Episode::draw(rng, LIGHT_RATE * a, start, span, (1.0, 6.0), (60.0, 900.0));
        let tilt_base = rng.uniform(0.0, 12.0);
        let (base, amp) = (f64::from(self.temp_base), f64::from(self.temp_amp));
        let humid_base = f64::from(self.humid_base);
        let span_all = (self.t_end - self.t_pick).max(1) as f64;
        let mut n = 0;
        while n < self.next_len as usize {
            let ts = start + n as i64 * self.interval + rng.int(0, 999);
            if ts >= self.t_end {
                break;
            }
            let mut m = [f64::NAN; N_METRICS];
            let u = rng.unit();
            // Below 3 g (rounded, at most 3.00): only a drop crosses the shock rules' 3 g.
            let shock = if rng.chance(KNOCK_RATE * a) {
                1.5 + 1.5 * u
            } else {
                0.1 + 1.4 * u * u
            };
            m[Metric::ShockG as usize] = round_to(shock, 100.0);
            let day = (TAU * (local_hour(ts) - 9.0) / 24.0).sin();
            let ambient = base + amp * day;
            let temp = if heat.active(ts) {
                let ramp = ((ts - heat.from) as f64 / (3 * MINUTE) as f64).min(1.0);
                ambient + (heat.level - ambient) * ramp + rng.noise(0.4)
            } else if ts > heat.to && ts < heat.to + 30 * MINUTE {
                let decay = (-((ts - heat.to) as f64) / (5 * MINUTE) as f64).exp();
                ambient + (heat.level - ambient) * decay + rng.noise(0.3)
            } else if cold.active(ts) {
                cold.level + rng.noise(0.4)
            } else {
                ambient + rng.noise(0.3)
            };
            m[Metric::TempC as usize] = round_to(temp, 10.0);
            let humidity = if humid.active(ts) {
                humid.level + rng.noise(1.0)
            } else {
                humid_base - 0.8 * amp * day + rng.noise(1.5)
            };
            m[Metric::HumidityPct as usize] = round_to(humidity.clamp(5.0, 100.0), 10.0);
            let lux = if light.active(ts) {
                light.level + rng.noise(20.0)
            } else {
                2.0 * rng.unit()
            };
            m[Metric::LightLux as usize] = round_to(lux.max(0.0), 10.0);
            let battery = self.battery0 - self.drain_per_ms * (ts - self.t_pick) as f64;
            m[Metric::BatteryPct as usize] = round_to(battery.max(0.0), 10.0);
            let (mut lat, mut lon) = (f64::NAN, f64::NAN);
            if self.premium {
                let tilt = if tilt.active(ts) {
                    tilt.level
                } else {
                    tilt_base
                };
                m[Metric::TiltDeg as usize] = round_to((tilt + rng.noise(1.5)).abs(), 10.0);
                // GPS has no fix indoors about one time in ten.
                if rng.chance(0.9) {
                    let progress = ((ts - self.t_pick) as f64 / span_all).clamp(0.0, 1.0);
                    let seg = progress * f64::from(route.n - 1);
                    let i = (seg as usize).min(route.n as usize - 2);
                    let f = seg - i as f64;
                    let (r0, r1) = (&geo.regions[route.node(i)], &geo.regions[route.node(i + 1)]);
                    lat = round_to(r0.lat + (r1.lat - r0.lat) * f + rng.noise(0.005), 100_000.0);
                    lon = round_to(r0.lon + (r1.lon - r0.lon) * f + rng.noise(0.005), 100_000.0);
                }
            }
            buf[n] = Reading {
                ts,
                metrics: m,
                lat,
                lon,
            };
            n += 1;
        }
        if n > 0 {
            self.last_ts = buf[n - 1].ts;
        }
        // The drop, in its burst or, if no burst follows this one, here. (A later burst starts
        // before `t_end` unless the bursts ran out or this one reached `t_end`: see `plan`.)
        let last = self.burst >= self.bursts || self.last_ts + self.interval >= self.t_end;
        if self.drop_burst != NO_DROP && n > 0 && (self.burst > self.drop_burst || last) {
            let j = self.rng.below(n as u64) as usize;
            let u = self.rng.unit();
            buf[j].metrics[Metric::ShockG as usize] = round_to(3.2 + 8.8 * u * u, 100.0);
            self.drop_burst = NO_DROP;
        }
        // At-least-once gateways reorder now and then: a reading arrives after its successor.
        if p.out_of_order_rate > 0.0 {
            let mut j = 0;
            while j + 1 < n {
                if self.rng.chance(p.out_of_order_rate) {
                    buf.swap(j, j + 1);
                    j += 1;
                }
                j += 1;
            }
        }
        n
    }
}
