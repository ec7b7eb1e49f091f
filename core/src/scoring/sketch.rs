//! [`QuantileSketch`]: a mergeable relative-error quantile sketch (DDSketch, Masson, Rim and
//! Lee, VLDB 2019) over durations in milliseconds, with `f64` weights so forward-decayed
//! observations ([`super::decay`]) fit.
//!
//! Bucket `i ≥ 1` holds `(MIN·γ^(i−1), MIN·γ^i]` with `γ = (1+α)/(1−α)`; its representative
//! `2·MIN·γ^i/(γ+1)` is within relative error α of every value in it, so a quantile whose rank
//! falls in the right bucket is within α of the true one. The range is fixed, 1 minute (bucket
//! 0, which also takes anything smaller) to 120 days (the last bucket, which also takes anything
//! larger; both clamps are counted), so every sketch of a layout has the same buckets and
//! merging is adding arrays. At α = 1 % that is 604 buckets, 4,832 bytes.
//!
//! Counts are `f64`, not `f32`. An increment is rounded relative to the bucket it lands in, and
//! with a 14-day half-life a busy carrier-wide bucket holds 10^5–10^7 current-weight
//! observations: `f32`'s 24-bit mantissa would round each new one by up to 0.6 %–60 % of itself
//! there (and drop it entirely past 2^24), biasing ranks. Halving 4.8 kB per lane is not worth
//! that: the engine keeps ~130 bytes per shipment, so 2,000 lanes cost what 75,000 shipments
//! do. (α = 2 % would halve it instead, at 303 buckets, if lanes ever multiply.)

/// Lower end of the bucket range: 1 minute.
pub const MIN_MS: f64 = 60_000.0;
/// Upper end of the bucket range: 120 days.
pub const MAX_MS: f64 = 120.0 * 86_400_000.0;
/// Default relative accuracy: 1 %, so p50/p90 carry at most 1 % of the 5 % error budget.
pub const DEFAULT_ALPHA: f64 = 0.01;

/// The bucket geometry for a relative accuracy α; sketches merge only with equal layouts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SketchLayout {
    alpha: f64,
    gamma: f64,
    inv_ln_gamma: f64,
    ln_min: f64,
    last: usize,
}

impl SketchLayout {
    /// The layout for relative accuracy `alpha`, in `[0.001, 0.2]` (~6,000 to ~30 buckets).
    pub fn new(alpha: f64) -> Option<SketchLayout> {
        if !(0.001..=0.2).contains(&alpha) {
            return None;
        }
        let gamma = (1.0 + alpha) / (1.0 - alpha);
        let inv_ln_gamma = 1.0 / gamma.ln();
        let ln_min = MIN_MS.ln();
        let last = ((MAX_MS.ln() - ln_min) * inv_ln_gamma).ceil() as usize;
        Some(SketchLayout {
            alpha,
            gamma,
            inv_ln_gamma,
            ln_min,
            last,
        })
    }

    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    /// Number of buckets.
    pub fn buckets(&self) -> usize {
        self.last + 1
    }

    /// Continuous bucket position of `x > 0`: bucket `ceil(pos)`, clamped to the range.
    #[inline]
    fn pos(&self, x: f64) -> f64 {
        (x.ln() - self.ln_min) * self.inv_ln_gamma
    }

    /// The bucket of `x` (NaN and non-positive values go to bucket 0).
    #[inline]
    pub(super) fn index(&self, x: f64) -> usize {
        if x.is_nan() || x <= MIN_MS {
            return 0;
        }
        self.bucket_at(self.pos(x))
    }

    /// The bucket of continuous position `pos` ([`Self::pos`] of a value above `MIN_MS`).
    #[inline]
    fn bucket_at(&self, pos: f64) -> usize {
        let k = pos.ceil();
        if k >= self.last as f64 {
            self.last
        } else {
            k as usize
        }
    }

    /// Bucket `i` and the fraction of its log-width that lies at or below `x` (0..=1).
    #[inline]
    pub(super) fn locate(&self, x: f64) -> (usize, f64) {
        // `index` and the fraction from one logarithm (scores call this per rescore).
        if x.is_nan() || x <= 0.0 {
            return (0, 0.0);
        }
        let pos = self.pos(x);
        let i = if x <= MIN_MS { 0 } else { self.bucket_at(pos) };
        (i, (pos - (i as f64 - 1.0)).clamp(0.0, 1.0))
    }

    /// The value reported for bucket `i`: within α of every value in its range.
    #[inline]
    pub(super) fn value(&self, i: usize) -> f64 {
        2.0 * MIN_MS * self.gamma.powi(i as i32) / (self.gamma + 1.0)
    }
}

impl Default for SketchLayout {
    fn default() -> SketchLayout {
        SketchLayout::new(DEFAULT_ALPHA).expect("the default α is in range")
    }
}

/// Weighted durations in fixed logarithmic buckets. Updates never allocate.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantileSketch {
    counts: Box<[f64]>,
    total: f64,
    /// Weight of values below [`MIN_MS`] (counted in bucket 0).
    clamped_low: f64,
    /// Weight of values above [`MAX_MS`] (counted in the last bucket).
    clamped_high: f64,
    /// Buckets ever written are within `lo..=hi` (`lo > hi`: none), so walks skip the rest.
    lo: u16,
    hi: u16,
    layout: SketchLayout,
}

impl Default for QuantileSketch {
    fn default() -> QuantileSketch {
        QuantileSketch::new(SketchLayout::default())
    }
}

impl QuantileSketch {
    /// An empty sketch: the one allocation of its life.
    pub fn new(layout: SketchLayout) -> QuantileSketch {
        QuantileSketch {
            counts: vec![0.0; layout.buckets()].into_boxed_slice(),
            total: 0.0,
            clamped_low: 0.0,
            clamped_high: 0.0,
            lo: u16::MAX,
            hi: 0,
            layout,
        }
    }

    pub fn layout(&self) -> &SketchLayout {
        &self.layout
    }

    /// Adds `value_ms` with `weight`. NaN values and weights that are not finite and positive
    /// are ignored; values outside [`MIN_MS`, `MAX_MS`] go to the end buckets and are counted.
    #[inline]
    pub fn insert(&mut self, value_ms: f64, weight: f64) {
        if value_ms.is_nan() || !(weight > 0.0 && weight < f64::INFINITY) {
            return;
        }
        let i = self.layout.index(value_ms);
        self.counts[i] += weight;
        self.total += weight;
        if value_ms < MIN_MS {
            self.clamped_low += weight;
        } else if value_ms > MAX_MS {
            self.clamped_high += weight;
        }
        self.lo = self.lo.min(i as u16);
        self.hi = self.hi.max(i as u16);
    }

    pub fn total_weight(&self) -> f64 {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total <= 0.0
    }

    /// Weights of the values clamped into the first and last buckets.
    pub fn clamped(&self) -> (f64, f64) {
        (self.clamped_low, self.clamped_high)
    }

    /// The weighted `q`-quantile (`q` clamped to 0..=1) within relative error α, or `None` if
    /// the sketch is empty or `q` is NaN.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        self.quantiles([q]).map(|[v]| v)
    }

    /// Several quantiles in one walk over the buckets.
    pub fn quantiles<const N: usize>(&self, qs: [f64; N]) -> Option<[f64; N]> {
        if self.is_empty() {
            return None;
        }
        walk_quantiles(
            &self.layout,
            self.window(),
            |i| self.counts[i],
            self.total,
            qs,
        )
    }

    /// Weighted fraction of the values at or below `x` (0 when empty), interpolated in log
    /// space inside `x`'s bucket: between the exact fractions at `x/γ` and `x·γ`.
    pub fn cdf(&self, x: f64) -> f64 {
        if self.is_empty() || x.is_nan() {
            return 0.0;
        }
        let (above, _) = weight_above(&self.layout, self.window(), |i| self.counts[i], x, x);
        (1.0 - above / self.total).clamp(0.0, 1.0)
    }

    /// Adds `other`'s weights. Panics if the layouts differ (a programming error: every sketch
    /// of a table shares one layout).
    pub fn merge(&mut self, other: &QuantileSketch) {
        self.merge_scaled(other, 1.0);
    }

    /// Adds `other`'s weights multiplied by `factor` (aligning decay landmarks).
    pub(super) fn merge_scaled(&mut self, other: &QuantileSketch, factor: f64) {
        assert_eq!(
            self.layout, other.layout,
            "merging sketches of different layouts"
        );
        let (lo, hi) = other.window();
        if lo > hi {
            return;
        }
        for (a, b) in self.counts[lo..=hi].iter_mut().zip(&other.counts[lo..=hi]) {
            *a += b * factor;
        }
        self.total += other.total * factor;
        self.clamped_low += other.clamped_low * factor;
        self.clamped_high += other.clamped_high * factor;
        self.lo = self.lo.min(other.lo);
        self.hi = self.hi.max(other.hi);
    }

    /// Multiplies every weight by `factor` (finite, ≥ 0); weights that become subnormal are
    /// flushed to zero, as arithmetic on them is slow and they no longer matter.
    pub fn scale(&mut self, factor: f64) {
        let (lo, hi) = self.window();
        if lo <= hi {
            self.counts[lo..=hi]
                .iter_mut()
                .for_each(|c| *c = flush(*c * factor));
        }
        self.total = flush(self.total * factor);
        self.clamped_low = flush(self.clamped_low * factor);
        self.clamped_high = flush(self.clamped_high * factor);
    }

    /// Heap bytes held (the counts).
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.counts)
    }

    /// The written bucket range, `lo > hi` when none.
    #[inline]
    pub(super) fn window(&self) -> (usize, usize) {
        (usize::from(self.lo), usize::from(self.hi))
    }

    pub(super) fn counts(&self) -> &[f64] {
        &self.counts
    }

    /// Rebuilds a sketch from its parts (the decoder validated them).
    pub(super) fn from_parts(
        layout: SketchLayout,
        window: (u16, u16),
        counts: &[f64],
        totals: [f64; 3],
    ) -> QuantileSketch {
        let mut s = QuantileSketch::new(layout);
        let (lo, hi) = window;
        if lo <= hi {
            s.counts[usize::from(lo)..=usize::from(hi)].copy_from_slice(counts);
            (s.lo, s.hi) = window;
        }
        [s.total, s.clamped_low, s.clamped_high] = totals;
        s
    }

    pub(super) fn totals(&self) -> [f64; 3] {
        [self.total, self.clamped_low, self.clamped_high]
    }
}

#[inline]
fn flush(v: f64) -> f64 {
    if v < f64::MIN_POSITIVE {
        0.0
    } else {
        v
    }
}

/// Lower weighted quantiles of a bucket mass function: for each `q`, the value of the first
/// bucket whose cumulative mass reaches `q·total` (and is positive). `qs` may come in any
/// order; one walk serves them all.
#[inline]
pub(super) fn walk_quantiles<const N: usize>(
    layout: &SketchLayout,
    (lo, hi): (usize, usize),
    mass: impl Fn(usize) -> f64,
    total: f64,
    qs: [f64; N],
) -> Option<[f64; N]> {
    if qs.iter().any(|q| q.is_nan()) || lo > hi {
        return None;
    }
    let mut order: [usize; N] = std::array::from_fn(|j| j);
    order.sort_unstable_by(|&a, &b| qs[a].total_cmp(&qs[b]));
    let mut out = [0.0; N];
    let (mut i, mut cum) = (lo, mass(lo));
    for j in order {
        let rank = qs[j].clamp(0.0, 1.0) * total;
        // Rounding can leave the top ranks a hair above the summed mass: they get `hi`.
        while (cum < rank || cum <= 0.0) && i < hi {
            i += 1;
            cum += mass(i);
        }
        out[j] = layout.value(i);
    }
    Some(out)
}

/// Mass strictly above `x` and above `y` (`x ≤ y`) in one walk down from the top bucket. The
/// sums run in one fixed order, so a smaller `x` never gets less and `above y ≤ above x`
/// exactly: the delay risk's ratio of the two stays in 0..=1 and monotone.
#[inline]
pub(super) fn weight_above(
    layout: &SketchLayout,
    (lo, hi): (usize, usize),
    mass: impl Fn(usize) -> f64,
    x: f64,
    y: f64,
) -> (f64, f64) {
    let ((ix, fx), (iy, fy)) = (layout.locate(x), layout.locate(y));
    if lo > hi || ix > hi {
        return (0.0, 0.0);
    }
    // Separate branch-free loops (whole buckets above y's; y's; whole buckets down to x's;
    // part of x's) run twice as fast as one loop that tests for the two special buckets.
    let mut sum = 0.0;
    for j in (lo.max(iy + 1)..=hi).rev() {
        sum += mass(j);
    }
    if iy < lo {
        return (sum, sum);
    }
    let (above_y, upper) = if iy > hi {
        (0.0, hi)
    } else {
        let m = mass(iy);
        let above_y = sum + (1.0 - fy) * m;
        if ix == iy {
            return (sum + (1.0 - fx) * m, above_y);
        }
        sum += m;
        (above_y, iy - 1)
    };
    for j in (lo.max(ix + 1)..=upper).rev() {
        sum += mass(j);
    }
    if ix >= lo {
        sum += (1.0 - fx) * mass(ix);
    }
    (sum, above_y)
}

#[cfg(test)]
#[path = "sketch_tests.rs"]
mod tests;
