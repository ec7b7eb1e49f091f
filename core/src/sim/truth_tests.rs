//! The feed obeys its ground truth: transit times per lane, drops per carrier, lane shares.

use super::*;
use crate::event::{Kind, Metric, Status};
use crate::scoring::province_of;
use std::collections::HashMap;

/// Φ(x) (Abramowitz–Stegun 7.1.26, |error| < 1.5e-7: plenty for a KS test on 10⁵ points).
fn normal_cdf(x: f64) -> f64 {
    let z = x.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * z);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erfc = poly * (-z * z).exp();
    if x >= 0.0 {
        1.0 - erfc / 2.0
    } else {
        erfc / 2.0
    }
}

/// φ(z) at the 0.5 and 0.9 quantiles, for the standard error of a sample quantile.
const PDF_50: f64 = 0.398_942_280_401_432_7;
const PDF_90: f64 = 0.175_498_331_932_139_6;
const Z90: f64 = 1.281_551_565_544_600_4;

type LaneId = (String, u16, u16);

#[derive(Default)]
struct Ship {
    lane: Option<LaneId>,
    pick: Option<i64>,
    deliver: Option<i64>,
    readings: u32,
    /// Distinct timestamps of readings above 3 g (transport duplicates repeat a reading).
    drops: Vec<i64>,
}

/// Run `cfg` to the end, keeping per shipment what the truth speaks about.
fn trace(cfg: &SimConfig) -> (Simulator, HashMap<Vec<u8>, Ship>) {
    let mut sim = Simulator::new(cfg.clone());
    let (mut out, mut inv) = (EventBatch::default(), Vec::new());
    let mut ships: HashMap<Vec<u8>, Ship> = HashMap::new();
    let shock = Metric::ShockG as usize;
    while sim.next_batch(16_384, &mut out, &mut inv) > 0 {
        for i in 0..out.len() {
            let s = ships.entry(out.shipment.get(i).to_vec()).or_default();
            let ts = out.ts[i];
            match out.kind[i] {
                k if k == Kind::Shipment as u8 => {
                    let carrier = String::from_utf8(out.carrier.get(i).to_vec()).unwrap();
                    let o = province_of(out.origin.get(i)).unwrap();
                    let d = province_of(out.dest.get(i)).unwrap();
                    s.lane.get_or_insert((carrier, o, d));
                }
                k if k == Kind::Scan as u8 => {
                    if out.status[i] == Status::PickedUp as u8 {
                        s.pick.get_or_insert(ts);
                    } else if out.status[i] == Status::Delivered as u8 {
                        s.deliver.get_or_insert(ts);
                    }
                }
                _ => {
                    s.readings += 1;
                    if out.metrics[shock][i] > 3.0 && !s.drops.contains(&ts) {
                        s.drops.push(ts);
                    }
                }
            }
        }
        out.clear();
        inv.clear();
    }
    (sim, ships)
}

fn ms_quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

/// DELIVERED − PICKED_UP of every delivered shipment is a draw from its lane's distribution:
/// per lane, the empirical p50 and p90 agree with the truth within sampling error (and within
/// 5 % where the sample is large enough for that to be a fair test), the pooled probability
/// integral transform is uniform, and each lane gets its stated share of the shipments.
#[test]
fn delivered_transit_times_follow_the_lane_truth() {
    let cfg = SimConfig {
        seed: 11,
        shipments: 120_000,
        events: 0,
        span_ms: 10 * 86_400_000,
        sensor_share: 0.0,
        update_rate: 0.0,
        invalid_rate: 0.0,
        depots: vec![44, 31],
        customer_provinces: vec![44, 31, 11, 51, 33, 65],
        ..SimConfig::default()
    };
    let (sim, ships) = trace(&cfg);
    let truths = sim.lane_truths();
    assert!((truths.iter().map(|t| t.share).sum::<f64>() - 1.0).abs() < 1e-9);
    let truth: HashMap<LaneId, LaneTruth> = truths
        .iter()
        .map(|t| ((t.carrier.code().to_string(), t.origin, t.dest), *t))
        .collect();

    let mut by_lane: HashMap<LaneId, (usize, Vec<f64>)> = HashMap::new();
    let mut pit = Vec::new();
    for s in ships.values() {
        let lane = s
            .lane
            .clone()
            .expect("every shipment has its shipment event");
        let t = truth
            .get(&lane)
            .unwrap_or_else(|| panic!("{lane:?} not in lane_truths()"));
        let e = by_lane.entry(lane).or_default();
        e.0 += 1;
        if let (Some(p), Some(d)) = (s.pick, s.deliver) {
            let ms = (d - p) as f64;
            e.1.push(ms);
            pit.push(normal_cdf((ms / t.p50_ms).ln() / t.sigma));
        }
    }
    let n = ships.len() as f64;
    assert_eq!(n as u64, cfg.shipments);

    // Pooled: Kolmogorov–Smirnov against U(0, 1); 1.63/√N is the 1 % critical value.
    pit.sort_by(f64::total_cmp);
    let m = pit.len() as f64;
    let ks = pit
        .iter()
        .enumerate()
        .map(|(i, &u)| (u - i as f64 / m).abs().max(((i + 1) as f64 / m - u).abs()))
        .fold(0.0, f64::max);
    assert!(ks < 1.63 / m.sqrt(), "KS {ks} over {m} deliveries");
    assert!(m > 0.97 * n, "{m} of {n} delivered");

    let (mut checked, mut within_5) = (0, 0);
    for (lane, (shipped, times)) in &mut by_lane {
        let t = &truth[lane];
        // Shipments per lane: binomial around the stated share.
        let sd = (n * t.share * (1.0 - t.share)).sqrt();
        assert!(
            (*shipped as f64 - n * t.share).abs() <= 4.5 * sd + 1.0,
            "{lane:?}: {shipped} shipments, expected {:.0}",
            n * t.share
        );
        if times.len() < 400 {
            continue;
        }
        times.sort_by(f64::total_cmp);
        let k = times.len() as f64;
        for (q, want, pdf) in [(0.5, t.p50_ms, PDF_50), (0.9, t.p90_ms, PDF_90)] {
            let got = ms_quantile(times, q);
            // Standard error of ln(sample quantile) for a log-normal.
            let se = (q * (1.0 - q) / k).sqrt() / pdf * t.sigma;
            let err = (got / want).ln().abs();
            assert!(
                err <= 4.0 * se,
                "{lane:?} p{}: {got:.0} vs true {want:.0} ms ({:.1} %, {} deliveries)",
                q * 100.0,
                err * 100.0,
                times.len()
            );
            if 4.0 * se <= 0.05 {
                assert!(err <= 0.05);
                within_5 += 1;
            }
        }
        checked += 1;
    }
    assert!(checked >= 40, "only {checked} lanes with 400+ deliveries");
    assert!(within_5 >= 20, "only {within_5} quantiles held to 5 %");
    // p90 / p50 is e^{σ·z90} exactly.
    for t in &truths {
        assert!((t.p90_ms / t.p50_ms - (t.sigma * Z90).exp()).abs() < 1e-12);
    }
}

/// A shipment is dropped with its carrier's damage rate, and a tag that uploads at all
/// records the drop as exactly one reading above 3 g.
#[test]
fn drops_follow_the_carrier_damage_rate() {
    let cfg = SimConfig {
        seed: 5,
        shipments: 16_000,
        events: 900_000,
        sensor_share: 1.0,
        update_rate: 0.0,
        invalid_rate: 0.0,
        depots: vec![44],
        ..SimConfig::default()
    };
    let (sim, ships) = trace(&cfg);
    let mut per_carrier: HashMap<String, (usize, usize)> = HashMap::new();
    for s in ships.values().filter(|s| s.readings > 0) {
        assert!(s.drops.len() <= 1, "a parcel is dropped at most once");
        let e = per_carrier
            .entry(s.lane.as_ref().unwrap().0.clone())
            .or_default();
        e.0 += 1;
        e.1 += s.drops.len();
    }
    assert_eq!(per_carrier.len(), 8);
    for (carrier, (tagged, dropped)) in per_carrier {
        let p = sim.lane_truth(&carrier, 44, 44).unwrap().damage_rate;
        let n = tagged as f64;
        let got = dropped as f64 / n;
        let sd = (p * (1.0 - p) / n).sqrt();
        assert!(
            (got - p).abs() <= 4.0 * sd,
            "{carrier}: {dropped} of {tagged} dropped ({got:.3}), truth {p}"
        );
    }
    let tagged = ships.values().filter(|s| s.readings > 0).count();
    assert!(
        tagged as f64 > 0.8 * ships.len() as f64,
        "{tagged} tags uploaded"
    );
}

#[test]
fn lane_truths_are_consistent_and_no_carrier_is_best_everywhere() {
    let sim = Simulator::new(SimConfig::default());
    assert!(sim.lane_truth("UPS", 44, 11).is_none());
    assert!(
        sim.lane_truth("SF", 71, 11).is_none(),
        "Taiwan is not simulated"
    );
    let t = sim.lane_truth("SF", 44, 11).unwrap();
    assert_eq!((t.origin, t.dest), (44, 11));
    assert!(t.p50_ms > 24.0 * 3.6e6 && t.p90_ms > t.p50_ms && t.share > 0.0);
    // Xinjiang is remote: slower and wider than Guangdong → Beijing.
    let far = sim.lane_truth("SF", 44, 65).unwrap();
    assert!(far.p50_ms > 1.5 * t.p50_ms && far.sigma > t.sigma);

    let truths = sim.lane_truths();
    assert!(truths.iter().all(|t| t.share > 0.0));
    assert_eq!(truths.len() % 8, 0);
    let mut fastest: HashMap<(u16, u16), Vec<(f64, &str)>> = HashMap::new();
    for t in &truths {
        fastest
            .entry((t.origin, t.dest))
            .or_default()
            .push((t.p50_ms, t.carrier.code()));
    }
    let mut winners = std::collections::HashSet::new();
    for (pair, mut m) in fastest {
        m.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert!(
            m.windows(2)
                .all(|w| w[1].0 >= 1.04 * w[0].0 * (1.0 - 1e-12)),
            "{pair:?}: {m:?}"
        );
        winners.insert(m[0].1);
    }
    assert!(winners.len() >= 3, "fastest carriers: {winners:?}");

    // Deterministic per seed; another seed is another world.
    let again = Simulator::new(SimConfig::default());
    assert_eq!(again.lane_truths(), truths);
    let other = Simulator::new(SimConfig {
        seed: 43,
        ..SimConfig::default()
    });
    assert_ne!(other.lane_truth("SF", 44, 11), Some(t));
    // Damage scales with anomaly_scale, stalls with long_gap_rate.
    let calm = Simulator::new(SimConfig {
        anomaly_scale: 0.5,
        long_gap_rate: 0.0,
        ..SimConfig::default()
    });
    let c = calm.lane_truth("SF", 44, 11).unwrap();
    assert!((c.damage_rate - t.damage_rate / 2.0).abs() < 1e-12);
    assert_eq!(c.stall_rate, 0.0);
    assert_eq!(c.p50_ms, t.p50_ms);
}

#[test]
fn depots_bound_the_lanes() {
    let sim = Simulator::new(SimConfig {
        depots: vec![44, 31, 51],
        ..SimConfig::default()
    });
    let truths = sim.lane_truths();
    // 3 depots × 31 provinces × 2 directions, less the 3 + 6 pairs counted twice.
    assert_eq!(truths.len(), 8 * (3 * 31 * 2 - 3 - 6));
    assert!(truths
        .iter()
        .all(|t| [44, 31, 51].contains(&t.origin) || [44, 31, 51].contains(&t.dest)));
    for (field, cfg) in [
        (
            "depots",
            SimConfig {
                depots: vec![44, 99],
                ..SimConfig::default()
            },
        ),
        (
            "customer_provinces",
            SimConfig {
                customer_provinces: vec![81],
                ..SimConfig::default()
            },
        ),
    ] {
        let err = Simulator::try_new(cfg).err().expect("rejected");
        assert_eq!(err.kind(), crate::ErrorKind::Config);
        assert!(err.to_string().contains(field), "{err}");
    }
}
