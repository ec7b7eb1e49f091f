//! The fast path of the decoder: one pass over an object in the common shape (unescaped keys,
//! string values without escapes, plain decimal numbers), writing typed values straight into a
//! [`Row`] instead of locating every field first.
//!
//! It never decides anything the general path ([`super::fields`]) would decide differently: on
//! anything it does not handle (an escape, `null`, a `signer` object, an exponent it cannot
//! place, a value of the wrong type, a value that fails validation, a syntax error) it gives
//! up without touching the batch, and the caller decodes the object again the general way,
//! which produces the exact same rows and dead letters as before.

use super::fields::field_id;
use super::scan::{find_stop, parse_f64, Lexer, POW10};
use crate::event::validate::{self as v, Row, Text};
use crate::event::{EventBatch, Kind, Status, Tier, N_METRICS};

/// The known fields of one object as converted so far (last occurrence wins). `None` / NaN /
/// empty: not given. Values that only matter for some kinds are checked once the kind is known.
struct Found<'a> {
    kind: Option<&'a [u8]>,
    shipment: Option<&'a [u8]>,
    ts: Option<i64>,
    id: &'a [u8],
    carrier: &'a [u8],
    status: Option<&'a [u8]>,
    location: &'a [u8],
    raw_status: &'a [u8],
    device: Option<&'a [u8]>,
    metrics: [f64; N_METRICS],
    lat: f64,
    lon: f64,
    origin: Option<&'a [u8]>,
    dest: Option<&'a [u8]>,
    tier: Option<&'a [u8]>,
    fragile: Option<u8>,
    order: Option<&'a [u8]>,
    /// The digits (a string's body or a number's text) and nothing else: both go through
    /// [`v::parse_fen`].
    declared_value: Option<&'a [u8]>,
}

impl Found<'_> {
    fn new() -> Self {
        Found {
            kind: None,
            shipment: None,
            ts: None,
            id: b"",
            carrier: b"",
            status: None,
            location: b"",
            raw_status: b"",
            device: None,
            metrics: [f64::NAN; N_METRICS],
            lat: f64::NAN,
            lon: f64::NAN,
            origin: None,
            dest: None,
            tier: None,
            fragile: None,
            order: None,
            declared_value: None,
        }
    }
}

/// A key of up to 16 bytes packed little-endian into a `u128`, zero-padded. Keys cannot hold
/// a NUL byte (control characters stop the key scan), so the packing is unique.
const fn pack(s: &[u8]) -> u128 {
    let mut x = 0u128;
    let mut i = 0;
    while i < s.len() {
        x |= (s[i] as u128) << (8 * i);
        i += 1;
    }
    x
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// The key whose body starts at `k`: its field id (`None`: not a known field) and the index of
/// its closing quote; `None` when it is not a key without escapes. A known name is found
/// without scanning: the first `"` in the next 16 bytes ends it (a known name holds only
/// letters and `_`, so nothing before that quote can be an escape or a control byte).
#[inline(always)]
fn key(b: &[u8], k: usize) -> Option<(Option<usize>, usize)> {
    if let Some(chunk) = b.get(k..k + 16) {
        let mut a = [0u8; 16];
        a.copy_from_slice(chunk);
        let w = u128::from_le_bytes(a);
        let quote = |v: u64| {
            let t = v ^ (u64::from(b'"') * LO);
            // Exact for the lowest match, which is all that is used.
            t.wrapping_sub(LO) & !t & HI
        };
        let (lo, hi) = (quote(w as u64), quote((w >> 64) as u64));
        let len = if lo != 0 {
            lo.trailing_zeros() / 8
        } else if hi != 0 {
            8 + hi.trailing_zeros() / 8
        } else {
            16
        } as usize;
        if len < 16 {
            if let Some(id) = id_of_word(w, len) {
                return Some((Some(id), k + len));
            }
        }
    }
    let ke = find_stop(b, k);
    if b.get(ke) != Some(&b'"') {
        return None;
    }
    Some((key_id(b, k, ke), ke))
}

/// The field id ([`field_id`]) of the key in `b[k..ke]`: one 16-byte load, a mask and a
/// handful of integer compares instead of a byte-wise match.
#[inline(always)]
fn key_id(b: &[u8], k: usize, ke: usize) -> Option<usize> {
    let len = ke - k;
    let Some(chunk) = b.get(k..k + 16) else {
        return field_id(&b[k..ke]);
    };
    let mut a = [0u8; 16];
    a.copy_from_slice(chunk);
    id_of_word(u128::from_le_bytes(a), len)
}

/// The field id of the key made of the first `len` bytes of `w` (little-endian).
#[inline(always)]
fn id_of_word(w: u128, len: usize) -> Option<usize> {
    if len == 0 || len > 16 {
        return None;
    }
    let x = w & (u128::MAX >> (128 - 8 * len));
    const K0: u128 = pack(b"kind");
    const K1: u128 = pack(b"shipment");
    const K2: u128 = pack(b"ts");
    const K3: u128 = pack(b"id");
    const K4: u128 = pack(b"carrier");
    const K5: u128 = pack(b"status");
    const K6: u128 = pack(b"location");
    const K7: u128 = pack(b"raw_status");
    const K8: u128 = pack(b"device");
    const K9: u128 = pack(b"shock_g");
    const K10: u128 = pack(b"temp_c");
    const K11: u128 = pack(b"humidity_pct");
    const K12: u128 = pack(b"tilt_deg");
    const K13: u128 = pack(b"light_lux");
    const K14: u128 = pack(b"battery_pct");
    const K15: u128 = pack(b"lat");
    const K16: u128 = pack(b"lon");
    const K17: u128 = pack(b"origin");
    const K18: u128 = pack(b"dest");
    const K19: u128 = pack(b"tier");
    const K20: u128 = pack(b"fragile");
    const K21: u128 = pack(b"order");
    const K22: u128 = pack(b"declared_value");
    const K23: u128 = pack(b"signer");
    // Constant patterns: the compiler turns this into a binary search over the keys.
    match x {
        K0 => Some(0),
        K1 => Some(1),
        K2 => Some(2),
        K3 => Some(3),
        K4 => Some(4),
        K5 => Some(5),
        K6 => Some(6),
        K7 => Some(7),
        K8 => Some(8),
        K9 => Some(9),
        K10 => Some(10),
        K11 => Some(11),
        K12 => Some(12),
        K13 => Some(13),
        K14 => Some(14),
        K15 => Some(15),
        K16 => Some(16),
        K17 => Some(17),
        K18 => Some(18),
        K19 => Some(19),
        K20 => Some(20),
        K21 => Some(21),
        K22 => Some(22),
        K23 => Some(23),
        _ => None,
    }
}

#[inline(always)]
fn ws(b: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = b.get(i) {
        i += 1;
    }
    i
}

/// A plain JSON number: `-?(0|[1-9][0-9]*)(\.[0-9]+)?` with its digits gathered into `m`
/// (wrapping: only meaningful when `digits` is small), or `None` for anything else (including
/// an exponent, left to the general parser).
#[derive(Clone, Copy, Debug)]
pub(super) struct Num {
    pub end: usize,
    pub m: u64,
    /// Integer and fraction digits.
    pub digits: usize,
    /// Fraction digits (0 when there is no `.`).
    pub frac: usize,
    pub neg: bool,
}

#[inline(always)]
fn digits(b: &[u8], mut i: usize, m: &mut u64) -> usize {
    while let Some(&c) = b.get(i) {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        *m = m.wrapping_mul(10).wrapping_add(u64::from(d));
        i += 1;
    }
    i
}

#[inline(always)]
pub(super) fn scan_num(b: &[u8], start: usize) -> Option<Num> {
    let mut i = start;
    let neg = b.get(i) == Some(&b'-');
    i += usize::from(neg);
    let int_start = i;
    let mut m = 0u64;
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i = digits(b, i, &mut m),
        _ => return None,
    }
    let mut n = i - int_start;
    let mut frac = 0;
    if b.get(i) == Some(&b'.') {
        let f = i + 1;
        i = digits(b, f, &mut m);
        frac = i - f;
        if frac == 0 {
            return None;
        }
        n += frac;
    }
    if let Some(b'e' | b'E') = b.get(i) {
        return None;
    }
    Some(Num {
        end: i,
        m,
        digits: n,
        frac,
        neg,
    })
}

/// The JSON number at `start`: where it ends and its nearest `f64`; `None` when there is no
/// valid JSON number there. One pass for plain numbers of up to 15 digits (Clinger's fast
/// path: an exact mantissa divided by an exact power of ten is correctly rounded), the exact
/// general parser for everything else.
#[inline(always)]
pub(super) fn parse_number(b: &[u8], start: usize) -> Option<(usize, f64)> {
    match scan_num(b, start) {
        Some(n) if n.digits <= 15 => {
            let v = n.m as f64 / POW10[n.frac];
            Some((n.end, if n.neg { -v } else { v }))
        }
        _ => number_slow(b, start),
    }
}

#[cold]
#[inline(never)]
fn number_slow(b: &[u8], start: usize) -> Option<(usize, f64)> {
    let mut lx = Lexer::new(b, start);
    let val = lx.number().ok()?;
    Some((lx.i, parse_f64(val.raw)))
}

/// A string value without escapes at `i`: its body and the index after its closing quote.
#[inline(always)]
fn string(b: &[u8], i: usize) -> Option<(&[u8], usize)> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let s = i + 1;
    let j = find_stop(b, s);
    match b.get(j) {
        Some(b'"') => Some((&b[s..j], j + 1)),
        _ => string_utf8(b, s, j),
    }
}

/// The rest of a string that has non-ASCII bytes: valid UTF-8 passes, escapes give up.
#[inline(never)]
fn string_utf8(b: &[u8], s: usize, mut j: usize) -> Option<(&[u8], usize)> {
    loop {
        match b.get(j) {
            Some(b'"') => break,
            Some(&c) if c >= 0x80 => j = find_stop(b, j + 1),
            _ => return None,
        }
    }
    let body = &b[s..j];
    std::str::from_utf8(body).ok()?;
    Some((body, j + 1))
}

/// Decode the object at the cursor (on its `{`) and push it as a row. `false`: not handled
/// here; nothing was pushed and the cursor has not moved.
#[inline]
pub(super) fn object(lx: &mut Lexer<'_>, default_kind: Option<Kind>, out: &mut EventBatch) -> bool {
    let start = lx.i;
    let mut f = Found::new();
    // `members` moves the cursor only to skip unknown values with the general scanner.
    match members(lx, &mut f) {
        Some(end) if push(&f, default_kind, out).is_some() => {
            lx.i = end;
            true
        }
        _ => {
            lx.i = start;
            false
        }
    }
}

/// Scan the members into `f`; the index after the closing `}`.
#[inline(always)]
fn members<'a>(lx: &mut Lexer<'a>, f: &mut Found<'a>) -> Option<usize> {
    let b = lx.b;
    let mut i = lx.i + 1;
    loop {
        if b.get(i) != Some(&b'"') {
            i = ws(b, i);
            if b.get(i) != Some(&b'"') {
                return None;
            }
        }
        let k = i + 1;
        let (id, ke) = key(b, k)?;
        i = ke + 1;
        if b.get(i) != Some(&b':') {
            i = ws(b, i);
            if b.get(i) != Some(&b':') {
                return None;
            }
        }
        i = ws(b, i + 1);
        macro_rules! text {
            ($slot:expr) => {{
                let (s, j) = string(b, i)?;
                $slot = s;
                i = j;
            }};
        }
        macro_rules! opt_text {
            ($slot:expr) => {{
                let (s, j) = string(b, i)?;
                $slot = Some(s);
                i = j;
            }};
        }
        match id {
            Some(id @ 9..=16) => {
                let (j, x) = parse_number(b, i)?;
                match id {
                    15 => f.lat = x,
                    16 => f.lon = x,
                    _ => f.metrics[id - 9] = x,
                }
                i = j;
            }
            Some(0) => opt_text!(f.kind),
            Some(1) => opt_text!(f.shipment),
            Some(2) => {
                if b.get(i) == Some(&b'"') {
                    let (s, j) = string(b, i)?;
                    f.ts = Some(v::ts_rfc3339(s).ok()?);
                    i = j;
                } else {
                    let n = scan_num(b, i)?;
                    if n.frac != 0 || n.digits > 18 {
                        return None;
                    }
                    let ms = if n.neg { -(n.m as i64) } else { n.m as i64 };
                    f.ts = Some(v::ts_ms(ms).ok()?);
                    i = n.end;
                }
            }
            Some(3) => text!(f.id),
            Some(4) => text!(f.carrier),
            Some(5) => opt_text!(f.status),
            Some(6) => text!(f.location),
            Some(7) => text!(f.raw_status),
            Some(8) => opt_text!(f.device),
            Some(17) => opt_text!(f.origin),
            Some(18) => opt_text!(f.dest),
            Some(19) => opt_text!(f.tier),
            Some(20) => {
                if b[i..].starts_with(b"true") {
                    f.fragile = Some(1);
                    i += 4;
                } else if b[i..].starts_with(b"false") {
                    f.fragile = Some(0);
                    i += 5;
                } else {
                    return None;
                }
            }
            Some(21) => opt_text!(f.order),
            Some(22) => {
                if b.get(i) == Some(&b'"') {
                    opt_text!(f.declared_value);
                } else {
                    let (j, _) = parse_number(b, i)?;
                    f.declared_value = Some(&b[i..j]);
                    i = j;
                }
            }
            // `signer` (an object with fields of its own) is left to the general path.
            Some(_) => return None,
            None => {
                lx.i = i;
                lx.value().ok()?;
                i = lx.i;
            }
        }
        if !matches!(b.get(i), Some(b',' | b'}')) {
            i = ws(b, i);
        }
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b'}') => return Some(i + 1),
            _ => return None,
        }
    }
}

/// Resolve the kind, convert and check the kind's fields, and push the row.
#[inline(always)]
fn push(f: &Found<'_>, default_kind: Option<Kind>, out: &mut EventBatch) -> Option<()> {
    let kind = match (f.kind, default_kind) {
        (Some(k), _) => Kind::parse(k)?,
        (None, Some(k)) => k,
        (None, None) => infer(f)?,
    };
    let mut r = Row::new(kind);
    r.shipment = f.shipment.map(Text::plain);
    r.ts = f.ts;
    r.id = Text::plain(f.id);
    let lat_lon = |r: &mut Row<'_>| -> Option<()> {
        if !f.lat.is_nan() {
            r.lat = v::lat(f.lat).ok()?;
        }
        if !f.lon.is_nan() {
            r.lon = v::lon(f.lon).ok()?;
        }
        Some(())
    };
    match kind {
        Kind::Sensor => {
            r.device = Text::plain(f.device.unwrap_or_default());
            if f.metrics.iter().any(|x| x.is_infinite()) {
                return None;
            }
            r.metrics = f.metrics;
            lat_lon(&mut r)?;
        }
        Kind::Scan => {
            r.carrier = Text::plain(f.carrier);
            if let Some(s) = f.status {
                r.status = Status::parse(s)? as u8;
            }
            r.location = Text::plain(f.location);
            r.raw_status = Text::plain(f.raw_status);
            lat_lon(&mut r)?;
        }
        Kind::Shipment => {
            r.carrier = Text::plain(f.carrier);
            r.origin = Text::plain(f.origin.unwrap_or_default());
            r.dest = Text::plain(f.dest.unwrap_or_default());
            r.order = Text::plain(f.order.unwrap_or_default());
            if let Some(t) = f.tier {
                r.tier = Tier::parse(t)? as u8;
            }
            if let Some(x) = f.fragile {
                r.fragile = x;
            }
            if let Some(d) = f.declared_value {
                r.declared_value_fen = v::parse_fen(d)?;
            }
        }
    }
    r.push(out).ok()
}

/// The kind of an object without `kind` and without a default (as the general path infers it).
fn infer(f: &Found<'_>) -> Option<Kind> {
    if f.status.is_some() {
        Some(Kind::Scan)
    } else if f.device.is_some() || f.metrics.iter().any(|x| !x.is_nan()) {
        Some(Kind::Sensor)
    } else if f.tier.is_some()
        || f.origin.is_some()
        || f.dest.is_some()
        || f.fragile.is_some()
        || f.order.is_some()
        || f.declared_value.is_some()
    {
        Some(Kind::Shipment)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::super::fields::Fields;
    use super::*;
    use crate::event::json::encode_event;
    use crate::event::validate::testgen;
    use proptest::prelude::*;

    /// The general path alone on one object: its outcome, the batch and the cursor.
    fn general(input: &[u8], dk: Option<Kind>) -> String {
        let mut lx = Lexer::new(input, 0);
        let mut f = Fields::default();
        if let Err(e) = f.parse(&mut lx) {
            return format!("syntax error {e:?}");
        }
        let mut out = EventBatch::default();
        let mut ship_buf = [0u8; 64];
        let mut row = Row::new(Kind::Sensor);
        let res = f
            .row(dk, &mut ship_buf, &mut row)
            .and_then(|()| row.push(&mut out));
        format!("{res:?} {out:?} {}", lx.i)
    }

    /// The fast path alone: `None` when it gives up (and then it must have left no trace).
    fn fast(input: &[u8], dk: Option<Kind>) -> Option<String> {
        let mut lx = Lexer::new(input, 0);
        let mut out = EventBatch::default();
        if object(&mut lx, dk, &mut out) {
            Some(format!("{:?} {out:?} {}", Ok::<(), v::Invalid>(()), lx.i))
        } else {
            assert_eq!(lx.i, 0);
            assert_eq!(format!("{out:?}"), format!("{:?}", EventBatch::default()));
            None
        }
    }

    /// Whenever the fast path takes an object, it does exactly what the general path does.
    fn agree(input: &str, dk: Option<Kind>) -> bool {
        let got = fast(input.as_bytes(), dk);
        if let Some(got) = &got {
            assert_eq!(got, &general(input.as_bytes(), dk), "{input}");
        }
        got.is_some()
    }

    const SENSOR: &str = r#"{"kind":"sensor","shipment":"SF1234567890123","device":"GW-88","ts":1788710400000,"shock_g":0.42,"temp_c":23.5,"humidity_pct":55.1,"tilt_deg":3.2,"light_lux":0.4,"battery_pct":87.5}"#;

    #[test]
    fn common_shapes_take_the_fast_path() {
        for input in [
            SENSOR,
            r#"{"kind":"scan","shipment":"SF1","ts":"2026-09-07T10:00:00.123+08:00","id":"sf-1","carrier":"sf","status":"IN_TRANSIT","location":"CN-31","lat":31.2304,"lon":-121.4737,"raw_status":"运输中"}"#,
            r#"{"kind":"shipment","shipment":"JD1","ts":0,"carrier":"jd","origin":"CN-31","dest":"CN-11","tier":"premium","fragile":false,"order":"RO-42","declared_value":"1299.5"}"#,
            r#" { "shipment" : "A" , "ts" : 1 , "temp_c" : -0.0 , "x" : {"deep":[1,{"y":null}]} } "#,
            r#"{"shipment":"A","ts":1,"declared_value":1299}"#,
            r#"{"shipment":"A","ts":1,"status":"DELIVERED","temp_c":1e2,"tier":"gold"}"#,
            r#"{"shipment":"A","ts":1,"temp_c":1,"temp_c":2,"shipment":"B"}"#,
            r#"{"shipment":"A","ts":1,"temp_c":12345678901234567890.5,"lat":-0.000000000000000001}"#,
            "{\"kind\":\"sensor\",\"shipment\":\"A\",\"ts\":1,\"device\":\"\u{e9}\u{301}\"}",
        ] {
            assert!(agree(input.trim(), None), "{input}");
        }
    }

    #[test]
    fn anything_else_falls_back() {
        for input in [
            r#"{"kind":"sensor","shipment":"A\/B","ts":1}"#,
            r#"{"kind":"sensor","ship\u006dent":"A","ts":1}"#,
            r#"{"kind":"sensor","shipment":"A","ts":1,"device":"d\"q"}"#,
            r#"{"kind":"sensor","shipment":"A","ts":1,"temp_c":null}"#,
            r#"{"kind":"scan","shipment":"A","ts":1,"status":"DELIVERED","signer":{"name":"x"}}"#,
            r#"{"kind":"sensor","shipment":"A","ts":1.5}"#,
            r#"{"kind":"sensor","shipment":"A","ts":-1}"#,
            r#"{"kind":"sensor","shipment":"A","ts":1e3}"#,
            r#"{"kind":"sensor","shipment":"A","ts":"yesterday"}"#,
            r#"{"kind":"sensor","shipment":"A","ts":1,"shock_g":1e999}"#,
            r#"{"kind":"sensor","shipment":"A","ts":1,"lat":91}"#,
            r#"{"kind":"sensor","shipment":"","ts":1}"#,
            r#"{"kind":"sensor","shipment":"A"}"#,
            r#"{"kind":"scan","shipment":"A","ts":1}"#,
            r#"{"kind":"scan","shipment":"A","ts":1,"status":"LOST"}"#,
            r#"{"kind":"truck","shipment":"A","ts":1}"#,
            r#"{"shipment":"A","ts":1}"#,
            r#"{"kind":"shipment","shipment":"A","ts":1,"declared_value":12.345}"#,
            r#"{"kind":"shipment","shipment":"A","ts":1,"fragile":"yes"}"#,
            r#"{"kind":"sensor","shipment":"A","ts":1,"temp_c":01}"#,
            r#"{"kind":"sensor","shipment":"A","ts":1,"temp_c":1.}"#,
            r#"{"kind":"sensor","shipment":"A","ts":1,"device":"d""#,
            r#"{"kind":"sensor","shipment":"A","ts":1,}"#,
            "{\"kind\":\"sensor\",\"shipment\":\"A\u{1}\",\"ts\":1}",
            "{}",
        ] {
            assert!(!agree(input, None), "{input}");
        }
        // Invalid UTF-8 inside a string.
        let mut bad = br#"{"kind":"sensor","shipment":"A","ts":1,"device":"x"#.to_vec();
        bad.extend_from_slice(b"\xff\"}");
        assert!(fast(&bad, None).is_none());
    }

    #[test]
    fn keys_match_by_word_as_by_name() {
        // Every known name, then near misses that must not match.
        let misses = [
            "",
            "x",
            "tsx",
            "kinds",
            "stat_s",
            "lax",
            "signer_",
            "declared_values",
            "battery_pct_max",
            "humidity_pct_16b",
        ];
        let names = super::super::fields::NAMES.iter().chain(&misses);
        // Escapes and control bytes end the fast key match; the general path takes over.
        assert_eq!(key(b"\"ts\\\"x\":1,\"padding_padding\":2}", 1), None);
        assert_eq!(key(b"\"t\x01s\":1,\"padding_padding\":2}", 1), None);
        for name in names {
            let want = field_id(name.as_bytes());
            // Far from the end of the input (word loads) and at its very end (byte compare).
            for tail in ["\":1,\"padding_padding\":2}", "\""] {
                let text = format!("\"{name}{tail}");
                let b = text.as_bytes();
                assert_eq!(key_id(b, 1, 1 + name.len()), want, "{name}{tail}");
                assert_eq!(key(b, 1), Some((want, 1 + name.len())), "{name}{tail}");
            }
        }
    }

    /// A random JSON number: sign, integer part, fraction, exponent; long mantissas included.
    fn json_number() -> impl Strategy<Value = String> {
        (
            any::<bool>(),
            prop_oneof![Just(String::from("0")), "[1-9][0-9]{0,24}"],
            prop::option::of("[0-9]{1,25}"),
            prop::option::of(("[eE]", "[+-]?", 0u32..400)),
        )
            .prop_map(|(neg, int, frac, exp)| {
                let mut s = String::new();
                if neg {
                    s.push('-');
                }
                s += &int;
                if let Some(f) = frac {
                    s.push('.');
                    s += &f;
                }
                if let Some((e, sign, n)) = exp {
                    s += &format!("{e}{sign}{n}");
                }
                s
            })
    }

    fn check_number(s: &str) {
        let want: f64 = s.parse().unwrap();
        for tail in ["", ",", "}"] {
            let text = format!("{s}{tail}");
            let (end, got) = parse_number(text.as_bytes(), 0).expect(s);
            assert_eq!(end, s.len(), "{s}");
            assert_eq!(got.to_bits(), want.to_bits(), "{s}");
        }
    }

    #[test]
    fn numbers_parse_exactly() {
        for s in [
            "0",
            "-0",
            "-0.0",
            "0.1",
            "0.42",
            "23.5",
            "-5.25",
            "87.5",
            "1788710400000",
            "123456789012345",
            "1234567890123456",
            "9007199254740993",
            "0.30000000000000004",
            "2.2250738585072014e-308",
            "1.7976931348623157e308",
            "1e999",
            "-1e-999",
            "5e-324",
            "0.000000000000000000001",
            "999999999999999.9",
            "1E+2",
        ] {
            check_number(s);
        }
        for bad in ["", "-", "01x", ".5", "1.", "1e", "1e+", "+1", "-.5", "x"] {
            let ok =
                bad.parse::<f64>().is_ok() && !bad.starts_with(['+', '.']) && !bad.ends_with('.');
            if !ok {
                let got = parse_number(bad.as_bytes(), 0).map(|(end, _)| end);
                // "01x" is the number 0 followed by something else.
                assert!(got.is_none() || bad.starts_with('0'), "{bad}: {got:?}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn numbers_match_std(s in json_number()) {
            check_number(&s);
        }

        #[test]
        fn fast_path_agrees_with_general_path(e in testgen::event(), dk in prop::option::of(prop::sample::select(Kind::ALL.to_vec()))) {
            let mut text = Vec::new();
            encode_event(&e, &mut text);
            let line = String::from_utf8(text).unwrap();
            agree(line.trim_end(), dk);
            // Without its kind, and with a metric slot holding another value.
            let no_kind = line.trim_end().replacen("\"kind\":", "\"kinx\":", 1);
            agree(&no_kind, dk);
        }

        #[test]
        fn mangled_objects_agree(e in testgen::event(), cut in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let mut text = Vec::new();
            encode_event(&e, &mut text);
            let at = cut.index(text.len());
            let mut changed = text.clone();
            changed[at] = byte;
            for input in [&text[..at], &changed[..]] {
                if let Some(got) = fast(input, None) {
                    prop_assert_eq!(got, general(input, None));
                }
            }
        }
    }
}
