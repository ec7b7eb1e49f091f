//! Row-level validation of an Arrow batch, and rendering one row as an owned [`Event`] (for
//! dead letters and tests).

use super::{
    f64_view, is_stringish, to_utf8, ArrowScratch, Cols, KIND_METADATA, STR_COLS, S_STATUS, UNKNOWN,
};
use crate::event::validate::{self as v, Invalid};
use crate::event::{
    json, BatchView, DeadLetter, Event, Kind, Metric, Signer, SignerType, Status, Tier, NONE_U8,
};
use arrow_array::cast::AsArray;
use arrow_array::types::Decimal128Type;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;

/// Validate every row of `view`; rejected rows get a 1 in `rejected` (sized on the first one)
/// and a dead letter.
pub(super) fn check_rows(
    rb: &RecordBatch,
    c: &Cols<'_>,
    view: &BatchView<'_>,
    s: &ArrowScratch,
    rejected: &mut Vec<u8>,
    dead: &mut Vec<DeadLetter>,
) {
    let lat = c.lat.map(|a| f64_view(a, &s.lat));
    let lon = c.lon.map(|a| f64_view(a, &s.lon));
    // Decimal strings are parsed per row: cast them to Utf8 once per batch.
    let fen_strs = c
        .declared_value
        .filter(|a| is_stringish(a.data_type()))
        .and_then(|a| to_utf8("declared_value", a).ok());
    for i in 0..view.len {
        let res = check_row(c, view, s, i, (lat, lon), fen_strs.as_ref());
        if let Err(e) = res {
            if rejected.is_empty() {
                rejected.resize(view.len, 0);
            }
            rejected[i] = 1;
            dead.push(reject(rb, c, i, Kind::from_u8(view.kind.get(i)), e));
        }
    }
}

type Pos<'a> = (
    Option<crate::event::F64s<'a>>,
    Option<crate::event::F64s<'a>>,
);

#[inline]
fn check_row(
    c: &Cols<'_>,
    view: &BatchView<'_>,
    s: &ArrowScratch,
    i: usize,
    (lat, lon): Pos<'_>,
    fen_strs: Option<&ArrayRef>,
) -> Result<(), Invalid> {
    let Some(kind) = Kind::from_u8(view.kind.get(i)) else {
        return Err(match c.kind.and_then(|a| cell_str(a, i)) {
            None => Invalid::new(crate::event::Reason::BadKind, "field 'kind': missing"),
            Some(k) => v::bad_kind(&v::got_str(k.as_bytes())),
        });
    };
    if c.shipment.is_null(i) {
        return Err(Invalid::missing("shipment", "required"));
    }
    v::shipment(view.shipment.get(i))?;
    if c.ts.is_null(i) {
        return Err(Invalid::missing("ts", "required"));
    }
    v::ts_ms(view.ts[i])?;
    let present =
        |col: Option<crate::event::F64s<'_>>| col.map(|f| f.get(i)).filter(|x| !x.is_nan());
    let check_pos = || -> Result<(), Invalid> {
        present(lat).map(v::lat).transpose()?;
        present(lon).map(v::lon).transpose()?;
        Ok(())
    };
    match kind {
        Kind::Scan => {
            match view.status.map_or(NONE_U8, |st| st[i]) {
                NONE_U8 => return Err(Invalid::missing("status", "required for scan events")),
                UNKNOWN => {
                    let got = c.strs[S_STATUS]
                        .and_then(|a| cell_str(a, i))
                        .unwrap_or_default();
                    return Err(v::bad_status(&v::got_str(got.as_bytes())));
                }
                _ => {}
            }
            check_pos()?;
            if s.signer_type.get(i) == Some(&UNKNOWN) {
                let got = signer_part(c, i, "type").unwrap_or_default();
                return Err(v::bad_signer_type(&v::got_str(got.as_bytes())));
            }
        }
        Kind::Sensor => {
            for (m, col) in view.metrics.iter().enumerate() {
                present(*col)
                    .map(|x| v::metric(Metric::ALL[m].as_str(), x))
                    .transpose()?;
            }
            check_pos()?;
        }
        Kind::Shipment => {
            if view.tier.is_some_and(|t| t[i] == UNKNOWN) {
                let got = c.strs[8].and_then(|a| cell_str(a, i)).unwrap_or_default();
                return Err(v::bad_tier(&v::got_str(got.as_bytes())));
            }
            if let Some(a) = c.declared_value {
                fen_at(a, fen_strs, i)?;
            }
        }
    }
    Ok(())
}

#[cold]
fn reject(rb: &RecordBatch, c: &Cols<'_>, i: usize, kind: Option<Kind>, e: Invalid) -> DeadLetter {
    let mut raw = Vec::new();
    json::encode_event(&row_event(rb, c, i, kind), &mut raw);
    if raw.last() == Some(&b'\n') {
        raw.pop();
    }
    DeadLetter {
        reason: e.reason,
        detail: e.detail,
        raw,
    }
}

/// `declared_value` of row `i` in fen: Decimal128 of any scale >= 0 if exact to the fen, or a
/// decimal string (`strs`: the column cast to Utf8).
fn fen_at(a: &ArrayRef, strs: Option<&ArrayRef>, i: usize) -> Result<Option<i64>, Invalid> {
    if a.is_null(i) {
        return Ok(None);
    }
    if let DataType::Decimal128(_, scale) = a.data_type() {
        let raw = a.as_primitive::<Decimal128Type>().value(i);
        let scale = u32::try_from(*scale).unwrap_or(0);
        let fen = if scale <= 2 {
            10i128
                .checked_pow(2 - scale)
                .and_then(|p| raw.checked_mul(p))
        } else {
            10i128
                .checked_pow(scale - 2)
                .filter(|p| raw % p == 0)
                .map(|p| raw / p)
        };
        return match fen.and_then(|f| i64::try_from(f).ok()).filter(|f| *f >= 0) {
            Some(f) => Ok(Some(f)),
            None => Err(v::bad_fen(&cell_str(a, i).unwrap_or_default())),
        };
    }
    match strs.map(|s| s.as_string::<i32>()) {
        Some(s) if s.is_valid(i) => v::declared_value(s.value(i).as_bytes()).map(Some),
        _ => Ok(None),
    }
}

/// One cell as a string (cold: casts a one-row slice).
#[cold]
fn cell_str(a: &ArrayRef, i: usize) -> Option<String> {
    let cast = arrow_cast::cast(&a.slice(i, 1), &DataType::Utf8).ok()?;
    let s = cast.as_string::<i32>();
    s.is_valid(0).then(|| s.value(0).to_owned())
}

#[cold]
fn cell_f64(a: &ArrayRef, i: usize) -> Option<f64> {
    let cast = arrow_cast::cast(&a.slice(i, 1), &DataType::Float64).ok()?;
    let f = cast.as_primitive::<arrow_array::types::Float64Type>();
    (f.is_valid(0) && !f.value(0).is_nan()).then(|| f.value(0))
}

fn signer_part(c: &Cols<'_>, i: usize, name: &str) -> Option<String> {
    let st = c.signer?.as_struct();
    if st.is_null(i) {
        return None;
    }
    cell_str(st.column_by_name(name)?, i)
}

/// Row `i` of `rb` as an owned event of `kind` (`None`: read the `kind` column or the schema
/// metadata). Values the event model cannot hold (an unknown status name) are left out.
pub fn event_at(rb: &RecordBatch, i: usize, kind: Option<Kind>) -> Event {
    match Cols::of(rb) {
        Ok(c) => row_event(rb, &c, i, kind),
        Err(_) => Event::default(),
    }
}

#[cold]
fn row_event(rb: &RecordBatch, c: &Cols<'_>, i: usize, kind: Option<Kind>) -> Event {
    let kind = kind
        .or_else(|| {
            c.kind
                .and_then(|a| cell_str(a, i))
                .and_then(|k| Kind::parse(k.as_bytes()))
        })
        .or_else(|| {
            rb.schema_ref()
                .metadata
                .get(KIND_METADATA)
                .and_then(|k| Kind::parse(k.as_bytes()))
        });
    let text = |name: &str| {
        let idx = STR_COLS.iter().position(|n| *n == name)?;
        c.strs[idx].and_then(|a| cell_str(a, i))
    };
    let t = |name: &str| text(name).unwrap_or_default();
    let mut ts_ms = Vec::new();
    super::ts_to_ms(&c.ts.slice(i, 1), &mut ts_ms);
    let ts = match ts_ms.first() {
        Some(ms) => *ms,
        None => arrow_cast::cast(&c.ts.slice(i, 1), &DataType::Int64)
            .ok()
            .and_then(|a| {
                a.as_primitive_opt::<arrow_array::types::Int64Type>()
                    .map(|p| p.value(0))
            })
            .unwrap_or(0),
    };
    let f = |a: Option<&ArrayRef>| a.and_then(|a| cell_f64(a, i));
    let signer = Signer {
        name: signer_part(c, i, "name").unwrap_or_default(),
        kind: signer_part(c, i, "type").and_then(|k| SignerType::parse(k.as_bytes())),
        proxy_id: signer_part(c, i, "proxy_id").unwrap_or_default(),
        staff_id: signer_part(c, i, "staff_id").unwrap_or_default(),
    };
    let fen_strs = c
        .declared_value
        .filter(|a| is_stringish(a.data_type()))
        .and_then(|a| to_utf8("declared_value", a).ok());
    Event {
        kind,
        shipment: cell_str(c.shipment, i).unwrap_or_default(),
        ts,
        id: t("id"),
        carrier: t("carrier"),
        status: text("status").and_then(|s| Status::parse(s.as_bytes())),
        location: t("location"),
        raw_status: t("raw_status"),
        signer: (signer != Signer::default()).then_some(signer),
        device: t("device"),
        metrics: std::array::from_fn(|m| f(c.metrics[m])),
        lat: f(c.lat),
        lon: f(c.lon),
        origin: t("origin"),
        dest: t("dest"),
        tier: text("tier").and_then(|s| Tier::parse(s.as_bytes())),
        fragile: c
            .fragile
            .and_then(|a| a.as_boolean().is_valid(i).then(|| a.as_boolean().value(i))),
        order: t("order"),
        declared_value_fen: c
            .declared_value
            .and_then(|a| fen_at(a, fen_strs.as_ref(), i).ok().flatten()),
    }
}
