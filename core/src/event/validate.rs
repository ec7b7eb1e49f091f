//! Field validation shared by every decoder, and [`Row`]: one event's fields, borrowed from the
//! wire, validated and pushed into an [`super::EventBatch`] as a unit.
//!
//! Every decoder turns wire values into typed values with the functions here, so a bad value gets
//! the same [`Reason`] and the same `detail` whatever format it came in. Fields that do not belong
//! to an event's kind (spec §1 table) are ignored like unknown fields, so the three formats carry
//! exactly the same information. The `Ok` paths allocate nothing; every `Err` is built in a
//! `#[cold]` function.

mod row;

pub use row::{truncate_rows, Row, Text};

use super::{json, Kind, Reason, SignerType, Status, Tier};
use crate::time::{self, MAX_TS_MS};
use std::fmt::Write as _;

/// A validation failure: the reason and a detail naming the field. Becomes a [`super::DeadLetter`]
/// once the decoder attaches the event's bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    pub reason: Reason,
    pub detail: String,
}

impl Invalid {
    #[cold]
    pub fn new(reason: Reason, detail: impl Into<String>) -> Invalid {
        Invalid {
            reason,
            detail: detail.into(),
        }
    }

    /// `field '{field}': expected {expected}, got {got}`.
    #[cold]
    pub fn field(reason: Reason, field: &str, expected: &str, got: &str) -> Invalid {
        Invalid::new(
            reason,
            format!("field '{field}': expected {expected}, got {got}"),
        )
    }

    #[cold]
    pub fn missing(field: &str, why: &str) -> Invalid {
        Invalid::new(
            Reason::MissingField,
            format!("field '{field}': missing ({why})"),
        )
    }

    #[cold]
    pub fn into_dead(self, raw: &[u8]) -> super::DeadLetter {
        super::DeadLetter {
            reason: self.reason,
            detail: self.detail,
            raw: raw.to_vec(),
        }
    }
}

/// Longest excerpt of an offending value quoted in a detail.
const GOT_MAX: usize = 64;

/// Quote a string value for a detail, JSON-style, cut at [`GOT_MAX`] bytes.
#[cold]
pub fn got_str(s: &[u8]) -> String {
    let mut out = Vec::with_capacity(s.len().min(GOT_MAX) + 8);
    json::write_str(&mut out, &s[..s.len().min(GOT_MAX)]);
    let mut text = String::from_utf8_lossy(&out).into_owned();
    if s.len() > GOT_MAX {
        text.push('…');
    }
    text
}

/// Show a raw wire token (a JSON number, a literal, a quoted string) as it was sent, cut short.
#[cold]
pub fn got_raw(raw: &[u8]) -> String {
    let mut text = String::from_utf8_lossy(&raw[..raw.len().min(GOT_MAX)]).into_owned();
    if raw.len() > GOT_MAX {
        text.push('…');
    }
    text
}

pub const TS_EXPECTED: &str = "expected integer milliseconds or an RFC 3339 string";
const SHIPMENT_EXPECTED: &str = "1-64 bytes of printable ASCII";
const FEN_EXPECTED: &str = "a non-negative decimal in CNY with at most 2 decimals";

/// `shipment`: 1–64 bytes of printable ASCII.
#[inline]
pub fn shipment(s: &[u8]) -> Result<(), Invalid> {
    if (1..=64).contains(&s.len()) && s.iter().all(|c| (0x20..=0x7e).contains(c)) {
        Ok(())
    } else {
        Err(bad_shipment(s))
    }
}

#[cold]
fn bad_shipment(s: &[u8]) -> Invalid {
    Invalid::field(
        Reason::BadShipment,
        "shipment",
        SHIPMENT_EXPECTED,
        &got_str(s),
    )
}

/// `ts` given as integer milliseconds; `got` renders the wire value on failure.
#[inline]
pub fn ts_ms(ms: i64) -> Result<i64, Invalid> {
    if (0..=MAX_TS_MS).contains(&ms) {
        Ok(ms)
    } else {
        Err(ts_out_of_range(ms))
    }
}

#[cold]
fn ts_out_of_range(ms: i64) -> Invalid {
    Invalid::new(
        Reason::BadTs,
        format!("field 'ts': {ms} is outside years 1970-9999"),
    )
}

/// `ts` given as an RFC 3339 string.
#[inline]
pub fn ts_rfc3339(s: &[u8]) -> Result<i64, Invalid> {
    time::parse_rfc3339(s).ok_or_else(|| bad_ts(&got_str(s)))
}

/// `ts` of an unusable type; `got` is the wire value as shown to the user.
#[cold]
pub fn bad_ts(got: &str) -> Invalid {
    Invalid::new(
        Reason::BadTs,
        format!("field 'ts': {TS_EXPECTED}, got {got}"),
    )
}

/// A sensor metric: any finite number.
#[inline]
pub fn metric(field: &'static str, v: f64) -> Result<f64, Invalid> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(Invalid::field(
            Reason::BadField,
            field,
            "a finite number",
            &fmt_f64(v),
        ))
    }
}

/// `lat` in [-90, 90].
#[inline]
pub fn lat(v: f64) -> Result<f64, Invalid> {
    in_range("lat", v, 90.0)
}

/// `lon` in [-180, 180].
#[inline]
pub fn lon(v: f64) -> Result<f64, Invalid> {
    in_range("lon", v, 180.0)
}

#[inline]
fn in_range(field: &'static str, v: f64, max: f64) -> Result<f64, Invalid> {
    // NaN fails the range test too.
    if (-max..=max).contains(&v) {
        Ok(v)
    } else {
        Err(out_of_range(field, v, max))
    }
}

#[cold]
fn out_of_range(field: &str, v: f64, max: f64) -> Invalid {
    let expected = format!("a number in [-{max}, {max}]");
    Invalid::field(Reason::BadField, field, &expected, &fmt_f64(v))
}

#[cold]
fn fmt_f64(v: f64) -> String {
    let mut s = String::new();
    let _ = write!(s, "{v}");
    s
}

/// Scan `status`: a normalized code name, as its column code.
#[inline]
pub fn status(s: &[u8]) -> Result<u8, Invalid> {
    Status::parse(s)
        .map(|st| st as u8)
        .ok_or_else(|| bad_status(&got_str(s)))
}

#[cold]
pub fn bad_status(got: &str) -> Invalid {
    let names: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
    let expected = format!("one of {}", names.join(", "));
    Invalid::field(Reason::BadStatus, "status", &expected, got)
}

#[inline]
pub fn tier(s: &[u8]) -> Result<u8, Invalid> {
    Tier::parse(s)
        .map(|t| t as u8)
        .ok_or_else(|| bad_tier(&got_str(s)))
}

#[cold]
pub fn bad_tier(got: &str) -> Invalid {
    Invalid::field(
        Reason::BadField,
        "tier",
        "one of basic, advanced, premium",
        got,
    )
}

#[inline]
pub fn signer_type(s: &[u8]) -> Result<u8, Invalid> {
    SignerType::parse(s)
        .map(|t| t as u8)
        .ok_or_else(|| bad_signer_type(&got_str(s)))
}

#[cold]
pub fn bad_signer_type(got: &str) -> Invalid {
    Invalid::field(
        Reason::BadField,
        "signer.type",
        "one of self, proxy, locker",
        got,
    )
}

/// `kind` named explicitly.
#[inline]
pub fn kind(s: &[u8]) -> Result<Kind, Invalid> {
    Kind::parse(s).ok_or_else(|| bad_kind(&got_str(s)))
}

#[cold]
pub fn bad_kind(got: &str) -> Invalid {
    Invalid::field(
        Reason::BadKind,
        "kind",
        "one of shipment, scan, sensor",
        got,
    )
}

#[cold]
pub fn kind_not_inferable() -> Invalid {
    Invalid::new(
        Reason::BadKind,
        "field 'kind': missing, and no default kind nor any kind-specific field \
         (status, device, a metric, tier, origin, dest, fragile, order, declared_value) to infer it from",
    )
}

/// A wrong-typed field that is not one of the above (`expected` says what it should be).
#[cold]
pub fn bad_field(field: &str, expected: &str, got: &str) -> Invalid {
    Invalid::field(Reason::BadField, field, expected, got)
}

/// `declared_value` in yuan (`"1299"`, `"1299.5"`, `"1299.00"`) to integer fen, digit by digit:
/// money never goes through a float.
#[inline]
pub fn declared_value(s: &[u8]) -> Result<i64, Invalid> {
    parse_fen(s).ok_or_else(|| bad_fen(&got_str(s)))
}

#[cold]
pub fn bad_fen(got: &str) -> Invalid {
    Invalid::field(Reason::BadField, "declared_value", FEN_EXPECTED, got)
}

/// The digits of a non-negative decimal with at most 2 decimals, as hundredths.
pub fn parse_fen(s: &[u8]) -> Option<i64> {
    let (int, frac) = match s.iter().position(|&c| c == b'.') {
        Some(dot) => (&s[..dot], &s[dot + 1..]),
        None => (s, &b""[..]),
    };
    if int.is_empty() || frac.len() > 2 || (s.len() > int.len() && frac.is_empty()) {
        return None;
    }
    let mut fen: i64 = 0;
    for &c in int {
        if !c.is_ascii_digit() {
            return None;
        }
        fen = fen.checked_mul(10)?.checked_add(i64::from(c - b'0'))?;
    }
    for i in 0..2 {
        let d = match frac.get(i) {
            Some(c) if c.is_ascii_digit() => i64::from(c - b'0'),
            Some(_) => return None,
            None => 0,
        };
        fen = fen.checked_mul(10)?.checked_add(d)?;
    }
    Some(fen)
}

/// Write fen as yuan with exactly 2 decimals (`129900` -> `1299.00`).
pub fn write_fen(out: &mut Vec<u8>, fen: i64) {
    let yuan = fen.div_euclid(100);
    let cents = fen.rem_euclid(100) as u8;
    out.extend_from_slice(itoa::Buffer::new().format(yuan).as_bytes());
    out.extend_from_slice(&[b'.', b'0' + cents / 10, b'0' + cents % 10]);
}

#[cfg(test)]
pub(crate) mod testgen;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fen_parses_digits_exactly() {
        assert_eq!(parse_fen(b"1299.00"), Some(129_900));
        assert_eq!(parse_fen(b"1299.5"), Some(129_950));
        assert_eq!(parse_fen(b"1299"), Some(129_900));
        assert_eq!(parse_fen(b"0.07"), Some(7));
        assert_eq!(parse_fen(b"92233720368547758.07"), Some(i64::MAX));
        for bad in [
            &b""[..],
            b".5",
            b"1.",
            b"1.234",
            b"-1",
            b"1e3",
            b"12a",
            b"92233720368547758.08",
        ] {
            assert_eq!(parse_fen(bad), None, "{}", String::from_utf8_lossy(bad));
        }
        let mut out = Vec::new();
        write_fen(&mut out, 129_905);
        assert_eq!(out, b"1299.05");
    }

    #[test]
    fn details_name_the_field() {
        let e = ts_rfc3339(b"yesterday").unwrap_err();
        assert_eq!(e.reason, Reason::BadTs);
        assert_eq!(
            e.detail,
            r#"field 'ts': expected integer milliseconds or an RFC 3339 string, got "yesterday""#
        );
        let e = shipment(&[b'x'; 65]).unwrap_err();
        assert_eq!(e.reason, Reason::BadShipment);
        assert!(e
            .detail
            .starts_with("field 'shipment': expected 1-64 bytes of printable ASCII"));
        assert_eq!(
            ts_ms(-1).unwrap_err().detail,
            "field 'ts': -1 is outside years 1970-9999"
        );
        assert_eq!(
            lat(91.5).unwrap_err().detail,
            "field 'lat': expected a number in [-90, 90], got 91.5"
        );
        assert_eq!(
            metric("temp_c", f64::INFINITY).unwrap_err().detail,
            "field 'temp_c': expected a finite number, got inf"
        );
        assert_eq!(
            declared_value(b"1.234").unwrap_err().detail,
            "field 'declared_value': expected a non-negative decimal in CNY with at most 2 \
             decimals, got \"1.234\""
        );
        assert_eq!(status(b"LOST").unwrap_err().reason, Reason::BadStatus);
        assert_eq!(tier(b"gold").unwrap_err().reason, Reason::BadField);
        assert_eq!(signer_type(b"drone").unwrap_err().reason, Reason::BadField);
        assert_eq!(kind(b"truck").unwrap_err().reason, Reason::BadKind);
        assert!(got_str(&[b'a'; 100]).ends_with("…"));
    }
}
