//! What happens to buffered records between the buffer and a destination: KPL de-aggregation
//! (`tideline_proto::kpl`, applied in `delivery`),
//! the Lambda-style transformation hook, dynamic-partitioning key extraction, format conversion
//! and compression. One file per step; `pipeline` (in `delivery`) chains them.

pub mod bounded;
pub mod compression;
pub mod functions;
pub mod lambda;
pub mod parquet;
pub mod partitioning;

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::error::RecordError;

/// A record on its way to a destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutRecord {
    /// Firehose's id for the record (from its buffer position; KPL user records add a suffix):
    /// the `recordId` of Lambda transformation events.
    pub record_id: String,
    pub arrival_ms: i64,
    pub data: Bytes,
    /// `!{partitionKeyFromQuery:...}` values (MetadataExtraction processor).
    pub query_keys: BTreeMap<String, String>,
    /// `!{partitionKeyFromLambda:...}` values (the transformation's `metadata.partitionKeys`).
    pub lambda_keys: BTreeMap<String, String>,
    /// Where the record came from, when the source is a Kinesis stream (for the transformation
    /// event's `kinesisRecordMetadata`).
    pub kinesis: Option<Box<KinesisRecordMetadata>>,
}

impl OutRecord {
    pub fn new(record_id: String, arrival_ms: i64, data: Bytes) -> Self {
        Self { record_id, arrival_ms, data, query_keys: BTreeMap::new(), lambda_keys: BTreeMap::new(), kinesis: None }
    }
}

/// A Kinesis source record's origin, kept with it in the delivery stream's buffer (as the
/// buffered record's key, JSON-encoded).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KinesisRecordMetadata {
    pub shard_id: String,
    pub partition_key: String,
    pub approximate_arrival_timestamp: i64,
    pub sequence_number: String,
    /// The position of a user record inside a KPL aggregate (0 otherwise).
    #[serde(default)]
    pub subsequence_number: u64,
}

impl KinesisRecordMetadata {
    /// The buffered record's key: the buffer log keeps a key and the data, nothing else.
    pub fn to_buffer_key(&self) -> Result<bytes::Bytes, serde_json::Error> {
        serde_json::to_vec(self).map(bytes::Bytes::from)
    }

    pub fn from_buffer_key(key: &[u8]) -> Option<Self> {
        serde_json::from_slice(key).ok()
    }
}

/// A record that could not be processed or delivered, with why: it goes to the error output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedRecord {
    pub record: OutRecord,
    pub error: RecordError,
}

/// Text for an error message, cut to 100 bytes (at a character boundary): records can be large.
pub fn abbreviate(mut text: String) -> String {
    if text.len() > 100 {
        let mut end = 100;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}
