//! Partitioned deployments: a worker owns the shipments of one partition and refuses the rest,
//! so a shipment is never handled by two workers even if a publisher mislabels a message.

use super::Engine;
use crate::event::{json, BatchView, DeadLetter, EventBatch, Reason};

/// The partition of `shipment` among `n`: FNV-1a-32 of its bytes mod `n`, exactly what NATS's
/// `{{partition(n,…)}}` subject mapping computes from the shipment token.
pub fn partition_of(shipment: &[u8], n: u32) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in shipment {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h % n.max(1)
}

/// Partition `k` of `n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub k: u32,
    pub n: u32,
}

impl Shard {
    #[inline]
    pub fn owns(&self, shipment: &[u8]) -> bool {
        partition_of(shipment, self.n) == self.k
    }

    #[cold]
    fn refusal(&self, shipment: &[u8]) -> String {
        format!(
            "shipment '{}' belongs to partition {} of {}; this worker handles partition {}",
            String::from_utf8_lossy(shipment),
            partition_of(shipment, self.n),
            self.n,
            self.k
        )
    }

    /// Move the rows of other partitions out of `batch` into dead letters (raw = the row as
    /// canonical JSON). The common case, every row ours, costs one hash per row.
    pub(super) fn retain(&self, batch: &mut EventBatch, dead: &mut Vec<DeadLetter>) {
        if (0..batch.len()).all(|i| self.owns(batch.shipment.get(i))) {
            return;
        }
        let mut kept = EventBatch::default();
        for i in 0..batch.len() {
            let ship = batch.shipment.get(i);
            if self.owns(ship) {
                kept.push_row(batch, i);
            } else {
                let mut raw = Vec::new();
                json::encode_row(batch, i, &mut raw);
                dead.push(DeadLetter::new(
                    Reason::BadShipment,
                    self.refusal(ship),
                    &raw,
                ));
            }
        }
        *batch = kept;
    }

    /// The first shipment of another partition in `view`, if any (Arrow batches are refused
    /// whole: they are not copied to be split).
    pub(super) fn foreign(&self, view: &BatchView<'_>) -> Option<String> {
        (0..view.len)
            .map(|i| view.shipment.get(i))
            .find(|s| !self.owns(s))
            .map(|s| self.refusal(s))
    }
}

impl Engine {
    /// Make this engine partition `k` of `n`: events of other partitions' shipments become
    /// `bad_shipment` dead letters. `None` handles every shipment.
    pub fn set_shard(&mut self, shard: Option<(u32, u32)>) {
        self.shard = shard.map(|(k, n)| Shard { k, n: n.max(1) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{arrow, Format, Kind};
    use crate::rules::RuleSet;

    const RULES: &str = r#"{"rules": [{"id": "shock", "kind": "threshold", "metric": "shock_g",
        "op": "gt", "value": 3.0, "severity": "critical"}]}"#;

    fn engine(shard: Option<(u32, u32)>) -> Engine {
        let mut e = Engine::new(RuleSet::parse(RULES.as_bytes()).unwrap());
        e.set_shard(shard);
        e
    }

    fn ndjson(ships: &[String]) -> Vec<u8> {
        ships
            .iter()
            .map(|s| format!(r#"{{"kind":"sensor","shipment":"{s}","ts":5,"shock_g":9}}"#))
            .collect::<Vec<_>>()
            .join("\n")
            .into_bytes()
    }

    #[test]
    fn a_worker_evaluates_its_partition_and_dead_letters_the_rest() {
        let ships: Vec<String> = (0..40).map(|i| format!("S{i}")).collect();
        let mine: Vec<&String> = ships
            .iter()
            .filter(|s| partition_of(s.as_bytes(), 2) == 1)
            .collect();
        assert!(!mine.is_empty() && mine.len() < ships.len());
        let mut e = engine(Some((1, 2)));
        let (mut out, mut dead) = (Vec::new(), Vec::new());
        e.process_bytes(Format::Json, &ndjson(&ships), None, &mut out, &mut dead);
        assert_eq!(out.len(), mine.len(), "one firing alert per own shipment");
        assert!(out
            .iter()
            .all(|a| partition_of(a.shipment.as_bytes(), 2) == 1));
        assert_eq!(dead.len(), ships.len() - mine.len());
        assert!(dead.iter().all(|d| d.reason == Reason::BadShipment));
        assert!(
            dead[0].detail.contains("belongs to partition 0 of 2"),
            "{}",
            dead[0].detail
        );
        assert!(std::str::from_utf8(&dead[0].raw)
            .unwrap()
            .contains("\"shock_g\":9"));
        assert_eq!(
            e.stats().rejected[Reason::BadShipment as usize],
            dead.len() as u64
        );

        // Unpartitioned, the same input is all accepted.
        let mut all = engine(None);
        let (mut out, mut dead) = (Vec::new(), Vec::new());
        all.process_bytes(Format::Json, &ndjson(&ships), None, &mut out, &mut dead);
        assert_eq!((out.len(), dead.len()), (ships.len(), 0));
    }

    #[test]
    fn an_arrow_batch_with_a_foreign_shipment_is_refused_whole() {
        let own = (0..100)
            .map(|i| format!("A{i}"))
            .find(|s| partition_of(s.as_bytes(), 2) == 0)
            .unwrap();
        let other = (0..100)
            .map(|i| format!("B{i}"))
            .find(|s| partition_of(s.as_bytes(), 2) == 1)
            .unwrap();
        let mut batch = EventBatch::default();
        let (mut scratch, mut d) = (Vec::new(), Vec::new());
        crate::event::json::decode(&ndjson(&[own.clone(), other]), None, &mut batch, &mut d);
        arrow::write_ipc(&arrow::to_record_batches(&batch), &mut scratch);
        let mut e = engine(Some((0, 2)));
        let (mut out, mut dead) = (Vec::new(), Vec::new());
        e.process_bytes(
            Format::Arrow,
            &scratch,
            Some(Kind::Sensor),
            &mut out,
            &mut dead,
        );
        assert!(out.is_empty());
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].reason, Reason::BadShipment);
        assert_eq!(dead[0].raw, scratch, "the refused batch keeps its bytes");
        let mut ok = EventBatch::default();
        crate::event::json::decode(&ndjson(&[own]), None, &mut ok, &mut d);
        scratch.clear();
        arrow::write_ipc(&arrow::to_record_batches(&ok), &mut scratch);
        e.process_bytes(
            Format::Arrow,
            &scratch,
            Some(Kind::Sensor),
            &mut out,
            &mut dead,
        );
        assert_eq!((out.len(), dead.len()), (1, 1));
    }
}
