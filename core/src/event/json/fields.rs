//! The known fields of one event object: located by the scanner, then converted and checked
//! into a [`Row`].

use super::scan::{self, Lexer, SyntaxError, Ty, Val};
use crate::event::validate::{self as v, Invalid, Row, Text};
use crate::event::{Kind, Reason, N_METRICS};

/// Top-level field names; the index is the id [`Fields::slot`] files a value under.
pub(super) const NAMES: [&str; 24] = [
    "kind",
    "shipment",
    "ts",
    "id",
    "carrier",
    "status",
    "location",
    "raw_status",
    "device",
    "shock_g",
    "temp_c",
    "humidity_pct",
    "tilt_deg",
    "light_lux",
    "battery_pct",
    "lat",
    "lon",
    "origin",
    "dest",
    "tier",
    "fragile",
    "order",
    "declared_value",
    "signer",
];
const SIGNER: usize = 23;

/// The id of a known top-level field: a guess from (length, first byte), then one compare,
/// instead of comparing the key with every name.
#[inline]
pub(super) fn field_id(key: &[u8]) -> Option<usize> {
    let (&first, &last) = (key.first()?, key.last()?);
    let id = match (key.len(), first) {
        (2, b't') => 2,
        (2, b'i') => 3,
        (3, b'l') if last == b't' => 15,
        (3, b'l') => 16,
        (4, b'k') => 0,
        (4, b'd') => 18,
        (4, b't') => 19,
        (5, b'o') => 21,
        (6, b's') if last == b's' => 5,
        (6, b's') => SIGNER,
        (6, b'd') => 8,
        (6, b't') => 10,
        (6, b'o') => 17,
        (7, b'c') => 4,
        (7, b's') => 9,
        (7, b'f') => 20,
        (8, b's') => 1,
        (8, b'l') => 6,
        (8, b't') => 12,
        (9, b'l') => 13,
        (10, b'r') => 7,
        (11, b'b') => 14,
        (12, b'h') => 11,
        (14, b'd') => 22,
        _ => return None,
    };
    same(key, NAMES[id].as_bytes()).then_some(id)
}

/// `a == b` for short keys with two overlapping word compares (a plain `==` calls memcmp).
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n >= 8 {
        word::<8>(a, 0) == word::<8>(b, 0) && word::<8>(a, n - 8) == word::<8>(b, n - 8)
    } else if n >= 4 {
        word::<4>(a, 0) == word::<4>(b, 0) && word::<4>(a, n - 4) == word::<4>(b, n - 4)
    } else {
        a.iter().zip(b).all(|(x, y)| x == y)
    }
}

#[inline]
fn word<const N: usize>(s: &[u8], at: usize) -> [u8; N] {
    let mut w = [0u8; N];
    w.copy_from_slice(&s[at..at + N]);
    w
}

/// The known fields of one event object, as found (last occurrence wins).
#[derive(Default)]
pub(super) struct Fields<'a> {
    kind: Option<Val<'a>>,
    shipment: Option<Val<'a>>,
    ts: Option<Val<'a>>,
    id: Option<Val<'a>>,
    carrier: Option<Val<'a>>,
    status: Option<Val<'a>>,
    location: Option<Val<'a>>,
    raw_status: Option<Val<'a>>,
    signer: Option<Val<'a>>,
    signer_name: Option<Val<'a>>,
    signer_type: Option<Val<'a>>,
    signer_proxy_id: Option<Val<'a>>,
    signer_staff_id: Option<Val<'a>>,
    device: Option<Val<'a>>,
    metrics: [Option<Val<'a>>; N_METRICS],
    lat: Option<Val<'a>>,
    lon: Option<Val<'a>>,
    origin: Option<Val<'a>>,
    dest: Option<Val<'a>>,
    tier: Option<Val<'a>>,
    fragile: Option<Val<'a>>,
    order: Option<Val<'a>>,
    declared_value: Option<Val<'a>>,
}

/// A present, non-null field.
#[inline]
fn given<'a>(v: Option<Val<'a>>) -> Option<Val<'a>> {
    v.filter(|v| !v.is_null())
}

/// Visit each `"key": value` member of the object at the cursor; `member` consumes the value.
#[inline]
fn members<'a>(
    lx: &mut Lexer<'a>,
    mut member: impl FnMut(&mut Lexer<'a>, &[u8]) -> Result<(), SyntaxError>,
) -> Result<(), SyntaxError> {
    lx.i += 1;
    lx.ws();
    if lx.peek() == Some(b'}') {
        lx.i += 1;
        return Ok(());
    }
    loop {
        lx.ws();
        if lx.peek() != Some(b'"') {
            return Err(lx.err("expected a string key"));
        }
        let start = lx.i;
        let Some(ty) = lx.scan_string() else {
            return Err(lx.error);
        };
        let key = &lx.b[start + 1..lx.i - 1];
        lx.expect(b':', "expected ':' after object key")?;
        if ty == Ty::EscStr {
            let mut buf = [0u8; 64];
            member(lx, scan::unescape_small(key, &mut buf).unwrap_or(b"?"))?;
        } else {
            member(lx, key)?;
        }
        lx.ws();
        match lx.peek() {
            Some(b',') => lx.i += 1,
            Some(b'}') => {
                lx.i += 1;
                return Ok(());
            }
            _ => return Err(lx.err("expected ',' or '}' in object")),
        }
    }
}

impl<'a> Fields<'a> {
    #[inline]
    fn slot(&mut self, id: usize) -> &mut Option<Val<'a>> {
        match id {
            0 => &mut self.kind,
            1 => &mut self.shipment,
            2 => &mut self.ts,
            3 => &mut self.id,
            4 => &mut self.carrier,
            5 => &mut self.status,
            6 => &mut self.location,
            7 => &mut self.raw_status,
            8 => &mut self.device,
            9..=14 => &mut self.metrics[id - 9],
            15 => &mut self.lat,
            16 => &mut self.lon,
            17 => &mut self.origin,
            18 => &mut self.dest,
            19 => &mut self.tier,
            20 => &mut self.fragile,
            21 => &mut self.order,
            22 => &mut self.declared_value,
            _ => &mut self.signer,
        }
    }

    pub(super) fn parse(&mut self, lx: &mut Lexer<'a>) -> Result<(), SyntaxError> {
        members(lx, |lx, key| {
            let id = field_id(key);
            if id == Some(SIGNER) {
                lx.ws();
                if lx.peek() == Some(b'{') {
                    let start = lx.i;
                    self.parse_signer(lx)?;
                    self.signer = Some(Val {
                        ty: Ty::Object,
                        raw: &lx.b[start..lx.i],
                        num: f64::NAN,
                    });
                    return Ok(());
                }
            }
            let Some(id) = id else {
                lx.value()?;
                return Ok(());
            };
            lx.ws();
            let start = lx.i;
            let Some((ty, num)) = lx.scan_value() else {
                return Err(lx.error);
            };
            *self.slot(id) = Some(Val {
                ty,
                raw: &lx.b[start..lx.i],
                num,
            });
            Ok(())
        })
    }

    fn parse_signer(&mut self, lx: &mut Lexer<'a>) -> Result<(), SyntaxError> {
        (
            self.signer_name,
            self.signer_type,
            self.signer_proxy_id,
            self.signer_staff_id,
        ) = (None, None, None, None);
        members(lx, |lx, key| {
            let slot = match key {
                b"name" => &mut self.signer_name,
                b"type" => &mut self.signer_type,
                b"proxy_id" => &mut self.signer_proxy_id,
                b"staff_id" => &mut self.signer_staff_id,
                _ => {
                    lx.value()?;
                    return Ok(());
                }
            };
            *slot = Some(lx.value()?);
            Ok(())
        })
    }

    fn kind(&self, default_kind: Option<Kind>) -> Result<Kind, Invalid> {
        if let Some(k) = given(self.kind) {
            let mut buf = [0u8; 64];
            return match k.ty {
                Ty::Str | Ty::EscStr => v::kind(small(k, &mut buf)),
                _ => Err(v::bad_kind(&v::got_raw(k.raw))),
            };
        }
        if let Some(k) = default_kind {
            return Ok(k);
        }
        let any = |vals: &[Option<Val<'a>>]| vals.iter().any(|v| given(*v).is_some());
        if given(self.status).is_some() {
            Ok(Kind::Scan)
        } else if given(self.device).is_some() || any(&self.metrics) {
            Ok(Kind::Sensor)
        } else if any(&[
            self.tier,
            self.origin,
            self.dest,
            self.fragile,
            self.order,
            self.declared_value,
        ]) {
            Ok(Kind::Shipment)
        } else {
            Err(v::kind_not_inferable())
        }
    }

    /// Convert and check every field that belongs to the event's kind.
    #[inline]
    pub(super) fn row<'b>(
        &self,
        default_kind: Option<Kind>,
        ship_buf: &'b mut [u8; 64],
        r: &mut Row<'b>,
    ) -> Result<(), Invalid>
    where
        'a: 'b,
    {
        let kind = self.kind(default_kind)?;
        // Filled in place: a row is a few hundred bytes, not worth moving around.
        *r = Row::new(kind);
        if let Some(s) = given(self.shipment) {
            r.shipment = Some(match s.ty {
                Ty::Str => Text::plain(s.body()),
                Ty::EscStr => {
                    Text::plain(scan::unescape_small(s.body(), ship_buf).unwrap_or(s.raw))
                }
                _ => return Err(bad_shipment_type(s)),
            });
        }
        if let Some(t) = given(self.ts) {
            r.ts = Some(ts(t)?);
        }
        r.id = text("id", self.id)?;
        match kind {
            Kind::Scan => {
                r.carrier = text("carrier", self.carrier)?;
                if let Some(s) = given(self.status) {
                    let mut buf = [0u8; 64];
                    r.status = match s.ty {
                        Ty::Str | Ty::EscStr => v::status(small(s, &mut buf))?,
                        _ => return Err(v::bad_status(&v::got_raw(s.raw))),
                    };
                }
                r.location = text("location", self.location)?;
                r.raw_status = text("raw_status", self.raw_status)?;
                self.signer(r)?;
                r.lat = num("lat", self.lat, v::lat)?;
                r.lon = num("lon", self.lon, v::lon)?;
            }
            Kind::Sensor => {
                r.device = text("device", self.device)?;
                for (m, val) in self.metrics.iter().enumerate() {
                    let name = crate::event::Metric::ALL[m].as_str();
                    r.metrics[m] = num(name, *val, |x| v::metric(name, x))?;
                }
                r.lat = num("lat", self.lat, v::lat)?;
                r.lon = num("lon", self.lon, v::lon)?;
            }
            Kind::Shipment => {
                r.carrier = text("carrier", self.carrier)?;
                r.origin = text("origin", self.origin)?;
                r.dest = text("dest", self.dest)?;
                r.order = text("order", self.order)?;
                if let Some(t) = given(self.tier) {
                    let mut buf = [0u8; 64];
                    r.tier = match t.ty {
                        Ty::Str | Ty::EscStr => v::tier(small(t, &mut buf))?,
                        _ => return Err(v::bad_tier(&v::got_raw(t.raw))),
                    };
                }
                if let Some(f) = given(self.fragile) {
                    r.fragile = match f.ty {
                        Ty::True => 1,
                        Ty::False => 0,
                        _ => {
                            return Err(v::bad_field(
                                "fragile",
                                "true or false",
                                &v::got_raw(f.raw),
                            ))
                        }
                    };
                }
                if let Some(d) = given(self.declared_value) {
                    let mut buf = [0u8; 64];
                    r.declared_value_fen = match d.ty {
                        Ty::Str | Ty::EscStr => v::declared_value(small(d, &mut buf))?,
                        Ty::Num => {
                            v::parse_fen(d.raw).ok_or_else(|| v::bad_fen(&v::got_raw(d.raw)))?
                        }
                        _ => return Err(v::bad_fen(&v::got_raw(d.raw))),
                    };
                }
            }
        }
        Ok(())
    }

    fn signer<'b>(&self, r: &mut Row<'b>) -> Result<(), Invalid>
    where
        'a: 'b,
    {
        let Some(s) = given(self.signer) else {
            return Ok(());
        };
        if s.ty != Ty::Object {
            return Err(v::bad_field("signer", "an object", &v::got_raw(s.raw)));
        }
        r.signer_name = text("signer.name", self.signer_name)?;
        r.signer_proxy_id = text("signer.proxy_id", self.signer_proxy_id)?;
        r.signer_staff_id = text("signer.staff_id", self.signer_staff_id)?;
        if let Some(t) = given(self.signer_type) {
            let mut buf = [0u8; 64];
            r.signer_type = match t.ty {
                Ty::Str | Ty::EscStr => v::signer_type(small(t, &mut buf))?,
                _ => return Err(v::bad_signer_type(&v::got_raw(t.raw))),
            };
        }
        Ok(())
    }
}

/// A short string value unescaped (enum names, timestamps); too long ones stay raw and fail
/// the caller's check.
#[inline]
fn small<'b>(val: Val<'b>, buf: &'b mut [u8; 64]) -> &'b [u8] {
    match val.ty {
        Ty::EscStr => scan::unescape_small(val.body(), buf).unwrap_or(val.raw),
        _ => val.body(),
    }
}

#[inline]
fn text<'a>(field: &str, val: Option<Val<'a>>) -> Result<Text<'a>, Invalid> {
    match given(val) {
        None => Ok(Text::default()),
        Some(Val {
            ty: ty @ (Ty::Str | Ty::EscStr),
            raw,
            ..
        }) => Ok(Text {
            bytes: &raw[1..raw.len() - 1],
            json_escaped: ty == Ty::EscStr,
        }),
        Some(other) => Err(v::bad_field(field, "a string", &v::got_raw(other.raw))),
    }
}

#[inline]
fn num(
    field: &str,
    val: Option<Val<'_>>,
    check: impl Fn(f64) -> Result<f64, Invalid>,
) -> Result<f64, Invalid> {
    match given(val) {
        None => Ok(f64::NAN),
        Some(Val {
            ty: Ty::Num,
            raw,
            num,
        }) => check(if num.is_nan() {
            scan::parse_f64(raw)
        } else {
            num
        }),
        Some(other) => Err(v::bad_field(
            field,
            "a finite number",
            &v::got_raw(other.raw),
        )),
    }
}

#[inline]
fn ts(val: Val<'_>) -> Result<i64, Invalid> {
    match val.ty {
        Ty::Num => match scan::parse_i64(val.raw) {
            Some(ms) => v::ts_ms(ms),
            None => Err(v::bad_ts(&v::got_raw(val.raw))),
        },
        Ty::Str | Ty::EscStr => {
            let mut buf = [0u8; 64];
            v::ts_rfc3339(small(val, &mut buf))
        }
        _ => Err(v::bad_ts(&v::got_raw(val.raw))),
    }
}

#[cold]
fn bad_shipment_type(s: Val<'_>) -> Invalid {
    Invalid::field(
        Reason::BadShipment,
        "shipment",
        "a string",
        &v::got_raw(s.raw),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_finds_its_slot() {
        for (id, name) in NAMES.iter().enumerate() {
            assert_eq!(field_id(name.as_bytes()), Some(id), "{name}");
        }
        for (m, name) in crate::event::Metric::ALL
            .iter()
            .map(|m| m.as_str())
            .enumerate()
        {
            assert_eq!(field_id(name.as_bytes()), Some(9 + m));
        }
        for other in ["", "x", "tsx", "kinds", "stat_s", "lax", "signer_"] {
            assert_eq!(field_id(other.as_bytes()), None, "{other}");
        }
    }
}
