//! SplitMix64: a tiny, fast, well-mixed generator (passes BigCrush). Every random choice of the
//! simulator goes through it, so a seed fixes the feed byte for byte. (The integer draws are the
//! same everywhere; sensor values also use `sin`/`exp`/`ln`, whose last bit may differ between
//! platforms' math libraries.)

const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// The SplitMix64 output function: a bijective 64-bit mix.
#[inline]
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Independent random streams: one per (purpose, shipment), so a shipment's content does not
/// depend on how its events interleave with other shipments'.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub(crate) enum Stream {
    Create = 1,
    Transport = 2,
    Calibrate = 3,
    Ship = 4,
    Scan = 5,
    Sensor = 6,
    /// The ground truth's per-lane factors (`truth.rs`).
    Truth = 7,
    /// A shipment's last mile, seeded by its pickup and delivery times (`lastmile.rs`).
    Tail = 8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rng(u64);

impl Rng {
    /// The stream `stream` for item `idx` (a shipment index, or 0) under `seed`.
    pub(crate) fn derive(seed: u64, stream: Stream, idx: u64) -> Rng {
        let s = mix64(seed ^ mix64((stream as u64).wrapping_mul(GAMMA) ^ mix64(idx)));
        Rng(s)
    }

    #[inline]
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GAMMA);
        mix64(self.0)
    }

    /// Uniform in [0, 1).
    #[inline]
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [0, n) (multiply-shift; the bias is below 2^-40 for the n used here).
    #[inline]
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform integer in [lo, hi] (inclusive).
    #[inline]
    pub(crate) fn int(&mut self, lo: i64, hi: i64) -> i64 {
        debug_assert!(hi >= lo);
        lo + self.below((hi - lo) as u64 + 1) as i64
    }

    /// Uniform in [lo, hi).
    #[inline]
    pub(crate) fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    #[inline]
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Roughly normal noise with mean 0 and standard deviation `sd` (sum of three uniforms:
    /// bounded at ±3 sd, which keeps sensor noise from producing absurd values).
    #[inline]
    pub(crate) fn noise(&mut self, sd: f64) -> f64 {
        (self.unit() + self.unit() + self.unit() - 1.5) * 2.0 * sd
    }

    /// Standard normal (Box–Muller; unbounded, unlike [`Rng::noise`]).
    #[inline]
    pub(crate) fn normal(&mut self) -> f64 {
        let r = (-2.0 * (1.0 - self.unit()).ln()).sqrt();
        r * (std::f64::consts::TAU * self.unit()).cos()
    }

    /// Exponentially distributed with the given mean.
    #[inline]
    pub(crate) fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }

    /// Uniform duration in [lo_min, hi_min) minutes, in milliseconds.
    #[inline]
    pub(crate) fn minutes(&mut self, lo_min: f64, hi_min: f64) -> i64 {
        (self.uniform(lo_min, hi_min) * 60_000.0) as i64
    }

    /// Log-uniform duration in [lo_min, hi_min) minutes, in milliseconds: short gaps common,
    /// long ones rarer, as in real scan feeds.
    #[inline]
    pub(crate) fn log_minutes(&mut self, lo_min: f64, hi_min: f64) -> i64 {
        (lo_min * (hi_min / lo_min).powf(self.unit()) * 60_000.0) as i64
    }

    /// `x` rounded up or down at random so that the expectation is `x` (x >= 0).
    pub(crate) fn stochastic_round(&mut self, x: f64) -> u64 {
        let f = x.floor();
        f as u64 + u64::from(self.chance(x - f))
    }

    /// Index into `cumulative` (running sums of weights, last = total) drawn by weight.
    pub(crate) fn weighted(&mut self, cumulative: &[f64]) -> usize {
        let total = cumulative.last().copied().unwrap_or(0.0);
        let x = self.unit() * total;
        cumulative
            .iter()
            .position(|&c| x < c)
            .unwrap_or(cumulative.len() - 1)
    }
}

/// Running sums of `weights`, for [`Rng::weighted`].
pub(crate) fn cumulative(weights: impl IntoIterator<Item = f64>) -> Vec<f64> {
    let mut acc = 0.0;
    weights
        .into_iter()
        .map(|w| {
            acc += w.max(0.0);
            acc
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_deterministic_and_distinct() {
        let a: Vec<u64> = (0..4)
            .map(|_| Rng::derive(7, Stream::Scan, 3).next_u64())
            .collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let mut x = Rng::derive(7, Stream::Scan, 3);
        let mut y = Rng::derive(7, Stream::Scan, 4);
        let mut z = Rng::derive(7, Stream::Sensor, 3);
        let (xs, ys, zs): (Vec<_>, Vec<_>, Vec<_>) = (0..8)
            .map(|_| (x.next_u64(), y.next_u64(), z.next_u64()))
            .fold(
                (vec![], vec![], vec![]),
                |(mut a, mut b, mut c), (p, q, r)| {
                    a.push(p);
                    b.push(q);
                    c.push(r);
                    (a, b, c)
                },
            );
        assert_ne!(xs, ys);
        assert_ne!(xs, zs);
    }

    #[test]
    fn ranges_hold() {
        let mut r = Rng::derive(1, Stream::Create, 0);
        let mut sum = 0.0;
        for _ in 0..10_000 {
            let u = r.unit();
            assert!((0.0..1.0).contains(&u));
            let i = r.int(16, 64);
            assert!((16..=64).contains(&i));
            sum += u;
        }
        assert!((sum / 10_000.0 - 0.5).abs() < 0.02);
        let c = cumulative([1.0, 0.0, 3.0]);
        let hits = (0..4000).filter(|_| r.weighted(&c) == 2).count();
        assert!((2800..3200).contains(&hits), "{hits}");
    }
}
