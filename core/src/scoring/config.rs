//! [`ScoringConfig`]: the knobs of the lane statistics, validated once when a table is built.

use super::decay::{DAY_MS, DEFAULT_HALF_LIFE_MS};
use super::sketch::{SketchLayout, DEFAULT_ALPHA};
use crate::error::{Error, ErrorKind};
use serde::{Deserialize, Serialize};

/// Default lane SLA: 72 hours from pickup to delivery.
pub const DEFAULT_SLA_MS: i64 = 72 * 3_600_000;
/// Default prior strength: a lane's own data weighs as much as the carrier's at 10 shipments.
pub const DEFAULT_PRIOR_SHIPMENTS: f64 = 10.0;
/// Longest accepted half-life: 10 years (longer is "never forget", and risks overflow).
pub const MAX_HALF_LIFE_MS: i64 = 3_650 * DAY_MS;

/// Lane statistics configuration. JSON field names are the Rust ones; unknown fields are
/// rejected and absent ones take the defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScoringConfig {
    /// Relative accuracy α of the transit-time sketches, 0.001..=0.2 (default 0.01). Fixed for
    /// the life of a table: sketches of different α do not merge.
    pub alpha: f64,
    /// Half-life of the time decay in ms (default 14 days).
    pub half_life_ms: i64,
    /// Empirical-Bayes prior strength `m`, in shipments (default 10): a lane with `n` effective
    /// shipments gets weight `n/(n+m)`, the carrier-wide figure the rest.
    pub prior_shipments: f64,
    /// Pickup-to-delivery SLA in ms for carriers without an override (default 72 h).
    pub default_sla_ms: i64,
    /// Per-carrier SLAs, by interned carrier id.
    pub sla_overrides: Vec<SlaOverride>,
}

/// A carrier's own lane SLA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaOverride {
    pub carrier: u16,
    pub sla_ms: i64,
}

impl Default for ScoringConfig {
    fn default() -> ScoringConfig {
        ScoringConfig {
            alpha: DEFAULT_ALPHA,
            half_life_ms: DEFAULT_HALF_LIFE_MS,
            prior_shipments: DEFAULT_PRIOR_SHIPMENTS,
            default_sla_ms: DEFAULT_SLA_MS,
            sla_overrides: Vec::new(),
        }
    }
}

impl ScoringConfig {
    /// The SLA of `carrier`'s lanes, in ms.
    #[inline]
    pub fn sla_ms(&self, carrier: u16) -> i64 {
        self.sla_overrides
            .iter()
            .find(|o| o.carrier == carrier)
            .map_or(self.default_sla_ms, |o| o.sla_ms)
    }

    /// Checks every field; returns the sketch layout of `alpha`.
    pub fn validate(&self) -> Result<SketchLayout, Error> {
        let bad = |msg: String| Err(Error::new(ErrorKind::Config, format!("scoring: {msg}")));
        let Some(layout) = SketchLayout::new(self.alpha) else {
            return bad(format!("alpha {} is not in 0.001..=0.2", self.alpha));
        };
        if !(1..=MAX_HALF_LIFE_MS).contains(&self.half_life_ms) {
            return bad(format!(
                "half_life_ms {} is not in 1..={MAX_HALF_LIFE_MS}",
                self.half_life_ms
            ));
        }
        if !(self.prior_shipments >= 0.0 && self.prior_shipments < 1e9) {
            return bad(format!(
                "prior_shipments {} is not in 0..1e9",
                self.prior_shipments
            ));
        }
        for (what, sla) in std::iter::once(("default_sla_ms", self.default_sla_ms)).chain(
            self.sla_overrides
                .iter()
                .map(|o| ("sla_overrides", o.sla_ms)),
        ) {
            if sla <= 0 {
                return bad(format!("{what}: SLA {sla} ms is not positive"));
            }
        }
        let mut carriers: Vec<u16> = self.sla_overrides.iter().map(|o| o.carrier).collect();
        carriers.sort_unstable();
        if let Some(w) = carriers.windows(2).find(|w| w[0] == w[1]) {
            return bad(format!("sla_overrides: carrier {} appears twice", w[0]));
        }
        Ok(layout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_overrides_apply() {
        let mut c = ScoringConfig::default();
        assert_eq!(c.validate().unwrap().buckets(), 604);
        c.sla_overrides.push(SlaOverride {
            carrier: 3,
            sla_ms: 48 * 3_600_000,
        });
        assert_eq!(c.sla_ms(3), 48 * 3_600_000);
        assert_eq!(c.sla_ms(4), DEFAULT_SLA_MS);
    }

    #[test]
    fn rejects_bad_fields_by_name() {
        for (json, field) in [
            (r#"{"alpha":0.5}"#, "alpha"),
            (r#"{"half_life_ms":0}"#, "half_life_ms"),
            (r#"{"prior_shipments":-1}"#, "prior_shipments"),
            (r#"{"default_sla_ms":0}"#, "default_sla_ms"),
            (
                r#"{"sla_overrides":[{"carrier":1,"sla_ms":5},{"carrier":1,"sla_ms":6}]}"#,
                "twice",
            ),
        ] {
            let c: ScoringConfig = serde_json::from_str(json).unwrap();
            let err = c.validate().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Config);
            assert!(err.message().contains(field), "{json}: {err}");
        }
        assert!(serde_json::from_str::<ScoringConfig>(r#"{"alpah":0.01}"#).is_err());
    }
}
