//! Snapshot size and snapshot/restore time for the simulator state of N shipments.
//! `cargo run --release --example snapshot_timing -- 100000`
use std::time::Instant;
use streamguard_core::engine::Engine;
use streamguard_core::event::EventBatch;
use streamguard_core::rules::RuleSet;
use streamguard_core::sim::{example_rules, SimConfig, Simulator};

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let cfg = SimConfig {
        shipments: n,
        events: n * 30,
        ..SimConfig::default()
    };
    let mut sim = Simulator::new(cfg);
    let mut engine = Engine::new(RuleSet::parse(example_rules().as_bytes()).unwrap());
    let (mut batch, mut bad, mut out) = (EventBatch::default(), Vec::new(), Vec::new());
    let t = Instant::now();
    while sim.next_batch(8192, &mut batch, &mut bad) > 0 {
        engine.process_view(&batch.view(), &mut out);
        batch.clear();
        bad.clear();
        out.clear();
    }
    let s = engine.stats();
    println!(
        "fed {} events in {:?}: {} shipments, state_bytes {}",
        s.events_in,
        t.elapsed(),
        s.shipments,
        s.state_bytes
    );
    let mut buf = Vec::new();
    engine.snapshot(&mut buf);
    let mut best = (f64::MAX, f64::MAX);
    for _ in 0..5 {
        buf.clear();
        let t = Instant::now();
        engine.snapshot(&mut buf);
        let ts = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let r = Engine::restore(&buf).unwrap();
        let tr = t.elapsed().as_secs_f64();
        assert_eq!(r.stats().shipments, s.shipments);
        best = (best.0.min(ts), best.1.min(tr));
    }
    println!(
        "snapshot {} bytes ({:.1} MB): snapshot {:.1} ms, restore {:.1} ms",
        buf.len(),
        buf.len() as f64 / 1e6,
        best.0 * 1e3,
        best.1 * 1e3
    );
}
