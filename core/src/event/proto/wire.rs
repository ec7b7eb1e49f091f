//! prost messages mirroring `proto/streamguard/v1/events.proto` field for field (written by
//! hand: no protoc, no build script). The hot path never uses them; they cross-check the
//! hand-written codec in tests and give tools owned messages. A test parses the .proto text and
//! checks every field number here against it.

use crate::event::validate::{parse_fen, write_fen};
use crate::event::{self, Metric, SignerType, Status, Tier as EvTier};

#[derive(Clone, PartialEq, prost::Message)]
pub struct EventBatch {
    #[prost(message, repeated, tag = "1")]
    pub events: Vec<Event>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    #[prost(oneof = "Body", tags = "1, 2, 3")]
    pub body: Option<Body>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Body {
    #[prost(message, tag = "1")]
    Shipment(Shipment),
    #[prost(message, tag = "2")]
    Scan(Scan),
    #[prost(message, tag = "3")]
    Sensor(Sensor),
}

/// `streamguard.v1.Status`: value = engine code + 1, 0 = unspecified.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum WireStatus {
    Unspecified = 0,
    InfoReceived = 1,
    PickedUp = 2,
    InTransit = 3,
    OutForDelivery = 4,
    AvailableForPickup = 5,
    DeliveryFailed = 6,
    Delivered = 7,
    Exception = 8,
    ReturnedToSender = 9,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Tier {
    Unspecified = 0,
    Basic = 1,
    Advanced = 2,
    Premium = 3,
}

/// `streamguard.v1.Signer.SignerType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum WireSignerType {
    Unspecified = 0,
    SelfSigned = 1,
    Proxy = 2,
    Locker = 3,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Shipment {
    #[prost(string, tag = "1")]
    pub shipment: String,
    #[prost(int64, optional, tag = "2")]
    pub ts: Option<i64>,
    #[prost(string, optional, tag = "3")]
    pub id: Option<String>,
    #[prost(string, tag = "4")]
    pub carrier: String,
    #[prost(string, tag = "5")]
    pub origin: String,
    #[prost(string, tag = "6")]
    pub dest: String,
    #[prost(enumeration = "Tier", tag = "7")]
    pub tier: i32,
    #[prost(bool, optional, tag = "8")]
    pub fragile: Option<bool>,
    #[prost(string, tag = "9")]
    pub order: String,
    #[prost(string, tag = "10")]
    pub declared_value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Scan {
    #[prost(string, tag = "1")]
    pub shipment: String,
    #[prost(int64, optional, tag = "2")]
    pub ts: Option<i64>,
    #[prost(string, optional, tag = "3")]
    pub id: Option<String>,
    #[prost(string, tag = "4")]
    pub carrier: String,
    #[prost(enumeration = "WireStatus", tag = "5")]
    pub status: i32,
    #[prost(string, tag = "6")]
    pub location: String,
    #[prost(double, optional, tag = "7")]
    pub lat: Option<f64>,
    #[prost(double, optional, tag = "8")]
    pub lon: Option<f64>,
    #[prost(message, optional, tag = "9")]
    pub signer: Option<Signer>,
    #[prost(string, tag = "10")]
    pub raw_status: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Signer {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(enumeration = "WireSignerType", tag = "2")]
    pub r#type: i32,
    #[prost(string, tag = "3")]
    pub proxy_id: String,
    #[prost(string, tag = "4")]
    pub staff_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Sensor {
    #[prost(string, tag = "1")]
    pub shipment: String,
    #[prost(int64, optional, tag = "2")]
    pub ts: Option<i64>,
    #[prost(string, optional, tag = "3")]
    pub id: Option<String>,
    #[prost(string, tag = "4")]
    pub device: String,
    #[prost(double, optional, tag = "5")]
    pub shock_g: Option<f64>,
    #[prost(double, optional, tag = "6")]
    pub temp_c: Option<f64>,
    #[prost(double, optional, tag = "7")]
    pub humidity_pct: Option<f64>,
    #[prost(double, optional, tag = "8")]
    pub tilt_deg: Option<f64>,
    #[prost(double, optional, tag = "9")]
    pub light_lux: Option<f64>,
    #[prost(double, optional, tag = "10")]
    pub battery_pct: Option<f64>,
    #[prost(double, optional, tag = "11")]
    pub lat: Option<f64>,
    #[prost(double, optional, tag = "12")]
    pub lon: Option<f64>,
}

fn code(c: Option<u8>) -> i32 {
    c.map_or(0, |c| i32::from(c) + 1)
}

fn opt(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

impl From<&event::Event> for Event {
    /// The wire message for an owned event; fields outside its kind are dropped.
    fn from(e: &event::Event) -> Event {
        let m = |x: Metric| e.metrics[x as usize];
        let body = match e.kind {
            None => None,
            Some(event::Kind::Shipment) => Some(Body::Shipment(Shipment {
                shipment: e.shipment.clone(),
                ts: Some(e.ts),
                id: opt(&e.id),
                carrier: e.carrier.clone(),
                origin: e.origin.clone(),
                dest: e.dest.clone(),
                tier: code(e.tier.map(|t| t as u8)),
                fragile: e.fragile,
                order: e.order.clone(),
                declared_value: e.declared_value_fen.map_or_else(String::new, |fen| {
                    let mut s = Vec::new();
                    write_fen(&mut s, fen);
                    String::from_utf8_lossy(&s).into_owned()
                }),
            })),
            Some(event::Kind::Scan) => Some(Body::Scan(Scan {
                shipment: e.shipment.clone(),
                ts: Some(e.ts),
                id: opt(&e.id),
                carrier: e.carrier.clone(),
                status: code(e.status.map(|s| s as u8)),
                location: e.location.clone(),
                lat: e.lat,
                lon: e.lon,
                signer: e.signer.as_ref().map(|s| Signer {
                    name: s.name.clone(),
                    r#type: code(s.kind.map(|k| k as u8)),
                    proxy_id: s.proxy_id.clone(),
                    staff_id: s.staff_id.clone(),
                }),
                raw_status: e.raw_status.clone(),
            })),
            Some(event::Kind::Sensor) => Some(Body::Sensor(Sensor {
                shipment: e.shipment.clone(),
                ts: Some(e.ts),
                id: opt(&e.id),
                device: e.device.clone(),
                shock_g: m(Metric::ShockG),
                temp_c: m(Metric::TempC),
                humidity_pct: m(Metric::HumidityPct),
                tilt_deg: m(Metric::TiltDeg),
                light_lux: m(Metric::LightLux),
                battery_pct: m(Metric::BatteryPct),
                lat: e.lat,
                lon: e.lon,
            })),
        };
        Event { body }
    }
}

fn from_code<T>(v: i32, f: fn(u8) -> Option<T>) -> Option<T> {
    u8::try_from(v)
        .ok()
        .and_then(|v| v.checked_sub(1))
        .and_then(f)
}

impl Event {
    /// The owned event this message carries (no validation: unknown enum values read as absent).
    pub fn to_event(&self) -> event::Event {
        let mut e = event::Event::default();
        match &self.body {
            None => {}
            Some(Body::Shipment(s)) => {
                e.kind = Some(event::Kind::Shipment);
                (e.shipment, e.ts, e.id) = (
                    s.shipment.clone(),
                    s.ts.unwrap_or(0),
                    s.id.clone().unwrap_or_default(),
                );
                e.carrier = s.carrier.clone();
                e.origin = s.origin.clone();
                e.dest = s.dest.clone();
                e.tier = from_code(s.tier, EvTier::from_u8);
                e.fragile = s.fragile;
                e.order = s.order.clone();
                e.declared_value_fen = parse_fen(s.declared_value.as_bytes());
            }
            Some(Body::Scan(s)) => {
                e.kind = Some(event::Kind::Scan);
                (e.shipment, e.ts, e.id) = (
                    s.shipment.clone(),
                    s.ts.unwrap_or(0),
                    s.id.clone().unwrap_or_default(),
                );
                e.carrier = s.carrier.clone();
                e.status = from_code(s.status, Status::from_u8);
                e.location = s.location.clone();
                (e.lat, e.lon) = (s.lat, s.lon);
                e.signer = s.signer.as_ref().map(|g| event::Signer {
                    name: g.name.clone(),
                    kind: from_code(g.r#type, SignerType::from_u8),
                    proxy_id: g.proxy_id.clone(),
                    staff_id: g.staff_id.clone(),
                });
                e.raw_status = s.raw_status.clone();
            }
            Some(Body::Sensor(s)) => {
                e.kind = Some(event::Kind::Sensor);
                (e.shipment, e.ts, e.id) = (
                    s.shipment.clone(),
                    s.ts.unwrap_or(0),
                    s.id.clone().unwrap_or_default(),
                );
                e.device = s.device.clone();
                e.metrics = [
                    s.shock_g,
                    s.temp_c,
                    s.humidity_pct,
                    s.tilt_deg,
                    s.light_lux,
                    s.battery_pct,
                ];
                (e.lat, e.lon) = (s.lat, s.lon);
            }
        }
        e
    }
}
