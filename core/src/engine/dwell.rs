//! Dwell rules (spec §3.2): a shipment stops moving. Armed by a scan whose status is in the
//! rule's `statuses`, fired when the next scan is late (`n.ts > deadline`) or when the scan
//! watermark passes the deadline first; a watermark alert is resolved by a later scan past the
//! deadline, or retracted by one at or before it (the carrier's feed was late, not the parcel).
//!
//! Only the last accepted scan of a shipment can be armed, so per (shipment, rule) the state is
//! two bits (armed, fired) and the deadline is `last scan ts + for_ms`. Deadlines wait in a
//! calendar queue (`timers.rs`), at most one per (shipment, rule): a newer scan only updates
//! the slot, and the queued deadline is moved forward when it comes due.

use super::alert::{Alert, AlertState, Evidence, ScanEvidence};
use super::core::Core;
use crate::event::{BatchView, Kind, Status, NONE_U8};
use crate::rules::RuleKind;

impl Core {
    pub(super) fn on_scan(
        &mut self,
        v: &BatchView<'_>,
        i: usize,
        slot: u32,
        ts: i64,
        out: &mut Vec<Alert>,
    ) {
        let kind = Kind::Scan as usize;
        let prev_ts = self.ships.slots[slot as usize].last_ts[kind];
        if ts < prev_ts {
            self.n.out_of_order += 1;
            return;
        }
        self.n.accepted += 1;
        if let Some(c) = v.carrier {
            let id = super::core::carrier_id(&mut self.carriers, c.get(i));
            if id != 0 {
                self.ships.slots[slot as usize].seen_carrier = id;
            }
        }
        let status = v.status.map_or(NONE_U8, |s| s[i]);
        // A scan at the same ts as the previous one neither restarts, resolves nor retracts;
        // it may still be the pickup or the delivery.
        if ts == prev_ts {
            self.score_scan(slot, ts, status, prev_ts);
            return;
        }
        if self.ships.slots[slot as usize].dwell_armed != 0 {
            self.end_dwell(slot, ts, out);
        }
        let location = v.location.map_or(0, |l| self.locations.id(l.get(i)));
        let s = &mut self.ships.slots[slot as usize];
        s.last_ts[kind] = ts;
        s.last_status = status;
        s.last_location = location;
        let mut armed = 0u64;
        for (j, d) in self.dwell.iter().enumerate() {
            if d.statuses & (1u16 << (status & 15)) != 0 && status < 16 && d.head.filter.matches(s)
            {
                armed |= 1 << j;
                // One queued deadline per (shipment, rule): an earlier one still waiting is
                // moved to this deadline when it comes due (see `advance`).
                if s.dwell_queued & (1 << j) == 0 {
                    s.dwell_queued |= 1 << j;
                    self.timers.push((ts + d.for_ms, slot, j as u8));
                }
            }
        }
        s.dwell_armed = armed;
        if ts > self.max_scan_ts {
            self.max_scan_ts = ts;
        }
        self.score_scan(slot, ts, status, prev_ts);
        let w = self.max_scan_ts.saturating_sub(self.set.lateness_ms);
        self.advance(w, out);
    }

    /// The next scan (at `ts`) arrived: settle every dwell rule the previous scan armed.
    fn end_dwell(&mut self, slot: u32, ts: i64, out: &mut Vec<Alert>) {
        let s = &self.ships.slots[slot as usize];
        let (armed, fired, since) = (s.dwell_armed, s.dwell_fired, s.last_ts[Kind::Scan as usize]);
        let mut stalled = false;
        for j in 0..self.dwell.len() {
            let bit = 1u64 << j;
            if armed & bit == 0 {
                continue;
            }
            let deadline = since + self.dwell[j].for_ms;
            if fired & bit != 0 {
                let state = if ts > deadline {
                    AlertState::Resolved
                } else {
                    AlertState::Retracted
                };
                stalled |= state == AlertState::Resolved;
                self.emit_dwell(j, slot, state, ts, out);
            } else if ts > deadline {
                stalled = true;
                self.emit_dwell(j, slot, AlertState::Firing, deadline, out);
                self.emit_dwell(j, slot, AlertState::Resolved, ts, out);
            }
        }
        if stalled {
            // One stop, however many dwell rules it broke.
            self.lane_dwell(slot, ts);
        }
        let s = &mut self.ships.slots[slot as usize];
        s.dwell_armed = 0;
        s.dwell_fired = 0;
    }

    /// Raise the watermark to `w` (it never goes back) and fire the dwell deadlines it passed.
    ///
    /// A queued deadline may be older than its rule's current one (a later scan re-armed the
    /// rule): it is then queued again at the current deadline. Deadlines only move forward, so
    /// this fires in exactly the (deadline, slot, rule) order of a queue holding only current
    /// deadlines, without ever holding stale ones.
    pub(super) fn advance(&mut self, w: i64, out: &mut Vec<Alert>) {
        if w > self.watermark {
            self.watermark = w;
        }
        while let Some((deadline, slot, j)) = self.timers.pop_due(self.watermark) {
            let (j8, j) = (j, j as usize);
            let bit = 1u64 << j;
            let s = &mut self.ships.slots[slot as usize];
            if s.dwell_armed & bit == 0 || s.dwell_fired & bit != 0 {
                s.dwell_queued &= !bit;
                continue;
            }
            let current = s.last_ts[Kind::Scan as usize] + self.dwell[j].for_ms;
            if current != deadline {
                self.timers.push((current, slot, j8));
                continue;
            }
            s.dwell_queued &= !bit;
            s.dwell_fired |= bit;
            self.emit_dwell(j, slot, AlertState::Firing, deadline, out);
            self.score_stall(slot, deadline);
        }
    }

    fn emit_dwell(
        &mut self,
        j: usize,
        slot: u32,
        state: AlertState,
        ts: i64,
        out: &mut Vec<Alert>,
    ) {
        let s = &self.ships.slots[slot as usize];
        let since = s.last_ts[Kind::Scan as usize];
        let evidence = Evidence::Scan(ScanEvidence {
            // Only a scan with a normalized status can arm a rule.
            status: Status::from_u8(s.last_status).unwrap_or(Status::InTransit),
            location: self.locations.name(s.last_location).clone(),
            ts: since,
        });
        let mut a = self.alert(&self.dwell[j].head, RuleKind::Dwell, slot, since, state, ts);
        if state != AlertState::Firing {
            a.duration_ms = Some(ts - since);
        }
        a.evidence = evidence;
        match state {
            AlertState::Firing => self.n.fired += 1,
            AlertState::Resolved => self.n.resolved += 1,
            AlertState::Retracted => self.n.retracted += 1,
        }
        out.push(a);
    }
}
