//! Rule-set JSON → [`RuleSet`], with errors that name the rule and the field.

use super::{
    Dwell, Filter, Op, Rule, RuleBody, RuleError, RuleSet, Severity, Threshold, DEFAULT_EVIDENCE,
    MAX_EVIDENCE, MAX_RULES_PER_KIND,
};
use crate::event::{Metric, Status, Tier};
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::fmt::Write;
use std::sync::Arc;

type Obj = Map<String, Value>;

/// Which rule an error is about, while parsing one.
struct Ctx {
    rule: Option<String>,
}

impl Ctx {
    #[cold]
    fn err(&self, field: &str, message: impl Into<String>) -> RuleError {
        RuleError {
            rule: self.rule.clone(),
            field: field.to_string(),
            message: message.into(),
        }
    }

    fn reject_unknown(&self, obj: &Obj, known: &[&str], prefix: &str) -> Result<(), RuleError> {
        match obj.keys().find(|k| !known.contains(&k.as_str())) {
            Some(k) => Err(self.err(
                &format!("{prefix}{k}"),
                format!("unknown field; expected one of: {}", known.join(", ")),
            )),
            None => Ok(()),
        }
    }

    fn int(&self, obj: &Obj, field: &str, min: i64) -> Result<Option<i64>, RuleError> {
        match obj.get(field) {
            None => Ok(None),
            Some(v) => match v.as_i64() {
                Some(n) if n >= min => Ok(Some(n)),
                _ => Err(self.err(field, format!("must be an integer >= {min}, got {v}"))),
            },
        }
    }

    fn number(&self, obj: &Obj, field: &str) -> Result<Option<f64>, RuleError> {
        match obj.get(field) {
            None => Ok(None),
            Some(v) => match v.as_f64() {
                Some(x) if x.is_finite() => Ok(Some(x)),
                _ => Err(self.err(field, format!("must be a number, got {v}"))),
            },
        }
    }

    fn string<'a>(&self, obj: &'a Obj, field: &str) -> Result<Option<&'a str>, RuleError> {
        match obj.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(self.err(field, format!("must be a string, got {v}"))),
        }
    }

    fn required<T>(&self, v: Option<T>, field: &str) -> Result<T, RuleError> {
        v.ok_or_else(|| self.err(field, "is required"))
    }

    fn list<'a>(&self, v: &'a Value, field: &str) -> Result<&'a Vec<Value>, RuleError> {
        match v {
            Value::Array(a) if !a.is_empty() => Ok(a),
            Value::Array(_) => Err(self.err(field, "must not be empty")),
            _ => Err(self.err(field, format!("must be a list, got {v}"))),
        }
    }

    /// A list of strings, each mapped by `f`; errors name the element.
    fn list_of<T>(
        &self,
        v: &Value,
        field: &str,
        what: &str,
        f: impl Fn(&str) -> Option<T>,
    ) -> Result<Vec<T>, RuleError> {
        let items = self.list(v, field)?;
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                item.as_str().and_then(&f).ok_or_else(|| {
                    self.err(&format!("{field}[{i}]"), format!("{what}, got {item}"))
                })
            })
            .collect()
    }
}

fn choices<T: Copy>(all: &[T], name: impl Fn(T) -> &'static str) -> String {
    all.iter().map(|&t| name(t)).collect::<Vec<_>>().join(", ")
}

pub(super) fn parse(json: &[u8]) -> Result<RuleSet, RuleError> {
    let top = Ctx { rule: None };
    let doc: Value = serde_json::from_slice(json)
        .map_err(|e| top.err("(document)", format!("not valid JSON: {e}")))?;
    let Value::Object(obj) = &doc else {
        return Err(top.err("(document)", "a rule set must be a JSON object"));
    };
    top.reject_unknown(obj, &["version", "lateness_ms", "rules"], "")?;
    let version = top.int(obj, "version", 0)?.unwrap_or(0);
    let lateness_ms = top.int(obj, "lateness_ms", 0)?.unwrap_or(0);
    let rules_v = top.required(obj.get("rules"), "rules")?;
    let Value::Array(items) = rules_v else {
        return Err(top.err("rules", format!("must be a list, got {rules_v}")));
    };

    let mut rules = Vec::with_capacity(items.len());
    let mut ids = HashSet::new();
    for (i, item) in items.iter().enumerate() {
        let rule = parse_rule(item, i)?;
        if !ids.insert(rule.id.clone()) {
            return Err(RuleError {
                rule: Some(rule.id.to_string()),
                field: "id".into(),
                message: format!("duplicate id (rules[{i}] repeats an earlier rule's id)"),
            });
        }
        rules.push(rule);
    }
    let set = RuleSet {
        version,
        lateness_ms,
        rules,
    };
    for (kind, n) in [
        ("threshold", set.thresholds().count()),
        ("dwell", set.dwells().count()),
    ] {
        if n > MAX_RULES_PER_KIND {
            return Err(top.err(
                "rules",
                format!("at most {MAX_RULES_PER_KIND} {kind} rules per set, got {n}"),
            ));
        }
    }
    Ok(set)
}

fn parse_rule(item: &Value, index: usize) -> Result<Rule, RuleError> {
    let mut cx = Ctx {
        rule: Some(format!("rules[{index}]")),
    };
    let Value::Object(obj) = item else {
        return Err(cx.err(
            "(rule)",
            format!("each rule must be a JSON object, got {item}"),
        ));
    };
    let id = cx.required(cx.string(obj, "id")?, "id")?;
    if id.is_empty() || id.chars().count() > 64 {
        return Err(cx.err("id", "must be 1-64 characters"));
    }
    cx.rule = Some(id.to_string());

    let kind = cx.required(cx.string(obj, "kind")?, "kind")?;
    let common = ["id", "kind", "severity", "where"];
    let (own, body): (&[&str], _) = match kind {
        "threshold" => (
            &["metric", "op", "value", "for_ms", "clear", "evidence"],
            parse_threshold(&cx, obj)?,
        ),
        "dwell" => (&["for_ms", "statuses"], parse_dwell(&cx, obj)?),
        other => {
            return Err(cx.err(
                "kind",
                format!("must be 'threshold' or 'dwell', got '{other}'"),
            ))
        }
    };
    let known: Vec<&str> = common.iter().chain(own).copied().collect();
    cx.reject_unknown(obj, &known, "")?;

    let sev = cx.required(cx.string(obj, "severity")?, "severity")?;
    let severity = Severity::ALL
        .into_iter()
        .find(|s| s.as_str() == sev)
        .ok_or_else(|| {
            cx.err(
                "severity",
                format!(
                    "must be one of {}, got '{sev}'",
                    choices(&Severity::ALL, Severity::as_str)
                ),
            )
        })?;
    let filter = match obj.get("where") {
        None => Filter::default(),
        Some(v) => parse_filter(&cx, v)?,
    };
    Ok(Rule {
        id: Arc::from(id),
        severity,
        filter,
        body,
    })
}

fn parse_threshold(cx: &Ctx, obj: &Obj) -> Result<RuleBody, RuleError> {
    let m = cx.required(cx.string(obj, "metric")?, "metric")?;
    let metric = Metric::parse(m.as_bytes()).ok_or_else(|| {
        cx.err(
            "metric",
            format!(
                "must be one of {}, got '{m}'",
                choices(&Metric::ALL, Metric::as_str)
            ),
        )
    })?;
    let o = cx.required(cx.string(obj, "op")?, "op")?;
    let op = match o {
        "gt" => Op::Gt,
        "ge" => Op::Ge,
        "lt" => Op::Lt,
        "le" => Op::Le,
        _ => return Err(cx.err("op", format!("must be one of gt, ge, lt, le, got '{o}'"))),
    };
    let value = cx.required(cx.number(obj, "value")?, "value")?;
    let for_ms = cx.int(obj, "for_ms", 0)?.unwrap_or(0);
    let clear = cx.number(obj, "clear")?.unwrap_or(value);
    if op.is_upper() && clear > value {
        return Err(cx.err(
            "clear",
            format!("must be <= value ({value}) for op '{o}', got {clear}"),
        ));
    }
    if !op.is_upper() && clear < value {
        return Err(cx.err(
            "clear",
            format!("must be >= value ({value}) for op '{o}', got {clear}"),
        ));
    }
    let evidence = match cx.int(obj, "evidence", 0)? {
        None => DEFAULT_EVIDENCE,
        Some(n) if n <= i64::from(MAX_EVIDENCE) => n as u16,
        Some(n) => {
            return Err(cx.err(
                "evidence",
                format!("must be at most {MAX_EVIDENCE}, got {n}"),
            ))
        }
    };
    Ok(RuleBody::Threshold(Threshold {
        metric,
        op,
        value,
        for_ms,
        clear,
        evidence,
    }))
}

fn parse_dwell(cx: &Ctx, obj: &Obj) -> Result<RuleBody, RuleError> {
    let for_ms = cx.required(cx.int(obj, "for_ms", 1)?, "for_ms")?;
    let list = match obj.get("statuses") {
        None => Dwell::DEFAULT_STATUSES.to_vec(),
        Some(v) => cx.list_of(
            v,
            "statuses",
            &format!("must be one of {}", choices(&Status::ALL, Status::as_str)),
            |s| Status::parse(s.as_bytes()),
        )?,
    };
    let statuses = list.iter().fold(0u16, |acc, &s| acc | 1 << (s as u8));
    Ok(RuleBody::Dwell(Dwell { for_ms, statuses }))
}

fn parse_filter(cx: &Ctx, v: &Value) -> Result<Filter, RuleError> {
    let Value::Object(obj) = v else {
        return Err(cx.err("where", format!("must be an object, got {v}")));
    };
    cx.reject_unknown(obj, &["carrier", "tier", "fragile"], "where.")?;
    let mut f = Filter::default();
    if let Some(c) = obj.get("carrier") {
        let list = cx.list_of(c, "where.carrier", "must be a carrier code string", |s| {
            (!s.is_empty()).then(|| Arc::<str>::from(s))
        })?;
        f.carrier = Some(list);
    }
    if let Some(t) = obj.get("tier") {
        let list = cx.list_of(
            t,
            "where.tier",
            &format!("must be one of {}", choices(&Tier::ALL, Tier::as_str)),
            |s| Tier::parse(s.as_bytes()),
        )?;
        f.tier = Some(list.iter().fold(0u8, |acc, &t| acc | 1 << (t as u8)));
    }
    match obj.get("fragile") {
        None => {}
        Some(Value::Bool(b)) => f.fragile = Some(*b),
        Some(other) => {
            return Err(cx.err(
                "where.fragile",
                format!("must be true or false, got {other}"),
            ))
        }
    }
    Ok(f)
}

fn json_str(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

fn json_f64(x: f64) -> String {
    // serde_json prints integral floats as `3.0`, which parses back to the same f64.
    Value::from(x).to_string()
}

pub(super) fn to_json(set: &RuleSet) -> String {
    let mut s = format!(
        "{{\"version\":{},\"lateness_ms\":{},\"rules\":[",
        set.version, set.lateness_ms
    );
    for (i, r) in set.rules.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(
            s,
            "{{\"id\":{},\"kind\":\"{}\",\"severity\":\"{}\"",
            json_str(&r.id),
            r.kind().as_str(),
            r.severity.as_str()
        );
        match &r.body {
            RuleBody::Threshold(t) => {
                let _ = write!(
                    s,
                    ",\"metric\":\"{}\",\"op\":\"{}\",\"value\":{},\"for_ms\":{},\"clear\":{},\"evidence\":{}",
                    t.metric.as_str(),
                    t.op.as_str(),
                    json_f64(t.value),
                    t.for_ms,
                    json_f64(t.clear),
                    t.evidence
                );
            }
            RuleBody::Dwell(d) => {
                let names: Vec<String> = Status::ALL
                    .iter()
                    .filter(|st| d.arms(**st as u8))
                    .map(|st| json_str(st.as_str()))
                    .collect();
                let _ = write!(
                    s,
                    ",\"for_ms\":{},\"statuses\":[{}]",
                    d.for_ms,
                    names.join(",")
                );
            }
        }
        if !r.filter.is_empty() {
            let mut parts = Vec::new();
            if let Some(c) = &r.filter.carrier {
                let c: Vec<String> = c.iter().map(|x| json_str(x)).collect();
                parts.push(format!("\"carrier\":[{}]", c.join(",")));
            }
            if let Some(bits) = r.filter.tier {
                let t: Vec<String> = Tier::ALL
                    .iter()
                    .filter(|t| bits & (1 << (**t as u8)) != 0)
                    .map(|t| json_str(t.as_str()))
                    .collect();
                parts.push(format!("\"tier\":[{}]", t.join(",")));
            }
            if let Some(b) = r.filter.fragile {
                parts.push(format!("\"fragile\":{b}"));
            }
            let _ = write!(s, ",\"where\":{{{}}}", parts.join(","));
        }
        s.push('}');
    }
    s.push_str("]}");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC_EXAMPLE: &str = r#"{"version": 7, "lateness_ms": 5000, "rules": [
      {"id": "shock-3g", "kind": "threshold", "metric": "shock_g", "op": "gt", "value": 3.0, "severity": "critical"},
      {"id": "heat-35",  "kind": "threshold", "metric": "temp_c", "op": "gt", "value": 35.0,
       "for_ms": 600000, "clear": 33.0, "severity": "warning"},
      {"id": "dwell-2h", "kind": "dwell", "for_ms": 7200000, "severity": "warning"},
      {"id": "fragile-shock-2g", "kind": "threshold", "metric": "shock_g", "op": "gt", "value": 2.0,
       "severity": "critical", "where": {"fragile": true}}
    ]}"#;

    fn err(json: &str) -> RuleError {
        RuleSet::parse(json.as_bytes()).expect_err("should be rejected")
    }

    fn one(rule: &str) -> String {
        format!(r#"{{"version":1,"rules":[{rule}]}}"#)
    }

    #[test]
    fn parses_the_spec_example() {
        let set = RuleSet::parse(SPEC_EXAMPLE.as_bytes()).unwrap();
        assert_eq!(set.version, 7);
        assert_eq!(set.lateness_ms, 5000);
        assert_eq!(set.rules.len(), 4);
        let (_, heat) = set.thresholds().nth(1).unwrap();
        assert_eq!(
            (heat.for_ms, heat.clear, heat.evidence),
            (600_000, 33.0, 16)
        );
        let (_, shock) = set.thresholds().next().unwrap();
        assert_eq!(shock.clear, 3.0, "clear defaults to value");
        let (_, dwell) = set.dwells().next().unwrap();
        for st in Dwell::DEFAULT_STATUSES {
            assert!(dwell.arms(st as u8));
        }
        assert!(!dwell.arms(Status::Delivered as u8));
        assert_eq!(set.rules[3].filter.fragile, Some(true));
    }

    #[test]
    fn canonical_json_round_trips() {
        let set = RuleSet::parse(SPEC_EXAMPLE.as_bytes()).unwrap();
        let again = RuleSet::parse(set.to_json().as_bytes()).unwrap();
        assert_eq!(set, again);
        let with_where = one(
            r#"{"id":"w","kind":"dwell","for_ms":5,"severity":"info","statuses":["EXCEPTION"],
               "where":{"carrier":["SF","JD"],"tier":["premium","basic"],"fragile":false}}"#,
        );
        let set = RuleSet::parse(with_where.as_bytes()).unwrap();
        assert_eq!(RuleSet::parse(set.to_json().as_bytes()).unwrap(), set);
    }

    #[test]
    fn errors_name_rule_and_field() {
        let e = err(&one(
            r#"{"id":"heat","kind":"threshold","metric":"temp_c","op":"gt","value":35,"clear":36,"severity":"warning"}"#,
        ));
        assert_eq!(
            (e.rule.as_deref(), e.field.as_str()),
            (Some("heat"), "clear")
        );
        assert_eq!(
            e.to_string(),
            "rule 'heat': field 'clear': must be <= value (35) for op 'gt', got 36"
        );

        let e = err(&one(
            r#"{"id":"cold","kind":"threshold","metric":"temp_c","op":"lt","value":0,"clear":-1,"severity":"info"}"#,
        ));
        assert_eq!(e.field, "clear");
        assert!(e.message.contains(">= value (0)"), "{e}");

        let e = err(&one(
            r#"{"id":"x","kind":"threshold","metric":"speed","op":"gt","value":1,"severity":"info"}"#,
        ));
        assert_eq!((e.rule.as_deref(), e.field.as_str()), (Some("x"), "metric"));
        assert!(e.message.contains("shock_g"), "{e}");

        let e = err(&one(r#"{"kind":"dwell","for_ms":1,"severity":"info"}"#));
        assert_eq!(
            (e.rule.as_deref(), e.field.as_str()),
            (Some("rules[0]"), "id")
        );

        let e = err(&one(
            r#"{"id":"d","kind":"dwell","for_ms":0,"severity":"info"}"#,
        ));
        assert_eq!(e.field, "for_ms");

        let e = err(&one(
            r#"{"id":"d","kind":"dwell","for_ms":10,"severity":"loud"}"#,
        ));
        assert_eq!(e.field, "severity");

        let e = err(&one(
            r#"{"id":"d","kind":"dwell","for_ms":10,"severity":"info","colour":1}"#,
        ));
        assert_eq!(e.field, "colour");
        assert!(e.message.starts_with("unknown field"), "{e}");

        let e = err(&one(
            r#"{"id":"d","kind":"dwell","for_ms":10,"severity":"info","statuses":["IN_TRANSIT","LOST"]}"#,
        ));
        assert_eq!(e.field, "statuses[1]");

        let e = err(&one(
            r#"{"id":"d","kind":"dwell","for_ms":10,"severity":"info","where":{"tier":["gold"]}}"#,
        ));
        assert_eq!(e.field, "where.tier[0]");

        let e = err(&one(
            r#"{"id":"d","kind":"dwell","for_ms":10,"severity":"info","where":{"weight":3}}"#,
        ));
        assert_eq!(e.field, "where.weight");

        let e = err(&one(
            r#"{"id":"d","kind":"dwell","for_ms":10,"severity":"info","where":{"carrier":[]}}"#,
        ));
        assert_eq!(e.field, "where.carrier");

        let e = err(&one(
            r#"{"id":"t","kind":"threshold","metric":"temp_c","op":"gt","value":"hot","severity":"info"}"#,
        ));
        assert_eq!(e.field, "value");

        let e = err(&one(
            r#"{"id":"t","kind":"threshold","metric":"temp_c","op":"gt","value":1,"severity":"info","for_ms":1.5}"#,
        ));
        assert_eq!(e.field, "for_ms");

        let e = err(&one(r#"{"id":"t","kind":"counter","severity":"info"}"#));
        assert_eq!(e.field, "kind");
    }

    #[test]
    fn document_level_errors() {
        assert_eq!(err("{").field, "(document)");
        assert_eq!(err("[]").field, "(document)");
        assert_eq!(err(r#"{"version":1}"#).field, "rules");
        assert_eq!(err(r#"{"rules":[],"lateness_ms":-1}"#).field, "lateness_ms");
        assert_eq!(err(r#"{"rules":[],"extra":1}"#).field, "extra");
        let dup = r#"{"rules":[{"id":"a","kind":"dwell","for_ms":1,"severity":"info"},
                              {"id":"a","kind":"dwell","for_ms":2,"severity":"info"}]}"#;
        let e = err(dup);
        assert_eq!((e.rule.as_deref(), e.field.as_str()), (Some("a"), "id"));
        assert!(e.message.contains("duplicate"));
    }

    #[test]
    fn too_many_rules_of_a_kind() {
        let rules: Vec<String> = (0..=MAX_RULES_PER_KIND)
            .map(|i| format!(r#"{{"id":"d{i}","kind":"dwell","for_ms":1,"severity":"info"}}"#))
            .collect();
        let e = err(&format!(r#"{{"rules":[{}]}}"#, rules.join(",")));
        assert_eq!(e.field, "rules");
    }
}
