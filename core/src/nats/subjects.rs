//! The NATS names StreamGuard uses, and what a message's subject and headers say about its body.

use crate::event::{Format, Kind};

/// The durable input stream: every scan, sensor reading and shipment event.
pub const EVENTS_STREAM: &str = "SG_EVENTS";
pub const EVENTS_SUBJECTS: [&str; 3] = ["sg.scan.>", "sg.sensor.>", "sg.ship.>"];
/// Alert records, one message per record, `Nats-Msg-Id` = `{id}:{state}`.
pub const ALERTS_STREAM: &str = "SG_ALERTS";
pub const ALERTS_SUBJECTS: [&str; 1] = ["sg.alert.>"];
/// Rejected input with its raw bytes, on `sg.dlq.<reason>`.
pub const DLQ_STREAM: &str = "SG_DLQ";
pub const DLQ_SUBJECTS: [&str; 1] = ["sg.dlq.>"];
/// Shipment scores, one message per record on `sg.score.<shipment>`, `Nats-Msg-Id` =
/// `<shipment>:<ts>`; kept 7 days (the latest per shipment is what matters; ClickHouse keeps all).
pub const SCORES_STREAM: &str = "SG_SCORES";
pub const SCORES_SUBJECTS: [&str; 1] = ["sg.score.>"];
/// Each worker's lane statistics ([`crate::scoring::CodedLanes`] bytes), key = its durable
/// name, replaced at each checkpoint: the control plane merges them.
pub const LANES_BUCKET: &str = "sg_lanes";
/// Counters and rates, once a second (core NATS, not stored).
pub const STATS_SUBJECT: &str = "sg.engine.stats";
/// Partitioned workers share their scan watermarks here, so every worker's `W` follows the
/// largest scan time of the whole input, as a single engine's would (spec §2).
pub const WATERMARK_SUBJECT: &str = "sg.engine.watermark";
/// Why a rule set from the KV bucket was refused (stored in `SG_DLQ`'s sibling subject space).
pub const RULES_REJECTED_SUBJECT: &str = "sg.rules.rejected";
/// Rule sets: bucket and key.
pub const RULES_BUCKET: &str = "sg_rules";
pub const RULES_KEY: &str = "active";

pub use crate::engine::partition_of;

/// What worker `k` of a partitioned deployment consumes: `sg.<kind>.<source>.<x>.<k>`.
pub fn partition_subjects(k: u32) -> Vec<String> {
    ["scan", "sensor", "ship"]
        .iter()
        .map(|kind| format!("sg.{kind}.*.*.{k}"))
        .collect()
}

/// Whether `s` can stand as one subject token (no separators, wildcards or whitespace).
pub fn is_token(s: &[u8]) -> bool {
    !s.is_empty()
        && s.iter()
            .all(|&b| b > b' ' && b != b'.' && b != b'*' && b != b'>' && b != 0x7f)
}

/// The event kind a subject carries: `sg.scan.<carrier>[.…]`, `sg.sensor.<gateway>[.…]`,
/// `sg.ship.<carrier>[.…]`. The token after the kind is required.
pub fn kind_of(subject: &str) -> Option<Kind> {
    let mut it = subject.split('.');
    if it.next() != Some("sg") {
        return None;
    }
    let kind = match it.next()? {
        "scan" => Kind::Scan,
        "sensor" => Kind::Sensor,
        "ship" => Kind::Shipment,
        _ => return None,
    };
    match it.next() {
        Some(t) if !t.is_empty() => Some(kind),
        _ => None,
    }
}

/// The body format named by a `Content-Type` header; no header means JSON. Parameters
/// (`; charset=utf-8`) and case are ignored.
pub fn format_of(content_type: Option<&str>) -> Result<Format, String> {
    let Some(ct) = content_type else {
        return Ok(Format::Json);
    };
    let base = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match base.as_str() {
        "" => Ok(Format::Json),
        "application/x-ndjson" | "application/ndjson" => Ok(Format::Json),
        "application/protobuf" | "application/vnd.google.protobuf" => Ok(Format::Protobuf),
        "application/vnd.apache.arrow.file" => Ok(Format::Arrow),
        other => Format::parse(other).ok_or_else(|| {
            format!(
                "unknown Content-Type '{ct}' (expected application/json, application/x-protobuf \
                 or application/vnd.apache.arrow.stream)"
            )
        }),
    }
}

/// The `Content-Type` value StreamGuard's own publishers send for `format`.
pub fn content_type(format: Format) -> &'static str {
    match format {
        Format::Json => "application/json",
        Format::Protobuf => "application/x-protobuf",
        Format::Arrow => "application/vnd.apache.arrow.stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_come_from_the_second_token_and_need_a_source() {
        assert_eq!(kind_of("sg.scan.SF"), Some(Kind::Scan));
        assert_eq!(kind_of("sg.scan.SF.p3.extra"), Some(Kind::Scan));
        assert_eq!(kind_of("sg.sensor.gw1"), Some(Kind::Sensor));
        assert_eq!(kind_of("sg.ship.JD"), Some(Kind::Shipment));
        assert_eq!(kind_of("sg.scan"), None);
        assert_eq!(kind_of("sg.scan."), None);
        assert_eq!(kind_of("sg.alert.info"), None);
        assert_eq!(kind_of("xx.scan.SF"), None);
    }

    #[test]
    fn partitions_are_fnv1a_32_like_the_server() {
        // FNV-1a-32 reference values.
        assert_eq!(partition_of(b"", u32::MAX), 0x811c_9dc5);
        assert_eq!(partition_of(b"a", u32::MAX), 0xe40c_292c);
        assert_eq!(partition_of(b"foobar", u32::MAX), 0xbf9c_f968);
        assert!((0..1000).all(|i| partition_of(format!("S{i}").as_bytes(), 3) < 3));
        assert_eq!(partition_subjects(1)[0], "sg.scan.*.*.1");
        assert!(is_token(b"SF1234") && !is_token(b"a.b") && !is_token(b"a b") && !is_token(b""));
    }

    #[test]
    fn content_types_map_to_formats() {
        assert_eq!(format_of(None), Ok(Format::Json));
        assert_eq!(
            format_of(Some("application/json; charset=utf-8")),
            Ok(Format::Json)
        );
        assert_eq!(
            format_of(Some("Application/X-Protobuf")),
            Ok(Format::Protobuf)
        );
        assert_eq!(
            format_of(Some("application/vnd.apache.arrow.stream")),
            Ok(Format::Arrow)
        );
        for f in [Format::Json, Format::Protobuf, Format::Arrow] {
            assert_eq!(format_of(Some(content_type(f))), Ok(f));
        }
        let err = format_of(Some("text/csv")).unwrap_err();
        assert!(err.contains("'text/csv'"), "{err}");
    }
}
