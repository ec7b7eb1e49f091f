//! UTC millisecond time: RFC 3339 parsing and formatting without a date library.

/// Largest accepted timestamp: 9999-12-31T23:59:59.999Z.
pub const MAX_TS_MS: i64 = 253_402_300_799_999;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn digits(s: &[u8]) -> Option<u32> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u32, |acc, c| acc * 10 + u32::from(c - b'0')))
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Parse an RFC 3339 timestamp (`2026-11-22T13:05:00.123Z`, `...+08:00`; `t`/space separator
/// and lowercase `z` accepted) into UTC milliseconds. Fractions beyond milliseconds are
/// truncated. Returns `None` for anything else.
pub fn parse_rfc3339(s: &[u8]) -> Option<i64> {
    if s.len() < 20 || s[4] != b'-' || s[7] != b'-' || s[13] != b':' || s[16] != b':' {
        return None;
    }
    if !matches!(s[10], b'T' | b't' | b' ') {
        return None;
    }
    let year = digits(&s[0..4])? as i64;
    let month = digits(&s[5..7])?;
    let day = digits(&s[8..10])?;
    let hour = digits(&s[11..13])?;
    let minute = digits(&s[14..16])?;
    let second = digits(&s[17..19])?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    // 60 allows a leap second, which folds onto the next second as in most systems.
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0i64;
    if s[i] == b'.' {
        i += 1;
        let start = i;
        while i < s.len() && s[i].is_ascii_digit() {
            if i - start < 3 {
                millis = millis * 10 + i64::from(s[i] - b'0');
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        for _ in n..3 {
            millis *= 10;
        }
    }
    let offset_s: i64 = match s.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let h = digits(&[*h1, *h2])? as i64;
            let m = digits(&[*m1, *m2])? as i64;
            if h > 23 || m > 59 {
                return None;
            }
            let off = h * 3600 + m * 60;
            if *sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second)
        - offset_s;
    let ms = secs * 1000 + millis;
    (0..=MAX_TS_MS).contains(&ms).then_some(ms)
}

/// Format UTC milliseconds as RFC 3339 with millisecond precision (`2026-11-22T13:05:00.123Z`).
pub fn format_rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_utc_and_offsets() {
        assert_eq!(parse_rfc3339(b"1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339(b"1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(
            parse_rfc3339(b"2026-11-22T13:05:00.123Z"),
            Some(1_795_352_700_123)
        );
        assert_eq!(
            parse_rfc3339(b"2026-11-22T21:05:00.123+08:00"),
            parse_rfc3339(b"2026-11-22T13:05:00.123Z")
        );
        assert_eq!(
            parse_rfc3339(b"2026-11-22 13:05:00.123456789z"),
            Some(1_795_352_700_123)
        );
    }

    #[test]
    fn rejects_bad_dates() {
        for bad in [
            &b"2026-02-30T00:00:00Z"[..],
            b"2026-13-01T00:00:00Z",
            b"2026-11-22T24:00:00Z",
            b"2026-11-22T13:05:00",
            b"2026-11-22T13:05:00.Z",
            b"2026-11-22T13:05:00+8:00",
            b"1969-12-31T23:59:59Z",
            b"not a date at all!!!",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{}", String::from_utf8_lossy(bad));
        }
        assert!(parse_rfc3339(b"2024-02-29T00:00:00Z").is_some());
        assert!(parse_rfc3339(b"2023-02-29T00:00:00Z").is_none());
    }

    #[test]
    fn formats_round_trip() {
        for ms in [0, 1_795_352_700_123, 951_782_400_000, MAX_TS_MS] {
            assert_eq!(parse_rfc3339(format_rfc3339(ms).as_bytes()), Some(ms));
        }
        assert_eq!(
            format_rfc3339(1_795_352_700_123),
            "2026-11-22T13:05:00.123Z"
        );
    }
}
