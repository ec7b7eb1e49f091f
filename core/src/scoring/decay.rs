//! Forward decay (Cormode, Shkapenyuk, Srivastava, Xu, ICDE 2009): an observation at time `t`
//! is added with weight `g(t) = 2^((t − L)/h)` for a landmark `L` and half-life `h`. Its weight
//! as seen at a later time `T` is `g(t)/g(T)`, which halves every `h`, as exponential decay
//! should, but the division is never done to the stored sums: quantiles and rates are ratios of
//! sums in the same frame, so `g(T)` cancels, and an effective count is one division by
//! [`ForwardDecay::norm`] when it is read.
//!
//! Why forward decay: decaying backwards ("multiply everything by `2^(−Δt/h)` as time passes")
//! touches every bucket of every lane whenever the clock moves. Forward decay adds one `exp2` to
//! an update and touches nothing else, so an update is O(1) and allocation-free.
//!
//! The price is that `g` grows without bound. Once `now − L` reaches [`RENORM_HALF_LIVES`]
//! half-lives the landmark moves forward by a whole number `k` of half-lives and every sum is
//! multiplied by `2^−k`: exact in binary floating point, so renormalising loses nothing.
//! Landmarks sit on the grid of whole half-lives since the Unix epoch, so the landmarks of two
//! partitions also differ by whole half-lives and merging them is exact too.

/// One day in milliseconds.
pub const DAY_MS: i64 = 86_400_000;
/// Default half-life: 14 days, so the last few weeks carry most of the weight.
pub const DEFAULT_HALF_LIFE_MS: i64 = 14 * DAY_MS;
/// Renormalise once weights reach 2^64: far from `f64` overflow (2^1024) whatever the sums
/// hold, and rare (every 2.5 years at a 14-day half-life).
pub const RENORM_HALF_LIVES: i64 = 64;

const UNSET: i64 = i64::MIN;

/// The decay clock of one table of decayed sums.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForwardDecay {
    half_life_ms: i64,
    /// `L`, on the grid of whole half-lives; [`UNSET`] before the first observation.
    landmark_ms: i64,
    /// The latest observation time: "now" for effective counts.
    now_ms: i64,
}

impl ForwardDecay {
    /// A clock with half-life `half_life_ms` (> 0; callers validate).
    pub fn new(half_life_ms: i64) -> ForwardDecay {
        debug_assert!(half_life_ms > 0);
        ForwardDecay {
            half_life_ms: half_life_ms.max(1),
            landmark_ms: UNSET,
            now_ms: UNSET,
        }
    }

    pub fn half_life_ms(&self) -> i64 {
        self.half_life_ms
    }

    pub fn landmark_ms(&self) -> Option<i64> {
        (self.landmark_ms != UNSET).then_some(self.landmark_ms)
    }

    pub fn now_ms(&self) -> Option<i64> {
        (self.now_ms != UNSET).then_some(self.now_ms)
    }

    /// Moves the clock to `ts` if later. Returns `Some(factor)` when the landmark moved and the
    /// caller must multiply every sum by `factor` (an exact power of two, possibly 0 after a
    /// jump of more than ~1,000 half-lives) before adding weights from [`Self::weight`].
    #[inline]
    pub fn observe(&mut self, ts: i64) -> Option<f64> {
        if self.landmark_ms == UNSET {
            self.landmark_ms = ts.div_euclid(self.half_life_ms) * self.half_life_ms;
            self.now_ms = ts;
            return None;
        }
        if ts <= self.now_ms {
            return None;
        }
        self.now_ms = ts;
        self.renormalise_if_due()
    }

    /// Moves the landmark if `now` has run [`RENORM_HALF_LIVES`] half-lives past it; returns
    /// the factor every sum must be multiplied by.
    #[inline]
    pub fn renormalise_if_due(&mut self) -> Option<f64> {
        let due = RENORM_HALF_LIVES.saturating_mul(self.half_life_ms);
        if self.landmark_ms == UNSET || self.now_ms.saturating_sub(self.landmark_ms) < due {
            return None;
        }
        Some(self.renormalise())
    }

    #[cold]
    fn renormalise(&mut self) -> f64 {
        let k = self
            .now_ms
            .saturating_sub(self.landmark_ms)
            .div_euclid(self.half_life_ms);
        self.landmark_ms += k * self.half_life_ms;
        exp2_int(-k)
    }

    /// `g(ts)`: the weight to add for an observation at `ts` (call [`Self::observe`] first).
    #[inline]
    pub fn weight(&self, ts: i64) -> f64 {
        debug_assert!(self.landmark_ms != UNSET);
        ((ts.saturating_sub(self.landmark_ms)) as f64 / self.half_life_ms as f64).exp2()
    }

    /// `g(now)`: a decayed sum divided by this is its effective count now (1 when unset).
    pub fn norm(&self) -> f64 {
        if self.landmark_ms == UNSET {
            1.0
        } else {
            self.weight(self.now_ms)
        }
    }

    /// Puts `self` and `other` (same half-life) in one frame for merging. Returns the factors
    /// to multiply `self`'s and `other`'s sums by; `self` becomes the merged clock. A further
    /// renormalisation may be due: call [`Self::renormalise_if_due`].
    pub fn align(&mut self, other: &ForwardDecay) -> (f64, f64) {
        debug_assert_eq!(self.half_life_ms, other.half_life_ms);
        if other.landmark_ms == UNSET {
            return (1.0, 1.0);
        }
        if self.landmark_ms == UNSET {
            *self = *other;
            return (1.0, 1.0);
        }
        let landmark = self.landmark_ms.max(other.landmark_ms);
        let factor = |l: i64| exp2_int(-(landmark - l).div_euclid(self.half_life_ms));
        let factors = (factor(self.landmark_ms), factor(other.landmark_ms));
        self.landmark_ms = landmark;
        self.now_ms = self.now_ms.max(other.now_ms);
        factors
    }

    /// Restores a clock from a snapshot (the decoder validated the values).
    pub(super) fn from_parts(half_life_ms: i64, landmark_ms: i64, now_ms: i64) -> ForwardDecay {
        ForwardDecay {
            half_life_ms,
            landmark_ms,
            now_ms,
        }
    }

    pub(super) fn parts(&self) -> (i64, i64) {
        (self.landmark_ms, self.now_ms)
    }
}

/// `2^k` for an integer `k`, exactly (0 below the subnormal range).
fn exp2_int(k: i64) -> f64 {
    (k.clamp(-1100, 1100) as f64).exp2()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_halves_every_half_life() {
        let mut d = ForwardDecay::new(DAY_MS);
        assert_eq!(d.observe(10 * DAY_MS + 5), None);
        assert_eq!(d.landmark_ms(), Some(10 * DAY_MS));
        let (w0, w1) = (d.weight(11 * DAY_MS), d.weight(12 * DAY_MS));
        assert_eq!(w1 / w0, 2.0);
        assert_eq!(d.weight(10 * DAY_MS), 1.0);
    }

    #[test]
    fn renormalises_exactly_before_overflow() {
        let mut d = ForwardDecay::new(DAY_MS);
        d.observe(0);
        assert_eq!(d.observe((RENORM_HALF_LIVES - 1) * DAY_MS), None);
        let f = d
            .observe(RENORM_HALF_LIVES * DAY_MS + 7)
            .expect("renormalises");
        assert_eq!(f, (-(RENORM_HALF_LIVES as f64)).exp2());
        assert_eq!(d.landmark_ms(), Some(RENORM_HALF_LIVES * DAY_MS));
        assert!(d.norm() < 2.0);
        // A far-future jump wipes history to exact zeros, not NaN or infinity.
        let f = d.observe(i64::MAX / 2).expect("renormalises");
        assert_eq!(f, 0.0);
        assert!(d.norm().is_finite());
    }

    #[test]
    fn late_and_unset_are_finite() {
        let d = ForwardDecay::new(DAY_MS);
        assert_eq!(d.norm(), 1.0);
        let mut d = ForwardDecay::new(DAY_MS);
        d.observe(1_000 * DAY_MS);
        assert_eq!(d.observe(0), None);
        assert_eq!(d.weight(i64::MIN), 0.0);
        assert_eq!(d.now_ms(), Some(1_000 * DAY_MS));
    }

    #[test]
    fn align_uses_the_later_landmark() {
        let (mut a, mut b) = (ForwardDecay::new(DAY_MS), ForwardDecay::new(DAY_MS));
        a.observe(3 * DAY_MS);
        b.observe(5 * DAY_MS + 1);
        let (fa, fb) = a.align(&b);
        assert_eq!((fa, fb), (0.25, 1.0));
        assert_eq!(a.landmark_ms(), Some(5 * DAY_MS));
        assert_eq!(a.now_ms(), Some(5 * DAY_MS + 1));
        let mut empty = ForwardDecay::new(DAY_MS);
        assert_eq!(empty.align(&a), (1.0, 1.0));
        assert_eq!(empty, a);
    }
}
