use super::*;
use crate::event::{Event, Metric, Signer, SignerType, Status, Tier};

fn dec(input: &str, default_kind: Option<Kind>) -> (EventBatch, Vec<DeadLetter>) {
    let mut out = EventBatch::default();
    let mut dead = Vec::new();
    decode(input.as_bytes(), default_kind, &mut out, &mut dead);
    (out, dead)
}

fn one_dead(input: &str) -> DeadLetter {
    let (out, dead) = dec(input, None);
    assert_eq!(out.len(), 0, "{input}");
    assert_eq!(dead.len(), 1, "{input}");
    dead.into_iter().next().unwrap()
}

pub(crate) fn samples() -> Vec<Event> {
    let mut sensor = Event {
        kind: Some(Kind::Sensor),
        shipment: "SF1234567890".into(),
        ts: 1_795_352_700_123,
        device: "dev-7".into(),
        lat: Some(31.2304),
        lon: Some(121.4737),
        ..Event::default()
    };
    sensor.metrics[Metric::ShockG as usize] = Some(3.25);
    sensor.metrics[Metric::TempC as usize] = Some(-0.1);
    let scan = Event {
        kind: Some(Kind::Scan),
        shipment: "YT9".into(),
        ts: 0,
        id: "evt-\"1\"\n".into(),
        carrier: "yto".into(),
        status: Some(Status::Delivered),
        location: "上海 浦东".into(),
        raw_status: "已签收".into(),
        signer: Some(Signer {
            name: "张三".into(),
            kind: Some(SignerType::Proxy),
            proxy_id: "p1".into(),
            staff_id: String::new(),
        }),
        ..Event::default()
    };
    let shipment = Event {
        kind: Some(Kind::Shipment),
        shipment: "JD0001".into(),
        ts: crate::time::MAX_TS_MS,
        carrier: "jd".into(),
        origin: "CN-31".into(),
        dest: "CN-11".into(),
        tier: Some(Tier::Premium),
        fragile: Some(true),
        order: "RO-42".into(),
        declared_value_fen: Some(129_900),
        ..Event::default()
    };
    vec![sensor, scan, shipment]
}

#[test]
fn round_trip_is_exact() {
    let events = samples();
    let mut text = Vec::new();
    for e in &events {
        encode_event(e, &mut text);
    }
    let mut out = EventBatch::default();
    let mut dead = Vec::new();
    decode(&text, None, &mut out, &mut dead);
    assert!(dead.is_empty(), "{dead:?}");
    let back: Vec<Event> = (0..out.len()).map(|i| out.event(i)).collect();
    assert_eq!(back, events);
    let mut again = Vec::new();
    for i in 0..out.len() {
        encode_row(&out, i, &mut again);
    }
    assert_eq!(again, text);
    let line = std::str::from_utf8(&text).unwrap().lines().nth(2).unwrap();
    assert_eq!(
        line,
        r#"{"kind":"shipment","shipment":"JD0001","ts":253402300799999,"carrier":"jd","origin":"CN-31","dest":"CN-11","tier":"premium","fragile":true,"order":"RO-42","declared_value":"1299.00"}"#
    );
}

#[test]
fn ts_integer_and_rfc3339_with_offset_agree() {
    let (out, dead) = dec(
        r#"{"kind":"scan","shipment":"A","status":"PICKED_UP","ts":1795352700123}
           {"kind":"scan","shipment":"A","status":"PICKED_UP","ts":"2026-11-22T21:05:00.123+08:00"}
           {"kind":"scan","shipment":"A","status":"PICKED_UP","ts":"2026-11-22T13:05:00.123\u005a"}"#,
        None,
    );
    assert!(dead.is_empty(), "{dead:?}");
    assert_eq!(out.ts, vec![1_795_352_700_123; 3]);
}

#[test]
fn single_object_array_and_ndjson_framings() {
    let obj = r#"{"shipment":"A","ts":1,"temp_c":20}"#;
    assert_eq!(dec(obj, None).0.len(), 1);
    let arr = format!("[{obj},\n {obj} ]");
    assert_eq!(dec(&arr, None).0.len(), 2);
    let nd = format!("\u{feff}{obj}\r\n\n   \n{obj}\n");
    let (out, dead) = dec(&nd, None);
    assert_eq!((out.len(), dead.len()), (2, 0));
    assert_eq!(dec("", None).0.len() + dec(" \n[]\n", None).1.len(), 0);
}

#[test]
fn ndjson_bad_line_among_good_ones() {
    let input = "{\"shipment\":\"A\",\"ts\":1,\"temp_c\":1}\n\
                 {\"shipment\":\"B\",\"ts\":2,\"temp_c\":\n\
                 {\"shipment\":\"C\",\"ts\":3,\"temp_c\":3}\n\
                 {\"shipment\":\"D\",\"ts\":\"yesterday\",\"temp_c\":4}\n\
                 {\"shipment\":\"E\",\"ts\":5,\"temp_c\":5} trailing\n\
                 {\"shipment\":\"F\",\"ts\":6,\"temp_c\":6}\n";
    let (out, dead) = dec(input, None);
    let ships: Vec<_> = (0..out.len()).map(|i| out.event(i).shipment).collect();
    assert_eq!(ships, ["A", "C", "E", "F"]);
    assert_eq!(dead.len(), 3);
    assert_eq!(dead[0].reason, Reason::Malformed);
    assert_eq!(dead[0].raw, b"{\"shipment\":\"B\",\"ts\":2,\"temp_c\":");
    assert_eq!(
        dead[0].detail,
        "malformed JSON at byte 67: line ends inside a value"
    );
    assert_eq!(dead[1].reason, Reason::BadTs);
    assert_eq!(
        dead[1].raw,
        b"{\"shipment\":\"D\",\"ts\":\"yesterday\",\"temp_c\":4}"
    );
    assert_eq!(
        dead[1].detail,
        r#"field 'ts': expected integer milliseconds or an RFC 3339 string, got "yesterday""#
    );
    assert_eq!(dead[2].raw, b"trailing");
}

#[test]
fn array_with_one_bad_element_and_a_broken_array() {
    let input = r#"[{"shipment":"A","ts":1,"device":"d"}, {"shipment":"","ts":2,"device":"d"}, 7,
                    {"shipment":"C","ts":3,"device":"d"}]"#;
    let (out, dead) = dec(input, None);
    assert_eq!(out.len(), 2);
    assert_eq!(dead.len(), 2);
    assert_eq!(dead[0].reason, Reason::BadShipment);
    assert_eq!(dead[0].raw, br#"{"shipment":"","ts":2,"device":"d"}"#);
    assert_eq!(dead[1].raw, b"7");
    assert_eq!(
        dead[1].detail,
        "array element: expected a JSON object, got 7"
    );

    let broken = r#"[{"shipment":"A","ts":1,"device":"d"}, {"shipment":"B","ts":2,"#;
    let d = one_dead(broken);
    assert_eq!(d.reason, Reason::Malformed);
    assert_eq!(d.raw, broken.as_bytes());
}

#[test]
fn every_reason_with_its_detail() {
    let cases: &[(&str, Reason, &str)] = &[
        (r#"{"shipment":"A","ts":1}"#, Reason::BadKind, "field 'kind': missing, and no default kind"),
        (r#"{"kind":"truck","shipment":"A","ts":1}"#, Reason::BadKind,
            r#"field 'kind': expected one of shipment, scan, sensor, got "truck""#),
        (r#"{"kind":"sensor","ts":1}"#, Reason::MissingField, "field 'shipment': missing (required)"),
        (r#"{"kind":"sensor","shipment":"A"}"#, Reason::MissingField, "field 'ts': missing (required)"),
        (r#"{"kind":"scan","shipment":"A","ts":1}"#, Reason::MissingField,
            "field 'status': missing (required for scan events)"),
        (r#"{"kind":"sensor","shipment":"A\u0001","ts":1}"#, Reason::BadShipment,
            r#"field 'shipment': expected 1-64 bytes of printable ASCII, got "A\u0001""#),
        (r#"{"kind":"sensor","shipment":42,"ts":1}"#, Reason::BadShipment,
            "field 'shipment': expected a string, got 42"),
        (r#"{"kind":"sensor","shipment":"A","ts":1.5}"#, Reason::BadTs,
            "field 'ts': expected integer milliseconds or an RFC 3339 string, got 1.5"),
        (r#"{"kind":"sensor","shipment":"A","ts":-1}"#, Reason::BadTs, "field 'ts': -1 is outside years 1970-9999"),
        (r#"{"kind":"scan","shipment":"A","ts":1,"status":"LOST"}"#, Reason::BadStatus,
            r#"field 'status': expected one of INFO_RECEIVED, PICKED_UP, IN_TRANSIT, OUT_FOR_DELIVERY, AVAILABLE_FOR_PICKUP, DELIVERY_FAILED, DELIVERED, EXCEPTION, RETURNED_TO_SENDER, got "LOST""#),
        (r#"{"kind":"sensor","shipment":"A","ts":1,"temp_c":"hot"}"#, Reason::BadField,
            r#"field 'temp_c': expected a finite number, got "hot""#),
        (r#"{"kind":"sensor","shipment":"A","ts":1,"shock_g":1e999}"#, Reason::BadField,
            "field 'shock_g': expected a finite number, got inf"),
        (r#"{"kind":"scan","status":"IN_TRANSIT","shipment":"A","ts":1,"lat":91}"#, Reason::BadField,
            "field 'lat': expected a number in [-90, 90], got 91"),
        (r#"{"kind":"sensor","shipment":"A","ts":1,"lon":-180.5}"#, Reason::BadField,
            "field 'lon': expected a number in [-180, 180], got -180.5"),
        (r#"{"kind":"shipment","shipment":"A","ts":1,"tier":"gold"}"#, Reason::BadField,
            r#"field 'tier': expected one of basic, advanced, premium, got "gold""#),
        (r#"{"kind":"shipment","shipment":"A","ts":1,"fragile":"yes"}"#, Reason::BadField,
            r#"field 'fragile': expected true or false, got "yes""#),
        (r#"{"kind":"shipment","shipment":"A","ts":1,"declared_value":12.345}"#, Reason::BadField,
            "field 'declared_value': expected a non-negative decimal in CNY with at most 2 decimals, got 12.345"),
        (r#"{"kind":"scan","status":"DELIVERED","shipment":"A","ts":1,"signer":{"type":"drone"}}"#,
            Reason::BadField, r#"field 'signer.type': expected one of self, proxy, locker, got "drone""#),
        (r#"{"kind":"scan","status":"DELIVERED","shipment":"A","ts":1,"signer":"me"}"#,
            Reason::BadField, r#"field 'signer': expected an object, got "me""#),
        (r#"{"kind":"sensor","shipment":"A","ts":1,"device":7}"#, Reason::BadField,
            "field 'device': expected a string, got 7"),
        (r#"{"kind":"sensor","shipment":"A","ts":1,"device":"d""#, Reason::Malformed,
            "malformed JSON at byte 51: expected ',' or '}' in object"),
        (r#"{"kind":"sensor","shipment":"A\x","ts":1}"#, Reason::Malformed,
            "malformed JSON at byte 28: invalid escape in string"),
        ("\"just a string\"", Reason::Malformed, r#"top-level value: expected a JSON object, got "just a string""#),
    ];
    for (input, reason, detail) in cases {
        let d = one_dead(input);
        assert_eq!(d.reason, *reason, "{input}: {}", d.detail);
        assert!(d.detail.starts_with(detail), "{input}: {}", d.detail);
        assert_eq!(d.raw, input.as_bytes());
    }
}

#[test]
fn kind_resolution_order() {
    let sensorish = r#"{"shipment":"A","ts":1,"device":"d","status":"PICKED_UP"}"#;
    assert_eq!(dec(sensorish, None).0.kind, [Kind::Scan as u8]);
    assert_eq!(
        dec(sensorish, Some(Kind::Sensor)).0.kind,
        [Kind::Sensor as u8]
    );
    let explicit = r#"{"kind":"shipment","shipment":"A","ts":1,"device":"d"}"#;
    assert_eq!(
        dec(explicit, Some(Kind::Sensor)).0.kind,
        [Kind::Shipment as u8]
    );
    assert_eq!(
        dec(r#"{"shipment":"A","ts":1,"order":"o"}"#, None).0.kind,
        [Kind::Shipment as u8]
    );
    assert_eq!(
        dec(r#"{"shipment":"A","ts":1,"lux":1,"battery_pct":9}"#, None)
            .0
            .kind,
        [Kind::Sensor as u8]
    );
}

#[test]
fn unknown_and_foreign_fields_are_ignored() {
    let input = r#"{"kind":"sensor","shipment":"A","ts":1,"x":{"deep":[1,{"y":null}]},"status":"bogus","tier":"gold","temp_c":null,"humidity_pct":50,"signer":{"nope":1}}"#;
    let (out, dead) = dec(input, None);
    assert!(dead.is_empty(), "{dead:?}");
    let e = out.event(0);
    assert_eq!(
        (e.status, e.tier, e.metrics[1], e.metrics[2]),
        (None, None, None, Some(50.0))
    );
}

#[test]
fn escaped_strings_land_unescaped() {
    let input = r#"{"kind":"scan","shipment":"A\/B","ts":1,"status":"IN\u005fTRANSIT","location":"\u4e0a\u6d77","carrier":"s\"f"}"#;
    let (out, dead) = dec(input, None);
    assert!(dead.is_empty(), "{dead:?}");
    let e = out.event(0);
    assert_eq!(
        (e.shipment.as_str(), e.location.as_str(), e.carrier.as_str()),
        ("A/B", "上海", "s\"f")
    );
    assert_eq!(e.status, Some(Status::InTransit));
}

#[test]
fn declared_value_as_string_or_number() {
    for (v, fen) in [
        (r#""1299.00""#, 129_900),
        ("1299.5", 129_950),
        ("0", 0),
        (r#""7.1""#, 710),
    ] {
        let input = format!(r#"{{"shipment":"A","ts":1,"declared_value":{v}}}"#);
        let (out, dead) = dec(&input, None);
        assert!(dead.is_empty(), "{dead:?}");
        assert_eq!(out.declared_value_fen, [fen]);
    }
}

mod props {
    use super::*;
    use crate::event::validate::testgen;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn encode_then_decode_is_exact(events in prop::collection::vec(testgen::event(), 0..8)) {
            let mut text = Vec::new();
            events.iter().for_each(|e| encode_event(e, &mut text));
            let mut out = EventBatch::default();
            let mut dead = Vec::new();
            decode(&text, None, &mut out, &mut dead);
            prop_assert!(dead.is_empty(), "{:?}", dead);
            let back: Vec<Event> = (0..out.len()).map(|i| out.event(i)).collect();
            prop_assert_eq!(&back, &events);
            // The same events as one JSON array decode the same way.
            let array = format!("[{}]", String::from_utf8_lossy(&text).trim_end().replace('\n', ","));
            let mut again = EventBatch::default();
            decode(array.as_bytes(), None, &mut again, &mut dead);
            prop_assert!(dead.is_empty(), "{:?}", dead);
            prop_assert_eq!(again.len(), events.len());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let mut out = EventBatch::default();
            let mut dead = Vec::new();
            decode(&bytes, None, &mut out, &mut dead);
        }

        #[test]
        fn mangled_json_never_panics(events in prop::collection::vec(testgen::event(), 1..4), cut in any::<prop::sample::Index>()) {
            let mut text = Vec::new();
            events.iter().for_each(|e| encode_event(e, &mut text));
            let cut = cut.index(text.len());
            let mut out = EventBatch::default();
            let mut dead = Vec::new();
            decode(&text[..cut], Some(Kind::Sensor), &mut out, &mut dead);
            prop_assert!(out.len() + dead.len() <= events.len() + 1);
        }
    }
}
