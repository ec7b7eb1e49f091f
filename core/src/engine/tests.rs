//! One test per clause of spec §2–§3, plus property tests of order, duplicates and batching.

use super::alert::{Alert, AlertState, Evidence};
use super::Engine;
use crate::event::{Event, EventBatch, Kind, Metric, Status, Tier, N_METRICS};
use crate::rules::RuleSet;
use proptest::prelude::*;

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const T0: i64 = 1_795_000_000_000;

fn sensor(ship: &str, ts: i64, m: Metric, v: f64) -> Event {
    let mut metrics = [None; N_METRICS];
    metrics[m as usize] = Some(v);
    Event {
        kind: Some(Kind::Sensor),
        shipment: ship.into(),
        ts,
        metrics,
        ..Event::default()
    }
}

fn scan(ship: &str, ts: i64, status: Status) -> Event {
    Event {
        kind: Some(Kind::Scan),
        shipment: ship.into(),
        ts,
        status: Some(status),
        carrier: "SF".into(),
        location: format!("CN-{}", 110000 + ts % 7),
        ..Event::default()
    }
}

fn shipment(ship: &str, ts: i64, tier: Tier, fragile: bool, carrier: &str) -> Event {
    Event {
        kind: Some(Kind::Shipment),
        shipment: ship.into(),
        ts,
        carrier: carrier.into(),
        tier: Some(tier),
        fragile: Some(fragile),
        ..Event::default()
    }
}

fn rules(body: &str) -> RuleSet {
    RuleSet::parse(body.as_bytes()).unwrap_or_else(|e| panic!("{e}"))
}

fn batch(events: &[Event]) -> EventBatch {
    let mut b = EventBatch::default();
    for e in events {
        b.push(e);
    }
    b
}

fn feed(engine: &mut Engine, events: &[Event]) -> Vec<Alert> {
    let mut out = Vec::new();
    engine.process_view(&batch(events).view(), &mut out);
    out
}

fn run(set: &str, events: &[Event]) -> Vec<Alert> {
    feed(&mut Engine::new(rules(set)), events)
}

/// (id, state, ts) of each alert, the part the spec pins down.
fn brief(alerts: &[Alert]) -> Vec<(String, &'static str, i64)> {
    alerts
        .iter()
        .map(|a| (a.id.clone(), a.state.as_str(), a.ts))
        .collect()
}

fn b(id: &str, state: &'static str, ts: i64) -> (String, &'static str, i64) {
    (id.to_string(), state, ts)
}

const SHOCK: &str = r#"{"version":1,"rules":[
  {"id":"shock-3g","kind":"threshold","metric":"shock_g","op":"gt","value":3.0,"severity":"critical"}]}"#;
const HEAT: &str = r#"{"version":1,"rules":[
  {"id":"heat-35","kind":"threshold","metric":"temp_c","op":"gt","value":35.0,
   "for_ms":600000,"clear":33.0,"severity":"warning"}]}"#;
const DWELL: &str = r#"{"version":1,"lateness_ms":0,"rules":[
  {"id":"dwell-2h","kind":"dwell","for_ms":7200000,"severity":"warning"}]}"#;

// ---- §3.1 threshold -------------------------------------------------------------------------

#[test]
fn instant_threshold_fires_once_and_resolves_with_peak() {
    let ev = [
        sensor("S1", T0, Metric::ShockG, 0.5),
        sensor("S1", T0 + 1000, Metric::ShockG, 4.5),
        sensor("S1", T0 + 2000, Metric::ShockG, 7.25),
        sensor("S1", T0 + 3000, Metric::ShockG, 3.0),
    ];
    let out = run(SHOCK, &ev);
    let id = format!("shock-3g:S1:{}", T0 + 1000);
    assert_eq!(
        brief(&out),
        vec![b(&id, "firing", T0 + 1000), b(&id, "resolved", T0 + 3000)]
    );
    let fire = &out[0];
    assert_eq!(
        (fire.value, fire.threshold, fire.metric),
        (Some(4.5), Some(3.0), Some(Metric::ShockG))
    );
    assert_eq!(fire.started_ts, T0 + 1000);
    assert_eq!(fire.severity.as_str(), "critical");
    let Evidence::Readings(ev) = &fire.evidence else {
        panic!("no evidence")
    };
    assert_eq!(
        ev.iter().map(|r| (r.ts, r.value)).collect::<Vec<_>>(),
        vec![(T0, 0.5), (T0 + 1000, 4.5)]
    );
    let res = &out[1];
    assert_eq!(
        (res.peak, res.duration_ms, res.value),
        (Some(7.25), Some(2000), Some(3.0))
    );
}

#[test]
fn evidence_keeps_the_last_n_readings() {
    let set = r#"{"rules":[{"id":"s","kind":"threshold","metric":"shock_g","op":"gt","value":3,
                   "severity":"info","evidence":4}]}"#;
    let mut ev: Vec<Event> = (0..10)
        .map(|i| sensor("S", T0 + i, Metric::ShockG, 0.1 * i as f64))
        .collect();
    ev.push(sensor("S", T0 + 10, Metric::ShockG, 3.47));
    let out = run(set, &ev);
    let Evidence::Readings(r) = &out[0].evidence else {
        panic!()
    };
    let got: Vec<(i64, f64)> = r.iter().map(|r| (r.ts, r.value)).collect();
    assert_eq!(
        got,
        vec![(T0 + 7, 0.7), (T0 + 8, 0.8), (T0 + 9, 0.9), (T0 + 10, 3.47)]
    );
}

#[test]
fn for_ms_boundary_fires_at_exactly_for_ms() {
    let start = T0;
    let ev = [
        sensor("S", start, Metric::TempC, 36.0),
        sensor("S", start + 600_000 - 1, Metric::TempC, 37.0),
        sensor("S", start + 600_000, Metric::TempC, 36.5),
        sensor("S", start + 700_000, Metric::TempC, 38.0),
    ];
    let out = run(HEAT, &ev);
    let id = format!("heat-35:S:{start}");
    assert_eq!(brief(&out), vec![b(&id, "firing", start + 600_000)]);
    assert_eq!(out[0].value, Some(36.5));
    assert_eq!(out[0].started_ts, start);
}

#[test]
fn pending_returns_to_idle_without_alert() {
    let ev = [
        sensor("S", T0, Metric::TempC, 36.0),
        sensor("S", T0 + 300_000, Metric::TempC, 35.0), // not > 35: back to idle
        sensor("S", T0 + 700_000, Metric::TempC, 36.0), // a new episode starts here
        sensor("S", T0 + 1_200_000, Metric::TempC, 36.0),
        sensor("S", T0 + 1_300_000, Metric::TempC, 36.0),
    ];
    let out = run(HEAT, &ev);
    let id = format!("heat-35:S:{}", T0 + 700_000);
    assert_eq!(brief(&out), vec![b(&id, "firing", T0 + 1_300_000)]);
}

#[test]
fn hysteresis_clear_band() {
    let ev = [
        sensor("S", T0, Metric::TempC, 36.0),
        sensor("S", T0 + 600_000, Metric::TempC, 40.0), // fires
        sensor("S", T0 + 700_000, Metric::TempC, 34.0), // below value, above clear: still firing
        sensor("S", T0 + 800_000, Metric::TempC, 33.5),
        sensor("S", T0 + 900_000, Metric::TempC, 33.0), // not > 33: cleared
        sensor("S", T0 + 950_000, Metric::TempC, 34.0), // idle, not a breach
    ];
    let out = run(HEAT, &ev);
    let id = format!("heat-35:S:{T0}");
    assert_eq!(
        brief(&out),
        vec![
            b(&id, "firing", T0 + 600_000),
            b(&id, "resolved", T0 + 900_000)
        ]
    );
    assert_eq!(out[1].peak, Some(40.0));
    assert_eq!(out[1].duration_ms, Some(900_000));
}

#[test]
fn lower_bound_rules_track_the_minimum() {
    let set = r#"{"rules":[{"id":"cold","kind":"threshold","metric":"temp_c","op":"lt","value":0,
                   "clear":2,"severity":"warning"}]}"#;
    let ev = [
        sensor("S", T0, Metric::TempC, -1.0),
        sensor("S", T0 + 1, Metric::TempC, -4.0),
        sensor("S", T0 + 2, Metric::TempC, 1.0),
        sensor("S", T0 + 3, Metric::TempC, 2.0),
    ];
    let out = run(set, &ev);
    assert_eq!(
        brief(&out).iter().map(|x| x.1).collect::<Vec<_>>(),
        vec!["firing", "resolved"]
    );
    assert_eq!((out[1].ts, out[1].peak), (T0 + 3, Some(-4.0)));
}

#[test]
fn ge_and_le_include_the_limit() {
    let set = r#"{"rules":[
        {"id":"ge","kind":"threshold","metric":"humidity_pct","op":"ge","value":85,"severity":"info"},
        {"id":"le","kind":"threshold","metric":"battery_pct","op":"le","value":10,"severity":"info"}]}"#;
    let mut r = sensor("S", T0, Metric::HumidityPct, 85.0);
    r.metrics[Metric::BatteryPct as usize] = Some(10.0);
    let out = run(set, &[r]);
    assert_eq!(
        out.iter().map(|a| &*a.rule).collect::<Vec<_>>(),
        vec!["ge", "le"],
        "set order"
    );
}

#[test]
fn readings_without_the_metric_leave_state_unchanged() {
    let ev = [
        sensor("S", T0, Metric::TempC, 36.0),
        sensor("S", T0 + 300_000, Metric::ShockG, 0.2), // no temp_c: still pending
        sensor("S", T0 + 600_000, Metric::TempC, 36.0),
    ];
    let out = run(HEAT, &ev);
    assert_eq!(
        brief(&out),
        vec![b(&format!("heat-35:S:{T0}"), "firing", T0 + 600_000)]
    );
}

#[test]
fn where_filters_need_known_matching_attributes() {
    let set = r#"{"rules":[
      {"id":"fragile-2g","kind":"threshold","metric":"shock_g","op":"gt","value":2.0,
       "severity":"critical","where":{"fragile":true}},
      {"id":"premium-sf","kind":"threshold","metric":"shock_g","op":"gt","value":2.0,
       "severity":"info","where":{"tier":["premium"],"carrier":["SF"]}}]}"#;
    let ev = [
        sensor("U", T0, Metric::ShockG, 2.5), // attributes unknown: no rule applies
        shipment("F", T0, Tier::Basic, true, "JD"),
        sensor("F", T0 + 1, Metric::ShockG, 2.5),
        shipment("N", T0, Tier::Premium, false, "SF"),
        sensor("N", T0 + 1, Metric::ShockG, 2.5),
        shipment("X", T0, Tier::Premium, false, "JD"),
        sensor("X", T0 + 1, Metric::ShockG, 2.5),
    ];
    let out = run(set, &ev);
    assert_eq!(
        brief(&out),
        vec![
            b(&format!("fragile-2g:F:{}", T0 + 1), "firing", T0 + 1),
            b(&format!("premium-sf:N:{}", T0 + 1), "firing", T0 + 1),
        ]
    );
    assert_eq!(out[0].carrier.as_deref(), Some("JD"));
}

#[test]
fn latest_shipment_event_replaces_attributes() {
    let set = r#"{"rules":[{"id":"f","kind":"threshold","metric":"shock_g","op":"gt","value":2.0,
                   "severity":"info","where":{"fragile":true}}]}"#;
    let ev = [
        shipment("S", T0, Tier::Basic, true, "SF"),
        shipment("S", T0 + 1, Tier::Basic, false, "SF"),
        sensor("S", T0 + 2, Metric::ShockG, 9.0),
    ];
    assert!(run(set, &ev).is_empty());
}

// ---- §2 ordering, duplicates ------------------------------------------------------------------

#[test]
fn out_of_order_events_are_counted_and_change_nothing() {
    let mut e = Engine::new(rules(SHOCK));
    let out = feed(
        &mut e,
        &[
            sensor("S", T0 + 10, Metric::ShockG, 0.1),
            sensor("S", T0 + 5, Metric::ShockG, 9.0), // earlier than the last accepted: ignored
            sensor("S", T0 + 10, Metric::ShockG, 0.2), // equal ts is accepted
        ],
    );
    assert!(out.is_empty());
    let st = e.stats();
    assert_eq!((st.accepted, st.out_of_order, st.events_in), (2, 1, 3));
}

#[test]
fn out_of_order_is_per_shipment_and_kind() {
    let mut e = Engine::new(rules(SHOCK));
    feed(
        &mut e,
        &[
            sensor("A", T0 + 10, Metric::ShockG, 0.1),
            sensor("B", T0, Metric::ShockG, 0.1), // other shipment: in order
            scan("A", T0, Status::PickedUp),      // other kind: in order
        ],
    );
    assert_eq!(e.stats().out_of_order, 0);
}

#[test]
fn exact_duplicates_add_no_alerts_or_evidence() {
    let r1 = sensor("S", T0, Metric::ShockG, 1.0);
    let r2 = sensor("S", T0 + 1, Metric::ShockG, 5.0);
    let once = run(SHOCK, &[r1.clone(), r2.clone()]);
    let twice = run(SHOCK, &[r1.clone(), r1, r2.clone(), r2]);
    assert_eq!(once, twice);
}

// ---- §3.2 dwell -------------------------------------------------------------------------------

#[test]
fn dwell_gap_fires_at_deadline_and_resolves_at_next_scan() {
    let ev = [
        scan("S", T0, Status::InTransit),
        scan("S", T0 + 3 * HOUR, Status::InTransit),
    ];
    let out = run(DWELL, &ev);
    let id = format!("dwell-2h:S:{T0}");
    assert_eq!(
        brief(&out),
        vec![
            b(&id, "firing", T0 + 2 * HOUR),
            b(&id, "resolved", T0 + 3 * HOUR)
        ]
    );
    let Evidence::Scan(s) = &out[0].evidence else {
        panic!("no scan evidence")
    };
    assert_eq!((s.status, s.ts), (Status::InTransit, T0));
    assert_eq!(&*s.location, format!("CN-{}", 110000 + T0 % 7));
    assert_eq!(out[1].duration_ms, Some(3 * HOUR));
    assert_eq!(out[0].carrier.as_deref(), Some("SF"));
}

#[test]
fn dwell_next_scan_at_exactly_the_deadline_is_no_alert() {
    let ev = [
        scan("S", T0, Status::InTransit),
        scan("S", T0 + 2 * HOUR, Status::InTransit),
    ];
    assert!(run(DWELL, &ev).is_empty());
}

#[test]
fn dwell_trailing_fires_on_the_watermark() {
    let ev = [
        scan("S", T0, Status::InTransit),
        scan("OTHER", T0 + 2 * HOUR - 1, Status::PickedUp),
        scan("OTHER", T0 + 2 * HOUR, Status::InTransit), // W reaches the deadline
    ];
    let out = run(DWELL, &ev);
    assert_eq!(
        brief(&out),
        vec![b(&format!("dwell-2h:S:{T0}"), "firing", T0 + 2 * HOUR)]
    );
}

#[test]
fn dwell_fired_on_watermark_then_resolved_by_later_scan() {
    let ev = [
        scan("S", T0, Status::InTransit),
        scan("O", T0 + 5 * HOUR, Status::InTransit),
        scan("S", T0 + 4 * HOUR, Status::Delivered),
    ];
    let out = run(DWELL, &ev);
    let id = format!("dwell-2h:S:{T0}");
    assert_eq!(
        brief(&out),
        vec![
            b(&id, "firing", T0 + 2 * HOUR),
            b(&id, "resolved", T0 + 4 * HOUR)
        ]
    );
}

#[test]
fn dwell_retracted_when_a_late_feed_shows_the_parcel_moved() {
    let set = r#"{"lateness_ms":60000,"rules":[{"id":"d","kind":"dwell","for_ms":7200000,"severity":"warning"}]}"#;
    let ev = [
        scan("S", T0, Status::PickedUp),
        scan("O", T0 + 2 * HOUR + MIN, Status::InTransit), // W = deadline exactly: fires
        scan("S", T0 + HOUR, Status::InTransit), // late feed: it moved before the deadline
        scan("S", T0 + 2 * HOUR, Status::OutForDelivery),
    ];
    let out = run(set, &ev);
    let id = format!("d:S:{T0}");
    assert_eq!(
        brief(&out),
        vec![
            b(&id, "firing", T0 + 2 * HOUR),
            b(&id, "retracted", T0 + HOUR)
        ]
    );
    assert_eq!(out[1].duration_ms, Some(HOUR));
}

#[test]
fn dwell_lateness_holds_the_watermark_back() {
    let set = r#"{"lateness_ms":600000,"rules":[{"id":"d","kind":"dwell","for_ms":7200000,"severity":"info"}]}"#;
    let ev = [
        scan("S", T0, Status::InTransit),
        scan("O", T0 + 2 * HOUR + 5 * MIN, Status::InTransit),
    ];
    let mut e = Engine::new(rules(set));
    assert!(
        feed(&mut e, &ev).is_empty(),
        "W = max - 10 min is before the deadline"
    );
    assert_eq!(e.stats().watermark, T0 + 2 * HOUR - 5 * MIN);
    let out = feed(
        &mut e,
        &[scan("O", T0 + 2 * HOUR + 10 * MIN, Status::InTransit)],
    );
    assert_eq!(
        brief(&out),
        vec![b(&format!("d:S:{T0}"), "firing", T0 + 2 * HOUR)]
    );
}

#[test]
fn dwell_watermark_never_goes_back() {
    let mut e = Engine::new(rules(DWELL));
    feed(&mut e, &[scan("A", T0 + HOUR, Status::InTransit)]);
    let mut out = Vec::new();
    e.advance_watermark(T0, &mut out);
    assert_eq!(e.stats().watermark, T0 + HOUR);
    feed(&mut e, &[scan("B", T0, Status::InTransit)]);
    assert_eq!(e.stats().watermark, T0 + HOUR);
}

#[test]
fn dwell_wall_clock_advance_fires_for_a_silent_carrier() {
    let mut e = Engine::new(rules(DWELL));
    feed(&mut e, &[scan("S", T0, Status::OutForDelivery)]);
    let mut out = Vec::new();
    e.advance_watermark(T0 + 2 * HOUR - 1, &mut out);
    assert!(out.is_empty());
    e.advance_watermark(T0 + 3 * HOUR, &mut out);
    assert_eq!(
        brief(&out),
        vec![b(&format!("dwell-2h:S:{T0}"), "firing", T0 + 2 * HOUR)]
    );
    e.advance_watermark(T0 + 9 * HOUR, &mut out);
    assert_eq!(out.len(), 1, "fires once");
}

#[test]
fn dwell_late_scan_already_past_its_deadline_fires_at_once() {
    let ev = [
        scan("O", T0 + 10 * HOUR, Status::InTransit),
        scan("S", T0, Status::InTransit),
    ];
    let out = run(DWELL, &ev);
    assert_eq!(
        brief(&out),
        vec![b(&format!("dwell-2h:S:{T0}"), "firing", T0 + 2 * HOUR)]
    );
}

#[test]
fn dwell_terminal_and_unlisted_statuses_do_not_arm() {
    let ev = [
        scan("S", T0, Status::Delivered),
        scan("I", T0, Status::InfoReceived),
        scan("O", T0 + 10 * HOUR, Status::Delivered),
    ];
    assert!(run(DWELL, &ev).is_empty());
    let only_exc = r#"{"rules":[{"id":"x","kind":"dwell","for_ms":1000,"severity":"info","statuses":["EXCEPTION"]}]}"#;
    let ev = [
        scan("S", T0, Status::InTransit),
        scan("S", T0 + 5000, Status::Exception),
        scan("S", T0 + 10_000, Status::InTransit),
    ];
    assert_eq!(
        brief(&run(only_exc, &ev))
            .iter()
            .map(|x| x.0.clone())
            .collect::<Vec<_>>(),
        vec![format!("x:S:{}", T0 + 5000), format!("x:S:{}", T0 + 5000)]
    );
}

#[test]
fn dwell_equal_ts_scan_is_ignored() {
    let ev = [
        scan("S", T0, Status::InTransit),
        scan("S", T0, Status::Delivered), // same ts: neither resolves nor restarts
        scan("S", T0 + 3 * HOUR, Status::Delivered),
    ];
    let out = run(DWELL, &ev);
    let id = format!("dwell-2h:S:{T0}");
    assert_eq!(
        brief(&out),
        vec![
            b(&id, "firing", T0 + 2 * HOUR),
            b(&id, "resolved", T0 + 3 * HOUR)
        ]
    );
    let Evidence::Scan(s) = &out[0].evidence else {
        panic!()
    };
    assert_eq!(s.status, Status::InTransit);
}

#[test]
fn dwell_where_is_checked_when_the_scan_arms() {
    let set = r#"{"rules":[{"id":"d","kind":"dwell","for_ms":1000,"severity":"info","where":{"tier":["premium"]}}]}"#;
    let ev = [
        scan("S", T0, Status::InTransit), // attributes unknown: not armed
        shipment("S", T0, Tier::Premium, false, "SF"),
        scan("S", T0 + 5000, Status::InTransit), // armed now
        scan("S", T0 + 10_000, Status::InTransit),
    ];
    let out = run(set, &ev);
    let id = format!("d:S:{}", T0 + 5000);
    assert_eq!(
        brief(&out),
        vec![b(&id, "firing", T0 + 6000), b(&id, "resolved", T0 + 10_000)]
    );
}

#[test]
fn simultaneous_deadlines_fire_in_first_seen_order() {
    let ev = [
        scan("B", T0, Status::InTransit),
        scan("A", T0, Status::InTransit),
        scan("C", T0 + 3 * HOUR, Status::InTransit),
    ];
    let out = run(DWELL, &ev);
    let ships: Vec<&str> = out.iter().map(|a| a.shipment.as_str()).collect();
    assert_eq!(ships, vec!["B", "A"]);
}

// ---- §3.3 hot reload --------------------------------------------------------------------------

#[test]
fn reload_keeps_unchanged_rules_and_resets_changed_ones() {
    let two = r#"{"version":1,"rules":[
      {"id":"heat-35","kind":"threshold","metric":"temp_c","op":"gt","value":35.0,"for_ms":600000,"clear":33.0,"severity":"warning"},
      {"id":"heat-30","kind":"threshold","metric":"temp_c","op":"gt","value":30.0,"for_ms":600000,"severity":"info"},
      {"id":"dwell-2h","kind":"dwell","for_ms":7200000,"severity":"warning"}]}"#;
    let changed = r#"{"version":2,"rules":[
      {"id":"dwell-2h","kind":"dwell","for_ms":7200000,"severity":"warning"},
      {"id":"heat-30","kind":"threshold","metric":"temp_c","op":"gt","value":31.0,"for_ms":600000,"severity":"info"},
      {"id":"heat-35","kind":"threshold","metric":"temp_c","op":"gt","value":35.0,"for_ms":600000,"clear":33.0,"severity":"warning"}]}"#;
    let mut e = Engine::new(rules(two));
    feed(
        &mut e,
        &[
            sensor("S", T0, Metric::TempC, 36.0),
            scan("S", T0, Status::InTransit),
        ],
    );
    e.replace_rules(rules(changed));
    assert_eq!(e.stats().rules_version, 2);
    let out = feed(
        &mut e,
        &[
            sensor("S", T0 + 600_000, Metric::TempC, 36.0),
            scan("S", T0 + 3 * HOUR, Status::Delivered),
        ],
    );
    assert_eq!(
        brief(&out),
        vec![
            // unchanged: its pending episode from before the reload fires
            b(&format!("heat-35:S:{T0}"), "firing", T0 + 600_000),
            // heat-30 changed: it started idle, so its episode starts at the new reading
            // dwell-2h unchanged: its timer survived
            b(&format!("dwell-2h:S:{T0}"), "firing", T0 + 2 * HOUR),
            b(&format!("dwell-2h:S:{T0}"), "resolved", T0 + 3 * HOUR),
        ]
    );
}

#[test]
fn reload_removed_rules_emit_nothing_more() {
    let mut e = Engine::new(rules(SHOCK));
    feed(&mut e, &[sensor("S", T0, Metric::ShockG, 5.0)]);
    e.replace_rules(rules(r#"{"rules":[]}"#));
    assert!(feed(&mut e, &[sensor("S", T0 + 1, Metric::ShockG, 0.0)]).is_empty());
    e.replace_rules(rules(SHOCK));
    let out = feed(&mut e, &[sensor("S", T0 + 2, Metric::ShockG, 5.0)]);
    assert_eq!(
        brief(&out),
        vec![b(&format!("shock-3g:S:{}", T0 + 2), "firing", T0 + 2)]
    );
}

#[test]
fn reload_keeps_fired_dwell_alerts_open() {
    let mut e = Engine::new(rules(DWELL));
    let mut out = Vec::new();
    feed(&mut e, &[scan("S", T0, Status::InTransit)]);
    e.advance_watermark(T0 + 3 * HOUR, &mut out);
    e.replace_rules(rules(DWELL));
    out.extend(feed(&mut e, &[scan("S", T0 + HOUR, Status::Delivered)]));
    assert_eq!(
        out.iter().map(|a| a.state).collect::<Vec<_>>(),
        vec![AlertState::Firing, AlertState::Retracted]
    );
}

// ---- output format ----------------------------------------------------------------------------

#[test]
fn alert_json_has_the_spec_fields() {
    let out = run(SHOCK, &[sensor("S\"1", T0, Metric::ShockG, 4.0)]);
    let v: serde_json::Value = serde_json::from_str(&out[0].to_json()).unwrap();
    assert_eq!(v["id"], format!("shock-3g:S\"1:{T0}"));
    for k in [
        "rule",
        "kind",
        "severity",
        "state",
        "shipment",
        "ts",
        "started_ts",
        "metric",
        "value",
        "threshold",
    ] {
        assert!(v.get(k).is_some(), "missing {k} in {v}");
    }
    assert_eq!(v["ts"], T0);
    assert_eq!(v["evidence"][0]["value"], 4.0);
    let rb = super::alert::to_record_batch(&out);
    assert_eq!(
        (rb.num_rows(), rb.schema().field(0).name().as_str()),
        (1, "id")
    );
}

// ---- properties -------------------------------------------------------------------------------

const ALL_KINDS: &str = r#"{"lateness_ms":1000,"rules":[
  {"id":"shock","kind":"threshold","metric":"shock_g","op":"gt","value":3.0,"severity":"critical"},
  {"id":"heat","kind":"threshold","metric":"temp_c","op":"gt","value":35.0,"for_ms":20,"clear":33.0,"severity":"warning"},
  {"id":"frag","kind":"threshold","metric":"shock_g","op":"ge","value":2.0,"severity":"info","where":{"fragile":true}},
  {"id":"dwell","kind":"dwell","for_ms":50,"severity":"warning"},
  {"id":"dwell-exc","kind":"dwell","for_ms":20,"severity":"info","statuses":["EXCEPTION","IN_TRANSIT"]}]}"#;

/// Per-shipment event sequences: (shipment index, kind, ts step, value).
fn shipment_streams() -> impl Strategy<Value = Vec<Vec<Event>>> {
    let ev = (0u8..3, 0i64..40, 0.0f64..6.0, 0usize..9, 0u8..2);
    prop::collection::vec(prop::collection::vec(ev, 1..25), 1..6).prop_map(|ships| {
        ships
            .into_iter()
            .enumerate()
            .map(|(s, evs)| {
                let name = format!("SH{s}");
                let mut ts = [T0; 3];
                evs.into_iter()
                    .map(|(k, step, v, st, frag)| {
                        ts[k as usize] += step;
                        match k {
                            0 => shipment(&name, ts[0], Tier::Premium, frag == 1, "SF"),
                            1 => scan(&name, ts[1], Status::ALL[st]),
                            _ => {
                                let mut e = sensor(&name, ts[2], Metric::ShockG, v);
                                e.metrics[Metric::TempC as usize] = Some(30.0 + v);
                                e
                            }
                        }
                    })
                    .collect()
            })
            .collect()
    })
}

/// Merge streams by a sequence of picks, keeping each stream's order.
fn interleave(streams: &[Vec<Event>], picks: &[usize]) -> Vec<Event> {
    let mut pos = vec![0; streams.len()];
    let mut out = Vec::new();
    let mut p = picks.iter().cycle();
    while out.len() < streams.iter().map(Vec::len).sum() {
        let mut s = p.next().copied().unwrap_or(0) % streams.len();
        while pos[s] == streams[s].len() {
            s = (s + 1) % streams.len();
        }
        out.push(streams[s][pos[s]].clone());
        pos[s] += 1;
    }
    out
}

fn run_chunked(set: &str, events: &[Event], chunk: usize) -> Vec<Alert> {
    let mut e = Engine::new(rules(set));
    events
        .chunks(chunk.max(1))
        .flat_map(|c| feed(&mut e, c))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn batch_boundaries_never_change_the_output(
        streams in shipment_streams(), picks in prop::collection::vec(0usize..8, 1..20), chunk in 1usize..17,
    ) {
        let events = interleave(&streams, &picks);
        let whole = run(ALL_KINDS, &events);
        prop_assert_eq!(&run_chunked(ALL_KINDS, &events, chunk), &whole);
        prop_assert_eq!(&run_chunked(ALL_KINDS, &events, 1), &whole);
    }

    #[test]
    fn exact_duplicates_give_no_extra_alerts(
        streams in shipment_streams(), picks in prop::collection::vec(0usize..8, 1..20),
        dups in prop::collection::vec(any::<bool>(), 1..40),
    ) {
        let events = interleave(&streams, &picks);
        let doubled: Vec<Event> = events.iter().enumerate().flat_map(|(i, e)| {
            let n = if dups[i % dups.len()] { 2 } else { 1 };
            std::iter::repeat_n(e.clone(), n)
        }).collect();
        prop_assert_eq!(run(ALL_KINDS, &doubled), run(ALL_KINDS, &events));
    }

    #[test]
    fn interleaving_shipments_keeps_gap_based_alerts(
        streams in shipment_streams(),
        a in prop::collection::vec(0usize..8, 1..20), b in prop::collection::vec(0usize..8, 1..20),
    ) {
        let (x, y) = (run(ALL_KINDS, &interleave(&streams, &a)), run(ALL_KINDS, &interleave(&streams, &b)));
        // Whether the watermark passes a deadline before the next scan depends on other
        // shipments, so retracted alerts may differ; everything else may not.
        let retracted: std::collections::HashSet<String> = x.iter().chain(&y)
            .filter(|a| a.state == AlertState::Retracted).map(|a| a.id.clone()).collect();
        let keep = |v: &[Alert]| {
            let mut k: Vec<(String, &'static str, i64)> = brief(v).into_iter()
                .filter(|(id, _, _)| !retracted.contains(id)).collect();
            k.sort();
            k
        };
        prop_assert_eq!(keep(&x), keep(&y));
    }
}

// ---- reference model of dwell (spec §3.2), as literally as it reads --------------------------

/// Dwell rules as (id, for_ms, statuses) for the reference model and the engine.
const REF_DWELL: [(&str, i64, &[Status]); 3] = [
    (
        "d-short",
        30,
        &[Status::PickedUp, Status::InTransit, Status::Exception],
    ),
    (
        "d-long",
        90,
        &[
            Status::InTransit,
            Status::OutForDelivery,
            Status::DeliveryFailed,
        ],
    ),
    ("d-exc", 10, &[Status::Exception]),
];

fn ref_rules(lateness: i64) -> String {
    let rules: Vec<String> = REF_DWELL
        .iter()
        .map(|(id, f, st)| {
            let st: Vec<String> = st.iter().map(|s| format!("\"{}\"", s.as_str())).collect();
            format!(
                r#"{{"id":"{id}","kind":"dwell","for_ms":{f},"severity":"info","statuses":[{}]}}"#,
                st.join(",")
            )
        })
        .collect();
    format!(
        r#"{{"lateness_ms":{lateness},"rules":[{}]}}"#,
        rules.join(",")
    )
}

/// One event at a time, in input order: settle the previous scan's rules, arm, advance W, then
/// fire every due deadline in (deadline, first-seen shipment, rule) order.
fn reference_dwell(lateness: i64, events: &[Event]) -> Vec<(String, &'static str, i64)> {
    struct Ship {
        order: usize,
        last: Option<i64>,
        armed: [bool; 3],
        fired: [bool; 3],
    }
    let mut ships: Vec<(String, Ship)> = Vec::new();
    let mut out = Vec::new();
    let (mut max_ts, mut w) = (i64::MIN, i64::MIN);
    for e in events {
        let idx = match ships.iter().position(|(k, _)| *k == e.shipment) {
            Some(i) => i,
            None => {
                let order = ships.len();
                ships.push((
                    e.shipment.clone(),
                    Ship {
                        order,
                        last: None,
                        armed: [false; 3],
                        fired: [false; 3],
                    },
                ));
                order
            }
        };
        let (name, s) = &mut ships[idx];
        if s.last.is_some_and(|l| e.ts <= l) {
            continue; // out of order, or equal ts: ignored for dwell
        }
        if let Some(since) = s.last {
            for (j, (id, f, _)) in REF_DWELL.iter().enumerate() {
                if !s.armed[j] {
                    continue;
                }
                let (aid, deadline) = (format!("{id}:{name}:{since}"), since + f);
                if s.fired[j] {
                    out.push((
                        aid,
                        if e.ts > deadline {
                            "resolved"
                        } else {
                            "retracted"
                        },
                        e.ts,
                    ));
                } else if e.ts > deadline {
                    out.push((aid.clone(), "firing", deadline));
                    out.push((aid, "resolved", e.ts));
                }
            }
        }
        s.last = Some(e.ts);
        let status = e.status.unwrap_or(Status::InfoReceived);
        s.armed = std::array::from_fn(|j| REF_DWELL[j].2.contains(&status));
        s.fired = [false; 3];
        max_ts = max_ts.max(e.ts);
        w = w.max(max_ts - lateness);
        let mut due: Vec<(i64, usize, usize, usize)> = Vec::new();
        for (k, (_, s)) in ships.iter().enumerate() {
            let Some(since) = s.last else { continue };
            for (j, (_, f, _)) in REF_DWELL.iter().enumerate() {
                if s.armed[j] && !s.fired[j] && since + f <= w {
                    due.push((since + f, s.order, j, k));
                }
            }
        }
        due.sort();
        for (deadline, _, j, k) in due {
            let (name, s) = &mut ships[k];
            s.fired[j] = true;
            let since = s.last.unwrap_or_default();
            out.push((
                format!("{}:{name}:{since}", REF_DWELL[j].0),
                "firing",
                deadline,
            ));
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn dwell_matches_the_reference_model(
        steps in prop::collection::vec((0usize..5, -20i64..60, 0usize..9), 1..80),
        lateness in 0i64..40,
        chunk in 1usize..9,
    ) {
        // Per-shipment clocks that mostly move forward, sometimes back (late or out of order).
        let mut clock = [T0; 5];
        let events: Vec<Event> = steps.iter().map(|&(s, step, st)| {
            clock[s] += step;
            scan(&format!("P{s}"), clock[s], Status::ALL[st])
        }).collect();
        let want = reference_dwell(lateness, &events);
        let got = run_chunked(&ref_rules(lateness), &events, chunk);
        prop_assert_eq!(brief(&got), want);
    }
}

mod scoring;
mod snapshot;
