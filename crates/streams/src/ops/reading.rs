//! Reading records: GetShardIterator and GetRecords.

use serde::{Deserialize, Serialize};
use tideline_proto::{AwsError, ErrorCode, Timestamp, Validator};
use tideline_storage::ShardKey;

use super::shapes::child_shards;
use super::wire::get_records::{GetRecordsOutput, ShardRecords};
use crate::iterator::IteratorPosition;
use crate::model::{shard_id, ShardMeta, StreamMeta};
use crate::rules;
use crate::sequence::SequenceNumber;
use crate::service::{now_ms, storage_failure, Caller, StreamsService};

const ITERATOR_TYPES: [&str; 5] =
    ["AFTER_SEQUENCE_NUMBER", "LATEST", "AT_TIMESTAMP", "AT_SEQUENCE_NUMBER", "TRIM_HORIZON"];

fn shard_not_found(service: &StreamsService, shard: &str, stream: &str) -> AwsError {
    AwsError::not_found(format!("Shard {shard} in stream {stream} under account {} does not exist", service.account()))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetShardIteratorInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    shard_id: Option<String>,
    shard_iterator_type: Option<String>,
    starting_sequence_number: Option<String>,
    timestamp: Option<Timestamp>,
}

impl GetShardIteratorInput {
    fn validate(&self) -> Result<(), AwsError> {
        let mut v = Validator::new();
        v.required("shardId", self.shard_id.as_ref());
        rules::shard_id(&mut v, "shardId", self.shard_id.as_deref());
        v.required("shardIteratorType", self.shard_iterator_type.as_ref());
        v.one_of("shardIteratorType", self.shard_iterator_type.as_deref(), &ITERATOR_TYPES);
        rules::sequence_number(&mut v, "startingSequenceNumber", self.starting_sequence_number.as_deref());
        rules::stream_target(&mut v, self.stream_name.as_deref(), self.stream_arn.as_deref());
        v.finish()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetShardIteratorOutput {
    shard_iterator: String,
}

/// The record index a sequence-number iterator starts at, with AWS's errors for numbers that do
/// not belong to this shard.
fn position_of_sequence(
    service: &StreamsService,
    meta: &StreamMeta,
    shard_index: u32,
    text: &str,
    after: bool,
) -> Result<u64, AwsError> {
    let invalid = |reason: &str| {
        AwsError::invalid_argument(format!(
            "StartingSequenceNumber {text} used in GetShardIterator on shard {} in stream {} under account {} is invalid{reason}.",
            shard_id(shard_index),
            meta.name,
            service.account()
        ))
    };
    let sequence = SequenceNumber::decode(text).ok_or_else(|| invalid(""))?;
    if sequence.stream_id != meta.id {
        return Err(invalid(" because it did not come from this stream"));
    }
    if sequence.shard_index != shard_index {
        return Err(AwsError::invalid_argument(format!(
            "Invalid StartingSequenceNumber. It encodes {}, while it was used in a call to a shard with {}",
            shard_id(sequence.shard_index),
            shard_id(shard_index)
        )));
    }
    Ok(if after { sequence.first_index_after() } else { sequence.first_index_at() })
}

/// Where an expired shard's records end, if it has expired: nothing of it is served any more,
/// even what retention's segment granularity left in its log.
fn expired_end(service: &StreamsService, meta: &StreamMeta, shard: &ShardMeta) -> Option<u64> {
    shard.ending_index.filter(|_| shard.expired(service.trim_horizon_ms(meta, now_ms())))
}

/// The record index a reader starting at `kind` (an iterator type, which SubscribeToShard's
/// starting positions share) begins at.
pub(crate) async fn start_position(
    service: &StreamsService,
    meta: &StreamMeta,
    (shard_index, shard): (u32, &ShardMeta),
    kind: &str,
    sequence: Option<&str>,
    timestamp: Option<Timestamp>,
) -> Result<u64, AwsError> {
    let key = ShardKey { stream_id: meta.id, shard_index };
    let tail = service.storage.tail(key);
    let mixed_up = |what: &str| {
        AwsError::invalid_argument(format!(
            "Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and StartingSequenceNumber or \
             (2) TRIM_HORIZON or LATEST and no StartingSequenceNumber. Request specified {kind} and {what} StartingSequenceNumber."
        ))
    };
    let position = match (kind, sequence) {
        ("AT_SEQUENCE_NUMBER", Some(text)) => position_of_sequence(service, meta, shard_index, text, false)?,
        ("AFTER_SEQUENCE_NUMBER", Some(text)) => position_of_sequence(service, meta, shard_index, text, true)?,
        ("AT_SEQUENCE_NUMBER" | "AFTER_SEQUENCE_NUMBER", None) => return Err(mixed_up("no")),
        ("TRIM_HORIZON" | "LATEST", Some(_)) => return Err(mixed_up("also a")),
        ("TRIM_HORIZON", None) => tail.trim_index,
        ("LATEST", None) => shard.ending_index.unwrap_or(tail.next_index),
        _ => {
            let Some(Timestamp(at_ms)) = timestamp else {
                return Err(AwsError::invalid_argument(
                    "Must specify timestampInMillis parameter for iterator of type AT_TIMESTAMP. Current request has no timestamp parameter.",
                ));
            };
            let now = now_ms();
            if at_ms > now {
                return Err(AwsError::invalid_argument(format!(
                    "The timestampInMillis parameter cannot be greater than the currentTimestampInMillis. \
                     timestampInMillis: {at_ms}, currentTimestampInMillis: {now}"
                )));
            }
            let storage = service.storage.clone();
            tokio::task::spawn_blocking(move || storage.index_at_timestamp(key, at_ms))
                .await
                .map_err(|e| AwsError::internal(e.to_string()))?
                .map_err(storage_failure)?
        }
    };
    // A position before the trim horizon starts at the oldest record still stored. AWS documents
    // this for AT_TIMESTAMP ("If the time stamp is older than the current trim horizon, the
    // iterator returned is for the oldest untrimmed data record (TRIM_HORIZON)", GetShardIterator
    // API reference). For AT_SEQUENCE_NUMBER / AFTER_SEQUENCE_NUMBER of an expired record it
    // documents nothing, but AWS accepts the number (no error) and reading goes on from the
    // oldest record: consumers resuming from a checkpoint older than the retention period
    // "effectively start consuming the stream from the start" (github.com/justtrackio/gosoline
    // pull 1124; also harlow/kinesis-consumer issue 125, where AWS first answered empty pages
    // ~24 h behind while skipping the expired range). Tideline skips it at once. Only malformed
    // or foreign numbers are InvalidArgumentException (above).
    let first_available = tail.trim_index.max(expired_end(service, meta, shard).unwrap_or(0));
    Ok(position.max(first_available))
}

pub async fn get_shard_iterator(
    service: &StreamsService,
    caller: Option<&Caller>,
    input: GetShardIteratorInput,
) -> Result<GetShardIteratorOutput, AwsError> {
    input.validate()?;
    let name = service.resolve_name(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    let requested_shard = input.shard_id.unwrap_or_default();
    // AWS names the shard, not the stream, when either is missing.
    let missing = || shard_not_found(service, &requested_shard, &name);
    let meta = service.entry(&name).map_err(|_| missing())?.snapshot();
    if !meta.status.accepts_data() {
        return Err(missing());
    }
    let (shard_index, shard) = meta.find_shard(&requested_shard).ok_or_else(missing)?;
    service.authorize(caller, &meta, "kinesis:GetShardIterator", None)?;
    let kind = input.shard_iterator_type.unwrap_or_default();
    let position = start_position(
        service,
        &meta,
        (shard_index, shard),
        &kind,
        input.starting_sequence_number.as_deref(),
        input.timestamp,
    )
    .await?;
    let shard_iterator = service.iterators.encode(&IteratorPosition {
        created_ms: now_ms(),
        stream_id: meta.id,
        shard_index,
        record_index: position,
        stream_name: name.clone(),
    });
    Ok(GetShardIteratorOutput { shard_iterator })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetRecordsInput {
    shard_iterator: Option<String>,
    limit: Option<i64>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
}

impl GetRecordsInput {
    fn validate(&self) -> Result<(), AwsError> {
        let mut v = Validator::new();
        v.integer("limit", self.limit, 1, rules::MAX_GET_RECORDS);
        v.required("shardIterator", self.shard_iterator.as_ref());
        v.string("shardIterator", self.shard_iterator.as_deref(), 1, 512, None);
        rules::stream_arn(&mut v, self.stream_arn.as_deref());
        v.finish()
    }
}

/// Java's `Date.toString()` in UTC, which AWS uses in the expired-iterator message.
fn java_date(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map_or_else(|| ms.to_string(), |t| t.format("%a %b %d %H:%M:%S UTC %Y").to_string())
}

pub async fn get_records(
    service: &StreamsService,
    caller: Option<&Caller>,
    input: GetRecordsInput,
) -> Result<GetRecordsOutput, AwsError> {
    input.validate()?;
    let token = input.shard_iterator.unwrap_or_default();
    let position =
        service.iterators.decode(&token).ok_or_else(|| AwsError::invalid_argument("Invalid ShardIterator."))?;
    let now = now_ms();
    let ttl = service.config.iterator_ttl.as_millis() as i64;
    if now - position.created_ms > ttl {
        return Err(AwsError::new(
            ErrorCode::ExpiredIterator,
            format!(
                "Iterator expired. The iterator was created at time {} while right now it is {} which is further in the future than the tolerated delay of {ttl} milliseconds.",
                java_date(position.created_ms),
                java_date(now)
            ),
        ));
    }
    let missing = || shard_not_found(service, &shard_id(position.shard_index), &position.stream_name);
    let entry = service.entry(&position.stream_name).map_err(|_| missing())?;
    let meta = entry.snapshot();
    if meta.id != position.stream_id || !meta.status.accepts_data() {
        return Err(missing());
    }
    let shard = meta.shard(position.shard_index).ok_or_else(missing)?;
    service.authorize(caller, &meta, "kinesis:GetRecords", None)?;
    let key = ShardKey { stream_id: meta.id, shard_index: position.shard_index };
    if let Some(limits) = &service.limits {
        if !limits.admit_read(key) {
            service.metrics.record_throttled_read(&meta.name);
            return Err(AwsError::new(
                ErrorCode::ProvisionedThroughputExceeded,
                format!(
                    "Rate exceeded for shard {} in stream {} under account {}.",
                    shard_id(position.shard_index),
                    meta.name,
                    service.account()
                ),
            ));
        }
    }
    let started = std::time::Instant::now();
    let limit = input.limit.unwrap_or(rules::MAX_GET_RECORDS) as usize;
    let read = read_records(
        service,
        &meta,
        (position.shard_index, shard),
        position.record_index,
        limit,
        rules::MAX_GET_RECORDS_BYTES,
    )
    .await?;
    let bytes: usize = read.records.records.iter().map(|record| record.data.len()).sum();
    if let Some(limits) = &service.limits {
        limits.charge_read(key, bytes);
    }
    let age = read.millis_behind_latest;
    service.metrics.record_get(&meta.name, read.records.len() as u64, bytes as u64, age, started.elapsed());
    let next_shard_iterator = (!read.at_end).then(|| {
        service.iterators.encode(&IteratorPosition {
            created_ms: now,
            record_index: read.next_index,
            ..position.clone()
        })
    });
    Ok(GetRecordsOutput {
        records: read.records,
        next_shard_iterator,
        millis_behind_latest: read.millis_behind_latest,
        child_shards: read.at_end.then(|| child_shards(&meta, position.shard_index)),
    })
}

/// Records read from a shard for GetRecords or a SubscribeToShard event.
pub(crate) struct ReadRecords {
    pub records: ShardRecords,
    pub next_index: u64,
    pub millis_behind_latest: i64,
    /// The shard is closed and everything in it has been read.
    pub at_end: bool,
}

pub(crate) async fn read_records(
    service: &StreamsService,
    meta: &StreamMeta,
    (shard_index, shard): (u32, &ShardMeta),
    from: u64,
    limit: usize,
    max_bytes: usize,
) -> Result<ReadRecords, AwsError> {
    let key = ShardKey { stream_id: meta.id, shard_index };
    // The log itself starts reads at its trim index; an expired shard serves nothing.
    let from = expired_end(service, meta, shard).map_or(from, |end| from.max(end));
    let storage = service.storage.clone();
    let batch = tokio::task::spawn_blocking(move || storage.read(key, from, limit, max_bytes))
        .await
        .map_err(|e| AwsError::internal(e.to_string()))?
        .map_err(storage_failure)?;
    let tail = service.storage.tail(key);
    let millis_behind_latest = match batch.records.last() {
        Some(last) if batch.next_index < tail.next_index => (now_ms() - last.arrival_ms).max(0),
        _ => 0,
    };
    Ok(ReadRecords {
        records: ShardRecords { stream_id: meta.id, shard_index, records: batch.records },
        next_index: batch.next_index,
        millis_behind_latest,
        at_end: shard.ending_index.is_some_and(|end| batch.next_index >= end),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tideline_proto::{Codec, EncodeResponse};
    use tideline_storage::StoredRecord;

    use super::super::shapes::ChildShard;
    use bytes::Bytes;

    fn record(index: u64, key: &str, data: Vec<u8>, encrypted: bool) -> StoredRecord {
        StoredRecord {
            index,
            arrival_ms: 1_700_000_000_123 + index as i64,
            encrypted,
            partition_key: Bytes::copy_from_slice(key.as_bytes()),
            data: Bytes::from(data),
        }
    }

    #[test]
    fn json_is_written_as_serde_json_writes_it() {
        let records = |records: Vec<StoredRecord>| ShardRecords { stream_id: 5, shard_index: 2, records };
        let some = || {
            records(vec![
                record(0, "k", b"hello".to_vec(), false),
                record(1, "quote \" back\\slash \u{1} é 🦀", Vec::new(), true),
                record(2, "big", vec![7; 5000], false),
                // The same arrival time as the record before (written once, then copied).
                StoredRecord { index: 3, ..record(2, "tab\t", vec![1], false) },
                // A gap in the indices: its number is written afresh.
                record(9, "del \u{7f}", vec![2, 3], false),
            ])
        };
        let output = |records, next_shard_iterator: Option<&str>, child_shards| GetRecordsOutput {
            records,
            next_shard_iterator: next_shard_iterator.map(str::to_string),
            millis_behind_latest: 12,
            child_shards,
        };
        let child = || ChildShard {
            shard_id: shard_id(3),
            parent_shards: vec![shard_id(1)],
            hash_key_range: super::super::shapes::HashKeyRange {
                starting_hash_key: "0".into(),
                ending_hash_key: "99".into(),
            },
        };
        for output in [
            output(some(), Some("AAAA/+=="), None),
            output(records(Vec::new()), None, Some(vec![child()])),
            output(some(), None, Some(Vec::new())),
        ] {
            let expected = serde_json::to_string(&output).unwrap();
            assert_eq!(String::from_utf8(output.encode(Codec::Json)).unwrap(), expected);
        }
        // Each record's number is its own, in both encodings.
        let numbers: Vec<String> =
            [0, 1, 2, 3, 9].iter().map(|&i| SequenceNumber::of_record(5, 2, i).encode()).collect();
        let json: serde_json::Value = serde_json::from_slice(&output(some(), None, None).encode(Codec::Json)).unwrap();
        let written: Vec<&str> =
            json["Records"].as_array().unwrap().iter().map(|r| r["SequenceNumber"].as_str().unwrap()).collect();
        assert_eq!(written, numbers);
    }
}
