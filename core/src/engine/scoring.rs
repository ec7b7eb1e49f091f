//! Carrier scoring in the engine (issue 7): the hooks that feed the lane statistics from the
//! event stream, and per-shipment scores.
//!
//! # What feeds a lane
//!
//! A shipment's lane is (carrier, origin province, destination province) from its latest
//! `shipment` event, as `where` filters read attributes. A shipment without one, or with a
//! region [`province_of`] cannot read, has no lane: it feeds no statistics and gets no score.
//! Per shipment, over its accepted scans (out-of-order ones change nothing, spec §2):
//!
//! - the first PICKED_UP scan records the pickup time and counts a pickup on the lane; if the
//!   `shipment` event comes later, the pickup is counted when it arrives;
//! - the first DELIVERED scan after a pickup records the transit time on the lane known at
//!   that moment (a shipment event arriving after it does not re-file it); DELIVERED and
//!   RETURNED_TO_SENDER end scoring for the shipment;
//! - a dwell counts once per stop (however many dwell rules fire on it), when the next scan
//!   resolves it: a watermark alert the next scan retracts was a late feed, not a stalled
//!   parcel, and counting at resolution makes the counts independent of the watermark, so
//!   partitions' tables merge into exactly the single engine's;
//! - a shock episode counts once however many `shock_g` threshold rules fire on it: a rule
//!   firing while another `shock_g` rule's episode is firing continues that episode.
//!
//! # Scores
//!
//! A shipment is scored from its pickup (before it the clock has not started: there is no ETA to
//! give), on its scans, its shock episodes and its dwell alerts fired by the watermark past its
//! last published ETA, never on plain sensor readings. A scan less than [`RESCORE_GAP_MS`] after
//! the previous one rescores only if its status is news (out for delivery, failed, exception, at a
//! pickup point): a score moves with elapsed time or news, and half an hour moves it less than the
//! material thresholds. A score record goes out when [`crate::scoring::materially_changed`] says so
//! against the last one sent, which the shipment keeps in 6 bytes; the DELIVERED scan sends a final
//! record.
//!
//! Scores read a [`LaneView`]: the lane's transit tail sums mixed with its carrier's. Tails
//! are rebuilt (a walk over the sketch's buckets, cold in cache) only when their data has moved
//! enough to matter: a lane's once its deliveries grew by 1/[`LANE_SLACK`] since the last build
//! (each of its first four deliveries), a carrier's by 1/[`CARRIER_SLACK`], either after
//! 1/[`CLOCK_SLACK`] of a half-life. A lane with `n` deliveries weighs `n/(n+10)` against its
//! carrier, so lagging a quarter of its data moves a score far less than the material-change
//! thresholds; rebuilding at every delivery cost more than the rest of the engine (measured).
//! So a score is a pure function of the input up to that slack; the statistics themselves are
//! exact, and survive restarts in the snapshot.

use super::core::{episode_key, Core};
use super::score::ScoreEvent;
use super::state::{Ship, NO_ETA, NO_LANE, NO_TS, SCORE_PICKUP_COUNTED, SCORE_TERMINAL};
use crate::event::{BatchView, Metric, Status, NONE_U8};
use crate::scoring::{
    bucket_values, damage_risk, province_of, round_i64, AlertKind, Eta, LaneKey, LaneSlots,
    LaneTable, LaneView, Score, SketchLayout, Tails,
};

/// A carrier's tails are rebuilt once its deliveries grew by 1/`CARRIER_SLACK`...
pub const CARRIER_SLACK: u32 = 16;
/// ... a lane's once its deliveries grew by 1/`LANE_SLACK` (at each of its first four) ...
pub const LANE_SLACK: u32 = 4;
/// ... and any tails once the decay clock moved by 1/`CLOCK_SLACK` of a half-life (5 h at 14
/// days), as lane weights decay.
pub const CLOCK_SLACK: i64 = 64;

/// A scan this soon after the previous one rescores only if its status is news.
pub const RESCORE_GAP_MS: i64 = 30 * 60_000;

/// Risks are kept in the shipment record in steps of 1/`RISK_STEPS`.
const RISK_STEPS: f64 = 200.0;

/// "Never built".
const NEVER: u32 = u32::MAX;

#[derive(Default)]
struct CarrierTails {
    /// Deliveries recorded on the carrier, and at the last build.
    deliveries: u32,
    built_at: u32,
    clock: i64,
    /// Bumped at each build, so lanes know to re-mix.
    epoch: u32,
    tails: Tails,
    built: bool,
}

struct LaneTails {
    key: LaneKey,
    /// Where the lane sits in the table.
    slots: LaneSlots,
    deliveries: u32,
    built_at: u32,
    /// The carrier epoch and clock the weight and `late` were computed at.
    epoch: u32,
    clock: i64,
    /// Lane weight and `P(T > SLA)` of the mixture.
    w: f64,
    late: f64,
    sla_ms: f64,
    tails: Tails,
}

/// The engine's scoring state: lane statistics (snapshotted), tails (derived), and the score
/// events of the current call.
pub(super) struct Scoring {
    pub table: LaneTable,
    layout: SketchLayout,
    /// 1/[`CLOCK_SLACK`] of the half-life, ms.
    clock_slack: i64,
    values: Vec<f64>,
    index: hashbrown::HashMap<LaneKey, u32, foldhash::fast::FixedState>,
    lanes: Vec<LaneTails>,
    /// By carrier id.
    carriers: Vec<CarrierTails>,
    pub out: Vec<ScoreEvent>,
}

impl Scoring {
    pub fn new(table: LaneTable) -> Scoring {
        let layout = table.layout();
        Scoring {
            clock_slack: table.config().half_life_ms / CLOCK_SLACK,
            table,
            layout,
            values: bucket_values(&layout),
            index: Default::default(),
            lanes: Vec::new(),
            carriers: Vec::new(),
            out: Vec::new(),
        }
    }

    /// Bytes held by the statistics and the tails.
    pub fn bytes(&self) -> usize {
        self.table.bytes()
            + self
                .lanes
                .iter()
                .map(|l| std::mem::size_of::<LaneTails>() + l.tails.heap_bytes())
                .sum::<usize>()
            + self
                .carriers
                .iter()
                .map(|c| std::mem::size_of::<CarrierTails>() + c.tails.heap_bytes())
                .sum::<usize>()
            + self.index.capacity() * 17
            + self.values.capacity() * 8
    }

    #[cold]
    fn add_lane(&mut self, key: LaneKey) -> usize {
        let i = self.lanes.len();
        self.index.insert(key, i as u32);
        self.lanes.push(LaneTails {
            key,
            slots: LaneSlots::default(),
            deliveries: 0,
            built_at: NEVER,
            epoch: 0,
            clock: 0,
            w: 0.0,
            late: 0.0,
            sla_ms: 0.0,
            tails: Tails::default(),
        });
        i
    }

    /// `s`'s lane (an index into `lanes`), looked up once and kept in the record; `None`
    /// without one.
    #[inline]
    fn lane_index(&mut self, s: &mut Ship) -> Option<usize> {
        if s.score_lane != NO_LANE {
            return Some(s.score_lane as usize);
        }
        let key = lane_of(s)?;
        let i = match self.index.get(&key) {
            Some(&i) => i as usize,
            None => self.add_lane(key),
        };
        s.score_lane = i as u32;
        Some(i)
    }

    fn picked_up(&mut self, i: usize, ts: i64) {
        let lane = &mut self.lanes[i];
        self.table.on_picked_up_in(&mut lane.slots, lane.key, ts);
    }

    fn alert(&mut self, i: usize, kind: AlertKind, ts: i64) {
        let lane = &mut self.lanes[i];
        self.table.on_alert_in(&mut lane.slots, lane.key, kind, ts);
    }

    fn carrier(&mut self, carrier: u16) -> &mut CarrierTails {
        let c = usize::from(carrier);
        if self.carriers.len() <= c {
            self.carriers.resize_with(c + 1, Default::default);
        }
        &mut self.carriers[c]
    }

    /// A delivery on lane `i` from `pickup` at `ts`, judged against `sla` (see
    /// [`LaneTable::on_delivered`]).
    fn delivered(&mut self, i: usize, pickup: i64, ts: i64, sla: i64) {
        let lane = &mut self.lanes[i];
        let key = lane.key;
        if self
            .table
            .on_delivered_in(&mut lane.slots, key, pickup, ts, sla)
        {
            lane.deliveries += 1;
            self.carrier(key.carrier).deliveries += 1;
        }
    }

    /// Start loading what scoring `slot`'s next scan will read (see `Core::process`).
    #[inline]
    pub fn prefetch(&self, s: &Ship) {
        if s.pickup_ts == NO_TS || s.score_flags & SCORE_TERMINAL != 0 {
            return;
        }
        if let Some(lane) = self.lanes.get(s.score_lane as usize) {
            // 80 bytes: always two cache lines, and `view` reads both.
            crate::prefetch::whole(lane);
            lane.tails.prefetch();
        }
    }

    /// Lane `i`'s view, its tails rebuilt first where stale.
    #[inline]
    fn view(&mut self, i: usize) -> LaneView<'_> {
        let key = self.lanes[i].key;
        let (clock, slack) = (self.table.decay().now_ms().unwrap_or(0), self.clock_slack);
        self.carrier(key.carrier);
        let c = &mut self.carriers[usize::from(key.carrier)];
        if !c.built
            || c.deliveries - c.built_at > c.built_at / CARRIER_SLACK
            || clock.saturating_sub(c.clock) > slack
        {
            let stats = self.table.get(LaneKey::carrier_wide(key.carrier));
            c.tails.build(stats.map(|s| &s.transit));
            (c.built, c.built_at, c.clock) = (true, c.deliveries, clock);
            c.epoch = c.epoch.wrapping_add(1);
        }
        let lane = &mut self.lanes[i];
        let rebuild =
            lane.built_at == NEVER || lane.deliveries - lane.built_at > lane.built_at / LANE_SLACK;
        if rebuild {
            lane.tails
                .build(self.table.get_in(&lane.slots, key).map(|s| &s.transit));
            lane.built_at = lane.deliveries;
        }
        if rebuild || lane.epoch != c.epoch || clock.saturating_sub(lane.clock) > slack {
            lane.w = self.table.lane_weight_in(&lane.slots, key);
            lane.sla_ms = self.table.sla_ms(key.carrier) as f64;
            let v = LaneView::new(
                &self.layout,
                &self.values,
                &lane.tails,
                &c.tails,
                lane.w,
                lane.sla_ms,
            );
            (lane.late, lane.epoch, lane.clock) = (v.late(), c.epoch, clock);
        }
        LaneView::with_late(
            &self.layout,
            &self.values,
            &lane.tails,
            &c.tails,
            lane.w,
            lane.sla_ms,
            lane.late,
        )
    }
}

#[inline]
fn lane_of(s: &Ship) -> Option<LaneKey> {
    (s.attr_carrier != 0 && s.origin != 0 && s.dest != 0)
        .then(|| LaneKey::new(s.attr_carrier, u16::from(s.origin), u16::from(s.dest)))
}

#[inline]
fn province(col: Option<crate::event::Strs<'_>>, i: usize) -> u8 {
    col.and_then(|c| province_of(c.get(i)))
        .and_then(|p| u8::try_from(p).ok())
        .unwrap_or(0)
}

/// The last published score as the shipment keeps it.
#[inline]
fn last_score(s: &Ship) -> Score {
    let eta = (s.score_eta_min != NO_ETA).then(|| {
        let ms = i64::from(s.score_eta_min) * 60_000;
        Eta {
            p50_ms: ms,
            p90_ms: ms,
        }
    });
    Score {
        eta,
        delay_risk: (s.score_delay != NONE_U8).then(|| f64::from(s.score_delay) / RISK_STEPS),
        damage_risk: f64::from(s.score_damage) / RISK_STEPS,
    }
}

#[inline]
fn risk_steps(r: f64) -> u8 {
    round_i64(r.clamp(0.0, 1.0) * RISK_STEPS) as u8
}

impl Core {
    /// A `shipment` event: the lane, and a pickup seen before the lane was known.
    #[inline]
    pub(super) fn lane_attributes(&mut self, v: &BatchView<'_>, i: usize, slot: u32) {
        let Some(sc) = self.scoring.as_deref_mut() else {
            return;
        };
        let s = &mut self.ships.slots[slot as usize];
        s.origin = province(v.origin, i);
        s.dest = province(v.dest, i);
        // The carrier may have changed too (`on_shipment`).
        s.score_lane = NO_LANE;
        s.score_hints = [0; 2];
        if s.pickup_ts != NO_TS && s.score_flags & (SCORE_PICKUP_COUNTED | SCORE_TERMINAL) == 0 {
            if let Some(lane) = sc.lane_index(s) {
                s.score_flags |= SCORE_PICKUP_COUNTED;
                sc.picked_up(lane, s.pickup_ts);
            }
        }
    }

    /// An accepted scan of `slot` at `ts`, `prev_ts` the previous scan's (equal: a scan at the
    /// same time, which may still be the pickup or the delivery).
    #[inline]
    pub(super) fn score_scan(&mut self, slot: u32, ts: i64, status: u8, prev_ts: i64) {
        let Some(sc) = self.scoring.as_deref_mut() else {
            return;
        };
        let s = &mut self.ships.slots[slot as usize];
        if s.score_flags & SCORE_TERMINAL != 0 {
            return;
        }
        let lane = sc.lane_index(s);
        if status == Status::PickedUp as u8 && s.pickup_ts == NO_TS {
            s.pickup_ts = ts;
            if let Some(i) = lane {
                s.score_flags |= SCORE_PICKUP_COUNTED;
                sc.picked_up(i, ts);
            }
        } else if status == Status::Delivered as u8 {
            s.score_flags |= SCORE_TERMINAL;
            if let Some(i) = lane {
                self.delivered(slot, i, ts);
            }
            return;
        } else if status == Status::ReturnedToSender as u8 {
            s.score_flags |= SCORE_TERMINAL;
            return;
        }
        let news = status == Status::PickedUp as u8
            || status == Status::OutForDelivery as u8
            || status == Status::DeliveryFailed as u8
            || status == Status::AvailableForPickup as u8
            || status == Status::Exception as u8;
        let due = ts > prev_ts && (news || ts.saturating_sub(prev_ts) >= RESCORE_GAP_MS);
        if let (Some(i), true) = (lane, due) {
            self.rescore(slot, i, ts);
        }
    }

    /// The first DELIVERED scan: the transit time onto the lane, and the final score.
    #[cold]
    fn delivered(&mut self, slot: u32, lane: usize, ts: i64) {
        let Some(sc) = self.scoring.as_deref_mut() else {
            return;
        };
        let s = &self.ships.slots[slot as usize];
        let key = sc.lanes[lane].key;
        let sla = sc.table.sla_ms(key.carrier);
        let pickup = (s.pickup_ts != NO_TS).then_some(s.pickup_ts);
        if let Some(p) = pickup {
            sc.delivered(lane, p, ts, sla);
        }
        let score = Score {
            eta: Some(Eta {
                p50_ms: ts,
                p90_ms: ts,
            }),
            delay_risk: pickup.map(|p| if ts - p > sla { 1.0 } else { 0.0 }),
            damage_risk: damage_risk(u32::from(s.shocks), s.fragile == 1),
        };
        self.publish_score(slot, key, ts, score, true);
    }

    /// A stop of `slot` confirmed longer than a dwell rule allows, at `ts` (the next scan).
    #[cold]
    pub(super) fn lane_dwell(&mut self, slot: u32, ts: i64) {
        let Some(sc) = self.scoring.as_deref_mut() else {
            return;
        };
        let s = &mut self.ships.slots[slot as usize];
        if s.score_flags & SCORE_TERMINAL == 0 {
            if let Some(lane) = sc.lane_index(s) {
                sc.alert(lane, AlertKind::Dwell, ts);
            }
        }
    }

    /// A dwell alert fired by the watermark at `deadline`: if the stall has outlasted the
    /// last published ETA, that ETA is stale: rescore. (Before it, the stall is within what the
    /// ETA allowed for, and the next scan rescores anyway.)
    #[cold]
    pub(super) fn score_stall(&mut self, slot: u32, deadline: i64) {
        let Some(sc) = self.scoring.as_deref_mut() else {
            return;
        };
        let s = &mut self.ships.slots[slot as usize];
        let overdue = s.score_eta_min != NO_ETA && deadline >= i64::from(s.score_eta_min) * 60_000;
        if s.score_flags & SCORE_TERMINAL == 0 && overdue {
            if let Some(lane) = sc.lane_index(s) {
                self.rescore(slot, lane, deadline);
            }
        }
    }

    /// Threshold rule `j` fired on `slot` at `ts`: a shock episode, unless another `shock_g`
    /// rule's episode is already firing (the same shock).
    #[cold]
    pub(super) fn score_shock(&mut self, j: usize, slot: u32, ts: i64) {
        if self.scoring.is_none() || self.thr[j].metric != Metric::ShockG as usize {
            return;
        }
        let active = self.ships.slots[slot as usize].thr_active;
        let ongoing = self.thr.iter().enumerate().any(|(k, t)| {
            k != j
                && t.metric == Metric::ShockG as usize
                && active & (1 << k) != 0
                && self
                    .episodes
                    .get(&episode_key(slot, k))
                    .is_some_and(|e| e.firing)
        });
        let s = &mut self.ships.slots[slot as usize];
        if ongoing || s.score_flags & SCORE_TERMINAL != 0 {
            return;
        }
        s.shocks = s.shocks.saturating_add(1);
        let Some(sc) = self.scoring.as_deref_mut() else {
            return;
        };
        let Some(lane) = sc.lane_index(s) else {
            return;
        };
        sc.alert(lane, AlertKind::Shock, ts);
        self.rescore(slot, lane, ts);
    }

    /// Score `slot` on lane `lane` at `ts`, and publish it if it changed materially.
    #[inline]
    fn rescore(&mut self, slot: u32, lane: usize, ts: i64) {
        let Some(sc) = self.scoring.as_deref_mut() else {
            return;
        };
        let s = &mut self.ships.slots[slot as usize];
        if s.pickup_ts == NO_TS {
            return;
        }
        let (shocks, fragile, last) = (u32::from(s.shocks), s.fragile == 1, last_score(s));
        let changed =
            sc.view(lane)
                .rescore(s.pickup_ts, ts, shocks, fragile, &last, &mut s.score_hints);
        if let Some(score) = changed {
            let key = sc.lanes[lane].key;
            self.publish_score(slot, key, ts, score, false);
        }
    }

    /// Send `score` (changed materially, or the `delivered` final one) and keep it as the last.
    #[inline]
    fn publish_score(&mut self, slot: u32, key: LaneKey, ts: i64, score: Score, delivered: bool) {
        let Some(sc) = self.scoring.as_deref_mut() else {
            return;
        };
        let s = &mut self.ships.slots[slot as usize];
        s.score_eta_min = score.eta.map_or(NO_ETA, |e| {
            u32::try_from(e.p50_ms.div_euclid(60_000)).unwrap_or(NO_ETA - 1)
        });
        s.score_delay = score.delay_risk.map_or(NONE_U8, risk_steps);
        s.score_damage = risk_steps(score.damage_risk);
        let event = ScoreEvent {
            slot,
            ts,
            carrier: key.carrier,
            origin: key.origin as u8,
            dest: key.dest as u8,
            shock_episodes: s.shocks,
            delivered,
            score,
        };
        // One record per shipment and time (its message id): a later one at the same ts wins.
        match sc.out.last_mut() {
            Some(last) if last.slot == slot && last.ts == ts => *last = event,
            _ => sc.out.push(event),
        }
    }
}
