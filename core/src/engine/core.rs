//! The evaluation core: keyed state plus the per-event loop, in input order.
//!
//! Output equals processing one event at a time in input order, whatever the batch boundaries:
//! nothing here depends on where a batch starts except two caches that only skip work (the
//! previous row's shipment slot and the columnar breach pre-pass).

use super::alert::{Alert, AlertState, Evidence};
use super::evidence::{Layout, Rings};
use super::state::{Interner, Ship, Ships};
use crate::event::{BatchView, Kind, Metric, NONE_U8, N_METRICS};
use crate::rules::{Filter, Op, Rule, RuleKind, RuleSet, Severity};
use std::sync::Arc;

/// A rule's `where`, with carriers interned.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct CFilter {
    pub any: bool,
    pub carriers: Option<Vec<u16>>,
    pub tiers: Option<u8>,
    pub fragile: Option<bool>,
}

impl CFilter {
    fn compile(f: &Filter, carriers: &mut Interner) -> CFilter {
        CFilter {
            any: f.is_empty(),
            carriers: f.carrier.as_ref().map(|cs| {
                cs.iter()
                    .map(|c| carrier_id(carriers, c.as_bytes()))
                    .collect()
            }),
            tiers: f.tier,
            fragile: f.fragile,
        }
    }

    #[inline]
    pub fn matches(&self, s: &Ship) -> bool {
        if self.any {
            return true;
        }
        if !s.attrs_known {
            return false;
        }
        if let Some(cs) = &self.carriers {
            if s.attr_carrier == 0 || !cs.contains(&s.attr_carrier) {
                return false;
            }
        }
        if let Some(t) = self.tiers {
            if s.tier == NONE_U8 || t & (1 << s.tier) == 0 {
                return false;
            }
        }
        if let Some(f) = self.fragile {
            if s.fragile != u8::from(f) {
                return false;
            }
        }
        true
    }
}

/// Carrier codes as u16; past 65 535 distinct carriers the rest read as unknown.
pub(super) fn carrier_id(carriers: &mut Interner, code: &[u8]) -> u16 {
    u16::try_from(carriers.id(code)).unwrap_or(0)
}

/// What every alert of one rule shares.
#[derive(Clone, Debug)]
pub(super) struct Head {
    pub id: Arc<str>,
    pub severity: Severity,
    pub filter: CFilter,
    /// The rule as written, for hot reload's "unchanged" test.
    pub source: Rule,
}

#[derive(Clone, Debug)]
pub(super) struct ThrRule {
    pub head: Head,
    pub metric: usize,
    pub op: Op,
    pub value: f64,
    pub clear: f64,
    pub for_ms: i64,
    pub evidence: usize,
}

impl ThrRule {
    pub fn metric(&self) -> Metric {
        Metric::ALL[self.metric]
    }
}

#[derive(Clone, Debug)]
pub(super) struct DwellRule {
    pub head: Head,
    pub for_ms: i64,
    pub statuses: u16,
}

/// A non-idle threshold episode.
#[derive(Clone, Copy, Debug)]
pub(super) struct Episode {
    pub firing: bool,
    pub start: i64,
    pub peak: f64,
}

#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Counters {
    pub accepted: u64,
    pub out_of_order: u64,
    pub fired: u64,
    pub resolved: u64,
    pub retracted: u64,
}

pub(super) struct Core {
    pub set: Arc<RuleSet>,
    pub thr: Vec<ThrRule>,
    pub dwell: Vec<DwellRule>,
    pub ships: Ships,
    pub carriers: Interner,
    pub locations: Interner,
    /// Non-idle threshold episodes by `slot << 8 | threshold index`.
    pub episodes: hashbrown::HashMap<u64, Episode, foldhash::fast::FixedState>,
    pub rings: Rings,
    pub timers: super::timers::Timers,
    pub max_scan_ts: i64,
    pub watermark: i64,
    pub n: Counters,
    /// Lane statistics and scores; `None` when scoring is off.
    pub scoring: Option<Box<super::scoring::Scoring>>,
    /// Pre-pass result: non-zero = row i may breach some threshold rule.
    breach: Vec<u8>,
    /// Accepted rows of the current sensor run (scratch).
    run_rows: Vec<u32>,
    /// Runs of the current batch (scratch).
    runs: Vec<Run>,
    /// Ring columns that need materialising: Arrow nulls or absent metrics as NaN (scratch).
    ring_fill: Vec<Vec<f64>>,
}

/// The watched metrics of a batch in ring-column order, one plain slice each (NaN = absent).
pub(super) type Cols<'a> = [&'a [f64]; N_METRICS];

/// Borrow each watched metric column as a plain slice. Columns with Arrow nulls, and metrics
/// the batch lacks, are materialised once per batch into `fill` so the per-row read is one load.
fn ring_columns<'a>(
    v: &BatchView<'a>,
    metric_of: &[u8; N_METRICS],
    width: usize,
    fill: &'a mut Vec<Vec<f64>>,
) -> Cols<'a> {
    fill.resize_with(N_METRICS, Vec::new);
    let mut cols: Cols<'a> = [&[]; N_METRICS];
    let mut owned = [false; N_METRICS];
    for c in 0..width {
        match v.metrics[metric_of[c] as usize] {
            Some(col) if col.valid.is_none() => cols[c] = &col.values[..v.len],
            col => {
                let buf = &mut fill[c];
                buf.clear();
                match col {
                    Some(col) => buf.extend((0..v.len).map(|i| col.get(i))),
                    None => buf.resize(v.len, f64::NAN),
                }
                owned[c] = true;
            }
        }
    }
    let fill: &'a Vec<Vec<f64>> = fill;
    for c in (0..width).filter(|&c| owned[c]) {
        cols[c] = &fill[c];
    }
    cols
}

/// Consecutive valid rows `start..end` of one shipment.
#[derive(Clone, Copy, Debug)]
pub(super) struct Run {
    start: u32,
    end: u32,
    slot: u32,
}

#[inline]
pub(super) fn episode_key(slot: u32, rule: usize) -> u64 {
    (u64::from(slot) << 8) | rule as u64
}

impl Core {
    pub fn new(set: RuleSet) -> Core {
        let mut core = Core {
            set: Arc::new(RuleSet::empty()),
            thr: Vec::new(),
            dwell: Vec::new(),
            ships: Ships::default(),
            carriers: Interner::default(),
            locations: Interner::default(),
            episodes: Default::default(),
            rings: Rings::new(Layout::new(0, [false; N_METRICS])),
            timers: Default::default(),
            max_scan_ts: i64::MIN,
            watermark: i64::MIN,
            n: Counters::default(),
            scoring: None,
            breach: Vec::new(),
            run_rows: Vec::new(),
            runs: Vec::new(),
            ring_fill: Vec::new(),
        };
        core.install(set);
        core
    }

    /// Compile `set` into the rule tables (no state change; see `reload` for that).
    pub(super) fn compile(&mut self, set: &RuleSet) -> (Vec<ThrRule>, Vec<DwellRule>, Layout) {
        let mut thr = Vec::new();
        let mut dwell = Vec::new();
        let mut watched = [false; N_METRICS];
        let mut cap = 0;
        for r in &set.rules {
            let head = Head {
                id: r.id.clone(),
                severity: r.severity,
                filter: CFilter::compile(&r.filter, &mut self.carriers),
                source: r.clone(),
            };
            match &r.body {
                crate::rules::RuleBody::Threshold(t) => {
                    watched[t.metric as usize] = true;
                    cap = cap.max(t.evidence as usize);
                    thr.push(ThrRule {
                        head,
                        metric: t.metric as usize,
                        op: t.op,
                        value: t.value,
                        clear: t.clear,
                        for_ms: t.for_ms,
                        evidence: t.evidence as usize,
                    });
                }
                crate::rules::RuleBody::Dwell(d) => dwell.push(DwellRule {
                    head,
                    for_ms: d.for_ms,
                    statuses: d.statuses,
                }),
            }
        }
        (thr, dwell, Layout::new(cap, watched))
    }

    pub fn bytes(&self) -> usize {
        self.ships.bytes()
            + self.rings.bytes()
            + self.episodes.capacity() * (8 + std::mem::size_of::<Episode>() + 1)
            + self.timers.bytes()
            + self.carriers.bytes()
            + self.locations.bytes()
    }

    /// Evaluate every row of `v` in order; alerts are appended to `out` as produced.
    pub fn process(&mut self, v: &BatchView<'_>, out: &mut Vec<Alert>) {
        if !self.thr.is_empty() {
            self.prepass(v);
        }
        self.resolve_runs(v);
        let runs = std::mem::take(&mut self.runs);
        let mut fill = std::mem::take(&mut self.ring_fill);
        let cols = ring_columns(
            v,
            &self.rings.layout.metric_of,
            self.rings.layout.width,
            &mut fill,
        );
        for (k, run) in runs.iter().enumerate() {
            // The state of runs ahead is likely out of cache at scale: ask for it early.
            if let Some(ahead) = runs.get(k + 4) {
                crate::prefetch::start(&self.ships.slots[ahead.slot as usize]);
            }
            if let Some(ahead) = runs.get(k + 2) {
                let ship = &self.ships.slots[ahead.slot as usize];
                self.rings.prefetch(ship.ring);
                // A scan will be scored: its lane's tails are likely out of cache.
                if let Some(sc) = &self.scoring {
                    if v.kind.get(ahead.start as usize) == Kind::Scan as u8 {
                        sc.prefetch(ship);
                    }
                }
            }
            self.process_run(v, &cols, run, out);
        }
        self.runs = runs;
        self.ring_fill = fill;
    }

    /// Split `v` into runs of consecutive valid rows of one shipment and find each run's
    /// slot. The lookups are independent of each other, so their cache misses overlap.
    /// Slots are created in first-seen order, as a row-at-a-time pass would.
    fn resolve_runs(&mut self, v: &BatchView<'_>) {
        self.runs.clear();
        let mut i = 0;
        while i < v.len {
            if v.rejected.is_some_and(|r| r[i] != 0) {
                i += 1;
                continue;
            }
            let key = v.shipment.get(i);
            let mut end = i + 1;
            while end < v.len
                && v.rejected.is_none_or(|r| r[end] == 0)
                && same_key(v.shipment.get(end), key)
            {
                end += 1;
            }
            let slot = self.ships.slot(key);
            self.runs.push(Run {
                start: i as u32,
                end: end as u32,
                slot,
            });
            i = end;
        }
    }

    fn process_run(&mut self, v: &BatchView<'_>, cols: &Cols<'_>, run: &Run, out: &mut Vec<Alert>) {
        let (mut i, end, slot) = (run.start as usize, run.end as usize, run.slot);
        while i < end {
            let ts = v.ts[i];
            match Kind::from_u8(v.kind.get(i)) {
                Some(Kind::Sensor) => {
                    let mut stop = i + 1;
                    while stop < end && v.kind.get(stop) == Kind::Sensor as u8 {
                        stop += 1;
                    }
                    self.on_sensor_run(v, cols, i, stop, slot, out);
                    i = stop;
                    continue;
                }
                Some(Kind::Scan) => self.on_scan(v, i, slot, ts, out),
                Some(Kind::Shipment) => self.on_shipment(v, i, slot, ts),
                // Decoders hand out only the three kinds.
                None => {}
            }
            i += 1;
        }
    }

    /// Columnar pass: for each threshold rule, compare its metric column against the limit
    /// and OR the results into one byte per row (a layout the compiler vectorises). A row with
    /// no mark and no active episode needs no rule work. Absent values are NaN and compare
    /// false; Arrow nulls may leave a mark, which only costs a check.
    fn prepass(&mut self, v: &BatchView<'_>) {
        self.breach.clear();
        self.breach.resize(v.len, 0);
        for t in &self.thr {
            let Some(col) = v.metrics[t.metric] else {
                continue;
            };
            let vals = &col.values[..v.len];
            let limit = t.value;
            match t.op {
                Op::Gt => or_marks(&mut self.breach, vals, |x| x > limit),
                Op::Ge => or_marks(&mut self.breach, vals, |x| x >= limit),
                Op::Lt => or_marks(&mut self.breach, vals, |x| x < limit),
                Op::Le => or_marks(&mut self.breach, vals, |x| x <= limit),
            }
        }
    }

    fn on_shipment(&mut self, v: &BatchView<'_>, i: usize, slot: u32, ts: i64) {
        let kind = Kind::Shipment as usize;
        if ts < self.ships.slots[slot as usize].last_ts[kind] {
            self.n.out_of_order += 1;
            return;
        }
        self.n.accepted += 1;
        let carrier = v
            .carrier
            .map_or(0, |c| carrier_id(&mut self.carriers, c.get(i)));
        let s = &mut self.ships.slots[slot as usize];
        s.last_ts[kind] = ts;
        s.attrs_known = true;
        s.attr_carrier = carrier;
        if carrier != 0 {
            s.seen_carrier = carrier;
        }
        s.tier = v.tier.map_or(NONE_U8, |t| t[i]);
        s.fragile = v.fragile.map_or(NONE_U8, |f| f[i]);
        self.lane_attributes(v, i, slot);
    }

    /// Sensor rows `start..end` of one shipment. When no row can breach a rule and no episode
    /// is open, rule state cannot change: only the order check and the evidence ring remain,
    /// and of the ring only the last `cap` readings survive, so only those are written.
    fn on_sensor_run(
        &mut self,
        v: &BatchView<'_>,
        cols: &Cols<'_>,
        start: usize,
        end: usize,
        slot: u32,
        out: &mut Vec<Alert>,
    ) {
        let kind = Kind::Sensor as usize;
        let quiet = self.thr.is_empty()
            || (self.ships.slots[slot as usize].thr_active == 0
                && self.breach[start..end].iter().all(|&b| b == 0));
        if !quiet {
            for i in start..end {
                self.on_sensor(v, cols, i, slot, out);
            }
            return;
        }
        let s = &mut self.ships.slots[slot as usize];
        let mut last = s.last_ts[kind];
        self.run_rows.clear();
        for (i, &ts) in v.ts[start..end].iter().enumerate() {
            if ts < last {
                self.n.out_of_order += 1;
                continue;
            }
            last = ts;
            self.run_rows.push((start + i) as u32);
        }
        s.last_ts[kind] = last;
        self.n.accepted += self.run_rows.len() as u64;
        if self.rings.layout.is_off() {
            return;
        }
        let width = self.rings.layout.width;
        let value = |c: usize, i: usize| cols[c][i];
        // Walk back to the first row whose reading can still be in the ring; exact duplicates
        // of the previous row take no place in it.
        let rows = &self.run_rows;
        let mut first = rows.len();
        let mut kept = 0;
        while first > 0 && kept < self.rings.layout.cap {
            first -= 1;
            let (i, p) = (rows[first] as usize, rows[first.saturating_sub(1)] as usize);
            let dup = first > 0
                && v.ts[i] == v.ts[p]
                && (0..width).all(|c| value(c, i).to_bits() == value(c, p).to_bits());
            kept += usize::from(!dup);
        }
        self.rings
            .push_rows(&mut s.ring, &rows[first..], v.ts, cols);
    }

    fn on_sensor(
        &mut self,
        v: &BatchView<'_>,
        cols: &Cols<'_>,
        i: usize,
        slot: u32,
        out: &mut Vec<Alert>,
    ) {
        let kind = Kind::Sensor as usize;
        let ts = v.ts[i];
        let s = &mut self.ships.slots[slot as usize];
        if ts < s.last_ts[kind] {
            self.n.out_of_order += 1;
            return;
        }
        self.n.accepted += 1;
        s.last_ts[kind] = ts;
        self.rings.push(&mut s.ring, ts, |c| cols[c][i]);
        if self.breach[i] != 0 || s.thr_active != 0 {
            self.eval_thresholds(v, i, slot, ts, out);
        }
    }

    /// The alert fields every record of rule `head` on `slot` shares.
    pub(super) fn alert(
        &self,
        head: &Head,
        kind: RuleKind,
        slot: u32,
        start: i64,
        state: AlertState,
        ts: i64,
    ) -> Alert {
        // Keys are validated printable ASCII, so the lossy path never runs.
        let key = self.ships.key(slot);
        let shipment = match std::str::from_utf8(key) {
            Ok(k) => k.to_owned(),
            Err(_) => String::from_utf8_lossy(key).into_owned(),
        };
        let s = &self.ships.slots[slot as usize];
        let carrier = match (s.seen_carrier, s.attr_carrier) {
            (0, 0) => None,
            (0, c) | (c, _) => Some(self.carriers.name(u32::from(c)).clone()),
        };
        let mut id = String::with_capacity(head.id.len() + shipment.len() + 22);
        id.push_str(&head.id);
        id.push(':');
        id.push_str(&shipment);
        id.push(':');
        id.push_str(itoa::Buffer::new().format(start));
        Alert {
            id,
            rule: head.id.clone(),
            kind,
            severity: head.severity,
            state,
            shipment,
            carrier,
            ts,
            started_ts: start,
            metric: None,
            value: None,
            threshold: None,
            peak: None,
            duration_ms: None,
            evidence: Evidence::None,
        }
    }
}

#[inline]
fn or_marks(marks: &mut [u8], vals: &[f64], test: impl Fn(f64) -> bool) {
    for (m, &x) in marks.iter_mut().zip(vals) {
        *m |= u8::from(test(x));
    }
}

/// Shipment keys are short (≤ 64 bytes, typically 12–16): compare inline, not via `bcmp`.
#[inline(always)]
pub(super) fn same_key(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    if a.len() >= 8 {
        let head = |s: &[u8]| u64::from_ne_bytes(s[..8].try_into().unwrap_or([0; 8]));
        let tail = |s: &[u8]| u64::from_ne_bytes(s[s.len() - 8..].try_into().unwrap_or([0; 8]));
        if a.len() <= 16 {
            return head(a) == head(b) && tail(a) == tail(b);
        }
        return head(a) == head(b) && a == b;
    }
    a == b
}
