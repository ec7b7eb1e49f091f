//! The last mile of a shipment that will be delivered, planned backward from its DELIVERED
//! time (which the lane's transit draw fixed, see `truth.rs`): delivery rounds in courier hours,
//! up to two failed attempts a round apart, a locker or parcel-station drop that the customer
//! collects later (always a locker when the delivery falls outside 08:00–20:00: only lockers
//! are open then), and before it all the wait after the line haul (remote regions' extra day, a
//! carrier's stalls). The plan is a pure function of the pickup and delivery times, so the scan
//! generator recomputes it at each step instead of storing it.

use super::rng::{Rng, Stream};
use super::scan::{local_hour, CST, DAY, HOUR, MINUTE};
use crate::event::{SignerType, Status};

/// OUT_FOR_DELIVERY + DELIVERY_FAILED twice, OUT_FOR_DELIVERY, AVAILABLE_FOR_PICKUP, DELIVERED.
pub(crate) const MAX_TAIL: usize = 7;
/// The last mile and the wait before it take at most this share of the transit time; a plan
/// that would take more drops its failed attempts and long waits, then is compressed.
const MAX_SHARE: f64 = 0.7;

#[derive(Clone, Copy, Debug)]
pub(crate) struct Tail {
    /// Scan times, oldest first; the last is the DELIVERED time.
    pub ts: [i64; MAX_TAIL],
    pub status: [Status; MAX_TAIL],
    pub len: usize,
    /// Signer of the DELIVERED scan.
    pub signer: SignerType,
    /// The parcel waits in a locker (not a staffed station) when AVAILABLE_FOR_PICKUP.
    pub locker: bool,
    /// When the line haul ends: the time of its last IN_TRANSIT scan.
    pub transit_end: i64,
}

/// Every random choice of a plan, drawn once so that a shorter fallback plan reuses them.
struct Draws {
    collect: bool,
    locker: bool,
    failures: usize,
    signer: SignerType,
    collect_gap: i64,
    /// OUT_FOR_DELIVERY → its outcome, per round.
    outcome: [i64; 3],
    /// DELIVERY_FAILED → the next round (2–6 h, or 12–20 h).
    redeliver: [i64; 2],
    /// How far before 20:00 a scan pulled into courier hours lands.
    snap: [i64; 3],
    /// Last IN_TRANSIT → first OUT_FOR_DELIVERY: handling, then remote regions' extra wait and
    /// a stall.
    wait: i64,
    extra_wait: i64,
}

/// `ms` since local midnight (China time) and that midnight.
#[inline]
fn day_of(ts: i64) -> (i64, i64) {
    let into = (ts + CST).rem_euclid(DAY);
    (into, ts - into)
}

/// Courier rounds run 08:00–20:00: a time outside them moves back to the round before, ending
/// `snap` before 20:00.
fn into_hours(ts: i64, snap: i64) -> i64 {
    let (into, midnight) = day_of(ts);
    if into >= 20 * HOUR {
        midnight + 20 * HOUR - MINUTE - snap
    } else if into < 8 * HOUR {
        midnight - 4 * HOUR - MINUTE - snap
    } else {
        ts
    }
}

/// The van leaves `gap` before the outcome at `ts` (in courier hours), but not before 07:00.
fn out_for_delivery(ts: i64, gap: i64) -> i64 {
    let (_, midnight) = day_of(ts);
    (ts - gap).max(midnight + 7 * HOUR).min(ts - MINUTE)
}

fn draw(r: &mut Rng, door_hours: bool, remote: bool, stall_rate: f64) -> Draws {
    let collect = r.chance(0.07) || !door_hours;
    let locker = r.chance(0.5) || !door_hours;
    let failures = if r.chance(0.07) {
        1 + usize::from(r.chance(0.07))
    } else {
        0
    };
    let u = r.unit();
    let signer = if u < 0.55 {
        SignerType::SelfSigned
    } else if u < 0.8 {
        SignerType::Proxy
    } else {
        SignerType::Locker
    };
    let collect_gap = r.minutes(60.0, 48.0 * 60.0);
    let outcome = [(); 3].map(|_| r.log_minutes(20.0, 180.0));
    // The afternoon round, or the next day's.
    let redeliver = [(); 2].map(|_| {
        if r.chance(0.5) {
            r.minutes(120.0, 360.0)
        } else {
            r.minutes(12.0 * 60.0, 20.0 * 60.0)
        }
    });
    let snap = [(); 3].map(|_| r.minutes(0.0, 90.0));
    let wait = r.log_minutes(30.0, 180.0);
    let remote_f = if remote { r.uniform(1.5, 2.2) } else { 1.0 };
    let mut extra_wait = if remote {
        r.minutes(0.0, 24.0 * 60.0)
    } else {
        0
    };
    if r.chance(stall_rate) {
        extra_wait += (r.uniform(6.0, 30.0) * remote_f * HOUR as f64) as i64;
    }
    Draws {
        collect,
        locker,
        failures,
        signer,
        collect_gap,
        outcome,
        redeliver,
        snap,
        wait,
        extra_wait,
    }
}

/// The plan with `failures` failed rounds, `collect_gap` before collection and `extra_wait`.
fn build(d: &Draws, deliver: i64, failures: usize, collect_gap: i64, extra_wait: i64) -> Tail {
    // Newest first: DELIVERED, then back in time.
    let mut rev = [(deliver, Status::Delivered); MAX_TAIL];
    let mut n = 1;
    let mut push = |ts: i64, st: Status| {
        rev[n] = (ts, st);
        n += 1;
    };
    let mut cur = deliver;
    if d.collect {
        cur = into_hours(cur - collect_gap, d.snap[0]);
        push(cur, Status::AvailableForPickup);
    }
    cur = out_for_delivery(cur, d.outcome[0]);
    push(cur, Status::OutForDelivery);
    for i in 0..failures {
        cur = into_hours(cur - d.redeliver[i], d.snap[1 + i]);
        push(cur, Status::DeliveryFailed);
        cur = out_for_delivery(cur, d.outcome[1 + i]);
        push(cur, Status::OutForDelivery);
    }
    let mut tail = Tail {
        ts: [0; MAX_TAIL],
        status: [Status::Delivered; MAX_TAIL],
        len: n,
        signer: match (d.collect, d.locker) {
            (false, _) => d.signer,
            (true, true) => SignerType::Locker,
            (true, false) => SignerType::SelfSigned,
        },
        locker: d.locker,
        transit_end: cur - d.wait - extra_wait,
    };
    for (i, &(ts, st)) in rev[..n].iter().rev().enumerate() {
        tail.ts[i] = ts;
        tail.status[i] = st;
    }
    tail
}

/// The last mile of a shipment picked up at `pick` and delivered at `deliver`.
pub(crate) fn plan(pick: i64, deliver: i64, remote: bool, stall_rate: f64) -> Tail {
    let mut r = Rng::derive(deliver as u64, Stream::Tail, pick as u64);
    let door_hours = (8.0..20.0).contains(&local_hour(deliver));
    let d = draw(&mut r, door_hours, remote, stall_rate);
    let budget = MAX_SHARE * (deliver - pick) as f64;
    let span = |t: &Tail| (deliver - t.transit_end) as f64;
    let mut tail = build(&d, deliver, d.failures, d.collect_gap, d.extra_wait);
    if span(&tail) > budget {
        tail = build(&d, deliver, d.failures, d.collect_gap.min(4 * HOUR), 0);
    }
    if span(&tail) > budget {
        tail = build(&d, deliver, 0, HOUR, 0);
    }
    let s = span(&tail);
    if s > budget {
        // A transit too short for the usual last mile (rare): keep its shape, shrunk to fit.
        let c = budget / s;
        let shrink = |ts: i64| deliver - ((deliver - ts) as f64 * c) as i64;
        for ts in &mut tail.ts[..tail.len] {
            *ts = shrink(*ts);
        }
        tail.transit_end = shrink(tail.transit_end);
    }
    tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::scan::local_hour;

    #[test]
    fn plans_end_at_the_delivery_in_courier_hours() {
        let t0 = 1_788_710_400_000; // Monday 2026-09-07 00:00 China time
        let mut r = Rng::derive(1, Stream::Tail, 0);
        let (mut collected, mut failed, mut shrunk) = (0, 0, 0);
        for i in 0..20_000 {
            let pick = t0 + r.minutes(8.0 * 60.0, 20.0 * 60.0);
            // Around the default feed's lanes: a median of 30 h, σ 0.4.
            let transit = (30.0 * (0.4 * r.normal()).exp() * HOUR as f64) as i64;
            let deliver = pick + transit;
            let tail = plan(pick, deliver, i % 5 == 0, 0.03);
            let ts = &tail.ts[..tail.len];
            assert_eq!(ts[tail.len - 1], deliver);
            assert_eq!(tail.status[tail.len - 1], Status::Delivered);
            assert!(tail.transit_end > pick, "{i}: transit squeezed out");
            assert!(tail.transit_end < ts[0]);
            assert!(ts.windows(2).all(|w| w[0] < w[1]), "{i}: {ts:?}");
            let fit = (deliver - tail.transit_end) as f64 <= MAX_SHARE * transit as f64 + 1.0;
            assert!(fit);
            let night = !(8.0..20.0).contains(&local_hour(deliver));
            if night {
                assert_eq!(tail.signer, SignerType::Locker);
            }
            let hours_ok = tail.status[..tail.len]
                .iter()
                .zip(ts)
                .filter(|(s, _)| **s != Status::Delivered)
                .all(|(_, &t)| (7.0..20.0).contains(&local_hour(t)));
            shrunk += usize::from(!hours_ok);
            collected += usize::from(tail.status[..tail.len].contains(&Status::AvailableForPickup));
            failed += usize::from(tail.status[..tail.len].contains(&Status::DeliveryFailed));
        }
        assert!(shrunk < 1000, "{shrunk} plans with rounds out of hours");
        assert!((5000..13_000).contains(&collected), "{collected} collected");
        assert!((300..2000).contains(&failed), "{failed} with failed rounds");
    }
}
