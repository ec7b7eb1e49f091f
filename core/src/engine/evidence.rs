//! Evidence rings: the last K sensor readings of each shipment, for the metrics that threshold
//! rules watch, kept so a firing alert can lock the readings that led to it.
//!
//! Rings live in fixed chunks of 1024 (no allocation per shipment, no copy on growth). A ring is
//! `[base_lo, base_hi, len << 16 | head]` then K entries of `[ts - base as u32, f32 bits per
//! watched metric]`. Values are kept as f32 (sensor precision, ~7 significant digits) and read
//! back through their shortest decimal form, so `3.47` comes back as `3.47`.

use super::alert::Reading;
use super::core::Cols;
use super::state::NO_RING;
use crate::event::N_METRICS;

mod snapshot;

/// "Metric not watched" in [`Layout::col`].
const UNWATCHED: u8 = u8::MAX;
const HEADER: usize = 3;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Readings per ring (the largest `evidence` of any threshold rule).
    pub cap: usize,
    /// Column of each metric inside an entry, or [`UNWATCHED`].
    pub col: [u8; N_METRICS],
    /// Number of watched metrics.
    pub width: usize,
    /// The metric in each ring column (the inverse of `col`).
    pub metric_of: [u8; N_METRICS],
}

impl Layout {
    pub fn new(cap: usize, watched: [bool; N_METRICS]) -> Layout {
        let mut col = [UNWATCHED; N_METRICS];
        let mut metric_of = [UNWATCHED; N_METRICS];
        let mut width = 0;
        for (m, w) in watched.iter().enumerate() {
            if *w {
                col[m] = width as u8;
                metric_of[width] = m as u8;
                width += 1;
            }
        }
        Layout {
            cap: if width == 0 { 0 } else { cap },
            col,
            width,
            metric_of,
        }
    }

    fn entry(&self) -> usize {
        1 + self.width
    }

    /// Words per ring.
    pub fn stride(&self) -> usize {
        HEADER + self.cap * self.entry()
    }

    pub fn is_off(&self) -> bool {
        self.cap == 0
    }
}

/// Rings per chunk (a power of two).
pub const CHUNK: usize = 1024;

fn base_of(r: &[u32]) -> i64 {
    i64::from(r[0]) | (i64::from(r[1] as i32) << 32)
}

#[derive(Clone, Debug)]
pub struct Rings {
    pub layout: Layout,
    chunks: Vec<Box<[u32]>>,
    count: u32,
}

impl Rings {
    pub fn new(layout: Layout) -> Rings {
        Rings {
            layout,
            chunks: Vec::new(),
            count: 0,
        }
    }

    pub fn bytes(&self) -> usize {
        self.chunks.iter().map(|c| c.len() * 4).sum::<usize>() + self.chunks.capacity() * 16
    }

    fn ring(&self, id: u32) -> &[u32] {
        let (stride, k) = (self.layout.stride(), id as usize % CHUNK);
        &self.chunks[id as usize / CHUNK][k * stride..(k + 1) * stride]
    }

    fn ring_mut(&mut self, id: u32) -> &mut [u32] {
        let (stride, k) = (self.layout.stride(), id as usize % CHUNK);
        &mut self.chunks[id as usize / CHUNK][k * stride..(k + 1) * stride]
    }

    /// Ask for `ring`'s cache lines ahead of use.
    #[inline]
    pub fn prefetch(&self, ring: u32) {
        if ring == NO_RING || self.layout.is_off() {
            return;
        }
        let r = self.ring(ring);
        for line in r.chunks(16) {
            crate::prefetch::start(&line[0]);
        }
    }

    #[cold]
    fn alloc(&mut self, ts: i64) -> u32 {
        let id = self.count;
        self.count += 1;
        if id as usize % CHUNK == 0 {
            self.chunks
                .push(vec![0; CHUNK * self.layout.stride()].into_boxed_slice());
        }
        let r = self.ring_mut(id);
        r[0] = ts as u32;
        r[1] = (ts >> 32) as u32;
        id
    }

    /// Record one reading in `ring`, allocating the ring on first use. `value(c)` gives the
    /// value of the metric in ring column `c` (NaN when absent); see [`Layout::metric_of`].
    #[inline]
    pub fn push(&mut self, ring: &mut u32, ts: i64, value: impl Fn(usize) -> f64) {
        if self.layout.is_off() {
            return;
        }
        if *ring == NO_RING {
            *ring = self.alloc(ts);
        }
        let (cap, width) = (self.layout.cap, self.layout.width);
        let entry = width + 1;
        let layout_cap = cap;
        let r = self.ring_mut(*ring);
        let mut base = base_of(r);
        if ts - base > i64::from(u32::MAX) {
            base = rebase(r, layout_cap, entry, ts);
        }
        let (len, head) = ((r[2] >> 16) as usize, (r[2] & 0xffff) as usize);
        let delta = (ts - base) as u32;
        // An exact duplicate (at-least-once redelivery) is not a second reading.
        if len > 0 {
            let prev = if head == 0 { cap - 1 } else { head - 1 };
            let last = HEADER + prev * entry;
            if r[last] == delta
                && (0..width).all(|c| r[last + 1 + c] == (value(c) as f32).to_bits())
            {
                return;
            }
        }
        let e = HEADER + head * entry;
        r[e] = delta;
        for (c, slot) in r[e + 1..e + entry].iter_mut().enumerate() {
            *slot = (value(c) as f32).to_bits();
        }
        let head = if head + 1 == cap { 0 } else { head + 1 };
        r[2] = (((len + 1).min(cap) as u32) << 16) | head as u32;
    }

    /// Record the readings at `rows` (in order) in `ring`: the same as calling [`push`] for
    /// each row, with the ring's bookkeeping done once per run instead of once per reading.
    /// It repeats `push`'s loop body on purpose: one generic loop serving both measured ~5 %
    /// more instructions per event on the hot path (callgrind, `profile_eval 2000 4 5`).
    pub fn push_rows(&mut self, ring: &mut u32, rows: &[u32], ts: &[i64], cols: &Cols<'_>) {
        let (Some(&first), Some(&last)) = (rows.first(), rows.last()) else {
            return;
        };
        if self.layout.is_off() {
            return;
        }
        if *ring == NO_RING {
            *ring = self.alloc(ts[first as usize]);
        }
        let (cap, width) = (self.layout.cap, self.layout.width);
        let entry = width + 1;
        let r = self.ring_mut(*ring);
        let base = base_of(r);
        if ts[last as usize] - base > i64::from(u32::MAX) {
            return self.push_rows_slowly(ring, rows, ts, cols);
        }
        let (mut len, mut head) = ((r[2] >> 16) as usize, (r[2] & 0xffff) as usize);
        let newest = if head == 0 { cap - 1 } else { head - 1 };
        let mut prev = (len > 0).then_some(HEADER + newest * entry);
        for &i in rows {
            let i = i as usize;
            let delta = (ts[i] - base) as u32;
            // An exact duplicate (at-least-once redelivery) is not a second reading.
            if let Some(p) = prev {
                if r[p] == delta
                    && (0..width).all(|c| r[p + 1 + c] == (cols[c][i] as f32).to_bits())
                {
                    continue;
                }
            }
            let e = HEADER + head * entry;
            r[e] = delta;
            for c in 0..width {
                r[e + 1 + c] = (cols[c][i] as f32).to_bits();
            }
            prev = Some(e);
            head = if head + 1 == cap { 0 } else { head + 1 };
            len = (len + 1).min(cap);
        }
        r[2] = ((len as u32) << 16) | head as u32;
    }

    #[cold]
    fn push_rows_slowly(&mut self, ring: &mut u32, rows: &[u32], ts: &[i64], cols: &Cols<'_>) {
        for &i in rows {
            let i = i as usize;
            self.push(ring, ts[i], |c| cols[c][i]);
        }
    }

    /// Up to `n` of the newest readings in `ring` that carry metric `m`, oldest first.
    pub fn readings(&self, ring: u32, m: usize, n: usize) -> Vec<Reading> {
        let c = self.layout.col[m];
        if ring == NO_RING || c == UNWATCHED || n == 0 {
            return Vec::new();
        }
        let (cap, entry) = (self.layout.cap, self.layout.entry());
        let r = self.ring(ring);
        let base = base_of(r);
        let (len, head) = ((r[2] >> 16) as usize, (r[2] & 0xffff) as usize);
        let mut out = Vec::with_capacity(n.min(len));
        for k in 1..=len {
            let e = HEADER + ((head + cap - k) % cap) * entry;
            let v = f32::from_bits(r[e + 1 + c as usize]);
            if !v.is_nan() {
                out.push(Reading {
                    ts: base + i64::from(r[e]),
                    value: widen(v),
                });
                if out.len() == n {
                    break;
                }
            }
        }
        out.reverse();
        out
    }

    /// Rebuild every ring under a new layout, keeping the newest readings of metrics both
    /// layouts watch (hot reload).
    pub fn relayout(&mut self, layout: Layout, ships: &mut [super::state::Ship]) {
        if layout == self.layout {
            return;
        }
        let old = std::mem::replace(self, Rings::new(layout));
        for ship in ships.iter_mut() {
            let ring = std::mem::replace(&mut ship.ring, NO_RING);
            if ring == NO_RING || old.layout.is_off() {
                continue;
            }
            let (cap, entry) = (old.layout.cap, old.layout.entry());
            let r = old.ring(ring);
            let base = base_of(r);
            let (len, head) = ((r[2] >> 16) as usize, (r[2] & 0xffff) as usize);
            for k in (1..=len.min(self.layout.cap)).rev() {
                let e = HEADER + ((head + cap - k) % cap) * entry;
                let metric_of = self.layout.metric_of;
                let value = |c: usize| match old.layout.col[metric_of[c] as usize] {
                    UNWATCHED => f64::NAN,
                    oc => f64::from(f32::from_bits(r[e + 1 + oc as usize])),
                };
                self.push(&mut ship.ring, base + i64::from(r[e]), value);
            }
        }
    }
}

/// Move the ring's base so `ts` fits, dropping readings too old to express (> 49 days
/// before `ts`). The new base is the oldest reading kept.
#[cold]
fn rebase(r: &mut [u32], cap: usize, entry: usize, ts: i64) -> i64 {
    let old = base_of(r);
    let floor = ts - i64::from(u32::MAX);
    let (len, head) = ((r[2] >> 16) as usize, (r[2] & 0xffff) as usize);
    let slot = |k: usize| HEADER + ((head + cap - len + k) % cap) * entry;
    // Readings are oldest-first from (head - len); once one fits, the rest do too.
    let first = (0..len)
        .find(|&k| old + i64::from(r[slot(k)]) >= floor)
        .unwrap_or(len);
    let new = if first < len {
        old + i64::from(r[slot(first)])
    } else {
        ts
    };
    for k in first..len {
        let e = slot(k);
        r[e] = (old + i64::from(r[e]) - new) as u32;
    }
    r[0] = new as u32;
    r[1] = (new >> 32) as u32;
    r[2] = (((len - first) as u32) << 16) | head as u32;
    new
}

/// An f32 as the f64 with the same shortest decimal form (3.47f32 → 3.47f64, not 3.4700000286).
fn widen(v: f32) -> f64 {
    ryu::Buffer::new()
        .format_finite(v)
        .parse()
        .unwrap_or(f64::from(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(cap: usize) -> Layout {
        let mut w = [false; N_METRICS];
        w[0] = true;
        w[1] = true;
        Layout::new(cap, w)
    }

    #[test]
    fn keeps_the_newest_readings_in_order() {
        let mut rings = Rings::new(layout(4));
        let mut ring = NO_RING;
        for i in 0..10 {
            let ts = 1_000 + i;
            rings.push(&mut ring, ts, |m| {
                if m == 0 {
                    i as f64 + 0.25
                } else {
                    f64::NAN
                }
            });
        }
        let got = rings.readings(ring, 0, 16);
        let ts: Vec<i64> = got.iter().map(|r| r.ts).collect();
        assert_eq!(ts, vec![1006, 1007, 1008, 1009]);
        assert_eq!(got[3].value, 9.25);
        assert_eq!(rings.readings(ring, 0, 2).len(), 2);
        assert!(
            rings.readings(ring, 1, 16).is_empty(),
            "metric 1 was never present"
        );
        assert!(
            rings.readings(ring, 2, 16).is_empty(),
            "metric 2 is not watched"
        );
    }

    #[test]
    fn values_read_back_in_their_decimal_form() {
        let mut rings = Rings::new(layout(2));
        let mut ring = NO_RING;
        rings.push(&mut ring, 5, |_| 3.47);
        assert_eq!(rings.readings(ring, 1, 1)[0].value, 3.47);
    }

    #[test]
    fn rebases_across_long_gaps() {
        let mut rings = Rings::new(layout(3));
        let mut ring = NO_RING;
        let day = 86_400_000i64;
        rings.push(&mut ring, 0, |_| 1.0);
        rings.push(&mut ring, 30 * day, |_| 2.0);
        rings.push(&mut ring, 60 * day, |_| 3.0);
        rings.push(&mut ring, 61 * day, |_| 4.0);
        let got = rings.readings(ring, 0, 4);
        let ts: Vec<i64> = got.iter().map(|r| r.ts).collect();
        assert_eq!(
            ts,
            vec![30 * day, 60 * day, 61 * day],
            "the reading 60 days old is dropped"
        );
    }

    #[test]
    fn relayout_keeps_shared_metrics() {
        let mut rings = Rings::new(layout(4));
        let mut ships = vec![];
        let mut ring = NO_RING;
        for i in 0..6 {
            rings.push(&mut ring, i, |m| (m * 10) as f64 + i as f64);
        }
        let mut ship = super::super::state::Ships::default();
        ship.slot(b"A");
        ship.slots[0].ring = ring;
        ships.append(&mut ship.slots);
        let mut w = [false; N_METRICS];
        w[1] = true;
        rings.relayout(Layout::new(2, w), &mut ships);
        let got = rings.readings(ships[0].ring, 1, 8);
        assert_eq!(
            got.iter().map(|r| r.value).collect::<Vec<_>>(),
            vec![14.0, 15.0]
        );
    }
}
