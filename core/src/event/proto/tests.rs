use super::wire::{self, Body};
use super::*;
use crate::event::validate::testgen;
use crate::event::{Event, Status};
use proptest::prelude::*;
use prost::Message;

fn decode_all(input: &[u8]) -> (Vec<Event>, Vec<DeadLetter>) {
    let mut out = EventBatch::default();
    let mut dead = Vec::new();
    decode(input, &mut out, &mut dead);
    ((0..out.len()).map(|i| out.event(i)).collect(), dead)
}

fn prost_bytes(events: &[Event]) -> Vec<u8> {
    wire::EventBatch {
        events: events.iter().map(wire::Event::from).collect(),
    }
    .encode_to_vec()
}

fn our_bytes(events: &[Event]) -> Vec<u8> {
    let mut batch = EventBatch::default();
    events.iter().for_each(|e| batch.push(e));
    let mut out = Vec::new();
    encode(&batch, 0..batch.len(), &mut out);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn prost_encoded_events_decode_identically(events in prop::collection::vec(testgen::event(), 0..8)) {
        let (back, dead) = decode_all(&prost_bytes(&events));
        prop_assert!(dead.is_empty(), "{:?}", dead);
        prop_assert_eq!(back, events);
    }

    #[test]
    fn our_encoding_decodes_with_prost(events in prop::collection::vec(testgen::event(), 0..8)) {
        let bytes = our_bytes(&events);
        let msg = wire::EventBatch::decode(bytes.as_slice()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let back: Vec<Event> = msg.events.iter().map(wire::Event::to_event).collect();
        prop_assert_eq!(&back, &events);
        // prost and this encoder agree byte for byte (both write fields in number order).
        prop_assert_eq!(bytes, prost_bytes(&events));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        decode_all(&bytes);
    }
}

fn sample() -> Vec<Event> {
    crate::event::json::tests::samples()
}

#[test]
fn truncated_batch_keeps_the_events_before_the_cut() {
    let bytes = our_bytes(&sample());
    let third = our_bytes(&sample()[..2]).len();
    let cut = &bytes[..bytes.len() - 5];
    let (back, dead) = decode_all(cut);
    assert_eq!(back, sample()[..2]);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reason, Reason::Malformed);
    assert_eq!(dead[0].raw, &cut[third..]);
    assert_eq!(
        dead[0].detail,
        format!(
            "malformed protobuf at byte offset {}: length runs past the end of the message; \
             the {} bytes from offset {third} on are not decoded",
            third + 2,
            cut.len() - third
        )
    );
}

#[test]
fn corrupt_event_inside_intact_framing_is_dead_lettered_alone() {
    let events = sample();
    let first = our_bytes(&events[..1]);
    let mut bytes = first.clone();
    // An Event whose body claims 9 bytes but holds 2: framing says 4 bytes in all.
    bytes.extend_from_slice(&[0x0a, 0x04, 0x1a, 0x09, 0x0a, 0x00]);
    bytes.extend_from_slice(&our_bytes(&events[1..]));
    let (back, dead) = decode_all(&bytes);
    assert_eq!(back, events);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].raw, [0x1a, 0x09, 0x0a, 0x00]);
    assert_eq!(
        dead[0].detail,
        format!(
            "malformed protobuf event at byte offset {}: length runs past the end of the message",
            first.len() + 4
        )
    );
}

#[test]
fn unknown_fields_of_every_wire_type_are_skipped() {
    let e = &sample()[0];
    let mut body = match wire::Event::from(e).body {
        Some(Body::Sensor(s)) => s.encode_to_vec(),
        _ => unreachable!(),
    };
    // field 20 varint, 21 fixed64, 22 bytes, 23 group holding a varint, 24 fixed32
    body.extend_from_slice(&[0xa0, 0x01, 0x96, 0x01]);
    body.extend_from_slice(&[0xa9, 0x01, 1, 2, 3, 4, 5, 6, 7, 8]);
    body.extend_from_slice(&[0xb2, 0x01, 0x02, b'h', b'i']);
    body.extend_from_slice(&[0xbb, 0x01, 0x08, 0x01, 0xbc, 0x01]);
    body.extend_from_slice(&[0xc5, 0x01, 1, 2, 3, 4]);
    let mut ev = vec![(3 << 3) | LEN, body.len() as u8];
    ev.extend_from_slice(&body);
    // and an unknown field in Event and in EventBatch
    ev.extend_from_slice(&[0x78, 0x05]);
    let mut batch = vec![0x10, 0x07, 0x0a, ev.len() as u8];
    batch.extend_from_slice(&ev);
    let (back, dead) = decode_all(&batch);
    assert!(dead.is_empty(), "{dead:?}");
    assert_eq!(back, std::slice::from_ref(e));
}

#[test]
fn invalid_events_get_their_own_dead_letters() {
    let mut bad_status = wire::Event::from(&sample()[1]);
    if let Some(Body::Scan(s)) = &mut bad_status.body {
        s.status = 42;
    }
    let mut no_status = bad_status.clone();
    if let Some(Body::Scan(s)) = &mut no_status.body {
        s.status = 0;
    }
    let mut bad_fen = wire::Event::from(&sample()[2]);
    if let Some(Body::Shipment(s)) = &mut bad_fen.body {
        s.declared_value = "12.345".into();
    }
    let no_ts = wire::Event {
        body: Some(Body::Sensor(wire::Sensor {
            shipment: "A".into(),
            ..Default::default()
        })),
    };
    let cases = [
        (
            bad_status,
            Reason::BadStatus,
            "field 'status': expected one of INFO_RECEIVED",
        ),
        (
            no_status,
            Reason::MissingField,
            "field 'status': missing (required for scan events)",
        ),
        (
            bad_fen,
            Reason::BadField,
            "field 'declared_value': expected a non-negative decimal",
        ),
        (
            no_ts,
            Reason::MissingField,
            "field 'ts': missing (required)",
        ),
        (
            wire::Event { body: None },
            Reason::BadKind,
            "event has no shipment, scan or sensor body",
        ),
    ];
    for (ev, reason, detail) in cases {
        let msg = wire::EventBatch {
            events: vec![wire::Event::from(&sample()[0]), ev.clone()],
        };
        let (back, dead) = decode_all(&msg.encode_to_vec());
        assert_eq!(back.len(), 1);
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].reason, reason, "{}", dead[0].detail);
        assert!(dead[0].detail.starts_with(detail), "{}", dead[0].detail);
        assert_eq!(dead[0].raw, ev.encode_to_vec());
    }
    assert_eq!(Status::from_u8(6), Some(Status::Delivered));
}

/// Field numbers per (message, field) as declared in events.proto, and enum values.
/// (owner, name, number) of every field or enum value.
type Numbered = Vec<(String, String, u32)>;

fn proto_text_numbers() -> (Numbered, Numbered) {
    let text = include_str!("../../../../proto/streamguard/v1/events.proto");
    let (mut fields, mut enums) = (Vec::new(), Vec::new());
    let mut stack: Vec<(String, bool)> = Vec::new();
    for line in text
        .lines()
        .map(|l| l.split("//").next().unwrap_or("").trim())
    {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["message", name, "{"] => stack.push((name.to_string(), false)),
            ["enum", name, "{"] => stack.push((name.to_string(), true)),
            ["oneof", _, "{"] => {
                let outer = stack.last().cloned().unwrap_or_default();
                stack.push(outer);
            }
            ["}"] => {
                stack.pop();
            }
            [.., name, "=", num] if num.ends_with(';') && !stack.is_empty() => {
                let n: u32 = num.trim_end_matches(';').parse().unwrap_or(u32::MAX);
                let (owner, is_enum) = stack.last().cloned().unwrap_or_default();
                let list = if is_enum { &mut enums } else { &mut fields };
                list.push((owner, name.to_string(), n));
            }
            _ => {}
        }
    }
    fields.sort();
    enums.sort();
    (fields, enums)
}

/// The tag prost writes for a message with one field set.
fn tag_of(bytes: Vec<u8>) -> u32 {
    let mut rd = Rd {
        b: &bytes,
        i: 0,
        base: 0,
    };
    rd.key().ok().flatten().map_or(0, |(f, _)| f)
}

macro_rules! tags {
    ($($msg:ident . $field:ident = $val:expr;)*) => {{
        let mut v = vec![$({
            let mut m = wire::$msg::default();
            m.$field = $val;
            (stringify!($msg).to_string(), stringify!($field).trim_start_matches("r#").to_string(), tag_of(m.encode_to_vec()))
        }),*];
        v.sort();
        v
    }};
}

#[test]
fn proto_file_and_prost_structs_agree() {
    let s = || Some("x".to_string());
    let x = || "x".to_string();
    let mut from_code = tags! {
        EventBatch.events = vec![wire::Event::default()];
        Shipment.shipment = x(); Shipment.ts = Some(1); Shipment.id = s(); Shipment.carrier = x();
        Shipment.origin = x(); Shipment.dest = x(); Shipment.tier = 1; Shipment.fragile = Some(true);
        Shipment.order = x(); Shipment.declared_value = x();
        Scan.shipment = x(); Scan.ts = Some(1); Scan.id = s(); Scan.carrier = x(); Scan.status = 1;
        Scan.location = x(); Scan.lat = Some(1.0); Scan.lon = Some(1.0);
        Scan.signer = Some(wire::Signer::default()); Scan.raw_status = x();
        Signer.name = x(); Signer.r#type = 1; Signer.proxy_id = x(); Signer.staff_id = x();
        Sensor.shipment = x(); Sensor.ts = Some(1); Sensor.id = s(); Sensor.device = x();
        Sensor.shock_g = Some(1.0); Sensor.temp_c = Some(1.0); Sensor.humidity_pct = Some(1.0);
        Sensor.tilt_deg = Some(1.0); Sensor.light_lux = Some(1.0); Sensor.battery_pct = Some(1.0);
        Sensor.lat = Some(1.0); Sensor.lon = Some(1.0);
    };
    for (name, body) in [
        ("shipment", Body::Shipment(Default::default())),
        ("scan", Body::Scan(Default::default())),
        ("sensor", Body::Sensor(Default::default())),
    ] {
        let tag = tag_of(wire::Event { body: Some(body) }.encode_to_vec());
        from_code.push(("Event".into(), name.into(), tag));
    }
    from_code.sort();
    let (fields, enums) = proto_text_numbers();
    assert_eq!(fields, from_code);

    // Enum values: the .proto's value is the engine's code + 1, and prost agrees.
    let mut checked = 0;
    for (owner, name, n) in &enums {
        let (prefix, code, prost_val): (&str, Option<u8>, Option<i32>) = match owner.as_str() {
            "Status" => {
                let c =
                    Status::parse(name.trim_start_matches("STATUS_").as_bytes()).map(|s| s as u8);
                (
                    name.as_str(),
                    c,
                    wire::WireStatus::try_from(*n as i32).ok().map(|v| v as i32),
                )
            }
            "Tier" => {
                let c = crate::event::Tier::parse(
                    name.trim_start_matches("TIER_").to_lowercase().as_bytes(),
                );
                (
                    name.as_str(),
                    c.map(|t| t as u8),
                    wire::Tier::try_from(*n as i32).ok().map(|v| v as i32),
                )
            }
            "SignerType" => {
                let c = crate::event::SignerType::parse(
                    name.trim_start_matches("SIGNER_TYPE_")
                        .to_lowercase()
                        .as_bytes(),
                );
                (
                    name.as_str(),
                    c.map(|t| t as u8),
                    wire::WireSignerType::try_from(*n as i32)
                        .ok()
                        .map(|v| v as i32),
                )
            }
            other => panic!("unexpected enum {other}"),
        };
        assert_eq!(prost_val, Some(*n as i32), "{owner}.{prefix}");
        if prefix.ends_with("_UNSPECIFIED") {
            assert_eq!(*n, 0);
        } else {
            assert_eq!(code.map(|c| u32::from(c) + 1), Some(*n), "{owner}.{prefix}");
        }
        checked += 1;
    }
    assert_eq!(checked, 10 + 4 + 4);
}
