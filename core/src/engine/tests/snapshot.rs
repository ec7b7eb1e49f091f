//! Snapshots: an engine restored from a snapshot continues exactly like one never stopped.

use super::*;
use crate::engine::Stats;
use crate::error::ErrorKind;
use crate::event::{DeadLetter, Format, Reason};
use crate::sim::{self, SimConfig};

/// A second rule set: `shock` and `dwell` unchanged, `heat` changed, `where.carrier` rules
/// added (their carrier ids must survive a restore), and the evidence layout changed.
const RELOADED: &str = r#"{"version":2,"lateness_ms":500,"rules":[
  {"id":"shock","kind":"threshold","metric":"shock_g","op":"gt","value":3.0,"severity":"critical"},
  {"id":"heat","kind":"threshold","metric":"temp_c","op":"gt","value":35.0,"for_ms":40,"clear":34.0,"severity":"warning","evidence":4},
  {"id":"carrier-shock","kind":"threshold","metric":"shock_g","op":"ge","value":1.5,"severity":"info","where":{"carrier":["ZTO","SF"]}},
  {"id":"dwell","kind":"dwell","for_ms":50,"severity":"warning"},
  {"id":"dwell-sf","kind":"dwell","for_ms":30,"severity":"info","where":{"carrier":["SF"],"tier":["premium"]}}]}"#;

enum Step {
    Feed(Vec<Event>),
    Advance(i64),
    Reject(Reason),
    Reload(&'static str),
}

fn apply(e: &mut Engine, step: &Step) -> Vec<Alert> {
    let mut out = Vec::new();
    match step {
        Step::Feed(events) => out = feed(e, events),
        Step::Advance(w) => e.advance_watermark(*w, &mut out),
        Step::Reject(r) => e.count_rejected(*r),
        Step::Reload(set) => e.replace_rules(rules(set)),
    }
    out
}

/// `events` in chunks, each followed by the extra step its selector picks.
fn steps(events: &[Event], chunk: usize, extras: &[(u8, i64)]) -> Vec<Step> {
    let mut out = Vec::new();
    for (k, c) in events.chunks(chunk).enumerate() {
        out.push(Step::Feed(c.to_vec()));
        match extras[k % extras.len()] {
            (5, x) => out.push(Step::Advance(T0 + x)),
            (6, x) => out.push(Step::Reject(Reason::ALL[x as usize % Reason::ALL.len()])),
            (7, x) => out.push(Step::Reload([ALL_KINDS, RELOADED][x as usize % 2])),
            _ => {}
        }
    }
    out
}

fn snap(e: &Engine) -> Vec<u8> {
    let mut v = Vec::new();
    e.snapshot(&mut v);
    v
}

/// `e` restored from its snapshot; the restored engine snapshots to the same bytes.
fn reborn(e: &Engine) -> Engine {
    let bytes = snap(e);
    let r = Engine::restore(&bytes).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(
        snap(&r),
        bytes,
        "snapshot → restore → snapshot changed the bytes"
    );
    r
}

/// Stats but `state_bytes` and `lane_bytes`: that is allocated capacity (Vec growth,
/// hash-table tombstones, lane models), not evaluation state, and a restored engine allocates
/// to fit.
fn counted(e: &Engine) -> Stats {
    Stats {
        state_bytes: 0,
        lane_bytes: 0,
        ..e.stats()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn restoring_at_any_point_gives_the_uninterrupted_alerts(
        streams in shipment_streams(), picks in prop::collection::vec(0usize..8, 1..20),
        chunk in 1usize..9, extras in prop::collection::vec((0u8..8, 0i64..200), 1..12),
        at in any::<prop::sample::Index>(),
    ) {
        let steps = steps(&interleave(&streams, &picks), chunk, &extras);
        let mut whole = Engine::new(rules(ALL_KINDS));
        let want: Vec<Alert> = steps.iter().flat_map(|s| apply(&mut whole, s)).collect();

        let split = at.index(steps.len() + 1);
        let mut first = Engine::new(rules(ALL_KINDS));
        let mut got: Vec<Alert> = steps[..split].iter().flat_map(|s| apply(&mut first, s)).collect();
        let mut second = reborn(&first);
        prop_assert_eq!(second.rules(), first.rules());
        prop_assert_eq!(counted(&second), counted(&first));
        got.extend(steps[split..].iter().flat_map(|s| apply(&mut second, s)));
        prop_assert_eq!(&got, &want);
        prop_assert_eq!(counted(&second), counted(&whole));
    }

    #[test]
    fn corrupt_bodies_with_a_valid_checksum_never_panic(
        at in any::<prop::sample::Index>(), byte in any::<u8>(),
    ) {
        let mut bytes = sample();
        let i = 24 + at.index(bytes.len() - 24);
        bytes[i] = byte;
        reseal(&mut bytes);
        if let Err(e) = Engine::restore(&bytes) {
            prop_assert_eq!(e.kind(), ErrorKind::Decode);
        }
    }
}

#[test]
fn restore_after_a_hot_reload_keeps_unchanged_rules_state() {
    let mut e = Engine::new(rules(ALL_KINDS));
    let first = [
        sensor("S1", T0, Metric::ShockG, 4.0),
        scan("S1", T0, Status::InTransit),
    ];
    let fired = feed(&mut e, &first);
    assert_eq!(
        brief(&fired),
        vec![b(&format!("shock:S1:{T0}"), "firing", T0)]
    );
    e.replace_rules(rules(RELOADED));
    let mut r = reborn(&e);
    assert_eq!(r.rules(), e.rules());
    assert_eq!(r.rules().version, 2);
    // A third set keeps `shock` and `dwell` as written: their open state carries over only
    // if the restored rules compare equal to the ones the state was built under.
    let third = RELOADED.replace("\"version\":2", "\"version\":3");
    let rest = [
        sensor("S1", T0 + 10, Metric::ShockG, 1.0),
        scan("S1", T0 + 100, Status::InTransit),
    ];
    let mut outs = Vec::new();
    for engine in [&mut e, &mut r] {
        engine.replace_rules(rules(&third));
        outs.push(feed(engine, &rest));
    }
    let id = |r: &str| format!("{r}:S1:{T0}");
    assert_eq!(
        brief(&outs[1]),
        vec![
            b(&id("shock"), "resolved", T0 + 10),
            b(&id("dwell"), "firing", T0 + 50),
            b(&id("dwell"), "resolved", T0 + 100),
        ]
    );
    assert_eq!(outs[1], outs[0]);
    assert_eq!(counted(&r), counted(&e));
}

#[test]
fn simulated_feed_resumes_exactly_after_repeated_restores() {
    let cfg = SimConfig {
        shipments: 400,
        events: 6_000,
        span_ms: 86_400_000,
        ..SimConfig::default()
    };
    let events = sim::generate(&cfg);
    let set = rules(sim::example_rules());
    let end = events.iter().map(|e| e.ts).max().unwrap_or(T0) + 7 * 86_400_000;
    let run = |restore: bool| {
        let (mut e, mut out) = (Engine::new(set.clone()), Vec::new());
        for c in events.chunks(700) {
            out.extend(feed(&mut e, c));
            if restore {
                e = reborn(&e);
            }
        }
        // Flush the open dwell deadlines, which live in the restored timer queue.
        e.advance_watermark(end, &mut out);
        (out, counted(&e))
    };
    let (want, want_stats) = run(false);
    let (got, got_stats) = run(true);
    assert!(events.len() > 5_000, "{} events", events.len());
    assert!(want.len() > 100, "only {} alerts", want.len());
    assert_eq!(got, want);
    assert_eq!(got_stats, want_stats);
}

/// A small snapshot with every section populated, dead letters included.
fn sample() -> Vec<u8> {
    let mut e = Engine::new(rules(ALL_KINDS));
    let (mut out, mut dead) = (Vec::new(), Vec::<DeadLetter>::new());
    e.process_bytes(Format::Json, b"{not json", None, &mut out, &mut dead);
    let mut events = vec![shipment("A", T0, Tier::Premium, true, "SF")];
    for i in 0..6 {
        events.push(sensor("A", T0 + i, Metric::ShockG, 1.0 + i as f64));
        events.push(scan(&format!("B{i}"), T0 + 10 * i, Status::InTransit));
    }
    feed(&mut e, &events);
    assert_eq!(e.stats().rejected[Reason::Malformed as usize], 1);
    snap(&e)
}

/// Recompute the header's length and checksum over a modified body.
fn reseal(bytes: &mut [u8]) {
    let len = (bytes.len() - 24) as u64;
    let crc = crate::engine::snapshot::crc32(&bytes[24..]);
    bytes[12..16].copy_from_slice(&crc.to_le_bytes());
    bytes[16..24].copy_from_slice(&len.to_le_bytes());
}

fn decode_error(bytes: &[u8]) -> String {
    match Engine::restore(bytes) {
        Ok(_) => panic!("a bad snapshot was restored"),
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Decode, "{e}");
            e.to_string()
        }
    }
}

#[test]
fn a_sample_snapshot_round_trips() {
    let bytes = sample();
    let e = Engine::restore(&bytes).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(snap(&e), bytes);
    let s = e.stats();
    assert_eq!((s.shipments, s.rejected_total(), s.events_in), (7, 1, 14));
}

#[test]
fn truncated_snapshots_are_decode_errors() {
    let bytes = sample();
    for n in 0..bytes.len() {
        let msg = decode_error(&bytes[..n]);
        assert!(msg.contains("truncated"), "{n} bytes: {msg}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(decode_error(&longer).contains("padded"));
    // Past the checksum, the reader itself refuses to read beyond the end, naming the section.
    let mut short = bytes[..bytes.len() - 1].to_vec();
    reseal(&mut short);
    assert!(decode_error(&short).contains("truncated in scoring"));
    longer = bytes;
    longer.push(0);
    reseal(&mut longer);
    assert!(decode_error(&longer).contains("1 bytes after the last section"));
}

#[test]
fn every_flipped_byte_is_a_decode_error() {
    let bytes = sample();
    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0x10;
        let msg = decode_error(&bad);
        let want = match i {
            0..8 => "bad magic",
            8..12 => "format version",
            12..16 | 24.. => "checksum mismatch",
            _ => "truncated or padded",
        };
        assert!(msg.contains(want), "byte {i}: {msg}");
    }
}

#[test]
fn wrong_magic_and_version_are_named() {
    let mut bytes = sample();
    bytes[..8].copy_from_slice(b"PAR1\0\0\0\0");
    assert_eq!(
        decode_error(&bytes),
        "snapshot: not a StreamGuard snapshot (bad magic)"
    );
    let mut bytes = sample();
    bytes[8..12].copy_from_slice(&3u32.to_le_bytes());
    assert_eq!(
        decode_error(&bytes),
        "snapshot: format version 3 is not supported (this build reads 1 to 2)"
    );
}
