//! Steady-state evaluation loop for profilers (`perf record`, callgrind): builds the synthetic
//! feed once, then runs it through one engine `ROUNDS` times, shifting time forward each round.
//! `cargo run --release --example profile_eval -- [shipments] [bursts] [rounds]`

#[path = "../benches/common/mod.rs"]
mod common;

use std::time::Instant;
use streamguard_core::{Engine, RuleSet};

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (ships, bursts, rounds) = (
        args.first().copied().unwrap_or(10_000),
        args.get(1).copied().unwrap_or(4),
        args.get(2).copied().unwrap_or(10),
    );
    let mut data = common::feed(ships, bursts, 65_536);
    let n: usize = data.iter().map(|b| b.len()).sum();
    let rules = RuleSet::parse(common::RULES.as_bytes()).expect("valid rules");
    let mut engine = Engine::new(rules);
    let mut out = Vec::new();
    let span = (bursts as i64 + 1) * 32 * 60_000;
    let mut times = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        for batch in &data {
            engine.process_view(&batch.view(), &mut out);
            out.clear();
        }
        times.push(t.elapsed().as_secs_f64());
        for batch in &mut data {
            batch.ts.iter_mut().for_each(|ts| *ts += span);
        }
    }
    times.sort_by(f64::total_cmp);
    let rate = |s: f64| n as f64 / s / 1e6;
    println!(
        "{n} events x {rounds} rounds: median {:.1} M/s (min {:.1}, max {:.1}); {} bytes/shipment",
        rate(times[times.len() / 2]),
        rate(times[times.len() - 1]),
        rate(times[0]),
        engine.stats().state_bytes / engine.stats().shipments.max(1)
    );
}
