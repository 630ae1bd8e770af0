//! The delivery loop of one delivery stream: reads accepted records from its durable buffer,
//! waits for the buffering hints (size or interval, whichever comes first), runs the processing
//! steps, hands the batch to the destination, retries with backoff, sends what cannot be
//! delivered to the error output, and only then advances the delivered checkpoint. A crash
//! anywhere before the checkpoint means the batch is delivered again after the restart: at least
//! once, never lost.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tideline_storage::{MetaOp, ShardKey, StoredRecord};
use tokio::sync::watch;

use crate::destinations::s3::ObjectWriter;
use crate::destinations::{Batch, DeliveryError, Destination};
use crate::error::{ErrorOutput, FirehoseError, RecordError};
use crate::model::{record_id, DeliveryStreamMeta, DeliveryStreamType};
use crate::processing::lambda::{InvocationContext, Transformer};
use crate::processing::partitioning::MetadataQuery;
use crate::processing::{FailedRecord, KinesisRecordMetadata, OutRecord};
use crate::service::{now_ms, FirehoseService};
use tideline_proto::kpl::deaggregate;

pub(crate) fn checkpoint_key(id: u64) -> String {
    format!("delivered/{id}")
}

/// The longest pause between retries of a failing delivery.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What DescribeDeliveryStream reports about delivery.
#[derive(Default)]
pub(crate) struct DeliveryStatus {
    /// The last failed attempt's error and when it happened, until a delivery succeeds.
    pub last_error: Mutex<Option<(DeliveryError, i64)>>,
}

impl DeliveryStatus {
    fn failed(&self, error: &DeliveryError) {
        *self.last_error.lock() = Some((error.clone(), now_ms()));
    }

    fn recovered(&self) {
        self.last_error.lock().take();
    }
}

/// A running delivery loop.
pub(crate) struct Worker {
    stop: watch::Sender<bool>,
    done: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Worker {
    pub fn start(service: Arc<FirehoseService>, meta: Arc<DeliveryStreamMeta>, status: Arc<DeliveryStatus>) -> Self {
        let (stop, stopped) = watch::channel(false);
        let handle = tokio::spawn(async move {
            // Both halves end when stopped, so that a worker that replaces this one never runs
            // beside it.
            let reader = async {
                if let Some(source) = meta.source.clone() {
                    crate::source::run(Arc::clone(&service), Arc::clone(&meta), source, stopped.clone()).await;
                }
            };
            let delivery = async {
                match Pipeline::new(&service, &meta, status) {
                    Ok(pipeline) => pipeline.run(stopped.clone()).await,
                    // Configurations are checked when accepted; this is a catalog or flag that
                    // changed since. Records stay buffered until the configuration is fixed.
                    Err(error) => tracing::error!(delivery_stream = %meta.name, %error, "cannot deliver"),
                }
            };
            tokio::join!(reader, delivery);
        });
        Self { stop, done: tokio::sync::Mutex::new(Some(handle)) }
    }

    /// Stops between two attempts and waits for the loop to end.
    pub async fn stop(&self) {
        let _ = self.stop.send(true);
        if let Some(handle) = self.done.lock().await.take() {
            let _ = handle.await;
        }
    }
}

/// Whether a configuration can be delivered: Err explains what is wrong with it.
pub(crate) fn check(service: &Arc<FirehoseService>, meta: &DeliveryStreamMeta) -> Result<(), FirehoseError> {
    Pipeline::new(service, &Arc::new(meta.clone()), Arc::new(DeliveryStatus::default())).map(|_| ())
}

/// The processing steps and destination of one configuration version.
struct Pipeline {
    service: Arc<FirehoseService>,
    meta: Arc<DeliveryStreamMeta>,
    key: ShardKey,
    status: Arc<DeliveryStatus>,
    destination: Arc<dyn Destination>,
    errors: ObjectWriter,
    /// S3BackupMode Enabled / AllData: every source record is also written here.
    backup: Option<ObjectWriter>,
    transformer: Option<Transformer>,
    query: Option<Arc<MetadataQuery>>,
    delimiter: Option<Bytes>,
}

impl Pipeline {
    fn new(
        service: &Arc<FirehoseService>,
        meta: &Arc<DeliveryStreamMeta>,
        status: Arc<DeliveryStatus>,
    ) -> Result<Self, FirehoseError> {
        let processing = meta.destination.processing();
        let transformer = match processing.and_then(|processing| processing.processor("Lambda")) {
            Some(processor) => Some(Transformer::new(
                processor,
                service.http()?,
                std::sync::Arc::clone(&service.functions),
                InvocationContext {
                    delivery_stream_arn: meta.arn.clone(),
                    region: service.config.region.clone(),
                    source_kinesis_stream_arn: meta.source.as_ref().map(|source| source.stream_arn.clone()),
                },
            )?),
            None => None,
        };
        let query = match processing
            .and_then(|processing| processing.processor("MetadataExtraction"))
            .and_then(|processor| processor.parameter("MetadataExtractionQuery"))
        {
            Some(query) => Some(Arc::new(MetadataQuery::compile(query)?)),
            None => None,
        };
        let delimiter =
            processing.and_then(|processing| processing.processor("AppendDelimiterToRecord")).map(|processor| {
                let delimiter = processor.parameter("Delimiter").unwrap_or("\\n");
                Bytes::from(unescape(delimiter))
            });
        let errors =
            ObjectWriter::new(Arc::clone(&service.buckets), meta.destination.error_bucket(), &meta.name, meta.version)?;
        let backup = meta
            .destination
            .spec()
            .backup()
            .map(|location| ObjectWriter::new(Arc::clone(&service.buckets), location, &meta.name, meta.version))
            .transpose()?;
        Ok(Self {
            destination: meta.destination.spec().build(service, meta)?,
            service: Arc::clone(service),
            meta: Arc::clone(meta),
            key: FirehoseService::log_key(meta),
            status,
            errors,
            backup,
            transformer,
            query,
            delimiter,
        })
    }

    async fn run(self, mut stopped: watch::Receiver<bool>) {
        let storage = Arc::clone(&self.service.storage);
        let mut delivered = match load_checkpoint(&self.service, self.meta.id) {
            Ok(delivered) => delivered,
            Err(error) => {
                tracing::error!(delivery_stream = %self.meta.name, %error, "cannot read the delivery checkpoint");
                return;
            }
        };
        let hints = self.meta.destination.buffering();
        let (size_limit, interval_ms) = (hints.size_bytes(), hints.interval_ms());
        let mut tail = storage.watch_tail(self.key);
        // Records read from the buffer and not delivered yet, oldest first.
        let mut pending: Vec<StoredRecord> = Vec::new();
        let mut pending_bytes = 0usize;
        let mut next_read = delivered;
        loop {
            if is_stopped(&stopped) {
                return;
            }
            let committed = storage.tail(self.key).next_index;
            // Read at most one buffer's worth beyond what is pending; the rest waits its turn.
            if next_read < committed && pending_bytes < size_limit {
                let reader = Arc::clone(&storage);
                let (key, from, budget) = (self.key, next_read, size_limit - pending_bytes);
                match tokio::task::spawn_blocking(move || reader.read(key, from, 100_000, budget)).await {
                    Ok(Ok(batch)) => {
                        pending_bytes += batch.records.iter().map(|record| record.data.len()).sum::<usize>();
                        next_read = batch.next_index;
                        pending.extend(batch.records);
                    }
                    Ok(Err(error)) => {
                        tracing::error!(delivery_stream = %self.meta.name, %error, "cannot read the buffer");
                        if wait(&mut stopped, Duration::from_secs(1)).await {
                            return;
                        }
                        continue;
                    }
                    Err(_) => return,
                }
                continue;
            }
            let freshness = pending.first().map_or(0, |record| (now_ms() - record.arrival_ms) / 1000);
            self.service.metrics.set_freshness(&self.meta.name, self.meta.destination.metric_name(), freshness);
            let Some(oldest) = pending.first().map(|record| record.arrival_ms) else {
                tokio::select! {
                    _ = tail.changed() => {}
                    _ = stopped.changed() => {}
                }
                continue;
            };
            let due_in = oldest + interval_ms - now_ms();
            if pending_bytes < size_limit && due_in > 0 {
                tokio::select! {
                    _ = tail.changed() => {}
                    _ = stopped.changed() => {}
                    _ = tokio::time::sleep(Duration::from_millis(due_in as u64)) => {}
                }
                continue;
            }
            let take = batch_len(&pending, size_limit);
            let batch: Vec<StoredRecord> = pending.drain(..take).collect();
            pending_bytes -= batch.iter().map(|record| record.data.len()).sum::<usize>();
            let after = batch.last().map_or(delivered, |record| record.index + 1);
            if !self.deliver(batch, &mut stopped).await {
                return;
            }
            delivered = after;
            if let Err(error) = save_checkpoint(&self.service, self.meta.id, delivered).await {
                tracing::error!(delivery_stream = %self.meta.name, %error, "cannot save the delivery checkpoint");
            }
            self.trim(delivered).await;
        }
    }

    /// Delivers one batch, retrying until it is delivered or in the error output. False when the
    /// worker was stopped first (the batch is then delivered again by the next worker).
    async fn deliver(&self, records: Vec<StoredRecord>, stopped: &mut watch::Receiver<bool>) -> bool {
        let source: Vec<OutRecord> = records.iter().flat_map(|record| self.unpack(record)).collect();
        if let Some(backup) = &self.backup {
            if !self.retry(stopped, || backup.write_records(&source)).await {
                return false;
            }
        }
        let (records, mut failed) = self.process(source).await;
        let batch = Batch { version: self.meta.version, records };
        let started = now_ms();
        let mut attempts = 0u32;
        let mut backoff = self.service.config.retry_backoff;
        if !batch.records.is_empty() {
            loop {
                attempts += 1;
                match self.destination.deliver(&batch).await {
                    Ok(refused) => {
                        let delivered = batch.records.len().saturating_sub(refused.len()) as u64;
                        let bytes = batch.records.iter().map(|record| record.data.len() as u64).sum::<u64>()
                            - refused.iter().map(|failure| failure.record.data.len() as u64).sum::<u64>();
                        self.record_attempt(Some((delivered, bytes)));
                        tracing::info!(delivery_stream = %self.meta.name, records = delivered, bytes, attempts, "delivered");
                        failed.extend(refused);
                        self.status.recovered();
                        break;
                    }
                    Err(error) => {
                        self.record_attempt(None);
                        self.attempt_failed(&error);
                        let expired = error.is_permanent()
                            || self
                                .destination
                                .retry_duration()
                                .is_some_and(|limit| now_ms() - started >= limit.as_millis() as i64);
                        if expired {
                            let output = self.destination.error_output();
                            let records: Vec<FailedRecord> = batch
                                .records
                                .iter()
                                .map(|record| FailedRecord {
                                    record: record.clone(),
                                    error: RecordError::Delivery { error: error.clone(), output },
                                })
                                .collect();
                            return self.write_errors(stopped, &records, output, attempts).await;
                        }
                        if wait(stopped, backoff).await {
                            return false;
                        }
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
        }
        // Failed records go out grouped by their error output type (processing, conversion, ...).
        failed.sort_by_key(|failure| failure.error.output());
        for group in failed.chunk_by(|a, b| a.error.output() == b.error.output()) {
            let output = group[0].error.output();
            if !self.write_errors(stopped, group, output, attempts.max(1)).await {
                return false;
            }
        }
        true
    }

    /// Logs a failed attempt on one line (S3 errors carry multi-line XML) and reports it in
    /// DescribeDeliveryStream.
    fn attempt_failed(&self, error: &DeliveryError) {
        let one_line = error.message.split_whitespace().collect::<Vec<_>>().join(" ");
        tracing::warn!(delivery_stream = %self.meta.name, code = %error.code, error = %one_line, "delivery attempt failed");
        self.status.failed(error);
    }

    fn record_attempt(&self, delivered: Option<(u64, u64)>) {
        self.service.metrics.record_attempt(&self.meta.name, self.meta.destination.metric_name(), delivered);
    }

    /// Writes records to the error output, retrying until it succeeds. False when stopped first.
    async fn write_errors(
        &self,
        stopped: &mut watch::Receiver<bool>,
        failed: &[FailedRecord],
        output: ErrorOutput,
        attempts: u32,
    ) -> bool {
        let written = self.retry(stopped, || self.errors.write_errors(failed, output, attempts)).await;
        if written {
            let output_type = output.as_str();
            tracing::info!(delivery_stream = %self.meta.name, records = failed.len(), output_type, "records written to the error output");
            self.service.metrics.record_error_output(&self.meta.name, output_type, failed.len() as u64);
        }
        written
    }

    /// Retries a write (error output, backup) until it succeeds: those records have nowhere else
    /// to go. False when stopped first.
    async fn retry<F, Fut>(&self, stopped: &mut watch::Receiver<bool>, mut write: F) -> bool
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(), DeliveryError>>,
    {
        let mut backoff = self.service.config.retry_backoff;
        loop {
            match write().await {
                Ok(()) => return true,
                Err(error) => {
                    self.attempt_failed(&error);
                    if wait(stopped, backoff).await {
                        return false;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// A buffered record as the records it carries: a Kinesis source's KPL aggregates are opened.
    fn unpack(&self, record: &StoredRecord) -> Vec<OutRecord> {
        let record_id = record_id(self.meta.id, record.index);
        if self.meta.kind != DeliveryStreamType::KinesisStreamAsSource {
            return vec![OutRecord::new(record_id, record.arrival_ms, record.data.clone())];
        }
        let origin = KinesisRecordMetadata::from_buffer_key(&record.partition_key);
        let with_origin = |mut out: OutRecord, subsequence: u64, partition_key: Option<String>| {
            out.kinesis = origin.clone().map(|mut origin| {
                origin.subsequence_number = subsequence;
                if let Some(partition_key) = partition_key {
                    origin.partition_key = partition_key;
                }
                Box::new(origin)
            });
            out
        };
        match deaggregate(&record.data) {
            Some(users) => users
                .into_iter()
                .enumerate()
                .map(|(sub, user)| {
                    let out = OutRecord::new(format!("{record_id}{sub:08x}"), record.arrival_ms, user.data);
                    with_origin(out, sub as u64, Some(user.partition_key))
                })
                .collect(),
            None => vec![with_origin(OutRecord::new(record_id, record.arrival_ms, record.data.clone()), 0, None)],
        }
    }

    /// Transformation hook, partition key extraction and delimiters, in that order.
    async fn process(&self, records: Vec<OutRecord>) -> (Vec<OutRecord>, Vec<FailedRecord>) {
        let mut failed = Vec::new();
        let mut records = match &self.transformer {
            None => records,
            Some(transformer) => match transformer.transform(records.clone()).await {
                Ok(transformed) => {
                    failed.extend(transformed.failed);
                    transformed.records
                }
                Err(error) => {
                    failed.extend(records.into_iter().map(|record| FailedRecord { record, error: error.clone() }));
                    Vec::new()
                }
            },
        };
        if let Some(query) = &self.query {
            // The query is the user's code and runs as long as it likes: off the runtime threads,
            // so that a slow one holds up this delivery stream only.
            let (query, batch) = (Arc::clone(query), records.clone());
            match tokio::task::spawn_blocking(move || extract_partition_keys(&query, batch)).await {
                Ok((kept, refused)) => {
                    records = kept;
                    failed.extend(refused);
                }
                Err(error) => {
                    let error = RecordError::Partitioning(format!("partition key extraction failed: {error}"));
                    failed.extend(records.drain(..).map(|record| FailedRecord { record, error: error.clone() }));
                }
            }
        }
        if let Some(delimiter) = &self.delimiter {
            for record in &mut records {
                let mut data = Vec::with_capacity(record.data.len() + delimiter.len());
                data.extend_from_slice(&record.data);
                data.extend_from_slice(delimiter);
                record.data = Bytes::from(data);
            }
        }
        (records, failed)
    }

    /// Drops buffer segments whose records are all delivered.
    async fn trim(&self, delivered: u64) {
        let storage = Arc::clone(&self.service.storage);
        let key = self.key;
        let Ok(Ok(batch)) =
            tokio::task::spawn_blocking(move || storage.read(key, delivered.saturating_sub(1), 1, 1)).await
        else {
            return;
        };
        // Arrival times never decrease along the log, so everything that arrived before the last
        // delivered record is delivered.
        if let Some(last) = batch.records.first() {
            if let Err(error) = self.service.storage.trim_before(key, last.arrival_ms).await {
                tracing::warn!(delivery_stream = %self.meta.name, %error, "cannot trim the delivered buffer");
            }
        }
    }
}

/// Runs the MetadataExtraction query on each record: those it yields keys for, and those it fails.
fn extract_partition_keys(query: &MetadataQuery, records: Vec<OutRecord>) -> (Vec<OutRecord>, Vec<FailedRecord>) {
    let mut kept = Vec::with_capacity(records.len());
    let mut failed = Vec::new();
    for mut record in records {
        match query.extract(&record.data) {
            Ok(keys) => {
                record.query_keys = keys.into_iter().collect();
                kept.push(record);
            }
            Err(message) => failed.push(FailedRecord { record, error: RecordError::Partitioning(message) }),
        }
    }
    (kept, failed)
}

/// How many of the pending records make one delivery: up to the size hint, at least one.
fn batch_len(pending: &[StoredRecord], size_limit: usize) -> usize {
    let mut bytes = 0;
    let mut count = 0;
    for record in pending {
        if count > 0 && bytes + record.data.len() > size_limit {
            break;
        }
        bytes += record.data.len();
        count += 1;
    }
    count
}

/// Waits for the duration; true if the worker was stopped meanwhile.
async fn wait(stopped: &mut watch::Receiver<bool>, duration: Duration) -> bool {
    tokio::select! {
        _ = stopped.changed() => true,
        _ = tokio::time::sleep(duration) => is_stopped(stopped),
    }
}

/// Stopped on request, or because the worker handle is gone.
pub(crate) fn is_stopped(stopped: &watch::Receiver<bool>) -> bool {
    *stopped.borrow() || stopped.has_changed().is_err()
}

/// The AppendDelimiterToRecord `Delimiter` parameter is written with escapes (`\n`, `\t`).
fn unescape(text: &str) -> Vec<u8> {
    text.replace("\\n", "\n").replace("\\t", "\t").replace("\\r", "\r").into_bytes()
}

fn load_checkpoint(service: &FirehoseService, id: u64) -> Result<u64, tideline_storage::StorageError> {
    Ok(service
        .storage
        .metadata()
        .get(&checkpoint_key(id))?
        .and_then(|bytes| std::str::from_utf8(&bytes).ok()?.parse().ok())
        .unwrap_or(0))
}

async fn save_checkpoint(
    service: &FirehoseService,
    id: u64,
    delivered: u64,
) -> Result<(), tideline_storage::StorageError> {
    service.storage.metadata().commit(vec![MetaOp::Put(checkpoint_key(id), delivered.to_string().into_bytes())]).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(index: u64, len: usize) -> StoredRecord {
        StoredRecord {
            index,
            arrival_ms: 0,
            encrypted: false,
            partition_key: Bytes::new(),
            data: Bytes::from(vec![0u8; len]),
        }
    }

    #[test]
    fn a_batch_fills_up_to_the_size_hint_and_always_takes_one() {
        let pending: Vec<StoredRecord> = (0..10).map(|index| stored(index, 100)).collect();
        assert_eq!(batch_len(&pending, 350), 3);
        assert_eq!(batch_len(&pending, 10_000), 10);
        assert_eq!(batch_len(&[stored(0, 500)], 100), 1);
    }

    #[test]
    fn delimiters_are_unescaped() {
        assert_eq!(unescape("\\n"), b"\n");
        assert_eq!(unescape(","), b",");
    }
}
