use super::*;
use crate::event::validate::testgen;
use crate::event::{Event, EventBatch, Metric};
use arrow_array::{
    DictionaryArray, Float32Array, Int64Array, LargeStringArray, TimestampSecondArray,
};
use arrow_schema::{Field, Schema};
use proptest::prelude::*;
use std::sync::Arc;

fn batch_of(events: &[Event]) -> EventBatch {
    let mut b = EventBatch::default();
    events.iter().for_each(|e| b.push(e));
    b
}

fn ipc_of(events: &[Event]) -> Vec<u8> {
    let mut out = Vec::new();
    write_ipc(&to_record_batches(&batch_of(events)), &mut out);
    out
}

/// What a view exposes of row `i`, as an owned event (fields the view lacks stay default).
fn viewed(v: &BatchView<'_>, i: usize) -> Event {
    let s = |x: Option<Strs<'_>>| {
        x.map_or(String::new(), |x| {
            String::from_utf8_lossy(x.get(i)).into_owned()
        })
    };
    let f = |x: Option<F64s<'_>>| x.map(|x| x.get(i)).filter(|x| !x.is_nan());
    Event {
        kind: Kind::from_u8(v.kind.get(i)),
        shipment: s(Some(v.shipment)),
        ts: v.ts[i],
        carrier: s(v.carrier),
        status: v.status.and_then(|c| Status::from_u8(c[i])),
        location: s(v.location),
        metrics: std::array::from_fn(|m| f(v.metrics[m])),
        tier: v.tier.and_then(|c| Tier::from_u8(c[i])),
        fragile: v
            .fragile
            .and_then(|c| (c[i] != NONE_U8).then_some(c[i] == 1)),
        ..Event::default()
    }
}

/// The part of `e` a view exposes.
fn exposed(e: &Event) -> Event {
    Event {
        kind: e.kind,
        shipment: e.shipment.clone(),
        ts: e.ts,
        carrier: e.carrier.clone(),
        status: e.status,
        location: e.location.clone(),
        metrics: e.metrics,
        tier: e.tier,
        fragile: e.fragile,
        ..Event::default()
    }
}

fn round_trip(events: &[Event]) {
    let batches = read_ipc(&ipc_of(events)).unwrap();
    let mut back_full = Vec::new();
    let mut back_view = Vec::new();
    let mut scratch = ArrowScratch::default();
    for rb in &batches {
        let mut dead = Vec::new();
        let view = view(rb, None, &mut scratch, &mut dead).unwrap();
        assert!(dead.is_empty(), "{dead:?}");
        assert!(view.rejected.is_none());
        back_view.extend((0..view.len).map(|i| viewed(&view, i)));
        back_full.extend((0..rb.num_rows()).map(|i| event_at(rb, i, None)));
    }
    // Batches come out grouped by kind, in first-seen kind order.
    let mut kinds: Vec<Kind> = Vec::new();
    events.iter().filter_map(|e| e.kind).for_each(|k| {
        if !kinds.contains(&k) {
            kinds.push(k)
        }
    });
    let grouped: Vec<Event> = kinds
        .iter()
        .flat_map(|k| events.iter().filter(move |e| e.kind == Some(*k)))
        .cloned()
        .collect();
    assert_eq!(back_full, grouped);
    assert_eq!(back_view, grouped.iter().map(exposed).collect::<Vec<_>>());
}

#[test]
fn round_trip_samples() {
    round_trip(&crate::event::json::tests::samples());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn round_trip_random(events in prop::collection::vec(testgen::event(), 0..6)) {
        round_trip(&events);
    }
}

fn rb(cols: Vec<(&str, ArrayRef)>) -> RecordBatch {
    RecordBatch::try_from_iter(cols).unwrap()
}

fn view_err(rb: &RecordBatch) -> DeadLetter {
    let mut scratch = ArrowScratch::default();
    view(rb, Some(Kind::Sensor), &mut scratch, &mut Vec::new()).unwrap_err()
}

fn ships(n: usize) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(
        (0..n).map(|i| format!("S{i}")),
    ))
}

#[test]
fn wrong_schemas_are_rejected_with_the_column_named() {
    let e = view_err(&rb(vec![
        ("shipment", ships(2)),
        ("temp_c", Arc::new(Float64Array::from(vec![1.0, 2.0]))),
    ]));
    assert_eq!(
        (e.reason, e.detail.as_str()),
        (Reason::Schema, "column 'ts': missing (required)")
    );
    let ts_str: ArrayRef = Arc::new(StringArray::from(vec!["2026-01-01T00:00:00Z"; 2]));
    let e = view_err(&rb(vec![("shipment", ships(2)), ("ts", ts_str)]));
    assert_eq!(e.reason, Reason::Schema);
    assert_eq!(
        e.detail,
        "column 'ts': expected Int64 or Timestamp, found Utf8"
    );
    let ts: ArrayRef = Arc::new(Int64Array::from(vec![1, 2]));
    let e = view_err(&rb(vec![("ts", ts.clone())]));
    assert_eq!(e.detail, "column 'shipment': missing (required)");
    let e = view_err(&rb(vec![
        ("shipment", ships(2)),
        ("ts", ts.clone()),
        ("temp_c", ships(2)),
    ]));
    assert_eq!(
        e.detail,
        "column 'temp_c': expected a numeric column, found Utf8"
    );
    let mut scratch = ArrowScratch::default();
    let e = view(
        &rb(vec![("shipment", ships(2)), ("ts", ts)]),
        None,
        &mut scratch,
        &mut Vec::new(),
    )
    .unwrap_err();
    assert_eq!(e.reason, Reason::BadKind);
}

#[test]
fn nulls_in_a_metric_column_read_as_absent() {
    let temp: ArrayRef = Arc::new(Float64Array::from(vec![
        Some(20.5),
        None,
        Some(f64::NAN),
        Some(-3.0),
    ]));
    let shock: ArrayRef = Arc::new(Float32Array::from(vec![None, Some(1.5), None, None]));
    let ts: ArrayRef = Arc::new(Int64Array::from(vec![1, 2, 3, 4]));
    let batch = rb(vec![
        ("shipment", ships(4)),
        ("ts", ts),
        ("temp_c", temp),
        ("shock_g", shock),
    ]);
    let mut scratch = ArrowScratch::default();
    let mut dead = Vec::new();
    let v = view(&batch, None, &mut scratch, &mut dead).unwrap();
    assert!(dead.is_empty());
    assert!(matches!(v.kind, KindCol::All(Kind::Sensor)));
    let temp = v.metrics[Metric::TempC as usize].unwrap();
    assert!(temp.valid.is_some());
    assert_eq!(temp.get(0), 20.5);
    assert!(temp.get(1).is_nan() && temp.get(2).is_nan());
    assert_eq!(temp.get(3), -3.0);
    let shock = v.metrics[Metric::ShockG as usize].unwrap();
    assert_eq!(shock.get(1), 1.5);
    assert!(shock.get(0).is_nan());
    assert!(v.metrics[Metric::HumidityPct as usize].is_none());
}

#[test]
fn sliced_batch_with_an_offset_reads_its_own_rows() {
    let events = crate::event::json::tests::samples();
    let mut many = Vec::new();
    for i in 0..5 {
        let mut e = events[0].clone();
        e.shipment = format!("SHIP-{i}");
        e.ts += i;
        e.metrics[Metric::TempC as usize] = (i % 2 == 0).then_some(i as f64);
        many.push(e);
    }
    let full = &to_record_batches(&batch_of(&many))[0];
    let sliced = full.slice(2, 3);
    let mut scratch = ArrowScratch::default();
    let v = view(&sliced, None, &mut scratch, &mut Vec::new()).unwrap();
    assert_eq!(v.len, 3);
    for r in 0..3 {
        assert_eq!(viewed(&v, r), exposed(&many[r + 2]));
        assert_eq!(event_at(&sliced, r, None), many[r + 2]);
    }
    assert_ne!(
        v.shipment.offsets[0], 0,
        "the view borrows the offsets at the slice's start"
    );
}

#[test]
fn other_types_are_converted_into_the_scratch() {
    let ship: ArrayRef = Arc::new(LargeStringArray::from(vec!["A", "B"]));
    let status: ArrayRef = Arc::new(DictionaryArray::<arrow_array::types::Int8Type>::from_iter(
        ["PICKED_UP", "DELIVERED"],
    ));
    let ts: ArrayRef = Arc::new(TimestampSecondArray::from(vec![
        1_700_000_000,
        1_700_000_001,
    ]));
    let batch = rb(vec![("shipment", ship), ("ts", ts), ("status", status)]);
    let mut scratch = ArrowScratch::default();
    let v = view(&batch, None, &mut scratch, &mut Vec::new()).unwrap();
    assert!(matches!(v.kind, KindCol::All(Kind::Scan)));
    assert_eq!(v.ts, [1_700_000_000_000, 1_700_000_001_000]);
    assert_eq!(v.shipment.get(1), b"B");
    assert_eq!(
        v.status.unwrap(),
        [Status::PickedUp as u8, Status::Delivered as u8]
    );
}

#[test]
fn bad_rows_are_dead_lettered_and_marked() {
    let ship: ArrayRef = Arc::new(StringArray::from(vec![
        Some("A"),
        None,
        Some("C"),
        Some("D"),
        Some("E"),
    ]));
    let ts: ArrayRef = Arc::new(Int64Array::from(vec![
        Some(1),
        Some(2),
        None,
        Some(4),
        Some(5),
    ]));
    let status: ArrayRef = Arc::new(StringArray::from(vec![
        Some("PICKED_UP"),
        Some("PICKED_UP"),
        Some("PICKED_UP"),
        Some("LOST"),
        None,
    ]));
    let kind: ArrayRef = Arc::new(StringArray::from(vec!["scan"; 5]));
    let batch = rb(vec![
        ("kind", kind),
        ("shipment", ship),
        ("ts", ts),
        ("status", status),
    ]);
    let mut scratch = ArrowScratch::default();
    let mut dead = Vec::new();
    let v = view(&batch, None, &mut scratch, &mut dead).unwrap();
    assert_eq!(v.rejected.unwrap(), [0, 1, 1, 1, 1]);
    let got: Vec<(Reason, &str)> = dead.iter().map(|d| (d.reason, d.detail.as_str())).collect();
    assert_eq!(
        got[0],
        (Reason::MissingField, "field 'shipment': missing (required)")
    );
    assert_eq!(
        got[1],
        (Reason::MissingField, "field 'ts': missing (required)")
    );
    assert_eq!(got[2].0, Reason::BadStatus);
    assert!(got[2].1.ends_with(r#"got "LOST""#));
    assert_eq!(
        got[3],
        (
            Reason::MissingField,
            "field 'status': missing (required for scan events)"
        )
    );
    assert_eq!(dead[2].raw, br#"{"kind":"scan","shipment":"D","ts":4}"#);
}

#[test]
fn metadata_and_kind_column_decide_the_kind() {
    let ts: ArrayRef = Arc::new(Int64Array::from(vec![1, 2]));
    let kind: ArrayRef = Arc::new(StringArray::from(vec!["sensor", "truck"]));
    let batch = rb(vec![
        ("kind", kind),
        ("shipment", ships(2)),
        ("ts", ts.clone()),
    ]);
    let mut scratch = ArrowScratch::default();
    let mut dead = Vec::new();
    let v = view(&batch, Some(Kind::Scan), &mut scratch, &mut dead).unwrap();
    assert_eq!(v.rejected.unwrap(), [0, 1]);
    assert_eq!(
        dead[0].detail,
        r#"field 'kind': expected one of shipment, scan, sensor, got "truck""#
    );

    let schema = Schema::new(vec![
        Field::new("shipment", DataType::Utf8, false),
        Field::new("ts", DataType::Int64, false),
    ])
    .with_metadata(arrow_schema::Metadata::new().with(KIND_METADATA, "shipment"));
    let batch = RecordBatch::try_new(Arc::new(schema), vec![ships(2), ts]).unwrap();
    let v = view(&batch, Some(Kind::Sensor), &mut scratch, &mut Vec::new()).unwrap();
    assert!(matches!(v.kind, KindCol::All(Kind::Shipment)));
}

#[test]
fn concatenated_streams_and_garbage() {
    let events = crate::event::json::tests::samples();
    let mut two = ipc_of(&events[..1]);
    two.extend(ipc_of(&events[1..]));
    assert_eq!(read_ipc(&two).unwrap().len(), 3);
    let e = read_ipc(&two[..two.len() / 2]).unwrap_err();
    assert_eq!(e.reason, Reason::Malformed);
    assert!(
        e.detail
            .starts_with("malformed Arrow IPC stream starting at byte offset "),
        "{}",
        e.detail
    );
    assert!(read_ipc(b"not arrow at all").is_err());
}
