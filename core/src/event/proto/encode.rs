//! Protobuf encoding of [`EventBatch`] rows, field by field in number order (as prost does).

use super::{I64, LEN, VARINT};
use crate::event::validate::{self as v, Row};
use crate::event::{EventBatch, Kind, NONE_FEN, NONE_U8};

#[inline]
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

#[inline]
fn put_str(out: &mut Vec<u8>, field: u32, s: &[u8]) {
    if !s.is_empty() {
        out.push((field << 3) as u8 | LEN);
        put_varint(out, s.len() as u64);
        out.extend_from_slice(s);
    }
}

#[inline]
fn put_f64(out: &mut Vec<u8>, field: u32, x: f64) {
    if !x.is_nan() {
        out.push((field << 3) as u8 | I64);
        out.extend_from_slice(&x.to_bits().to_le_bytes());
    }
}

#[inline]
fn put_code(out: &mut Vec<u8>, field: u32, code: u8) {
    if code != NONE_U8 {
        out.extend_from_slice(&[(field << 3) as u8 | VARINT, code + 1]);
    }
}

/// Room left before each event's body for its two headers (tag + length, twice).
const HEADER_ROOM: usize = 12;

/// Encode rows `rows` of `batch` (any subset, in the order given) as one `EventBatch` message.
pub fn encode(batch: &EventBatch, rows: impl IntoIterator<Item = usize>, out: &mut Vec<u8>) {
    for i in rows {
        let Some(r) = Row::from_batch(batch, i) else {
            // A row without a kind: an empty Event, which the decoder rejects as bad_kind.
            out.extend_from_slice(&[0x0a, 0x00]);
            continue;
        };
        // Write the body first, then slide it back behind its now-known length prefixes.
        let start = out.len();
        out.resize(start + HEADER_ROOM, 0);
        body(&r, out);
        let body_len = out.len() - start - HEADER_ROOM;
        let mut h = [0u8; HEADER_ROOM];
        let mut n = 0;
        let mut push = |bytes: &[u8]| {
            h[n..n + bytes.len()].copy_from_slice(bytes);
            n += bytes.len();
        };
        let event_len = 1 + varint_len(body_len as u64) + body_len;
        let mut tmp = [0u8; 10];
        push(&[0x0a]);
        push(varint_bytes(event_len as u64, &mut tmp));
        push(&[((r.kind as u8 + 1) << 3) | LEN]);
        push(varint_bytes(body_len as u64, &mut tmp));
        out[start..start + n].copy_from_slice(&h[..n]);
        out.copy_within(start + HEADER_ROOM.., start + n);
        out.truncate(out.len() - (HEADER_ROOM - n));
    }
}

fn varint_bytes(mut v: u64, buf: &mut [u8; 10]) -> &[u8] {
    let mut n = 0;
    while v >= 0x80 {
        buf[n] = v as u8 | 0x80;
        v >>= 7;
        n += 1;
    }
    buf[n] = v as u8;
    &buf[..=n]
}

fn body(r: &Row<'_>, out: &mut Vec<u8>) {
    put_str(out, 1, r.shipment.map_or(&b""[..], |s| s.bytes));
    if let Some(ts) = r.ts {
        out.push((2 << 3) | VARINT);
        put_varint(out, ts as u64);
    }
    put_str(out, 3, r.id.bytes);
    match r.kind {
        Kind::Shipment => {
            put_str(out, 4, r.carrier.bytes);
            put_str(out, 5, r.origin.bytes);
            put_str(out, 6, r.dest.bytes);
            put_code(out, 7, r.tier);
            if r.fragile != NONE_U8 {
                out.extend_from_slice(&[(8 << 3) | VARINT, u8::from(r.fragile != 0)]);
            }
            put_str(out, 9, r.order.bytes);
            if r.declared_value_fen != NONE_FEN {
                // At most 22 characters: the length fits one byte, patched after writing.
                out.extend_from_slice(&[(10 << 3) | LEN, 0]);
                let at = out.len();
                v::write_fen(out, r.declared_value_fen);
                out[at - 1] = (out.len() - at) as u8;
            }
        }
        Kind::Scan => {
            put_str(out, 4, r.carrier.bytes);
            put_code(out, 5, r.status);
            put_str(out, 6, r.location.bytes);
            put_f64(out, 7, r.lat);
            put_f64(out, 8, r.lon);
            let parts = [
                (1, r.signer_name.bytes),
                (3, r.signer_proxy_id.bytes),
                (4, r.signer_staff_id.bytes),
            ];
            let len: usize = parts
                .iter()
                .filter(|(_, s)| !s.is_empty())
                .map(|(_, s)| 1 + varint_len(s.len() as u64) + s.len())
                .sum::<usize>()
                + if r.signer_type != NONE_U8 { 2 } else { 0 };
            if len > 0 {
                out.push((9 << 3) | LEN);
                put_varint(out, len as u64);
                put_str(out, 1, r.signer_name.bytes);
                put_code(out, 2, r.signer_type);
                put_str(out, 3, r.signer_proxy_id.bytes);
                put_str(out, 4, r.signer_staff_id.bytes);
            }
            put_str(out, 10, r.raw_status.bytes);
        }
        Kind::Sensor => {
            put_str(out, 4, r.device.bytes);
            for (m, &x) in r.metrics.iter().enumerate() {
                put_f64(out, 5 + m as u32, x);
            }
            put_f64(out, 11, r.lat);
            put_f64(out, 12, r.lon);
        }
    }
}
