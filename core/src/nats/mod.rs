//! The engine live on NATS: a JetStream durable consumer in, alert records and dead letters out,
//! at-least-once in and exactly-once out across crashes (see `worker.rs`).
//!
//! Everything here runs on one Tokio runtime owned by the caller (the Python bindings hold one
//! per process); no per-event work leaves Rust.

pub mod checkpoint;
pub mod publish;
pub mod setup;
pub mod status;
pub mod store;
pub mod subjects;
mod worker;

use std::path::PathBuf;
use std::time::Duration;

pub use status::{Phase, Status};
pub use worker::run;

/// How the scan watermark moves (spec §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeMode {
    /// With the data and, once a second, with the wall clock: a silent carrier still trips
    /// dwell rules.
    Wall,
    /// With the data only: the alerts equal `streamguard replay` of the stream, in stream order.
    Event,
}

impl TimeMode {
    pub fn parse(s: &str) -> Option<TimeMode> {
        match s {
            "wall" => Some(TimeMode::Wall),
            "event" => Some(TimeMode::Event),
            _ => None,
        }
    }
}

/// What `streamguard engine` is told.
#[derive(Clone, Debug)]
pub struct LiveConfig {
    pub nats_url: String,
    pub user: Option<String>,
    pub password: Option<String>,
    /// A rule-set document that seeds KV `sg_rules/active` when the key is empty.
    pub rules_seed: Option<Vec<u8>>,
    pub time: TimeMode,
    /// Where checkpoints go; without one a restart re-processes the whole stream.
    pub state_dir: Option<PathBuf>,
    /// The durable consumer's name; also the checkpoint's file name.
    pub durable: String,
    /// Subjects this worker consumes (a partition's subjects, or all input).
    pub filter_subjects: Vec<String>,
    /// `(k, n)`: this worker owns partition `k` of `n` and refuses other shipments.
    pub partition: Option<(u32, u32)>,
    /// Most messages evaluated between two PubAck waits.
    pub batch: usize,
    /// Least time between two checkpoints.
    pub checkpoint_every: Duration,
    /// Time between two `sg.engine.stats` messages (and wall-clock watermark steps).
    pub tick: Duration,
    /// Carrier scoring: lane statistics, `sg.score.<shipment>`, KV `sg_lanes` (default on).
    pub scoring: bool,
}

impl LiveConfig {
    pub fn new(nats_url: impl Into<String>) -> LiveConfig {
        LiveConfig {
            nats_url: nats_url.into(),
            user: None,
            password: None,
            rules_seed: None,
            time: TimeMode::Wall,
            state_dir: None,
            durable: "sg-engine".to_string(),
            filter_subjects: subjects::EVENTS_SUBJECTS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            partition: None,
            batch: 1000,
            checkpoint_every: Duration::from_secs(2),
            tick: Duration::from_secs(1),
            scoring: true,
        }
    }
}
