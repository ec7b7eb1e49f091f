//! Rule sets (spec §3): parsing, validation, compiled form. STUB being written by the lead.
use std::fmt;

#[derive(Clone, Debug, PartialEq)]
pub struct RuleSet {
    pub version: i64,
    pub lateness_ms: i64,
}

impl RuleSet {
    /// Parse and validate a rule-set JSON document.
    pub fn parse(json: &[u8]) -> Result<RuleSet, RuleError> {
        let _ = json;
        unimplemented!()
    }
}

/// Why a rule set was rejected: the rule (id, or `rules[i]` when it has none) and the field.
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
