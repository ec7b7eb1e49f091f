//! EventBatch -> Arrow record batches (one per kind) -> IPC streams.

use super::KIND_METADATA;
use crate::event::{
    EventBatch, Kind, Metric, SignerType, Status, StrColumn, Tier, NONE_FEN, NONE_U8,
};
use arrow_array::{
    ArrayRef, BooleanArray, Decimal128Array, Float64Array, RecordBatch, StringArray, StructArray,
    TimestampMillisecondArray,
};
use arrow_buffer::NullBuffer;
use arrow_schema::{ArrowError, DataType, Field, Fields, Metadata, Schema, TimeUnit};
use std::sync::Arc;

/// Precision of the `declared_value` Decimal128 column: every i64 count of fen fits.
const FEN_PRECISION: u8 = 19;

/// Split `batch` by kind into one record batch per kind (in first-seen kind order).
///
/// Each batch names its kind in the schema metadata (`streamguard.kind`) and has only that
/// kind's columns, named as in spec §1: strings as Utf8, `ts` as Timestamp(ms, UTC), metrics
/// and positions as Float64, `fragile` Boolean, `declared_value` Decimal128(19, 2) (yuan, so the
/// integer behind it is fen), `signer` a struct of four strings. Absent values are nulls.
pub fn to_record_batches(batch: &EventBatch) -> Vec<RecordBatch> {
    let mut order: Vec<Kind> = Vec::new();
    for &k in &batch.kind {
        if let Some(k) = Kind::from_u8(k) {
            if !order.contains(&k) {
                order.push(k);
            }
        }
    }
    order
        .into_iter()
        .map(|k| {
            let rows: Vec<usize> = (0..batch.len())
                .filter(|&i| batch.kind[i] == k as u8)
                .collect();
            kind_batch(batch, k, &rows)
        })
        .collect()
}

fn text(col: &StrColumn, rows: &[usize]) -> ArrayRef {
    Arc::new(
        rows.iter()
            .map(|&i| Some(String::from_utf8_lossy(col.get(i))).filter(|s| !s.is_empty()))
            .collect::<StringArray>(),
    )
}

fn code(col: &[u8], rows: &[usize], name: fn(u8) -> Option<&'static str>) -> ArrayRef {
    Arc::new(rows.iter().map(|&i| name(col[i])).collect::<StringArray>())
}

fn f64s(col: &[f64], rows: &[usize]) -> ArrayRef {
    Arc::new(
        rows.iter()
            .map(|&i| Some(col[i]).filter(|v| !v.is_nan()))
            .collect::<Float64Array>(),
    )
}

fn utf8(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

fn kind_batch(b: &EventBatch, kind: Kind, rows: &[usize]) -> RecordBatch {
    let ts = TimestampMillisecondArray::from(rows.iter().map(|&i| b.ts[i]).collect::<Vec<_>>())
        .with_timezone("UTC");
    let mut fields = vec![
        utf8("shipment", false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        utf8("id", true),
    ];
    let mut cols: Vec<ArrayRef> = vec![text(&b.shipment, rows), Arc::new(ts), text(&b.id, rows)];
    let mut add = |f: Field, a: ArrayRef| {
        fields.push(f);
        cols.push(a);
    };
    let status_name = |c: u8| Status::from_u8(c).map(Status::as_str);
    match kind {
        Kind::Shipment => {
            add(utf8("carrier", true), text(&b.carrier, rows));
            add(utf8("origin", true), text(&b.origin, rows));
            add(utf8("dest", true), text(&b.dest, rows));
            add(
                utf8("tier", true),
                code(&b.tier, rows, |c| Tier::from_u8(c).map(Tier::as_str)),
            );
            let fragile: BooleanArray = rows
                .iter()
                .map(|&i| (b.fragile[i] != NONE_U8).then_some(b.fragile[i] == 1))
                .collect();
            add(
                Field::new("fragile", DataType::Boolean, true),
                Arc::new(fragile),
            );
            add(utf8("order", true), text(&b.order, rows));
            let fen: Decimal128Array = rows
                .iter()
                .map(|&i| {
                    (b.declared_value_fen[i] != NONE_FEN)
                        .then(|| i128::from(b.declared_value_fen[i]))
                })
                .collect();
            let dt = DataType::Decimal128(FEN_PRECISION, 2);
            // Precision 19 holds every i64, so this cannot fail.
            let fen = fen.with_data_type(dt.clone());
            add(Field::new("declared_value", dt, true), Arc::new(fen));
        }
        Kind::Scan => {
            add(utf8("carrier", true), text(&b.carrier, rows));
            add(utf8("status", true), code(&b.status, rows, status_name));
            add(utf8("location", true), text(&b.location, rows));
            add(
                Field::new("lat", DataType::Float64, true),
                f64s(&b.lat, rows),
            );
            add(
                Field::new("lon", DataType::Float64, true),
                f64s(&b.lon, rows),
            );
            let (field, signer) = signer(b, rows);
            add(field, signer);
            add(utf8("raw_status", true), text(&b.raw_status, rows));
        }
        Kind::Sensor => {
            add(utf8("device", true), text(&b.device, rows));
            for m in Metric::ALL {
                add(
                    Field::new(m.as_str(), DataType::Float64, true),
                    f64s(&b.metrics[m as usize], rows),
                );
            }
            add(
                Field::new("lat", DataType::Float64, true),
                f64s(&b.lat, rows),
            );
            add(
                Field::new("lon", DataType::Float64, true),
                f64s(&b.lon, rows),
            );
        }
    }
    let schema =
        Schema::new(fields).with_metadata(Metadata::new().with(KIND_METADATA, kind.as_str()));
    // Every column was built above with exactly `rows.len()` entries and the declared type.
    RecordBatch::try_new(Arc::new(schema), cols)
        .unwrap_or_else(|e| unreachable!("event batch schema: {e}"))
}

fn signer(b: &EventBatch, rows: &[usize]) -> (Field, ArrayRef) {
    let fields = Fields::from(vec![
        utf8("name", true),
        utf8("type", true),
        utf8("proxy_id", true),
        utf8("staff_id", true),
    ]);
    let present: Vec<bool> = rows
        .iter()
        .map(|&i| {
            b.signer_type[i] != NONE_U8
                || !b.signer_name.get(i).is_empty()
                || !b.signer_proxy_id.get(i).is_empty()
                || !b.signer_staff_id.get(i).is_empty()
        })
        .collect();
    let children = vec![
        text(&b.signer_name, rows),
        code(&b.signer_type, rows, |c| {
            SignerType::from_u8(c).map(SignerType::as_str)
        }),
        text(&b.signer_proxy_id, rows),
        text(&b.signer_staff_id, rows),
    ];
    let nulls = NullBuffer::from(present);
    let arr = StructArray::new(fields.clone(), children, Some(nulls));
    (
        Field::new("signer", DataType::Struct(fields), true),
        Arc::new(arr),
    )
}

/// Write record batches as one IPC stream per schema, concatenated. Panics only if the arrow
/// writer rejects a batch, which cannot happen for batches from [`to_record_batches`]; use
/// [`try_write_ipc`] for batches from elsewhere.
pub fn write_ipc(batches: &[RecordBatch], out: &mut Vec<u8>) {
    if let Err(e) = try_write_ipc(batches, out) {
        panic!("arrow::write_ipc: {e}");
    }
}

/// [`write_ipc`] that reports writer errors. Consecutive batches with the same schema share a
/// stream.
pub fn try_write_ipc(batches: &[RecordBatch], out: &mut Vec<u8>) -> Result<(), ArrowError> {
    let mut i = 0;
    while i < batches.len() {
        let schema = batches[i].schema();
        let mut w = arrow_ipc::writer::StreamWriter::try_new(&mut *out, &schema)?;
        while i < batches.len() && batches[i].schema() == schema {
            w.write(&batches[i])?;
            i += 1;
        }
        w.finish()?;
    }
    Ok(())
}
