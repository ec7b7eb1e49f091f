//! The engine: decode → validate → keyed rule state → alerts.
//!
//! [`Engine`] owns the decode scratch (reused, so steady-state decoding allocates nothing per
//! event) and the evaluation core. It is single-threaded and deterministic: the alerts for an
//! input are exactly those of processing its events one at a time, in order.
//!
//! With carrier scoring on (the default) the engine also keeps lane statistics and produces
//! score records ([`Engine::scores`]); see `scoring.rs` for what feeds them.

pub mod alert;
mod core;
mod dwell;
mod evidence;
mod reload;
pub mod score;
mod scoring;
mod shard;
mod snapshot;
mod state;
mod threshold;
mod timers;

use crate::error::Error;
use crate::event::arrow::ArrowScratch;
use crate::event::{self, BatchView, DeadLetter, EventBatch, Format, Kind, Reason};
use crate::rules::RuleSet;
use crate::scoring::{CodedLanes, LaneTable, ScoringConfig};
use alert::Alert;
use arrow_array::RecordBatch;
use score::{ScoreEvent, ScoreRecord};
pub use shard::{partition_of, Shard};

/// Counters since the engine started. `events_in = accepted + out_of_order + rejected`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub events_in: u64,
    pub accepted: u64,
    pub out_of_order: u64,
    /// Dead letters by reason, indexed like [`Reason::ALL`].
    pub rejected: [u64; Reason::ALL.len()],
    pub fired: u64,
    pub resolved: u64,
    pub retracted: u64,
    /// Shipments with state.
    pub shipments: u64,
    /// Bytes of keyed state (allocated capacity: records, keys, evidence, episodes, timers).
    pub state_bytes: u64,
    /// Lanes with statistics (carrier-wide aggregates included), and the bytes they and their
    /// models take: bounded by carriers × provinces², not per shipment, so apart.
    pub lanes: u64,
    pub lane_bytes: u64,
    /// The scan watermark, or `i64::MIN` before the first scan.
    pub watermark: i64,
    pub rules_version: i64,
}

impl Stats {
    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().sum()
    }
}

pub struct Engine {
    core: core::Core,
    batch: EventBatch,
    arrow: ArrowScratch,
    rejected: [u64; Reason::ALL.len()],
    /// The partition this engine owns, in a partitioned deployment.
    shard: Option<Shard>,
}

impl Engine {
    /// An engine with carrier scoring on, in its default configuration.
    pub fn new(rules: RuleSet) -> Engine {
        Engine::with_scoring(rules, Some(ScoringConfig::default()))
            .expect("the default scoring configuration validates")
    }

    /// An engine with carrier scoring configured by `scoring`, or off (`None`: no lane
    /// statistics, no scores, nothing of it on the hot path). `Config` error if the
    /// configuration does not validate.
    pub fn with_scoring(rules: RuleSet, scoring: Option<ScoringConfig>) -> Result<Engine, Error> {
        let mut core = core::Core::new(rules);
        if let Some(config) = scoring {
            core.scoring = Some(Box::new(scoring::Scoring::new(LaneTable::new(config)?)));
        }
        Ok(Engine {
            core,
            batch: EventBatch::default(),
            arrow: ArrowScratch::default(),
            rejected: [0; Reason::ALL.len()],
            shard: None,
        })
    }

    /// Whether carrier scoring is on.
    pub fn scoring(&self) -> bool {
        self.core.scoring.is_some()
    }

    /// Turn carrier scoring on (with no statistics yet, default configuration) or off
    /// (dropping the statistics); no change if it already is.
    pub fn set_scoring(&mut self, on: bool) {
        match (on, self.core.scoring.is_some()) {
            (true, false) => {
                let table = LaneTable::new(ScoringConfig::default())
                    .expect("the default scoring configuration validates");
                self.core.scoring = Some(Box::new(scoring::Scoring::new(table)));
                // Lanes the shipments looked up belonged to the old state.
                for s in &mut self.core.ships.slots {
                    s.score_lane = state::NO_LANE;
                }
            }
            (false, true) => self.core.scoring = None,
            _ => {}
        }
    }

    /// The lane statistics, carriers by this engine's ids (`None` with scoring off).
    pub fn lane_table(&self) -> Option<&LaneTable> {
        self.core.scoring.as_ref().map(|s| &s.table)
    }

    /// The carrier codes by this engine's ids (id 0: the empty "unknown" code).
    pub fn carrier_codes(&self) -> Vec<std::sync::Arc<str>> {
        let c = &self.core.carriers;
        (0..c.len() as u32).map(|i| c.name(i).clone()).collect()
    }

    /// The lane statistics with carriers by code, to export or merge (`None` with scoring off).
    pub fn lanes(&self) -> Option<CodedLanes> {
        let table = self.lane_table()?.clone();
        Some(
            CodedLanes::from_parts(self.carrier_codes(), table)
                .expect("every lane's carrier is interned"),
        )
    }

    /// Appends [`Engine::lanes`]' encoding without copying the table; false with scoring off.
    pub fn encode_lanes(&self, out: &mut Vec<u8>) -> bool {
        let Some(table) = self.lane_table() else {
            return false;
        };
        let c = &self.core.carriers;
        let codes: Vec<&str> = (0..c.len() as u32).map(|i| &**c.name(i)).collect();
        CodedLanes::encode_parts(&codes, table, out);
        true
    }

    /// Score events produced since the last [`Engine::clear_scores`] (or
    /// [`Engine::take_scores`]), in order. They accumulate: a caller that processes without
    /// reading them clears them.
    pub fn scores(&self) -> &[ScoreEvent] {
        self.core.scoring.as_ref().map_or(&[], |s| &s.out)
    }

    pub fn clear_scores(&mut self) {
        if let Some(s) = self.core.scoring.as_mut() {
            s.out.clear();
        }
    }

    /// `e` with its shipment key and carrier code.
    pub fn score_record(&self, e: &ScoreEvent) -> ScoreRecord {
        let key = self.core.ships.key(e.slot);
        ScoreRecord {
            // Keys are validated printable ASCII.
            shipment: String::from_utf8_lossy(key).into_owned(),
            ts: e.ts,
            carrier: self.core.carriers.name(u32::from(e.carrier)).clone(),
            origin: u16::from(e.origin),
            dest: u16::from(e.dest),
            eta: e.score.eta,
            delay_risk: e.score.delay_risk,
            damage_risk: e.score.damage_risk,
            shock_episodes: u32::from(e.shock_episodes),
            delivered: e.delivered,
        }
    }

    /// Appends the pending score events to `out` as records, and clears them.
    pub fn take_scores(&mut self, out: &mut Vec<ScoreRecord>) {
        out.extend(self.scores().iter().map(|e| self.score_record(e)));
        self.clear_scores();
    }

    /// Replace the rule set atomically, keeping the state of unchanged rules (spec §3.3).
    pub fn replace_rules(&mut self, rules: RuleSet) {
        self.core.install(rules);
    }

    pub fn rules(&self) -> &RuleSet {
        &self.core.set
    }

    /// Evaluate one batch of valid events; alerts are appended to `out` in the order produced.
    pub fn process_view(&mut self, view: &BatchView<'_>, out: &mut Vec<Alert>) {
        self.core.process(view, out);
    }

    /// Decode `input` in `format` and evaluate it. Rejected events are appended to `dead`
    /// (with their reason and bytes) and counted; they never stop the rest of the input.
    pub fn process_bytes(
        &mut self,
        format: Format,
        input: &[u8],
        default_kind: Option<Kind>,
        out: &mut Vec<Alert>,
        dead: &mut Vec<DeadLetter>,
    ) {
        self.process_bytes_kept(format, input, default_kind, out, dead, None);
    }

    /// [`Engine::process_bytes`], also handing back what was evaluated, for storage: JSON and
    /// protobuf rows stay in [`Engine::decoded`]; Arrow record batches that were accepted are
    /// pushed to `kept` (shared, not copied).
    pub fn process_bytes_kept(
        &mut self,
        format: Format,
        input: &[u8],
        default_kind: Option<Kind>,
        out: &mut Vec<Alert>,
        dead: &mut Vec<DeadLetter>,
        mut kept: Option<&mut Vec<RecordBatch>>,
    ) {
        let first_dead = dead.len();
        match format {
            Format::Json | Format::Protobuf => {
                self.batch.clear();
                if format == Format::Json {
                    event::json::decode(input, default_kind, &mut self.batch, dead);
                } else {
                    event::proto::decode(input, &mut self.batch, dead);
                }
                if let Some(shard) = &self.shard {
                    shard.retain(&mut self.batch, dead);
                }
                self.count(&dead[first_dead..]);
                self.core.process(&self.batch.view(), out);
            }
            Format::Arrow => match event::arrow::read_ipc(input) {
                Ok(batches) => {
                    for rb in &batches {
                        let first = dead.len();
                        self.process_record_batch(rb, default_kind, out, dead);
                        if dead.len() == first {
                            if let Some(k) = kept.as_deref_mut() {
                                k.push(rb.clone());
                            }
                        }
                        // A batch rejected whole carries the bytes it came in.
                        for d in &mut dead[first..] {
                            if d.raw.is_empty() {
                                d.raw = input.to_vec();
                            }
                        }
                    }
                }
                Err(d) => {
                    self.count(std::slice::from_ref(&d));
                    dead.push(d);
                }
            },
        }
    }

    /// The valid rows of the last JSON or protobuf input given to [`Engine::process_bytes`].
    pub fn decoded(&self) -> &EventBatch {
        &self.batch
    }

    /// Evaluate an Arrow record batch without copying its columns.
    pub fn process_record_batch(
        &mut self,
        rb: &RecordBatch,
        default_kind: Option<Kind>,
        out: &mut Vec<Alert>,
        dead: &mut Vec<DeadLetter>,
    ) {
        let first_dead = dead.len();
        let view = event::arrow::view(rb, default_kind, &mut self.arrow, dead);
        let view = match (view, &self.shard) {
            (Ok(v), Some(shard)) => match shard.foreign(&v) {
                Some(why) => Err(DeadLetter::new(Reason::BadShipment, why, &[])),
                None => Ok(v),
            },
            (v, _) => v,
        };
        match view {
            Ok(view) => self.core.process(&view, out),
            Err(mut d) => {
                if d.raw.is_empty() {
                    // No input bytes to hand back: keep the batch itself, as an IPC stream.
                    let _ = event::arrow::try_write_ipc(std::slice::from_ref(rb), &mut d.raw);
                }
                dead.push(d);
            }
        }
        self.count(&dead[first_dead..]);
    }

    fn count(&mut self, dead: &[DeadLetter]) {
        for d in dead {
            self.rejected[d.reason as usize] += 1;
        }
    }

    /// Move the scan watermark forward to `w` (live mode's wall clock) and fire the dwell
    /// deadlines it passes. A `w` below the current watermark changes nothing.
    pub fn advance_watermark(&mut self, w: i64, out: &mut Vec<Alert>) {
        self.core.advance(w, out);
    }

    /// Count a rejection made outside the engine (e.g. a NATS message with no usable body).
    pub fn count_rejected(&mut self, r: Reason) {
        self.rejected[r as usize] += 1;
    }

    /// Serialize the complete evaluation state (rules, keyed shipment state, interners,
    /// threshold episodes, evidence rings, dwell timers, max scan ts, watermark, counters incl.
    /// rejected-by-reason), appended to `out`. The format is described in `snapshot.rs`.
    pub fn snapshot(&self, out: &mut Vec<u8>) {
        snapshot::write(self, out);
    }

    /// Rebuild an engine from [`Engine::snapshot`] bytes; it then produces exactly the alerts
    /// the snapshotted engine would have. Corrupt, truncated or wrong-version input is an error
    /// of kind [`crate::error::ErrorKind::Decode`] naming what is wrong.
    pub fn restore(bytes: &[u8]) -> Result<Engine, crate::error::Error> {
        snapshot::read(bytes)
    }

    pub fn stats(&self) -> Stats {
        let n = &self.core.n;
        let rejected = self.rejected;
        Stats {
            events_in: n.accepted + n.out_of_order + rejected.iter().sum::<u64>(),
            accepted: n.accepted,
            out_of_order: n.out_of_order,
            rejected,
            fired: n.fired,
            resolved: n.resolved,
            retracted: n.retracted,
            shipments: self.core.ships.len() as u64,
            state_bytes: self.core.bytes() as u64,
            lanes: self.lane_table().map_or(0, |t| t.len() as u64),
            lane_bytes: self.core.scoring.as_ref().map_or(0, |s| s.bytes() as u64),
            watermark: self.core.watermark,
            rules_version: self.core.set.version,
        }
    }
}

#[cfg(test)]
mod tests;
