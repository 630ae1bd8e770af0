use std::sync::OnceLock;

use regex::Regex;

use crate::{AwsError, ErrorCode};

/// A member's regular-expression constraint. The source text appears verbatim in AWS's message, so
/// it is kept next to the compiled form (compiled on first use, anchored at both ends as AWS does).
pub struct Pattern {
    source: &'static str,
    compiled: OnceLock<Option<Regex>>,
}

impl Pattern {
    pub const fn new(source: &'static str) -> Self {
        Self { source, compiled: OnceLock::new() }
    }

    pub fn source(&self) -> &'static str {
        self.source
    }

    pub fn is_match(&self, text: &str) -> bool {
        self.compiled
            // AWS's patterns are Java regexes, whose `\w` is ASCII; Unicode `\w` would also make a
            // `\w{1,255}` too large to compile. (A nested class keeps `[\w.]` valid.)
            .get_or_init(|| Regex::new(&format!("^(?:{})$", self.source.replace(r"\w", "[0-9A-Za-z_]"))).ok())
            .as_ref()
            .is_some_and(|regex| regex.is_match(text))
    }
}

/// Collects constraint violations and renders them the way AWS's `ValidationException` does:
/// `2 validation errors detected: Value 'x' at 'member' failed to satisfy constraint: ...; ...`.
/// Member paths are the lower-camel-case wire names (`records.1.member.partitionKey`).
#[derive(Default)]
pub struct Validator {
    errors: Vec<String>,
}

/// AWS reports at most this many violations in one message.
const MAX_REPORTED: usize = 10;

impl Validator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a violation; `value` is the rendered value, `None` for a missing member.
    pub fn violation(&mut self, value: Option<&str>, path: &str, constraint: &str) {
        if self.errors.len() >= MAX_REPORTED {
            return;
        }
        let value = match value {
            Some(value) => format!("'{value}'"),
            None => "null".to_string(),
        };
        self.errors.push(format!("Value {value} at '{path}' failed to satisfy constraint: {constraint}"));
    }

    /// `Member must not be null` when the member is absent. Returns whether it is present.
    pub fn required<T: ?Sized>(&mut self, path: &str, value: Option<&T>) -> bool {
        if value.is_none() {
            self.violation(None, path, "Member must not be null");
        }
        value.is_some()
    }

    /// Pattern and length (in characters) constraints of a string member, when present.
    pub fn string(&mut self, path: &str, value: Option<&str>, min: usize, max: usize, pattern: Option<&Pattern>) {
        let Some(value) = value else { return };
        if let Some(pattern) = pattern {
            if !pattern.is_match(value) {
                let constraint = format!("Member must satisfy regular expression pattern: {}", pattern.source());
                self.violation(Some(value), path, &constraint);
            }
        }
        self.length(path, Some(value), value.chars().count(), min, max);
    }

    /// Length constraints of a member whose rendered value is `rendered`.
    pub fn length(&mut self, path: &str, rendered: Option<&str>, length: usize, min: usize, max: usize) {
        if length < min {
            let constraint = format!("Member must have length greater than or equal to {min}");
            self.violation(rendered, path, &constraint);
        }
        if length > max {
            let constraint = format!("Member must have length less than or equal to {max}");
            self.violation(rendered, path, &constraint);
        }
    }

    /// Range constraints of an integer member, when present.
    pub fn integer(&mut self, path: &str, value: Option<i64>, min: i64, max: i64) {
        let Some(value) = value else { return };
        let rendered = value.to_string();
        if value < min {
            let constraint = format!("Member must have value greater than or equal to {min}");
            self.violation(Some(&rendered), path, &constraint);
        }
        if value > max {
            let constraint = format!("Member must have value less than or equal to {max}");
            self.violation(Some(&rendered), path, &constraint);
        }
    }

    /// Enum constraint of a string member, when present.
    pub fn one_of(&mut self, path: &str, value: Option<&str>, allowed: &[&str]) {
        let Some(value) = value else { return };
        if !allowed.contains(&value) {
            let constraint = format!("Member must satisfy enum value set: [{}]", allowed.join(", "));
            self.violation(Some(value), path, &constraint);
        }
    }

    /// Length constraint of a blob member; AWS renders blobs as the Java buffer that held them.
    pub fn blob(&mut self, path: &str, value: Option<&[u8]>, max: usize) {
        let Some(value) = value else { return };
        if value.len() > max {
            let rendered = format!("java.nio.HeapByteBuffer[pos=0 lim={0} cap={0}]", value.len());
            self.length(path, Some(&rendered), value.len(), 0, max);
        }
    }

    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }

    /// The `ValidationException` for everything recorded, if anything was.
    pub fn finish(self) -> Result<(), AwsError> {
        match self.errors.len() {
            0 => Ok(()),
            n => {
                let plural = if n == 1 { "" } else { "s" };
                let message = format!("{n} validation error{plural} detected: {}", self.errors.join("; "));
                Err(AwsError::new(ErrorCode::Validation, message))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static NAME: Pattern = Pattern::new("[a-zA-Z0-9_.-]+");

    #[test]
    fn single_violation_matches_aws_wording() {
        let mut v = Validator::new();
        v.integer("shardCount", Some(0), 1, 100_000);
        let error = v.finish().unwrap_err();
        assert_eq!(error.code, ErrorCode::Validation);
        assert_eq!(
            error.message.as_deref(),
            Some("1 validation error detected: Value '0' at 'shardCount' failed to satisfy constraint: Member must have value greater than or equal to 1")
        );
    }

    #[test]
    fn several_violations_are_counted_and_joined() {
        let mut v = Validator::new();
        v.required::<String>("streamName", None);
        v.string("shardId", Some("a b"), 1, 128, Some(&NAME));
        let message = v.finish().unwrap_err().message.unwrap();
        assert_eq!(
            message,
            "2 validation errors detected: Value null at 'streamName' failed to satisfy constraint: Member must not be null; \
             Value 'a b' at 'shardId' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+"
        );
    }

    #[test]
    fn patterns_are_anchored() {
        assert!(NAME.is_match("abc.def-1_2"));
        assert!(!NAME.is_match("abc def"));
        assert!(!NAME.is_match(""));
    }

    #[test]
    fn blob_length_renders_like_java() {
        let mut v = Validator::new();
        v.blob("data", Some(&[0u8; 5]), 4);
        assert!(v.finish().unwrap_err().message.unwrap().contains(
            "Value 'java.nio.HeapByteBuffer[pos=0 lim=5 cap=5]' at 'data' failed to satisfy constraint: Member must have length less than or equal to 4"
        ));
    }
}
