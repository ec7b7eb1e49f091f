//! Per-shipment scores as pure functions of the lane's figures: ETA, delay risk, damage risk,
//! and the test for whether a new score differs enough from the last published one.

use super::lane::LaneEstimate;
use super::transit::Transit;
use serde::{Deserialize, Serialize};

/// Publish when the ETA moves by at least this (30 min) ...
pub const ETA_MATERIAL_MS: i64 = 30 * 60_000;
/// ... and by at least this share of the time still to go until the last published ETA: a
/// parcel due in three days moving by 30 min is noise, one due in two hours is not.
pub const ETA_MATERIAL_SHARE: i64 = 10;
/// Publish when a risk moves by at least this.
pub const RISK_MATERIAL: f64 = 0.05;
/// Probability that one shock episode damages a non-fragile device.
pub const DAMAGE_PER_SHOCK: f64 = 0.05;
/// A fragile device (screen, mainboard) counts each shock episode this many times.
pub const FRAGILE_SHOCK_WEIGHT: f64 = 3.0;

/// Expected delivery times (UTC ms): the median and a 90 % bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Eta {
    pub p50_ms: i64,
    pub p90_ms: i64,
}

/// `x.round() as i64` (half away from zero, saturating, NaN 0), bit for bit, without the call
/// into libm that `round` is on x86-64's baseline (scores round two or three times a rescore):
/// truncate, then step by the remainder, which is exact (every `f64` from 2^52 on is whole).
#[inline]
pub fn round_i64(x: f64) -> i64 {
    let t = x as i64;
    let d = x - t as f64;
    if d >= 0.5 {
        t.saturating_add(1)
    } else if d <= -0.5 {
        t.saturating_sub(1)
    } else {
        t
    }
}

/// `pickup + p50` and `pickup + p90` of the lane: the ETA at pickup.
#[inline]
pub fn eta_ms(pickup_ts: i64, estimate: &LaneEstimate) -> Eta {
    Eta {
        p50_ms: pickup_ts.saturating_add(round_i64(estimate.p50_ms)),
        p90_ms: pickup_ts.saturating_add(round_i64(estimate.p90_ms)),
    }
}

/// The ETA of a shipment still travelling at `now_ts`: the median and p90 of the transit time
/// given that it exceeds the elapsed time, so the ETA never lies in the past. `None` without
/// data; [`eta_ms`] is the same thing at pickup for the log-blended estimate.
pub fn eta_after<'a>(pickup_ts: i64, now_ts: i64, transit: impl Into<Transit<'a>>) -> Option<Eta> {
    let elapsed = now_ts.saturating_sub(pickup_ts).max(0) as f64;
    let [p50, p90] = transit.into().quantiles_after(elapsed, [0.5, 0.9])?;
    Some(Eta {
        p50_ms: pickup_ts.saturating_add(round_i64(p50)),
        p90_ms: pickup_ts.saturating_add(round_i64(p90)),
    })
}

/// `P(T > SLA | T > elapsed)`: the chance a shipment in transit for `elapsed_ms` misses its
/// SLA, read from the transit distribution (a sketch, or a table's smoothed
/// [`super::LaneTable::transit`]). Non-decreasing in `elapsed_ms`. Degenerate cases:
/// - `elapsed ≥ SLA` (or NaN `elapsed`): 1, it is late whatever the data;
/// - no data: `None`;
/// - `elapsed` past every observed transit time (`P(T > elapsed) = 0`): 1, the shipment has
///   outlived the lane's history, which is the strongest sign of delay there is.
#[inline]
pub fn delay_risk<'a>(
    elapsed_ms: f64,
    sla_ms: f64,
    transit: impl Into<Transit<'a>>,
) -> Option<f64> {
    // A NaN elapsed time or SLA cannot be judged on time: count it late.
    if elapsed_ms.is_nan() || sla_ms.is_nan() || elapsed_ms >= sla_ms {
        return Some(1.0);
    }
    let t = transit.into();
    if t.is_empty() {
        return None;
    }
    let (alive, late) = t.survival_pair(elapsed_ms.max(0.0), sla_ms);
    if alive <= 0.0 {
        return Some(1.0);
    }
    Some((late / alive).clamp(0.0, 1.0))
}

/// The chance a device has been damaged after `shock_episodes` episodes: each damages with
/// probability [`DAMAGE_PER_SHOCK`], independently, and a fragile device counts each
/// [`FRAGILE_SHOCK_WEIGHT`] times: `1 − (1 − p)^(k·f)`. One episode: 5 %, fragile 14 %; three:
/// 14 %, fragile 37 %. The constants are priors until claims data calibrates them.
#[inline]
pub fn damage_risk(shock_episodes: u32, fragile: bool) -> f64 {
    // Most shipments: no shock, and no transcendental functions either.
    if shock_episodes == 0 {
        return 0.0;
    }
    let weight = if fragile { FRAGILE_SHOCK_WEIGHT } else { 1.0 };
    -(f64::from(shock_episodes) * weight * (-DAMAGE_PER_SHOCK).ln_1p()).exp_m1()
}

/// A shipment's published score (`sg.score.<shipment>`); `None` fields are unknown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Score {
    pub eta: Option<Eta>,
    pub delay_risk: Option<f64>,
    pub damage_risk: f64,
}

/// Whether `new` (at `now_ts`) differs enough from the last published `old` to publish: the
/// ETA (p50) moved by [`ETA_MATERIAL_MS`] or 1/[`ETA_MATERIAL_SHARE`] of the time left until
/// the old ETA, whichever is more; a risk by [`RISK_MATERIAL`] or more; or a figure became
/// known or unknown.
pub fn materially_changed(old: &Score, new: &Score, now_ts: i64) -> bool {
    let eta = match (old.eta, new.eta) {
        (Some(a), Some(b)) => {
            a.p50_ms.abs_diff(b.p50_ms) >= eta_tolerance_ms(a.p50_ms, now_ts) as u64
        }
        (a, b) => a.is_some() != b.is_some(),
    };
    let delay = match (old.delay_risk, new.delay_risk) {
        (Some(a), Some(b)) => moved(a, b),
        (a, b) => a.is_some() != b.is_some(),
    };
    eta || delay || moved(old.damage_risk, new.damage_risk)
}

/// How far an ETA (p50) published as `p50_ms` must move at `now_ts` to be news: the larger of
/// [`ETA_MATERIAL_MS`] and 1/[`ETA_MATERIAL_SHARE`] of the time left until it. Non-increasing
/// in `now_ts`.
#[inline]
pub fn eta_tolerance_ms(p50_ms: i64, now_ts: i64) -> i64 {
    (p50_ms.saturating_sub(now_ts).max(0) / ETA_MATERIAL_SHARE).max(ETA_MATERIAL_MS)
}

#[inline]
fn moved(a: f64, b: f64) -> bool {
    // A hair below the threshold, so 0.05 apart counts despite rounding (0.15 − 0.10).
    (a - b).abs() >= RISK_MATERIAL - 1e-12
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scoring::sketch::QuantileSketch;

    const H: f64 = 3_600_000.0;

    fn lane() -> QuantileSketch {
        let mut s = QuantileSketch::default();
        (24..=96).for_each(|h| s.insert(f64::from(h) * H, 1.0));
        s
    }

    proptest::proptest! {
        #[test]
        fn round_i64_is_round(bits in proptest::num::u64::ANY, small in -1e7f64..1e7, k in -4i64..4) {
            // Any bit pattern (NaN, infinities, subnormals, past i64), ordinary values, and
            // the halves either side of a whole number.
            let half = k as f64 + 0.5;
            for x in [f64::from_bits(bits), small, half, half.next_up(), half.next_down()] {
                proptest::prop_assert_eq!(round_i64(x), x.round() as i64, "{}", x);
            }
        }
    }

    #[test]
    fn round_i64_edges() {
        for x in [
            0.49999999999999994,
            -0.49999999999999994,
            0.5,
            -0.5,
            2.5,
            -2.5,
            4503599627370495.5,
            9007199254740993.0,
            9.3e18,
            -9.3e18,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            f64::MAX,
            f64::MIN,
            -0.0,
        ] {
            assert_eq!(round_i64(x), x.round() as i64, "{x}");
        }
    }

    #[test]
    fn delay_risk_is_monotone_in_elapsed() {
        let s = lane();
        let sla = 72.0 * H;
        let risks: Vec<f64> = (0..=80 * 4)
            .map(|q| delay_risk(f64::from(q) * H / 4.0, sla, &s).unwrap())
            .collect();
        assert!(risks.windows(2).all(|w| w[0] <= w[1]), "{risks:?}");
        assert!((risks[0] - 24.0 / 73.0).abs() < 0.02, "{}", risks[0]);
        assert!(risks.iter().all(|r| (0.0..=1.0).contains(r)));
        assert_eq!(*risks.last().unwrap(), 1.0);
    }

    #[test]
    fn delay_risk_degenerate_cases() {
        let (s, empty) = (lane(), QuantileSketch::default());
        assert_eq!(delay_risk(80.0 * H, 72.0 * H, &empty), Some(1.0));
        assert_eq!(delay_risk(10.0 * H, 72.0 * H, &empty), None);
        assert_eq!(delay_risk(f64::NAN, 72.0 * H, &s), Some(1.0));
        // Outlived every observed transit, SLA still ahead.
        assert_eq!(delay_risk(100.0 * H, 200.0 * H, &s), Some(1.0));
        // Everything observed lands well before the SLA.
        assert_eq!(delay_risk(10.0 * H, 150.0 * H, &s), Some(0.0));
        assert_eq!(
            delay_risk(-5.0, 72.0 * H, &s),
            delay_risk(0.0, 72.0 * H, &s)
        );
    }

    #[test]
    fn eta_never_in_the_past() {
        let s = lane();
        let t0 = 1_700_000_000_000;
        let at_pickup = eta_after(t0, t0, &s).unwrap();
        assert!(((at_pickup.p50_ms - t0) as f64 / (60.0 * H) - 1.0).abs() < 0.02);
        let late = eta_after(t0, t0 + (90.0 * H) as i64, &s).unwrap();
        assert!(late.p50_ms >= t0 + (90.0 * H) as i64 && late.p90_ms >= late.p50_ms);
        let gone = eta_after(t0, t0 + (200.0 * H) as i64, &s).unwrap();
        assert_eq!(gone.p50_ms, t0 + (200.0 * H) as i64);
        assert_eq!(eta_after(t0, t0, &QuantileSketch::default()), None);
        let est = LaneEstimate {
            p50_ms: 36.0 * H,
            p90_ms: 60.0 * H,
            on_time_rate: 0.9,
            dwell_per_shipment: 0.0,
            shock_per_shipment: 0.0,
            shipments: 1.0,
            lane_weight: 0.1,
        };
        let e = eta_ms(t0, &est);
        assert_eq!(
            (e.p50_ms - t0, e.p90_ms - t0),
            (36 * 3_600_000, 60 * 3_600_000)
        );
    }

    #[test]
    fn damage_risk_weights_fragility() {
        assert_eq!(damage_risk(0, true), 0.0);
        assert!((damage_risk(1, false) - 0.05).abs() < 1e-12);
        assert!((damage_risk(1, true) - (1.0 - 0.95f64.powi(3))).abs() < 1e-12);
        let r: Vec<f64> = (0..50).map(|k| damage_risk(k, true)).collect();
        assert!(r.windows(2).all(|w| w[0] < w[1] || w[1] == 1.0) && r[49] <= 1.0);
        assert!(damage_risk(u32::MAX, true) <= 1.0);
    }

    #[test]
    fn material_changes() {
        fn eta(minutes: i64) -> Option<Eta> {
            let ms = minutes * 60_000;
            Some(Eta {
                p50_ms: ms,
                p90_ms: ms,
            })
        }
        let base = Score {
            eta: eta(0),
            delay_risk: Some(0.10),
            damage_risk: 0.0,
        };
        let with = |f: fn(&mut Score)| {
            let mut s = base;
            f(&mut s);
            materially_changed(&base, &s, 0)
        };
        assert!(!with(|s| s.eta = eta(29)));
        assert!(with(|s| s.eta = eta(-30)));
        assert!(!with(|s| s.delay_risk = Some(0.14)));
        assert!(with(|s| s.delay_risk = Some(0.15)));
        assert!(with(|s| s.delay_risk = None));
        assert!(with(|s| s.eta = None));
        assert!(with(|s| s.damage_risk = 0.05));
        assert!(!materially_changed(&Score::default(), &Score::default(), 0));
        // Two days ahead, the ETA must move by a tenth of that (4.8 h): due in 48 h at
        // minute 0, so `now` is 48 h before the ETA.
        let now = -48 * 60 * 60_000;
        let moved = |minutes| {
            let s = Score {
                eta: eta(minutes),
                ..base
            };
            materially_changed(&base, &s, now)
        };
        assert!(!moved(4 * 60));
        assert!(!moved(-287));
        assert!(moved(288));
        assert!(moved(-288));
        // Past the old ETA, the floor of 30 min.
        assert!(!materially_changed(
            &base,
            &Score {
                eta: eta(29),
                ..base
            },
            60 * 60_000
        ));
        assert!(materially_changed(
            &base,
            &Score {
                eta: eta(30),
                ..base
            },
            60 * 60_000
        ));
        let json = serde_json::to_string(&base).unwrap();
        assert_eq!(
            json,
            r#"{"eta":{"p50_ms":0,"p90_ms":0},"delay_risk":0.1,"damage_risk":0.0}"#
        );
    }
}
