//! The same events through JSON, protobuf and Arrow IPC give the same alerts, whatever the
//! chunking: the decoders feed one engine, and the engine does not care where bytes came from.

use streamguard_core::event::{arrow, json, proto, Event, EventBatch, Kind, Metric, Status, Tier};
use streamguard_core::{Alert, Engine, Format, RuleSet};

const RULES: &str = r#"{"version":3,"lateness_ms":60000,"rules":[
  {"id":"shock-3g","kind":"threshold","metric":"shock_g","op":"gt","value":3.0,"severity":"critical"},
  {"id":"fragile-2g","kind":"threshold","metric":"shock_g","op":"gt","value":2.0,"severity":"critical","where":{"fragile":true}},
  {"id":"heat-35","kind":"threshold","metric":"temp_c","op":"gt","value":35.0,"for_ms":600000,"clear":33.0,"severity":"warning"},
  {"id":"dwell-2h","kind":"dwell","for_ms":7200000,"severity":"warning"}]}"#;

/// A deterministic mixed feed: shipment events, scans with long gaps, sensor bursts with shocks
/// and heat, late scans.
fn feed() -> Vec<Event> {
    let t0 = 1_795_000_000_000i64;
    let mut x = 0x9e3779b97f4a7c15u64;
    let mut rnd = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let mut events = Vec::new();
    for s in 0..40 {
        let ship = format!("YT{:010}", s * 131);
        events.push(Event {
            kind: Some(Kind::Shipment),
            shipment: ship.clone(),
            ts: t0,
            carrier: "YTO".into(),
            tier: Some(Tier::ALL[s % 3]),
            fragile: Some(s % 2 == 0),
            declared_value_fen: Some(129_900),
            order: format!("RO-{s}"),
            ..Event::default()
        });
    }
    let mut clock = t0;
    for step in 0..400 {
        let s = rnd(40) as usize;
        let ship = format!("YT{:010}", s * 131);
        clock += rnd(20) as i64 * 60_000;
        if step % 3 == 0 {
            let late = if rnd(10) == 0 { 3 * 3_600_000 } else { 0 };
            events.push(Event {
                kind: Some(Kind::Scan),
                shipment: ship,
                ts: clock - late,
                carrier: "YTO".into(),
                status: Some(Status::ALL[1 + rnd(7) as usize]),
                location: format!("CN-{}0000", 11 + rnd(50)),
                raw_status: "运输中".into(),
                ..Event::default()
            });
        } else {
            for k in 0..(1 + rnd(6) as i64) {
                let mut e = Event {
                    kind: Some(Kind::Sensor),
                    shipment: ship.clone(),
                    device: format!("GW-{s}"),
                    ts: clock + k * 30_000,
                    ..Event::default()
                };
                e.metrics[Metric::ShockG as usize] = Some(rnd(500) as f64 / 100.0);
                e.metrics[Metric::TempC as usize] = Some(28.0 + rnd(100) as f64 / 10.0);
                events.push(e);
            }
        }
    }
    events
}

fn run(format: Format, chunks: &[Vec<u8>]) -> (Vec<Alert>, u64) {
    let mut engine = Engine::new(RuleSet::parse(RULES.as_bytes()).expect("rules"));
    let (mut out, mut dead) = (Vec::new(), Vec::new());
    for c in chunks {
        engine.process_bytes(format, c, None, &mut out, &mut dead);
    }
    assert!(dead.is_empty(), "{format:?}: {dead:?}");
    (out, engine.stats().accepted)
}

/// Encode `events` in `format`, `per` events to a chunk. Arrow chunks hold one record batch per
/// run of one kind, so input order is kept.
fn encode(format: Format, events: &[Event], per: usize) -> Vec<Vec<u8>> {
    events
        .chunks(per)
        .map(|part| {
            let mut batch = EventBatch::default();
            part.iter().for_each(|e| batch.push(e));
            let mut out = Vec::new();
            match format {
                Format::Json => {
                    (0..batch.len()).for_each(|i| json::encode_row(&batch, i, &mut out))
                }
                Format::Protobuf => proto::encode(&batch, 0..batch.len(), &mut out),
                Format::Arrow => {
                    let mut rbs = Vec::new();
                    for run in part.chunk_by(|a, b| a.kind == b.kind) {
                        let mut b = EventBatch::default();
                        run.iter().for_each(|e| b.push(e));
                        rbs.extend(arrow::to_record_batches(&b));
                    }
                    arrow::write_ipc(&rbs, &mut out);
                }
            }
            out
        })
        .collect()
}

#[test]
fn every_format_and_chunking_gives_the_same_alerts() {
    let events = feed();
    let (reference, accepted) = run(Format::Json, &encode(Format::Json, &events, events.len()));
    assert!(
        reference.len() >= 10,
        "the feed should raise alerts, got {}",
        reference.len()
    );
    assert!(reference.iter().any(|a| &*a.rule == "dwell-2h"));
    assert!(reference.iter().any(|a| &*a.rule == "heat-35"));
    for format in [Format::Json, Format::Protobuf, Format::Arrow] {
        for per in [1, 7, 64, events.len()] {
            let (alerts, n) = run(format, &encode(format, &events, per));
            assert_eq!(n, accepted, "{format:?} per {per}");
            assert_eq!(alerts, reference, "{format:?} in chunks of {per}");
        }
    }
}

#[test]
fn a_wrong_arrow_schema_is_dead_lettered_with_its_bytes() {
    use arrow_array::{Int64Array, RecordBatch, StringArray};
    use std::sync::Arc;
    let rb = RecordBatch::try_from_iter([
        ("shipment", Arc::new(StringArray::from(vec!["A", "B"])) as _),
        ("when", Arc::new(Int64Array::from(vec![1, 2])) as _),
    ])
    .expect("batch");
    let mut bytes = Vec::new();
    arrow::write_ipc(std::slice::from_ref(&rb), &mut bytes);
    let mut engine = Engine::new(RuleSet::parse(RULES.as_bytes()).expect("rules"));
    let (mut out, mut dead) = (Vec::new(), Vec::new());
    engine.process_bytes(
        Format::Arrow,
        &bytes,
        Some(Kind::Sensor),
        &mut out,
        &mut dead,
    );
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reason.as_str(), "schema");
    assert!(dead[0].detail.contains("ts"), "{}", dead[0].detail);
    assert_eq!(dead[0].raw, bytes);
    engine.process_record_batch(&rb, Some(Kind::Sensor), &mut out, &mut dead);
    assert_eq!(arrow::read_ipc(&dead[1].raw).expect("raw is IPC"), vec![rb]);
    assert_eq!(engine.stats().rejected_total(), 2);
}
