//! DeliveryStreamType `KinesisStreamAsSource`: a reader that consumes a Tideline data stream
//! through the typed in-process Data Streams API (`StreamsService::stream_info`, `open_reader`),
//! appends what it reads to the delivery stream's buffer, and then records how far it got per
//! shard. A crash between the two re-reads those records: duplicates, never gaps. Parent shards
//! are read to their end before their children, as the KCL does.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tideline_proto::AwsError;
use tideline_storage::{AppendBatch, MetaOp, NewRecord};
use tideline_streams::{Position, ShardInfo, ShardReader};
use tokio::sync::watch;

use crate::delivery::is_stopped;
use crate::model::{DeliveryStreamMeta, KinesisStreamSource};
use crate::processing::KinesisRecordMetadata;
use crate::service::{FirehoseService, KinesisStart};

pub(crate) fn checkpoint_key(id: u64) -> String {
    format!("source/{id}")
}

/// How often an idle source is polled (Firehose reads each shard about once a second).
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Records per read, as GetRecords' largest page.
const READ_LIMIT: usize = 10_000;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Checkpoint {
    shards: BTreeMap<String, ShardProgress>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct ShardProgress {
    /// The sequence number of the last record appended to the buffer.
    after: Option<String>,
    /// The shard is closed and read to its end.
    finished: bool,
}

pub(crate) async fn run(
    service: Arc<FirehoseService>,
    meta: Arc<DeliveryStreamMeta>,
    source: KinesisStreamSource,
    mut stopped: watch::Receiver<bool>,
) {
    let mut reader = Reader { service, meta, source, checkpoint: Checkpoint::default(), readers: HashMap::new() };
    if let Some(bytes) = reader.service.storage.metadata().get(&checkpoint_key(reader.meta.id)).ok().flatten() {
        reader.checkpoint = serde_json::from_slice(&bytes).unwrap_or_default();
    }
    while !is_stopped(&stopped) {
        if let Err(error) = reader.poll(&stopped).await {
            tracing::warn!(delivery_stream = %reader.meta.name, source = %reader.source.stream_name, %error, "reading the source stream failed");
            reader.readers.clear();
        }
        tokio::select! {
            _ = stopped.changed() => {}
            _ = tokio::time::sleep(POLL_INTERVAL) => {}
        }
    }
}

/// Why one poll of the source stopped early; the next poll starts over from the checkpoint.
#[derive(Debug, thiserror::Error)]
enum SourceError {
    #[error("{0}")]
    Stream(#[from] AwsError),
    #[error("{0}")]
    Storage(#[from] tideline_storage::StorageError),
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] serde_json::Error),
}

struct Reader {
    service: Arc<FirehoseService>,
    meta: Arc<DeliveryStreamMeta>,
    source: KinesisStreamSource,
    checkpoint: Checkpoint,
    /// Open readers by shard, so an idle poll costs one read per shard.
    readers: HashMap<String, ShardReader>,
}

impl Reader {
    async fn poll(&mut self, stopped: &watch::Receiver<bool>) -> Result<(), SourceError> {
        let shards = self.service.streams.stream_info(Some(&self.source.stream_name), None)?.shards;
        let known: HashSet<&str> = shards.iter().map(|shard| shard.shard_id.as_str()).collect();
        for shard in &shards {
            let progress = self.checkpoint.shards.get(&shard.shard_id).cloned().unwrap_or_default();
            if progress.finished || !self.parents_done(shard, &known) {
                continue;
            }
            self.read_shard(&shard.shard_id, progress, stopped).await?;
        }
        Ok(())
    }

    /// Parents no longer listed (expired) count as done.
    fn parents_done(&self, shard: &ShardInfo, known: &HashSet<&str>) -> bool {
        shard.parents.iter().all(|parent| {
            !known.contains(parent.as_str()) || self.checkpoint.shards.get(parent).is_some_and(|p| p.finished)
        })
    }

    async fn open(&self, shard_id: &str, progress: &ShardProgress) -> Result<ShardReader, AwsError> {
        let position = match (&progress.after, self.service.config.kinesis_start) {
            (Some(after), _) => Position::AfterSequenceNumber(after.clone()),
            (None, KinesisStart::TrimHorizon) => Position::TrimHorizon,
            // "LATEST" as of the delivery stream's creation, so that records put right after
            // CreateDeliveryStream are delivered even if this reader starts later.
            (None, KinesisStart::Latest) => Position::AtTimestamp(self.source.start_ms),
        };
        self.service.streams.open_reader(&self.source.stream_name, shard_id, position).await
    }

    /// Reads the shard up to its current end, appending and checkpointing batch by batch.
    async fn read_shard(
        &mut self,
        shard_id: &str,
        mut progress: ShardProgress,
        stopped: &watch::Receiver<bool>,
    ) -> Result<(), SourceError> {
        let mut reader = match self.readers.remove(shard_id) {
            Some(reader) => reader,
            None => self.open(shard_id, &progress).await?,
        };
        while !is_stopped(stopped) {
            let batch = reader.read(READ_LIMIT).await?;
            let read_any = !batch.records.is_empty();
            if let Some(last) = batch.records.last() {
                progress.after = Some(last.sequence_number.clone());
                self.append(shard_id, batch.records).await?;
            }
            progress.finished = batch.end_of_shard;
            if read_any || progress.finished {
                self.save(shard_id, &progress).await?;
            }
            if progress.finished {
                return Ok(());
            }
            if batch.millis_behind_latest == 0 {
                // Caught up: keep the reader for the next poll.
                self.readers.insert(shard_id.to_string(), reader);
                return Ok(());
            }
        }
        Ok(())
    }

    async fn append(&self, shard_id: &str, records: Vec<tideline_streams::Record>) -> Result<(), SourceError> {
        let mut buffered = Vec::with_capacity(records.len());
        let mut bytes = 0u64;
        for record in records {
            let origin = KinesisRecordMetadata {
                shard_id: shard_id.to_string(),
                partition_key: String::from_utf8_lossy(&record.partition_key).into_owned(),
                approximate_arrival_timestamp: record.arrival_ms,
                sequence_number: record.sequence_number,
                subsequence_number: 0,
            };
            bytes += record.data.len() as u64;
            // The buffer's record key carries the origin, for the transformation event.
            buffered.push(NewRecord { partition_key: origin.to_buffer_key()?, data: record.data, encrypted: false });
        }
        let count = buffered.len() as u64;
        let batch = AppendBatch { shard: FirehoseService::log_key(&self.meta), records: buffered };
        self.service.storage.append(vec![batch]).await?;
        self.service.metrics.record_kinesis_read(&self.meta.name, count, bytes);
        self.service.metrics.record_incoming(&self.meta.name, count, bytes);
        Ok(())
    }

    async fn save(&mut self, shard_id: &str, progress: &ShardProgress) -> Result<(), SourceError> {
        self.checkpoint.shards.insert(shard_id.to_string(), progress.clone());
        let bytes = serde_json::to_vec(&self.checkpoint)?;
        self.service.storage.metadata().commit(vec![MetaOp::Put(checkpoint_key(self.meta.id), bytes)]).await?;
        Ok(())
    }
}
