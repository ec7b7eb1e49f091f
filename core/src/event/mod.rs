//! The event model (spec §1): kinds, normalized codes, and the columnar batch every decoder fills.
//!
//! Decoders (JSON, protobuf, Arrow IPC) turn wire bytes into an [`EventBatch`] (owned, reusable
//! columns in Arrow's layout) or, for Arrow input, straight into a borrowed [`BatchView`]. The
//! engine only ever reads a [`BatchView`], so Arrow input is evaluated without a copy.
//! Rows that fail decoding or validation never reach the engine: they become [`DeadLetter`]s.

pub mod arrow;
pub mod json;
pub mod proto;
pub mod validate;

use std::fmt;

/// The three kinds of event. The discriminant is the wire value used in columns and protobuf.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    Shipment = 0,
    Scan = 1,
    Sensor = 2,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Shipment, Kind::Scan, Kind::Sensor];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Shipment => "shipment",
            Kind::Scan => "scan",
            Kind::Sensor => "sensor",
        }
    }

    pub fn parse(s: &[u8]) -> Option<Kind> {
        match s {
            b"shipment" => Some(Kind::Shipment),
            b"scan" => Some(Kind::Scan),
            b"sensor" => Some(Kind::Sensor),
            _ => None,
        }
    }

    #[inline]
    pub fn from_u8(v: u8) -> Option<Kind> {
        match v {
            0 => Some(Kind::Shipment),
            1 => Some(Kind::Scan),
            2 => Some(Kind::Sensor),
            _ => None,
        }
    }
}

/// Normalized scan status codes (spec §1). The discriminant is the column/protobuf value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Status {
    InfoReceived = 0,
    PickedUp = 1,
    InTransit = 2,
    OutForDelivery = 3,
    AvailableForPickup = 4,
    DeliveryFailed = 5,
    Delivered = 6,
    Exception = 7,
    ReturnedToSender = 8,
}

impl Status {
    pub const ALL: [Status; 9] = [
        Status::InfoReceived,
        Status::PickedUp,
        Status::InTransit,
        Status::OutForDelivery,
        Status::AvailableForPickup,
        Status::DeliveryFailed,
        Status::Delivered,
        Status::Exception,
        Status::ReturnedToSender,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::InfoReceived => "INFO_RECEIVED",
            Status::PickedUp => "PICKED_UP",
            Status::InTransit => "IN_TRANSIT",
            Status::OutForDelivery => "OUT_FOR_DELIVERY",
            Status::AvailableForPickup => "AVAILABLE_FOR_PICKUP",
            Status::DeliveryFailed => "DELIVERY_FAILED",
            Status::Delivered => "DELIVERED",
            Status::Exception => "EXCEPTION",
            Status::ReturnedToSender => "RETURNED_TO_SENDER",
        }
    }

    pub fn parse(s: &[u8]) -> Option<Status> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str().as_bytes() == s)
    }

    #[inline]
    pub fn from_u8(v: u8) -> Option<Status> {
        Status::ALL.get(v as usize).copied()
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Delivered | Status::ReturnedToSender)
    }
}

/// Service tier of a shipment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Tier {
    Basic = 0,
    Advanced = 1,
    Premium = 2,
}

impl Tier {
    pub const ALL: [Tier; 3] = [Tier::Basic, Tier::Advanced, Tier::Premium];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Basic => "basic",
            Tier::Advanced => "advanced",
            Tier::Premium => "premium",
        }
    }

    pub fn parse(s: &[u8]) -> Option<Tier> {
        Tier::ALL.into_iter().find(|t| t.as_str().as_bytes() == s)
    }

    #[inline]
    pub fn from_u8(v: u8) -> Option<Tier> {
        Tier::ALL.get(v as usize).copied()
    }
}

/// Who signed for a delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum SignerType {
    SelfSigned = 0,
    Proxy = 1,
    Locker = 2,
}

impl SignerType {
    pub const ALL: [SignerType; 3] = [
        SignerType::SelfSigned,
        SignerType::Proxy,
        SignerType::Locker,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SignerType::SelfSigned => "self",
            SignerType::Proxy => "proxy",
            SignerType::Locker => "locker",
        }
    }

    pub fn parse(s: &[u8]) -> Option<SignerType> {
        SignerType::ALL
            .into_iter()
            .find(|t| t.as_str().as_bytes() == s)
    }

    #[inline]
    pub fn from_u8(v: u8) -> Option<SignerType> {
        SignerType::ALL.get(v as usize).copied()
    }
}

/// Sensor metrics a threshold rule may watch. Discriminant = index into [`EventBatch::metrics`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Metric {
    ShockG = 0,
    TempC = 1,
    HumidityPct = 2,
    TiltDeg = 3,
    LightLux = 4,
    BatteryPct = 5,
}

/// Number of sensor metrics; the length of the metric column arrays.
pub const N_METRICS: usize = 6;

impl Metric {
    pub const ALL: [Metric; N_METRICS] = [
        Metric::ShockG,
        Metric::TempC,
        Metric::HumidityPct,
        Metric::TiltDeg,
        Metric::LightLux,
        Metric::BatteryPct,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::ShockG => "shock_g",
            Metric::TempC => "temp_c",
            Metric::HumidityPct => "humidity_pct",
            Metric::TiltDeg => "tilt_deg",
            Metric::LightLux => "light_lux",
            Metric::BatteryPct => "battery_pct",
        }
    }

    pub fn parse(s: &[u8]) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.as_str().as_bytes() == s)
    }
}

/// Column sentinel for "no value" in `u8` code columns (status, tier, fragile, signer type).
pub const NONE_U8: u8 = u8::MAX;
/// Column sentinel for "no declared value" in `declared_value_fen`.
pub const NONE_FEN: i64 = i64::MIN;

/// A string column in Arrow's Utf8 layout: `offsets.len() == rows + 1`, `offsets[0] == 0`.
/// An empty string means "absent" for the optional columns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StrColumn {
    pub offsets: Vec<i32>,
    pub data: Vec<u8>,
}

impl Default for StrColumn {
    fn default() -> Self {
        StrColumn {
            offsets: vec![0],
            data: Vec::new(),
        }
    }
}

impl StrColumn {
    #[inline]
    pub fn push(&mut self, s: &[u8]) {
        self.data.extend_from_slice(s);
        self.offsets.push(self.data.len() as i32);
    }

    #[inline]
    pub fn push_empty(&mut self) {
        self.offsets.push(self.data.len() as i32);
    }

    #[inline]
    pub fn get(&self, i: usize) -> &[u8] {
        &self.data[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }

    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn clear(&mut self) {
        self.offsets.clear();
        self.offsets.push(0);
        self.data.clear();
    }

    /// Drop the last row (used when a half-decoded row turns out invalid).
    pub fn truncate(&mut self, rows: usize) {
        self.offsets.truncate(rows + 1);
        self.data.truncate(self.offsets[rows] as usize);
    }

    pub fn view(&self) -> Strs<'_> {
        Strs {
            offsets: &self.offsets,
            data: &self.data,
        }
    }
}

/// One decoded event, owned. Used by tests, the simulator and encoders; the hot path uses
/// [`EventBatch`] columns instead.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Event {
    pub kind: Option<Kind>,
    pub shipment: String,
    pub ts: i64,
    pub id: String,
    pub carrier: String,
    // scan
    pub status: Option<Status>,
    pub location: String,
    pub raw_status: String,
    pub signer: Option<Signer>,
    // sensor
    pub device: String,
    pub metrics: [Option<f64>; N_METRICS],
    // scan + sensor
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    // shipment
    pub origin: String,
    pub dest: String,
    pub tier: Option<Tier>,
    pub fragile: Option<bool>,
    pub order: String,
    /// Declared value in fen (CNY / 100); the wire carries a decimal string in yuan.
    pub declared_value_fen: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Signer {
    pub name: String,
    pub kind: Option<SignerType>,
    pub proxy_id: String,
    pub staff_id: String,
}

/// Decoded events in columns (Arrow layout), one row per accepted event, in input order.
/// Every column has one entry per row whatever the row's kind; fields that do not apply hold
/// the "absent" value (empty string, NaN, [`NONE_U8`], [`NONE_FEN`]). Reused across batches:
/// `clear()` keeps the capacity, so steady-state decoding allocates nothing per event.
#[derive(Clone, Debug, Default)]
pub struct EventBatch {
    pub kind: Vec<u8>,
    pub shipment: StrColumn,
    pub ts: Vec<i64>,
    pub id: StrColumn,
    pub carrier: StrColumn,
    pub status: Vec<u8>,
    pub location: StrColumn,
    pub raw_status: StrColumn,
    pub signer_name: StrColumn,
    pub signer_type: Vec<u8>,
    pub signer_proxy_id: StrColumn,
    pub signer_staff_id: StrColumn,
    pub device: StrColumn,
    /// Indexed by `Metric as usize`; NaN = the reading does not carry that metric.
    pub metrics: [Vec<f64>; N_METRICS],
    pub lat: Vec<f64>,
    pub lon: Vec<f64>,
    pub origin: StrColumn,
    pub dest: StrColumn,
    pub tier: Vec<u8>,
    /// 0 / 1, or [`NONE_U8`] when not given.
    pub fragile: Vec<u8>,
    pub order: StrColumn,
    pub declared_value_fen: Vec<i64>,
}

impl EventBatch {
    pub fn len(&self) -> usize {
        self.kind.len()
    }

    pub fn is_empty(&self) -> bool {
        self.kind.is_empty()
    }

    pub fn clear(&mut self) {
        self.kind.clear();
        self.shipment.clear();
        self.ts.clear();
        self.id.clear();
        self.carrier.clear();
        self.status.clear();
        self.location.clear();
        self.raw_status.clear();
        self.signer_name.clear();
        self.signer_type.clear();
        self.signer_proxy_id.clear();
        self.signer_staff_id.clear();
        self.device.clear();
        for m in &mut self.metrics {
            m.clear();
        }
        self.lat.clear();
        self.lon.clear();
        self.origin.clear();
        self.dest.clear();
        self.tier.clear();
        self.fragile.clear();
        self.order.clear();
        self.declared_value_fen.clear();
    }

    /// Append one owned event (tests, simulator). Decoders push columns directly.
    pub fn push(&mut self, e: &Event) {
        self.kind.push(e.kind.map_or(NONE_U8, |k| k as u8));
        self.shipment.push(e.shipment.as_bytes());
        self.ts.push(e.ts);
        self.id.push(e.id.as_bytes());
        self.carrier.push(e.carrier.as_bytes());
        self.status.push(e.status.map_or(NONE_U8, |s| s as u8));
        self.location.push(e.location.as_bytes());
        self.raw_status.push(e.raw_status.as_bytes());
        let signer = e.signer.as_ref();
        self.signer_name
            .push(signer.map_or(&b""[..], |s| s.name.as_bytes()));
        self.signer_type
            .push(signer.and_then(|s| s.kind).map_or(NONE_U8, |k| k as u8));
        self.signer_proxy_id
            .push(signer.map_or(&b""[..], |s| s.proxy_id.as_bytes()));
        self.signer_staff_id
            .push(signer.map_or(&b""[..], |s| s.staff_id.as_bytes()));
        self.device.push(e.device.as_bytes());
        for (col, v) in self.metrics.iter_mut().zip(e.metrics) {
            col.push(v.unwrap_or(f64::NAN));
        }
        self.lat.push(e.lat.unwrap_or(f64::NAN));
        self.lon.push(e.lon.unwrap_or(f64::NAN));
        self.origin.push(e.origin.as_bytes());
        self.dest.push(e.dest.as_bytes());
        self.tier.push(e.tier.map_or(NONE_U8, |t| t as u8));
        self.fragile.push(e.fragile.map_or(NONE_U8, u8::from));
        self.order.push(e.order.as_bytes());
        self.declared_value_fen
            .push(e.declared_value_fen.unwrap_or(NONE_FEN));
    }

    /// Append row `i` of `src`, column by column (no per-row allocation once warm).
    pub fn push_row(&mut self, src: &EventBatch, i: usize) {
        self.kind.push(src.kind[i]);
        self.shipment.push(src.shipment.get(i));
        self.ts.push(src.ts[i]);
        self.id.push(src.id.get(i));
        self.carrier.push(src.carrier.get(i));
        self.status.push(src.status[i]);
        self.location.push(src.location.get(i));
        self.raw_status.push(src.raw_status.get(i));
        self.signer_name.push(src.signer_name.get(i));
        self.signer_type.push(src.signer_type[i]);
        self.signer_proxy_id.push(src.signer_proxy_id.get(i));
        self.signer_staff_id.push(src.signer_staff_id.get(i));
        self.device.push(src.device.get(i));
        for (col, from) in self.metrics.iter_mut().zip(&src.metrics) {
            col.push(from[i]);
        }
        self.lat.push(src.lat[i]);
        self.lon.push(src.lon[i]);
        self.origin.push(src.origin.get(i));
        self.dest.push(src.dest.get(i));
        self.tier.push(src.tier[i]);
        self.fragile.push(src.fragile[i]);
        self.order.push(src.order.get(i));
        self.declared_value_fen.push(src.declared_value_fen[i]);
    }

    /// Row `i` as an owned event (tests, encoders, dead-letter rendering).
    pub fn event(&self, i: usize) -> Event {
        let s = |c: &StrColumn| String::from_utf8_lossy(c.get(i)).into_owned();
        let f = |v: f64| if v.is_nan() { None } else { Some(v) };
        let signer = if self.signer_name.get(i).is_empty()
            && self.signer_type[i] == NONE_U8
            && self.signer_proxy_id.get(i).is_empty()
            && self.signer_staff_id.get(i).is_empty()
        {
            None
        } else {
            Some(Signer {
                name: s(&self.signer_name),
                kind: SignerType::from_u8(self.signer_type[i]),
                proxy_id: s(&self.signer_proxy_id),
                staff_id: s(&self.signer_staff_id),
            })
        };
        Event {
            kind: Kind::from_u8(self.kind[i]),
            shipment: s(&self.shipment),
            ts: self.ts[i],
            id: s(&self.id),
            carrier: s(&self.carrier),
            status: Status::from_u8(self.status[i]),
            location: s(&self.location),
            raw_status: s(&self.raw_status),
            signer,
            device: s(&self.device),
            metrics: std::array::from_fn(|m| f(self.metrics[m][i])),
            lat: f(self.lat[i]),
            lon: f(self.lon[i]),
            origin: s(&self.origin),
            dest: s(&self.dest),
            tier: Tier::from_u8(self.tier[i]),
            fragile: match self.fragile[i] {
                0 => Some(false),
                1 => Some(true),
                _ => None,
            },
            order: s(&self.order),
            declared_value_fen: (self.declared_value_fen[i] != NONE_FEN)
                .then_some(self.declared_value_fen[i]),
        }
    }

    /// Borrow the columns the engine reads.
    pub fn view(&self) -> BatchView<'_> {
        BatchView {
            len: self.len(),
            kind: KindCol::Rows(&self.kind),
            shipment: self.shipment.view(),
            ts: &self.ts,
            carrier: Some(self.carrier.view()),
            status: Some(&self.status),
            location: Some(self.location.view()),
            metrics: std::array::from_fn(|m| {
                Some(F64s {
                    values: &self.metrics[m],
                    valid: None,
                })
            }),
            tier: Some(&self.tier),
            fragile: Some(&self.fragile),
            origin: Some(self.origin.view()),
            dest: Some(self.dest.view()),
            rejected: None,
        }
    }
}

/// Borrowed Utf8 column (Arrow layout). `offsets` has `len + 1` entries; they need not start at 0.
#[derive(Clone, Copy, Debug)]
pub struct Strs<'a> {
    pub offsets: &'a [i32],
    pub data: &'a [u8],
}

impl<'a> Strs<'a> {
    #[inline]
    pub fn get(&self, i: usize) -> &'a [u8] {
        &self.data[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }
}

/// Borrowed f64 column. A value is absent when `valid` says so (Arrow null) or when it is NaN.
#[derive(Clone, Copy, Debug)]
pub struct F64s<'a> {
    pub values: &'a [f64],
    /// Arrow validity bitmap (LSB first) and its bit offset.
    pub valid: Option<(&'a [u8], usize)>,
}

impl F64s<'_> {
    /// The value at row `i`, NaN when absent.
    #[inline]
    pub fn get(&self, i: usize) -> f64 {
        let v = self.values[i];
        match self.valid {
            Some((bits, off)) => {
                let j = i + off;
                if bits[j >> 3] & (1 << (j & 7)) != 0 {
                    v
                } else {
                    f64::NAN
                }
            }
            None => v,
        }
    }
}

/// The kind column: constant for single-kind Arrow batches, per row otherwise.
#[derive(Clone, Copy, Debug)]
pub enum KindCol<'a> {
    All(Kind),
    Rows(&'a [u8]),
}

impl KindCol<'_> {
    #[inline]
    pub fn get(&self, i: usize) -> u8 {
        match self {
            KindCol::All(k) => *k as u8,
            KindCol::Rows(r) => r[i],
        }
    }
}

/// What the engine reads from a batch. Columns a batch lacks are `None` (e.g. a sensor-only
/// Arrow batch has no `status`); their rows read as absent.
#[derive(Clone, Copy, Debug)]
pub struct BatchView<'a> {
    pub len: usize,
    pub kind: KindCol<'a>,
    pub shipment: Strs<'a>,
    pub ts: &'a [i64],
    pub carrier: Option<Strs<'a>>,
    pub status: Option<&'a [u8]>,
    pub location: Option<Strs<'a>>,
    pub metrics: [Option<F64s<'a>>; N_METRICS],
    pub tier: Option<&'a [u8]>,
    pub fragile: Option<&'a [u8]>,
    /// Shipment events' origin and destination region codes (lane statistics).
    pub origin: Option<Strs<'a>>,
    pub dest: Option<Strs<'a>>,
    /// Rows rejected by validation (non-zero = skip); they were already dead-lettered.
    pub rejected: Option<&'a [u8]>,
}

/// Why an input was rejected. The name (`as_str`) is the dead-letter subject suffix and the
/// `reason` column; keep names stable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// Not parseable at all in its declared format (JSON syntax, protobuf wire, Arrow IPC framing).
    Malformed,
    /// Arrow stream whose schema lacks a required column or has a column of the wrong type.
    Schema,
    /// `kind` missing or not one of shipment/scan/sensor.
    BadKind,
    /// A required field is missing (the detail names it).
    MissingField,
    /// `shipment` not 1–64 bytes of printable ASCII.
    BadShipment,
    /// `ts` neither integer milliseconds nor RFC 3339, or outside years 1970–9999.
    BadTs,
    /// Scan `status` not a normalized code.
    BadStatus,
    /// A field has the wrong type or an invalid value (the detail names it).
    BadField,
}

impl Reason {
    pub const ALL: [Reason; 8] = [
        Reason::Malformed,
        Reason::Schema,
        Reason::BadKind,
        Reason::MissingField,
        Reason::BadShipment,
        Reason::BadTs,
        Reason::BadStatus,
        Reason::BadField,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Malformed => "malformed",
            Reason::Schema => "schema",
            Reason::BadKind => "bad_kind",
            Reason::MissingField => "missing_field",
            Reason::BadShipment => "bad_shipment",
            Reason::BadTs => "bad_ts",
            Reason::BadStatus => "bad_status",
            Reason::BadField => "bad_field",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rejected input: why, a human-readable detail naming the field, and the bytes it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    pub reason: Reason,
    pub detail: String,
    pub raw: Vec<u8>,
}

impl DeadLetter {
    #[cold]
    pub fn new(reason: Reason, detail: impl Into<String>, raw: &[u8]) -> DeadLetter {
        DeadLetter {
            reason,
            detail: detail.into(),
            raw: raw.to_vec(),
        }
    }
}

/// Wire formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    Json,
    Protobuf,
    Arrow,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "json" | "ndjson" | "application/json" => Some(Format::Json),
            "protobuf" | "proto" | "pb" | "application/x-protobuf" => Some(Format::Protobuf),
            "arrow" | "application/vnd.apache.arrow.stream" => Some(Format::Arrow),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Protobuf => "protobuf",
            Format::Arrow => "arrow",
        }
    }
}
