//! proptest strategies for valid events of every kind (shared by the codec tests).

use crate::event::{Event, Kind, Signer, SignerType, Status, Tier, N_METRICS};
use crate::time::MAX_TS_MS;
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[\\PC\n\t\"\\\\]{1,12}"]
}

fn ship() -> impl Strategy<Value = String> {
    "[ -~]{1,64}"
}

fn ts() -> impl Strategy<Value = i64> {
    prop_oneof![0..=MAX_TS_MS, 1_700_000_000_000i64..1_900_000_000_000]
}

fn num() -> impl Strategy<Value = Option<f64>> {
    prop::option::of(prop_oneof![
        any::<f64>().prop_filter("finite", |v| v.is_finite()),
        (-10_000i32..10_000).prop_map(|v| f64::from(v) / 100.0),
    ])
}

fn pos() -> impl Strategy<Value = (Option<f64>, Option<f64>)> {
    (
        prop::option::of(-90.0..=90.0f64),
        prop::option::of(-180.0..=180.0f64),
    )
}

fn shipment() -> impl Strategy<Value = Event> {
    (
        (ship(), ts(), text(), text()),
        (
            text(),
            text(),
            prop::option::of(prop::sample::select(Tier::ALL.to_vec())),
        ),
        (
            prop::option::of(any::<bool>()),
            text(),
            prop::option::of(0i64..=i64::MAX),
        ),
    )
        .prop_map(
            |((shipment, ts, id, carrier), (origin, dest, tier), (fragile, order, fen))| Event {
                kind: Some(Kind::Shipment),
                shipment,
                ts,
                id,
                carrier,
                origin,
                dest,
                tier,
                fragile,
                order,
                declared_value_fen: fen,
                ..Event::default()
            },
        )
}

fn signer() -> impl Strategy<Value = Option<Signer>> {
    (
        text(),
        prop::option::of(prop::sample::select(SignerType::ALL.to_vec())),
        text(),
        text(),
    )
        .prop_map(|(name, kind, proxy_id, staff_id)| {
            let s = Signer {
                name,
                kind,
                proxy_id,
                staff_id,
            };
            // An all-empty signer is no signer: every format reads it back as absent.
            (s != Signer::default()).then_some(s)
        })
}

fn scan() -> impl Strategy<Value = Event> {
    (
        (
            ship(),
            ts(),
            text(),
            text(),
            prop::sample::select(Status::ALL.to_vec()),
        ),
        (text(), text(), signer(), pos()),
    )
        .prop_map(
            |((shipment, ts, id, carrier, status), (location, raw_status, signer, (lat, lon)))| {
                Event {
                    kind: Some(Kind::Scan),
                    shipment,
                    ts,
                    id,
                    carrier,
                    status: Some(status),
                    location,
                    raw_status,
                    signer,
                    lat,
                    lon,
                    ..Event::default()
                }
            },
        )
}

fn sensor() -> impl Strategy<Value = Event> {
    (
        (ship(), ts(), text(), text()),
        prop::array::uniform6(num()),
        pos(),
    )
        .prop_map(|((shipment, ts, id, device), metrics, (lat, lon))| {
            let metrics: [Option<f64>; N_METRICS] = metrics;
            Event {
                kind: Some(Kind::Sensor),
                shipment,
                ts,
                id,
                device,
                metrics,
                lat,
                lon,
                ..Event::default()
            }
        })
}

/// Any valid event, of any kind, with only its kind's fields set.
pub fn event() -> impl Strategy<Value = Event> {
    prop_oneof![shipment(), scan(), sensor()]
}
