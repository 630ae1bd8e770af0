//! Sending a batch: PutRecords to a Kinesis stream or PutRecordBatch to a Firehose delivery
//! stream. Records the service failed (throttling, internal errors) and calls that failed as a
//! whole are sent again with exponential backoff until every record is acknowledged: the caller
//! checkpoints only after that, so nothing read is skipped.

use std::time::Duration;

use aws_sdk_firehose::types::Record as FirehoseRecord;
use aws_sdk_kinesis::error::DisplayErrorContext;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use md5::{Digest, Md5};

use crate::config::PartitionKeyOption;

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

pub enum Sink {
    Kinesis { client: aws_sdk_kinesis::Client, stream: String, partition_key: PartitionKeyOption },
    Firehose { client: aws_sdk_firehose::Client, stream: String },
}

/// What one batch took: for the progress log.
#[derive(Default)]
pub struct Sent {
    pub retried_records: u64,
    pub failed_calls: u64,
}

/// The partition key the Kinesis Agent's option gives a record: random, or derived from the data.
fn partition_key(option: PartitionKeyOption, data: &[u8]) -> String {
    match option {
        PartitionKeyOption::Random => format!("{:032x}", rand::random::<u128>()),
        PartitionKeyOption::Deterministic => format!("{:x}", Md5::digest(data)),
    }
}

impl Sink {
    /// Sends every record, retrying until all are acknowledged.
    pub async fn send(&self, records: Vec<Vec<u8>>) -> Sent {
        let mut sent = Sent::default();
        let mut backoff = FIRST_BACKOFF;
        // Each record keeps its partition key across retries.
        let mut pending: Vec<(Vec<u8>, String)> = match self {
            Sink::Kinesis { partition_key: option, .. } => records
                .into_iter()
                .map(|data| {
                    let key = partition_key(*option, &data);
                    (data, key)
                })
                .collect(),
            Sink::Firehose { .. } => records.into_iter().map(|data| (data, String::new())).collect(),
        };
        loop {
            let before = pending.len();
            match self.attempt(&pending).await {
                Ok(failed) if failed.is_empty() => return sent,
                Ok(failed) => {
                    sent.retried_records += failed.len() as u64;
                    let mut index = 0;
                    pending.retain(|_| {
                        index += 1;
                        failed.contains(&(index - 1))
                    });
                }
                Err(message) => {
                    sent.failed_calls += 1;
                    tracing::warn!("{} failed, retrying in {backoff:?}: {message}", self.describe());
                }
            }
            if pending.len() < before {
                backoff = FIRST_BACKOFF;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    fn describe(&self) -> String {
        match self {
            Sink::Kinesis { stream, .. } => format!("PutRecords to stream {stream}"),
            Sink::Firehose { stream, .. } => format!("PutRecordBatch to delivery stream {stream}"),
        }
    }

    /// One call; the indexes of the records the service did not take.
    async fn attempt(&self, records: &[(Vec<u8>, String)]) -> Result<Vec<usize>, String> {
        match self {
            Sink::Kinesis { client, stream, .. } => {
                let entries = records
                    .iter()
                    .map(|(data, key)| {
                        PutRecordsRequestEntry::builder().data(Blob::new(data.clone())).partition_key(key).build()
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| e.to_string())?;
                let output = client
                    .put_records()
                    .stream_name(stream)
                    .set_records(Some(entries))
                    .send()
                    .await
                    .map_err(|e| DisplayErrorContext(e).to_string())?;
                Ok(output
                    .records()
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.error_code().is_some())
                    .map(|(i, _)| i)
                    .collect())
            }
            Sink::Firehose { client, stream } => {
                let entries = records
                    .iter()
                    .map(|(data, _)| {
                        FirehoseRecord::builder().data(aws_sdk_firehose::primitives::Blob::new(data.clone())).build()
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| e.to_string())?;
                let output = client
                    .put_record_batch()
                    .delivery_stream_name(stream)
                    .set_records(Some(entries))
                    .send()
                    .await
                    .map_err(|e| DisplayErrorContext(e).to_string())?;
                Ok(output
                    .request_responses()
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.error_code().is_some())
                    .map(|(i, _)| i)
                    .collect())
            }
        }
    }
}
