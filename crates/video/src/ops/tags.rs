//! Tags, by stream name or ARN (TagStream, UntagStream, ListTagsForStream) and by resource ARN
//! (TagResource, UntagResource, ListTagsForResource): two spellings of the same operations.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tideline_proto::{RestRequest, Validator};

use super::streams::StreamInput;
use super::{ok, Empty, Response};
use crate::error::VideoError;
use crate::model::StreamMeta;
use crate::service::VideoService;
use crate::validate::{self, MAX_TAGS};

/// Adds or replaces tags, within the per-stream limit.
async fn add(service: &VideoService, meta: &StreamMeta, tags: BTreeMap<String, String>) -> Result<(), VideoError> {
    let mut updated = meta.clone();
    updated.tags.extend(tags);
    if updated.tags.len() > MAX_TAGS {
        return Err(VideoError::TooManyTags { limit: MAX_TAGS });
    }
    service.commit(updated).await
}

/// Removes tags; keys the stream does not carry are ignored, as AWS does.
async fn remove(service: &VideoService, meta: &StreamMeta, keys: &[String]) -> Result<(), VideoError> {
    let mut updated = meta.clone();
    for key in keys {
        updated.tags.remove(key);
    }
    service.commit(updated).await
}

/// Every tag fits one page (at most 50), so no `NextToken` is ever returned.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ListTagsOutput<'a> {
    tags: &'a BTreeMap<String, String>,
}

/// Streams named with an ARN that is not a stream ARN, in the *Stream tag operations.
fn stream_locator(service: &VideoService, input: &StreamInput) -> Result<Arc<StreamMeta>, VideoError> {
    service.locate(input.as_ref(), VideoError::InvalidResourceFormat)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagStreamInput {
    #[serde(flatten)]
    stream: StreamInput,
    tags: Option<BTreeMap<String, String>>,
}

pub(super) async fn tag_stream(service: &VideoService, request: RestRequest<'_>) -> Response {
    let input: TagStreamInput = request.json()?;
    let mut check = Validator::new();
    input.stream.check(&mut check);
    check.required("tags", input.tags.as_ref());
    let tags = input.tags.unwrap_or_default();
    check.length("tags", None, tags.len(), 1, MAX_TAGS);
    validate::tag_map(&mut check, &tags);
    validate::finish(check)?;
    let _change = service.changes.lock().await;
    let meta = stream_locator(service, &input.stream)?;
    add(service, &meta, tags).await?;
    ok(&Empty {})
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UntagStreamInput {
    #[serde(flatten)]
    stream: StreamInput,
    tag_key_list: Option<Vec<String>>,
}

pub(super) async fn untag_stream(service: &VideoService, request: RestRequest<'_>) -> Response {
    let input: UntagStreamInput = request.json()?;
    let mut check = Validator::new();
    input.stream.check(&mut check);
    check.required("tagKeyList", input.tag_key_list.as_ref());
    let keys = input.tag_key_list.unwrap_or_default();
    validate::tag_keys(&mut check, &keys);
    validate::finish(check)?;
    let _change = service.changes.lock().await;
    let meta = stream_locator(service, &input.stream)?;
    remove(service, &meta, &keys).await?;
    ok(&Empty {})
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListTagsForStreamInput {
    #[serde(flatten)]
    stream: StreamInput,
    next_token: Option<String>,
}

pub(super) async fn list_for_stream(service: &VideoService, request: RestRequest<'_>) -> Response {
    let input: ListTagsForStreamInput = request.json()?;
    let mut check = Validator::new();
    input.stream.check(&mut check);
    check.string("nextToken", input.next_token.as_deref(), 0, 512, None);
    validate::finish(check)?;
    let meta = stream_locator(service, &input.stream)?;
    ok(&ListTagsOutput { tags: &meta.tags })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Tag {
    key: Option<String>,
    value: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagResourceInput {
    #[serde(rename = "ResourceARN")]
    resource_arn: Option<String>,
    tags: Option<Vec<Tag>>,
}

fn check_resource_arn(check: &mut Validator, arn: Option<&String>) {
    check.required("resourceARN", arn);
    check.string("resourceARN", arn.map(String::as_str), 1, 1024, None);
}

fn resource(service: &VideoService, arn: Option<&str>) -> Result<Arc<StreamMeta>, VideoError> {
    service.by_arn(arn.unwrap_or_default(), VideoError::InvalidArgument)
}

pub(super) async fn tag_resource(service: &VideoService, request: RestRequest<'_>) -> Response {
    let input: TagResourceInput = request.json()?;
    let mut check = Validator::new();
    check_resource_arn(&mut check, input.resource_arn.as_ref());
    check.required("tags", input.tags.as_ref());
    let list = input.tags.unwrap_or_default();
    check.length("tags", None, list.len(), 1, MAX_TAGS);
    for tag in &list {
        check.required("tags.member.key", tag.key.as_ref());
        check.required("tags.member.value", tag.value.as_ref());
    }
    let tags: BTreeMap<String, String> =
        list.into_iter().map(|tag| (tag.key.unwrap_or_default(), tag.value.unwrap_or_default())).collect();
    validate::tag_map(&mut check, &tags);
    validate::finish(check)?;
    let _change = service.changes.lock().await;
    let meta = resource(service, input.resource_arn.as_deref())?;
    add(service, &meta, tags).await?;
    ok(&Empty {})
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UntagResourceInput {
    #[serde(rename = "ResourceARN")]
    resource_arn: Option<String>,
    tag_key_list: Option<Vec<String>>,
}

pub(super) async fn untag_resource(service: &VideoService, request: RestRequest<'_>) -> Response {
    let input: UntagResourceInput = request.json()?;
    let mut check = Validator::new();
    check_resource_arn(&mut check, input.resource_arn.as_ref());
    check.required("tagKeyList", input.tag_key_list.as_ref());
    let keys = input.tag_key_list.unwrap_or_default();
    validate::tag_keys(&mut check, &keys);
    validate::finish(check)?;
    let _change = service.changes.lock().await;
    let meta = resource(service, input.resource_arn.as_deref())?;
    remove(service, &meta, &keys).await?;
    ok(&Empty {})
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListTagsForResourceInput {
    #[serde(rename = "ResourceARN")]
    resource_arn: Option<String>,
    next_token: Option<String>,
}

pub(super) async fn list_for_resource(service: &VideoService, request: RestRequest<'_>) -> Response {
    let input: ListTagsForResourceInput = request.json()?;
    let mut check = Validator::new();
    check_resource_arn(&mut check, input.resource_arn.as_ref());
    check.string("nextToken", input.next_token.as_deref(), 0, 512, None);
    validate::finish(check)?;
    let meta = resource(service, input.resource_arn.as_deref())?;
    ok(&ListTagsOutput { tags: &meta.tags })
}
