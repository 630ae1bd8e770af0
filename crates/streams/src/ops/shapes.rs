//! Wire shapes shared by several operations.

use serde::{Deserialize, Serialize};
use tideline_proto::Timestamp;

use crate::model::{shard_id, StreamMeta};
use crate::sequence::SequenceNumber;

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HashKeyRange {
    pub starting_hash_key: String,
    pub ending_hash_key: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SequenceNumberRange {
    pub starting_sequence_number: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ending_sequence_number: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Shard {
    pub shard_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_shard_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adjacent_parent_shard_id: Option<String>,
    pub hash_key_range: HashKeyRange,
    pub sequence_number_range: SequenceNumberRange,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ChildShard {
    pub shard_id: String,
    pub parent_shards: Vec<String>,
    pub hash_key_range: HashKeyRange,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamModeDetails {
    pub stream_mode: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct EnhancedMetrics {
    pub shard_level_metrics: Vec<String>,
}

/// The number of the position before record `index` in a shard (see `SequenceNumber`).
fn position_number(meta: &StreamMeta, shard_index: u32, index: u64) -> String {
    SequenceNumber::at_position(meta.id, shard_index, index).encode()
}

fn hash_key_range(meta: &StreamMeta, index: u32) -> HashKeyRange {
    let (start, end) = meta.shard(index).map_or((0, 0), |s| (s.start_hash, s.end_hash));
    HashKeyRange { starting_hash_key: start.to_string(), ending_hash_key: end.to_string() }
}

pub fn shard(meta: &StreamMeta, index: u32) -> Shard {
    let info = meta.shard(index);
    Shard {
        shard_id: shard_id(index),
        parent_shard_id: info.and_then(|s| s.parent).map(shard_id),
        adjacent_parent_shard_id: info.and_then(|s| s.adjacent_parent).map(shard_id),
        hash_key_range: hash_key_range(meta, index),
        sequence_number_range: SequenceNumberRange {
            starting_sequence_number: position_number(meta, index, 0),
            // The number of the last record; an empty closed shard ends where it starts.
            ending_sequence_number: info.and_then(|s| s.ending_index).map(|end| position_number(meta, index, end)),
        },
    }
}

/// The shards created from `index` by resharding, as GetRecords reports them at its end.
pub fn child_shards(meta: &StreamMeta, index: u32) -> Vec<ChildShard> {
    meta.children_of(index)
        .map(|(child, info)| ChildShard {
            shard_id: shard_id(child),
            parent_shards: info.parent.into_iter().chain(info.adjacent_parent).map(shard_id).collect(),
            hash_key_range: hash_key_range(meta, child),
        })
        .collect()
}

pub fn mode_details(meta: &StreamMeta) -> StreamModeDetails {
    StreamModeDetails { stream_mode: Some(meta.mode.as_str().to_string()) }
}

pub fn enhanced_monitoring(meta: &StreamMeta) -> Vec<EnhancedMetrics> {
    vec![EnhancedMetrics { shard_level_metrics: meta.shard_level_metrics.clone() }]
}

pub fn encryption_type(meta: &StreamMeta) -> &'static str {
    if meta.encryption_key.is_some() {
        "KMS"
    } else {
        "NONE"
    }
}

pub fn created(meta: &StreamMeta) -> Timestamp {
    Timestamp(meta.created_ms)
}
