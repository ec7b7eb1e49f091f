//! Arrow IPC stream decoding into zero-copy views, and encoding.
//!
//! A record batch carries one kind of event (or a `kind` column), with columns named as in spec
//! §1. [`view`] borrows the batch's buffers for every column already in the engine's layout
//! (Utf8 strings, Int64/Timestamp(ms) `ts`, Float64 metrics with their null bitmap) and converts
//! only the rest into an [`ArrowScratch`] reused from batch to batch.

mod row;
#[cfg(test)]
mod tests;
mod write;

use row::check_rows;
pub use row::event_at;
pub use write::{to_record_batches, try_write_ipc, write_ipc};

use super::validate as v;
use super::{
    BatchView, DeadLetter, F64s, Kind, KindCol, Reason, Status, Strs, Tier, NONE_U8, N_METRICS,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampMillisecondType};
use arrow_array::{Array, ArrayRef, Float64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, TimeUnit};
use std::io::Cursor;

/// Schema metadata key naming the kind of every row in a batch.
pub const KIND_METADATA: &str = "streamguard.kind";

/// Read every record batch of one or more concatenated IPC streams.
pub fn read_ipc(input: &[u8]) -> Result<Vec<RecordBatch>, DeadLetter> {
    let mut cursor = Cursor::new(input);
    let mut batches = Vec::new();
    while (cursor.position() as usize) < input.len() {
        let start = cursor.position();
        let reader = arrow_ipc::reader::StreamReader::try_new(&mut cursor, None)
            .map_err(|e| bad_ipc(input, start, &e))?;
        for rb in reader {
            batches.push(rb.map_err(|e| bad_ipc(input, start, &e))?);
        }
        if cursor.position() == start {
            break;
        }
    }
    Ok(batches)
}

#[cold]
fn bad_ipc(input: &[u8], start: u64, e: &arrow_schema::ArrowError) -> DeadLetter {
    let detail = format!("malformed Arrow IPC stream starting at byte offset {start}: {e}");
    DeadLetter::new(Reason::Malformed, detail, input)
}

/// Per-batch scratch for columns that need conversion (status strings to codes, …). Reused.
#[derive(Default)]
pub struct ArrowScratch {
    lat: Option<Float64Array>,
    lon: Option<Float64Array>,
    ts: Vec<i64>,
    kind: Vec<u8>,
    status: Vec<u8>,
    tier: Vec<u8>,
    fragile: Vec<u8>,
    signer_type: Vec<u8>,
    rejected: Vec<u8>,
    /// shipment, carrier, location when not plain Utf8 (cast) or with non-empty null slots.
    strings: [Option<StringArray>; 5],
    metrics: [Option<Float64Array>; N_METRICS],
}

/// Marks a code column entry whose string is not a known name (the row is rejected).
const UNKNOWN: u8 = NONE_U8 - 1;

fn col<'a>(rb: &'a RecordBatch, name: &str) -> Option<&'a ArrayRef> {
    rb.schema_ref().index_of(name).ok().map(|i| rb.column(i))
}

#[cold]
fn schema_err(column: &str, expected: &str, found: &DataType) -> DeadLetter {
    let detail = format!("column '{column}': expected {expected}, found {found}");
    DeadLetter {
        reason: Reason::Schema,
        detail,
        raw: Vec::new(),
    }
}

pub(crate) fn is_stringish(dt: &DataType) -> bool {
    match dt {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, v) => is_stringish(v),
        _ => false,
    }
}

fn is_numeric(dt: &DataType) -> bool {
    dt.is_numeric()
        && !matches!(
            dt,
            DataType::Decimal32(..)
                | DataType::Decimal64(..)
                | DataType::Decimal128(..)
                | DataType::Decimal256(..)
        )
}

/// Check a column's type; `Ok(None)` when the batch has no such column.
fn typed<'a>(
    rb: &'a RecordBatch,
    name: &str,
    expected: &str,
    ok: fn(&DataType) -> bool,
) -> Result<Option<&'a ArrayRef>, DeadLetter> {
    match col(rb, name) {
        Some(a) if ok(a.data_type()) => Ok(Some(a)),
        Some(a) => Err(schema_err(name, expected, a.data_type())),
        None => Ok(None),
    }
}

const STR: &str = "a string column (Utf8, LargeUtf8, Utf8View or a dictionary of them)";
const NUM: &str = "a numeric column";

/// The columns of a batch the decoder knows, type-checked.
pub(crate) struct Cols<'a> {
    pub kind: Option<&'a ArrayRef>,
    pub shipment: &'a ArrayRef,
    pub ts: &'a ArrayRef,
    pub strs: [Option<&'a ArrayRef>; STR_COLS.len()],
    pub metrics: [Option<&'a ArrayRef>; N_METRICS],
    pub lat: Option<&'a ArrayRef>,
    pub lon: Option<&'a ArrayRef>,
    pub fragile: Option<&'a ArrayRef>,
    pub declared_value: Option<&'a ArrayRef>,
    pub signer: Option<&'a ArrayRef>,
}

/// String columns in [`Cols::strs`] order.
pub(crate) const STR_COLS: [&str; 10] = [
    "id",
    "carrier",
    "status",
    "location",
    "raw_status",
    "device",
    "origin",
    "dest",
    "tier",
    "order",
];

pub(crate) const S_CARRIER: usize = 1;
pub(crate) const S_STATUS: usize = 2;
pub(crate) const S_LOCATION: usize = 3;
pub(crate) const S_DEVICE: usize = 5;
pub(crate) const S_ORIGIN: usize = 6;
pub(crate) const S_DEST: usize = 7;
pub(crate) const S_TIER: usize = 8;

impl<'a> Cols<'a> {
    pub(crate) fn of(rb: &'a RecordBatch) -> Result<Cols<'a>, DeadLetter> {
        let ship = typed(rb, "shipment", STR, is_stringish)?;
        let shipment = ship.ok_or_else(|| missing_column("shipment"))?;
        let ts_ok = |dt: &DataType| matches!(dt, DataType::Int64 | DataType::Timestamp(..));
        let ts =
            typed(rb, "ts", "Int64 or Timestamp", ts_ok)?.ok_or_else(|| missing_column("ts"))?;
        let mut strs = [None; STR_COLS.len()];
        for (slot, name) in strs.iter_mut().zip(STR_COLS) {
            *slot = typed(rb, name, STR, is_stringish)?;
        }
        let mut metrics = [None; N_METRICS];
        for (slot, m) in metrics.iter_mut().zip(super::Metric::ALL) {
            *slot = typed(rb, m.as_str(), NUM, is_numeric)?;
        }
        let signer = typed(
            rb,
            "signer",
            "a struct of strings (name, type, proxy_id, staff_id)",
            |dt| matches!(dt, DataType::Struct(fs) if fs.iter().all(|f| is_stringish(f.data_type()))),
        )?;
        let fen_ok =
            |dt: &DataType| matches!(dt, DataType::Decimal128(_, s) if *s >= 0) || is_stringish(dt);
        Ok(Cols {
            kind: typed(rb, "kind", STR, is_stringish)?,
            shipment,
            ts,
            strs,
            metrics,
            lat: typed(rb, "lat", NUM, is_numeric)?,
            lon: typed(rb, "lon", NUM, is_numeric)?,
            fragile: typed(rb, "fragile", "Boolean", |dt| dt == &DataType::Boolean)?,
            declared_value: typed(
                rb,
                "declared_value",
                "Decimal128 with scale >= 0, or a decimal string",
                fen_ok,
            )?,
            signer,
        })
    }

    /// The batch-wide kind, if there is no `kind` column.
    fn batch_kind(&self, rb: &RecordBatch, default_kind: Option<Kind>) -> Result<Kind, DeadLetter> {
        if let Some(k) = rb.schema_ref().metadata.get(KIND_METADATA) {
            return v::kind(k.as_bytes()).map_err(|e| {
                let detail = format!(
                    "schema metadata '{KIND_METADATA}': {}",
                    e.detail.trim_start_matches("field 'kind': ")
                );
                DeadLetter {
                    reason: Reason::BadKind,
                    detail,
                    raw: Vec::new(),
                }
            });
        }
        if let Some(k) = default_kind {
            return Ok(k);
        }
        let has = |i: usize| self.strs[i].is_some();
        if has(S_STATUS) {
            Ok(Kind::Scan)
        } else if has(S_DEVICE) || self.metrics.iter().any(Option::is_some) {
            Ok(Kind::Sensor)
        } else if has(S_TIER)
            || has(S_ORIGIN)
            || has(S_DEST)
            || has(9)
            || self.fragile.is_some()
            || self.declared_value.is_some()
        {
            Ok(Kind::Shipment)
        } else {
            let detail = format!(
                "no 'kind' column, no '{KIND_METADATA}' schema metadata, no default kind, and no kind-specific column to infer it from"
            );
            Err(DeadLetter {
                reason: Reason::BadKind,
                detail,
                raw: Vec::new(),
            })
        }
    }
}

#[cold]
fn missing_column(name: &str) -> DeadLetter {
    DeadLetter {
        reason: Reason::Schema,
        detail: format!("column '{name}': missing (required)"),
        raw: Vec::new(),
    }
}

/// Cast a string column to Utf8 into `slot`, unless it is Utf8 already and its null slots are
/// empty (then the view borrows it as is).
fn utf8(name: &str, a: &ArrayRef, slot: &mut Option<StringArray>) -> Result<(), DeadLetter> {
    *slot = None;
    if let Some(s) = a.as_string_opt::<i32>() {
        // Null slots may legally hold bytes; the engine reads an absent string as empty.
        if s.null_count() == 0 || (0..s.len()).all(|i| s.is_valid(i) || s.value_length(i) == 0) {
            return Ok(());
        }
    }
    let cast = to_utf8(name, a)?;
    let s = cast.as_string::<i32>();
    let emptied: StringArray = s.iter().map(|x| Some(x.unwrap_or(""))).collect();
    *slot = Some(StringArray::new(
        emptied.offsets().clone(),
        emptied.values().clone(),
        s.nulls().cloned(),
    ));
    Ok(())
}

pub(crate) fn to_utf8(name: &str, a: &ArrayRef) -> Result<ArrayRef, DeadLetter> {
    arrow_cast::cast(a, &DataType::Utf8).map_err(|e| cast_err(name, a.data_type(), &e))
}

#[cold]
fn cast_err(name: &str, found: &DataType, e: &arrow_schema::ArrowError) -> DeadLetter {
    let detail = format!("column '{name}': cannot convert {found}: {e}");
    DeadLetter {
        reason: Reason::Schema,
        detail,
        raw: Vec::new(),
    }
}

fn strs(a: &StringArray) -> Strs<'_> {
    Strs {
        offsets: a.value_offsets(),
        data: a.values().as_slice(),
    }
}

/// A string column as codes: `parse` per row, [`NONE_U8`] for nulls, [`UNKNOWN`] if unparsable.
fn codes(
    name: &str,
    a: &ArrayRef,
    out: &mut Vec<u8>,
    parse: fn(&[u8]) -> Option<u8>,
) -> Result<(), DeadLetter> {
    out.clear();
    let cast;
    let s = match a.as_string_opt::<i32>() {
        Some(s) => s,
        None => {
            cast = to_utf8(name, a)?;
            cast.as_string::<i32>()
        }
    };
    out.extend(
        s.iter()
            .map(|x| x.map_or(NONE_U8, |x| parse(x.as_bytes()).unwrap_or(UNKNOWN))),
    );
    Ok(())
}

/// A numeric column as Float64: `None` when it already is one (borrowed as is).
pub(crate) fn f64s(name: &str, a: &ArrayRef) -> Result<Option<Float64Array>, DeadLetter> {
    if a.data_type() == &DataType::Float64 {
        return Ok(None);
    }
    let cast =
        arrow_cast::cast(a, &DataType::Float64).map_err(|e| cast_err(name, a.data_type(), &e))?;
    Ok(Some(cast.as_primitive().clone()))
}

pub(crate) fn f64_view<'a>(a: &'a ArrayRef, cast: &'a Option<Float64Array>) -> F64s<'a> {
    let arr = cast.as_ref().unwrap_or_else(|| a.as_primitive());
    F64s {
        values: arr.values(),
        valid: arr.nulls().map(|n| (n.inner().values(), n.offset())),
    }
}

/// A zero-copy view of `rb` for the engine. Invalid rows are dead-lettered and marked in
/// `view.rejected`. A batch whose schema does not fit is an `Err` (reason `schema`, or `bad_kind`
/// when the batch's kind cannot be told; `raw` is empty: the caller holds the IPC bytes).
///
/// A rejected row's dead letter carries as `raw` that row rendered as one canonical JSON line by
/// [`super::json::encode_event`], since Arrow has no per-row bytes; a value the event model
/// cannot hold (an unknown status name, say) is quoted in the `detail`.
pub fn view<'a>(
    rb: &'a RecordBatch,
    default_kind: Option<Kind>,
    scratch: &'a mut ArrowScratch,
    dead: &mut Vec<DeadLetter>,
) -> Result<BatchView<'a>, DeadLetter> {
    let c = Cols::of(rb)?;
    let kind = match c.kind {
        Some(_) => None,
        None => Some(c.batch_kind(rb, default_kind)?),
    };
    if kind == Some(Kind::Scan) && c.strs[S_STATUS].is_none() {
        let detail = "column 'status': missing (required in a batch of scans)".to_string();
        return Err(DeadLetter {
            reason: Reason::Schema,
            detail,
            raw: Vec::new(),
        });
    }
    prepare(&c, scratch)?;
    let mut rejected = std::mem::take(&mut scratch.rejected);
    rejected.clear();
    check_rows(
        rb,
        &c,
        &build(&c, kind, scratch),
        scratch,
        &mut rejected,
        dead,
    );
    scratch.rejected = rejected;
    let scratch: &'a ArrowScratch = scratch;
    let mut view = build(&c, kind, scratch);
    if !scratch.rejected.is_empty() {
        view.rejected = Some(&scratch.rejected);
    }
    Ok(view)
}

/// Fill the scratch with every column that needs converting.
fn prepare(c: &Cols<'_>, s: &mut ArrowScratch) -> Result<(), DeadLetter> {
    if let Some(k) = c.kind {
        codes("kind", k, &mut s.kind, |x| Kind::parse(x).map(|k| k as u8))?;
    }
    ts_to_ms(c.ts, &mut s.ts);
    let [ship, carrier, location, origin, dest] = &mut s.strings;
    utf8("shipment", c.shipment, ship)?;
    for (name, col, out) in [
        ("carrier", S_CARRIER, carrier),
        ("location", S_LOCATION, location),
        ("origin", S_ORIGIN, origin),
        ("dest", S_DEST, dest),
    ] {
        *out = None;
        if let Some(a) = c.strs[col] {
            utf8(name, a, out)?;
        }
    }
    if let Some(a) = c.strs[S_STATUS] {
        codes("status", a, &mut s.status, |x| {
            Status::parse(x).map(|s| s as u8)
        })?;
    }
    if let Some(a) = c.strs[S_TIER] {
        codes("tier", a, &mut s.tier, |x| Tier::parse(x).map(|t| t as u8))?;
    }
    s.signer_type.clear();
    if let Some(t) = c.signer.and_then(|a| a.as_struct().column_by_name("type")) {
        codes("signer.type", t, &mut s.signer_type, |x| {
            super::SignerType::parse(x).map(|t| t as u8)
        })?;
    }
    if let Some(a) = c.fragile {
        s.fragile.clear();
        s.fragile
            .extend(a.as_boolean().iter().map(|x| x.map_or(NONE_U8, u8::from)));
    }
    for (m, a) in c.metrics.iter().enumerate() {
        s.metrics[m] = a
            .map(|a| f64s(super::Metric::ALL[m].as_str(), a))
            .transpose()?
            .flatten();
    }
    s.lat = c.lat.map(|a| f64s("lat", a)).transpose()?.flatten();
    s.lon = c.lon.map(|a| f64s("lon", a)).transpose()?.flatten();
    Ok(())
}

fn build<'a>(c: &Cols<'a>, kind: Option<Kind>, s: &'a ArrowScratch) -> BatchView<'a> {
    let text = |i: usize, a: &'a ArrayRef| {
        strs(
            s.strings[i]
                .as_ref()
                .unwrap_or_else(|| a.as_string::<i32>()),
        )
    };
    let ts: &'a [i64] = match c.ts.data_type() {
        DataType::Int64 => c.ts.as_primitive::<Int64Type>().values(),
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            c.ts.as_primitive::<TimestampMillisecondType>().values()
        }
        _ => &s.ts,
    };
    BatchView {
        len: c.shipment.len(),
        kind: match kind {
            Some(k) => KindCol::All(k),
            None => KindCol::Rows(&s.kind),
        },
        shipment: text(0, c.shipment),
        ts,
        carrier: c.strs[S_CARRIER].map(|a| text(1, a)),
        status: c.strs[S_STATUS].map(|_| &s.status[..]),
        location: c.strs[S_LOCATION].map(|a| text(2, a)),
        metrics: std::array::from_fn(|m| c.metrics[m].map(|a| f64_view(a, &s.metrics[m]))),
        tier: c.strs[S_TIER].map(|_| &s.tier[..]),
        fragile: c.fragile.map(|_| &s.fragile[..]),
        origin: c.strs[S_ORIGIN].map(|a| text(3, a)),
        dest: c.strs[S_DEST].map(|a| text(4, a)),
        rejected: None,
    }
}

/// `ts` in milliseconds into `out`, for Timestamp columns of another unit (else left empty).
fn ts_to_ms(a: &ArrayRef, out: &mut Vec<i64>) {
    use arrow_array::types::{
        TimestampMicrosecondType, TimestampNanosecondType, TimestampSecondType,
    };
    out.clear();
    let (values, div, mul): (&[i64], i64, i64) = match a.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => {
            (a.as_primitive::<TimestampSecondType>().values(), 1, 1000)
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => (
            a.as_primitive::<TimestampMicrosecondType>().values(),
            1000,
            1,
        ),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => (
            a.as_primitive::<TimestampNanosecondType>().values(),
            1_000_000,
            1,
        ),
        _ => return,
    };
    // Seconds out of range saturate, then fail the ts range check like any bad ts.
    out.extend(
        values
            .iter()
            .map(|&x| x.div_euclid(div).saturating_mul(mul)),
    );
}
