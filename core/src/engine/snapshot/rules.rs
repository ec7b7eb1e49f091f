//! The rule set in a snapshot, field by field: floats keep their exact bits, which a JSON
//! round trip does not promise, and hot reload compares rules by value.

use super::wire::{decode_err, Res, R, W};
use crate::event::Metric;
use crate::rules::{
    Dwell, Filter, Op, Rule, RuleBody, RuleSet, Severity, Threshold, MAX_EVIDENCE,
    MAX_RULES_PER_KIND,
};
use std::sync::Arc;

const OPS: [Op; 4] = [Op::Gt, Op::Ge, Op::Lt, Op::Le];

pub fn put(w: &mut W<'_>, set: &RuleSet) {
    w.i64(set.version);
    w.i64(set.lateness_ms);
    w.len(set.rules.len());
    for r in &set.rules {
        w.bytes(r.id.as_bytes());
        w.u8(r.severity as u8);
        let f = &r.filter;
        w.u8(u8::from(f.carrier.is_some()));
        if let Some(cs) = &f.carrier {
            w.len(cs.len());
            cs.iter().for_each(|c| w.bytes(c.as_bytes()));
        }
        w.u8(u8::from(f.tier.is_some()));
        w.u8(f.tier.unwrap_or(0));
        w.u8(f.fragile.map_or(0, |b| 1 + u8::from(b)));
        match &r.body {
            RuleBody::Threshold(t) => {
                w.u8(0);
                w.u8(t.metric as u8);
                w.u8(OPS.iter().position(|&o| o == t.op).unwrap_or(0) as u8);
                w.f64(t.value);
                w.i64(t.for_ms);
                w.f64(t.clear);
                w.u16(t.evidence);
            }
            RuleBody::Dwell(d) => {
                w.u8(1);
                w.i64(d.for_ms);
                w.u16(d.statuses);
            }
        }
    }
}

pub fn get(r: &mut R<'_>) -> Res<RuleSet> {
    let (version, lateness_ms) = (r.i64()?, r.i64()?);
    let n = r.count(4)?;
    let mut rules = Vec::with_capacity(n);
    let bad = |i: usize, what: &str| decode_err(format!("rules[{i}]: bad {what}"));
    for i in 0..n {
        let id: Arc<str> = Arc::from(r.str()?);
        let severity = *Severity::ALL
            .get(r.u8()? as usize)
            .ok_or_else(|| bad(i, "severity"))?;
        let carrier = match r.u8()? {
            0 => None,
            _ => Some(
                (0..r.count(4)?)
                    .map(|_| r.str().map(Arc::from))
                    .collect::<Res<Vec<Arc<str>>>>()?,
            ),
        };
        let (has_tier, tier) = (r.u8()?, r.u8()?);
        let fragile = match r.u8()? {
            0 => None,
            f => Some(f == 2),
        };
        let filter = Filter {
            carrier,
            tier: (has_tier != 0).then_some(tier),
            fragile,
        };
        let body = match r.u8()? {
            0 => {
                let metric = *Metric::ALL
                    .get(r.u8()? as usize)
                    .ok_or_else(|| bad(i, "metric"))?;
                let op = *OPS.get(r.u8()? as usize).ok_or_else(|| bad(i, "op"))?;
                let (value, for_ms, clear, evidence) = (r.f64()?, r.i64()?, r.f64()?, r.u16()?);
                if evidence > MAX_EVIDENCE {
                    return Err(bad(i, "evidence"));
                }
                RuleBody::Threshold(Threshold {
                    metric,
                    op,
                    value,
                    for_ms,
                    clear,
                    evidence,
                })
            }
            1 => RuleBody::Dwell(Dwell {
                for_ms: r.i64()?,
                statuses: r.u16()?,
            }),
            _ => return Err(bad(i, "kind")),
        };
        rules.push(Rule {
            id,
            severity,
            filter,
            body,
        });
    }
    let set = RuleSet {
        version,
        lateness_ms,
        rules,
    };
    if set.thresholds().count().max(set.dwells().count()) > MAX_RULES_PER_KIND {
        return Err(decode_err(format!(
            "rules: more than {MAX_RULES_PER_KIND} of one kind"
        )));
    }
    Ok(set)
}
