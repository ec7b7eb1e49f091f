//! Measurements to run by hand (ignored by default): generation throughput and a profile of
//! the feed with the alerts it should raise.

use super::*;
use crate::event::{Kind, Metric, Status};
use std::collections::{HashMap, HashSet};

/// Throughput, not a pass/fail check (timed tests lie on a shared machine). Run it with
/// `cargo test --release -p streamguard-core --lib sim::measure::generation_rate -- --ignored --nocapture`.
#[test]
#[ignore]
fn generation_rate() {
    // Batches whose columns (~200 bytes per event) stay in L2: 64 k batches ran ~25% slower.
    const BATCH: usize = 8192;
    let cfg = SimConfig {
        shipments: 1_000_000,
        events: 20_000_000,
        ..SimConfig::default()
    };
    let t0 = std::time::Instant::now();
    let mut sim = Simulator::new(cfg);
    let (mut out, mut inv) = (EventBatch::default(), Vec::new());
    let (mut events, mut invalid) = (0usize, 0usize);
    loop {
        let n = sim.next_batch(BATCH, &mut out, &mut inv);
        if n == 0 {
            break;
        }
        events += n;
        invalid += inv.len();
        out.clear();
        inv.clear();
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "{events} events ({invalid} invalid lines), {} shipments (peak {} in flight, {} MB \
         state), {:.1} simulated days, {:.2} s: {:.2} M events/s",
        sim.shipments_created(),
        sim.peak_in_flight(),
        sim.state_bytes() >> 20,
        (sim.now_ms() - sim.config().start_ms) as f64 / 86_400_000.0,
        secs,
        events as f64 / secs / 1e6
    );
}

const DWELL_STATUSES: [Status; 5] = [
    Status::PickedUp,
    Status::InTransit,
    Status::OutForDelivery,
    Status::DeliveryFailed,
    Status::Exception,
];

/// What the feed holds and roughly which alerts it should raise. Run it with
/// `cargo test -p streamguard-core --lib sim::measure::print_feed_profile -- --ignored --nocapture`.
#[test]
#[ignore]
fn print_feed_profile() {
    let cfg = SimConfig::default();
    let feed = generate(&cfg);
    let mut kinds = HashMap::new();
    let mut statuses = HashMap::new();
    let mut scans: HashMap<&str, Vec<(i64, Status)>> = HashMap::new();
    let mut readings: HashMap<&str, Vec<&Event>> = HashMap::new();
    for e in &feed {
        *kinds
            .entry(e.kind.map_or("?", Kind::as_str))
            .or_insert(0usize) += 1;
        match e.kind {
            Some(Kind::Scan) => {
                *statuses
                    .entry(e.status.map_or("?", Status::as_str))
                    .or_insert(0usize) += 1;
                scans
                    .entry(&e.shipment)
                    .or_default()
                    .push((e.ts, e.status.unwrap()));
            }
            Some(Kind::Sensor) => readings.entry(&e.shipment).or_default().push(e),
            _ => {}
        }
    }
    println!(
        "{} events: {kinds:?}\nscan statuses: {statuses:?}",
        feed.len()
    );
    let hours = |ms: i64| ms as f64 / 3_600_000.0;
    let (mut g2, mut g24, mut retract, mut resolve) = (0, 0, 0, 0);
    // Gaps after a scan that arms the default dwell statuses: roughly dwell-2h / dwell-24h alerts.
    let mut by_status: HashMap<&str, (usize, usize)> = HashMap::new();
    for s in scans.values() {
        for w in s.windows(2).filter(|w| DWELL_STATUSES.contains(&w[0].1)) {
            let long = w[1].0 - w[0].0 > 2 * 3_600_000;
            g2 += usize::from(long);
            g24 += usize::from(w[1].0 - w[0].0 > 24 * 3_600_000);
            let c = by_status.entry(w[0].1.as_str()).or_default();
            c.0 += 1;
            c.1 += usize::from(long);
        }
    }
    println!("dwell-armed gaps (count, > 2 h) by status: {by_status:?}");
    // Late feeds: the first scan that arrives hours behind the newest scan seen.
    let mut max_ts = i64::MIN;
    let mut last: HashMap<&str, i64> = HashMap::new();
    let mut seen_late = HashSet::new();
    for e in feed.iter().filter(|e| e.kind == Some(Kind::Scan)) {
        if e.ts < max_ts.saturating_sub(2 * 3_600_000) && seen_late.insert(e.shipment.as_str()) {
            let prev = last[e.shipment.as_str()];
            if e.ts - prev <= 2 * 3_600_000 {
                retract += 1;
            } else {
                resolve += 1;
            }
        }
        max_ts = max_ts.max(e.ts);
        last.insert(&e.shipment, e.ts);
    }
    println!(
        "{} shipments, {:.1} scans each; gaps > 2 h: {g2}, > 24 h: {g24}; late feeds: {} \
         (dwell-2h retracted ~{retract}, resolved ~{resolve})",
        cfg.shipments,
        scans.values().map(Vec::len).sum::<usize>() as f64 / cfg.shipments as f64,
        seen_late.len()
    );
    // Sustained threshold episodes per shipment, over readings in ts order.
    let episodes = |m: Metric, breach: &dyn Fn(f64) -> bool, for_ms: i64| {
        let mut n = 0;
        for rs in readings.values() {
            let mut rs: Vec<&&Event> = rs.iter().collect();
            rs.sort_by_key(|e| e.ts);
            let mut start: Option<i64> = None;
            let mut fired = false;
            for e in rs {
                let Some(v) = e.metrics[m as usize] else {
                    continue;
                };
                if breach(v) {
                    let st = *start.get_or_insert(e.ts);
                    if !fired && e.ts - st >= for_ms {
                        n += 1;
                        fired = true;
                    }
                } else {
                    start = None;
                    fired = false;
                }
            }
        }
        n
    };
    println!(
        "episodes: shock>3g {}, shock>2g {}, heat>35 10min {}, cold<0 30min {}, \
         humid>85 30min {}, light>50 {}, battery<10 {}, tilt>60 5min {}",
        episodes(Metric::ShockG, &|v| v > 3.0, 0),
        episodes(Metric::ShockG, &|v| v > 2.0, 0),
        episodes(Metric::TempC, &|v| v > 35.0, 600_000),
        episodes(Metric::TempC, &|v| v < 0.0, 1_800_000),
        episodes(Metric::HumidityPct, &|v| v > 85.0, 1_800_000),
        episodes(Metric::LightLux, &|v| v > 50.0, 0),
        episodes(Metric::BatteryPct, &|v| v < 10.0, 0),
        episodes(Metric::TiltDeg, &|v| v > 60.0, 300_000),
    );
    // Courier rounds (OUT_FOR_DELIVERY, DELIVERY_FAILED, AVAILABLE_FOR_PICKUP) outside
    // 07:00–20:00: last miles squeezed into a short transit (see `lastmile.rs`).
    let rounds = [
        Status::OutForDelivery,
        Status::DeliveryFailed,
        Status::AvailableForPickup,
    ];
    let off_hours = scans
        .values()
        .filter(|s| {
            s.iter().any(|(ts, st)| {
                rounds.contains(st) && !(7.0..20.0).contains(&super::scan::local_hour(*ts))
            })
        })
        .count();
    println!("shipments with a courier round outside 07:00-20:00: {off_hours}");
    let transit: Vec<f64> = scans
        .values()
        .map(|s| hours(s.last().unwrap().0 - s[0].0))
        .collect();
    println!(
        "mean label-to-last-scan time {:.1} h; tags with readings {}",
        transit.iter().sum::<f64>() / transit.len() as f64,
        readings.len()
    );
}
