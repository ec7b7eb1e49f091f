//! A carrier's scan sequence for one shipment, generated one scan at a time:
//! INFO_RECEIVED → PICKED_UP → IN_TRANSIT (arrive/depart per hub) → OUT_FOR_DELIVERY →
//! DELIVERED, with failed attempts, parcel-station pickups, exceptions, returns and lost parcels.
//! The generator is `Copy`, so the simulator can run a copy ahead to learn when transit ends.

use super::carrier::Carrier;
use super::geo::{Geo, Route};
use super::rng::Rng;
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

/// Rates that shape the sequences (from the simulator config).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ScanParams {
    pub long_gap_rate: f64,
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
    /// `SignerType as u8` on DELIVERED, else `NONE_U8`.
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
    OutForDelivery,
    Outcome,
    Redeliver,
    Collect,
    Return,
    Done,
}

const NONE: u8 = u8::MAX;

#[derive(Clone, Copy, Debug)]
pub(crate) struct ScanGen {
    rng: Rng,
    /// Time of the last scan (the shipment's creation before the first).
    ts: i64,
    step: Step,
    /// Position in the transit part: even = arrival at node pos/2, odd = departure from it.
    pos: u8,
    attempts: u8,
    count: u8,
    exception_at: u8,
    lost_after: u8,
    locker: bool,
    loc: u8,
    /// Extra delay for the next scan (after an exception).
    delay: i64,
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
    pub fn new(mut rng: Rng, created: i64, ctx: &ScanCtx<'_>) -> ScanGen {
        let transit = 2 * ctx.route.n - 1;
        let exception_at = if rng.chance(ctx.params.exception_rate) {
            rng.below(u64::from(transit)) as u8
        } else {
            NONE
        };
        let lost_after = if rng.chance(ctx.params.lost_rate) {
            rng.int(2, i64::from(transit) + 2) as u8
        } else {
            NONE
        };
        ScanGen {
            rng,
            ts: created,
            step: Step::Info,
            pos: 0,
            attempts: 0,
            count: 0,
            exception_at,
            lost_after,
            locker: false,
            loc: ctx.route.nodes[0],
            delay: 0,
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
        if !self.rng.chance(ctx.params.long_gap_rate) {
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

    fn scan(&mut self, ts: i64, status: Status, loc: usize) -> Scan {
        self.ts = ts.max(self.ts + MINUTE);
        self.count += 1;
        self.loc = loc as u8;
        let bits = self.rng.next_u64();
        Scan {
            ts: self.ts,
            status,
            loc: loc as u8,
            next_loc: NONE_U8,
            signer: NONE_U8,
            variant: (bits & 0xFF) as u8,
            has_geo: (bits >> 8) & 0xF < 11,
            aux: (bits >> 32) as u32,
        }
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
                Some(self.scan(ts, Status::PickedUp, origin))
            }
            Step::Transit => {
                let pos = self.pos;
                let last = 2 * route.n - 2;
                if pos == self.exception_at {
                    self.exception_at = NONE;
                    let ts = self.ts + self.rng.log_minutes(30.0, 180.0);
                    if self.rng.chance(0.2) {
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
                if pos >= last {
                    self.step = Step::OutForDelivery;
                }
                self.pos += 1;
                Some(scan)
            }
            Step::OutForDelivery | Step::Redeliver => {
                let gap = if self.step == Step::Redeliver {
                    self.rng.minutes(12.0 * 60.0, 20.0 * 60.0)
                } else {
                    let remote = if route.remote {
                        self.rng.minutes(0.0, 24.0 * 60.0)
                    } else {
                        0
                    };
                    self.rng.log_minutes(30.0, 180.0) + remote + self.stall(ctx)
                };
                self.step = Step::Outcome;
                let ts = working_hours(self.ts + gap, &mut self.rng);
                Some(self.scan(ts, Status::OutForDelivery, dest))
            }
            Step::Outcome => {
                let ts = self.ts + self.rng.log_minutes(20.0, 180.0);
                let r = self.rng.unit();
                if r < 0.07 {
                    self.attempts += 1;
                    self.step = if self.attempts >= 3 {
                        Step::Return
                    } else {
                        Step::Redeliver
                    };
                    Some(self.scan(ts, Status::DeliveryFailed, dest))
                } else if r < 0.14 {
                    self.locker = self.rng.chance(0.5);
                    self.step = Step::Collect;
                    Some(self.scan(ts, Status::AvailableForPickup, dest))
                } else {
                    self.step = Step::Done;
                    let r = self.rng.unit();
                    let signer = if r < 0.55 {
                        SignerType::SelfSigned
                    } else if r < 0.8 {
                        SignerType::Proxy
                    } else {
                        SignerType::Locker
                    };
                    let mut scan = self.scan(ts, Status::Delivered, dest);
                    scan.signer = signer as u8;
                    Some(scan)
                }
            }
            Step::Collect => {
                self.step = Step::Done;
                let mut ts = self.ts + self.rng.minutes(60.0, 48.0 * 60.0);
                if !self.locker {
                    ts = working_hours(ts, &mut self.rng);
                }
                let mut scan = self.scan(ts, Status::Delivered, dest);
                scan.signer = if self.locker {
                    SignerType::Locker
                } else {
                    SignerType::SelfSigned
                } as u8;
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
