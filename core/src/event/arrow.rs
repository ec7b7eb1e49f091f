//! Arrow IPC stream decoding into zero-copy views, and encoding. STUB: the formats helper replaces this.
use super::{BatchView, DeadLetter, EventBatch, Kind};
use arrow_array::RecordBatch;

/// Read every record batch of one or more concatenated IPC streams.
pub fn read_ipc(input: &[u8]) -> Result<Vec<RecordBatch>, DeadLetter> {
    let _ = input;
    unimplemented!("arrow::read_ipc")
}

/// Per-batch scratch for columns that need conversion (status strings to codes, …). Reused.
#[derive(Default)]
pub struct ArrowScratch {}

/// A zero-copy view of `rb` for the engine. Invalid rows are dead-lettered and marked in
/// `view.rejected`. A batch whose schema does not fit is an `Err` (reason `schema`).
pub fn view<'a>(
    rb: &'a RecordBatch,
    default_kind: Option<Kind>,
    scratch: &'a mut ArrowScratch,
    dead: &mut Vec<DeadLetter>,
) -> Result<BatchView<'a>, DeadLetter> {
    let _ = (rb, default_kind, scratch, dead);
    unimplemented!("arrow::view")
}

/// Split `batch` by kind into one record batch per kind (in first-seen kind order).
pub fn to_record_batches(batch: &EventBatch) -> Vec<RecordBatch> {
    let _ = batch;
    unimplemented!("arrow::to_record_batches")
}

/// Write record batches as one IPC stream per schema, concatenated.
pub fn write_ipc(batches: &[RecordBatch], out: &mut Vec<u8>) {
    let _ = (batches, out);
    unimplemented!("arrow::write_ipc")
}
