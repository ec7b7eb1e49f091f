use super::*;
use crate::scoring::testing::{TestRng, Z90};
use proptest::prelude::*;

const H: f64 = 3_600_000.0;

/// The exact lower weighted `q`-quantile: the smallest value whose cumulative weight reaches
/// `q·total`.
fn exact_quantile(values: &[(f64, f64)], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: f64 = v.iter().map(|x| x.1).sum();
    let mut cum = 0.0;
    for &(x, w) in &v {
        cum += w;
        if cum >= q * total {
            return x;
        }
    }
    v.last().unwrap().0
}

fn within(estimate: f64, exact: f64, rel: f64) -> bool {
    (estimate - exact).abs() <= rel * exact * (1.0 + 1e-9)
}

#[test]
fn layout_size() {
    let l = SketchLayout::default();
    assert_eq!(l.buckets(), 604);
    assert_eq!(QuantileSketch::new(l).heap_bytes(), 4_832);
    assert_eq!(SketchLayout::new(0.02).unwrap().buckets(), 303);
    assert!(SketchLayout::new(0.0).is_none() && SketchLayout::new(f64::NAN).is_none());
    // The range ends fall in the end buckets.
    assert_eq!(l.index(MIN_MS), 0);
    assert_eq!(l.index(MAX_MS), l.buckets() - 1);
    assert_eq!(l.index(MIN_MS * 1.0001), 1);
}

#[test]
fn log_normal_transit_quantiles() {
    let mut rng = TestRng::new(7);
    let (median, sigma) = (40.0 * H, 0.45);
    let mut s = QuantileSketch::default();
    let values: Vec<(f64, f64)> = (0..50_000)
        .map(|_| (rng.log_normal(median, sigma), 1.0))
        .collect();
    values.iter().for_each(|&(v, w)| s.insert(v, w));
    let [p50, p90] = s.quantiles([0.5, 0.9]).unwrap();
    assert!(within(p50, exact_quantile(&values, 0.5), DEFAULT_ALPHA));
    assert!(within(p90, exact_quantile(&values, 0.9), DEFAULT_ALPHA));
    assert!(within(p50, median, 0.05), "p50 {p50}");
    assert!(within(p90, median * (sigma * Z90).exp(), 0.05), "p90 {p90}");
    assert_eq!(s.quantile(0.5), Some(p50));
    assert_eq!(s.total_weight(), 50_000.0);
    assert!((s.cdf(median) - 0.5).abs() < 0.02);
}

#[test]
fn out_of_range_values_are_clamped_and_counted() {
    let mut s = QuantileSketch::default();
    s.insert(1_000.0, 1.0);
    s.insert(-5.0, 1.0);
    s.insert(1e12, 2.0);
    s.insert(f64::INFINITY, 1.0);
    s.insert(5.0 * H, 1.0);
    assert_eq!(s.clamped(), (2.0, 3.0));
    assert_eq!(s.total_weight(), 6.0);
    assert!(within(s.quantile(0.0).unwrap(), MIN_MS, DEFAULT_ALPHA));
    assert!(within(s.quantile(1.0).unwrap(), MAX_MS, DEFAULT_ALPHA));
    // Ignored: NaN values, non-positive or non-finite weights.
    s.insert(f64::NAN, 1.0);
    for w in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        s.insert(H, w);
    }
    assert_eq!(s.total_weight(), 6.0);
}

#[test]
fn empty_sketch_has_no_nan() {
    let s = QuantileSketch::default();
    assert!(s.is_empty());
    assert_eq!(s.quantile(0.5), None);
    assert_eq!(s.quantiles([0.5, 0.9]), None);
    assert_eq!(s.cdf(H), 0.0);
    assert_eq!(s.total_weight(), 0.0);
    let mut s = s;
    s.scale(0.5);
    s.merge(&QuantileSketch::default());
    assert!(s.is_empty() && s.quantile(1.0).is_none());
    s.insert(H, 1.0);
    assert_eq!(s.quantile(f64::NAN), None);
    assert_eq!(s.cdf(f64::NAN), 0.0);
    assert_eq!(s.quantile(-3.0), s.quantile(0.0));
    assert_eq!(s.quantile(7.0), s.quantile(1.0));
}

#[test]
fn scale_keeps_quantiles_and_flushes_dust() {
    let mut s = QuantileSketch::default();
    (1..=100).for_each(|h| s.insert(f64::from(h) * H, 1.0));
    let before = s.quantiles([0.1, 0.5, 0.9]);
    s.scale(0.125);
    assert_eq!(s.quantiles([0.1, 0.5, 0.9]), before);
    assert_eq!(s.total_weight(), 12.5);
    s.scale(1e-320);
    assert!(s.is_empty() && s.quantile(0.5).is_none());
}

#[test]
#[should_panic(expected = "different layouts")]
fn merging_layouts_panics() {
    let mut a = QuantileSketch::default();
    a.merge(&QuantileSketch::new(SketchLayout::new(0.02).unwrap()));
}

fn sample() -> impl Strategy<Value = Vec<(f64, f64)>> {
    // Log-uniform over the bucket range, weights over six orders of magnitude.
    let value = (MIN_MS.ln()..MAX_MS.ln()).prop_map(f64::exp);
    let weight = (-3.0f64..3.0).prop_map(|e| 10f64.powf(e));
    prop::collection::vec((value, weight), 1..300)
}

proptest! {
    #[test]
    fn quantiles_within_alpha_of_exact(values in sample(), q in 0.0f64..=1.0) {
        let mut s = QuantileSketch::default();
        values.iter().for_each(|&(v, w)| s.insert(v, w));
        let got = s.quantile(q).unwrap();
        // Summation order may put a rank that sits exactly on a boundary either side of it.
        let ok = [q, (q - 1e-9).max(0.0), (q + 1e-9).min(1.0)]
            .iter()
            .any(|&q| within(got, exact_quantile(&values, q), DEFAULT_ALPHA));
        prop_assert!(ok, "q {} got {} exact {}", q, got, exact_quantile(&values, q));
    }

    #[test]
    fn cdf_within_one_bucket(values in sample(), x in MIN_MS.ln()..MAX_MS.ln()) {
        let x = x.exp();
        let mut s = QuantileSketch::default();
        values.iter().for_each(|&(v, w)| s.insert(v, w));
        let total: f64 = values.iter().map(|v| v.1).sum();
        let frac_le = |y: f64| values.iter().filter(|v| v.0 <= y).map(|v| v.1).sum::<f64>() / total;
        let g = (1.0 + DEFAULT_ALPHA) / (1.0 - DEFAULT_ALPHA);
        let c = s.cdf(x);
        prop_assert!(c >= frac_le(x / g) - 1e-9 && c <= frac_le(x * g) + 1e-9);
    }

    #[test]
    fn merge_equals_inserting_both(a in sample(), b in sample(), f in 0.01f64..100.0) {
        let (mut sa, mut sb, mut both) =
            (QuantileSketch::default(), QuantileSketch::default(), QuantileSketch::default());
        a.iter().for_each(|&(v, w)| { sa.insert(v, w); both.insert(v, w); });
        b.iter().for_each(|&(v, w)| { sb.insert(v, w); both.insert(v, w * f); });
        sa.merge_scaled(&sb, f);
        prop_assert_eq!(sa.window(), both.window());
        prop_assert!(within(sa.total_weight(), both.total_weight(), 1e-12));
        for (x, y) in sa.counts().iter().zip(both.counts()) {
            prop_assert!((x - y).abs() <= 1e-12 * both.total_weight());
        }
        let mut plain = QuantileSketch::default();
        plain.merge(&sa);
        prop_assert_eq!(&plain, &sa);
    }
}

/// Mass above `x`, bucket by bucket: whole buckets above `x`'s, the interpolated part of it.
fn brute_above(s: &QuantileSketch, x: f64) -> f64 {
    let (ix, fx) = s.layout().locate(x);
    let part = |j: usize| match j.cmp(&ix) {
        std::cmp::Ordering::Greater => 1.0,
        std::cmp::Ordering::Equal => 1.0 - fx,
        std::cmp::Ordering::Less => 0.0,
    };
    s.counts()
        .iter()
        .enumerate()
        .map(|(j, c)| c * part(j))
        .sum()
}

proptest! {
    #[test]
    fn weight_above_pairs_match_brute_force(
        values in sample(),
        x in 8.0f64..25.0,
        dy in 0.0f64..8.0,
    ) {
        // x from 3 s to 2,000 days: below, inside and above the range and the window.
        let (x, y) = (x.exp(), (x + dy).exp());
        let mut s = QuantileSketch::default();
        values.iter().for_each(|&(v, w)| s.insert(v, w));
        let (ax, ay) = weight_above(s.layout(), s.window(), |i| s.counts()[i], x, y);
        let tol = 1e-12 * s.total_weight();
        prop_assert!((ax - brute_above(&s, x)).abs() <= tol, "{} vs {}", ax, brute_above(&s, x));
        prop_assert!((ay - brute_above(&s, y)).abs() <= tol, "{} vs {}", ay, brute_above(&s, y));
        prop_assert!(ay <= ax);
        let (single, _) = weight_above(s.layout(), s.window(), |i| s.counts()[i], x, x);
        prop_assert_eq!(single, ax);
    }

    #[test]
    fn delay_risk_monotone_on_any_sketch(values in sample(), e1 in 0.0f64..1.0, e2 in 0.0f64..1.0) {
        let mut s = QuantileSketch::default();
        values.iter().for_each(|&(v, w)| s.insert(v, w));
        let sla = 72.0 * H;
        let (lo, hi) = if e1 <= e2 { (e1, e2) } else { (e2, e1) };
        let r = |e: f64| crate::scoring::delay_risk(e * 1.2 * sla, sla, &s).unwrap();
        prop_assert!(r(lo) <= r(hi) && (0.0..=1.0).contains(&r(lo)), "{} {}", r(lo), r(hi));
    }
}

proptest! {
    /// `locate` takes one logarithm: the same bucket as `index` and the same fraction as
    /// recomputing the position, bit for bit, from below the range to past it.
    #[test]
    fn locate_is_index_and_its_fraction(x in -2.0f64..25.0) {
        let layout = *QuantileSketch::default().layout();
        for x in [x.exp(), -x, 0.0, MIN_MS, MIN_MS * (1.0 + 1e-15), MAX_MS, f64::NAN] {
            let (i, frac) = layout.locate(x);
            prop_assert_eq!(i, layout.index(x));
            let want = if x > 0.0 {
                (layout.pos(x) - (i as f64 - 1.0)).clamp(0.0, 1.0)
            } else {
                0.0
            };
            prop_assert_eq!(frac.to_bits(), want.to_bits(), "{}", x);
        }
    }
}
