use super::*;
use crate::scoring::decay::DAY_MS;
use crate::scoring::score::delay_risk;
use crate::scoring::testing::{TestRng, Z90};
use crate::scoring::ScoringConfig;

const H: i64 = 3_600_000;
const T0: i64 = 1_767_225_600_000; // 2026-01-01
const SLA: i64 = 72 * H;

fn table() -> LaneTable {
    LaneTable::new(ScoringConfig::default()).unwrap()
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs()
}

/// One event of a simulated feed: a pickup, or a delivery of a shipment picked up at `.2`.
type Ev = (i64, LaneKey, Option<i64>);

/// `per_day` shipments a day for `days` days from `start` on `key`, transit times log-normal
/// with median `median_h` hours and log-sd `sigma`: their pickups and deliveries.
fn shipments(
    rng: &mut TestRng,
    key: LaneKey,
    (start, days, per_day): (i64, i64, i64),
    (median_h, sigma): (f64, f64),
) -> Vec<Ev> {
    let mut out = Vec::new();
    for i in 0..days * per_day {
        let pickup = start + i * DAY_MS / per_day;
        let transit = rng.log_normal(median_h * H as f64, sigma) as i64;
        out.push((pickup, key, None));
        out.push((pickup + transit, key, Some(pickup)));
    }
    out
}

/// Feeds the events with `from <= ts < until` in time order, as a live stream delivers them:
/// a shipment still travelling at `until` is not delivered yet. (Fed out of order, every
/// delivery "now", long transits would arrive after short ones picked up later and be
/// over-weighted by the decay.)
fn play(t: &mut LaneTable, events: &mut [Ev], (from, until): (i64, i64)) {
    events.sort_by_key(|e| e.0);
    for &(ts, key, pickup) in events.iter().filter(|e| (from..until).contains(&e.0)) {
        match pickup {
            None => t.on_picked_up(key, ts),
            Some(p) => assert!(t.on_delivered(key, p, ts, SLA)),
        }
    }
}

#[test]
fn learned_lane_quantiles_within_5_percent() {
    let mut t = table();
    let mut rng = TestRng::new(11);
    let lanes = [
        (LaneKey::new(1, 31, 11), 30.0, 0.35),
        (LaneKey::new(1, 44, 65), 90.0, 0.5),
        (LaneKey::new(1, 31, 32), 14.0, 0.3),
        (LaneKey::new(2, 31, 11), 45.0, 0.6),
    ];
    let mut feed: Vec<Ev> = lanes
        .iter()
        .flat_map(|&(key, median, sigma)| shipments(&mut rng, key, (T0, 56, 150), (median, sigma)))
        .collect();
    play(&mut t, &mut feed, (T0, T0 + 56 * DAY_MS));
    for (key, median, sigma) in lanes {
        let e = t.estimate(key).unwrap();
        let p90 = median * (sigma * Z90).exp();
        assert!(
            close(e.p50_ms, median * H as f64, 0.05),
            "{key:?} p50 {e:?}"
        );
        assert!(close(e.p90_ms, p90 * H as f64, 0.05), "{key:?} p90 {e:?}");
        assert!(e.lane_weight > 0.99 && e.shipments > 1_000.0, "{e:?}");
        let on_time = crate::scoring::testing::normal_cdf((72.0 / median).ln() / sigma);
        assert!(
            (e.on_time_rate - on_time).abs() < 0.03,
            "{key:?} {e:?} vs {on_time}"
        );
    }
}

#[test]
fn an_old_regime_is_forgotten_after_8_half_lives() {
    let mut t = table();
    let mut rng = TestRng::new(3);
    let key = LaneKey::new(1, 31, 11);
    let half_life = t.config().half_life_ms;
    let switch = T0 + 60 * DAY_MS;
    let end = switch + 8 * half_life;
    let mut feed = shipments(&mut rng, key, (T0, 60, 100), (60.0, 0.4));
    feed.extend(shipments(
        &mut rng,
        key,
        (switch, (end - switch) / DAY_MS, 100),
        (24.0, 0.4),
    ));
    play(&mut t, &mut feed, (T0, switch));
    assert!(t.estimate(key).unwrap().p50_ms > 55.0 * H as f64);
    play(&mut t, &mut feed, (switch, end));
    let e = t.estimate(key).unwrap();
    assert!(close(e.p50_ms, 24.0 * H as f64, 0.05), "{e:?}");
    // Effective n: 100 a day over the mean age of a 14-day half-life, ~2,000.
    let expected_n = 100.0 * 14.0 / std::f64::consts::LN_2;
    assert!(close(e.shipments, expected_n, 0.05), "{e:?}");
}

#[test]
fn smoothing_toward_the_carrier() {
    let mut t = table();
    let mut rng = TestRng::new(5);
    let hub = LaneKey::new(1, 31, 11);
    let mut feed = shipments(&mut rng, hub, (T0, 10, 200), (30.0, 0.3));
    play(&mut t, &mut feed, (T0, T0 + 20 * DAY_MS));
    let carrier = t.estimate(LaneKey::carrier_wide(1)).unwrap();
    assert_eq!(carrier.lane_weight, 1.0);
    // A lane with no data: exactly the carrier's figures.
    let none = t.estimate(LaneKey::new(1, 65, 54)).unwrap();
    assert_eq!(
        (none.p50_ms, none.lane_weight, none.shipments),
        (carrier.p50_ms, 0.0, 0.0)
    );
    assert_eq!(none.on_time_rate, carrier.on_time_rate);
    // A slow remote lane, growing from 1 to 2,000 shipments at one instant (no decay).
    let remote = LaneKey::new(1, 31, 65);
    // After the hub's last delivery, so "now" is `ts` and n counts shipments exactly.
    let ts = T0 + 20 * DAY_MS;
    let mut last_gap = f64::INFINITY;
    for n in 1..=2_000 {
        t.on_delivered(remote, ts - 120 * H, ts, SLA);
        let e = t.estimate(remote).unwrap();
        // Distance to the lane's own (sketched) median: shrinks as n grows.
        let own = t.get(remote).unwrap().transit.quantile(0.5).unwrap();
        let gap = (e.p50_ms.ln() - own.ln()).abs();
        assert!(gap <= last_gap + 1e-12, "n {n}: {gap} > {last_gap}");
        last_gap = gap;
        assert!(close(e.lane_weight, n as f64 / (n as f64 + 10.0), 1e-9));
        if n == 1 {
            // One shipment gets weight 1/11: an eleventh of the way, in log space.
            let carrier = t.estimate(LaneKey::carrier_wide(1)).unwrap();
            let want = (carrier.p50_ms.ln() * 10.0 / 11.0 + own.ln() / 11.0).exp();
            assert!(close(e.p50_ms, want, 1e-6), "{e:?}");
            assert!(close(
                e.on_time_rate,
                carrier.on_time_rate * 10.0 / 11.0,
                1e-6
            ));
        }
    }
    let dense = t.estimate(remote).unwrap();
    assert!(close(dense.p50_ms, 120.0 * H as f64, 0.02), "{dense:?}");
    assert!(dense.on_time_rate < 0.01);
    // No carrier data at all: nothing to say.
    assert_eq!(t.estimate(LaneKey::new(9, 31, 11)), None);
    assert!(t.transit(LaneKey::new(9, 31, 11)).is_empty());
}

#[test]
fn alert_rates_per_shipment() {
    // A 10-year half-life: no decay to speak of, so the expected rates are plain ratios.
    let mut t = LaneTable::new(ScoringConfig {
        half_life_ms: crate::scoring::config::MAX_HALF_LIFE_MS,
        ..ScoringConfig::default()
    })
    .unwrap();
    let (busy, quiet) = (LaneKey::new(1, 31, 11), LaneKey::new(1, 31, 12));
    for i in 0..100 {
        let ts = T0 + i * H;
        t.on_picked_up(busy, ts);
        t.on_delivered(busy, ts, ts + 30 * H, SLA);
        if i % 4 == 0 {
            t.on_alert(busy, AlertKind::Shock, ts + H);
        }
        t.on_alert(busy, AlertKind::Dwell, ts + 2 * H);
    }
    let e = t.estimate(busy).unwrap();
    assert!(close(e.shock_per_shipment, 0.25, 0.05) && close(e.dwell_per_shipment, 1.0, 0.05));
    // Ten pickups and ten shocks: halfway (m = 10) between 1.0 and the carrier's rate.
    for i in 0..10 {
        t.on_picked_up(quiet, T0 + 100 * H + i);
        t.on_alert(quiet, AlertKind::Shock, T0 + 100 * H + i);
    }
    let c = t.estimate(LaneKey::carrier_wide(1)).unwrap();
    let q = t.estimate(quiet).unwrap();
    assert!(
        close(
            q.shock_per_shipment,
            (1.0 + c.shock_per_shipment) / 2.0,
            0.02
        ),
        "{q:?}"
    );
    assert_eq!((q.shipments, q.p50_ms), (0.0, c.p50_ms));
    assert!(close(c.shock_per_shipment, 35.0 / 110.0, 0.05), "{c:?}");
}

#[test]
fn bad_deliveries_are_refused() {
    let mut t = table();
    let key = LaneKey::new(1, 31, 11);
    assert!(!t.on_delivered(key, T0, T0, SLA));
    assert!(!t.on_delivered(key, T0, T0 - H, SLA));
    assert!(t.is_empty());
    assert!(t.on_delivered(key, i64::MIN, T0, SLA));
    let e = t.estimate(key).unwrap();
    assert!(e.p50_ms.is_finite() && e.on_time_rate == 0.0);
}

#[test]
fn partitions_merge_to_the_whole() {
    let mut whole = table();
    let mut parts = [table(), table()];
    let mut rng = TestRng::new(9);
    let keys = [
        LaneKey::new(1, 31, 11),
        LaneKey::new(1, 44, 11),
        LaneKey::new(2, 31, 11),
    ];
    for i in 0..6_000i64 {
        // Partition 1 starts two weeks late: its landmark differs by whole half-lives.
        let part = usize::from(i % 3 == 0 && i > 2_000);
        let key = keys[(i % 3) as usize];
        let pickup = T0 + i * 10 * 60_000;
        let delivered = pickup + rng.log_normal(36.0 * H as f64, 0.4) as i64;
        for t in [&mut whole, &mut parts[part]] {
            t.on_picked_up(key, pickup);
            t.on_delivered(key, pickup, delivered, SLA);
        }
        if i % 50 == 0 {
            for t in [&mut whole, &mut parts[part]] {
                t.on_alert(key, AlertKind::Dwell, delivered);
            }
        }
    }
    let [mut a, b] = parts;
    a.merge(&b).unwrap();
    assert_eq!(a.decay().now_ms(), whole.decay().now_ms());
    for key in keys
        .into_iter()
        .chain([LaneKey::carrier_wide(1), LaneKey::carrier_wide(2)])
    {
        let (m, w) = (a.estimate(key).unwrap(), whole.estimate(key).unwrap());
        for (x, y) in [
            (m.p50_ms, w.p50_ms),
            (m.p90_ms, w.p90_ms),
            (m.shipments, w.shipments),
            (m.on_time_rate, w.on_time_rate),
            (m.dwell_per_shipment, w.dwell_per_shipment),
        ] {
            assert!(close(x, y, 1e-9), "{key:?}: {m:?} vs {w:?}");
        }
    }
    let mut other = LaneTable::new(ScoringConfig {
        half_life_ms: DAY_MS,
        ..ScoringConfig::default()
    })
    .unwrap();
    assert_eq!(other.merge(&a).unwrap_err().kind(), ErrorKind::Config);
}

#[test]
fn renormalisation_is_invisible() {
    let config = ScoringConfig {
        half_life_ms: H,
        ..ScoringConfig::default()
    };
    let mut t = LaneTable::new(config).unwrap();
    let key = LaneKey::new(1, 31, 11);
    let mut rng = TestRng::new(4);
    // 200 hours at a 1-hour half-life: the landmark moves three times.
    for i in 0..2_000 {
        let pickup = T0 + i * H / 10;
        let delivered = pickup + rng.log_normal(20.0 * H as f64, 0.3) as i64;
        t.on_delivered(key, pickup, delivered, SLA);
        let stats = t.get(key).unwrap();
        assert!(stats.delivered.is_finite() && stats.delivered < 2f64.powi(72));
    }
    let landmark = t.decay().landmark_ms().unwrap();
    assert!(landmark > T0 + 150 * H, "landmark {landmark}");
    let e = t.estimate(key).unwrap();
    assert!(e.shipments > 1.0 && e.shipments < 20.0, "{e:?}");
    assert!(e.p50_ms.is_finite() && e.on_time_rate <= 1.0);
}

#[test]
fn restart_keeps_the_statistics() {
    let (mut live, mut rng) = (table(), TestRng::new(21));
    let key = LaneKey::new(3, 31, 11);
    let mut feed = shipments(&mut rng, key, (T0, 40, 50), (40.0, 0.4));
    let mid = T0 + 30 * DAY_MS;
    play(&mut live, &mut feed, (T0, mid));
    let mut bytes = Vec::new();
    live.encode(&mut bytes);
    let mut restored = LaneTable::decode(&bytes).unwrap();
    assert!(restored.lanes().eq(live.lanes()));
    for t in [&mut live, &mut restored] {
        play(t, &mut feed, (mid, T0 + 50 * DAY_MS));
    }
    assert_eq!(restored.estimate(key), live.estimate(key));
    assert!(restored.lanes().eq(live.lanes()));
}

#[test]
fn empty_table_says_nothing_and_no_nan() {
    let t = table();
    let key = LaneKey::new(1, 31, 11);
    assert_eq!(t.estimate(key), None);
    assert_eq!(t.estimate(LaneKey::carrier_wide(1)), None);
    assert!(t.transit(key).is_empty());
    assert_eq!(delay_risk(H as f64, SLA as f64, t.transit(key)), None);
    assert_eq!(t.decay().norm(), 1.0);
    // Pickups but no delivery yet: rates exist, transit does not.
    let mut t = t;
    t.on_picked_up(key, T0);
    t.on_alert(key, AlertKind::Dwell, T0 + H);
    assert_eq!(t.estimate(key), None);
    let dwell = t.get(LaneKey::carrier_wide(1)).unwrap().dwell_alerts;
    assert_eq!(dwell, t.decay().weight(T0 + H));
    let json = serde_json::to_string(&table_with_one().estimate(key).unwrap()).unwrap();
    assert!(
        json.starts_with(r#"{"p50_ms":"#) && !json.contains("NaN"),
        "{json}"
    );
}

fn table_with_one() -> LaneTable {
    let mut t = table();
    t.on_delivered(LaneKey::new(1, 31, 11), T0, T0 + 30 * H, SLA);
    t
}

#[test]
fn updates_to_existing_lanes_do_not_allocate() {
    let mut t = table_with_one();
    let key = LaneKey::new(1, 31, 11);
    let allocations = crate::scoring::testing::allocations_during(|| {
        for i in 0..10_000 {
            let ts = T0 + i * 60_000;
            t.on_picked_up(key, ts);
            t.on_delivered(key, ts - 30 * H, ts, SLA);
            t.on_alert(key, AlertKind::Shock, ts);
            let _ = t.estimate(key);
            let _ = delay_risk(10.0 * H as f64, SLA as f64, t.transit(key));
            let _ = crate::scoring::eta_after(ts - 10 * H, ts, t.transit(key));
        }
    });
    assert_eq!(allocations, 0);
}

#[test]
fn reconfigure_keeps_the_state_shaping_fields() {
    let mut t = table_with_one();
    let key = LaneKey::new(1, 31, 11);
    let before = t.estimate(key).unwrap();
    let mut c = t.config().clone();
    c.prior_shipments = 0.0;
    c.default_sla_ms = 24 * H;
    t.reconfigure(c.clone()).unwrap();
    assert_eq!(
        (t.sla_ms(1), t.estimate(key).unwrap().lane_weight),
        (24 * H, 1.0)
    );
    // The lane is the carrier's only one: the same median, however it is blended.
    assert!(close(t.estimate(key).unwrap().p50_ms, before.p50_ms, 1e-12));
    for bad in [
        ScoringConfig {
            alpha: 0.02,
            ..c.clone()
        },
        ScoringConfig {
            half_life_ms: DAY_MS,
            ..c.clone()
        },
    ] {
        assert_eq!(t.reconfigure(bad).unwrap_err().kind(), ErrorKind::Config);
    }
}
