//! Synthetic feed shared by the engine bench and the profiling example.
#![allow(dead_code)]

use streamguard_core::event::{Event, EventBatch, Kind, Metric, Status, Tier, N_METRICS};

pub const RULES: &str = r#"{"version":1,"lateness_ms":60000,"rules":[
  {"id":"shock-3g","kind":"threshold","metric":"shock_g","op":"gt","value":3.0,"severity":"critical"},
  {"id":"fragile-shock-2g","kind":"threshold","metric":"shock_g","op":"gt","value":2.0,"severity":"critical","where":{"fragile":true}},
  {"id":"heat-35","kind":"threshold","metric":"temp_c","op":"gt","value":35.0,"for_ms":600000,"clear":33.0,"severity":"warning"},
  {"id":"cold-0","kind":"threshold","metric":"temp_c","op":"lt","value":0.0,"for_ms":1800000,"clear":2.0,"severity":"warning"},
  {"id":"humid-85","kind":"threshold","metric":"humidity_pct","op":"gt","value":85.0,"for_ms":1800000,"severity":"warning"},
  {"id":"light-open","kind":"threshold","metric":"light_lux","op":"gt","value":50.0,"severity":"critical"},
  {"id":"battery-low","kind":"threshold","metric":"battery_pct","op":"lt","value":10.0,"clear":15.0,"severity":"info"},
  {"id":"tilt-premium","kind":"threshold","metric":"tilt_deg","op":"gt","value":60.0,"severity":"warning","where":{"tier":["premium"]}},
  {"id":"dwell-2h","kind":"dwell","for_ms":7200000,"severity":"warning"},
  {"id":"dwell-24h","kind":"dwell","for_ms":86400000,"severity":"critical"}]}"#;

/// xorshift: deterministic data without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `ships` shipments, each a shipment event, a scan, and `bursts` bursts of 32 readings.
pub fn feed(ships: usize, bursts: usize, chunk: usize) -> Vec<EventBatch> {
    let mut rng = Rng(0x5eed);
    let t0 = 1_795_000_000_000i64;
    let mut events = Vec::with_capacity(ships * (2 + bursts * 32));
    let name = |s: usize| format!("SF{:013}", s * 7919 % 10_000_000_000_000);
    for s in 0..ships {
        events.push(Event {
            kind: Some(Kind::Shipment),
            shipment: name(s),
            ts: t0,
            carrier: "SF".into(),
            tier: Some(Tier::ALL[s % 3]),
            fragile: Some(s % 3 == 0),
            origin: format!("CN-{}0100", 31 + s % 7),
            dest: "CN-440300".into(),
            ..Event::default()
        });
        events.push(Event {
            kind: Some(Kind::Scan),
            shipment: name(s),
            ts: t0 + s as i64,
            status: Some(Status::InTransit),
            location: "CN-440000".into(),
            ..Event::default()
        });
    }
    for b in 0..bursts {
        for s in 0..ships {
            for r in 0..32 {
                let mut m = [None; N_METRICS];
                let shock = if rng.next() % 5000 == 0 {
                    4.0 + rng.unit() * 6.0
                } else {
                    rng.unit() * 1.5
                };
                m[Metric::ShockG as usize] = Some(shock);
                m[Metric::TempC as usize] = Some(18.0 + rng.unit() * 10.0);
                m[Metric::HumidityPct as usize] = Some(40.0 + rng.unit() * 30.0);
                m[Metric::TiltDeg as usize] = Some(rng.unit() * 20.0);
                m[Metric::LightLux as usize] = Some(rng.unit());
                m[Metric::BatteryPct as usize] = Some(90.0 - b as f64);
                events.push(Event {
                    kind: Some(Kind::Sensor),
                    shipment: name(s),
                    device: format!("GW{s}"),
                    ts: t0 + ((b * 32 + r) as i64) * 60_000,
                    metrics: m,
                    ..Event::default()
                });
            }
        }
    }
    events
        .chunks(chunk)
        .map(|c| {
            let mut batch = EventBatch::default();
            c.iter().for_each(|e| batch.push(e));
            batch
        })
        .collect()
}
