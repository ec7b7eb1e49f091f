//! [`Row`]: one event's fields borrowed from the wire, pushed into an [`EventBatch`] as a unit.

use super::{shipment, Invalid};
use crate::event::{json, EventBatch, Kind, StrColumn, NONE_FEN, NONE_U8, N_METRICS};

/// A string field as found on the wire. `json_escaped`: the bytes are the body of a JSON string
/// that contains escapes, unescaped only when pushed into a column.
#[derive(Clone, Copy, Debug, Default)]
pub struct Text<'a> {
    pub bytes: &'a [u8],
    pub json_escaped: bool,
}

impl<'a> Text<'a> {
    #[inline]
    pub fn plain(bytes: &'a [u8]) -> Text<'a> {
        Text {
            bytes,
            json_escaped: false,
        }
    }

    #[inline]
    fn push_to(&self, col: &mut StrColumn) {
        if self.json_escaped {
            // The scanner already checked every escape, so this cannot fail.
            let _ = json::unescape_into(self.bytes, &mut col.data);
            col.offsets.push(col.data.len() as i32);
        } else {
            col.push(self.bytes);
        }
    }
}

/// One event's fields in column form ("absent" = empty text, NaN, [`NONE_U8`], [`NONE_FEN`]).
/// Decoders fill it from the wire with the functions above, then [`Row::push`] checks the
/// cross-field rules and appends it to an [`EventBatch`] in one go.
#[derive(Clone, Copy, Debug)]
pub struct Row<'a> {
    pub kind: Kind,
    /// `None` when the wire had no `shipment` at all.
    pub shipment: Option<Text<'a>>,
    /// `None` when the wire had no `ts`.
    pub ts: Option<i64>,
    pub id: Text<'a>,
    pub carrier: Text<'a>,
    pub status: u8,
    pub location: Text<'a>,
    pub raw_status: Text<'a>,
    pub signer_name: Text<'a>,
    pub signer_type: u8,
    pub signer_proxy_id: Text<'a>,
    pub signer_staff_id: Text<'a>,
    pub device: Text<'a>,
    pub metrics: [f64; N_METRICS],
    pub lat: f64,
    pub lon: f64,
    pub origin: Text<'a>,
    pub dest: Text<'a>,
    pub tier: u8,
    pub fragile: u8,
    pub order: Text<'a>,
    pub declared_value_fen: i64,
}

impl<'a> Row<'a> {
    /// An empty row of `kind`: every field absent.
    #[inline]
    pub fn new(kind: Kind) -> Row<'a> {
        let none = Text::default();
        Row {
            kind,
            shipment: None,
            ts: None,
            id: none,
            carrier: none,
            status: NONE_U8,
            location: none,
            raw_status: none,
            signer_name: none,
            signer_type: NONE_U8,
            signer_proxy_id: none,
            signer_staff_id: none,
            device: none,
            metrics: [f64::NAN; N_METRICS],
            lat: f64::NAN,
            lon: f64::NAN,
            origin: none,
            dest: none,
            tier: NONE_U8,
            fragile: NONE_U8,
            order: none,
            declared_value_fen: NONE_FEN,
        }
    }

    /// Row `i` of `batch` (all fields as stored; `kind` [`NONE_U8`] reads as `None`).
    pub fn from_batch(batch: &'a EventBatch, i: usize) -> Option<Row<'a>> {
        let t = |c: &'a StrColumn| Text::plain(c.get(i));
        Some(Row {
            kind: Kind::from_u8(batch.kind[i])?,
            shipment: Some(t(&batch.shipment)),
            ts: Some(batch.ts[i]),
            id: t(&batch.id),
            carrier: t(&batch.carrier),
            status: batch.status[i],
            location: t(&batch.location),
            raw_status: t(&batch.raw_status),
            signer_name: t(&batch.signer_name),
            signer_type: batch.signer_type[i],
            signer_proxy_id: t(&batch.signer_proxy_id),
            signer_staff_id: t(&batch.signer_staff_id),
            device: t(&batch.device),
            metrics: std::array::from_fn(|m| batch.metrics[m][i]),
            lat: batch.lat[i],
            lon: batch.lon[i],
            origin: t(&batch.origin),
            dest: t(&batch.dest),
            tier: batch.tier[i],
            fragile: batch.fragile[i],
            order: t(&batch.order),
            declared_value_fen: batch.declared_value_fen[i],
        })
    }

    /// Check the rules that span fields (required fields, the shipment format) and append the
    /// row. Value-level checks happened while the decoder filled the row. Fields that do not
    /// belong to the row's kind are stored as absent.
    #[inline]
    pub fn push(&self, out: &mut EventBatch) -> Result<(), Invalid> {
        let Some(ship) = self.shipment else {
            return Err(Invalid::missing("shipment", "required"));
        };
        // Escaped JSON bodies are unescaped by the JSON decoder before they land here.
        shipment(ship.bytes)?;
        let Some(ts) = self.ts else {
            return Err(Invalid::missing("ts", "required"));
        };
        if self.kind == Kind::Scan && self.status == NONE_U8 {
            return Err(Invalid::missing("status", "required for scan events"));
        }
        out.kind.push(self.kind as u8);
        ship.push_to(&mut out.shipment);
        out.ts.push(ts);
        self.id.push_to(&mut out.id);
        // One arm per kind, each writing its own fields and "absent" in the others' columns:
        // the hot path of every decoder, so no per-column test of the kind.
        match self.kind {
            Kind::Sensor => {
                out.carrier.push_empty();
                out.status.push(NONE_U8);
                push_empty_scan(out);
                self.device.push_to(&mut out.device);
                for (col, v) in out.metrics.iter_mut().zip(self.metrics) {
                    col.push(v);
                }
                out.lat.push(self.lat);
                out.lon.push(self.lon);
                push_empty_shipment(out);
            }
            Kind::Scan => {
                self.carrier.push_to(&mut out.carrier);
                out.status.push(self.status);
                self.location.push_to(&mut out.location);
                self.raw_status.push_to(&mut out.raw_status);
                self.signer_name.push_to(&mut out.signer_name);
                out.signer_type.push(self.signer_type);
                self.signer_proxy_id.push_to(&mut out.signer_proxy_id);
                self.signer_staff_id.push_to(&mut out.signer_staff_id);
                out.device.push_empty();
                push_no_metrics(out);
                out.lat.push(self.lat);
                out.lon.push(self.lon);
                push_empty_shipment(out);
            }
            Kind::Shipment => {
                self.carrier.push_to(&mut out.carrier);
                out.status.push(NONE_U8);
                push_empty_scan(out);
                out.device.push_empty();
                push_no_metrics(out);
                out.lat.push(f64::NAN);
                out.lon.push(f64::NAN);
                self.origin.push_to(&mut out.origin);
                self.dest.push_to(&mut out.dest);
                out.tier.push(self.tier);
                out.fragile.push(self.fragile);
                self.order.push_to(&mut out.order);
                out.declared_value_fen.push(self.declared_value_fen);
            }
        }
        Ok(())
    }
}

#[inline]
fn push_empty_scan(out: &mut EventBatch) {
    out.location.push_empty();
    out.raw_status.push_empty();
    out.signer_name.push_empty();
    out.signer_type.push(NONE_U8);
    out.signer_proxy_id.push_empty();
    out.signer_staff_id.push_empty();
}

#[inline]
fn push_no_metrics(out: &mut EventBatch) {
    for col in &mut out.metrics {
        col.push(f64::NAN);
    }
}

#[inline]
fn push_empty_shipment(out: &mut EventBatch) {
    out.origin.push_empty();
    out.dest.push_empty();
    out.tier.push(NONE_U8);
    out.fragile.push(NONE_U8);
    out.order.push_empty();
    out.declared_value_fen.push(NONE_FEN);
}

/// Drop every row from `rows` on (undoing a partly decoded JSON array).
pub fn truncate_rows(b: &mut EventBatch, rows: usize) {
    b.kind.truncate(rows);
    b.ts.truncate(rows);
    b.status.truncate(rows);
    b.signer_type.truncate(rows);
    for m in &mut b.metrics {
        m.truncate(rows);
    }
    b.lat.truncate(rows);
    b.lon.truncate(rows);
    b.tier.truncate(rows);
    b.fragile.truncate(rows);
    b.declared_value_fen.truncate(rows);
    for c in [
        &mut b.shipment,
        &mut b.id,
        &mut b.carrier,
        &mut b.location,
        &mut b.raw_status,
        &mut b.signer_name,
        &mut b.signer_proxy_id,
        &mut b.signer_staff_id,
        &mut b.device,
        &mut b.origin,
        &mut b.dest,
        &mut b.order,
    ] {
        c.truncate(rows);
    }
}
