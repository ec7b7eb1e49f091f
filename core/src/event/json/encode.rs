//! Canonical JSON lines: `kind` first, then `shipment`, `ts` (integer ms), `id`, then the kind's
//! fields in spec order; absent fields omitted; floats in ryu's shortest round-trip form;
//! `declared_value` as a yuan string with 2 decimals.

use crate::event::validate::{write_fen, Row, Text};
use crate::event::{
    Event, EventBatch, Kind, Metric, Signer, SignerType, Status, Tier, NONE_FEN, NONE_U8,
};

/// Append row `i` of `batch` as one JSON object followed by `\n`.
pub fn encode_row(batch: &EventBatch, i: usize, out: &mut Vec<u8>) {
    match Row::from_batch(batch, i) {
        Some(row) => write_row(out, Some(row.kind), &row),
        // A row without a kind (only hand-built batches have one): every field, no `kind`.
        None => encode_event(&batch.event(i), out),
    }
}

/// Append one owned event as one JSON line. An event without a kind gets every field it has.
pub fn encode_event(e: &Event, out: &mut Vec<u8>) {
    fn t(s: &str) -> Text<'_> {
        Text::plain(s.as_bytes())
    }
    let signer = e.signer.as_ref();
    let sig = |f: fn(&Signer) -> &str| signer.map_or("", f);
    let row = Row {
        kind: e.kind.unwrap_or(Kind::Shipment),
        shipment: Some(t(&e.shipment)),
        ts: Some(e.ts),
        id: t(&e.id),
        carrier: t(&e.carrier),
        status: e.status.map_or(NONE_U8, |s| s as u8),
        location: t(&e.location),
        raw_status: t(&e.raw_status),
        signer_name: t(sig(|s| &s.name)),
        signer_type: signer.and_then(|s| s.kind).map_or(NONE_U8, |k| k as u8),
        signer_proxy_id: t(sig(|s| &s.proxy_id)),
        signer_staff_id: t(sig(|s| &s.staff_id)),
        device: t(&e.device),
        metrics: e.metrics.map(|m| m.unwrap_or(f64::NAN)),
        lat: e.lat.unwrap_or(f64::NAN),
        lon: e.lon.unwrap_or(f64::NAN),
        origin: t(&e.origin),
        dest: t(&e.dest),
        tier: e.tier.map_or(NONE_U8, |x| x as u8),
        fragile: e.fragile.map_or(NONE_U8, u8::from),
        order: t(&e.order),
        declared_value_fen: e.declared_value_fen.unwrap_or(NONE_FEN),
    };
    write_row(out, e.kind, &row);
}

struct Obj<'o> {
    out: &'o mut Vec<u8>,
    first: bool,
}

impl Obj<'_> {
    fn key(&mut self, name: &str) {
        self.out.push(if self.first { b'{' } else { b',' });
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    fn str(&mut self, name: &str, s: &[u8]) {
        if !s.is_empty() {
            self.key(name);
            write_str(self.out, s);
        }
    }

    fn code(&mut self, name: &str, s: Option<&str>) {
        if let Some(s) = s {
            self.key(name);
            write_str(self.out, s.as_bytes());
        }
    }

    fn f64(&mut self, name: &str, v: f64) {
        if v.is_nan() {
            return;
        }
        self.key(name);
        if v.is_finite() {
            self.out
                .extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes());
        } else {
            // Only a dead-letter rendering meets an infinity: keep it visible, as a string.
            write_str(self.out, if v > 0.0 { b"inf" } else { b"-inf" });
        }
    }
}

fn write_row(out: &mut Vec<u8>, kind: Option<Kind>, r: &Row<'_>) {
    let mut o = Obj { out, first: true };
    let all = kind.is_none();
    let is = |k: Kind| all || kind == Some(k);
    if let Some(k) = kind {
        o.code("kind", Some(k.as_str()));
    }
    o.str("shipment", r.shipment.map_or(&b""[..], |s| s.bytes));
    if let Some(ts) = r.ts {
        o.key("ts");
        o.out
            .extend_from_slice(itoa::Buffer::new().format(ts).as_bytes());
    }
    o.str("id", r.id.bytes);
    if is(Kind::Shipment) || is(Kind::Scan) {
        o.str("carrier", r.carrier.bytes);
    }
    if is(Kind::Shipment) {
        o.str("origin", r.origin.bytes);
        o.str("dest", r.dest.bytes);
        o.code("tier", Tier::from_u8(r.tier).map(Tier::as_str));
        if r.fragile <= 1 {
            o.key("fragile");
            o.out
                .extend_from_slice(if r.fragile == 1 { b"true" } else { b"false" });
        }
        o.str("order", r.order.bytes);
        if r.declared_value_fen != NONE_FEN {
            o.key("declared_value");
            o.out.push(b'"');
            write_fen(o.out, r.declared_value_fen);
            o.out.push(b'"');
        }
    }
    if is(Kind::Scan) {
        o.code("status", Status::from_u8(r.status).map(Status::as_str));
        o.str("location", r.location.bytes);
        o.f64("lat", r.lat);
        o.f64("lon", r.lon);
        let stype = SignerType::from_u8(r.signer_type).map(SignerType::as_str);
        let parts = [
            r.signer_name.bytes,
            r.signer_proxy_id.bytes,
            r.signer_staff_id.bytes,
        ];
        if stype.is_some() || parts.iter().any(|p| !p.is_empty()) {
            o.key("signer");
            let mut s = Obj {
                out: &mut *o.out,
                first: true,
            };
            s.str("name", r.signer_name.bytes);
            s.code("type", stype);
            s.str("proxy_id", r.signer_proxy_id.bytes);
            s.str("staff_id", r.signer_staff_id.bytes);
            o.out.push(b'}');
        }
        o.str("raw_status", r.raw_status.bytes);
    }
    if is(Kind::Sensor) {
        o.str("device", r.device.bytes);
        for m in Metric::ALL {
            o.f64(m.as_str(), r.metrics[m as usize]);
        }
        if !all {
            o.f64("lat", r.lat);
            o.f64("lon", r.lon);
        }
    }
    if o.first {
        o.out.push(b'{');
    }
    o.out.extend_from_slice(b"}\n");
}

/// Bytes that need escaping inside a JSON string.
static ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = i < 0x20 || i == b'"' as usize || i == b'\\' as usize;
        i += 1;
    }
    t
};

/// Write `s` as a JSON string (quotes included). Non-ASCII UTF-8 passes through unescaped.
pub(crate) fn write_str(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    let mut start = 0;
    for (i, &c) in s.iter().enumerate() {
        if !ESCAPE[c as usize] {
            continue;
        }
        out.extend_from_slice(&s[start..i]);
        start = i + 1;
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[(c >> 4) as usize],
                    HEX[(c & 15) as usize],
                ]);
            }
        }
    }
    out.extend_from_slice(&s[start..]);
    out.push(b'"');
}
