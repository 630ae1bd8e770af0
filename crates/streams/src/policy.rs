//! Resource-based policies (PutResourcePolicy) applied to data-plane calls. There is no IAM here,
//! so a caller of the account is allowed unless a statement explicitly denies it, as AWS decides
//! for same-account callers whose identity policies allow the call. Statements with a
//! `Condition` are not evaluated (treated as not matching): conditions need request context this
//! server does not have.

use serde_json::Value;

/// The call being authorized.
pub struct Access<'a> {
    /// `arn:aws:iam::<account>:user/<access key id>`: verified keys map to users of the account.
    pub principal: &'a str,
    pub account: &'a str,
    /// `kinesis:PutRecord`, ...
    pub action: &'a str,
    /// The stream (or consumer) ARN.
    pub resources: &'a [&'a str],
}

/// `*` and `?` wildcards, as IAM matches actions (case-insensitively) and resources.
fn glob(pattern: &str, text: &str, ignore_case: bool) -> bool {
    let (pattern, text): (Vec<char>, Vec<char>) = if ignore_case {
        (pattern.to_lowercase().chars().collect(), text.to_lowercase().chars().collect())
    } else {
        (pattern.chars().collect(), text.chars().collect())
    };
    let (mut p, mut t, mut star, mut mark) = (0, 0, None, 0);
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some(p);
            mark = t;
            p += 1;
        } else if let Some(s) = star {
            p = s + 1;
            mark += 1;
            t = mark;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

/// A policy member that is one string or a list of strings.
fn strings(value: Option<&Value>) -> Vec<&str> {
    match value {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn principal_matches(principal: Option<&Value>, access: &Access) -> bool {
    let names = match principal {
        Some(Value::String(star)) => vec![star.as_str()],
        Some(Value::Object(map)) => strings(map.get("AWS")),
        _ => Vec::new(),
    };
    let root = format!("arn:aws:iam::{}:root", access.account);
    names.iter().any(|name| *name == "*" || *name == access.account || *name == root || *name == access.principal)
}

fn statement_denies(statement: &Value, access: &Access) -> bool {
    statement.get("Effect").and_then(Value::as_str) == Some("Deny")
        && statement.get("Condition").is_none()
        && principal_matches(statement.get("Principal"), access)
        && strings(statement.get("Action")).iter().any(|action| glob(action, access.action, true))
        && strings(statement.get("Resource"))
            .iter()
            .any(|pattern| access.resources.iter().any(|resource| glob(pattern, resource, false)))
}

/// Whether the policy document explicitly denies the access.
pub fn denies(policy: &str, access: &Access) -> bool {
    let Ok(document) = serde_json::from_str::<Value>(policy) else { return false };
    match document.get("Statement") {
        Some(Value::Array(statements)) => statements.iter().any(|s| statement_denies(s, access)),
        Some(statement @ Value::Object(_)) => statement_denies(statement, access),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = "arn:aws:kinesis:us-east-1:000000000000:stream/s";

    fn access<'a>(action: &'a str, resources: &'a [&'a str]) -> Access<'a> {
        Access { principal: "arn:aws:iam::000000000000:user/AKID", account: "000000000000", action, resources }
    }

    #[test]
    fn globs() {
        assert!(glob("kinesis:Put*", "kinesis:PutRecords", true));
        assert!(glob("KINESIS:getrecords", "kinesis:GetRecords", true));
        assert!(glob("arn:aws:kinesis:*:stream/s", STREAM, false));
        assert!(!glob("arn:aws:kinesis:*:stream/t", STREAM, false));
        assert!(glob("*", "", false));
    }

    #[test]
    fn explicit_deny_matches_principal_action_and_resource() {
        let policy = r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Principal":{"AWS":"*"},"Action":"kinesis:*","Resource":"*"},
            {"Effect":"Deny","Principal":{"AWS":["arn:aws:iam::000000000000:user/AKID"]},"Action":["kinesis:PutRecord","kinesis:PutRecords"],"Resource":"arn:aws:kinesis:us-east-1:000000000000:stream/s"}]}"#;
        assert!(denies(policy, &access("kinesis:PutRecords", &[STREAM])));
        assert!(!denies(policy, &access("kinesis:GetRecords", &[STREAM])));
        let other =
            Access { principal: "arn:aws:iam::000000000000:user/OTHER", ..access("kinesis:PutRecord", &[STREAM]) };
        assert!(!denies(policy, &other));
    }

    #[test]
    fn star_principal_single_statement_and_conditions() {
        let deny_all = r#"{"Statement":{"Effect":"Deny","Principal":"*","Action":"kinesis:Get*","Resource":"*"}}"#;
        assert!(denies(deny_all, &access("kinesis:GetRecords", &[STREAM])));
        let conditional = r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}"#;
        assert!(!denies(conditional, &access("kinesis:GetRecords", &[STREAM])));
        assert!(!denies("not json", &access("kinesis:GetRecords", &[STREAM])));
    }
}
