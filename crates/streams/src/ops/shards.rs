//! Shards: ListShards, and resharding with SplitShard, MergeShards and UpdateShardCount.

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use tideline_proto::{AwsError, ErrorCode, Timestamp, Validator};
use tideline_storage::ShardKey;

use super::shapes::{self, Shard};
use crate::hash::parse_hash_key;
use crate::model::{shard_id, ShardMeta, StreamMeta, StreamMode, StreamStatus};
use crate::resharding::{scale_uniformly, shards_closed_by_scaling};
use crate::rules;
use crate::service::{now_ms, storage_failure, Change, StreamsService};

const FILTER_TYPES: [&str; 6] =
    ["AFTER_SHARD_ID", "AT_TRIM_HORIZON", "FROM_TRIM_HORIZON", "AT_LATEST", "AT_TIMESTAMP", "FROM_TIMESTAMP"];

/// ListShards pagination tokens expire like AWS's.
const NEXT_TOKEN_TTL_MS: i64 = 300_000;

#[derive(Deserialize, Serialize, Clone)]
#[serde(rename_all = "PascalCase")]
pub struct ShardFilter {
    #[serde(rename = "Type")]
    kind: Option<String>,
    shard_id: Option<String>,
    timestamp: Option<Timestamp>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListShardsInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    next_token: Option<String>,
    exclusive_start_shard_id: Option<String>,
    max_results: Option<i64>,
    stream_creation_timestamp: Option<Timestamp>,
    shard_filter: Option<ShardFilter>,
}

impl ListShardsInput {
    fn validate(&self) -> Result<(), AwsError> {
        let mut v = Validator::new();
        rules::shard_id(&mut v, "exclusiveStartShardId", self.exclusive_start_shard_id.as_deref());
        v.integer("maxResults", self.max_results, 1, 10_000);
        v.string("nextToken", self.next_token.as_deref(), 1, 1_048_576, None);
        if let Some(filter) = &self.shard_filter {
            v.required("shardFilter.type", filter.kind.as_ref());
            v.one_of("shardFilter.type", filter.kind.as_deref(), &FILTER_TYPES);
            rules::shard_id(&mut v, "shardFilter.shardId", filter.shard_id.as_deref());
        }
        rules::stream_target(&mut v, self.stream_name.as_deref(), self.stream_arn.as_deref());
        v.finish()
    }
}

/// What a NextToken carries: where the listing stopped, under which filter, and when it was made.
#[derive(Serialize, Deserialize)]
struct ListShardsToken {
    stream: String,
    after: String,
    filter: Option<ShardFilter>,
    created_ms: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListShardsOutput {
    shards: Vec<Shard>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

/// Whether a shard is listed under a ShardFilter. Expired shards (closed before the trim
/// horizon) are never listed, as in AWS ("This action does not list expired shards").
fn passes(
    filter: Option<&ShardFilter>,
    meta: &StreamMeta,
    index: u32,
    shard: &ShardMeta,
    trim_horizon_ms: i64,
) -> Result<bool, AwsError> {
    // No parent, or one that has expired.
    let parent_expired =
        |parent: Option<u32>| parent.and_then(|parent| meta.shard(parent)).is_none_or(|p| p.expired(trim_horizon_ms));
    if shard.expired(trim_horizon_ms) {
        return Ok(false);
    }
    let Some(filter) = filter else { return Ok(true) };
    let timestamp = || {
        filter.timestamp.map(|t| t.0).ok_or_else(|| {
            AwsError::invalid_argument(format!(
                "Timestamp must be specified for ShardFilter type {}",
                filter.kind.as_deref().unwrap_or("")
            ))
        })
    };
    Ok(match filter.kind.as_deref().unwrap_or("") {
        "AFTER_SHARD_ID" => {
            let after = filter.shard_id.as_deref().ok_or_else(|| {
                AwsError::invalid_argument("ShardId must be specified for ShardFilter type AFTER_SHARD_ID")
            })?;
            shard_id(index).as_str() > after
        }
        // The shards open at the trim horizon: the original shards until they expire, then
        // the children of expired parents (a merge's two parents close, so expire, together).
        "AT_TRIM_HORIZON" => parent_expired(shard.parent) && parent_expired(shard.adjacent_parent),
        "FROM_TRIM_HORIZON" => true,
        "AT_LATEST" => shard.is_open(),
        "AT_TIMESTAMP" => {
            let at = timestamp()?;
            shard.created_ms <= at && shard.closed_ms.is_none_or(|closed| closed > at)
        }
        _ => {
            let from = timestamp()?;
            shard.closed_ms.is_none_or(|closed| closed > from)
        }
    })
}

pub async fn list_shards(service: &StreamsService, input: ListShardsInput) -> Result<ListShardsOutput, AwsError> {
    input.validate()?;
    let names_stream = input.stream_name.is_some() || input.stream_arn.is_some();
    let (stream, after, filter) = match (&input.next_token, names_stream) {
        (Some(_), true) => {
            return Err(AwsError::invalid_argument("NextToken and StreamName cannot be provided together."))
        }
        // The token already says where the listing resumes.
        (Some(_), false) if input.exclusive_start_shard_id.is_some() => {
            return Err(AwsError::invalid_argument("NextToken and ExclusiveStartShardId cannot be provided together."))
        }
        // "Don't specify StreamName or StreamCreationTimestamp if you specify NextToken" (API reference).
        (Some(_), false) if input.stream_creation_timestamp.is_some() => {
            return Err(AwsError::invalid_argument(
                "NextToken and StreamCreationTimestamp cannot be provided together.",
            ))
        }
        (None, false) => return Err(AwsError::invalid_argument("Either NextToken or StreamName should be provided.")),
        (Some(token), false) => {
            let token: ListShardsToken = URL_SAFE_NO_PAD
                .decode(token)
                .ok()
                .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                .ok_or_else(|| AwsError::invalid_argument("NextToken is improperly formatted."))?;
            if now_ms() - token.created_ms > NEXT_TOKEN_TTL_MS {
                return Err(AwsError::new(ErrorCode::ExpiredNextToken, "The NextToken has expired."));
            }
            (token.stream, token.after, token.filter)
        }
        (None, true) => {
            let stream = service.resolve_name(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
            (stream, input.exclusive_start_shard_id.clone().unwrap_or_default(), input.shard_filter.clone())
        }
    };
    let meta = service.entry(&stream)?.meta();
    if let Some(created) = input.stream_creation_timestamp {
        // Distinguishes incarnations of a stream name: a different creation second is another stream.
        if created.0.div_euclid(1000) != meta.created_ms.div_euclid(1000) {
            return Err(service.stream_not_found(&stream));
        }
    }
    let limit = input.max_results.unwrap_or(1000) as usize;
    let trim_horizon_ms = service.trim_horizon_ms(&meta, now_ms());
    let mut selected = Vec::new();
    for (index, shard) in meta.shards.iter().enumerate() {
        let index = index as u32;
        if shard_id(index) > after && passes(filter.as_ref(), &meta, index, shard, trim_horizon_ms)? {
            selected.push(index);
        }
    }
    let has_more = selected.len() > limit;
    selected.truncate(limit);
    let next_token = match (has_more, selected.last()) {
        (true, Some(&last)) => {
            let token = ListShardsToken { stream: stream.clone(), after: shard_id(last), filter, created_ms: now_ms() };
            Some(URL_SAFE_NO_PAD.encode(serde_json::to_vec(&token).map_err(|e| AwsError::internal(e.to_string()))?))
        }
        _ => None,
    };
    Ok(ListShardsOutput { shards: selected.into_iter().map(|i| shapes::shard(&meta, i)).collect(), next_token })
}

/// The open shard a request names, with AWS's errors for a missing or already closed one.
fn open_shard(service: &StreamsService, meta: &StreamMeta, id: &str) -> Result<u32, AwsError> {
    let (index, shard) = meta.find_shard(id).ok_or_else(|| {
        AwsError::not_found(format!(
            "Could not find shard {id} in stream {} under account {}.",
            meta.name,
            service.account()
        ))
    })?;
    if !shard.is_open() {
        return Err(AwsError::in_use(format!(
            "Shard {id} in stream {} under account {} has already been merged or split, and thus is not eligible for merging or splitting.",
            meta.name,
            service.account()
        )));
    }
    Ok(index)
}

/// AWS scales on-demand streams itself: SplitShard, MergeShards and UpdateShardCount are each
/// "only supported for the data streams with the provisioned capacity mode" (API reference).
/// The error is the ValidationException real Kinesis answers UpdateShardCount with (as recorded
/// by moto's tests against AWS); the reference documents no other for SplitShard/MergeShards.
fn require_provisioned(service: &StreamsService, meta: &StreamMeta) -> Result<(), AwsError> {
    if meta.mode != StreamMode::OnDemand {
        return Ok(());
    }
    Err(AwsError::new(
        ErrorCode::Validation,
        format!("Request is invalid. Stream {} under account {} is in On-Demand mode.", meta.name, service.account()),
    ))
}

/// Seals the shards a reshard closes, in order, and returns how many records each holds. If a
/// seal fails, the ones before it are undone.
async fn seal_all(service: &StreamsService, stream_id: u64, shards: &[u32]) -> Result<Vec<u64>, AwsError> {
    let mut endings = Vec::with_capacity(shards.len());
    for &shard_index in shards {
        match service.storage.seal(ShardKey { stream_id, shard_index }).await {
            Ok(ending) => endings.push(ending),
            Err(error) => {
                unseal_all(service, stream_id, &shards[..endings.len()]).await;
                return Err(storage_failure(error));
            }
        }
    }
    Ok(endings)
}

/// Records a reshard whose closed shards `sealed` are sealed in storage. If the stream's new
/// metadata cannot be stored (a full disk), the seals are undone: the shards stay open as the
/// unchanged metadata says, instead of refusing every record routed to them.
async fn commit_reshard(service: &StreamsService, change: Change, sealed: &[u32]) -> Result<(), AwsError> {
    let stream_id = change.meta.id;
    // The rest of `change`, the stream's control lock, is held until the seals are undone, so
    // no other reshard of the stream runs in between.
    let committed = service.commit_change(&change.entry, change.meta, StreamStatus::Updating).await;
    if committed.is_err() {
        unseal_all(service, stream_id, sealed).await;
    }
    committed
}

async fn unseal_all(service: &StreamsService, stream_id: u64, shards: &[u32]) {
    for &shard_index in shards {
        if let Err(error) = service.storage.unseal(ShardKey { stream_id, shard_index }).await {
            tracing::error!(stream_id, shard_index, %error, "could not undo the seal of a failed reshard");
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SplitShardInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    shard_to_split: Option<String>,
    new_starting_hash_key: Option<String>,
}

pub async fn split_shard(service: &StreamsService, input: SplitShardInput) -> Result<super::Empty, AwsError> {
    let mut v = Validator::new();
    v.required("newStartingHashKey", input.new_starting_hash_key.as_ref());
    rules::hash_key(&mut v, "newStartingHashKey", input.new_starting_hash_key.as_deref());
    v.required("shardToSplit", input.shard_to_split.as_ref());
    rules::shard_id(&mut v, "shardToSplit", input.shard_to_split.as_deref());
    rules::stream_target(&mut v, input.stream_name.as_deref(), input.stream_arn.as_deref());
    v.finish()?;
    let mut change = service.change_active(input.stream_name.as_deref(), input.stream_arn.as_deref()).await?;
    let meta = &mut change.meta;
    require_provisioned(service, meta)?;
    let shard_text = input.shard_to_split.unwrap_or_default();
    let index = open_shard(service, meta, &shard_text)?;
    service.check_shard_limit(1)?;
    let key_text = input.new_starting_hash_key.unwrap_or_default();
    let (start, end) = meta.shard(index).map_or((0, 0), |s| (s.start_hash, s.end_hash));
    let new_start = parse_hash_key(&key_text).filter(|&key| key > start.saturating_add(1) && key < end);
    let Some(new_start) = new_start else {
        return Err(AwsError::invalid_argument(format!(
            "NewStartingHashKey {key_text} used in SplitShard() on shard {shard_text} in stream {} under account {} is not both \
             greater than one plus the shard's StartingHashKey {start} and less than the shard's EndingHashKey {end}.",
            meta.name,
            service.account()
        )));
    };
    let ending = seal_all(service, meta.id, &[index]).await?[0];
    meta.split(index, new_start, ending, now_ms());
    tracing::info!(stream = %meta.name, shard = %shard_text, "splitting shard");
    commit_reshard(service, change, &[index]).await?;
    Ok(super::Empty {})
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MergeShardsInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    shard_to_merge: Option<String>,
    adjacent_shard_to_merge: Option<String>,
}

pub async fn merge_shards(service: &StreamsService, input: MergeShardsInput) -> Result<super::Empty, AwsError> {
    let mut v = Validator::new();
    v.required("adjacentShardToMerge", input.adjacent_shard_to_merge.as_ref());
    rules::shard_id(&mut v, "adjacentShardToMerge", input.adjacent_shard_to_merge.as_deref());
    v.required("shardToMerge", input.shard_to_merge.as_ref());
    rules::shard_id(&mut v, "shardToMerge", input.shard_to_merge.as_deref());
    rules::stream_target(&mut v, input.stream_name.as_deref(), input.stream_arn.as_deref());
    v.finish()?;
    let mut change = service.change_active(input.stream_name.as_deref(), input.stream_arn.as_deref()).await?;
    let meta = &mut change.meta;
    require_provisioned(service, meta)?;
    let (first_id, second_id) =
        (input.shard_to_merge.unwrap_or_default(), input.adjacent_shard_to_merge.unwrap_or_default());
    let first = open_shard(service, meta, &first_id)?;
    let second = open_shard(service, meta, &second_id)?;
    if first == second || !meta.adjacent(first, second) {
        return Err(AwsError::invalid_argument(format!(
            "Shards {first_id} and {second_id} in stream {} under account {} are not an adjacent pair of shards eligible for merging",
            meta.name,
            service.account()
        )));
    }
    let endings = seal_all(service, meta.id, &[first, second]).await?;
    meta.merge(first, second, (endings[0], endings[1]), now_ms());
    tracing::info!(stream = %meta.name, shards = ?[&first_id, &second_id], "merging shards");
    commit_reshard(service, change, &[first, second]).await?;
    Ok(super::Empty {})
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateShardCountInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    target_shard_count: Option<i64>,
    scaling_type: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateShardCountOutput {
    stream_name: String,
    current_shard_count: u32,
    target_shard_count: u32,
    #[serde(rename = "StreamARN")]
    stream_arn: String,
}

pub async fn update_shard_count(
    service: &StreamsService,
    input: UpdateShardCountInput,
) -> Result<UpdateShardCountOutput, AwsError> {
    let mut v = Validator::new();
    v.required("scalingType", input.scaling_type.as_ref());
    v.one_of("scalingType", input.scaling_type.as_deref(), &["UNIFORM_SCALING"]);
    v.required("targetShardCount", input.target_shard_count.as_ref());
    v.integer("targetShardCount", input.target_shard_count, 1, 100_000);
    rules::stream_target(&mut v, input.stream_name.as_deref(), input.stream_arn.as_deref());
    v.finish()?;
    let mut change = service.change_active(input.stream_name.as_deref(), input.stream_arn.as_deref()).await?;
    let meta = &mut change.meta;
    require_provisioned(service, meta)?;
    let current = meta.open_shard_count();
    let target = input.target_shard_count.unwrap_or(1) as u32;
    if target > current * 2 {
        return Err(AwsError::invalid_argument(format!(
            "UpdateShardCount cannot scale up over double your current open shard count. Current open shard count: {current} Target shard count: {target}"
        )));
    }
    if target * 2 < current {
        return Err(AwsError::invalid_argument(format!(
            "UpdateShardCount cannot scale down below half your current open shard count. Current open shard count: {current} Target shard count: {target}"
        )));
    }
    if target > current {
        service.check_shard_limit(target - current)?;
    }
    let closed = shards_closed_by_scaling(meta, target);
    let endings: HashMap<u32, u64> = closed.iter().copied().zip(seal_all(service, meta.id, &closed).await?).collect();
    scale_uniformly(meta, target, now_ms(), |index| endings.get(&index).copied().unwrap_or(0));
    let output = UpdateShardCountOutput {
        stream_name: meta.name.clone(),
        current_shard_count: current,
        target_shard_count: target,
        stream_arn: service.arn(meta),
    };
    tracing::info!(stream = %output.stream_name, from = current, to = target, "updating shard count");
    commit_reshard(service, change, &closed).await?;
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(meta: &StreamMeta, kind: &str, trim_horizon_ms: i64) -> Vec<u32> {
        let filter = ShardFilter { kind: Some(kind.into()), shard_id: None, timestamp: Some(Timestamp(0)) };
        (0..meta.shards.len() as u32)
            .filter(|&index| {
                let shard = meta.shard(index).expect("shard");
                passes(Some(&filter), meta, index, shard, trim_horizon_ms).expect("valid filter")
            })
            .collect()
    }

    #[test]
    fn the_trim_horizon_moves_past_expired_parents() {
        // Shard 0 splits into 1 and 2 at t=100; 1 and 2 merge into 3 at t=200.
        let mut meta = StreamMeta::new(1, "s".into(), 0, 1, StreamMode::Provisioned);
        let (low, high) = meta.split(0, 1 << 100, 5, 100);
        let merged = meta.merge(low, high, (2, 3), 200);
        assert_eq!((low, high, merged), (1, 2, 3));

        // Nothing expired: the trim horizon is the stream's start.
        assert_eq!(listed(&meta, "AT_TRIM_HORIZON", 50), [0]);
        assert_eq!(listed(&meta, "FROM_TRIM_HORIZON", 50), [0, 1, 2, 3]);
        // Shard 0 closed before the horizon: expired, unlisted, and its children are where the
        // trim horizon is.
        assert_eq!(listed(&meta, "AT_TRIM_HORIZON", 150), [1, 2]);
        assert_eq!(listed(&meta, "FROM_TRIM_HORIZON", 150), [1, 2, 3]);
        assert_eq!(listed(&meta, "AT_LATEST", 150), [3]);
        // Both merge parents expired: only the merged shard is left.
        assert_eq!(listed(&meta, "AT_TRIM_HORIZON", 250), [3]);
        assert_eq!(listed(&meta, "FROM_TIMESTAMP", 250), [3]);
        // An open shard never expires.
        assert_eq!(listed(&meta, "AT_TRIM_HORIZON", i64::MAX), [3]);
    }
}
