//! One flow: fill a batch from the flow's files, send it when it is full (records or bytes) or
//! as old as `maxBufferAgeMillis`, then checkpoint. A batch is sent before the next is read, so
//! memory is one batch plus each file's unread bytes, and a crash re-sends at most that batch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::checkpoint::Checkpoints;
use crate::config::FlowConfig;
use crate::files::{FileSet, Next};
use crate::metrics::FlowMetrics;
use crate::sink::Sink;

/// How often files are looked at when there is nothing to read (the Kinesis Agent's
/// `minTimeBetweenFilePollsMillis` default).
const POLL: Duration = Duration::from_millis(100);

struct Batch {
    records: Vec<Vec<u8>>,
    bytes: usize,
    started: Option<Instant>,
}

pub async fn run(config: FlowConfig, sink: Sink, checkpoints: Arc<Checkpoints>, metrics: FlowMetrics) {
    let id = config.id();
    let mut files = FileSet::start(config.clone(), checkpoints.flow(&id).await, metrics.clone()).await;
    tracing::info!("flow {id}: started with {} file(s)", files.len());
    let mut batch = Batch { records: Vec::new(), bytes: 0, started: None };
    loop {
        files.discover().await;
        let mut full = false;
        while batch.records.len() < config.max_buffer_records {
            let room = config.max_buffer_bytes - batch.bytes;
            match files.next_record(|size| size <= room).await {
                Next::Record(record) => {
                    batch.bytes += record.len();
                    batch.records.push(record);
                    batch.started.get_or_insert_with(Instant::now);
                }
                Next::DoesNotFit => {
                    full = true;
                    break;
                }
                Next::Nothing => break,
            }
        }
        full |= batch.records.len() == config.max_buffer_records;
        let old = batch.started.is_some_and(|started| started.elapsed() >= config.max_buffer_age);
        if !batch.records.is_empty() && (full || old) {
            let records = std::mem::take(&mut batch.records);
            let count = records.len() as u64;
            let sent = sink.send(records).await;
            metrics.records_sent.inc_by(count);
            metrics.bytes_sent.inc_by(batch.bytes as u64);
            metrics.batches_sent.inc();
            metrics.records_retried.inc_by(sent.retried_records);
            metrics.failed_calls.inc_by(sent.failed_calls);
            batch.bytes = 0;
            batch.started = None;
            files.close_finished();
            if let Err(error) = checkpoints.save(&id, files.checkpoint()).await {
                tracing::error!("flow {id}: cannot write the checkpoint file: {error}");
            }
        } else {
            if batch.records.is_empty() {
                files.close_finished();
            }
            tokio::time::sleep(POLL).await;
        }
        metrics.files_tailed.set(files.len() as i64);
        metrics.bytes_behind.set(files.bytes_behind() as i64);
    }
}
