//! Carrier scoring in the engine: what feeds the lane statistics, the scores, snapshots.

use super::*;
use crate::engine::partition_of;
use crate::engine::score::ScoreRecord;
use crate::scoring::testing::allocations_during;
use crate::scoring::{CodedLanes, LaneKey, ScoringConfig};
use crate::sim::{self, SimConfig};

const DAY: i64 = 24 * HOUR;
/// Shock (two rules, the fragile one lower), two dwell rules on the same stops.
const RULES: &str = r#"{"version":1,"lateness_ms":0,"rules":[
  {"id":"shock-3g","kind":"threshold","metric":"shock_g","op":"gt","value":3.0,"severity":"critical"},
  {"id":"fragile-2g","kind":"threshold","metric":"shock_g","op":"gt","value":2.0,"severity":"critical","where":{"fragile":true}},
  {"id":"heat","kind":"threshold","metric":"temp_c","op":"gt","value":35.0,"severity":"warning"},
  {"id":"dwell-2h","kind":"dwell","for_ms":7200000,"severity":"warning"},
  {"id":"dwell-6h","kind":"dwell","for_ms":21600000,"severity":"warning"}]}"#;

fn ship_event(
    ship: &str,
    ts: i64,
    carrier: &str,
    origin: &str,
    dest: &str,
    fragile: bool,
) -> Event {
    Event {
        origin: origin.into(),
        dest: dest.into(),
        ..shipment(ship, ts, Tier::Advanced, fragile, carrier)
    }
}

fn scan_by(ship: &str, ts: i64, status: Status, carrier: &str) -> Event {
    Event {
        carrier: carrier.into(),
        ..scan(ship, ts, status)
    }
}

/// A full journey on lane SF, Shanghai → Beijing: picked up at `t`, delivered `transit` later.
fn journey(ship: &str, t: i64, transit: i64) -> Vec<Event> {
    vec![
        ship_event(ship, t - HOUR, "SF", "CN-310115", "CN-110105", false),
        scan_by(ship, t - HOUR, Status::InfoReceived, "SF"),
        scan_by(ship, t, Status::PickedUp, "SF"),
        scan_by(ship, t + transit / 2, Status::InTransit, "SF"),
        scan_by(ship, t + transit, Status::Delivered, "SF"),
    ]
}

const SF_SH_BJ: LaneKey = LaneKey {
    carrier: 1,
    origin: 31,
    dest: 11,
};

fn scored(e: &mut Engine, events: &[Event]) -> (Vec<Alert>, Vec<ScoreRecord>) {
    let alerts = feed(e, events);
    let mut scores = Vec::new();
    e.take_scores(&mut scores);
    (alerts, scores)
}

#[test]
fn a_journey_teaches_its_lane() {
    let mut e = Engine::new(rules(RULES));
    scored(&mut e, &journey("S1", T0, 30 * HOUR));
    let lanes = e.lanes().unwrap();
    let est = lanes.estimate("SF", 31, 11).unwrap();
    assert!(
        (est.p50_ms / (30 * HOUR) as f64 - 1.0).abs() <= 0.01,
        "{est:?}"
    );
    assert!((est.shipments - 1.0).abs() < 1e-12);
    assert_eq!(est.on_time_rate, 1.0);
    let stats = e.lane_table().unwrap().get(SF_SH_BJ).unwrap();
    assert_eq!((stats.picked_up > 0.0, stats.delivered > 0.0), (true, true));
    // The lane and SF's aggregate.
    assert_eq!(e.stats().lanes, 2);
    // A late one: over the 72 h SLA.
    scored(&mut e, &journey("S2", T0 + DAY, 80 * HOUR));
    let est = e.lanes().unwrap().estimate("SF", 31, 11).unwrap();
    assert!(est.on_time_rate > 0.4 && est.on_time_rate < 0.6, "{est:?}");
}

#[test]
fn unknown_regions_and_missing_shipment_events_have_no_lane() {
    let mut e = Engine::new(rules(RULES));
    let mut events = journey("S1", T0, 30 * HOUR);
    events[0].origin = "Shanghai".into();
    let (_, scores) = scored(&mut e, &events);
    // No shipment event at all.
    scored(&mut e, &journey("S2", T0, 30 * HOUR)[1..]);
    assert!(e.lane_table().unwrap().is_empty());
    assert!(scores.is_empty());
}

#[test]
fn a_late_shipment_event_still_files_the_pickup_and_the_delivery() {
    let mut e = Engine::new(rules(RULES));
    let j = journey("S1", T0, 30 * HOUR);
    // Scans first; the shipment event comes between pickup and delivery.
    scored(&mut e, &[j[1].clone(), j[2].clone(), j[3].clone()]);
    assert!(e.lane_table().unwrap().is_empty());
    scored(&mut e, &[j[0].clone(), j[4].clone()]);
    let s = e.lane_table().unwrap().get(SF_SH_BJ).unwrap().clone();
    assert!(s.picked_up > 0.0 && s.delivered > 0.0, "{s:?}");
    // A shipment event after the delivery files nothing more.
    let before = e.lanes().unwrap().estimate("SF", 31, 11);
    scored(
        &mut e,
        &[ship_event(
            "S1",
            T0 + 40 * HOUR,
            "SF",
            "CN-31",
            "CN-11",
            true,
        )],
    );
    assert_eq!(e.lanes().unwrap().estimate("SF", 31, 11), before);
}

#[test]
fn out_of_order_and_repeated_scans_change_nothing() {
    let mut e = Engine::new(rules(RULES));
    let j = journey("S1", T0, 30 * HOUR);
    scored(&mut e, &j[..4]);
    // A DELIVERED older than the last scan is out of order: no transit filed.
    scored(&mut e, &[scan_by("S1", T0 + HOUR, Status::Delivered, "SF")]);
    assert_eq!(
        e.lane_table().unwrap().get(SF_SH_BJ).unwrap().delivered,
        0.0
    );
    // The delivery, twice (at-least-once transport), and a second pickup: filed once.
    let twice = [j[4].clone(), j[4].clone(), j[2].clone()];
    scored(&mut e, &twice);
    let s = e.lane_table().unwrap().get(SF_SH_BJ).unwrap();
    // One of each (weights grow with time: the pickup came 30 h before the delivery).
    assert_eq!(s.transit.total_weight(), s.delivered);
    assert!((s.picked_up / s.delivered - 0.5f64.powf(30.0 / 336.0)).abs() < 1e-12);
    let est = e.lanes().unwrap().estimate("SF", 31, 11).unwrap();
    assert_eq!(est.shipments, 1.0);
}

#[test]
fn alerts_count_once_per_shock_and_per_stop() {
    let mut e = Engine::new(rules(RULES));
    let mut ev = vec![
        ship_event("F", T0, "SF", "CN-31", "CN-11", true),
        scan_by("F", T0, Status::PickedUp, "SF"),
        // 4 g breaks both shock rules: one episode; 2.5 g keeps the fragile one firing, so
        // 5 g is still the same episode; after 1 g, 3.5 g is a second one.
        sensor("F", T0 + 10, Metric::ShockG, 4.0),
        sensor("F", T0 + 20, Metric::ShockG, 2.5),
        sensor("F", T0 + 30, Metric::ShockG, 5.0),
        sensor("F", T0 + 40, Metric::ShockG, 1.0),
        sensor("F", T0 + 50, Metric::ShockG, 3.5),
        sensor("F", T0 + 60, Metric::TempC, 40.0),
        // A 7 h stop breaks both dwell rules: one stalled stop.
        scan_by("F", T0 + 7 * HOUR, Status::InTransit, "SF"),
        // A 1 h stop breaks nothing.
        scan_by("F", T0 + 8 * HOUR, Status::InTransit, "SF"),
    ];
    let (alerts, _) = scored(&mut e, &ev);
    // Shock rules 3 + 2, heat 1, dwell 2.
    assert_eq!(
        alerts
            .iter()
            .filter(|a| a.state == AlertState::Firing)
            .count(),
        8
    );
    let s = e
        .lane_table()
        .unwrap()
        .get(LaneKey::new(1, 31, 11))
        .unwrap();
    // Weights grow with time (forward decay): the 7 h stop weighs 2^(7/336) of the pickup.
    let w = s.picked_up;
    assert!((s.shock_alerts / w - 2.0).abs() < 1e-6, "{s:?}");
    assert!((s.dwell_alerts / w - 1.0).abs() < 0.02, "{s:?}");
    let dwell = s.dwell_alerts;
    // A dwell the watermark fires and the next scan retracts (a late feed) does not count.
    ev = vec![scan_by("G", T0 + 20 * HOUR, Status::InTransit, "SF")];
    let (alerts, _) = scored(&mut e, &ev);
    assert_eq!(brief(&alerts).len(), 2);
    let (alerts, _) = scored(
        &mut e,
        &[scan_by("F", T0 + 9 * HOUR, Status::InTransit, "SF")],
    );
    assert_eq!(brief(&alerts)[0].1, "retracted");
    let s = e
        .lane_table()
        .unwrap()
        .get(LaneKey::new(1, 31, 11))
        .unwrap();
    assert_eq!(s.dwell_alerts, dwell);
}

#[test]
fn scores_go_out_when_they_change_materially() {
    let mut e = Engine::new(rules(RULES));
    // Teach the lane: 20 deliveries of 30 h.
    for k in 0..20 {
        scored(&mut e, &journey(&format!("L{k}"), T0 + k * HOUR, 30 * HOUR));
    }
    let t = T0 + 3 * DAY;
    let mut ev = vec![
        ship_event("X", t, "SF", "CN-31", "CN-11", true),
        scan_by("X", t, Status::PickedUp, "SF"),
    ];
    let (_, scores) = scored(&mut e, &ev);
    assert_eq!(scores.len(), 1, "{scores:?}");
    let first = &scores[0];
    assert_eq!((first.shipment.as_str(), first.ts), ("X", t));
    assert_eq!((&*first.carrier, first.origin, first.dest), ("SF", 31, 11));
    let eta = first.eta.unwrap();
    assert!(((eta.p50_ms - t) as f64 / (30 * HOUR) as f64 - 1.0).abs() < 0.02);
    assert_eq!((first.delay_risk, first.damage_risk), (Some(0.0), 0.0));
    // Ten minutes later: nothing material.
    ev = vec![scan_by("X", t + 10 * MIN, Status::InTransit, "SF")];
    assert!(scored(&mut e, &ev).1.is_empty());
    // A shock on a fragile device moves the damage risk.
    let (_, scores) = scored(&mut e, &[sensor("X", t + HOUR, Metric::ShockG, 6.0)]);
    assert_eq!(scores.len(), 1);
    assert!(
        (scores[0].damage_risk - 0.142_625).abs() < 1e-6,
        "{scores:?}"
    );
    assert_eq!(scores[0].shock_episodes, 1);
    // 40 h in transit, past every observed 30 h: late, and the ETA is "now".
    let late = t + 40 * HOUR;
    let (_, scores) = scored(&mut e, &[scan_by("X", late, Status::InTransit, "SF")]);
    assert_eq!(scores[0].eta.map(|e| e.p50_ms), Some(late));
    assert_eq!(scores[0].delay_risk, Some(1.0));
    // Delivered: a final record, then nothing more.
    let done = t + 41 * HOUR;
    let (_, scores) = scored(&mut e, &[scan_by("X", done, Status::Delivered, "SF")]);
    assert!(scores[0].delivered && scores[0].delay_risk == Some(0.0));
    assert_eq!(scores[0].eta.map(|e| e.p90_ms), Some(done));
    assert!(
        scored(&mut e, &[sensor("X", done + HOUR, Metric::ShockG, 9.0)])
            .1
            .is_empty()
    );
    let json: serde_json::Value = serde_json::from_str(&scores[0].to_json()).unwrap();
    assert_eq!(json["origin"], "CN-31");
}

#[test]
fn scoring_off_keeps_nothing() {
    let mut e = Engine::with_scoring(rules(RULES), None).unwrap();
    let (_, scores) = scored(&mut e, &journey("S1", T0, 30 * HOUR));
    assert!(scores.is_empty() && e.lanes().is_none() && !e.scoring());
    assert_eq!((e.stats().lanes, e.stats().lane_bytes), (0, 0));
    let bad = ScoringConfig {
        alpha: 0.9,
        ..ScoringConfig::default()
    };
    assert!(Engine::with_scoring(rules(RULES), Some(bad)).is_err());
    // Off survives a restore; on again starts from nothing.
    let mut bytes = Vec::new();
    e.snapshot(&mut bytes);
    let mut back = Engine::restore(&bytes).unwrap();
    assert!(!back.scoring());
    back.set_scoring(true);
    assert!(back.lane_table().unwrap().is_empty());
    // The per-shipment budget: 77 bytes for the rules, 26 for scoring (8 of them hints: its
    // lane's index, its last p50 and p90 buckets), padded to 104.
    assert_eq!(std::mem::size_of::<crate::engine::state::Ship>(), 104);
}

#[test]
fn scans_on_known_lanes_allocate_nothing() {
    let set = r#"{"version":1,"rules":[
      {"id":"shock-3g","kind":"threshold","metric":"shock_g","op":"gt","value":3.0,"severity":"critical"}]}"#;
    let mut e = Engine::new(rules(set));
    let mut warm = Vec::new();
    for k in 0..50 {
        warm.extend(journey(
            &format!("L{k}"),
            T0 + k * HOUR,
            (20 + k % 20) * HOUR,
        ));
    }
    let t = T0 + 3 * DAY;
    let ship = |k: i64| format!("H{k}");
    let first: Vec<Event> = (0..50)
        .flat_map(|k| {
            [
                ship_event(&ship(k), t, "SF", "CN-31", "CN-11", false),
                scan_by(&ship(k), t + k, Status::PickedUp, "SF"),
            ]
        })
        .collect();
    // Their next scans, late enough to move every score.
    let second: Vec<Event> = (0..50)
        .map(|k| scan_by(&ship(k), t + 30 * HOUR, Status::InTransit, "SF"))
        .collect();
    let second = batch(&second);
    let mut out = Vec::with_capacity(64);
    e.process_view(&batch(&warm).view(), &mut out);
    e.clear_scores();
    e.process_view(&batch(&first).view(), &mut out);
    assert_eq!(e.scores().len(), 50);
    e.clear_scores();
    out.clear();
    let n = allocations_during(|| e.process_view(&second.view(), &mut out));
    assert_eq!(n, 0, "allocations");
    assert_eq!(e.scores().len(), 50);
}

#[test]
fn restoring_keeps_the_statistics_exactly() {
    let cfg = SimConfig {
        shipments: 300,
        events: 8_000,
        span_ms: 2 * DAY,
        ..SimConfig::default()
    };
    let events = sim::generate(&cfg);
    let set = rules(sim::example_rules());
    let lanes = |e: &Engine| {
        let mut b = Vec::new();
        assert!(e.encode_lanes(&mut b));
        b
    };
    let (mut whole, mut out) = (Engine::new(set.clone()), Vec::new());
    let mut restarted = Engine::new(set);
    let mut got = Vec::new();
    for c in events.chunks(500) {
        out.extend(feed(&mut whole, c));
        got.extend(feed(&mut restarted, c));
        let mut bytes = Vec::new();
        restarted.snapshot(&mut bytes);
        restarted = Engine::restore(&bytes).unwrap();
    }
    assert_eq!(got, out);
    let table = whole.lane_table().unwrap();
    assert!(table.len() > 20, "{} lanes", table.len());
    assert!(table.lanes().any(|(_, s)| s.delivered > 0.0));
    assert_eq!(lanes(&restarted), lanes(&whole));
}

#[test]
fn a_version_1_snapshot_restores_with_empty_statistics() {
    // Written by the build before scoring (`sample()` in snapshot.rs).
    let mut e = Engine::restore(include_bytes!("snapshot_v1.bin")).unwrap();
    let s = e.stats();
    assert_eq!((s.shipments, s.rejected_total(), s.events_in), (7, 1, 14));
    assert!(e.scoring() && e.lane_table().unwrap().is_empty());
    scored(&mut e, &journey("S1", T0, 30 * HOUR));
    assert!(e.lanes().unwrap().estimate("SF", 31, 11).is_some());
    let mut bytes = Vec::new();
    e.snapshot(&mut bytes);
    assert_eq!(&bytes[8..12], &2u32.to_le_bytes());
}

#[test]
fn partitions_merge_into_the_single_engine() {
    let cfg = SimConfig {
        shipments: 400,
        events: 10_000,
        span_ms: 3 * DAY,
        ..SimConfig::default()
    };
    let events = sim::generate(&cfg);
    let set = rules(sim::example_rules());
    let mut whole = Engine::new(set.clone());
    feed(&mut whole, &events);
    let mut parts = [Engine::new(set.clone()), Engine::new(set)];
    for (p, engine) in parts.iter_mut().enumerate() {
        let mine: Vec<Event> = events
            .iter()
            .filter(|e| partition_of(e.shipment.as_bytes(), 2) == p as u32)
            .cloned()
            .collect();
        feed(engine, &mine);
    }
    let mut merged = parts[0].lanes().unwrap();
    merged.merge(&parts[1].lanes().unwrap()).unwrap();
    let want = whole.lanes().unwrap();
    let n = want.lanes().count();
    assert!(n > 20 && merged.lanes().count() == n);
    for (code, key) in want.lanes() {
        let (a, b) = (
            want.estimate(code, key.origin, key.dest).unwrap(),
            merged.estimate(code, key.origin, key.dest).unwrap(),
        );
        let close = |x: f64, y: f64| (x - y).abs() <= 1e-9 * x.abs().max(1.0);
        // Sums in another order may round a rank across a bucket edge: one bucket, 2 %.
        let bucket = |x: f64, y: f64| (x / y - 1.0).abs() <= 0.021;
        assert!(
            bucket(a.p50_ms, b.p50_ms)
                && bucket(a.p90_ms, b.p90_ms)
                && close(a.on_time_rate, b.on_time_rate)
                && close(a.dwell_per_shipment, b.dwell_per_shipment)
                && close(a.shock_per_shipment, b.shock_per_shipment)
                && close(a.shipments, b.shipments),
            "{code} {key:?}: {a:?} vs {b:?}"
        );
    }
    // Through the wire format too.
    let mut bytes = Vec::new();
    merged.encode(&mut bytes);
    assert_eq!(CodedLanes::decode(&bytes).unwrap().lanes().count(), n);
}
