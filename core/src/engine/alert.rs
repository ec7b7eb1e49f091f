//! Alert records (spec §3.1, §3.2, §4): firing, resolved and retracted, as JSON and as Arrow.

use crate::event::{Metric, Status};
use crate::rules::{RuleKind, Severity};
use arrow_array::builder::{
    Float64Builder, Int64Builder, ListBuilder, StringBuilder, StructBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};
use std::sync::{Arc, OnceLock};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AlertState {
    Firing,
    Resolved,
    Retracted,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
            AlertState::Retracted => "retracted",
        }
    }
}

/// One sensor reading kept as evidence: its time and the rule metric's value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Reading {
    pub ts: i64,
    pub value: f64,
}

/// The scan a dwell alert is about: the last one before the parcel stopped moving.
#[derive(Clone, Debug, PartialEq)]
pub struct ScanEvidence {
    pub status: Status,
    pub location: Arc<str>,
    pub ts: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Evidence {
    None,
    Readings(Vec<Reading>),
    Scan(ScanEvidence),
}

/// One alert record. `id` is shared by the firing record and the record that ends it.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    pub id: String,
    pub rule: Arc<str>,
    pub kind: RuleKind,
    pub severity: Severity,
    pub state: AlertState,
    pub shipment: String,
    pub carrier: Option<Arc<str>>,
    /// Firing: the firing reading's ts (threshold) or the deadline (dwell). Resolved/retracted:
    /// the ts of the reading or scan that ended it.
    pub ts: i64,
    /// Threshold: the episode's first breaching reading. Dwell: the last scan's ts.
    pub started_ts: i64,
    pub metric: Option<Metric>,
    /// Threshold firing: the firing reading's value; resolved: the clearing reading's value.
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    /// Resolved threshold alerts: max (gt/ge) or min (lt/le) over the episode.
    pub peak: Option<f64>,
    /// Resolved alerts: `ts - started_ts`.
    pub duration_ms: Option<i64>,
    pub evidence: Evidence,
}

pub(super) fn push_json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for &b in s.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..=0x1f => {
                out.extend_from_slice(b"\\u00");
                out.push(b"0123456789abcdef"[(b >> 4) as usize]);
                out.push(b"0123456789abcdef"[(b & 15) as usize]);
            }
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

pub(super) fn push_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

pub(super) fn push_f64(out: &mut Vec<u8>, v: f64) {
    if v.is_finite() {
        out.extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

pub(super) fn key(out: &mut Vec<u8>, k: &str) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(k.as_bytes());
    out.extend_from_slice(b"\":");
}

impl Alert {
    /// Append this alert as one JSON object (no newline). Absent fields are omitted.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"id\":");
        push_json_str(out, &self.id);
        key(out, "rule");
        push_json_str(out, &self.rule);
        key(out, "kind");
        push_json_str(out, self.kind.as_str());
        key(out, "severity");
        push_json_str(out, self.severity.as_str());
        key(out, "state");
        push_json_str(out, self.state.as_str());
        key(out, "shipment");
        push_json_str(out, &self.shipment);
        if let Some(c) = &self.carrier {
            key(out, "carrier");
            push_json_str(out, c);
        }
        key(out, "ts");
        push_i64(out, self.ts);
        key(out, "started_ts");
        push_i64(out, self.started_ts);
        if let Some(m) = self.metric {
            key(out, "metric");
            push_json_str(out, m.as_str());
        }
        for (name, v) in [
            ("value", self.value),
            ("threshold", self.threshold),
            ("peak", self.peak),
        ] {
            if let Some(v) = v {
                key(out, name);
                push_f64(out, v);
            }
        }
        if let Some(d) = self.duration_ms {
            key(out, "duration_ms");
            push_i64(out, d);
        }
        match &self.evidence {
            Evidence::None => {}
            Evidence::Readings(rs) => {
                key(out, "evidence");
                out.push(b'[');
                for (i, r) in rs.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(b"{\"ts\":");
                    push_i64(out, r.ts);
                    out.extend_from_slice(b",\"value\":");
                    push_f64(out, r.value);
                    out.push(b'}');
                }
                out.push(b']');
            }
            Evidence::Scan(s) => {
                key(out, "evidence");
                out.extend_from_slice(b"{\"status\":");
                push_json_str(out, s.status.as_str());
                out.extend_from_slice(b",\"location\":");
                push_json_str(out, &s.location);
                out.extend_from_slice(b",\"ts\":");
                push_i64(out, s.ts);
                out.push(b'}');
            }
        }
        out.push(b'}');
    }

    /// This alert as a JSON string.
    pub fn to_json(&self) -> String {
        let mut out = Vec::with_capacity(256);
        self.write_json(&mut out);
        // write_json only writes UTF-8: its inputs are &str and ASCII punctuation.
        String::from_utf8(out).unwrap_or_default()
    }
}

fn reading_fields() -> Fields {
    Fields::from(vec![
        Field::new("ts", DataType::Int64, false),
        Field::new("value", DataType::Float64, false),
    ])
}

/// The Arrow schema of alert batches. Dwell evidence is flattened into `scan_*` columns.
pub fn schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let utf8 = |n: &str, null: bool| Field::new(n, DataType::Utf8, null);
            let i64f = |n: &str, null: bool| Field::new(n, DataType::Int64, null);
            let f64f = |n: &str| Field::new(n, DataType::Float64, true);
            Arc::new(Schema::new(vec![
                utf8("id", false),
                utf8("rule", false),
                utf8("kind", false),
                utf8("severity", false),
                utf8("state", false),
                utf8("shipment", false),
                utf8("carrier", true),
                i64f("ts", false),
                i64f("started_ts", false),
                utf8("metric", true),
                f64f("value"),
                f64f("threshold"),
                f64f("peak"),
                i64f("duration_ms", true),
                Field::new(
                    "evidence",
                    DataType::List(Arc::new(Field::new(
                        "item",
                        DataType::Struct(reading_fields()),
                        true,
                    ))),
                    true,
                ),
                utf8("scan_status", true),
                utf8("scan_location", true),
                i64f("scan_ts", true),
            ]))
        })
        .clone()
}

/// Alerts as one Arrow record batch (schema: [`schema`]).
pub fn to_record_batch(alerts: &[Alert]) -> RecordBatch {
    let n = alerts.len();
    let mut s: Vec<StringBuilder> = (0..6)
        .map(|_| StringBuilder::with_capacity(n, n * 16))
        .collect();
    let mut carrier = StringBuilder::new();
    let mut metric = StringBuilder::new();
    let mut scan_status = StringBuilder::new();
    let mut scan_location = StringBuilder::new();
    let mut ts = Int64Builder::with_capacity(n);
    let mut started = Int64Builder::with_capacity(n);
    let mut duration = Int64Builder::with_capacity(n);
    let mut scan_ts = Int64Builder::with_capacity(n);
    let mut value = Float64Builder::with_capacity(n);
    let mut threshold = Float64Builder::with_capacity(n);
    let mut peak = Float64Builder::with_capacity(n);
    let reading = StructBuilder::new(
        reading_fields(),
        vec![
            Box::new(Int64Builder::new()),
            Box::new(Float64Builder::new()),
        ],
    );
    let mut evidence = ListBuilder::new(reading).with_field(Arc::new(Field::new(
        "item",
        DataType::Struct(reading_fields()),
        true,
    )));
    for a in alerts {
        s[0].append_value(&a.id);
        s[1].append_value(&*a.rule);
        s[2].append_value(a.kind.as_str());
        s[3].append_value(a.severity.as_str());
        s[4].append_value(a.state.as_str());
        s[5].append_value(&a.shipment);
        carrier.append_option(a.carrier.as_deref());
        ts.append_value(a.ts);
        started.append_value(a.started_ts);
        metric.append_option(a.metric.map(Metric::as_str));
        value.append_option(a.value);
        threshold.append_option(a.threshold);
        peak.append_option(a.peak);
        duration.append_option(a.duration_ms);
        match &a.evidence {
            Evidence::Readings(rs) => {
                let item = evidence.values();
                for r in rs {
                    if let Some(b) = item.field_builder::<Int64Builder>(0) {
                        b.append_value(r.ts);
                    }
                    if let Some(b) = item.field_builder::<Float64Builder>(1) {
                        b.append_value(r.value);
                    }
                    item.append(true);
                }
                evidence.append(true);
            }
            _ => evidence.append(false),
        }
        match &a.evidence {
            Evidence::Scan(sc) => {
                scan_status.append_value(sc.status.as_str());
                scan_location.append_value(&*sc.location);
                scan_ts.append_value(sc.ts);
            }
            _ => {
                scan_status.append_null();
                scan_location.append_null();
                scan_ts.append_null();
            }
        }
    }
    let mut cols: Vec<ArrayRef> = s
        .iter_mut()
        .map(|b| Arc::new(b.finish()) as ArrayRef)
        .collect();
    cols.push(Arc::new(carrier.finish()));
    cols.push(Arc::new(ts.finish()));
    cols.push(Arc::new(started.finish()));
    cols.push(Arc::new(metric.finish()));
    cols.push(Arc::new(value.finish()));
    cols.push(Arc::new(threshold.finish()));
    cols.push(Arc::new(peak.finish()));
    cols.push(Arc::new(duration.finish()));
    cols.push(Arc::new(evidence.finish()));
    cols.push(Arc::new(scan_status.finish()));
    cols.push(Arc::new(scan_location.finish()));
    cols.push(Arc::new(scan_ts.finish()));
    // The columns are built to match `schema()` exactly, so this cannot fail.
    RecordBatch::try_new(schema(), cols).expect("alert columns match the alert schema")
}
