//! The typed in-process Data Streams API: how Tideline's other services (Firehose, and the
//! trigger, SQL and console work to come) read streams. No JSON, base64 or shard iterators: a
//! stream's shards with their lineage, a reader opened at a position, batches of records as bytes
//! with their partition key, sequence number and arrival time, a wait for new records, and a
//! closed shard's children. Positions, limits and expiry follow the same rules as GetShardIterator,
//! GetRecords and SubscribeToShard, which share this code.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tideline_proto::{AwsError, Timestamp};
use tideline_storage::ShardKey;

use crate::model::shard_id;
use crate::ops::reading::{read_records, start_position};
use crate::rules;
use crate::service::{now_ms, StreamEntry, StreamsService};

/// Where a reader starts, as GetShardIterator's iterator types say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    TrimHorizon,
    Latest,
    AtSequenceNumber(String),
    AfterSequenceNumber(String),
    /// Epoch milliseconds.
    AtTimestamp(i64),
}

/// A shard as a reader sees it: its id and the shards it was split or merged from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInfo {
    pub shard_id: String,
    pub parents: Vec<String>,
    /// Still taking records (not yet split or merged away).
    pub open: bool,
    /// Records ever written to the shard (durable ones): sampled twice, the shard's write rate.
    pub records_written: u64,
}

/// A stream and its current (unexpired) shards, parents before their children.
#[derive(Debug, Clone)]
pub struct StreamInfo {
    pub name: String,
    pub arn: String,
    pub shards: Vec<ShardInfo>,
}

/// One record, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub sequence_number: String,
    pub partition_key: Bytes,
    pub data: Bytes,
    /// When the record was accepted (ApproximateArrivalTimestamp), epoch milliseconds.
    pub arrival_ms: i64,
}

/// What one read returns.
#[derive(Debug, Clone)]
pub struct Batch {
    pub records: Vec<Record>,
    pub millis_behind_latest: i64,
    /// The shard is closed and every record in it has been read: read its children next.
    pub end_of_shard: bool,
}

impl StreamsService {
    /// A stream by name or ARN (the ARN wins), with its shards.
    pub fn stream_info(&self, name: Option<&str>, arn: Option<&str>) -> Result<StreamInfo, AwsError> {
        let (name, entry) = self.target(name, arn)?;
        let meta = entry.snapshot();
        let horizon = self.trim_horizon_ms(&meta, now_ms());
        let shards = meta
            .shards
            .iter()
            .enumerate()
            .filter(|(_, shard)| !shard.expired(horizon))
            .map(|(index, shard)| ShardInfo {
                shard_id: shard_id(index as u32),
                parents: shard.parent.into_iter().chain(shard.adjacent_parent).map(shard_id).collect(),
                open: shard.is_open(),
                records_written: self
                    .storage
                    .tail(ShardKey { stream_id: meta.id, shard_index: index as u32 })
                    .next_index,
            })
            .collect();
        Ok(StreamInfo { arn: self.arn(&meta), name, shards })
    }

    /// A reader of one shard from `position`, with GetShardIterator's errors for a stream, shard
    /// or sequence number that does not exist.
    pub async fn open_reader(&self, stream: &str, shard: &str, position: Position) -> Result<ShardReader, AwsError> {
        let entry = self.entry(stream)?;
        let meta = entry.snapshot();
        let (shard_index, shard_meta) = meta.find_shard(shard).ok_or_else(|| {
            AwsError::not_found(format!(
                "Shard {shard} in stream {stream} under account {} does not exist",
                self.account()
            ))
        })?;
        let (kind, sequence, timestamp) = match &position {
            Position::TrimHorizon => ("TRIM_HORIZON", None, None),
            Position::Latest => ("LATEST", None, None),
            Position::AtSequenceNumber(sequence) => ("AT_SEQUENCE_NUMBER", Some(sequence.as_str()), None),
            Position::AfterSequenceNumber(sequence) => ("AFTER_SEQUENCE_NUMBER", Some(sequence.as_str()), None),
            Position::AtTimestamp(ms) => ("AT_TIMESTAMP", None, Some(Timestamp(*ms))),
        };
        let next = start_position(self, &meta, (shard_index, shard_meta), kind, sequence, timestamp).await?;
        Ok(ShardReader { service: self.shared(), entry, stream_id: meta.id, shard_index, next })
    }
}

/// Reads one shard forward, as a consumer with an iterator would, but in process.
pub struct ShardReader {
    service: Arc<StreamsService>,
    entry: Arc<StreamEntry>,
    stream_id: u64,
    shard_index: u32,
    /// The index of the next record to read.
    next: u64,
}

impl ShardReader {
    pub fn shard_id(&self) -> String {
        shard_id(self.shard_index)
    }

    /// Up to `limit` records (at most GetRecords' 10,000 records and 10 MiB). A stream deleted,
    /// or deleted and created again, since the reader opened is ResourceNotFoundException.
    pub async fn read(&mut self, limit: usize) -> Result<Batch, AwsError> {
        let meta = self.entry.snapshot();
        let live = self.service.entry(&meta.name).is_ok_and(|current| Arc::ptr_eq(&current, &self.entry));
        let shard = meta.shard(self.shard_index).filter(|_| live && meta.id == self.stream_id);
        let Some(shard) = shard else { return Err(self.service.stream_not_found(&meta.name)) };
        let limit = limit.clamp(1, rules::MAX_GET_RECORDS as usize);
        let read = read_records(
            &self.service,
            &meta,
            (self.shard_index, shard),
            self.next,
            limit,
            rules::MAX_GET_RECORDS_BYTES,
        )
        .await?;
        self.next = read.next_index;
        let records = read
            .records
            .into_numbered()
            .map(|(sequence_number, record)| Record {
                sequence_number: sequence_number.as_str().to_string(),
                partition_key: record.partition_key,
                data: record.data,
                arrival_ms: record.arrival_ms,
            })
            .collect();
        Ok(Batch { records, millis_behind_latest: read.millis_behind_latest, end_of_shard: read.at_end })
    }

    /// Resolves when records may have arrived since the last read (a commit to this shard or a
    /// change of the stream's shards), or after `timeout`: the wake-up SubscribeToShard uses.
    pub async fn wait(&self, timeout: Duration) {
        let key = ShardKey { stream_id: self.stream_id, shard_index: self.shard_index };
        let mut committed = self.service.storage.watch_tail(key);
        let mut changed = self.entry.changed.subscribe();
        if self.service.storage.tail(key).next_index > self.next {
            return;
        }
        tokio::select! {
            _ = committed.changed() => {}
            _ = changed.changed() => {}
            _ = tokio::time::sleep(timeout) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};
    use tideline_proto::{Call, Codec, Reply, Service};

    use super::*;
    use crate::fuzzing::in_memory_service;
    use crate::StreamsConfig;

    async fn call(service: &StreamsService, operation: &str, body: Value) -> Value {
        let body = serde_json::to_vec(&body).unwrap();
        match service.handle(Call::in_process(operation, Codec::Json, &body)).await {
            Ok(Reply::Body(reply)) => serde_json::from_slice(&reply).unwrap(),
            Ok(Reply::Events(_) | Reply::Http(_)) => panic!("{operation}: not a body"),
            Err(error) => panic!("{operation}: {error}"),
        }
    }

    async fn put(service: &StreamsService, data: &str) -> String {
        let body = json!({ "StreamName": "s", "Data": base64_of(data), "PartitionKey": "k" });
        call(service, "PutRecord", body).await["SequenceNumber"].as_str().unwrap().to_string()
    }

    fn base64_of(text: &str) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    fn texts(batch: &Batch) -> Vec<&str> {
        batch.records.iter().map(|record| std::str::from_utf8(&record.data).unwrap()).collect()
    }

    #[tokio::test]
    async fn readers_start_where_asked_and_follow_a_split_to_its_children() {
        let service = in_memory_service(StreamsConfig::default(), [7; 32]).await.unwrap();
        call(&service, "CreateStream", json!({ "StreamName": "s", "ShardCount": 1 })).await;
        let first = put(&service, "a").await;
        put(&service, "b").await;

        let mut reader = service.open_reader("s", "shardId-000000000000", Position::TrimHorizon).await.unwrap();
        let batch = reader.read(10).await.unwrap();
        assert_eq!(texts(&batch), ["a", "b"]);
        assert_eq!(batch.records[0].sequence_number, first);
        assert_eq!(&batch.records[0].partition_key[..], b"k");
        assert!(!batch.end_of_shard);
        let after = service.open_reader("s", "shardId-000000000000", Position::AfterSequenceNumber(first)).await;
        assert_eq!(texts(&after.unwrap().read(10).await.unwrap()), ["b"]);
        let mut latest = service.open_reader("s", "shardId-000000000000", Position::Latest).await.unwrap();
        assert!(latest.read(10).await.unwrap().records.is_empty());

        // A put wakes a waiting reader.
        let waiting = tokio::time::timeout(Duration::from_secs(5), latest.wait(Duration::from_secs(30)));
        let (_, sequence) = tokio::join!(waiting, put(&service, "c"));
        let batch = latest.read(10).await.unwrap();
        assert_eq!((texts(&batch), batch.records[0].sequence_number.clone()), (vec!["c"], sequence));

        let split = json!({ "StreamName": "s", "ShardToSplit": "shardId-000000000000",
                            "NewStartingHashKey": (1u128 << 127).to_string() });
        call(&service, "SplitShard", split).await;
        assert!(reader.read(10).await.unwrap().records.len() == 1, "c, then the end");
        assert!(reader.read(10).await.unwrap().end_of_shard);
        let info = service.stream_info(Some("s"), None).unwrap();
        assert_eq!(info.arn, "arn:aws:kinesis:us-east-1:000000000000:stream/s");
        let children: Vec<&ShardInfo> = info.shards.iter().filter(|shard| !shard.parents.is_empty()).collect();
        assert_eq!(children.len(), 2);
        assert!(children.iter().all(|child| child.open && child.parents == ["shardId-000000000000"]));
    }

    #[tokio::test]
    async fn missing_streams_shards_and_deleted_streams_are_errors() {
        let service = in_memory_service(StreamsConfig::default(), [7; 32]).await.unwrap();
        let missing = service.open_reader("nope", "shardId-000000000000", Position::TrimHorizon).await;
        assert_eq!(missing.err().unwrap().code, tideline_proto::ErrorCode::ResourceNotFound);
        call(&service, "CreateStream", json!({ "StreamName": "s", "ShardCount": 1 })).await;
        let no_shard = service.open_reader("s", "shardId-000000000009", Position::TrimHorizon).await;
        assert_eq!(no_shard.err().unwrap().code, tideline_proto::ErrorCode::ResourceNotFound);
        let mut reader = service.open_reader("s", "shardId-000000000000", Position::TrimHorizon).await.unwrap();
        call(&service, "DeleteStream", json!({ "StreamName": "s" })).await;
        call(&service, "CreateStream", json!({ "StreamName": "s", "ShardCount": 1 })).await;
        assert_eq!(reader.read(10).await.err().unwrap().code, tideline_proto::ErrorCode::ResourceNotFound);
    }
}
