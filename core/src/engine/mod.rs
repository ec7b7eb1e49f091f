//! The engine. STUB being written by the lead; signatures are the contract.
pub mod alert;

use crate::event::{BatchView, DeadLetter, Format, Kind, Reason};
use crate::rules::RuleSet;
use alert::Alert;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub events_in: u64,
    pub accepted: u64,
    pub out_of_order: u64,
    /// Indexed like `Reason::ALL`.
    pub rejected: [u64; 8],
    pub fired: u64,
    pub resolved: u64,
    pub retracted: u64,
    pub shipments: u64,
    pub state_bytes: u64,
    pub watermark: i64,
    pub rules_version: i64,
}

pub struct Engine {}

impl Engine {
    pub fn new(rules: RuleSet) -> Engine { let _ = rules; unimplemented!() }
    pub fn replace_rules(&mut self, rules: RuleSet) { let _ = rules; unimplemented!() }
    pub fn rules(&self) -> &RuleSet { unimplemented!() }
    /// Evaluate one batch; alerts are appended to `out` in the order produced.
    pub fn process_view(&mut self, view: &BatchView<'_>, out: &mut Vec<Alert>) { let _ = (view, out); unimplemented!() }
    /// Decode `input` in `format` and evaluate it. Rejected events are appended to `dead` and counted.
    pub fn process_bytes(&mut self, format: Format, input: &[u8], default_kind: Option<Kind>, out: &mut Vec<Alert>, dead: &mut Vec<DeadLetter>) { let _ = (format, input, default_kind, out, dead); unimplemented!() }
    /// Evaluate an Arrow record batch (zero copy).
    pub fn process_record_batch(&mut self, rb: &arrow_array::RecordBatch, default_kind: Option<Kind>, out: &mut Vec<Alert>, dead: &mut Vec<DeadLetter>) { let _ = (rb, default_kind, out, dead); unimplemented!() }
    /// Move the scan watermark forward (live mode wall clock); fires due dwell timers.
    pub fn advance_watermark(&mut self, w: i64, out: &mut Vec<Alert>) { let _ = (w, out); unimplemented!() }
    pub fn stats(&self) -> Stats { unimplemented!() }
    pub fn count_rejected(&mut self, r: Reason) { let _ = r; unimplemented!() }
}
