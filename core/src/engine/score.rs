//! Score records (issue 7): a shipment's ETA, delay risk and damage risk, produced when they
//! change materially, as JSON (`sg.score.<shipment>`) and as Arrow (ClickHouse
//! `shipment_scores`).

use super::alert::{key, push_f64, push_i64, push_json_str};
use crate::scoring::{Eta, Score};
use arrow_array::builder::{
    BooleanBuilder, Float64Builder, StringBuilder, TimestampMillisecondBuilder, UInt32Builder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use std::sync::{Arc, OnceLock};

/// A score as the engine produces it: compact, no allocation. [`super::Engine::score_record`]
/// renders it with the shipment key and carrier code.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoreEvent {
    pub(super) slot: u32,
    /// The time of the scan or alert that moved the score.
    pub ts: i64,
    pub(super) carrier: u16,
    /// Origin and destination provinces.
    pub origin: u8,
    pub dest: u8,
    pub shock_episodes: u8,
    /// The shipment's final score, at its DELIVERED scan: the ETA is the delivery, the delay
    /// risk 1 if the SLA was missed and 0 if not.
    pub delivered: bool,
    pub score: Score,
}

/// A score record with its shipment and carrier named, as published and stored.
#[derive(Clone, Debug, PartialEq)]
pub struct ScoreRecord {
    pub shipment: String,
    pub ts: i64,
    pub carrier: Arc<str>,
    /// Provinces, as region codes (`CN-31`).
    pub origin: u16,
    pub dest: u16,
    pub eta: Option<Eta>,
    pub delay_risk: Option<f64>,
    pub damage_risk: f64,
    pub shock_episodes: u32,
    pub delivered: bool,
}

/// `CN-` and the two digits of province `p`.
pub fn province_code(p: u16) -> String {
    format!("CN-{p:02}")
}

fn push_province(out: &mut Vec<u8>, p: u16) {
    out.extend_from_slice(b"\"CN-");
    out.push(b'0' + (p / 10 % 10) as u8);
    out.push(b'0' + (p % 10) as u8);
    out.push(b'"');
}

impl ScoreRecord {
    /// The JetStream message id: `<shipment>:<ts>`.
    pub fn msg_id(&self) -> String {
        format!("{}:{}", self.shipment, self.ts)
    }

    /// Append this record as one JSON object (no newline); unknown figures are `null`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"shipment\":");
        push_json_str(out, &self.shipment);
        key(out, "ts");
        push_i64(out, self.ts);
        key(out, "carrier");
        push_json_str(out, &self.carrier);
        key(out, "origin");
        push_province(out, self.origin);
        key(out, "dest");
        push_province(out, self.dest);
        for (name, v) in [
            ("eta_p50", self.eta.map(|e| e.p50_ms)),
            ("eta_p90", self.eta.map(|e| e.p90_ms)),
        ] {
            key(out, name);
            match v {
                Some(v) => push_i64(out, v),
                None => out.extend_from_slice(b"null"),
            }
        }
        key(out, "delay_risk");
        match self.delay_risk {
            Some(r) => push_f64(out, r),
            None => out.extend_from_slice(b"null"),
        }
        key(out, "damage_risk");
        push_f64(out, self.damage_risk);
        key(out, "shock_episodes");
        push_i64(out, i64::from(self.shock_episodes));
        key(out, "delivered");
        out.extend_from_slice(if self.delivered { b"true" } else { b"false" });
        out.push(b'}');
    }

    pub fn to_json(&self) -> String {
        let mut out = Vec::with_capacity(256);
        self.write_json(&mut out);
        // write_json only writes UTF-8: its inputs are &str and ASCII.
        String::from_utf8(out).unwrap_or_default()
    }
}

/// The Arrow schema of score batches: times as `timestamp[ms, UTC]`, as ClickHouse reads them.
pub fn schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let ts = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
            let utf8 = |n: &str| Field::new(n, DataType::Utf8, false);
            Arc::new(Schema::new(vec![
                utf8("shipment"),
                Field::new("ts", ts.clone(), false),
                utf8("carrier"),
                utf8("origin"),
                utf8("dest"),
                Field::new("eta_p50", ts.clone(), true),
                Field::new("eta_p90", ts, true),
                Field::new("delay_risk", DataType::Float64, true),
                Field::new("damage_risk", DataType::Float64, false),
                Field::new("shock_episodes", DataType::UInt32, false),
                Field::new("delivered", DataType::Boolean, false),
            ]))
        })
        .clone()
}

/// Score records as one Arrow record batch (schema: [`schema`]).
pub fn to_record_batch(records: &[ScoreRecord]) -> RecordBatch {
    let n = records.len();
    let text = || StringBuilder::with_capacity(n, n * 8);
    let (mut shipment, mut carrier, mut origin, mut dest) = (text(), text(), text(), text());
    let utc = || TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
    let (mut ts, mut p50, mut p90) = (utc(), utc(), utc());
    let mut delay = Float64Builder::with_capacity(n);
    let mut damage = Float64Builder::with_capacity(n);
    let mut shocks = UInt32Builder::with_capacity(n);
    let mut delivered = BooleanBuilder::with_capacity(n);
    for r in records {
        shipment.append_value(&r.shipment);
        carrier.append_value(&*r.carrier);
        origin.append_value(province_code(r.origin));
        dest.append_value(province_code(r.dest));
        ts.append_value(r.ts);
        p50.append_option(r.eta.map(|e| e.p50_ms));
        p90.append_option(r.eta.map(|e| e.p90_ms));
        delay.append_option(r.delay_risk);
        damage.append_value(r.damage_risk);
        shocks.append_value(r.shock_episodes);
        delivered.append_value(r.delivered);
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(shipment.finish()),
        Arc::new(ts.finish()),
        Arc::new(carrier.finish()),
        Arc::new(origin.finish()),
        Arc::new(dest.finish()),
        Arc::new(p50.finish()),
        Arc::new(p90.finish()),
        Arc::new(delay.finish()),
        Arc::new(damage.finish()),
        Arc::new(shocks.finish()),
        Arc::new(delivered.finish()),
    ];
    RecordBatch::try_new(schema(), cols).expect("score columns match the score schema")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_arrow() {
        let r = ScoreRecord {
            shipment: "SF1".into(),
            ts: 5,
            carrier: Arc::from("SF"),
            origin: 31,
            dest: 11,
            eta: Some(Eta {
                p50_ms: 100,
                p90_ms: 200,
            }),
            delay_risk: None,
            damage_risk: 0.25,
            shock_episodes: 2,
            delivered: false,
        };
        assert_eq!(
            r.to_json(),
            r#"{"shipment":"SF1","ts":5,"carrier":"SF","origin":"CN-31","dest":"CN-11","eta_p50":100,"eta_p90":200,"delay_risk":null,"damage_risk":0.25,"shock_episodes":2,"delivered":false}"#
        );
        assert_eq!(r.msg_id(), "SF1:5");
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["eta_p90"], 200);
        let rb = to_record_batch(&[r.clone(), r]);
        assert_eq!((rb.num_rows(), rb.num_columns()), (2, 11));
        assert_eq!(province_code(5), "CN-05");
    }
}
