//! The typed in-process write API, the counterpart of `reader.rs`: how Tideline's other services
//! (Lambda's on-failure destinations, the SQL helper's INSERT INTO) put records into a stream
//! without encoding a request to the server. Records go through the same write path as
//! PutRecords (`writer.rs`), with its routing (partition key or explicit hash key), its limits
//! (500 records, 1 MiB per record, 5 MiB per call, per-shard write limits with
//! `--enforce-limits`) and its error messages. There is no caller to authorize: a resource policy
//! governs AWS principals, and an in-process writer is the server itself.

use std::time::Instant;

use bytes::Bytes;
use tideline_proto::{AwsError, Validator};
use tideline_storage::NewRecord;

use crate::model::shard_id;
use crate::ops::records::{
    check_record_size, check_total_size, chosen_hash_key, partition_key_hashes, rate_exceeded, record_put,
};
use crate::rules;
use crate::sequence::SequenceNumber;
use crate::service::StreamsService;
use crate::writer::{append, Placement};

/// One record to put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    pub data: Bytes,
    /// 1 to 256 characters; hashed (MD5) to route the record unless `explicit_hash_key` is set.
    pub partition_key: String,
    /// A decimal 128-bit hash key that overrides the partition key's hash, as in PutRecords.
    pub explicit_hash_key: Option<String>,
}

impl NewEntry {
    /// A record routed by its partition key.
    pub fn new(partition_key: impl Into<String>, data: impl Into<Bytes>) -> Self {
        NewEntry { data: data.into(), partition_key: partition_key.into(), explicit_hash_key: None }
    }
}

/// What became of one record, in the order the records were given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    Written {
        shard_id: String,
        sequence_number: String,
    },
    /// Refused by the shard's write limit (only with `--enforce-limits`); not written, so the
    /// caller may retry it, as a PutRecords caller retries a failed entry.
    Throttled {
        shard_id: String,
        message: String,
    },
}

impl StreamsService {
    /// Puts `entries` to the stream named by `name` or `arn` (the ARN wins), as PutRecords would,
    /// and says where each landed. A call over PutRecords' limits, or naming a stream that does
    /// not exist, fails whole with PutRecords' error; nothing of it is written.
    pub async fn put_entries(
        &self,
        name: Option<&str>,
        arn: Option<&str>,
        entries: Vec<NewEntry>,
    ) -> Result<Vec<PutOutcome>, AwsError> {
        check_entries(&entries)?;
        let (name, entry) = self.target(name, arn)?;
        let started = Instant::now();
        let mut hashes = partition_key_hashes(
            entries.iter().map(|new| (new.partition_key.as_bytes(), new.explicit_hash_key.as_deref())),
        );
        for (new, hash) in entries.iter().zip(&mut hashes) {
            *hash = chosen_hash_key(*hash, new.explicit_hash_key.as_deref())?;
        }
        let records = entries.into_iter().map(|new| NewRecord {
            partition_key: Bytes::from(new.partition_key),
            data: new.data,
            encrypted: false,
        });
        let written = append(self, &name, &entry, &hashes, records).await?;
        // Counted like PutRecords, so a stream's incoming-records figures include these writes.
        record_put(self, &name, &written, started);
        let outcomes = written
            .placements
            .iter()
            .map(|placement| match *placement {
                Placement::Appended { shard_index, record_index } => PutOutcome::Written {
                    shard_id: shard_id(shard_index),
                    sequence_number: SequenceNumber::of_record(written.stream_id, shard_index, record_index).encode(),
                },
                Placement::Throttled { shard_index } => PutOutcome::Throttled {
                    shard_id: shard_id(shard_index),
                    message: rate_exceeded(self, &name, shard_index),
                },
            })
            .collect();
        Ok(outcomes)
    }
}

/// PutRecords' limits, with its validation messages (the member paths are PutRecords').
fn check_entries(entries: &[NewEntry]) -> Result<(), AwsError> {
    let mut v = Validator::new();
    v.length("records", None, entries.len(), 1, rules::MAX_PUT_RECORDS);
    for (i, entry) in entries.iter().enumerate() {
        let path = |member: &str| format!("records.{}.member.{member}", i + 1);
        v.string(&path("partitionKey"), Some(&entry.partition_key), 1, 256, None);
        rules::hash_key(&mut v, &path("explicitHashKey"), entry.explicit_hash_key.as_deref());
    }
    v.finish()?;
    let mut total = 0;
    for entry in entries {
        check_record_size(&entry.data)?;
        total += entry.data.len() + entry.partition_key.len();
    }
    check_total_size(total)
}

/// `items` cut, in order, into batches of at most `max_items` items (at least one) and
/// `max_bytes` by `size`: how a caller keeps to PutRecords' 500 records and 5 MiB (or an
/// invocation's payload limit). An item larger than `max_bytes` goes alone in a batch of its own,
/// for the receiver to refuse by name.
pub fn split_batches<T>(items: Vec<T>, max_items: usize, max_bytes: usize, size: impl Fn(&T) -> usize) -> Vec<Vec<T>> {
    let mut batches: Vec<Vec<T>> = Vec::new();
    let mut bytes = 0;
    for item in items {
        let item_bytes = size(&item);
        match batches.last_mut() {
            Some(batch) if batch.len() < max_items && bytes + item_bytes <= max_bytes => {
                bytes += item_bytes;
                batch.push(item);
            }
            _ => {
                bytes = item_bytes;
                batches.push(vec![item]);
            }
        }
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzzing::in_memory_service;
    use crate::reader::Position;
    use crate::StreamsConfig;
    use tideline_proto::{Call, Codec, ErrorCode, Service};

    async fn create(service: &StreamsService, shards: u32) {
        let body = serde_json::json!({ "StreamName": "s", "ShardCount": shards }).to_string();
        service.handle(Call::in_process("CreateStream", Codec::Json, body.as_bytes())).await.unwrap();
    }

    #[tokio::test]
    async fn entries_are_routed_like_put_records_and_read_back() {
        let service = in_memory_service(StreamsConfig::default(), [7; 32]).await.unwrap();
        create(&service, 2).await;
        let high = NewEntry { explicit_hash_key: Some((u128::MAX).to_string()), ..NewEntry::new("k", "b") };
        let outcomes = service.put_entries(Some("s"), None, vec![NewEntry::new("k", "a"), high]).await.unwrap();
        let PutOutcome::Written { shard_id, sequence_number } = &outcomes[1] else { panic!("{outcomes:?}") };
        assert_eq!(shard_id, "shardId-000000000001", "the explicit hash key picks the upper shard");
        let mut reader = service.open_reader("s", shard_id, Position::TrimHorizon).await.unwrap();
        let batch = reader.read(10).await.unwrap();
        let last = batch.records.last().unwrap();
        assert_eq!((&last.sequence_number, &last.data[..]), (sequence_number, &b"b"[..]));

        let arn = service.stream_info(Some("s"), None).unwrap().arn;
        assert!(service.put_entries(None, Some(&arn), vec![NewEntry::new("k", "c")]).await.is_ok());
    }

    #[test]
    fn batches_keep_to_the_item_and_byte_limits() {
        let lengths: Vec<usize> = split_batches(vec![1; 1201], 500, usize::MAX, |_| 1).iter().map(Vec::len).collect();
        assert_eq!(lengths, [500, 500, 201]);
        let cut = split_batches(vec![3, 3, 3, 9, 1], 500, 6, |size| *size);
        assert_eq!(cut, [vec![3, 3], vec![3], vec![9], vec![1]]);
        assert_eq!(split_batches(vec![1, 1], 0, 6, |size| *size), [vec![1], vec![1]], "at least one a batch");
    }

    #[tokio::test]
    async fn limits_and_missing_streams_are_put_records_errors() {
        let service = in_memory_service(StreamsConfig::default(), [7; 32]).await.unwrap();
        let missing = service.put_entries(Some("s"), None, vec![NewEntry::new("k", "a")]).await;
        assert_eq!(missing.unwrap_err().code, ErrorCode::ResourceNotFound);
        create(&service, 1).await;
        let code = |result: Result<Vec<PutOutcome>, AwsError>| result.unwrap_err().code;
        assert_eq!(code(service.put_entries(Some("s"), None, vec![]).await), ErrorCode::Validation);
        let empty_key = vec![NewEntry::new("", "a")];
        assert_eq!(code(service.put_entries(Some("s"), None, empty_key).await), ErrorCode::Validation);
        let too_big = vec![NewEntry::new("k", vec![0u8; rules::MAX_RECORD_BYTES + 1])];
        assert_eq!(code(service.put_entries(Some("s"), None, too_big).await), ErrorCode::InvalidArgument);
        let bad_hash = vec![NewEntry { explicit_hash_key: Some("-1".into()), ..NewEntry::new("k", "a") }];
        assert_eq!(code(service.put_entries(Some("s"), None, bad_hash).await), ErrorCode::Validation);
    }
}
