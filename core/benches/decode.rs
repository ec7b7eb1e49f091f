//! Decode throughput of the JSON and protobuf codecs over ~100k realistic events.
//!
//! `cargo bench -p streamguard-core --bench decode`. The mix is what a busy feed sees: mostly
//! sensor readings (~150 bytes of NDJSON each), some carrier scans, a few shipment updates.
//!
//! Times are the benchmark thread's CPU time (Linux `/proc/thread-self/schedstat`), not wall
//! time: on a shared machine wall time mostly measures the neighbours. Elsewhere it falls back
//! to wall time.

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::time::Instant;
use streamguard_core::event::{
    json, proto, DeadLetter, Event, EventBatch, Kind, Metric, Signer, SignerType, Status, Tier,
};

const N: usize = 100_000;
const T0: i64 = 1_795_352_700_000;

/// A small deterministic generator (no rand dependency): xorshift64*.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A reading with 1–2 decimals, as gateways send them.
    fn reading(&mut self, lo: f64, span: f64) -> f64 {
        (lo * 100.0 + self.below((span * 100.0) as u64) as f64).round() / 100.0
    }
}

fn sensor(r: &mut Rng, i: usize) -> Event {
    let mut e = Event {
        kind: Some(Kind::Sensor),
        shipment: format!("SF{:010}", r.below(20_000)),
        ts: T0 + i as i64 * 50,
        device: format!("tg-{:05}", r.below(20_000)),
        ..Event::default()
    };
    e.metrics[Metric::ShockG as usize] = Some(r.reading(0.0, 4.0));
    e.metrics[Metric::TempC as usize] = Some(r.reading(-5.0, 45.0));
    e.metrics[Metric::HumidityPct as usize] = Some(r.reading(20.0, 70.0));
    e.metrics[Metric::BatteryPct as usize] = Some(r.below(101) as f64);
    if r.below(4) == 0 {
        e.lat = Some(r.reading(18.0, 30.0));
        e.lon = Some(r.reading(100.0, 25.0));
    }
    e
}

fn scan(r: &mut Rng, i: usize) -> Event {
    let status = Status::ALL[r.below(9) as usize];
    Event {
        kind: Some(Kind::Scan),
        shipment: format!("SF{:010}", r.below(20_000)),
        ts: T0 + i as i64 * 50,
        id: format!("sf-{i}"),
        carrier: "sf".into(),
        status: Some(status),
        location: "CN-31-Pudong".into(),
        raw_status: "运输中".into(),
        signer: (status == Status::Delivered).then(|| Signer {
            name: "Zhang San".into(),
            kind: Some(SignerType::SelfSigned),
            ..Signer::default()
        }),
        ..Event::default()
    }
}

fn shipment(r: &mut Rng, i: usize) -> Event {
    Event {
        kind: Some(Kind::Shipment),
        shipment: format!("SF{:010}", r.below(20_000)),
        ts: T0 + i as i64 * 50,
        carrier: "sf".into(),
        origin: "CN-44".into(),
        dest: "CN-31".into(),
        tier: Some(Tier::ALL[r.below(3) as usize]),
        fragile: Some(r.below(2) == 0),
        order: format!("RO-{}", r.below(1_000_000)),
        declared_value_fen: Some(r.below(10_000_000) as i64),
        ..Event::default()
    }
}

fn events(sensor_only: bool) -> Vec<Event> {
    let mut r = Rng(0x9E37_79B9_7F4A_7C15);
    (0..N)
        .map(|i| match (sensor_only, r.below(100)) {
            (true, _) | (false, 0..=79) => sensor(&mut r, i),
            (false, 80..=97) => scan(&mut r, i),
            _ => shipment(&mut r, i),
        })
        .collect()
}

/// CPU time of the calling thread, in ns (None where the kernel does not say).
fn thread_cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok()
}

/// Criterion measurement of per-thread CPU time, in nanoseconds.
struct CpuTime;

static WALL: WallTime = WallTime;

impl Measurement for CpuTime {
    type Intermediate = (Option<u64>, Instant);
    type Value = std::time::Duration;

    fn start(&self) -> Self::Intermediate {
        (thread_cpu_ns(), Instant::now())
    }

    fn end(&self, (cpu, wall): Self::Intermediate) -> Self::Value {
        match (cpu, thread_cpu_ns()) {
            (Some(a), Some(b)) => std::time::Duration::from_nanos(b - a),
            _ => wall.elapsed(),
        }
    }

    fn add(&self, a: &Self::Value, b: &Self::Value) -> Self::Value {
        *a + *b
    }

    fn zero(&self) -> Self::Value {
        std::time::Duration::ZERO
    }

    fn to_f64(&self, v: &Self::Value) -> f64 {
        v.as_nanos() as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        WALL.formatter()
    }
}

fn bench(c: &mut Criterion<CpuTime>) {
    let mut g = c.benchmark_group("decode");
    g.sample_size(20);
    g.throughput(Throughput::Elements(N as u64));
    for (name, evs) in [("sensor", events(true)), ("mixed", events(false))] {
        let mut ndjson = Vec::new();
        evs.iter().for_each(|e| json::encode_event(e, &mut ndjson));
        let mut batch = EventBatch::default();
        evs.iter().for_each(|e| batch.push(e));
        let mut pb = Vec::new();
        proto::encode(&batch, 0..batch.len(), &mut pb);
        eprintln!(
            "{name}: {N} events, NDJSON {} bytes ({} B/event), protobuf {} bytes ({} B/event)",
            ndjson.len(),
            ndjson.len() / N,
            pb.len(),
            pb.len() / N
        );

        let mut out = EventBatch::default();
        let mut dead: Vec<DeadLetter> = Vec::new();
        g.bench_function(format!("json_ndjson_{name}"), |b| {
            b.iter(|| {
                out.clear();
                dead.clear();
                json::decode(black_box(&ndjson), None, &mut out, &mut dead);
                assert_eq!(out.len(), N);
            })
        });
        // Reference point for this machine: serde_json merely skipping every value.
        g.bench_function(format!("serde_json_ignored_any_{name}"), |b| {
            b.iter(|| {
                let it = serde_json::Deserializer::from_slice(black_box(&ndjson))
                    .into_iter::<serde::de::IgnoredAny>();
                assert_eq!(it.count(), N);
            })
        });
        g.bench_function(format!("protobuf_{name}"), |b| {
            b.iter(|| {
                out.clear();
                dead.clear();
                proto::decode(black_box(&pb), &mut out, &mut dead);
                assert_eq!(out.len(), N);
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(CpuTime);
    targets = bench
}
criterion_main!(benches);
