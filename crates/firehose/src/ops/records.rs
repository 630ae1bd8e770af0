//! PutRecord and PutRecordBatch: records are durable in the delivery stream's buffer before the
//! call returns; delivery happens later, by the stream's worker.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tideline_proto::{AwsError, Blob, Validator};
use tideline_storage::{AppendBatch, AppendOutcome, NewRecord};

use super::delivery_streams::validate_name;
use crate::error::FirehoseError;
use crate::model::{record_id, DeliveryStreamType};
use crate::service::FirehoseService;

/// Largest record, before base64 (1,000 KiB).
pub(crate) const MAX_RECORD_BYTES: usize = 1_024_000;
/// PutRecordBatch: at most 500 records and 4 MiB in all.
const MAX_BATCH_RECORDS: usize = 500;
const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Record {
    data: Option<Blob>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct PutRecordInput {
    delivery_stream_name: Option<String>,
    record: Option<Record>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct PutRecordOutput {
    record_id: String,
    encrypted: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct PutRecordBatchInput {
    delivery_stream_name: Option<String>,
    records: Option<Vec<Record>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct PutRecordBatchOutput {
    failed_put_count: u32,
    encrypted: bool,
    request_responses: Vec<PutRecordBatchResponseEntry>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct PutRecordBatchResponseEntry {
    record_id: String,
}

fn validate_record(v: &mut Validator, path: &str, record: &Record) {
    if v.required(path, record.data.as_ref()) {
        v.blob(path, record.data.as_ref().map(|data| &data.0[..]), MAX_RECORD_BYTES);
    }
}

/// Appends to the buffer; returns the first index and whether the stream encrypts at rest.
pub(crate) async fn accept(
    service: &FirehoseService,
    name: &str,
    data: Vec<bytes::Bytes>,
) -> Result<(u64, u64, bool), AwsError> {
    let stream = service.get(name)?;
    if stream.meta.kind != DeliveryStreamType::DirectPut {
        return Err(AwsError::invalid_argument(format!(
            "This operation is not permitted on KinesisStreamAsSource delivery stream type. Delivery stream {name} \
             under account {} is of type KinesisStreamAsSource.",
            service.account()
        )));
    }
    let encrypted = stream.meta.encryption.as_ref().is_some_and(|encryption| encryption.enabled);
    let records: Vec<NewRecord> =
        data.into_iter().map(|data| NewRecord { partition_key: bytes::Bytes::new(), data, encrypted }).collect();
    let (count, bytes) = (records.len() as u64, records.iter().map(|record| record.data.len() as u64).sum());
    let batch = AppendBatch { shard: FirehoseService::log_key(&stream.meta), records };
    let outcome = service.storage.append(vec![batch]).await.map_err(FirehoseError::Storage)?;
    match outcome.first() {
        Some(AppendOutcome::Appended { first_index, .. }) => {
            service.metrics.record_incoming(name, count, bytes);
            Ok((stream.meta.id, *first_index, encrypted))
        }
        // Only a deleted stream's buffer is sealed.
        _ => Err(service.not_found(name)),
    }
}

pub(crate) async fn put_record(
    service: &Arc<FirehoseService>,
    input: PutRecordInput,
) -> Result<PutRecordOutput, AwsError> {
    let mut v = Validator::new();
    validate_name(&mut v, input.delivery_stream_name.as_deref());
    if v.required("record", input.record.as_ref()) {
        if let Some(record) = &input.record {
            validate_record(&mut v, "record.data", record);
        }
    }
    v.finish()?;
    let (Some(name), Some(Record { data: Some(data) })) = (input.delivery_stream_name, input.record) else {
        return Err(AwsError::internal("validated request lost a member"));
    };
    let (stream_id, index, encrypted) = accept(service, &name, vec![data.0]).await?;
    Ok(PutRecordOutput { record_id: record_id(stream_id, index), encrypted })
}

pub(crate) async fn put_record_batch(
    service: &Arc<FirehoseService>,
    input: PutRecordBatchInput,
) -> Result<PutRecordBatchOutput, AwsError> {
    let mut v = Validator::new();
    validate_name(&mut v, input.delivery_stream_name.as_deref());
    if v.required("records", input.records.as_ref()) {
        let records = input.records.as_deref().unwrap_or_default();
        v.length("records", None, records.len(), 1, MAX_BATCH_RECORDS);
        for (i, record) in records.iter().enumerate() {
            if v.is_ok() {
                validate_record(&mut v, &format!("records.{}.member.data", i + 1), record);
            }
        }
    }
    v.finish()?;
    let (Some(name), Some(records)) = (input.delivery_stream_name, input.records) else {
        return Err(AwsError::internal("validated request lost a member"));
    };
    let data: Vec<bytes::Bytes> = records.into_iter().filter_map(|record| Some(record.data?.0)).collect();
    let total: usize = data.iter().map(|data| data.len()).sum();
    if total > MAX_BATCH_BYTES {
        return Err(AwsError::invalid_argument(format!(
            "Records size exceeds 4 MB limit. Total size of records in the request: {total} bytes."
        )));
    }
    let count = data.len() as u64;
    let (stream_id, first, encrypted) = accept(service, &name, data).await?;
    Ok(PutRecordBatchOutput {
        failed_put_count: 0,
        encrypted,
        request_responses: (first..first + count)
            .map(|index| PutRecordBatchResponseEntry { record_id: record_id(stream_id, index) })
            .collect(),
    })
}
