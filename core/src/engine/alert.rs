//! Alert records. STUB being written by the lead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlertState { Firing, Resolved, Retracted }
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {}
impl Alert {
    /// Append this alert as one JSON object (no newline).
    pub fn write_json(&self, out: &mut Vec<u8>) { let _ = out; unimplemented!() }
}
/// Alerts as an Arrow record batch (schema: `alert_schema()`).
pub fn to_record_batch(alerts: &[Alert]) -> arrow_array::RecordBatch { let _ = alerts; unimplemented!() }
