//! What a running live engine shows its owner: phase, counters, the latest alerts, errors.
//! Written by the worker between batches, read by Python (or a test) at any time.

use crate::engine::Stats;
use std::collections::VecDeque;
use std::sync::Mutex;

/// How many recent alert records the status keeps for a console.
pub const RECENT_ALERTS: usize = 32;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Phase {
    #[default]
    Starting,
    /// Re-processing input after a checkpoint; outputs already published are not repeated.
    Recovering,
    Running,
    Stopped,
    Failed,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Recovering => "recovering",
            Phase::Running => "running",
            Phase::Stopped => "stopped",
            Phase::Failed => "failed",
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub phase: Phase,
    pub stats: Stats,
    /// NATS messages consumed, and the last `SG_EVENTS` sequence processed.
    pub messages: u64,
    pub last_seq: u64,
    /// Messages the server still holds for this consumer.
    pub pending: u64,
    /// Alert and dead-letter records published (not counting those skipped in recovery).
    pub alerts_published: u64,
    pub dead_published: u64,
    pub scores_published: u64,
    /// The lane table last put in KV `sg_lanes` ([`crate::scoring::CodedLanes`] bytes).
    pub lanes: Option<std::sync::Arc<Vec<u8>>>,
    /// Why the lane table could not be put in KV, if it could not.
    pub lanes_error: Option<String>,
    /// Outputs found already published when re-processing after a restart.
    pub recovered_skipped: u64,
    pub checkpoints: u64,
    pub rules_version: i64,
    /// The latest refusal of a rule set from the KV bucket, if any.
    pub rules_error: Option<String>,
    /// Why the engine stopped, if it failed.
    pub error: Option<String>,
}

#[derive(Default)]
pub struct Status {
    inner: Mutex<(Snapshot, VecDeque<String>)>,
}

impl Status {
    pub fn update(&self, f: impl FnOnce(&mut Snapshot)) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g.0);
    }

    pub fn push_alert(&self, json: String) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if g.1.len() == RECENT_ALERTS {
            g.1.pop_front();
        }
        g.1.push_back(json);
    }

    pub fn snapshot(&self) -> Snapshot {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .clone()
    }

    /// The latest alert records (oldest first), as JSON.
    pub fn recent_alerts(&self) -> Vec<String> {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.1.iter().cloned().collect()
    }
}
