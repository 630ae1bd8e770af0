//! DeliveryStreamType `KinesisStreamAsSource`: a reader that consumes a Tideline data stream as
//! any Kinesis consumer does (ListShards, GetShardIterator, GetRecords, through the Data Streams
//! API in process), appends what it reads to the delivery stream's buffer, and then records how
//! far it got per shard. A crash between the two re-reads those records: duplicates, never gaps.
//! Parent shards are read to their end before their children, as the KCL does.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tideline_proto::Codec;
use tideline_storage::{AppendBatch, MetaOp, NewRecord};
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

struct Shard {
    id: String,
    parents: Vec<String>,
}

pub(crate) async fn run(
    service: Arc<FirehoseService>,
    meta: Arc<DeliveryStreamMeta>,
    source: KinesisStreamSource,
    mut stopped: watch::Receiver<bool>,
) {
    let mut reader = Reader { service, meta, source, checkpoint: Checkpoint::default(), iterators: HashMap::new() };
    if let Some(bytes) = reader.service.storage.metadata().get(&checkpoint_key(reader.meta.id)).ok().flatten() {
        reader.checkpoint = serde_json::from_slice(&bytes).unwrap_or_default();
    }
    while !is_stopped(&stopped) {
        if let Err(error) = reader.poll(&stopped).await {
            tracing::warn!(delivery_stream = %reader.meta.name, source = %reader.source.stream_name, %error, "reading the source stream failed");
            reader.iterators.clear();
        }
        tokio::select! {
            _ = stopped.changed() => {}
            _ = tokio::time::sleep(POLL_INTERVAL) => {}
        }
    }
}

struct Reader {
    service: Arc<FirehoseService>,
    meta: Arc<DeliveryStreamMeta>,
    source: KinesisStreamSource,
    checkpoint: Checkpoint,
    /// Live iterators by shard, so an idle poll is one GetRecords per shard.
    iterators: HashMap<String, String>,
}

impl Reader {
    async fn call(&self, operation: &str, request: Value) -> Result<Value, String> {
        let body = serde_json::to_vec(&request).map_err(|error| error.to_string())?;
        let response = self
            .service
            .streams
            .handle(None, operation, Codec::Json, &body)
            .await
            .map_err(|error| error.to_string())?;
        serde_json::from_slice(&response).map_err(|error| error.to_string())
    }

    async fn shards(&self) -> Result<Vec<Shard>, String> {
        let mut shards = Vec::new();
        let mut request = json!({ "StreamName": self.source.stream_name });
        loop {
            let page = self.call("ListShards", request).await?;
            for shard in page["Shards"].as_array().into_iter().flatten() {
                let text = |field: &str| shard[field].as_str().map(str::to_string);
                let Some(id) = text("ShardId") else { continue };
                let parents = [text("ParentShardId"), text("AdjacentParentShardId")].into_iter().flatten().collect();
                shards.push(Shard { id, parents });
            }
            match page["NextToken"].as_str() {
                Some(token) => request = json!({ "NextToken": token }),
                None => return Ok(shards),
            }
        }
    }

    async fn poll(&mut self, stopped: &watch::Receiver<bool>) -> Result<(), String> {
        let shards = self.shards().await?;
        let known: std::collections::HashSet<&str> = shards.iter().map(|shard| shard.id.as_str()).collect();
        for shard in &shards {
            let progress = self.checkpoint.shards.get(&shard.id).cloned().unwrap_or_default();
            let parents_done = shard.parents.iter().all(|parent| {
                !known.contains(parent.as_str()) || self.checkpoint.shards.get(parent).is_some_and(|p| p.finished)
            });
            if progress.finished || !parents_done {
                continue;
            }
            self.read_shard(&shard.id, progress, stopped).await?;
        }
        Ok(())
    }

    async fn iterator(&self, shard_id: &str, progress: &ShardProgress) -> Result<Option<String>, String> {
        let mut request = json!({ "StreamName": self.source.stream_name, "ShardId": shard_id });
        match (&progress.after, self.service.config.kinesis_start) {
            (Some(after), _) => {
                request["ShardIteratorType"] = json!("AFTER_SEQUENCE_NUMBER");
                request["StartingSequenceNumber"] = json!(after);
            }
            (None, KinesisStart::TrimHorizon) => request["ShardIteratorType"] = json!("TRIM_HORIZON"),
            (None, KinesisStart::Latest) => {
                // "LATEST" as of the delivery stream's creation, so that records put right after
                // CreateDeliveryStream are delivered even if this reader starts later.
                request["ShardIteratorType"] = json!("AT_TIMESTAMP");
                request["Timestamp"] = json!(self.source.start_ms as f64 / 1000.0);
            }
        }
        Ok(self.call("GetShardIterator", request).await?["ShardIterator"].as_str().map(str::to_string))
    }

    /// Reads the shard up to its current end, appending and checkpointing page by page.
    async fn read_shard(
        &mut self,
        shard_id: &str,
        mut progress: ShardProgress,
        stopped: &watch::Receiver<bool>,
    ) -> Result<(), String> {
        let mut iterator = match self.iterators.remove(shard_id) {
            Some(iterator) => Some(iterator),
            None => self.iterator(shard_id, &progress).await?,
        };
        while let Some(current) = iterator.take() {
            if is_stopped(stopped) {
                return Ok(());
            }
            let page = self.call("GetRecords", json!({ "ShardIterator": current, "Limit": 10_000 })).await?;
            let records = page["Records"].as_array().cloned().unwrap_or_default();
            let next = page["NextShardIterator"].as_str().map(str::to_string);
            if let Some(last) = records.last() {
                self.append(shard_id, &records).await?;
                progress.after = last["SequenceNumber"].as_str().map(str::to_string);
            }
            progress.finished = next.is_none();
            if !records.is_empty() || progress.finished {
                self.save(shard_id, &progress).await?;
            }
            if records.is_empty() {
                if let Some(next) = next {
                    self.iterators.insert(shard_id.to_string(), next);
                }
                return Ok(());
            }
            iterator = next;
        }
        Ok(())
    }

    async fn append(&self, shard_id: &str, records: &[Value]) -> Result<(), String> {
        let decode = |record: &Value| -> Option<NewRecord> {
            let data = base64::engine::general_purpose::STANDARD.decode(record["Data"].as_str()?).ok()?;
            let origin = KinesisRecordMetadata {
                shard_id: shard_id.to_string(),
                partition_key: record["PartitionKey"].as_str()?.to_string(),
                approximate_arrival_timestamp: (record["ApproximateArrivalTimestamp"].as_f64()? * 1000.0) as i64,
                sequence_number: record["SequenceNumber"].as_str()?.to_string(),
                subsequence_number: 0,
            };
            Some(NewRecord {
                // The buffer's record key carries the origin, for the transformation event.
                partition_key: Bytes::from(serde_json::to_vec(&origin).ok()?),
                data: Bytes::from(data),
                encrypted: false,
            })
        };
        let records: Vec<NewRecord> = records.iter().filter_map(decode).collect();
        let (count, bytes) = (records.len() as u64, records.iter().map(|record| record.data.len() as u64).sum());
        let batch = AppendBatch { shard: FirehoseService::log_key(&self.meta), records };
        self.service.storage.append(vec![batch]).await.map_err(|error| error.to_string())?;
        self.service.metrics.record_kinesis_read(&self.meta.name, count, bytes);
        self.service.metrics.record_incoming(&self.meta.name, count, bytes);
        Ok(())
    }

    async fn save(&mut self, shard_id: &str, progress: &ShardProgress) -> Result<(), String> {
        self.checkpoint.shards.insert(shard_id.to_string(), progress.clone());
        let bytes = serde_json::to_vec(&self.checkpoint).map_err(|error| error.to_string())?;
        self.service
            .storage
            .metadata()
            .commit(vec![MetaOp::Put(checkpoint_key(self.meta.id), bytes)])
            .await
            .map_err(|error| error.to_string())
    }
}
