//! Feed-level tests: determinism, rates, plausible sequences, bursts, ids, the example rules.

use super::*;
use crate::event::{Kind, Metric, Status, Tier};
use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

fn small() -> SimConfig {
    SimConfig {
        shipments: 400,
        events: 40_000,
        ..SimConfig::default()
    }
}

/// A mid-sized feed with every fault turned up, shared by the tests that only read it.
fn faulty_cfg() -> SimConfig {
    SimConfig {
        seed: 7,
        shipments: 3_000,
        events: 250_000,
        invalid_rate: 0.01,
        duplicate_rate: 0.01,
        out_of_order_rate: 0.01,
        late_feed_rate: 0.1,
        ..SimConfig::default()
    }
}

struct Feed {
    events: Vec<Event>,
    invalid: Vec<Vec<u8>>,
}

fn run(cfg: &SimConfig, batch: usize) -> Feed {
    let mut sim = Simulator::new(cfg.clone());
    let (mut out, mut invalid, mut events) = (EventBatch::default(), Vec::new(), Vec::new());
    loop {
        let n = sim.next_batch(batch, &mut out, &mut invalid);
        assert!(n <= batch);
        assert_eq!(n, out.len());
        if n == 0 {
            break;
        }
        events.extend((0..out.len()).map(|i| out.event(i)));
        out.clear();
    }
    Feed { events, invalid }
}

fn faulty() -> &'static Feed {
    static FEED: OnceLock<Feed> = OnceLock::new();
    FEED.get_or_init(|| run(&faulty_cfg(), 4096))
}

fn is_dup(events: &[Event], i: usize) -> bool {
    i > 0 && events[i] == events[i - 1]
}

#[test]
fn same_seed_same_feed_whatever_the_batch_size() {
    let a = run(&small(), 4096);
    let b = run(&small(), 7);
    assert!(a.events.len() > 10_000);
    assert!(a.events == b.events, "batching changed the feed");
    assert_eq!(a.invalid, b.invalid);
    assert!(generate(&small()) == a.events);
    let none = SimConfig {
        shipments: 0,
        ..small()
    };
    assert!(generate(&none).is_empty());
    let c = generate(&SimConfig {
        seed: 43,
        ..small()
    });
    assert!(c != a.events);
    let ids = |f: &[Event]| f.iter().map(|e| e.shipment.clone()).collect::<HashSet<_>>();
    assert!(ids(&c).is_disjoint(&ids(&a.events)) || ids(&c) != ids(&a.events));
}

#[test]
fn bad_config_is_a_config_error() {
    for cfg in [
        SimConfig {
            duplicate_rate: 1.5,
            ..small()
        },
        SimConfig {
            shipments: MAX_SHIPMENTS + 1,
            ..small()
        },
        SimConfig {
            carriers: vec![],
            ..small()
        },
        SimConfig {
            span_ms: 0,
            ..small()
        },
    ] {
        let err = Simulator::try_new(cfg).err().expect("rejected");
        assert_eq!(err.kind(), crate::ErrorKind::Config);
    }
}

#[test]
fn configured_rates_roughly_hold() {
    let cfg = faulty_cfg();
    let f = faulty();
    let n = f.events.len() as f64;
    assert!(
        (n / cfg.events as f64 - 1.0).abs() < 0.15,
        "{n} events for a target of {}",
        cfg.events
    );
    let dups = (0..f.events.len())
        .filter(|&i| is_dup(&f.events, i))
        .count() as f64;
    assert!(
        (dups / n - cfg.duplicate_rate).abs() < 0.003,
        "dup rate {}",
        dups / n
    );
    let inv = f.invalid.len() as f64 / n;
    assert!((inv - cfg.invalid_rate).abs() < 0.003, "invalid rate {inv}");

    // Out of order: a sensor reading older than the last one of its shipment.
    let mut last: HashMap<&str, i64> = HashMap::new();
    let (mut readings, mut ooo) = (0usize, 0usize);
    for e in f.events.iter().filter(|e| e.kind == Some(Kind::Sensor)) {
        readings += 1;
        let l = last.entry(&e.shipment).or_insert(i64::MIN);
        if e.ts < *l {
            ooo += 1;
        } else {
            *l = e.ts;
        }
    }
    let rate = ooo as f64 / readings as f64;
    assert!(
        (rate - cfg.out_of_order_rate).abs() < 0.004,
        "ooo rate {rate}"
    );

    // Late feeds: scans arriving hours behind the newest scan seen.
    let mut max_ts = i64::MIN;
    let mut late = HashSet::new();
    for e in f.events.iter().filter(|e| e.kind == Some(Kind::Scan)) {
        if e.ts < max_ts.saturating_sub(2 * 3_600_000) {
            late.insert(e.shipment.as_str());
        }
        max_ts = max_ts.max(e.ts);
    }
    let share = late.len() as f64 / cfg.shipments as f64;
    assert!((0.05..0.12).contains(&share), "late share {share}");
    assert!(f
        .invalid
        .iter()
        .all(|l| !l.is_empty() && !l.contains(&b'\n')));
}

#[derive(Default)]
struct Trace {
    tier: Option<Tier>,
    updates: usize,
    last_update: Option<Event>,
    carrier: String,
    scans: Vec<(i64, Status)>,
    sensors: usize,
}

#[test]
fn sequences_are_plausible() {
    let f = faulty();
    let regions: HashSet<String> = geo::geo()
        .regions
        .iter()
        .map(|r| format!("CN-{}", r.code))
        .collect();
    let mut ships: HashMap<&str, Trace> = HashMap::new();
    for e in &f.events {
        assert!((1..=64).contains(&e.shipment.len()));
        assert!(e.shipment.bytes().all(|b| b.is_ascii_graphic()));
        match e.kind {
            Some(Kind::Shipment) => {
                let t = ships.entry(&e.shipment).or_default();
                if t.carrier.is_empty() {
                    assert!(
                        t.scans.is_empty() && t.sensors == 0,
                        "shipment event not first"
                    );
                    t.tier = e.tier;
                    t.carrier.clone_from(&e.carrier);
                } else {
                    // An update: same shipment, same tier and carrier, after pickup.
                    assert!(t.tier == e.tier && t.carrier == e.carrier);
                    t.updates += usize::from(!t.last_update.as_ref().is_some_and(|u| u == e));
                    t.last_update = Some(e.clone());
                }
                assert!(regions.contains(&e.origin) && regions.contains(&e.dest));
                let v = e.declared_value_fen.unwrap();
                assert!((20_000..=2_000_000).contains(&v), "{v}");
                assert!(e.order.starts_with("RO-"));
            }
            Some(Kind::Scan) => {
                let t = ships
                    .get_mut(e.shipment.as_str())
                    .expect("scan before shipment");
                assert_eq!(t.carrier, e.carrier);
                assert!(regions.contains(&e.location));
                assert!(!e.raw_status.is_empty());
                let st = e.status.unwrap();
                assert_eq!(e.signer.is_some(), st == Status::Delivered, "{e:?}");
                t.scans.push((e.ts, st));
            }
            Some(Kind::Sensor) => {
                let t = ships
                    .get_mut(e.shipment.as_str())
                    .expect("reading before shipment");
                assert_ne!(t.tier, Some(Tier::Basic), "basic tier has no tag");
                assert!(e.device.starts_with("TAG-"));
                let m = |x: Metric| e.metrics[x as usize];
                assert!((0.1..=12.0).contains(&m(Metric::ShockG).unwrap()));
                assert!((-16.0..=50.0).contains(&m(Metric::TempC).unwrap()));
                assert!((5.0..=100.0).contains(&m(Metric::HumidityPct).unwrap()));
                assert!((0.0..=100.0).contains(&m(Metric::BatteryPct).unwrap()));
                assert_eq!(m(Metric::TiltDeg).is_some(), t.tier == Some(Tier::Premium));
                t.sensors += 1;
            }
            None => panic!("event without kind"),
        }
    }
    let (mut terminal, mut tagged_with_readings, mut gaps_2h, mut gaps_24h) = (0, 0, 0, 0);
    let mut updated = 0;
    for t in ships.values() {
        let s: Vec<(i64, Status)> = t.scans.iter().copied().fold(Vec::new(), |mut v, x| {
            if v.last() != Some(&x) {
                v.push(x); // drop transport duplicates
            }
            v
        });
        assert!(s.len() >= 2, "every shipment is at least picked up");
        assert_eq!(s[0].1, Status::InfoReceived);
        assert_eq!(s[1].1, Status::PickedUp);
        assert!(
            s.windows(2).all(|w| w[0].0 < w[1].0),
            "scan ts must increase in arrival order"
        );
        let terminals = s.iter().filter(|x| x.1.is_terminal()).count();
        assert!(terminals <= 1);
        if terminals == 1 {
            assert!(
                s.last().unwrap().1.is_terminal(),
                "nothing after a terminal scan"
            );
            terminal += 1;
        }
        for w in s.windows(2) {
            let gap = w[1].0 - w[0].0;
            gaps_2h += usize::from(gap > 2 * 3_600_000);
            gaps_24h += usize::from(gap > 24 * 3_600_000);
        }
        tagged_with_readings += usize::from(t.sensors > 0);
        assert!(t.updates <= 1);
        updated += t.updates;
    }
    let share = updated as f64 / ships.len() as f64;
    assert!((0.01..0.035).contains(&share), "updated share {share}");
    let n = ships.len();
    assert_eq!(n as u64, faulty_cfg().shipments);
    assert!(
        terminal as f64 > 0.97 * n as f64,
        "{terminal} of {n} finished"
    );
    assert!(
        gaps_2h > n && gaps_24h > n / 50,
        "dwell: {gaps_2h} gaps > 2 h, {gaps_24h} > 24 h"
    );
    assert!(tagged_with_readings as f64 > 0.4 * n as f64);
}

#[test]
fn readings_come_in_gateway_bursts() {
    let f = faulty();
    let mut runs = Vec::new();
    let mut i = 0;
    while i < f.events.len() {
        let e = &f.events[i];
        let mut j = i + 1;
        while j < f.events.len() && f.events[j].kind == e.kind && f.events[j].shipment == e.shipment
        {
            j += 1;
        }
        if e.kind == Some(Kind::Sensor) {
            let dups = (i + 1..j).filter(|&k| is_dup(&f.events, k)).count();
            runs.push(j - i - dups);
        }
        i = j;
    }
    let readings: usize = runs.iter().sum();
    let in_bursts: usize = runs.iter().filter(|&&r| r >= 16).sum();
    assert!(
        runs.iter().all(|&r| r <= 64),
        "a burst exceeds the tag's buffer"
    );
    assert!(
        in_bursts as f64 > 0.9 * readings as f64,
        "{in_bursts} of {readings} in bursts"
    );
}

#[test]
fn anomalies_happen_and_can_be_turned_off() {
    let f = faulty();
    let sensor = || f.events.iter().filter(|e| e.kind == Some(Kind::Sensor));
    let any =
        |m: Metric, p: &dyn Fn(f64) -> bool| sensor().any(|e| e.metrics[m as usize].is_some_and(p));
    assert!(any(Metric::ShockG, &|v| v > 3.0));
    assert!(any(Metric::TempC, &|v| v > 35.0));
    assert!(any(Metric::TempC, &|v| v < 0.0));
    assert!(any(Metric::HumidityPct, &|v| v > 85.0));
    assert!(any(Metric::TiltDeg, &|v| v > 60.0));
    assert!(any(Metric::LightLux, &|v| v > 50.0));
    assert!(any(Metric::BatteryPct, &|v| v < 10.0));
    let calm = generate(&SimConfig {
        anomaly_scale: 0.0,
        ..small()
    });
    assert!(calm
        .iter()
        .filter_map(|e| e.metrics[Metric::ShockG as usize])
        .all(|v| v <= 1.5));
}

#[test]
fn shipment_ids_are_unique() {
    let cfg = SimConfig {
        shipments: 50_000,
        events: 0,
        sensor_share: 0.0,
        update_rate: 0.0,
        ..SimConfig::default()
    };
    let mut sim = Simulator::new(cfg);
    let (mut out, mut inv) = (EventBatch::default(), Vec::new());
    let mut ids = HashSet::new();
    let mut orders = HashSet::new();
    while sim.next_batch(65_536, &mut out, &mut inv) > 0 {
        for i in 0..out.len() {
            if out.kind[i] == Kind::Shipment as u8 && !(i > 0 && out.event(i) == out.event(i - 1)) {
                assert!(
                    ids.insert(out.shipment.get(i).to_vec()),
                    "duplicate shipment id"
                );
                assert!(
                    orders.insert(out.order.get(i).to_vec()),
                    "duplicate order id"
                );
            }
        }
        out.clear();
    }
    assert_eq!(ids.len(), 50_000);
}

#[test]
fn example_rules_are_valid_json_per_spec() {
    let v: serde_json::Value = serde_json::from_str(example_rules()).unwrap();
    let rules = v["rules"].as_array().unwrap();
    assert!(rules.len() >= 8);
    assert!(v["version"].is_i64() && v["lateness_ms"].is_i64());
    let mut ids = HashSet::new();
    let mut kinds = HashSet::new();
    for r in rules {
        let id = r["id"].as_str().unwrap();
        assert!((1..=64).contains(&id.len()) && ids.insert(id), "{id}");
        kinds.insert(r["kind"].as_str().unwrap());
        assert!(["info", "warning", "critical"].contains(&r["severity"].as_str().unwrap()));
        if r["kind"] == "threshold" {
            assert!(Metric::parse(r["metric"].as_str().unwrap().as_bytes()).is_some());
            let value = r["value"].as_f64().unwrap();
            if let Some(clear) = r.get("clear").and_then(|c| c.as_f64()) {
                match r["op"].as_str().unwrap() {
                    "gt" | "ge" => assert!(clear <= value, "{id}"),
                    _ => assert!(clear >= value, "{id}"),
                }
            }
        }
        if let Some(st) = r.get("statuses") {
            for s in st.as_array().unwrap() {
                assert!(Status::parse(s.as_str().unwrap().as_bytes()).is_some());
            }
        }
    }
    assert_eq!(kinds, HashSet::from(["threshold", "dwell"]));
    assert!(rules.iter().filter(|r| r.get("where").is_some()).count() >= 3);
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/rules.json");
    let file = std::fs::read_to_string(path).expect("examples/rules.json");
    assert_eq!(
        file,
        example_rules(),
        "examples/rules.json and core/src/sim/rules.json differ"
    );
}
