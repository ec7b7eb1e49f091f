//! Evaluation throughput on the simulated feed (`sim::Simulator`) with the example rule set:
//! generates the feed into 64k-event batches first, then times one engine over all of them.
//! `cargo run --release --example profile_sim -- [shipments] [events] [repeats] [--no-scoring | --compare]`
//!
//! `--compare` times each repeat with scoring on and then off, one after the other, and reports
//! the median of the per-pair ratios (on/off throughput): on a noisy machine a pair shares its
//! conditions, where two separate runs may not.
//!
//! Scoring's cost without the machine's noise: run it with and without `--no-scoring` under
//! `valgrind --tool=callgrind --cache-sim=yes --toggle-collect='*engine::core::Core::process'`
//! (e.g. `50000 1000000 1`), which counts the work of evaluation alone.

use std::time::Instant;
use streamguard_core::event::EventBatch;
use streamguard_core::scoring::ScoringConfig;
use streamguard_core::sim::SimConfig;
use streamguard_core::{Engine, RuleSet};

/// One engine over all of `batches`: seconds, the engine's stats and the alert count.
fn run(
    rules: &RuleSet,
    batches: &[EventBatch],
    scoring: bool,
) -> (f64, streamguard_core::Stats, usize) {
    let config = scoring.then(ScoringConfig::default);
    let mut engine = Engine::with_scoring(rules.clone(), config).expect("default config");
    let mut out = Vec::new();
    let mut alerts = 0;
    let mut by_rule = std::collections::BTreeMap::new();
    let t = Instant::now();
    for b in batches {
        // As the binding does per call: the score records of the last batch only.
        engine.clear_scores();
        engine.process_view(&b.view(), &mut out);
        alerts += out.len();
        if std::env::var("COUNT").is_ok() {
            for a in &out {
                *by_rule
                    .entry((a.rule.to_string(), a.state.as_str()))
                    .or_insert(0u64) += 1;
            }
        }
        out.clear();
    }
    let secs = t.elapsed().as_secs_f64();
    if !by_rule.is_empty() {
        eprintln!("{by_rule:#?}");
    }
    (secs, engine.stats(), alerts)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let shipments = args.first().copied().unwrap_or(100_000);
    let events = args.get(1).copied().unwrap_or(2_000_000);
    let repeats = args.get(2).copied().unwrap_or(3) as usize;
    let flag = |f: &str| std::env::args().any(|a| a == f);
    let (compare, scoring) = (flag("--compare"), !flag("--no-scoring"));
    let batches = streamguard_core::sim::batches(
        &SimConfig {
            shipments,
            events,
            ..SimConfig::default()
        },
        65_536,
    );
    let n: usize = batches.iter().map(EventBatch::len).sum();
    let rules = RuleSet::parse(streamguard_core::sim::example_rules().as_bytes()).expect("rules");
    let rate = |s: f64| n as f64 / s / 1e6;
    if compare {
        let (mut on, mut off, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..repeats {
            let (a, b) = (
                run(&rules, &batches, true).0,
                run(&rules, &batches, false).0,
            );
            on.push(rate(a));
            off.push(rate(b));
            ratios.push(b / a);
        }
        let spread = |xs: &[f64]| {
            let (lo, hi) = xs
                .iter()
                .fold((f64::MAX, f64::MIN), |(l, h), &x| (l.min(x), h.max(x)));
            format!("{lo:.3}..{hi:.3}")
        };
        println!(
            "{n} events: scoring on {:.3} M/s, off {:.3} M/s (medians); on/off per pair: median {:.3} ({})",
            median(on),
            median(off),
            median(ratios.clone()),
            spread(&ratios),
        );
        return;
    }
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..repeats {
        let (secs, stats, alerts) = run(&rules, &batches, scoring);
        times.push(secs);
        last = Some((stats, alerts));
    }
    times.sort_by(f64::total_cmp);
    if let Some((st, alerts)) = last {
        println!(
            "{n} events, {} shipments: median {:.3} M/s (min {:.3}, max {:.3}), {alerts} alerts, {} bytes/shipment",
            st.shipments,
            rate(times[times.len() / 2]),
            rate(times[times.len() - 1]),
            rate(times[0]),
            st.state_bytes / st.shipments.max(1),
        );
    }
}
