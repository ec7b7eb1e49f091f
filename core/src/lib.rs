//! StreamGuard's data-plane engine: decode carrier scans and sensor readings (JSON, protobuf,
//! Arrow IPC), evaluate threshold and dwell rules over keyed per-shipment state, emit alerts.
//!
//! The crate has no Python in it unless the `python` feature is on; then `python/` holds the
//! PyO3 bindings and nothing else. See `../shared/spec/EVENTS_AND_RULES.md` for the semantics.

pub mod engine;
pub mod error;
pub mod event;
#[cfg(feature = "nats")]
pub mod nats;
mod prefetch;
pub mod rules;
pub mod scoring;
pub mod sim;
pub mod time;

#[cfg(feature = "python")]
mod python;

pub use engine::alert::{Alert, AlertState};
pub use engine::{Engine, Stats};
pub use error::{Error, ErrorKind};
pub use event::{BatchView, DeadLetter, Event, EventBatch, Format, Kind, Reason};
pub use rules::{RuleError, RuleSet};
