//! Instruction count of the JSON decoder per event, for callgrind.
//!
//! Builds N realistic NDJSON lines in memory (sensor readings, ~158 bytes each, and a
//! scan-heavy variant), then decodes each input `ROUNDS` times into one reused `EventBatch`.
//!
//! ```text
//! cargo build --release --example json_decode_count
//! valgrind --tool=callgrind --toggle-collect='streamguard_core::event::json::decode' \
//!     target/release/examples/json_decode_count [sensor|scan|both]
//! ```
//!
//! Name the function exactly: a glob such as `'*json*decode*'` also matches this example's own
//! `json_decode_count::main` and `::run` (the crate name contains both words), and then counts
//! building the input too (~6,600 instead of ~4,500 instructions per sensor event, before).
//!
//! Divide the collected `Ir` by the event count printed at the end (the sum over the variants
//! run). Run one variant at a time to get its own per-event figure.

use std::hint::black_box;
use streamguard_core::event::{json, DeadLetter, EventBatch};

const N: usize = 20_000;
const ROUNDS: usize = 5;
const T0: u64 = 1_788_710_400_000;

/// xorshift64*: deterministic, no dependency.
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

    /// A reading with `dec` decimals in [lo, lo + span), as gateways print them.
    fn reading(&mut self, lo: i64, span: u64, dec: u32) -> String {
        let scale = 10u64.pow(dec);
        let v = lo * scale as i64 + self.below(span * scale) as i64;
        let (sign, a) = if v < 0 { ("-", -v) } else { ("", v) };
        let a = a as u64;
        if dec == 0 {
            format!("{sign}{a}")
        } else {
            format!("{sign}{}.{:0w$}", a / scale, a % scale, w = dec as usize)
        }
    }
}

/// Sensor lines shaped like
/// `{"kind":"sensor","shipment":"SF1234567890123","device":"GW-88","ts":1788710400000,
///   "shock_g":0.42,"temp_c":23.5,"humidity_pct":55.1,"tilt_deg":3.2,"light_lux":0.4,
///   "battery_pct":87.5}`.
fn sensor_lines(r: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..N {
        let line = format!(
            "{{\"kind\":\"sensor\",\"shipment\":\"SF{:013}\",\"device\":\"GW-{}\",\"ts\":{},\
             \"shock_g\":{},\"temp_c\":{},\"humidity_pct\":{},\"tilt_deg\":{},\
             \"light_lux\":{},\"battery_pct\":{}}}\n",
            r.below(10_000_000_000_000),
            10 + r.below(90),
            T0 + i as u64 * 50,
            r.reading(0, 4, 2),
            r.reading(-5, 45, 1),
            r.reading(20, 70, 1),
            r.reading(0, 30, 1),
            r.reading(0, 3, 1),
            r.reading(10, 90, 1),
        );
        out.extend_from_slice(line.as_bytes());
    }
    out
}

const STATUSES: [&str; 9] = [
    "INFO_RECEIVED",
    "PICKED_UP",
    "IN_TRANSIT",
    "OUT_FOR_DELIVERY",
    "AVAILABLE_FOR_PICKUP",
    "DELIVERY_FAILED",
    "DELIVERED",
    "EXCEPTION",
    "RETURNED_TO_SENDER",
];

/// Carrier scan lines: id, status, location, lat/lon on most, raw_status in Chinese, a signer
/// object on deliveries, an RFC 3339 `ts` on a tenth of them.
fn scan_lines(r: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..N {
        let status = STATUSES[r.below(9) as usize];
        let ts = if r.below(10) == 0 {
            format!(
                "\"2026-09-07T{:02}:{:02}:{:02}.123+08:00\"",
                r.below(24),
                r.below(60),
                r.below(60)
            )
        } else {
            (T0 + i as u64 * 50).to_string()
        };
        let mut line = format!(
            "{{\"kind\":\"scan\",\"shipment\":\"SF{:013}\",\"ts\":{ts},\"id\":\"sf-{i}\",\
             \"carrier\":\"sf\",\"status\":\"{status}\",\"location\":\"CN-31-Pudong\"",
            r.below(10_000_000_000_000),
        );
        if r.below(4) != 0 {
            line += &format!(
                ",\"lat\":{},\"lon\":{}",
                r.reading(18, 30, 4),
                r.reading(100, 25, 4)
            );
        }
        if status == "DELIVERED" {
            line += ",\"signer\":{\"name\":\"Zhang San\",\"type\":\"self\"}";
        }
        line += ",\"raw_status\":\"运输中\"}\n";
        out.extend_from_slice(line.as_bytes());
    }
    out
}

#[inline(never)]
fn run(name: &str, input: &[u8]) -> usize {
    let mut out = EventBatch::default();
    let mut dead: Vec<DeadLetter> = Vec::new();
    let mut events = 0;
    for _ in 0..ROUNDS {
        out.clear();
        dead.clear();
        json::decode(black_box(input), None, &mut out, &mut dead);
        assert!(dead.is_empty(), "{name}: {:?}", dead.first());
        assert_eq!(out.len(), N);
        events += out.len();
    }
    eprintln!(
        "{name}: {N} lines, {} bytes/line, {events} events decoded",
        input.len() / N
    );
    events
}

fn main() {
    let which = std::env::args().nth(1).unwrap_or_else(|| "both".into());
    let mut r = Rng(0x9E37_79B9_7F4A_7C15);
    let sensor = sensor_lines(&mut r);
    let scan = scan_lines(&mut r);
    let mut events = 0;
    if which == "sensor" || which == "both" {
        events += run("sensor", &sensor);
    }
    if which == "scan" || which == "both" {
        events += run("scan", &scan);
    }
    println!("events decoded: {events}");
}
