//! Carriers: their codes, what their tracking numbers look like, and how their feeds word a scan.

use super::rng::mix64;

/// The express carriers a shipment can travel with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Carrier {
    /// SF Express (顺丰).
    Sf,
    /// JD Logistics (京东物流).
    Jd,
    /// YTO Express (圆通).
    Yto,
    /// ZTO Express (中通).
    Zto,
    /// STO Express (申通).
    Sto,
    /// China Post EMS.
    Ems,
    /// Yunda Express (韵达).
    Yunda,
    /// Deppon (德邦).
    Dbl,
}

impl Carrier {
    pub const ALL: [Carrier; 8] = [
        Carrier::Sf,
        Carrier::Jd,
        Carrier::Yto,
        Carrier::Zto,
        Carrier::Sto,
        Carrier::Ems,
        Carrier::Yunda,
        Carrier::Dbl,
    ];

    /// The code events carry in `carrier`.
    pub fn code(self) -> &'static str {
        match self {
            Carrier::Sf => "SF",
            Carrier::Jd => "JD",
            Carrier::Yto => "YTO",
            Carrier::Zto => "ZTO",
            Carrier::Sto => "STO",
            Carrier::Ems => "EMS",
            Carrier::Yunda => "YUNDA",
            Carrier::Dbl => "DBL",
        }
    }

    pub fn parse(s: &str) -> Option<Carrier> {
        Carrier::ALL.into_iter().find(|c| c.code() == s)
    }

    pub(crate) fn brand(self) -> &'static str {
        match self {
            Carrier::Sf => "顺丰速运",
            Carrier::Jd => "京东物流",
            Carrier::Yto => "圆通速递",
            Carrier::Zto => "中通快递",
            Carrier::Sto => "申通快递",
            Carrier::Ems => "中国邮政EMS",
            Carrier::Yunda => "韵达快递",
            Carrier::Dbl => "德邦快递",
        }
    }

    /// Probability that a long leg (> 800 km) flies: SF and JD run their own air networks.
    pub(crate) fn air_share(self) -> f64 {
        match self {
            Carrier::Sf => 0.7,
            Carrier::Jd => 0.5,
            Carrier::Ems => 0.3,
            _ => 0.05,
        }
    }

    /// Tracking-number prefix and the number of digits after it.
    fn number_format(self) -> (&'static str, u32) {
        match self {
            Carrier::Sf => ("SF", 13),
            Carrier::Jd => ("JDV", 12),
            Carrier::Yto => ("YT", 13),
            Carrier::Zto => ("73", 12),
            Carrier::Sto => ("773", 10),
            // UPU S10: two letters, 8-digit serial, check digit, country.
            Carrier::Ems => ("EA", 8),
            Carrier::Yunda => ("43", 11),
            Carrier::Dbl => ("DPK", 12),
        }
    }
}

/// Most shipments one feed may hold: EMS's 8-digit serial is the narrowest number space, and
/// tracking numbers must stay unique.
pub const MAX_SHIPMENTS: u64 = 100_000_000;

/// A multiplier coprime with 10 (it ends in 7, and so does any `SPREAD % 10^k`): `idx * A + B mod 10^k` is then a
/// bijection on `[0, 10^k)`, so distinct shipment indexes get distinct, random-looking numbers.
const SPREAD: u64 = 7_919_293_817;

fn spread(idx: u64, seed: u64, digits: u32) -> u64 {
    let m = 10u64.pow(digits);
    let b = mix64(seed ^ 0x5EED_7A6C) % m;
    ((u128::from(idx) * u128::from(SPREAD % m) + u128::from(b)) % u128::from(m)) as u64
}

/// Write `v` as exactly `digits` decimal digits (zero-padded) into `buf` at `at`.
fn put_digits(buf: &mut [u8], at: usize, mut v: u64, digits: u32) {
    for i in (0..digits as usize).rev() {
        buf[at + i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

fn s10_check(serial: u64) -> u8 {
    const W: [u64; 8] = [8, 6, 4, 2, 3, 5, 9, 7];
    let mut d = serial;
    let mut sum = 0;
    for w in W.iter().rev() {
        sum += (d % 10) * w;
        d /= 10;
    }
    match 11 - sum % 11 {
        10 => 0,
        11 => 5,
        c => c as u8,
    }
}

/// The tracking number of shipment `idx` (< [`MAX_SHIPMENTS`]) with `carrier`, e.g.
/// `SF1234567890123`; written into `buf`, returns its length (at most 16).
pub(crate) fn tracking_number(carrier: Carrier, idx: u64, seed: u64, buf: &mut [u8; 16]) -> u8 {
    let (prefix, digits) = carrier.number_format();
    buf[..prefix.len()].copy_from_slice(prefix.as_bytes());
    let n = spread(idx, seed ^ carrier as u64, digits);
    let at = prefix.len();
    put_digits(buf, at, n, digits);
    let mut len = at + digits as usize;
    if carrier == Carrier::Ems {
        buf[len] = b'0' + s10_check(n);
        buf[len + 1..len + 3].copy_from_slice(b"CN");
        len += 3;
    }
    len as u8
}

/// The sensor tag of shipment `idx`: `TAG-` + 10 hex digits, unique per shipment.
pub(crate) fn device_id(idx: u64, seed: u64, buf: &mut [u8; 16]) -> u8 {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    buf[..4].copy_from_slice(b"TAG-");
    // Odd multiplier mod 2^40: a bijection, so tags are unique.
    let v = (idx.wrapping_mul(0x9E37_79B9_7F4B) ^ (mix64(seed) & 0xFF_FFFF_FFFF)) & 0xFF_FFFF_FFFF;
    for i in 0..10 {
        buf[4 + i] = HEX[((v >> (36 - 4 * i)) & 0xF) as usize];
    }
    14
}

/// The repair order id of shipment `idx`: `RO-` + 10 digits, unique per shipment.
pub(crate) fn order_id(idx: u64, seed: u64, buf: &mut [u8; 16]) -> u8 {
    buf[..3].copy_from_slice(b"RO-");
    put_digits(buf, 3, spread(idx, seed ^ 0x0D0E, 10), 10);
    13
}

/// A courier / staff number: carrier code + 8 digits.
pub(crate) fn push_staff_id(s: &mut String, carrier: Carrier, n: u64) {
    s.push_str(carrier.code());
    push_padded(s, n % 100_000_000, 8);
}

pub(crate) fn push_padded(s: &mut String, v: u64, digits: u32) {
    let mut buf = [0u8; 20];
    put_digits(&mut buf, 0, v, digits);
    // Only ASCII digits were written.
    s.push_str(std::str::from_utf8(&buf[..digits as usize]).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn tracking_numbers_look_right_and_are_unique() {
        let mut buf = [0u8; 16];
        let n = tracking_number(Carrier::Sf, 42, 1, &mut buf);
        let s = std::str::from_utf8(&buf[..n as usize]).unwrap();
        assert!(s.starts_with("SF") && s.len() == 15 && s[2..].bytes().all(|b| b.is_ascii_digit()));
        let n = tracking_number(Carrier::Ems, 42, 1, &mut buf);
        let s = std::str::from_utf8(&buf[..n as usize]).unwrap();
        assert!(
            s.starts_with("EA") && s.ends_with("CN") && s.len() == 13,
            "{s}"
        );
        assert_eq!(s10_check(47312482), 9, "UPU S10 example RR473124829GB");

        let mut seen = HashSet::new();
        for idx in 0..200_000u64 {
            let c = Carrier::ALL[(idx % 8) as usize];
            let n = tracking_number(c, idx, 9, &mut buf);
            assert!(
                seen.insert(buf[..n as usize].to_vec()),
                "duplicate at {idx}"
            );
        }
        // Within one carrier (the worst case: every shipment on the narrowest number space).
        let mut seen = HashSet::new();
        for idx in 0..200_000u64 {
            let n = tracking_number(Carrier::Ems, idx, 9, &mut buf);
            assert!(seen.insert(buf[..n as usize].to_vec()));
        }
    }

    #[test]
    fn device_and_order_ids_are_unique() {
        let mut buf = [0u8; 16];
        let mut devs = HashSet::new();
        let mut orders = HashSet::new();
        for idx in 0..100_000u64 {
            let n = device_id(idx, 3, &mut buf);
            assert!(devs.insert(buf[..n as usize].to_vec()));
            let n = order_id(idx, 3, &mut buf);
            assert!(orders.insert(buf[..n as usize].to_vec()));
        }
    }
}
