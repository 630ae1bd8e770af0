//! Input constraints of the Kinesis Video API model (lengths, patterns, ranges), checked with
//! `tideline-proto`'s validator. Kinesis Video reports violations as `InvalidArgumentException`
//! (its model has no `ValidationException`), with the usual "validation error detected" text.

use std::collections::BTreeMap;

use tideline_proto::{AwsError, ErrorCode, Pattern, Validator};

/// Most tags a stream carries (`TagsPerResourceExceededLimitException` beyond).
pub(crate) const MAX_TAGS: usize = 50;
/// The longest retention Kinesis Video accepts: ten years.
pub(crate) const MAX_RETENTION_HOURS: i64 = 87_600;

pub(crate) static NAME: Pattern = Pattern::new("[a-zA-Z0-9_.-]+");
pub(crate) static MEDIA_TYPE: Pattern = Pattern::new(r"[\w\-\.\+]+/[\w\-\.\+]+(,[\w\-\.\+]+/[\w\-\.\+]+)*");
pub(crate) static VERSION: Pattern = Pattern::new("[a-zA-Z0-9]+");
static TAG: Pattern = Pattern::new(r"[\p{L}\p{Z}\p{N}_.:/=+\-@]*");

/// The member constraints every operation naming a stream shares.
pub(crate) fn stream_ref(check: &mut Validator, name: Option<&str>, arn: Option<&str>) {
    check.string("streamName", name, 1, 256, Some(&NAME));
    check.string("streamARN", arn, 1, 1024, None);
}

pub(crate) fn tags<'a>(check: &mut Validator, tags: impl IntoIterator<Item = (&'a str, &'a str)>) {
    for (key, value) in tags {
        check.string("tags", Some(key), 1, 128, Some(&TAG));
        check.string("tags", Some(value), 0, 256, Some(&TAG));
    }
}

pub(crate) fn tag_keys(check: &mut Validator, keys: &[String]) {
    check.length("tagKeyList", None, keys.len(), 1, MAX_TAGS);
    for key in keys {
        check.string("tagKeyList", Some(key), 1, 128, Some(&TAG));
    }
}

pub(crate) fn tag_map(check: &mut Validator, map: &BTreeMap<String, String>) {
    tags(check, map.iter().map(|(key, value)| (key.as_str(), value.as_str())));
}

/// The violations found, as Kinesis Video reports them.
pub(crate) fn finish(check: Validator) -> Result<(), AwsError> {
    check
        .finish()
        .map_err(|error| AwsError::new(ErrorCode::Named("InvalidArgumentException"), error.message.unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_follow_the_model() {
        assert!(NAME.is_match("cam-1_front.v2"));
        assert!(!NAME.is_match("bad name"));
        assert!(MEDIA_TYPE.is_match("video/h264,audio/aac"));
        assert!(!MEDIA_TYPE.is_match("video/h264,"));
        assert!(VERSION.is_match("abc123"));
        assert!(TAG.is_match("video ops@x"));
        assert!(!TAG.is_match("team!"));
    }

    #[test]
    fn violations_are_invalid_argument_errors() {
        let mut check = Validator::new();
        stream_ref(&mut check, Some("bad name"), None);
        let error = finish(check).unwrap_err();
        assert_eq!(error.code, ErrorCode::Named("InvalidArgumentException"));
        assert_eq!(error.status(), 400);
        assert!(error.message.unwrap().contains("at 'streamName' failed to satisfy constraint"));
    }
}
