//! Protobuf `EventBatch` decoding and encoding. STUB: the formats helper replaces this.
use super::{DeadLetter, EventBatch};

pub fn decode(input: &[u8], out: &mut EventBatch, dead: &mut Vec<DeadLetter>) {
    let _ = (input, out, dead);
    unimplemented!("proto::decode")
}

/// Encode rows `rows` of `batch` as one `EventBatch` message.
pub fn encode(batch: &EventBatch, rows: std::ops::Range<usize>, out: &mut Vec<u8>) {
    let _ = (batch, rows, out);
    unimplemented!("proto::encode")
}
