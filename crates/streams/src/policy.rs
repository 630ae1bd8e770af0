//! Resource-based policies (PutResourcePolicy) applied to data-plane calls, with IAM's evaluation
//! logic: a matching `Deny` statement wins; otherwise the call is allowed, since every caller
//! here belongs to the stream's account and there is no IAM whose identity policies could refuse
//! it (for a same-account caller an `Allow` from either side suffices).
//!
//! A policy is parsed once when it is stored, and everything Tideline cannot evaluate is refused
//! then (`Condition`, policy variables, unknown elements): an element that was ignored could turn
//! a `Deny` into an allow. A stored document that no longer parses denies every call.

use serde_json::{Map, Value};
use tideline_proto::AwsError;

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

/// A parsed policy document: only what its statements say, every element understood.
#[derive(Debug)]
pub struct Policy {
    statements: Vec<Statement>,
}

#[derive(Debug, PartialEq)]
enum Effect {
    Allow,
    Deny,
}

/// A `Principal`/`Action`/`Resource` element or its `Not...` form, which applies to everything
/// except what it lists.
#[derive(Debug)]
struct Element<T> {
    listed: T,
    negated: bool,
}

/// The principals of a statement. Only `AWS` principals (`*`, an account, its root, a user) can
/// name a Tideline caller; `Service`, `Federated` and `CanonicalUser` principals never do.
#[derive(Debug, Default)]
struct Principals {
    any: bool,
    aws: Vec<String>,
}

#[derive(Debug)]
struct Statement {
    effect: Effect,
    principal: Element<Principals>,
    action: Element<Vec<String>>,
    resource: Element<Vec<String>>,
}

const STATEMENT_ELEMENTS: [&str; 8] =
    ["Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource", "NotResource"];

fn unsupported(message: String) -> AwsError {
    AwsError::invalid_argument(format!("Unsupported resource policy: {message}"))
}

/// Parses a policy document, refusing what cannot be evaluated, with a message saying what.
pub fn parse(text: &str) -> Result<Policy, AwsError> {
    let Ok(Value::Object(document)) = serde_json::from_str::<Value>(text) else {
        return Err(AwsError::invalid_argument("Policy is not a valid JSON policy document."));
    };
    for (key, value) in &document {
        match key.as_str() {
            "Version" if matches!(value.as_str(), Some("2012-10-17" | "2008-10-17")) => {}
            "Version" => return Err(unsupported(format!("Version {value} (use \"2012-10-17\")."))),
            "Id" | "Statement" => {}
            other => return Err(unsupported(format!("unknown element {other} in the policy document."))),
        }
    }
    let statements = match document.get("Statement") {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(item @ Value::Object(_)) => vec![item],
        _ => return Err(unsupported("the document needs a Statement (an object or a list of objects).".into())),
    };
    let statements =
        statements.into_iter().enumerate().map(|(i, s)| parse_statement(i + 1, s)).collect::<Result<_, _>>()?;
    Ok(Policy { statements })
}

fn parse_statement(number: usize, value: &Value) -> Result<Statement, AwsError> {
    let fail = |message: &str| unsupported(format!("statement {number}: {message}"));
    let Value::Object(statement) = value else { return Err(fail("a statement must be an object.")) };
    if statement.contains_key("Condition") {
        return Err(fail(
            "Condition elements are not supported: Tideline has no request context to evaluate them, and \
             ignoring one would change what the statement allows or denies.",
        ));
    }
    if let Some(key) = statement.keys().find(|key| !STATEMENT_ELEMENTS.contains(&key.as_str())) {
        return Err(fail(&format!("unknown element {key}.")));
    }
    let effect = match statement.get("Effect").and_then(Value::as_str) {
        Some("Allow") => Effect::Allow,
        Some("Deny") => Effect::Deny,
        _ => return Err(fail("Effect must be \"Allow\" or \"Deny\".")),
    };
    let principal = element(statement, "Principal", &fail, principals)?;
    if principal.negated && effect == Effect::Allow {
        return Err(fail("NotPrincipal can only be used with \"Effect\": \"Deny\"."));
    }
    let action = element(statement, "Action", &fail, |value| strings(value).ok_or("a string or a list of strings"))?;
    let resource =
        element(statement, "Resource", &fail, |value| strings(value).ok_or("a string or a list of strings"))?;
    if resource.listed.iter().any(|pattern| pattern.contains("${")) {
        return Err(fail("policy variables (${...}) in resources are not supported."));
    }
    Ok(Statement { effect, principal, action, resource })
}

/// The element `name` or `Not<name>`: exactly one of them, its value read by `read`.
fn element<T>(
    statement: &Map<String, Value>,
    name: &str,
    fail: &dyn Fn(&str) -> AwsError,
    read: impl Fn(&Value) -> Result<T, &'static str>,
) -> Result<Element<T>, AwsError> {
    let negated_name = format!("Not{name}");
    let (value, negated) = match (statement.get(name), statement.get(&negated_name)) {
        (Some(value), None) => (value, false),
        (None, Some(value)) => (value, true),
        (Some(_), Some(_)) => return Err(fail(&format!("{name} and {negated_name} cannot both be given."))),
        (None, None) => return Err(fail(&format!("{name} or {negated_name} is required."))),
    };
    let shown = if negated { negated_name.as_str() } else { name };
    let listed = read(value).map_err(|expected| fail(&format!("{shown} must be {expected}.")))?;
    Ok(Element { listed, negated })
}

/// A member that is one non-empty string or a non-empty list of them.
fn strings(value: &Value) -> Option<Vec<String>> {
    let items: Vec<String> = match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items.iter().map(|item| item.as_str().map(str::to_owned)).collect::<Option<_>>()?,
        _ => return None,
    };
    (!items.is_empty() && items.iter().all(|s| !s.is_empty())).then_some(items)
}

fn principals(value: &Value) -> Result<Principals, &'static str> {
    const EXPECTED: &str = "\"*\" or an object of AWS, Service, Federated or CanonicalUser principals";
    match value {
        Value::String(star) if star == "*" => Ok(Principals { any: true, aws: Vec::new() }),
        Value::Object(map) if !map.is_empty() => {
            let mut principals = Principals::default();
            for (kind, names) in map {
                let names = strings(names).ok_or(EXPECTED)?;
                match kind.as_str() {
                    "AWS" => principals.aws.extend(names),
                    "Service" | "Federated" | "CanonicalUser" => {}
                    _ => return Err(EXPECTED),
                }
            }
            principals.any = principals.aws.iter().any(|name| name == "*");
            Ok(principals)
        }
        _ => Err(EXPECTED),
    }
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

impl Principals {
    fn names_account(&self, access: &Access) -> bool {
        let root = format!("arn:aws:iam::{}:root", access.account);
        self.any || self.aws.iter().any(|name| name == access.account || *name == root)
    }

    fn names_user(&self, access: &Access) -> bool {
        self.any || self.aws.iter().any(|name| name == access.principal)
    }
}

impl Statement {
    fn applies(&self, access: &Access) -> bool {
        let principals = &self.principal.listed;
        let principal = if self.principal.negated {
            // AWS checks the account and then the user: only a NotPrincipal naming both leaves the
            // user out ("you must also specify the account ARN of the not-denied principal").
            !(principals.names_account(access) && principals.names_user(access))
        } else {
            principals.names_account(access) || principals.names_user(access)
        };
        let action = self.action.listed.iter().any(|pattern| glob(pattern, access.action, true));
        let resource = self
            .resource
            .listed
            .iter()
            .any(|pattern| access.resources.iter().any(|resource| glob(pattern, resource, false)));
        principal && action != self.action.negated && resource != self.resource.negated
    }
}

impl Policy {
    /// Whether a statement explicitly denies the access (which no Allow overrides).
    pub fn denies(&self, access: &Access) -> bool {
        self.statements.iter().any(|s| s.effect == Effect::Deny && s.applies(access))
    }
}

/// Whether the stored policy document denies the access. One that does not parse (stored before
/// these rules) denies: failing open would ignore its Deny statements.
pub fn denies(policy: &str, access: &Access) -> bool {
    parse(policy).map_or(true, |policy| policy.denies(access))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = "arn:aws:kinesis:us-east-1:000000000000:stream/s";
    const USER: &str = "arn:aws:iam::000000000000:user/AKID";

    fn access<'a>(action: &'a str, resources: &'a [&'a str]) -> Access<'a> {
        Access { principal: USER, account: "000000000000", action, resources }
    }

    fn statement(body: &str) -> String {
        format!(r#"{{"Version":"2012-10-17","Statement":[{body}]}}"#)
    }

    fn refusal(text: &str) -> String {
        format!("{:?}", parse(text).expect_err("refused"))
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
    fn star_principal_and_single_statement() {
        let deny_all = r#"{"Statement":{"Effect":"Deny","Principal":"*","Action":"kinesis:Get*","Resource":"*"}}"#;
        assert!(denies(deny_all, &access("kinesis:GetRecords", &[STREAM])));
        assert!(!denies(deny_all, &access("kinesis:PutRecord", &[STREAM])));
    }

    #[test]
    fn not_action_and_not_resource_deny_everything_but_what_they_list() {
        let policy = statement(r#"{"Effect":"Deny","Principal":"*","NotAction":"kinesis:GetRecords","Resource":"*"}"#);
        assert!(denies(&policy, &access("kinesis:PutRecord", &[STREAM])));
        assert!(!denies(&policy, &access("kinesis:GetRecords", &[STREAM])));

        let policy = statement(r#"{"Effect":"Deny","Principal":"*","Action":"*","NotResource":"*:stream/other"}"#);
        assert!(denies(&policy, &access("kinesis:PutRecord", &[STREAM])));
        let other = "arn:aws:kinesis:us-east-1:000000000000:stream/other";
        assert!(!denies(&policy, &access("kinesis:PutRecord", &[other])));
    }

    #[test]
    fn not_principal_excludes_a_user_only_with_its_account() {
        let deny_except = |names: &str| {
            statement(&format!(r#"{{"Effect":"Deny","NotPrincipal":{{"AWS":[{names}]}},"Action":"*","Resource":"*"}}"#))
        };
        let put = access("kinesis:PutRecord", &[STREAM]);
        let other = Access { principal: "arn:aws:iam::000000000000:user/OTHER", ..access("kinesis:PutRecord", &[]) };
        let both = deny_except(&format!(r#""{USER}","arn:aws:iam::000000000000:root""#));
        assert!(!denies(&both, &put));
        assert!(denies(&both, &Access { resources: &[STREAM], ..other }));
        // Without the account, the account is denied, and its user with it.
        assert!(denies(&deny_except(&format!(r#""{USER}""#)), &put));
        assert!(denies(&deny_except(r#""000000000000""#), &put));
    }

    #[test]
    fn allow_statements_do_not_deny() {
        let policy = statement(r#"{"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"*","Resource":"*"}"#);
        assert!(!denies(&policy, &access("kinesis:PutRecord", &[STREAM])));
    }

    #[test]
    fn what_cannot_be_evaluated_is_refused() {
        let conditional = statement(
            r#"{"Effect":"Deny","Principal":"*","Action":"*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}"#,
        );
        assert!(refusal(&conditional).contains("statement 1: Condition elements are not supported"));
        assert!(denies(&conditional, &access("kinesis:GetRecords", &[STREAM])), "stored, it fails closed");
        let unknown = statement(r#"{"Effect":"Deny","Principal":"*","Action":"*","Resource":"*","Extra":1}"#);
        assert!(refusal(&unknown).contains("unknown element Extra"));
        let not_principal_allow = statement(r#"{"Effect":"Allow","NotPrincipal":"*","Action":"*","Resource":"*"}"#);
        assert!(refusal(&not_principal_allow).contains("NotPrincipal can only be used"));
        let both = statement(r#"{"Effect":"Deny","Principal":"*","Action":"*","NotAction":"*","Resource":"*"}"#);
        assert!(refusal(&both).contains("Action and NotAction cannot both be given"));
        let variable =
            statement(r#"{"Effect":"Deny","Principal":"*","Action":"*","Resource":"*:stream/${aws:username}"}"#);
        assert!(refusal(&variable).contains("policy variables"));
        assert!(refusal(r#"{"Statement":[],"Foo":1}"#).contains("unknown element Foo"));
        assert!(refusal("not json").contains("not a valid JSON policy document"));
        assert!(denies("not json", &access("kinesis:GetRecords", &[STREAM])));
        assert!(parse(r#"{"Version":"2012-10-17","Statement":[]}"#).is_ok());
    }
}
