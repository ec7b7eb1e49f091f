//! Threshold rules (spec §3.1): idle → pending → firing → resolved, per (shipment, rule).

use super::alert::{Alert, AlertState, Evidence};
use super::core::{episode_key, Core, Episode};
use crate::event::BatchView;
use crate::rules::RuleKind;

impl Core {
    /// Run every threshold rule over sensor row `i` of `slot` (already accepted, in order).
    pub(super) fn eval_thresholds(
        &mut self,
        v: &BatchView<'_>,
        i: usize,
        slot: u32,
        ts: i64,
        out: &mut Vec<Alert>,
    ) {
        for j in 0..self.thr.len() {
            let t = &self.thr[j];
            let Some(col) = v.metrics[t.metric] else {
                continue;
            };
            let x = col.get(i);
            // Readings without the metric leave the state unchanged.
            if x.is_nan() {
                continue;
            }
            let ship = &self.ships.slots[slot as usize];
            // A rule whose `where` does not match this shipment does not see its readings.
            if !t.head.filter.matches(ship) {
                continue;
            }
            let bit = 1u64 << j;
            let key = episode_key(slot, j);
            let breach = t.op.test(x, t.value);
            if ship.thr_active & bit == 0 {
                if !breach {
                    continue;
                }
                let ep = Episode {
                    firing: t.for_ms == 0,
                    start: ts,
                    peak: x,
                };
                self.episodes.insert(key, ep);
                self.ships.slots[slot as usize].thr_active |= bit;
                if ep.firing {
                    self.fire_threshold(j, slot, ts, x, ep.start, out);
                }
                continue;
            }
            let upper = t.op.is_upper();
            let (for_ms, cleared) = (t.for_ms, !t.op.test(x, t.clear));
            let Some(ep) = self.episodes.get_mut(&key) else {
                continue;
            };
            if !ep.firing {
                if !breach {
                    self.episodes.remove(&key);
                    self.ships.slots[slot as usize].thr_active &= !bit;
                    continue;
                }
                ep.peak = if upper {
                    ep.peak.max(x)
                } else {
                    ep.peak.min(x)
                };
                if ts - ep.start >= for_ms {
                    ep.firing = true;
                    let start = ep.start;
                    self.fire_threshold(j, slot, ts, x, start, out);
                }
            } else if cleared {
                let ep = *ep;
                self.episodes.remove(&key);
                self.ships.slots[slot as usize].thr_active &= !bit;
                let t = &self.thr[j];
                let mut a = self.alert(
                    &t.head,
                    RuleKind::Threshold,
                    slot,
                    ep.start,
                    AlertState::Resolved,
                    ts,
                );
                a.metric = Some(t.metric());
                a.value = Some(x);
                a.threshold = Some(t.value);
                a.peak = Some(ep.peak);
                a.duration_ms = Some(ts - ep.start);
                self.n.resolved += 1;
                out.push(a);
            } else {
                ep.peak = if upper {
                    ep.peak.max(x)
                } else {
                    ep.peak.min(x)
                };
            }
        }
    }

    #[cold]
    fn fire_threshold(
        &mut self,
        j: usize,
        slot: u32,
        ts: i64,
        x: f64,
        start: i64,
        out: &mut Vec<Alert>,
    ) {
        let t = &self.thr[j];
        let mut a = self.alert(
            &t.head,
            RuleKind::Threshold,
            slot,
            start,
            AlertState::Firing,
            ts,
        );
        a.metric = Some(t.metric());
        a.value = Some(x);
        a.threshold = Some(t.value);
        let ring = self.ships.slots[slot as usize].ring;
        let mut ev = self.rings.readings(ring, t.metric, t.evidence);
        // The firing reading is the newest; report its exact value, not the ring's f32.
        if let Some(last) = ev.last_mut() {
            if last.ts == ts {
                last.value = x;
            }
        }
        a.evidence = Evidence::Readings(ev);
        self.n.fired += 1;
        out.push(a);
        self.score_shock(j, slot, ts);
    }
}
