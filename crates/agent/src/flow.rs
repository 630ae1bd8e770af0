//! One flow: fill a batch from the flow's files, send it when it is full (records or bytes) or
//! as old as `maxBufferAgeMillis`, then checkpoint. A batch is sent before the next is read, so
//! memory is one batch plus each file's unread bytes, and a crash re-sends at most that batch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::checkpoint::Checkpoints;
use crate::config::FlowConfig;
use crate::files::{FileSet, Next};
use crate::sink::Sink;

/// How often files are looked at when there is nothing to read.
const POLL: Duration = Duration::from_millis(100);
/// How often the flow's progress goes to the log (when something changed).
const REPORT_EVERY: Duration = Duration::from_secs(10);

#[derive(Default, PartialEq, Clone, Copy)]
struct Progress {
    records: u64,
    bytes: u64,
    batches: u64,
    retried_records: u64,
    failed_calls: u64,
}

struct Batch {
    records: Vec<Vec<u8>>,
    bytes: usize,
    started: Option<Instant>,
}

pub async fn run(config: FlowConfig, sink: Sink, checkpoints: Arc<Checkpoints>) {
    let id = config.id();
    let mut files = FileSet::start(config.clone(), checkpoints.flow(&id).await).await;
    tracing::info!("flow {id}: started with {} file(s)", files.len());
    let mut batch = Batch { records: Vec::new(), bytes: 0, started: None };
    let mut progress = Progress::default();
    let mut reported = (progress, Instant::now());
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
            progress.records += records.len() as u64;
            progress.bytes += batch.bytes as u64;
            progress.batches += 1;
            let sent = sink.send(records).await;
            progress.retried_records += sent.retried_records;
            progress.failed_calls += sent.failed_calls;
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
        if reported.0 != progress && reported.1.elapsed() >= REPORT_EVERY {
            tracing::info!(
                "flow {id}: {} records sent ({} bytes) in {} batches, {} records retried, {} failed calls, {} file(s) tailed",
                progress.records,
                progress.bytes,
                progress.batches,
                progress.retried_records,
                progress.failed_calls,
                files.len()
            );
            reported = (progress, Instant::now());
        }
    }
}
