//! Stream lifecycle and description: CreateStream, DeleteStream, DescribeStream,
//! DescribeStreamSummary, ListStreams, DescribeLimits, UpdateStreamMode.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use tideline_proto::{AwsError, Timestamp, Validator};

use super::shapes::{self, EnhancedMetrics, Shard, StreamModeDetails};
use super::Empty;
use crate::model::{shard_id, StreamMeta, StreamMode, StreamStatus};
use crate::rules;
use crate::service::{now_ms, storage_failure, StreamEntry, StreamsService};

fn stream_mode(v: &mut Validator, details: Option<&StreamModeDetails>) {
    if let Some(details) = details {
        let mode = details.stream_mode.as_deref();
        v.required("streamModeDetails.streamMode", mode);
        v.one_of("streamModeDetails.streamMode", mode, &StreamMode::VALUES);
    }
}

fn parse_mode(details: Option<&StreamModeDetails>) -> StreamMode {
    details.and_then(|d| d.stream_mode.as_deref()).and_then(StreamMode::parse).unwrap_or(StreamMode::Provisioned)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateStreamInput {
    stream_name: Option<String>,
    shard_count: Option<i64>,
    stream_mode_details: Option<StreamModeDetails>,
    tags: Option<BTreeMap<String, String>>,
}

impl CreateStreamInput {
    fn validate(&self) -> Result<(), AwsError> {
        let mut v = Validator::new();
        let on_demand = parse_mode(self.stream_mode_details.as_ref()) == StreamMode::OnDemand;
        if !on_demand {
            v.required("shardCount", self.shard_count.as_ref());
        }
        v.integer("shardCount", self.shard_count, 1, i64::from(i32::MAX));
        v.required("streamName", self.stream_name.as_ref());
        rules::stream_name(&mut v, self.stream_name.as_deref());
        stream_mode(&mut v, self.stream_mode_details.as_ref());
        if let Some(tags) = &self.tags {
            v.length("tags", None, tags.len(), 1, 200);
        }
        v.finish()
    }
}

pub async fn create_stream(service: &StreamsService, input: CreateStreamInput) -> Result<Empty, AwsError> {
    input.validate()?;
    let name = input.stream_name.unwrap_or_default();
    let mode = parse_mode(input.stream_mode_details.as_ref());
    let shard_count = match mode {
        StreamMode::OnDemand => rules::ON_DEMAND_SHARDS,
        StreamMode::Provisioned => input.shard_count.unwrap_or(1) as u32,
    };
    if let Some(tags) = &input.tags {
        super::tags::check_tags(tags)?;
    }
    if service.streams.read().contains_key(&name) {
        return Err(AwsError::in_use(format!("Stream {name} under account {} already exists.", service.account())));
    }
    service.check_shard_limit(shard_count)?;
    let id = service.storage.metadata().next_id("stream").await.map_err(storage_failure)?;
    let mut meta = StreamMeta::new(id, name.clone(), now_ms(), shard_count, mode);
    meta.tags = input.tags.unwrap_or_default();

    // Claim the name before the (awaited) persist, so two concurrent creates cannot both win.
    let entry = {
        let mut streams = service.streams.write();
        if streams.contains_key(&name) {
            return Err(AwsError::in_use(format!("Stream {name} under account {} already exists.", service.account())));
        }
        let entry = StreamEntry::new(meta.clone());
        streams.insert(name.clone(), Arc::clone(&entry));
        entry
    };
    if let Err(error) = service.commit_change(&entry, meta, StreamStatus::Creating).await {
        service.streams.write().remove(&name);
        return Err(error);
    }
    service.metrics.register_stream(&name);
    tracing::info!(stream = %name, shards = shard_count, mode = ?mode, "stream created");
    Ok(Empty {})
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteStreamInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    enforce_consumer_deletion: Option<bool>,
}

pub async fn delete_stream(service: &StreamsService, input: DeleteStreamInput) -> Result<Empty, AwsError> {
    let mut v = Validator::new();
    rules::stream_target(&mut v, input.stream_name.as_deref(), input.stream_arn.as_deref());
    v.finish()?;
    let (name, entry) = service.target(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    let control = entry.control.lock().await;
    let mut meta = entry.meta();
    match meta.status {
        StreamStatus::Deleting => return Err(service.stream_not_found(&name)),
        StreamStatus::Creating => service.require_active(&meta)?,
        _ => {}
    }
    if !meta.consumers.is_empty() && input.enforce_consumer_deletion != Some(true) {
        return Err(AwsError::in_use(format!(
            "Consumers exist in stream {name} under account {} and EnforceConsumerDeletion is either not set or is false.",
            service.account()
        )));
    }
    service.forget(&name).await?;
    service.metrics.forget_stream(&name);
    if let Some(limits) = &service.limits {
        limits.forget_stream(meta.id);
    }
    tracing::info!(stream = %name, "stream deleted");
    let delay = service.config.transition_delay;
    meta.status = StreamStatus::Deleting;
    entry.replace(meta.clone());
    drop(control);
    let storage = Arc::clone(&service.storage);
    let streams = Arc::clone(&service.streams);
    let finish = move || {
        let mut streams = streams.write();
        if streams.get(&name).is_some_and(|current| Arc::ptr_eq(current, &entry)) {
            streams.remove(&name);
        }
    };
    if delay.is_zero() {
        finish();
        storage.delete_stream(meta.id).await.map_err(storage_failure)?;
    } else {
        // The stream stays visible as DELETING until the delay has passed.
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            finish();
            if let Err(error) = storage.delete_stream(meta.id).await {
                tracing::error!(%error, "deleting stream logs failed");
            }
        });
    }
    Ok(Empty {})
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeStreamInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    limit: Option<i64>,
    exclusive_start_shard_id: Option<String>,
}

/// What DescribeStream and DescribeStreamSummary both say about a stream.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamBasics {
    stream_name: String,
    #[serde(rename = "StreamARN")]
    stream_arn: String,
    stream_status: &'static str,
    stream_mode_details: StreamModeDetails,
    retention_period_hours: u32,
    stream_creation_timestamp: Timestamp,
    enhanced_monitoring: Vec<EnhancedMetrics>,
    encryption_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_id: Option<String>,
}

fn stream_basics(service: &StreamsService, meta: &StreamMeta) -> StreamBasics {
    StreamBasics {
        stream_name: meta.name.clone(),
        stream_arn: service.arn(meta),
        stream_status: meta.status.as_str(),
        stream_mode_details: shapes::mode_details(meta),
        retention_period_hours: meta.retention_hours,
        stream_creation_timestamp: shapes::created(meta),
        enhanced_monitoring: shapes::enhanced_monitoring(meta),
        encryption_type: shapes::encryption_type(meta),
        key_id: meta.encryption_key.clone(),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamDescription {
    #[serde(flatten)]
    basics: StreamBasics,
    shards: Vec<Shard>,
    has_more_shards: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeStreamOutput {
    stream_description: StreamDescription,
}

pub async fn describe_stream(
    service: &StreamsService,
    input: DescribeStreamInput,
) -> Result<DescribeStreamOutput, AwsError> {
    let mut v = Validator::new();
    v.integer("limit", input.limit, 1, 10_000);
    rules::shard_id(&mut v, "exclusiveStartShardId", input.exclusive_start_shard_id.as_deref());
    rules::stream_target(&mut v, input.stream_name.as_deref(), input.stream_arn.as_deref());
    v.finish()?;
    let (_, entry) = service.target(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    let meta = entry.meta();
    let limit = input.limit.unwrap_or(100) as usize;
    let after = input.exclusive_start_shard_id.unwrap_or_default();
    // Expired shards are not listed, as in AWS.
    let trim_horizon_ms = service.trim_horizon_ms(&meta, now_ms());
    let mut indices = (0..meta.shards.len() as u32)
        .filter(|&i| shard_id(i) > after && meta.shard(i).is_some_and(|shard| !shard.expired(trim_horizon_ms)));
    let shards: Vec<Shard> = indices.by_ref().take(limit).map(|i| shapes::shard(&meta, i)).collect();
    let has_more_shards = indices.next().is_some();
    Ok(DescribeStreamOutput {
        stream_description: StreamDescription { basics: stream_basics(service, &meta), shards, has_more_shards },
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamTargetInput {
    pub stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamDescriptionSummary {
    #[serde(flatten)]
    basics: StreamBasics,
    open_shard_count: u32,
    consumer_count: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeStreamSummaryOutput {
    stream_description_summary: StreamDescriptionSummary,
}

pub async fn describe_stream_summary(
    service: &StreamsService,
    input: StreamTargetInput,
) -> Result<DescribeStreamSummaryOutput, AwsError> {
    let mut v = Validator::new();
    rules::stream_target(&mut v, input.stream_name.as_deref(), input.stream_arn.as_deref());
    v.finish()?;
    let (_, entry) = service.target(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    let meta = entry.meta();
    Ok(DescribeStreamSummaryOutput {
        stream_description_summary: StreamDescriptionSummary {
            basics: stream_basics(service, &meta),
            open_shard_count: meta.open_shard_count(),
            consumer_count: meta.consumers.len() as u32,
        },
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListStreamsInput {
    limit: Option<i64>,
    exclusive_start_stream_name: Option<String>,
    next_token: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamSummary {
    stream_name: String,
    #[serde(rename = "StreamARN")]
    stream_arn: String,
    stream_status: &'static str,
    stream_mode_details: StreamModeDetails,
    stream_creation_timestamp: Timestamp,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListStreamsOutput {
    stream_names: Vec<String>,
    has_more_streams: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
    stream_summaries: Vec<StreamSummary>,
}

pub async fn list_streams(service: &StreamsService, input: ListStreamsInput) -> Result<ListStreamsOutput, AwsError> {
    let mut v = Validator::new();
    v.integer("limit", input.limit, 1, 10_000);
    rules::stream_name(&mut v, input.exclusive_start_stream_name.as_deref());
    v.string("nextToken", input.next_token.as_deref(), 1, 1_048_576, None);
    v.finish()?;
    // The token is the last name already returned; names sort, so the listing resumes after it.
    let after = match input.next_token.as_deref() {
        Some(token) => URL_SAFE_NO_PAD
            .decode(token)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| AwsError::invalid_argument(format!("Invalid NextToken: {token}")))?,
        None => input.exclusive_start_stream_name.unwrap_or_default(),
    };
    let limit = input.limit.unwrap_or(100) as usize;
    let listed: Vec<StreamMeta> = {
        let streams = service.streams.read();
        let mut range = streams.range::<String, _>((std::ops::Bound::Excluded(&after), std::ops::Bound::Unbounded));
        let page: Vec<StreamMeta> = range.by_ref().take(limit + 1).map(|(_, entry)| entry.meta()).collect();
        page
    };
    let has_more_streams = listed.len() > limit;
    let listed = &listed[..listed.len().min(limit)];
    Ok(ListStreamsOutput {
        stream_names: listed.iter().map(|m| m.name.clone()).collect(),
        has_more_streams,
        next_token: has_more_streams.then(|| listed.last().map(|m| URL_SAFE_NO_PAD.encode(&m.name))).flatten(),
        stream_summaries: listed
            .iter()
            .map(|meta| StreamSummary {
                stream_name: meta.name.clone(),
                stream_arn: service.arn(meta),
                stream_status: meta.status.as_str(),
                stream_mode_details: shapes::mode_details(meta),
                stream_creation_timestamp: shapes::created(meta),
            })
            .collect(),
    })
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeLimitsOutput {
    shard_limit: u32,
    open_shard_count: u32,
    on_demand_stream_count: u32,
    on_demand_stream_count_limit: u32,
}

pub async fn describe_limits(service: &StreamsService, _input: Empty) -> Result<DescribeLimitsOutput, AwsError> {
    let on_demand_stream_count =
        service.streams.read().values().filter(|entry| entry.state.read().meta.mode == StreamMode::OnDemand).count()
            as u32;
    Ok(DescribeLimitsOutput {
        shard_limit: service.config.shard_limit,
        open_shard_count: service.open_shards_in_account(),
        on_demand_stream_count,
        on_demand_stream_count_limit: 50,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateStreamModeInput {
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    stream_mode_details: Option<StreamModeDetails>,
}

pub async fn update_stream_mode(service: &StreamsService, input: UpdateStreamModeInput) -> Result<Empty, AwsError> {
    let mut v = Validator::new();
    v.required("streamARN", input.stream_arn.as_ref());
    rules::stream_arn(&mut v, input.stream_arn.as_deref());
    v.required("streamModeDetails", input.stream_mode_details.as_ref());
    stream_mode(&mut v, input.stream_mode_details.as_ref());
    v.finish()?;
    let mut change = service.change_active(None, input.stream_arn.as_deref()).await?;
    change.meta.mode = parse_mode(input.stream_mode_details.as_ref());
    service.commit(change, StreamStatus::Updating).await?;
    Ok(Empty {})
}
