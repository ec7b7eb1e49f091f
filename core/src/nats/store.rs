//! Handing evaluated input to storage, exactly once.
//!
//! The worker gathers, per run of consecutive input messages (an *item*), the events it
//! accepted, the alert records, the score records and the dead letters, and hands the item to
//! the storage writer (Python, over a bounded channel: a slow store backs the input off). The
//! writer inserts each part with a deduplication token made of the item's sequence range and
//! confirms; only then is the input acked.
//!
//! A token only deduplicates if a replayed item has the same range. So before an item is handed
//! over its range is appended to a journal (fsync'd); after a crash, re-processing cuts items at
//! exactly the journaled ends. Checkpoints are taken only at item ends with every item stored,
//! and then the journal starts afresh.

use crate::engine::alert::Alert;
use crate::engine::score::ScoreRecord;
use crate::event::{arrow as arrow_ipc, DeadLetter, EventBatch, Kind};
use arrow_array::{ArrayRef, RecordBatch, UInt32Array, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Items waiting for the writer before the worker waits (backpressure).
pub const QUEUE: usize = 4;

/// What one run of input messages produced, for storage.
#[derive(Default)]
pub struct StoreItem {
    /// The `SG_EVENTS` sequence range covered (0, 0 before the first message).
    pub first_seq: u64,
    pub last_seq: u64,
    /// Accepted JSON/protobuf events by kind, with each row's message sequence and index.
    events: [EventBatch; 3],
    keys: [(Vec<u64>, Vec<u32>); 3],
    /// Accepted Arrow record batches as they came (shared), with kind, sequence, first index.
    arrow: Vec<(RecordBatch, Kind, u64, u32)>,
    pub alerts: Vec<Alert>,
    pub scores: Vec<ScoreRecord>,
    /// Dead letters with the subject and sequence of their message.
    pub dead: Vec<(DeadLetter, String, u64)>,
    /// Distinguishes items without an input range (clock-driven alerts only).
    pub label: String,
}

impl StoreItem {
    pub fn is_empty(&self) -> bool {
        self.first_seq == 0 && self.alerts.is_empty() && self.scores.is_empty()
    }

    pub(super) fn cover(&mut self, seq: u64) {
        if self.first_seq == 0 {
            self.first_seq = seq;
        }
        self.last_seq = seq;
    }

    /// Keep the rows of `batch` (one message's decoded events).
    pub(super) fn push_rows(&mut self, batch: &EventBatch, seq: u64) {
        for i in 0..batch.len() {
            let k = Kind::from_u8(batch.kind[i]).unwrap_or(Kind::Scan) as usize;
            self.events[k].push_row(batch, i);
            self.keys[k].0.push(seq);
            self.keys[k].1.push(i as u32);
        }
    }

    pub(super) fn push_arrow(&mut self, batches: Vec<RecordBatch>, kind: Kind, seq: u64) {
        let mut first = 0u32;
        for rb in batches {
            let n = rb.num_rows() as u32;
            self.arrow.push((rb, kind, seq, first));
            first += n;
        }
    }

    /// The deduplication token of this item (each table's insert adds its own suffix).
    pub fn token(&self, durable: &str) -> String {
        format!(
            "{durable}:{}-{}{}",
            self.first_seq, self.last_seq, self.label
        )
    }

    /// The events as Arrow record batches, one table's worth each, with `seq` (the message's
    /// stream sequence) and `idx` (the row within it) appended: together the event's key.
    pub fn event_batches(&self) -> Vec<RecordBatch> {
        let mut out = Vec::new();
        for (k, batch) in self.events.iter().enumerate() {
            if batch.is_empty() {
                continue;
            }
            let kind = Kind::from_u8(k as u8).unwrap_or(Kind::Scan);
            let (seqs, idxs) = &self.keys[k];
            for rb in arrow_ipc::to_record_batches(batch) {
                out.push(with_keys(&rb, seqs.clone(), idxs.clone(), kind));
            }
        }
        for (rb, kind, seq, first) in &self.arrow {
            let n = rb.num_rows();
            let idx = (0..n as u32).map(|i| first + i).collect();
            out.push(with_keys(rb, vec![*seq; n], idx, *kind));
        }
        out
    }
}

fn with_keys(rb: &RecordBatch, seq: Vec<u64>, idx: Vec<u32>, kind: Kind) -> RecordBatch {
    let schema = rb.schema();
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new("seq", DataType::UInt64, false));
    fields.push(Field::new("idx", DataType::UInt32, false));
    let mut metadata = schema.metadata().clone();
    if !metadata.contains_key("streamguard.kind") {
        metadata.insert("streamguard.kind", kind.as_str());
    }
    let mut columns: Vec<ArrayRef> = rb.columns().to_vec();
    columns.push(Arc::new(UInt64Array::from(seq)));
    columns.push(Arc::new(UInt32Array::from(idx)));
    RecordBatch::try_new(
        Arc::new(Schema::new_with_metadata(fields, metadata)),
        columns,
    )
    .expect("appending two full-length columns keeps the batch valid")
}

/// The storage writer's ends: items to store, and "stored up to sequence N" back.
pub struct StoreLink {
    pub items: mpsc::Receiver<StoreItem>,
    pub done: mpsc::UnboundedSender<u64>,
}

/// The worker's ends.
pub struct StoreSender {
    pub(super) items: mpsc::Sender<StoreItem>,
    pub(super) done: mpsc::UnboundedReceiver<u64>,
}

pub fn link() -> (StoreSender, StoreLink) {
    let (items_tx, items_rx) = mpsc::channel(QUEUE);
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    (
        StoreSender {
            items: items_tx,
            done: done_rx,
        },
        StoreLink {
            items: items_rx,
            done: done_tx,
        },
    )
}

/// The item ranges handed over since the last checkpoint, one `first last` line each.
pub(super) struct Journal {
    path: PathBuf,
}

impl Journal {
    pub fn new(dir: &Path, durable: &str) -> Journal {
        Journal {
            path: dir.join(format!("{durable}.items")),
        }
    }

    /// The journaled item ends after `after`, in order: re-processing must cut there.
    pub fn ends_after(&self, after: u64) -> std::io::Result<VecDeque<u64>> {
        let text = match fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(VecDeque::new()),
            Err(e) => return Err(e),
        };
        let mut ends: Vec<u64> = text
            .split_inclusive('\n')
            // A torn last line (crash mid-write) was never acted on: skip it.
            .filter(|l| l.ends_with('\n'))
            .filter_map(|l| l.trim().split_once(' ').and_then(|(_, b)| b.parse().ok()))
            .filter(|&end| end > after)
            .collect();
        ends.sort_unstable();
        ends.dedup();
        Ok(ends.into())
    }

    pub fn append(&self, first: u64, last: u64) -> std::io::Result<()> {
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir)?;
        }
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        writeln!(f, "{first} {last}")?;
        f.sync_data()
    }

    /// After a checkpoint at an item end with everything stored, nothing needs replaying.
    pub fn reset(&self) -> std::io::Result<()> {
        match File::create(&self.path) {
            Ok(f) => f.sync_all(),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{SimConfig, Simulator};

    #[test]
    fn event_batches_carry_kind_seq_and_idx() {
        let mut sim = Simulator::new(SimConfig {
            shipments: 20,
            events: 500,
            ..SimConfig::default()
        });
        let (mut batch, mut inv) = (EventBatch::default(), Vec::new());
        sim.next_batch(500, &mut batch, &mut inv);
        let mut item = StoreItem::default();
        item.cover(7);
        item.push_rows(&batch, 7);
        let rbs = item.event_batches();
        assert_eq!(rbs.iter().map(|r| r.num_rows()).sum::<usize>(), batch.len());
        let mut idx: Vec<u32> = Vec::new();
        for rb in &rbs {
            let schema = rb.schema();
            let kind = schema.metadata().get("streamguard.kind").unwrap();
            let seq = rb.column_by_name("seq").unwrap();
            let seq = seq.as_any().downcast_ref::<UInt64Array>().unwrap();
            assert!(seq.values().iter().all(|&s| s == 7));
            let i = rb.column_by_name("idx").unwrap();
            let i = i.as_any().downcast_ref::<UInt32Array>().unwrap();
            for &row in i.values() {
                assert_eq!(
                    Kind::from_u8(batch.kind[row as usize]).unwrap().as_str(),
                    kind
                );
            }
            idx.extend(i.values());
        }
        idx.sort_unstable();
        assert_eq!(idx, (0..batch.len() as u32).collect::<Vec<_>>());
        assert_eq!(item.token("w"), "w:7-7");
    }

    #[test]
    fn the_journal_gives_back_the_ends_past_a_checkpoint() {
        let dir = std::env::temp_dir().join(format!("sg-journal-{}", std::process::id()));
        let j = Journal::new(&dir, "w");
        assert!(j.ends_after(0).unwrap().is_empty());
        j.append(1, 10).unwrap();
        j.append(11, 25).unwrap();
        j.append(26, 30).unwrap();
        fs::OpenOptions::new()
            .append(true)
            .open(dir.join("w.items"))
            .unwrap()
            .write_all(b"31 3")
            .unwrap();
        assert_eq!(j.ends_after(10).unwrap(), VecDeque::from(vec![25, 30]));
        j.reset().unwrap();
        assert!(j.ends_after(0).unwrap().is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }
}
