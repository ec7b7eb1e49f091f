//! [`Transit`]: a lane's transit-time distribution as the delay risk and the conditional ETA
//! read it, smoothed like the rates: the mixture `w·F_lane + (1−w)·F_carrier` of the two
//! normalised sketches, `w = n/(n+m)`. Both sketches share one layout, so the mixture is
//! bucket by bucket and costs one extra multiply-add per bucket walked.

use super::sketch::{walk_quantiles, weight_above, QuantileSketch, SketchLayout};

/// A normalised transit-time distribution (total mass 1), or empty.
#[derive(Clone, Copy, Debug)]
pub struct Transit<'a> {
    parts: Option<Parts<'a>>,
}

#[derive(Clone, Copy, Debug)]
struct Parts<'a> {
    a: &'a QuantileSketch,
    /// Mass per unit of `a`'s weight: its share of the mixture over its total weight.
    ca: f64,
    b: &'a QuantileSketch,
    cb: f64,
    window: (usize, usize),
}

impl<'a> From<&'a QuantileSketch> for Transit<'a> {
    fn from(s: &'a QuantileSketch) -> Transit<'a> {
        Transit::blend(Some(s), None, 1.0)
    }
}

impl<'a> Transit<'a> {
    /// No data.
    pub fn empty() -> Transit<'a> {
        Transit { parts: None }
    }

    /// `lane_weight` of `lane` and the rest of `carrier`; an empty or missing side gives its
    /// share to the other.
    pub fn blend(
        lane: Option<&'a QuantileSketch>,
        carrier: Option<&'a QuantileSketch>,
        lane_weight: f64,
    ) -> Transit<'a> {
        let lane = lane.filter(|s| !s.is_empty());
        let carrier = carrier.filter(|s| !s.is_empty());
        let (a, wa, b) = match (lane, carrier) {
            (Some(l), Some(c)) => (l, lane_weight.clamp(0.0, 1.0), c),
            (Some(s), None) | (None, Some(s)) => (s, 1.0, s),
            (None, None) => return Transit::empty(),
        };
        let (ca, cb) = (wa / a.total_weight(), (1.0 - wa) / b.total_weight());
        let span = |s: &QuantileSketch, c: f64| if c > 0.0 { s.window() } else { (usize::MAX, 0) };
        let ((alo, ahi), (blo, bhi)) = (span(a, ca), span(b, cb));
        Transit {
            parts: Some(Parts {
                a,
                ca,
                b,
                cb,
                window: (alo.min(blo), ahi.max(bhi)),
            }),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.parts.is_none()
    }

    /// `P(T > x)`; 0 when empty.
    #[inline]
    pub fn survival(&self, x: f64) -> f64 {
        self.survival_pair(x, x).0
    }

    /// `(P(T > x), P(T > y))` for `x ≤ y` in one walk, with `P(T > y) ≤ P(T > x)` exactly.
    #[inline]
    pub fn survival_pair(&self, x: f64, y: f64) -> (f64, f64) {
        match &self.parts {
            Some(p) if !x.is_nan() && !y.is_nan() => {
                let (ax, ay) = weight_above(p.layout(), p.window, |i| p.mass(i), x, y.max(x));
                (ax.clamp(0.0, 1.0), ay.clamp(0.0, 1.0))
            }
            _ => (0.0, 0.0),
        }
    }

    /// `P(T ≤ x)`; 0 when empty.
    pub fn cdf(&self, x: f64) -> f64 {
        if self.is_empty() || x.is_nan() {
            return 0.0;
        }
        1.0 - self.survival(x)
    }

    /// The `q`-quantile, or `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let p = self.parts.as_ref()?;
        walk_quantiles(p.layout(), p.window, |i| p.mass(i), 1.0, [q]).map(|[v]| v)
    }

    /// The `q`-quantile of `T` given `T > elapsed_ms`, never below `elapsed_ms`. A shipment
    /// that has outlived all the data gets `elapsed_ms` ("any time now"). `None` when empty.
    pub fn quantile_after(&self, elapsed_ms: f64, q: f64) -> Option<f64> {
        self.quantiles_after(elapsed_ms, [q]).map(|[v]| v)
    }

    /// Several conditional quantiles (as [`Self::quantile_after`]) in one walk.
    pub fn quantiles_after<const N: usize>(
        &self,
        elapsed_ms: f64,
        qs: [f64; N],
    ) -> Option<[f64; N]> {
        let p = self.parts.as_ref()?;
        if elapsed_ms.is_nan() {
            return None;
        }
        let alive = self.survival(elapsed_ms);
        if alive <= 0.0 {
            return Some([elapsed_ms.max(0.0); N]);
        }
        let ranks = qs.map(|q| (1.0 - alive) + q.clamp(0.0, 1.0) * alive);
        let values = walk_quantiles(p.layout(), p.window, |i| p.mass(i), 1.0, ranks)?;
        Some(values.map(|v| v.max(elapsed_ms)))
    }
}

impl Parts<'_> {
    fn layout(&self) -> &SketchLayout {
        self.a.layout()
    }

    #[inline]
    fn mass(&self, i: usize) -> f64 {
        self.ca * self.a.counts()[i] + self.cb * self.b.counts()[i]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sketch(values: &[f64]) -> QuantileSketch {
        let mut s = QuantileSketch::default();
        values.iter().for_each(|&v| s.insert(v, 1.0));
        s
    }

    const H: f64 = 3_600_000.0;

    #[test]
    fn blend_weights_the_two_sides() {
        let (lane, carrier) = (sketch(&[10.0 * H; 4]), sketch(&[40.0 * H; 100]));
        let t = Transit::blend(Some(&lane), Some(&carrier), 0.25);
        assert!((t.cdf(20.0 * H) - 0.25).abs() < 1e-12);
        assert!((t.survival(20.0 * H) - 0.75).abs() < 1e-12);
        assert!((t.quantile(0.2).unwrap() / (10.0 * H) - 1.0).abs() < 0.01);
        assert!((t.quantile(0.3).unwrap() / (40.0 * H) - 1.0).abs() < 0.01);
        // A missing or empty side gives its share to the other.
        let empty = QuantileSketch::default();
        let only = Transit::blend(Some(&empty), Some(&carrier), 0.9);
        assert_eq!(only.cdf(20.0 * H), 0.0);
        assert!(Transit::blend(None, Some(&empty), 0.5).is_empty());
    }

    #[test]
    fn conditional_quantile_moves_past_elapsed() {
        let s = sketch(&(1..=100).map(|h| f64::from(h) * H).collect::<Vec<_>>());
        let t = Transit::from(&s);
        let q = t.quantile_after(0.0, 0.5).unwrap();
        assert!((q / (50.0 * H) - 1.0).abs() < 0.02, "{q}");
        let q = t.quantile_after(80.0 * H, 0.5).unwrap();
        assert!((q / (90.0 * H) - 1.0).abs() < 0.02, "{q}");
        assert_eq!(t.quantile_after(500.0 * H, 0.5), Some(500.0 * H));
    }

    #[test]
    fn empty_is_quiet() {
        let t = Transit::empty();
        assert_eq!((t.cdf(1e6), t.survival(1e6)), (0.0, 0.0));
        assert_eq!((t.quantile(0.5), t.quantile_after(1e6, 0.5)), (None, None));
        let s = sketch(&[H]);
        assert_eq!(Transit::from(&s).quantile(f64::NAN), None);
        assert_eq!(Transit::from(&s).cdf(f64::NAN), 0.0);
    }
}
