//! FilterCriteria: EventBridge event patterns over a record's `data` (decoded as JSON), the one
//! key Kinesis mappings filter on. A record is sent when any filter matches.
//!
//! Hand-written: the crates that implement EventBridge patterns (e.g. `event-pattern`) are young
//! and pull in much more than the operators Lambda documents; this covers those operators
//! (exact values, `prefix`, `suffix`, `equals-ignore-case`, `numeric`, `exists`, `anything-but`).

use serde_json::{Map, Value};

use crate::error::{LambdaError, Result};

/// Patterns AWS accepts are at most 4,096 characters (Filter.Pattern).
const MAX_PATTERN_CHARS: usize = 4096;

#[derive(Debug, Clone)]
pub struct Filters {
    patterns: Vec<Map<String, Value>>,
}

impl Filters {
    /// Parses FilterCriteria's patterns; malformed ones are InvalidParameterValueException.
    pub fn parse(patterns: &[String]) -> Result<Self> {
        let invalid = |pattern: &str, why: &str| {
            LambdaError::invalid(format!("Invalid filter pattern definition. {why}: {pattern}"))
        };
        let mut parsed = Vec::with_capacity(patterns.len());
        for pattern in patterns {
            if pattern.chars().count() > MAX_PATTERN_CHARS {
                return Err(invalid(pattern, "The pattern is longer than 4096 characters"));
            }
            let Ok(Value::Object(object)) = serde_json::from_str::<Value>(pattern) else {
                return Err(invalid(pattern, "The pattern is not a JSON object"));
            };
            check(&object).map_err(|why| invalid(pattern, &why))?;
            parsed.push(object);
        }
        Ok(Self { patterns: parsed })
    }

    /// No filters: every record passes.
    pub fn none() -> Self {
        Self { patterns: Vec::new() }
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether a record with this data passes: `{"data": <JSON data>}` (data that is not JSON
    /// only matches patterns that do not look inside `data`).
    pub fn accepts(&self, data: &[u8]) -> bool {
        if self.patterns.is_empty() {
            return true;
        }
        let mut event = Map::new();
        if let Ok(value) = serde_json::from_slice::<Value>(data) {
            event.insert("data".into(), value);
        }
        self.patterns.iter().any(|pattern| object_matches(pattern, &event))
    }
}

/// A pattern's leaves must be arrays of values or operator objects.
fn check(pattern: &Map<String, Value>) -> std::result::Result<(), String> {
    for (key, value) in pattern {
        match value {
            Value::Object(inner) => check(inner)?,
            Value::Array(rules) => {
                for rule in rules {
                    if let Value::Object(operator) = rule {
                        let known = ["prefix", "suffix", "equals-ignore-case", "numeric", "exists", "anything-but"];
                        if operator.len() != 1 || !operator.keys().all(|name| known.contains(&name.as_str())) {
                            return Err(format!("Unrecognized match type at {key}"));
                        }
                    }
                }
            }
            _ => return Err(format!("Match value must be an array at {key}")),
        }
    }
    Ok(())
}

fn object_matches(pattern: &Map<String, Value>, event: &Map<String, Value>) -> bool {
    pattern.iter().all(|(key, rule)| match rule {
        Value::Object(inner) => matches!(event.get(key), Some(Value::Object(nested)) if object_matches(inner, nested)),
        Value::Array(rules) => field_matches(rules, event.get(key)),
        _ => false,
    })
}

/// A field matches when any rule matches it (or, for an array field, any of its elements).
fn field_matches(rules: &[Value], field: Option<&Value>) -> bool {
    rules.iter().any(|rule| match (rule, field) {
        (Value::Object(operator), _) if operator.contains_key("exists") => {
            operator.get("exists") == Some(&Value::Bool(field.is_some()))
        }
        (_, None) => false,
        (_, Some(Value::Array(values))) => values.iter().any(|value| rule_matches(rule, value)),
        (_, Some(value)) => rule_matches(rule, value),
    })
}

fn rule_matches(rule: &Value, value: &Value) -> bool {
    let Value::Object(operator) = rule else { return scalar_equal(rule, value) };
    let Some((name, argument)) = operator.iter().next() else { return false };
    match name.as_str() {
        "prefix" => text_rule(argument, value, |text, prefix| text.starts_with(prefix)),
        "suffix" => text_rule(argument, value, |text, suffix| text.ends_with(suffix)),
        "equals-ignore-case" => text_rule(argument, value, |text, other| text.to_lowercase() == other.to_lowercase()),
        "numeric" => numeric(argument, value),
        "anything-but" => match argument {
            Value::Array(excluded) => !excluded.iter().any(|excluded| scalar_equal(excluded, value)),
            Value::Object(_) => !rule_matches(argument, value),
            scalar => !scalar_equal(scalar, value),
        },
        _ => false,
    }
}

fn text_rule(argument: &Value, value: &Value, test: impl Fn(&str, &str) -> bool) -> bool {
    matches!((argument, value), (Value::String(argument), Value::String(text)) if test(text, argument))
}

/// Numbers compare by value (`5` matches `5.0`), everything else exactly.
fn scalar_equal(rule: &Value, value: &Value) -> bool {
    match (rule, value) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => rule == value,
    }
}

/// `{"numeric": [">", 0, "<=", 5]}`: every comparison holds.
fn numeric(argument: &Value, value: &Value) -> bool {
    let (Value::Array(terms), Some(number)) = (argument, value.as_f64()) else { return false };
    terms.chunks(2).all(|pair| match pair {
        [Value::String(op), bound] => bound.as_f64().is_some_and(|bound| match op.as_str() {
            "<" => number < bound,
            "<=" => number <= bound,
            "=" => number == bound,
            ">" => number > bound,
            ">=" => number >= bound,
            _ => false,
        }),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepts(pattern: &str, data: &str) -> bool {
        Filters::parse(&[pattern.to_string()]).unwrap().accepts(data.as_bytes())
    }

    #[test]
    fn operators_match_as_eventbridge_documents() {
        let order = r#"{"type":"order","amount":12.5,"tags":["a","b"],"customer":{"id":"AB12"}}"#;
        assert!(accepts(r#"{"data":{"type":["order"]}}"#, order));
        assert!(!accepts(r#"{"data":{"type":["refund"]}}"#, order));
        assert!(accepts(r#"{"data":{"customer":{"id":[{"prefix":"AB"}]}}}"#, order));
        assert!(accepts(r#"{"data":{"customer":{"id":[{"suffix":"12"}]}}}"#, order));
        assert!(accepts(r#"{"data":{"type":[{"equals-ignore-case":"ORDER"}]}}"#, order));
        assert!(accepts(r#"{"data":{"amount":[{"numeric":[">",10,"<=",20]}]}}"#, order));
        assert!(!accepts(r#"{"data":{"amount":[{"numeric":["<",10]}]}}"#, order));
        assert!(accepts(r#"{"data":{"tags":["b"]}}"#, order), "any element of an array field");
        assert!(accepts(r#"{"data":{"missing":[{"exists":false}]}}"#, order));
        assert!(!accepts(r#"{"data":{"type":[{"exists":false}]}}"#, order));
        assert!(accepts(r#"{"data":{"type":[{"anything-but":["refund","void"]}]}}"#, order));
        assert!(!accepts(r#"{"data":{"type":[{"anything-but":"order"}]}}"#, order));
        assert!(accepts(r#"{"data":{"type":[{"anything-but":{"prefix":"ref"}}]}}"#, order));
        assert!(!accepts(r#"{"data":{"type":["order"]}}"#, "not json"));
    }

    #[test]
    fn any_filter_passes_and_bad_patterns_are_refused() {
        let filters = Filters::parse(&[r#"{"data":{"a":[1]}}"#.into(), r#"{"data":{"b":[2]}}"#.into()]).unwrap();
        assert!(filters.accepts(br#"{"b":2}"#));
        assert!(!filters.accepts(br#"{"a":2}"#));
        assert!(Filters::parse(&["[1]".into()]).is_err());
        assert!(Filters::parse(&[r#"{"data":{"a":1}}"#.into()]).is_err());
        assert!(Filters::parse(&[r#"{"data":{"a":[{"regex":"x"}]}}"#.into()]).is_err());
    }
}
