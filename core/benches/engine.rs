//! Criterion benches of the evaluation hot path: pre-decoded columns through the engine with a
//! realistic rule set (threshold with for_ms/clear/where, dwell), sensor readings arriving in
//! gateway bursts as real uploads do.

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkGroup, Criterion, Throughput,
};
mod common;

use common::{feed, RULES};
use streamguard_core::event::EventBatch;
use streamguard_core::scoring::ScoringConfig;
use streamguard_core::sim::SimConfig;
use streamguard_core::{Engine, RuleSet};

fn eval(c: &mut Criterion) {
    let rules = RuleSet::parse(RULES.as_bytes()).expect("bench rules are valid");
    let mut g = c.benchmark_group("engine");
    g.sample_size(10);
    for (ships, bursts) in [(10_000usize, 4usize), (200_000, 2)] {
        let data = feed(ships, bursts, 65_536);
        let n: usize = data.iter().map(EventBatch::len).sum();
        g.throughput(Throughput::Elements(n as u64));
        let names = [
            format!("eval_view/{ships}_shipments"),
            format!("eval_view_no_scoring/{ships}_shipments"),
        ];
        on_and_off(&mut g, names, &rules, &data);
    }
    g.finish();
}

/// The simulated feed (`sim::Simulator`, as `streamguard bench --quick`: 50 k shipments, 1 M
/// events) with the example rules: pickups, deliveries and rescoring, which `feed` lacks.
fn eval_sim(c: &mut Criterion) {
    let rules = RuleSet::parse(streamguard_core::sim::example_rules().as_bytes()).expect("rules");
    let data = streamguard_core::sim::batches(
        &SimConfig {
            shipments: 50_000,
            events: 1_000_000,
            ..SimConfig::default()
        },
        65_536,
    );
    let n: usize = data.iter().map(EventBatch::len).sum();
    let mut g = c.benchmark_group("engine");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n as u64));
    on_and_off(
        &mut g,
        ["eval_sim".into(), "eval_sim_no_scoring".into()],
        &rules,
        &data,
    );
    g.finish();
}

/// Evaluate `data` with a fresh engine per iteration, scoring on (`names[0]`) and off.
fn on_and_off(
    g: &mut BenchmarkGroup<'_, WallTime>,
    names: [String; 2],
    rules: &RuleSet,
    data: &[EventBatch],
) {
    for (name, scoring) in names.into_iter().zip([true, false]) {
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let config = scoring.then(ScoringConfig::default);
                    Engine::with_scoring(rules.clone(), config).expect("default config")
                },
                |mut engine| {
                    let mut out = Vec::new();
                    for batch in data {
                        engine.process_view(&batch.view(), &mut out);
                        out.clear();
                        engine.clear_scores();
                    }
                    engine
                },
                BatchSize::PerIteration,
            )
        });
    }
}

criterion_group!(benches, eval, eval_sim);
criterion_main!(benches);
