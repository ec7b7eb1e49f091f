//! Rule sets (spec §3): the validated, compiled form the engine runs.
//!
//! A rule set is parsed from JSON by [`RuleSet::parse`]; any error rejects the whole set and
//! names the rule and the field. Rules compare by value, which is what hot reload uses to decide
//! which rules keep their state.

mod parse;

use crate::event::{Metric, Status};
use std::fmt;
use std::sync::Arc;

/// Most threshold rules, and most dwell rules, one set may hold: per-shipment rule state is a
/// 64-bit mask per kind.
pub const MAX_RULES_PER_KIND: usize = 64;
/// Most readings one threshold rule may keep as evidence.
pub const MAX_EVIDENCE: u16 = 64;
/// Evidence readings kept when a rule does not say.
pub const DEFAULT_EVIDENCE: u16 = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 3] = [Severity::Info, Severity::Warning, Severity::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    Gt,
    Ge,
    Lt,
    Le,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Gt => "gt",
            Op::Ge => "ge",
            Op::Lt => "lt",
            Op::Le => "le",
        }
    }

    /// `x op limit`. NaN (an absent value) never compares true.
    #[inline(always)]
    pub fn test(self, x: f64, limit: f64) -> bool {
        match self {
            Op::Gt => x > limit,
            Op::Ge => x >= limit,
            Op::Lt => x < limit,
            Op::Le => x <= limit,
        }
    }

    /// True for `gt`/`ge`: the peak of an episode is its maximum, else its minimum.
    pub fn is_upper(self) -> bool {
        matches!(self, Op::Gt | Op::Ge)
    }
}

/// The `where` filter: which shipments (by their latest `shipment` event) a rule applies to.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Filter {
    pub carrier: Option<Vec<Arc<str>>>,
    /// Bit `t` set = tier `t` matches.
    pub tier: Option<u8>,
    pub fragile: Option<bool>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.carrier.is_none() && self.tier.is_none() && self.fragile.is_none()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Threshold {
    pub metric: Metric,
    pub op: Op,
    pub value: f64,
    pub for_ms: i64,
    pub clear: f64,
    pub evidence: u16,
}

impl Threshold {
    #[inline(always)]
    pub fn breach(&self, x: f64) -> bool {
        self.op.test(x, self.value)
    }

    #[inline(always)]
    pub fn cleared(&self, x: f64) -> bool {
        !x.is_nan() && !self.op.test(x, self.clear)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Dwell {
    pub for_ms: i64,
    /// Bit `s` set = status code `s` arms the rule.
    pub statuses: u16,
}

impl Dwell {
    pub const DEFAULT_STATUSES: [Status; 5] = [
        Status::PickedUp,
        Status::InTransit,
        Status::OutForDelivery,
        Status::DeliveryFailed,
        Status::Exception,
    ];

    #[inline(always)]
    pub fn arms(&self, status: u8) -> bool {
        status < 16 && self.statuses & (1 << status) != 0
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum RuleBody {
    Threshold(Threshold),
    Dwell(Dwell),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RuleKind {
    Threshold,
    Dwell,
}

impl RuleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::Threshold => "threshold",
            RuleKind::Dwell => "dwell",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub id: Arc<str>,
    pub severity: Severity,
    pub filter: Filter,
    pub body: RuleBody,
}

impl Rule {
    pub fn kind(&self) -> RuleKind {
        match self.body {
            RuleBody::Threshold(_) => RuleKind::Threshold,
            RuleBody::Dwell(_) => RuleKind::Dwell,
        }
    }
}

/// A validated rule set. `threshold` and `dwell` index into `rules` by kind, in set order.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleSet {
    pub version: i64,
    pub lateness_ms: i64,
    pub rules: Vec<Rule>,
}

impl RuleSet {
    /// Parse and validate a rule-set JSON document. Any error rejects the whole set.
    pub fn parse(json: &[u8]) -> Result<RuleSet, RuleError> {
        parse::parse(json)
    }

    /// An empty set (no rules, no lateness).
    pub fn empty() -> RuleSet {
        RuleSet {
            version: 0,
            lateness_ms: 0,
            rules: Vec::new(),
        }
    }

    pub fn thresholds(&self) -> impl Iterator<Item = (&Rule, &Threshold)> {
        self.rules.iter().filter_map(|r| match &r.body {
            RuleBody::Threshold(t) => Some((r, t)),
            RuleBody::Dwell(_) => None,
        })
    }

    pub fn dwells(&self) -> impl Iterator<Item = (&Rule, &Dwell)> {
        self.rules.iter().filter_map(|r| match &r.body {
            RuleBody::Dwell(d) => Some((r, d)),
            RuleBody::Threshold(_) => None,
        })
    }

    /// Serialise back to canonical JSON (what `parse` accepts); used to publish the running set.
    pub fn to_json(&self) -> String {
        parse::to_json(self)
    }
}

/// Why a rule set was rejected: the rule (its id, or `rules[i]` when it has no usable id) and
/// the field (a path such as `where.tier[1]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleError {
    pub rule: Option<String>,
    pub field: String,
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.rule {
            Some(r) => write!(f, "rule '{}': field '{}': {}", r, self.field, self.message),
            None => write!(f, "field '{}': {}", self.field, self.message),
        }
    }
}

impl std::error::Error for RuleError {}
