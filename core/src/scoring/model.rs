//! Scoring many shipments fast: [`Tails`], one sketch's normalised tail sums, and [`LaneView`],
//! a lane's smoothed transit distribution read from its own tails and its carrier's.
//!
//! Reading a [`super::Transit`] walks buckets (0.2–0.5 µs a score). The mixture it reads is
//! `w·F_lane + (1−w)·F_carrier`, so its tail at bucket `i` is `w·L(i) + (1−w)·C(i)` for the
//! two sketches' tails `L` and `C`: with both kept as arrays, a delay risk is one lookup and a
//! conditional quantile one binary search over that sum. Tails change only when their sketch
//! does, so the engine rebuilds a lane's on the lane's deliveries and a carrier's (a walk over
//! up to 604 buckets) only now and then (see `engine/scoring.rs`).

use super::score::{damage_risk, materially_changed, round_i64, Eta, Score};
use super::sketch::{QuantileSketch, SketchLayout};

/// Quantile grid resolution: [`Tails`] keep the bucket of every `1/GRID` rank.
const GRID: usize = 64;
/// The grid's `GRID + 1` u16 entries, four to an `f64` slot at the start of the buffer.
const GRID_SLOTS: usize = (GRID + 1).div_ceil(4);
/// Most cache lines [`Tails::prefetch`] asks for: 2 kB, a lane whose transit times span a
/// factor of 50 (a carrier's tails, up to 4.8 kB, are few and stay in cache).
pub const PREFETCH_LINES: usize = 32;

/// A sketch's normalised tail sums: the share of its weight in buckets `lo + k..` for each `k`
/// of its window (so ≈ 1 first, and a last entry 0). Empty: no data.
///
/// Also the bucket of every `1/GRID`-th rank, so a quantile of a mixture of two `Tails` is
/// searched only between the two sides' grid brackets (a mixture's quantile lies between its
/// components'). Grid and sums share one allocation: a score's reads of a lane then start
/// from one pointer, which the engine can prefetch ([`Tails::prefetch`]).
#[derive(Clone, Debug, Default)]
pub struct Tails {
    lo: usize,
    /// [`GRID_SLOTS`] slots of packed grid, then the tail sums.
    buf: Vec<f64>,
}

impl Tails {
    /// Rebuilds from `sketch` (`None` or empty: no data), reusing the allocation.
    pub fn build(&mut self, sketch: Option<&QuantileSketch>) {
        self.buf.clear();
        let Some(s) = sketch.filter(|s| !s.is_empty()) else {
            return;
        };
        let (lo, hi) = s.window();
        let scale = 1.0 / s.total_weight();
        self.lo = lo;
        self.buf.resize(GRID_SLOTS + hi - lo + 2, 0.0);
        let mut sum = 0.0;
        let tail = &mut self.buf[GRID_SLOTS..];
        for (t, c) in tail[..=hi - lo].iter_mut().zip(&s.counts()[lo..=hi]).rev() {
            sum += c;
            *t = sum * scale;
        }
        let (total, last) = (tail[0], tail.len() - 2);
        let mut grid = [0u16; GRID_SLOTS * 4];
        let mut k = 0;
        for (g, slot) in grid.iter_mut().take(GRID + 1).enumerate() {
            let target = total - total * g as f64 / GRID as f64;
            while k < last && (tail[k + 1] > target || tail[k + 1] >= total) {
                k += 1;
            }
            *slot = (lo + k) as u16;
        }
        for (slot, g) in self.buf.iter_mut().zip(grid.chunks_exact(4)) {
            let bits = g
                .iter()
                .rev()
                .fold(0u64, |acc, &x| acc << 16 | u64::from(x));
            *slot = f64::from_bits(bits);
        }
    }

    #[inline]
    fn grid(&self, g: usize) -> usize {
        (self.buf[g / 4].to_bits() >> (16 * (g % 4)) & 0xffff) as usize
    }

    /// Buckets bracketing the first one whose cumulative share reaches `rank`.
    #[inline]
    fn bracket(&self, rank: f64) -> (usize, usize) {
        let g = ((rank * GRID as f64) as usize).min(GRID - 1);
        (self.grid(g), self.grid(g + 1))
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn heap_bytes(&self) -> usize {
        self.buf.capacity() * std::mem::size_of::<f64>()
    }

    /// Ask the CPU to load the data (up to [`PREFETCH_LINES`] cache lines: grid and sums, all
    /// of a typical lane), ahead of a score, whose binary searches would otherwise wait on
    /// each probe; never faults.
    #[inline(always)]
    pub fn prefetch(&self) {
        let bytes = self.buf.len() * std::mem::size_of::<f64>();
        crate::prefetch::lines(self.buf.as_ptr(), bytes.div_ceil(64).min(PREFETCH_LINES));
    }

    /// The tail sums (ending in 0) and the bucket of the first, as [`Side`] reads them; no
    /// data: a single 0.
    #[inline]
    fn side(&self) -> Side<'_> {
        match self.buf.get(GRID_SLOTS..) {
            Some(sums) if !sums.is_empty() => Side { sums, lo: self.lo },
            _ => Side {
                sums: &[0.0],
                lo: 0,
            },
        }
    }

    /// First and last bucket with weight (the tails must not be empty).
    fn window(&self) -> (usize, usize) {
        (self.lo, self.lo + self.buf.len() - GRID_SLOTS - 2)
    }
}

/// One side of a mixture as [`LaneView::tail`] reads it: the share of the weight in buckets
/// `i..` is `sums[i − lo]`, all of it (`sums[0]`) below `lo`, and 0 (the last entry) past the
/// window. Branch-free: the binary searches read it at every probe.
#[derive(Clone, Copy, Debug)]
struct Side<'a> {
    sums: &'a [f64],
    lo: usize,
}

impl Side<'_> {
    #[inline]
    fn at(self, i: usize) -> f64 {
        self.sums[i.saturating_sub(self.lo).min(self.sums.len() - 1)]
    }
}

/// The representative value of every bucket of `layout`: `SketchLayout::value` without its
/// `powi` on the scoring path.
pub fn bucket_values(layout: &SketchLayout) -> Vec<f64> {
    (0..layout.buckets()).map(|i| layout.value(i)).collect()
}

/// A lane's transit distribution as scores read it: `w` of the lane's tails and the rest of
/// its carrier's (exactly [`super::LaneTable::transit`]'s mixture), and the lane's SLA.
#[derive(Clone, Copy, Debug)]
pub struct LaneView<'a> {
    layout: &'a SketchLayout,
    values: &'a [f64],
    lane: &'a Tails,
    carrier: &'a Tails,
    /// The two tails' sums.
    sides: [Side<'a>; 2],
    w: f64,
    window: (usize, usize),
    sla_ms: f64,
    /// `P(T > SLA)`.
    late: f64,
}

impl<'a> LaneView<'a> {
    /// The view of `lane`'s and `carrier`'s tails mixed with lane weight `lane_weight`; a side
    /// without data gives its share to the other. `values` is [`bucket_values`] of `layout`.
    pub fn new(
        layout: &'a SketchLayout,
        values: &'a [f64],
        lane: &'a Tails,
        carrier: &'a Tails,
        lane_weight: f64,
        sla_ms: f64,
    ) -> LaneView<'a> {
        let mut v = LaneView::with_late(layout, values, lane, carrier, lane_weight, sla_ms, 0.0);
        v.late = v.survival(sla_ms);
        v
    }

    /// [`LaneView::new`] with `P(T > SLA)` already known (the [`LaneView::late`] of a view of
    /// the same parts), so a cached lane is viewed without a lookup.
    #[inline]
    pub fn with_late(
        layout: &'a SketchLayout,
        values: &'a [f64],
        lane: &'a Tails,
        carrier: &'a Tails,
        lane_weight: f64,
        sla_ms: f64,
        late: f64,
    ) -> LaneView<'a> {
        let w = match (lane.is_empty(), carrier.is_empty()) {
            (true, _) => 0.0,
            (false, true) => 1.0,
            (false, false) => lane_weight.clamp(0.0, 1.0),
        };
        let span = |t: &Tails, share: f64| {
            if share > 0.0 && !t.is_empty() {
                t.window()
            } else {
                (usize::MAX, 0)
            }
        };
        let ((a, b), (c, d)) = (span(lane, w), span(carrier, 1.0 - w));
        LaneView {
            layout,
            values,
            lane,
            carrier,
            sides: [lane.side(), carrier.side()],
            w,
            window: (a.min(c), b.max(d)),
            sla_ms,
            late,
        }
    }

    /// No transit data: no ETA, no delay risk.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.window.0 > self.window.1
    }

    /// `P(T > SLA)`, for caching a view's parts.
    pub fn late(&self) -> f64 {
        self.late
    }

    /// The mixture's weight in buckets `i..` (a side without data or share reads 0 times 0).
    #[inline]
    fn tail(&self, i: usize) -> f64 {
        let [lane, carrier] = self.sides;
        self.w * lane.at(i) + (1.0 - self.w) * carrier.at(i)
    }

    /// `P(T > x)`, interpolated in log space inside `x`'s bucket as the sketches do.
    #[inline]
    pub fn survival(&self, x: f64) -> f64 {
        self.survival_at(x).0
    }

    /// `P(T > x)` and `x`'s bucket.
    #[inline]
    fn survival_at(&self, x: f64) -> (f64, usize) {
        if self.is_empty() || x.is_nan() {
            return (0.0, 0);
        }
        let (i, frac) = self.layout.locate(x);
        if i > self.window.1 {
            return (0.0, i);
        }
        let (at, above) = (self.tail(i), self.tail(i + 1));
        ((above + (1.0 - frac) * (at - above)).clamp(0.0, 1.0), i)
    }

    /// `P(T > SLA | T > elapsed)` given `alive` = `P(T > elapsed)`, with
    /// [`super::delay_risk`]'s degenerate cases.
    #[inline]
    fn delay_given(&self, elapsed_ms: f64, alive: f64) -> Option<f64> {
        if elapsed_ms.is_nan() || elapsed_ms >= self.sla_ms {
            return Some(1.0);
        }
        if self.is_empty() {
            return None;
        }
        if alive <= 0.0 {
            return Some(1.0);
        }
        Some((self.late / alive).clamp(0.0, 1.0))
    }

    /// `P(T > SLA | T > elapsed)`.
    pub fn delay_risk(&self, elapsed_ms: f64) -> Option<f64> {
        self.delay_given(elapsed_ms, self.survival(elapsed_ms.max(0.0)))
    }

    /// The first bucket from `from` on whose cumulative mass reaches `rank` (and is
    /// positive); `from` must not be past it.
    #[inline]
    fn at_rank(&self, rank: f64, from: usize) -> usize {
        self.search_rank(rank, self.rank_range(rank, from))
    }

    /// [`LaneView::at_rank`] starting from `hint`, a bucket this rank was found in before
    /// (0: none): for a travelling shipment the ranks only grow, so the answer is usually at
    /// or a few buckets past it, and a galloping search finds it in a few probes where the
    /// bracketed one takes a dozen. A hint past the answer (the lane's data moved since) is
    /// noticed, by the bucket before it already reaching the rank, and not used.
    #[inline]
    fn at_rank_from(&self, rank: f64, from: usize, hint: u16) -> usize {
        let (lo, hi) = self.window;
        let start = usize::from(hint);
        let total = self.tail(lo);
        let past = |i: usize| self.past(i, total - rank, total);
        if start <= from.max(lo) || start > hi || !past(start - 1) {
            return self.at_rank(rank, from);
        }
        // The answer is in `a..`: probe `a`, `a + 1`, `a + 3`, `a + 7`, … up to the window's
        // end, then search the last stretch.
        let (mut a, mut step) = (start, 1);
        loop {
            let probe = (a + step - 1).min(hi);
            if !past(probe) || probe == hi {
                return self.search_rank(rank, (a, probe));
            }
            a = probe + 1;
            step *= 2;
        }
    }

    /// Whether the first bucket whose cumulative mass reaches a rank lies past bucket `i`:
    /// the tail above `i` is still above `target` (`total` less the rank), or is all of the
    /// weight (`total`, no mass yet).
    #[inline]
    fn past(&self, i: usize, target: f64, total: f64) -> bool {
        let t = self.tail(i + 1);
        t > target || t >= total
    }

    /// [`LaneView::at_rank`] within its [`LaneView::rank_range`] `(a, b)`.
    #[inline]
    fn search_rank(&self, rank: f64, (mut a, mut b): (usize, usize)) -> usize {
        let total = self.tail(self.window.0);
        let target = total - rank;
        // First i in a..=b not past.
        while a < b {
            let mid = a + (b - a) / 2;
            if self.past(mid, target, total) {
                a = mid + 1;
            } else {
                b = mid;
            }
        }
        a
    }

    /// The buckets `a..=b` that [`LaneView::at_rank`] searches: its answer lies in them.
    #[inline]
    fn rank_range(&self, rank: f64, from: usize) -> (usize, usize) {
        let (lo, hi) = self.window;
        // Between the sides' grid brackets (a side with no share does not bound it).
        let (x, y) = match (self.w > 0.0, self.w < 1.0) {
            (true, true) => {
                let ((x1, y1), (x2, y2)) = (self.lane.bracket(rank), self.carrier.bracket(rank));
                (x1.min(x2), y1.max(y2))
            }
            (true, false) => self.lane.bracket(rank),
            (false, true) => self.carrier.bracket(rank),
            (false, false) => (lo, hi),
        };
        // One bucket of slack each way for rounding between the sides' sums and the mixture's.
        let a0 = from.max(x.saturating_sub(1)).clamp(lo, hi);
        (a0, (y + 1).clamp(a0, hi))
    }

    /// The ETA given `alive` = `P(T > elapsed)` and elapsed's bucket: the ranks lie past
    /// `1 − alive`, so both searches start there, the p90's at the p50.
    #[inline]
    fn eta_given(&self, pickup_ts: i64, elapsed: f64, (alive, at): (f64, usize)) -> Option<Eta> {
        if self.is_empty() {
            return None;
        }
        let [p50, p90] = if alive <= 0.0 {
            [elapsed; 2]
        } else {
            let i50 = self.at_rank((1.0 - alive) + 0.5 * alive, at);
            let i90 = self.at_rank((1.0 - alive) + 0.9 * alive, i50);
            [i50, i90].map(|i| self.values[i].max(elapsed))
        };
        Some(Eta {
            p50_ms: pickup_ts.saturating_add(round_i64(p50)),
            p90_ms: pickup_ts.saturating_add(round_i64(p90)),
        })
    }

    /// The ETA of a shipment picked up at `pickup_ts` and still travelling at `now_ts`, as
    /// [`super::eta_after`] reads it.
    pub fn eta_after(&self, pickup_ts: i64, now_ts: i64) -> Option<Eta> {
        let elapsed = now_ts.saturating_sub(pickup_ts).max(0) as f64;
        self.eta_given(pickup_ts, elapsed, self.survival_at(elapsed))
    }

    /// A travelling shipment's score at `now_ts`: picked up at `pickup_ts` (or, if not yet,
    /// as if picked up now), with `shock_episodes` so far.
    #[inline]
    pub fn score(
        &self,
        pickup_ts: Option<i64>,
        now_ts: i64,
        shock_episodes: u32,
        fragile: bool,
    ) -> Score {
        let pickup = pickup_ts.unwrap_or(now_ts);
        let elapsed = now_ts.saturating_sub(pickup).max(0) as f64;
        let alive = self.survival_at(elapsed);
        Score {
            eta: self.eta_given(pickup, elapsed, alive),
            delay_risk: self.delay_given(elapsed, alive.0),
            damage_risk: damage_risk(shock_episodes, fragile),
        }
    }

    /// [`LaneView::score`] if it differs materially from `last` (see [`materially_changed`]),
    /// else `None`; the p90, which that test does not read, is searched only when it does.
    /// The searches for the p50 and p90 start from the buckets in `hints` (0: none) and leave
    /// their answers there: the engine keeps them per shipment, as the next rescore's are
    /// usually the same or a few buckets on. Hints change only how fast, never the answer.
    #[inline]
    pub fn rescore(
        &self,
        pickup_ts: i64,
        now_ts: i64,
        shock_episodes: u32,
        fragile: bool,
        last: &Score,
        hints: &mut [u16; 2],
    ) -> Option<Score> {
        let elapsed = now_ts.saturating_sub(pickup_ts).max(0) as f64;
        let (alive, at) = self.survival_at(elapsed);
        let ms = |t: f64| pickup_ts.saturating_add(round_i64(t));
        let eta = |p50: f64, p90: f64| {
            Some(Eta {
                p50_ms: ms(p50),
                p90_ms: ms(p90),
            })
        };
        let mut score = Score {
            eta: None,
            delay_risk: self.delay_given(elapsed, alive),
            damage_risk: damage_risk(shock_episodes, fragile),
        };
        // As `eta_given`, the p90 searched only once the p50 (all the test reads) has moved.
        match (self.is_empty(), alive <= 0.0) {
            (true, _) => {}
            (false, true) => score.eta = eta(elapsed, elapsed),
            (false, false) => {
                let i50 = self.at_rank_from((1.0 - alive) + 0.5 * alive, at, hints[0]);
                hints[0] = u16::try_from(i50).unwrap_or(0);
                let p50 = self.values[i50].max(elapsed);
                score.eta = eta(p50, p50);
                if !materially_changed(last, &score, now_ts) {
                    return None;
                }
                let i90 = self.at_rank_from((1.0 - alive) + 0.9 * alive, i50, hints[1]);
                hints[1] = u16::try_from(i90).unwrap_or(0);
                score.eta = eta(p50, self.values[i90].max(elapsed));
                return Some(score);
            }
        }
        materially_changed(last, &score, now_ts).then_some(score)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scoring::testing::TestRng;
    use crate::scoring::{delay_risk, eta_after, LaneKey, LaneTable, ScoringConfig};

    const H: i64 = 3_600_000;

    fn table() -> LaneTable {
        let mut t = LaneTable::new(ScoringConfig::default()).unwrap();
        let mut rng = TestRng::new(7);
        for i in 0..400 {
            let (lane, median) = match i % 4 {
                0 => (LaneKey::new(1, 31, 11), 30.0),
                1 => (LaneKey::new(1, 31, 44), 60.0),
                2 => (LaneKey::new(1, 44, 65), 90.0),
                _ => (LaneKey::new(2, 31, 11), 20.0),
            };
            if i > 380 && lane.dest == 11 {
                continue;
            }
            let pickup = i64::from(i) * H;
            let transit = rng.log_normal(median * H as f64, 0.4) as i64;
            t.on_picked_up(lane, pickup);
            t.on_delivered(lane, pickup, pickup + transit, 72 * H);
        }
        t
    }

    /// The view of `key` in `t`, built as the engine does.
    fn with_view<R>(t: &LaneTable, key: LaneKey, f: impl FnOnce(LaneView<'_>) -> R) -> R {
        let layout = *t.get(LaneKey::carrier_wide(1)).unwrap().transit.layout();
        let values = bucket_values(&layout);
        let (mut lane, mut carrier) = (Tails::default(), Tails::default());
        let stats = t.get(key);
        lane.build(stats.map(|s| &s.transit));
        carrier.build(
            t.get(LaneKey::carrier_wide(key.carrier))
                .map(|s| &s.transit),
        );
        let w = t.lane_weight(key);
        let sla = t.sla_ms(key.carrier) as f64;
        f(LaneView::new(&layout, &values, &lane, &carrier, w, sla))
    }

    #[test]
    fn matches_the_transit_walks() {
        let t = table();
        for key in [
            LaneKey::new(1, 31, 11),
            LaneKey::new(1, 44, 65),
            LaneKey::new(1, 50, 51),
            LaneKey::carrier_wide(1),
            LaneKey::new(2, 31, 11),
        ] {
            let tr = t.transit(key);
            with_view(&t, key, |m| {
                for h in [0, 1, 10, 24, 40, 60, 71, 80, 200, 5_000] {
                    let e = (h * H) as f64;
                    let want = delay_risk(e, 72.0 * H as f64, tr).unwrap();
                    let got = m.delay_risk(e).unwrap();
                    assert!((got - want).abs() < 1e-9, "{key:?} {h} h: {got} vs {want}");
                    assert!((m.survival(e) - tr.survival(e)).abs() < 1e-9);
                    let (want, got) = (eta_after(0, h * H, tr).unwrap(), m.eta_after(0, h * H));
                    assert_eq!(got, Some(want), "{key:?} {h} h");
                }
            });
        }
        // A carrier without deliveries: no data.
        with_view(&t, LaneKey::new(3, 31, 11), |m| {
            assert!(m.is_empty() && m.eta_after(0, 0).is_none());
            assert_eq!(m.delay_risk(H as f64), None);
            assert_eq!(m.delay_risk(80.0 * H as f64), Some(1.0));
            let s = m.score(None, 0, 1, true);
            assert_eq!((s.eta, s.delay_risk), (None, None));
            assert!(s.damage_risk > 0.1);
        });
    }

    /// A hinted search gives the bracketed search's answer whatever the hint: at it, before
    /// it, past it, or out of the window.
    #[test]
    fn hinted_searches_find_the_same_buckets() {
        let t = table();
        let mut rng = TestRng::new(5);
        let mut used = 0;
        for key in [
            LaneKey::new(1, 31, 11),
            LaneKey::new(1, 44, 65),
            LaneKey::new(1, 50, 51),
            LaneKey::new(2, 31, 11),
        ] {
            with_view(&t, key, |m| {
                let (lo, hi) = m.window;
                for _ in 0..3_000 {
                    let rank = rng.unit();
                    let from = lo + (rng.unit() * (hi - lo) as f64) as usize;
                    let want = m.at_rank(rank, from);
                    let near = want as f64 + (rng.unit() - 0.7) * 40.0;
                    for hint in [0.0, near, want as f64, (hi + 5) as f64, rng.unit() * 700.0] {
                        let hint = hint.clamp(0.0, 65_535.0) as u16;
                        assert_eq!(
                            m.at_rank_from(rank, from, hint),
                            want,
                            "{key:?} {rank} {from} {hint}"
                        );
                        used += usize::from(usize::from(hint) > from && usize::from(hint) <= want);
                    }
                }
            });
        }
        assert!(used > 1_000, "{used}");
    }

    #[test]
    fn scores_before_pickup_count_from_now() {
        let t = table();
        with_view(&t, LaneKey::new(1, 31, 44), |m| {
            let now = 1_000 * H;
            let s = m.score(None, now, 0, false);
            let eta = s.eta.unwrap();
            assert!(((eta.p50_ms - now) as f64 / (60.0 * H as f64) - 1.0).abs() < 0.2);
            assert_eq!(s.delay_risk, m.delay_risk(0.0));
            let later = m.score(Some(now - 70 * H), now, 0, false);
            assert!(later.delay_risk.unwrap() > s.delay_risk.unwrap());
            assert!(later.eta.unwrap().p50_ms >= now);
            assert_eq!(later.eta, m.eta_after(now - 70 * H, now));
            // Only a material change comes back, and then whole.
            let pickup = now - 70 * H;
            assert_eq!(m.rescore(pickup, now, 0, false, &later, &mut [0; 2]), None);
            let stale = Score {
                delay_risk: Some(0.0),
                ..later
            };
            assert_eq!(
                m.rescore(pickup, now, 0, false, &stale, &mut [0; 2]),
                Some(later)
            );
            let first = m.rescore(pickup, now, 0, false, &Score::default(), &mut [0; 2]);
            assert_eq!(first, Some(later));
        });
    }
}
