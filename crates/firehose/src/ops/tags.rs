//! TagDeliveryStream, UntagDeliveryStream, ListTagsForDeliveryStream.

use serde::{Deserialize, Serialize};
use tideline_proto::{AwsError, Validator};

use super::delivery_streams::validate_name;
use super::Empty;
use crate::model::Tag;
use crate::service::FirehoseService;

/// AWS's per-delivery-stream tag limit.
const MAX_TAGS: usize = 50;

fn valid_tag_text(text: &str) -> bool {
    text.chars().all(|c| c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@%".contains(c))
}

/// Tag list members, as CreateDeliveryStream and TagDeliveryStream take them.
pub(crate) fn validate_tags(v: &mut Validator, path: &str, tags: &[Tag]) {
    v.length(path, None, tags.len(), 1, MAX_TAGS);
    for (i, tag) in tags.iter().enumerate() {
        let member = format!("{path}.{}.member", i + 1);
        v.string(&format!("{member}.key"), Some(&tag.key), 1, 128, None);
        if !valid_tag_text(&tag.key) || tag.key.starts_with("aws:") {
            v.violation(
                Some(&tag.key),
                &format!("{member}.key"),
                "Member must satisfy regular expression pattern: ^(?!aws:)[\\p{L}\\p{Z}\\p{N}_.:\\/=+\\-@%]*$",
            );
        }
        if let Some(value) = &tag.value {
            v.string(&format!("{member}.value"), Some(value), 0, 256, None);
            if !valid_tag_text(value) {
                v.violation(
                    Some(value),
                    &format!("{member}.value"),
                    "Member must satisfy regular expression pattern: ^[\\p{L}\\p{Z}\\p{N}_.:\\/=+\\-@%]*$",
                );
            }
        }
    }
}

/// Adds or replaces tags, refusing to go over the limit.
pub(crate) fn merge_tags(
    service: &FirehoseService,
    name: &str,
    current: &mut Vec<Tag>,
    tags: Vec<Tag>,
) -> Result<(), AwsError> {
    for tag in tags {
        match current.iter_mut().find(|existing| existing.key == tag.key) {
            Some(existing) => existing.value = tag.value,
            None => current.push(tag),
        }
    }
    if current.len() > MAX_TAGS {
        return Err(AwsError::limit_exceeded(format!(
            "Exceeded the maximum number of tags ({MAX_TAGS}) for delivery stream {name} under account {}.",
            service.account()
        )));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TagInput {
    delivery_stream_name: Option<String>,
    tags: Option<Vec<Tag>>,
}

pub(crate) async fn tag(service: &std::sync::Arc<FirehoseService>, input: TagInput) -> Result<Empty, AwsError> {
    let mut v = Validator::new();
    validate_name(&mut v, input.delivery_stream_name.as_deref());
    if v.required("tags", input.tags.as_ref()) {
        validate_tags(&mut v, "tags", input.tags.as_deref().unwrap_or_default());
    }
    v.finish()?;
    let name = input.delivery_stream_name.unwrap_or_default();
    let _change = service.changes.lock().await;
    let mut meta = (*service.get(&name)?.meta).clone();
    merge_tags(service, &name, &mut meta.tags, input.tags.unwrap_or_default())?;
    service.commit(meta).await?;
    Ok(Empty {})
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct UntagInput {
    delivery_stream_name: Option<String>,
    tag_keys: Option<Vec<String>>,
}

pub(crate) async fn untag(service: &std::sync::Arc<FirehoseService>, input: UntagInput) -> Result<Empty, AwsError> {
    let mut v = Validator::new();
    validate_name(&mut v, input.delivery_stream_name.as_deref());
    if v.required("tagKeys", input.tag_keys.as_ref()) {
        let keys = input.tag_keys.as_deref().unwrap_or_default();
        v.length("tagKeys", None, keys.len(), 1, MAX_TAGS);
        for (i, key) in keys.iter().enumerate() {
            v.string(&format!("tagKeys.{}.member", i + 1), Some(key), 1, 128, None);
        }
    }
    v.finish()?;
    let name = input.delivery_stream_name.unwrap_or_default();
    let _change = service.changes.lock().await;
    let mut meta = (*service.get(&name)?.meta).clone();
    let keys = input.tag_keys.unwrap_or_default();
    meta.tags.retain(|tag| !keys.contains(&tag.key));
    service.commit(meta).await?;
    Ok(Empty {})
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListInput {
    delivery_stream_name: Option<String>,
    exclusive_start_tag_key: Option<String>,
    limit: Option<i64>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListOutput {
    tags: Vec<Tag>,
    has_more_tags: bool,
}

pub(crate) async fn list(service: &std::sync::Arc<FirehoseService>, input: ListInput) -> Result<ListOutput, AwsError> {
    let mut v = Validator::new();
    validate_name(&mut v, input.delivery_stream_name.as_deref());
    v.string("exclusiveStartTagKey", input.exclusive_start_tag_key.as_deref(), 1, 128, None);
    v.integer("limit", input.limit, 1, 50);
    v.finish()?;
    let stream = service.get(input.delivery_stream_name.as_deref().unwrap_or_default())?;
    let mut tags = stream.meta.tags.clone();
    tags.sort_by(|a, b| a.key.cmp(&b.key));
    if let Some(start) = &input.exclusive_start_tag_key {
        tags.retain(|tag| &tag.key > start);
    }
    let limit = input.limit.map_or(50, |limit| limit as usize);
    let has_more_tags = tags.len() > limit;
    tags.truncate(limit);
    Ok(ListOutput { tags, has_more_tags })
}
