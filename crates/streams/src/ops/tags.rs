//! Tags, by stream name (AddTagsToStream, RemoveTagsFromStream, ListTagsForStream) and by
//! resource ARN (TagResource, UntagResource, ListTagsForResource), where the ARN names a stream or
//! one of its consumers.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use tideline_proto::{AwsError, Pattern, Validator};

use super::consumers::parse_consumer_arn;
use super::Empty;
use crate::model::{StreamMeta, StreamStatus};
use crate::rules;
use crate::service::{Change, StreamsService};

/// AWS's per-resource tag limit.
const MAX_TAGS: usize = 50;

/// AWS's tag character rule: letters, numbers and spaces representable in UTF-8, and
/// `_ . : / = + - @`. `\p{Z}` holds the space separators, not control characters such as a tab.
static TAG_TEXT: Pattern = Pattern::new(r"[\p{L}\p{Z}\p{N}_.:/=+\-@]*");

/// Character rules for tag keys and values, checked before anything is changed.
pub(crate) fn check_tags(tags: &BTreeMap<String, String>) -> Result<(), AwsError> {
    if tags.iter().all(|(key, value)| TAG_TEXT.is_match(key) && TAG_TEXT.is_match(value)) {
        Ok(())
    } else {
        Err(AwsError::invalid_argument(
            "Some tags contain invalid characters. Valid characters: Unicode letters, digits, white space, _ . / = + - % @.",
        ))
    }
}

/// Length rules of a tag map member, when present.
pub(crate) fn validate_tags(v: &mut Validator, tags: Option<&BTreeMap<String, String>>, max_entries: usize) {
    let Some(tags) = tags else { return };
    v.length("tags", None, tags.len(), 1, max_entries);
    for (key, value) in tags {
        v.string("tags.key", Some(key), 1, 128, None);
        v.string("tags.value", Some(value), 0, 256, None);
    }
}

fn validate_tag_map(v: &mut Validator, tags: Option<&BTreeMap<String, String>>, max_entries: usize) {
    v.required("tags", tags);
    validate_tags(v, tags, max_entries);
}

fn validate_tag_keys(v: &mut Validator, keys: Option<&Vec<String>>, path: &str, max_entries: usize) {
    v.required(path, keys);
    let Some(keys) = keys else { return };
    v.length(path, Some(&format!("[{}]", keys.join(", "))), keys.len(), 1, max_entries);
    for (i, key) in keys.iter().enumerate() {
        v.string(&format!("{path}.{}.member", i + 1), Some(key), 1, 128, None);
    }
}

/// What carries the tags: the stream itself, or one of its consumers (named by a consumer ARN).
enum Tagged<'a> {
    Stream,
    Consumer { arn: &'a str, name: &'a str, created_secs: i64 },
}

impl<'a> Tagged<'a> {
    fn of_arn(arn: &'a str) -> Self {
        match parse_consumer_arn(arn) {
            Some((_, name, created_secs)) => Self::Consumer { arn, name, created_secs },
            None => Self::Stream,
        }
    }

    fn tags<'m>(&self, meta: &'m mut StreamMeta) -> Result<&'m mut BTreeMap<String, String>, AwsError> {
        match *self {
            Self::Stream => Ok(&mut meta.tags),
            Self::Consumer { arn, name, created_secs } => meta
                .consumers
                .iter_mut()
                .find(|c| c.is(name, created_secs))
                .map(|c| &mut c.tags)
                .ok_or_else(|| AwsError::not_found(format!("Resource {arn} not found."))),
        }
    }

    fn describe(&self, stream: &str) -> String {
        match self {
            Self::Stream => format!("stream {stream}"),
            Self::Consumer { name, .. } => format!("consumer {name} of stream {stream}"),
        }
    }
}

/// AWS's limit on the tags of one stream or consumer, counting those it has and those added.
fn check_tag_count(
    service: &StreamsService,
    tagged: &Tagged,
    stream: &str,
    current: &BTreeMap<String, String>,
    added: &BTreeMap<String, String>,
) -> Result<(), AwsError> {
    if current.keys().chain(added.keys()).collect::<BTreeSet<_>>().len() <= MAX_TAGS {
        return Ok(());
    }
    let kind = if matches!(tagged, Tagged::Stream) { "stream" } else { "consumer" };
    Err(AwsError::invalid_argument(format!(
        "Failed to add tags to {} under account {} because a given {kind} cannot have more than {MAX_TAGS} tags associated with it.",
        tagged.describe(stream),
        service.account()
    )))
}

async fn add_tags(
    service: &StreamsService,
    mut change: Change,
    tagged: Tagged<'_>,
    tags: BTreeMap<String, String>,
) -> Result<Empty, AwsError> {
    check_tags(&tags)?;
    service.require_active(&change.meta)?;
    let current = tagged.tags(&mut change.meta)?;
    check_tag_count(service, &tagged, &change.name, current, &tags)?;
    current.extend(tags);
    service.commit(change, StreamStatus::Active).await?;
    Ok(Empty {})
}

async fn remove_tags(
    service: &StreamsService,
    mut change: Change,
    tagged: Tagged<'_>,
    keys: &[String],
) -> Result<Empty, AwsError> {
    service.require_active(&change.meta)?;
    let current = tagged.tags(&mut change.meta)?;
    for key in keys {
        current.remove(key);
    }
    service.commit(change, StreamStatus::Active).await?;
    Ok(Empty {})
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    key: String,
    value: String,
}

fn tag_list<'a>(tags: impl Iterator<Item = (&'a String, &'a String)>) -> Vec<Tag> {
    tags.map(|(key, value)| Tag { key: key.clone(), value: value.clone() }).collect()
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AddTagsToStreamInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    tags: Option<BTreeMap<String, String>>,
}

pub async fn add_tags_to_stream(service: &StreamsService, input: AddTagsToStreamInput) -> Result<Empty, AwsError> {
    let mut v = Validator::new();
    validate_tag_map(&mut v, input.tags.as_ref(), 200);
    rules::stream_target(&mut v, input.stream_name.as_deref(), input.stream_arn.as_deref());
    v.finish()?;
    let change = service.change(input.stream_name.as_deref(), input.stream_arn.as_deref()).await?;
    add_tags(service, change, Tagged::Stream, input.tags.unwrap_or_default()).await
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RemoveTagsFromStreamInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    tag_keys: Option<Vec<String>>,
}

pub async fn remove_tags_from_stream(
    service: &StreamsService,
    input: RemoveTagsFromStreamInput,
) -> Result<Empty, AwsError> {
    let mut v = Validator::new();
    validate_tag_keys(&mut v, input.tag_keys.as_ref(), "tagKeys", 50);
    rules::stream_target(&mut v, input.stream_name.as_deref(), input.stream_arn.as_deref());
    v.finish()?;
    let change = service.change(input.stream_name.as_deref(), input.stream_arn.as_deref()).await?;
    remove_tags(service, change, Tagged::Stream, &input.tag_keys.unwrap_or_default()).await
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsForStreamInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    exclusive_start_tag_key: Option<String>,
    limit: Option<i64>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsForStreamOutput {
    tags: Vec<Tag>,
    has_more_tags: bool,
}

pub async fn list_tags_for_stream(
    service: &StreamsService,
    input: ListTagsForStreamInput,
) -> Result<ListTagsForStreamOutput, AwsError> {
    let mut v = Validator::new();
    v.string("exclusiveStartTagKey", input.exclusive_start_tag_key.as_deref(), 1, 128, None);
    v.integer("limit", input.limit, 1, 50);
    rules::stream_target(&mut v, input.stream_name.as_deref(), input.stream_arn.as_deref());
    v.finish()?;
    let (_, entry) = service.target(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    let meta = entry.meta();
    let after = input.exclusive_start_tag_key.unwrap_or_default();
    let limit = input.limit.unwrap_or(50) as usize;
    let mut remaining = meta.tags.iter().filter(|(key, _)| **key > after);
    let tags = tag_list(remaining.by_ref().take(limit));
    Ok(ListTagsForStreamOutput { tags, has_more_tags: remaining.next().is_some() })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagResourceInput {
    #[serde(rename = "ResourceARN")]
    resource_arn: Option<String>,
    tags: Option<BTreeMap<String, String>>,
}

pub async fn tag_resource(service: &StreamsService, input: TagResourceInput) -> Result<Empty, AwsError> {
    let mut v = Validator::new();
    validate_tag_map(&mut v, input.tags.as_ref(), 200);
    rules::resource_arn(&mut v, input.resource_arn.as_deref());
    v.finish()?;
    let arn = input.resource_arn.as_deref().unwrap_or_default();
    let (name, entry) = service.resource(arn)?;
    add_tags(service, Change::begin(name, entry).await, Tagged::of_arn(arn), input.tags.unwrap_or_default()).await
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UntagResourceInput {
    #[serde(rename = "ResourceARN")]
    resource_arn: Option<String>,
    tag_keys: Option<Vec<String>>,
}

pub async fn untag_resource(service: &StreamsService, input: UntagResourceInput) -> Result<Empty, AwsError> {
    let mut v = Validator::new();
    validate_tag_keys(&mut v, input.tag_keys.as_ref(), "tagKeys", 50);
    rules::resource_arn(&mut v, input.resource_arn.as_deref());
    v.finish()?;
    let arn = input.resource_arn.as_deref().unwrap_or_default();
    let (name, entry) = service.resource(arn)?;
    remove_tags(service, Change::begin(name, entry).await, Tagged::of_arn(arn), &input.tag_keys.unwrap_or_default())
        .await
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsForResourceInput {
    #[serde(rename = "ResourceARN")]
    resource_arn: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsForResourceOutput {
    tags: Vec<Tag>,
}

pub async fn list_tags_for_resource(
    service: &StreamsService,
    input: ListTagsForResourceInput,
) -> Result<ListTagsForResourceOutput, AwsError> {
    let mut v = Validator::new();
    rules::resource_arn(&mut v, input.resource_arn.as_deref());
    v.finish()?;
    let arn = input.resource_arn.as_deref().unwrap_or_default();
    let (_, entry) = service.resource(arn)?;
    let mut meta = entry.meta();
    Ok(ListTagsForResourceOutput { tags: tag_list(Tagged::of_arn(arn).tags(&mut meta)?.iter()) })
}
