//! A carrier's scan sequence for one shipment, generated one scan at a time:
//! INFO_RECEIVED → PICKED_UP → IN_TRANSIT (arrive/depart per hub) → OUT_FOR_DELIVERY →
//! DELIVERED, with failed attempts, parcel-station pickups, exceptions, returns and lost parcels.
//! The generator is `Copy`, so the simulator can run a copy ahead to learn when transit ends.
//!
//! A shipment that will be delivered has its transit time drawn from its lane's true
//! distribution up front (`truth.rs`), and its scans are fitted to it: at pickup the generator
//! plans the last mile backward from the delivery time (`lastmile.rs`), runs a copy through the
//! line haul to learn how long its drawn gaps add up to, and from then on shrinks or stretches
//! those gaps by one factor so that the line haul ends where the last mile begins (stretched at
//! most 3×: the rest of the slack is a wait before the last mile). Lost and returned parcels keep
//! their gaps as drawn.

use super::carrier::Carrier;
use super::geo::{Geo, Route};
use super::lastmile::{self, Tail};
use super::rng::Rng;
use super::truth::LaneDist;
use crate::event::{SignerType, Status, NONE_U8};

pub(crate) const MINUTE: i64 = 60_000;
pub(crate) const HOUR: i64 = 60 * MINUTE;
pub(crate) const DAY: i64 = 24 * HOUR;
/// China Standard Time offset: carriers work, and the sun shines, on local time.
pub(crate) const CST: i64 = 8 * HOUR;

/// Hour of day (0.0–24.0) in China Standard Time.
#[inline]
pub(crate) fn local_hour(ts: i64) -> f64 {
    (ts + CST).rem_euclid(DAY) as f64 / HOUR as f64
}

/// Couriers pick up and deliver between 08:00 and 20:00: move `ts` into that window.
fn working_hours(ts: i64, rng: &mut Rng) -> i64 {
    let h = local_hour(ts);
    let morning = |hours_ahead: f64| ts + (hours_ahead * HOUR as f64) as i64;
    if h < 8.0 {
        morning(8.0 - h) + rng.minutes(0.0, 90.0)
    } else if h >= 20.0 {
        morning(32.0 - h) + rng.minutes(0.0, 90.0)
    } else {
        ts
    }
}

/// Rates that shape the sequences (from the simulator config and the truth).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ScanParams {
    /// Per carrier (`Carrier as usize`): the share of scan gaps that are long stalls.
    pub stall_rate: [f64; Carrier::ALL.len()],
    pub exception_rate: f64,
    pub lost_rate: f64,
}

/// Where a shipment goes and with whom: all a scan sequence depends on besides its randomness.
#[derive(Clone, Copy)]
pub(crate) struct ScanCtx<'a> {
    pub geo: &'a Geo,
    pub route: Route,
    pub carrier: Carrier,
    pub params: &'a ScanParams,
}

/// One generated scan. `variant` and `aux` pick the carrier's wording, the signer's name and ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Scan {
    pub ts: i64,
    pub status: Status,
    /// Region index where the scan happened.
    pub loc: u8,
    /// For a departure: the next hub (region index); else `NONE_U8`.
    pub next_loc: u8,
    /// `SignerType as u8` on DELIVERED (and `Locker` on AVAILABLE_FOR_PICKUP into a locker),
    /// else `NONE_U8`.
    pub signer: u8,
    pub variant: u8,
    /// Whether the scanner reported coordinates.
    pub has_geo: bool,
    pub aux: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Info,
    Pickup,
    Transit,
    /// The planned last mile (`lastmile.rs`).
    Tail,
    Return,
    Done,
}

const NONE: u8 = u8::MAX;
/// The most a drawn line haul is stretched to fit its lane's transit time (a short one, e.g.
/// within a province, would otherwise turn its 1–3 h gaps into 10-hour ones).
const MAX_STRETCH: f64 = 3.0;

#[derive(Clone, Copy, Debug)]
pub(crate) struct ScanGen {
    rng: Rng,
    /// Time of the last scan as drawn (the shipment's creation before the first), before the
    /// line haul is fitted: a scan is emitted at `pick + (ts - pick) * scale`.
    ts: i64,
    /// PICKED_UP time (0 before it).
    pick: i64,
    /// Before pickup, the transit time drawn from the lane; from pickup on, the DELIVERED time.
    /// 0: the parcel is lost or returned.
    deliver: i64,
    /// Fitted line-haul time per drawn line-haul time (1 when nothing is fitted).
    scale: f64,
    /// Extra delay for the next scan (after an exception).
    delay: i64,
    step: Step,
    /// In the line haul: even = arrival at node pos/2, odd = departure from it. In the last
    /// mile: the index of the next planned scan.
    pos: u8,
    count: u8,
    exception_at: u8,
    lost_after: u8,
    /// The exception (if any) sends the parcel back.
    returns: bool,
    loc: u8,
}

/// What a full run of a sequence looks like, learned by running a copy ahead.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Summary {
    pub n_scans: u8,
    /// PICKED_UP time: sensors start reading here.
    pub t_pick: i64,
    /// The last scan's time (terminal, or where a lost parcel's feed stopped).
    pub t_last: i64,
    pub terminal: bool,
}

impl ScanGen {
    /// The sequence of a shipment created at `created` on a lane whose transit time follows
    /// `lane`.
    pub fn new(mut rng: Rng, created: i64, ctx: &ScanCtx<'_>, lane: LaneDist) -> ScanGen {
        let transit = 2 * ctx.route.n - 1;
        let exception_at = if rng.chance(ctx.params.exception_rate) {
            rng.below(u64::from(transit)) as u8
        } else {
            NONE
        };
        let returns = exception_at != NONE && rng.chance(0.2);
        let lost_after = if rng.chance(ctx.params.lost_rate) {
            rng.int(2, i64::from(transit) + 2) as u8
        } else {
            NONE
        };
        let drawn = lane.draw(&mut rng);
        ScanGen {
            rng,
            ts: created,
            pick: 0,
            deliver: if lost_after == NONE && !returns {
                drawn
            } else {
                0
            },
            scale: 1.0,
            delay: 0,
            step: Step::Info,
            pos: 0,
            count: 0,
            exception_at,
            lost_after,
            returns,
            loc: ctx.route.nodes[0],
        }
    }

    pub fn count(&self) -> u8 {
        self.count
    }

    /// Run a copy to the end.
    pub fn summarize(mut self, ctx: &ScanCtx<'_>) -> Summary {
        let mut s = Summary::default();
        while let Some(scan) = self.next(ctx) {
            if scan.status == Status::PickedUp {
                s.t_pick = scan.ts;
            }
            s.n_scans += 1;
            s.t_last = scan.ts;
            s.terminal = scan.status.is_terminal();
        }
        s
    }

    /// A stall: the parcel sits in a yard or a truck waits for a full load.
    fn stall(&mut self, ctx: &ScanCtx<'_>) -> i64 {
        if !self.rng.chance(ctx.params.stall_rate[ctx.carrier as usize]) {
            return 0;
        }
        let remote = if ctx.route.remote {
            self.rng.uniform(1.5, 2.2)
        } else {
            1.0
        };
        (self.rng.uniform(6.0, 30.0) * remote * HOUR as f64) as i64
    }

    /// Line-haul time from region `a` to region `b`.
    fn travel(&mut self, ctx: &ScanCtx<'_>, a: usize, b: usize) -> i64 {
        if a == b {
            return self.rng.log_minutes(30.0, 180.0);
        }
        let km = ctx.geo.km(a, b);
        let base = if km > 800.0 && self.rng.chance(ctx.carrier.air_share()) {
            self.rng.minutes(180.0, 360.0)
        } else if km < 300.0 {
            self.rng.log_minutes(60.0, 180.0)
        } else {
            ((km / 65.0 + self.rng.uniform(0.5, 2.0)) * HOUR as f64) as i64
        };
        if ctx.geo.regions[a].remote || ctx.geo.regions[b].remote {
            (base as f64 * self.rng.uniform(1.3, 2.0)) as i64
        } else {
            base
        }
    }

    /// A scan at drawn time `ts` (at least a minute after the last), emitted at its fitted time.
    fn scan(&mut self, ts: i64, status: Status, loc: usize) -> Scan {
        self.ts = ts.max(self.ts + MINUTE);
        // Cast-based rounding (`f64::round` is a libm call); exact when `scale` is 1.
        let fitted = self.pick + ((self.ts - self.pick) as f64 * self.scale + 0.5) as i64;
        self.emit(fitted, status, loc)
    }

    fn emit(&mut self, ts: i64, status: Status, loc: usize) -> Scan {
        self.count += 1;
        self.loc = loc as u8;
        let bits = self.rng.next_u64();
        Scan {
            ts,
            status,
            loc: loc as u8,
            next_loc: NONE_U8,
            signer: NONE_U8,
            variant: (bits & 0xFF) as u8,
            has_geo: (bits >> 8) & 0xF < 11,
            aux: (bits >> 32) as u32,
        }
    }

    /// The last mile of a shipment to be delivered (after pickup).
    fn tail(&self, ctx: &ScanCtx<'_>) -> Tail {
        let stall = ctx.params.stall_rate[ctx.carrier as usize];
        lastmile::plan(self.pick, self.deliver, ctx.route.remote, stall)
    }

    /// At pickup: fix the delivery time, and the factor that fits the line haul between pickup
    /// and the last mile.
    fn fit(&mut self, ctx: &ScanCtx<'_>) {
        self.deliver += self.pick;
        let mut drawn = *self;
        drawn.deliver = 0;
        let mut end = drawn.ts;
        while drawn.step == Step::Transit && drawn.next(ctx).is_some() {
            end = drawn.ts;
        }
        let tail = self.tail(ctx);
        // A line haul has at least three scans a minute apart, so `end > pick`. Stretched no
        // more than MAX_STRETCH: the rest of the slack is spent waiting for the last mile.
        let fit = (tail.transit_end - self.pick) as f64 / (end - self.pick) as f64;
        self.scale = fit.min(MAX_STRETCH);
    }

    /// The next scan, or `None` when the sequence is over.
    pub fn next(&mut self, ctx: &ScanCtx<'_>) -> Option<Scan> {
        if self.count == self.lost_after {
            self.step = Step::Done;
        }
        let route = &ctx.route;
        let (origin, dest) = (route.origin(), route.dest());
        match self.step {
            Step::Info => {
                self.step = Step::Pickup;
                let ts = self.ts + self.rng.minutes(2.0, 90.0);
                Some(self.scan(ts, Status::InfoReceived, origin))
            }
            Step::Pickup => {
                self.step = Step::Transit;
                let ts = working_hours(self.ts + self.rng.minutes(20.0, 360.0), &mut self.rng);
                let scan = self.scan(ts, Status::PickedUp, origin);
                self.pick = scan.ts;
                if self.deliver > 0 {
                    self.fit(ctx);
                }
                Some(scan)
            }
            Step::Transit => {
                let pos = self.pos;
                let last = 2 * route.n - 2;
                if pos == self.exception_at {
                    self.exception_at = NONE;
                    let ts = self.ts + self.rng.log_minutes(30.0, 180.0);
                    if self.returns {
                        self.step = Step::Return;
                    } else {
                        self.delay = self.rng.minutes(240.0, 1800.0);
                    }
                    let loc = self.loc as usize;
                    return Some(self.scan(ts, Status::Exception, loc));
                }
                let node = route.node(pos as usize / 2);
                let gap = if pos == 0 {
                    self.rng.log_minutes(30.0, 180.0)
                } else if pos % 2 == 1 {
                    self.rng.log_minutes(10.0, 180.0)
                } else {
                    let prev = route.node(pos as usize / 2 - 1);
                    self.travel(ctx, prev, node)
                };
                let ts = self.ts + gap + self.stall(ctx) + std::mem::take(&mut self.delay);
                let mut scan = self.scan(ts, Status::InTransit, node);
                if pos % 2 == 1 {
                    scan.next_loc = route.node(pos as usize / 2 + 1) as u8;
                }
                self.pos += 1;
                if pos >= last {
                    // Lost and returned parcels never get this far.
                    self.step = if self.deliver > 0 {
                        Step::Tail
                    } else {
                        Step::Done
                    };
                    self.pos = 0;
                }
                Some(scan)
            }
            Step::Tail => {
                let tail = self.tail(ctx);
                let k = self.pos as usize;
                self.pos += 1;
                if k + 1 >= tail.len {
                    self.step = Step::Done;
                }
                let status = tail.status[k];
                let mut scan = self.emit(tail.ts[k], status, dest);
                self.ts = tail.ts[k];
                scan.signer = match status {
                    Status::Delivered => tail.signer as u8,
                    // Only the parcel-station wording reads this: a locker, or a staffed station.
                    Status::AvailableForPickup if tail.locker => SignerType::Locker as u8,
                    _ => NONE_U8,
                };
                Some(scan)
            }
            Step::Return => {
                self.step = Step::Done;
                let ts = self.ts + self.rng.minutes(24.0 * 60.0, 96.0 * 60.0);
                Some(self.scan(ts, Status::ReturnedToSender, origin))
            }
            Step::Done => None,
        }
    }
}
