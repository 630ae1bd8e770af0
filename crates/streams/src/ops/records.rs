//! Writing records: PutRecord and PutRecords, and the routing and durable append they share.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tideline_proto::{AwsError, Blob, ErrorCode, Validator};
use tideline_storage::{AppendBatch, AppendOutcome, NewRecord, ShardKey};

use crate::hash::{hash_key_of, parse_hash_key};
use crate::model::shard_id;
use crate::rules;
use crate::sequence::SequenceNumber;
use crate::service::{storage_failure, Caller, StreamEntry, StreamsService};

/// What became of a record: where it landed, or which shard's write limit refused it.
enum Placement {
    Appended { shard_index: u32, record_index: u64 },
    Throttled { shard_index: u32 },
}

/// Records written by one request, in request order, and the stream state they were written under.
struct Written {
    placements: Vec<Placement>,
    stream_id: u64,
    encrypted: bool,
}

/// How many times a write re-routes after racing a reshard that closed its shard.
const MAX_REROUTES: usize = 5;

/// Routes each record (by hash key) to the open shard owning it and appends them durably.
/// With `--enforce-limits`, a record over its shard's write limit is refused (and not written).
/// A shard can be closed by a concurrent reshard between routing and appending; storage then
/// refuses the batch, and those records are routed again once the new shard tree is installed.
async fn append(
    service: &StreamsService,
    name: &str,
    entry: &Arc<StreamEntry>,
    records: Vec<(u128, NewRecord)>,
) -> Result<Written, AwsError> {
    let mut placements: Vec<Option<Placement>> = records.iter().map(|_| None).collect();
    let mut pending: Vec<usize> = (0..records.len()).collect();
    for attempt in 0..MAX_REROUTES {
        let mut changed = entry.changed.subscribe();
        // Group the pending records by shard, keeping their order within each shard.
        let mut batches: Vec<(AppendBatch, Vec<usize>)> = Vec::new();
        let (stream_id, encrypted) = {
            let state = entry.state.read();
            if !state.meta.status.accepts_data() {
                return Err(service.stream_not_found(name));
            }
            let (stream_id, encrypted) = (state.meta.id, state.meta.encryption_key.is_some());
            for &position in &pending {
                let (hash, record) = &records[position];
                let Some(shard_index) = state.routing.shard_for(*hash) else {
                    return Err(AwsError::internal("no open shard owns the hash key"));
                };
                // Only the first routing is charged: a record re-routed after a reshard was admitted.
                if let (Some(limits), 0) = (&service.limits, attempt) {
                    let size = record.data.len() + record.partition_key.len();
                    if !limits.admit_write(ShardKey { stream_id, shard_index }, size) {
                        placements[position] = Some(Placement::Throttled { shard_index });
                        continue;
                    }
                }
                let record = NewRecord { encrypted, ..record.clone() };
                match batches.iter_mut().find(|(batch, _)| batch.shard.shard_index == shard_index) {
                    Some((batch, positions)) => {
                        batch.records.push(record);
                        positions.push(position);
                    }
                    None => batches.push((
                        AppendBatch { shard: ShardKey { stream_id, shard_index }, records: vec![record] },
                        vec![position],
                    )),
                }
            }
            (stream_id, encrypted)
        };
        let (batches, positions): (Vec<AppendBatch>, Vec<Vec<usize>>) = batches.into_iter().unzip();
        let shards: Vec<u32> = batches.iter().map(|batch| batch.shard.shard_index).collect();
        let outcomes = service.storage.append(batches).await.map_err(storage_failure)?;
        pending.clear();
        for ((outcome, positions), shard_index) in outcomes.into_iter().zip(positions).zip(shards) {
            match outcome {
                AppendOutcome::Appended { first_index, .. } => {
                    for (offset, position) in positions.into_iter().enumerate() {
                        placements[position] =
                            Some(Placement::Appended { shard_index, record_index: first_index + offset as u64 });
                    }
                }
                AppendOutcome::ShardSealed => pending.extend(positions),
            }
        }
        if pending.is_empty() {
            let placements = placements.into_iter().flatten().collect();
            return Ok(Written { placements, stream_id, encrypted });
        }
        pending.sort_unstable();
        // Wait for the reshard that sealed the shard to install the new tree.
        let _ = tokio::time::timeout(Duration::from_secs(2), changed.changed()).await;
    }
    Err(AwsError::internal("records could not be routed to an open shard"))
}

fn hash_key(partition_key: &str, explicit: Option<&str>) -> Result<u128, AwsError> {
    match explicit {
        None => Ok(hash_key_of(partition_key)),
        Some(text) => parse_hash_key(text).ok_or_else(|| {
            AwsError::invalid_argument(format!(
                "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified value was {text}"
            ))
        }),
    }
}

/// Records over the stream's maximum record size (the default 1 MiB) are refused as AWS does.
fn check_record_size(data: &[u8]) -> Result<(), AwsError> {
    if data.len() <= rules::MAX_RECORD_BYTES {
        return Ok(());
    }
    Err(AwsError::invalid_argument(format!(
        "Record data size {} exceeds the stream's max record size of {} bytes",
        data.len(),
        rules::MAX_RECORD_BYTES
    )))
}

fn encryption_type(encrypted: bool) -> &'static str {
    if encrypted {
        "KMS"
    } else {
        "NONE"
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRecordInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    data: Option<Blob>,
    partition_key: Option<String>,
    explicit_hash_key: Option<String>,
    sequence_number_for_ordering: Option<String>,
}

impl PutRecordInput {
    fn validate(&self) -> Result<(), AwsError> {
        let mut v = Validator::new();
        v.required("partitionKey", self.partition_key.as_ref());
        v.string("partitionKey", self.partition_key.as_deref(), 1, 256, None);
        rules::hash_key(&mut v, "explicitHashKey", self.explicit_hash_key.as_deref());
        v.required("data", self.data.as_ref());
        v.blob("data", self.data.as_ref().map(|d| &d.0[..]), rules::MAX_API_RECORD_BYTES);
        rules::sequence_number(&mut v, "sequenceNumberForOrdering", self.sequence_number_for_ordering.as_deref());
        rules::stream_target(&mut v, self.stream_name.as_deref(), self.stream_arn.as_deref());
        v.finish()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRecordOutput {
    shard_id: String,
    sequence_number: String,
    encryption_type: &'static str,
}

pub async fn put_record(
    service: &StreamsService,
    caller: Option<&Caller>,
    input: PutRecordInput,
) -> Result<PutRecordOutput, AwsError> {
    input.validate()?;
    let (name, entry) = service.target(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    service.authorize(caller, &entry.state.read().meta, "kinesis:PutRecord", None)?;
    let started = std::time::Instant::now();
    let partition_key = input.partition_key.unwrap_or_default();
    let hash = hash_key(&partition_key, input.explicit_hash_key.as_deref())?;
    if let Some(ordering) = input.sequence_number_for_ordering.as_deref() {
        // Sequence numbers only grow within a shard, so the ordering it asks for always holds;
        // a number this server never issued is refused as AWS refuses it.
        if SequenceNumber::decode(ordering).is_none() {
            return Err(AwsError::invalid_argument(format!(
                "ExclusiveMinimumSequenceNumber {ordering} used in PutRecord on stream {name} under account {} is invalid.",
                service.account()
            )));
        }
    }
    let data = input.data.unwrap_or_default().0;
    check_record_size(&data)?;
    let size = data.len();
    let written =
        append(service, &name, &entry, vec![(hash, NewRecord { partition_key, data, encrypted: false })]).await?;
    match written.placements.first() {
        Some(&Placement::Appended { shard_index, record_index }) => {
            service.metrics.record_put(&name, "PutRecord", 1, size as u64, started.elapsed());
            Ok(PutRecordOutput {
                shard_id: shard_id(shard_index),
                sequence_number: SequenceNumber::of_record(written.stream_id, shard_index, record_index).encode(),
                encryption_type: encryption_type(written.encrypted),
            })
        }
        Some(&Placement::Throttled { shard_index }) => {
            service.metrics.record_throttled_writes(&name, 1);
            Err(AwsError::new(ErrorCode::ProvisionedThroughputExceeded, rate_exceeded(service, &name, shard_index)))
        }
        None => Err(AwsError::internal("record was not placed")),
    }
}

/// AWS's message for a record refused by its shard's write limit.
fn rate_exceeded(service: &StreamsService, stream: &str, shard_index: u32) -> String {
    format!("Rate exceeded for shard {} in stream {stream} under account {}.", shard_id(shard_index), service.account())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRecordsEntry {
    data: Option<Blob>,
    partition_key: Option<String>,
    explicit_hash_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRecordsInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    records: Option<Vec<PutRecordsEntry>>,
}

impl PutRecordsInput {
    fn validate(&self) -> Result<(), AwsError> {
        let mut v = Validator::new();
        v.required("records", self.records.as_ref());
        if let Some(records) = &self.records {
            let rendered = format!(
                "[{}]",
                vec!["com.amazonaws.kinesis.v20131202.PutRecordsRequestEntry"; records.len()].join(", ")
            );
            v.length("records", Some(&rendered), records.len(), 1, rules::MAX_PUT_RECORDS);
            for (i, record) in records.iter().enumerate() {
                let path = |member: &str| format!("records.{}.member.{member}", i + 1);
                v.required(&path("partitionKey"), record.partition_key.as_ref());
                v.string(&path("partitionKey"), record.partition_key.as_deref(), 1, 256, None);
                rules::hash_key(&mut v, &path("explicitHashKey"), record.explicit_hash_key.as_deref());
                v.required(&path("data"), record.data.as_ref());
                v.blob(&path("data"), record.data.as_ref().map(|d| &d.0[..]), rules::MAX_API_RECORD_BYTES);
            }
        }
        rules::stream_target(&mut v, self.stream_name.as_deref(), self.stream_arn.as_deref());
        v.finish()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRecordsResultEntry {
    #[serde(skip_serializing_if = "Option::is_none")]
    sequence_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    shard_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_message: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRecordsOutput {
    failed_record_count: u32,
    records: Vec<PutRecordsResultEntry>,
    encryption_type: &'static str,
}

pub async fn put_records(
    service: &StreamsService,
    caller: Option<&Caller>,
    input: PutRecordsInput,
) -> Result<PutRecordsOutput, AwsError> {
    input.validate()?;
    let (name, entry) = service.target(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    service.authorize(caller, &entry.state.read().meta, "kinesis:PutRecords", None)?;
    let started = std::time::Instant::now();
    let entries = input.records.unwrap_or_default();
    let total: usize = entries
        .iter()
        .map(|e| e.data.as_ref().map_or(0, |d| d.0.len()) + e.partition_key.as_ref().map_or(0, String::len))
        .sum();
    if total > rules::MAX_PUT_RECORDS_BYTES {
        return Err(AwsError::invalid_argument(format!(
            "Records size exceeds 5 MB limit. Total size of the records in the request was {total} bytes."
        )));
    }
    let mut records = Vec::with_capacity(entries.len());
    for record in entries {
        let partition_key = record.partition_key.unwrap_or_default();
        let hash = hash_key(&partition_key, record.explicit_hash_key.as_deref())?;
        let data = record.data.unwrap_or_default().0;
        check_record_size(&data)?;
        records.push((hash, NewRecord { partition_key, data, encrypted: false }));
    }
    let sizes: Vec<usize> = records.iter().map(|(_, record)| record.data.len()).collect();
    let written = append(service, &name, &entry, records).await?;
    let appended = || written.placements.iter().zip(&sizes).filter(|(p, _)| matches!(p, Placement::Appended { .. }));
    let throttled = written.placements.len() - appended().count();
    let bytes: usize = appended().map(|(_, size)| size).sum();
    service.metrics.record_put(&name, "PutRecords", appended().count() as u64, bytes as u64, started.elapsed());
    if throttled > 0 {
        service.metrics.record_throttled_writes(&name, throttled as u64);
    }
    let records = written
        .placements
        .iter()
        .map(|placement| match *placement {
            Placement::Appended { shard_index, record_index } => PutRecordsResultEntry {
                sequence_number: Some(SequenceNumber::of_record(written.stream_id, shard_index, record_index).encode()),
                shard_id: Some(shard_id(shard_index)),
                error_code: None,
                error_message: None,
            },
            Placement::Throttled { shard_index } => PutRecordsResultEntry {
                sequence_number: None,
                shard_id: None,
                error_code: Some("ProvisionedThroughputExceededException"),
                error_message: Some(rate_exceeded(service, &name, shard_index)),
            },
        })
        .collect();
    Ok(PutRecordsOutput {
        failed_record_count: throttled as u32,
        records,
        encryption_type: encryption_type(written.encrypted),
    })
}
