//! A mapping at work: one task per mapping that starts a reader per shard (parents before
//! children), gathers batches (BatchSize, MaximumBatchingWindowInSeconds, 6 MB), filters them,
//! spreads them over ParallelizationFactor lanes by partition key, invokes the function, handles
//! failures (ReportBatchItemFailures, BisectBatchOnFunctionError, MaximumRetryAttempts,
//! MaximumRecordAgeInSeconds, the on-failure destination), carries tumbling-window state, and
//! checkpoints.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use md5::{Digest, Md5};
use serde_json::{json, Value};
use tideline_firehose::FirehoseService;
use tideline_streams::{split_batches, Position, Record, ShardReader, StreamsService};
use tokio::task::JoinSet;

use super::checkpoint::{Checkpoints, WindowState};
use super::config::MappingConfiguration;
use super::destination::{deliver, Destination, FailureRecord};
use super::event::{self, EventSource, Window};
use super::filter::Filters;
use super::metrics::MappingMetrics;
use super::Status;
use crate::error::LambdaError;
use crate::runner::sandbox::Outcome;
use crate::runner::{Admission, InvokeResult, Runner};

/// The invocation payload limit (6 MB), less room for the event's own fields.
const MAX_EVENT_BYTES: usize = 6 * 1024 * 1024 - 64 * 1024;
/// A record's share of the event besides its data: the field names, ids and ARNs.
const RECORD_OVERHEAD_BYTES: usize = 512;
/// How often an idle mapping looks for new shards and an idle shard for records.
const POLL: Duration = Duration::from_millis(500);
/// Retry backoff after a failed invocation: doubles from the first value up to the second.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));

/// What a mapping's tasks share.
pub struct Context {
    pub streams: Arc<StreamsService>,
    pub firehose: Arc<FirehoseService>,
    pub runner: Arc<Runner>,
    pub configuration: MappingConfiguration,
    pub function_name: String,
    pub role: String,
    pub stream_name: String,
    pub stream_arn: String,
    pub region: String,
    pub checkpoints: Checkpoints,
    pub status: Arc<Status>,
    pub metrics: MappingMetrics,
    pub filters: Filters,
}

/// Runs a mapping until aborted.
pub async fn run(context: Arc<Context>) {
    let mut running: HashSet<String> = HashSet::new();
    let mut shards: JoinSet<String> = JoinSet::new();
    loop {
        match context.streams.stream_info(Some(&context.stream_name), None) {
            Err(error) => context.status.problem(&format!("PROBLEM: {error}")),
            Ok(info) => {
                let present: HashSet<&str> = info.shards.iter().map(|shard| shard.shard_id.as_str()).collect();
                for shard in &info.shards {
                    if running.contains(&shard.shard_id) || context.checkpoints.is_finished(&shard.shard_id).await {
                        continue;
                    }
                    let mut parents_done = true;
                    for parent in &shard.parents {
                        if present.contains(parent.as_str()) && !context.checkpoints.is_finished(parent).await {
                            parents_done = false;
                        }
                    }
                    if !parents_done {
                        continue;
                    }
                    // A child of a shard this mapping read starts at its beginning, as AWS does.
                    let is_child = shard.parents.iter().any(|parent| present.contains(parent.as_str()));
                    running.insert(shard.shard_id.clone());
                    let (context, shard_id) = (Arc::clone(&context), shard.shard_id.clone());
                    shards.spawn(async move {
                        run_shard(&context, &shard_id, is_child).await;
                        shard_id
                    });
                }
            }
        }
        tokio::select! {
            Some(Ok(shard_id)) = shards.join_next() => { running.remove(&shard_id); }
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// Reads one shard to its end (or forever, while it is open).
async fn run_shard(context: &Arc<Context>, shard_id: &str, is_child: bool) {
    let configuration = &context.configuration;
    let progress = context.checkpoints.progress(shard_id).await.unwrap_or_default();
    let position = match progress.sequence_number {
        Some(sequence) => Position::AfterSequenceNumber(sequence),
        None if is_child => Position::TrimHorizon,
        None => match configuration.starting_position.as_str() {
            "TRIM_HORIZON" => Position::TrimHorizon,
            "AT_TIMESTAMP" => {
                Position::AtTimestamp((configuration.starting_position_timestamp.unwrap_or(0.0) * 1000.0) as i64)
            }
            _ => Position::Latest,
        },
    };
    let mut reader = loop {
        match context.streams.open_reader(&context.stream_name, shard_id, position.clone()).await {
            Ok(reader) => break reader,
            Err(error) => {
                context.status.problem(&format!("PROBLEM: {error}"));
                tokio::time::sleep(POLL).await;
            }
        }
    };
    let lanes = configuration.parallelization_factor.clamp(1, 10) as usize;
    // The windows saved with the checkpoint, unless ParallelizationFactor changed since: records
    // then fall in other lanes, and those windows start afresh.
    let mut windows: Vec<Option<WindowState>> = match progress.windows {
        saved if saved.len() == lanes => saved,
        _ => (0..lanes).map(|_| None).collect(),
    };
    loop {
        let gathered = match gather(context, &mut reader, &windows).await {
            Ok(gathered) => gathered,
            Err(error) => {
                context.status.problem(&format!("PROBLEM: {error}"));
                tokio::time::sleep(POLL).await;
                continue;
            }
        };
        let last = gathered.records.last().map(|record| record.sequence_number.clone());
        if let Some(record) = gathered.records.last() {
            context.metrics.iterator_age_ms.set(tideline_now_ms() - record.arrival_ms);
        }
        let kept: Vec<Record> =
            gathered.records.into_iter().filter(|record| context.filters.accepts(&record.data)).collect();
        let before = windows.clone();
        windows = deliver_lanes(context, shard_id, kept, windows).await;
        if last.is_some() || gathered.end_of_shard || windows != before {
            context.checkpoints.advance(shard_id, last, gathered.end_of_shard, &windows).await;
        }
        if gathered.end_of_shard {
            for window in windows.iter_mut() {
                if let Some(state) = window.take() {
                    close_window(context, shard_id, state).await;
                }
            }
            return;
        }
    }
}

fn tideline_now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

struct Gathered {
    records: Vec<Record>,
    end_of_shard: bool,
}

/// Reads until a batch is due: full (BatchSize per lane), the batching window over, the shard
/// ended, or an open tumbling window due to close.
async fn gather(
    context: &Context,
    reader: &mut ShardReader,
    windows: &[Option<WindowState>],
) -> Result<Gathered, tideline_proto::AwsError> {
    let configuration = &context.configuration;
    let target = (configuration.batch_size * configuration.parallelization_factor).clamp(1, 10_000) as usize;
    let window = Duration::from_secs(configuration.maximum_batching_window_in_seconds.max(0) as u64);
    let mut records: Vec<Record> = Vec::new();
    let mut bytes = 0usize;
    let mut first_at: Option<Instant> = None;
    loop {
        let batch = reader.read(target - records.len()).await?;
        bytes += batch.records.iter().map(|record| record.data.len() + RECORD_OVERHEAD_BYTES).sum::<usize>();
        records.extend(batch.records);
        if batch.end_of_shard {
            return Ok(Gathered { records, end_of_shard: true });
        }
        if !records.is_empty() {
            let started = *first_at.get_or_insert_with(Instant::now);
            if records.len() >= target
                || bytes >= MAX_EVENT_BYTES * configuration.parallelization_factor as usize
                || started.elapsed() >= window
            {
                return Ok(Gathered { records, end_of_shard: false });
            }
            reader.wait(window.saturating_sub(started.elapsed())).await;
        } else {
            let window_due = windows.iter().flatten().any(|state| tideline_now_ms() >= state.end_ms);
            if window_due {
                return Ok(Gathered { records, end_of_shard: false });
            }
            reader.wait(POLL).await;
        }
    }
}

/// The lane a record goes to: records with one partition key always share a lane, so their
/// order is kept.
fn lane_of(record: &Record, lanes: usize) -> usize {
    if lanes == 1 {
        return 0;
    }
    let digest = Md5::digest(&record.partition_key);
    (u128::from_be_bytes(digest.into()) % lanes as u128) as usize
}

/// Delivers a batch lane by lane, lanes concurrently; returns the lanes' window states.
async fn deliver_lanes(
    context: &Arc<Context>,
    shard_id: &str,
    records: Vec<Record>,
    windows: Vec<Option<WindowState>>,
) -> Vec<Option<WindowState>> {
    let lanes = windows.len();
    let mut split: Vec<Vec<Record>> = (0..lanes).map(|_| Vec::new()).collect();
    for record in records {
        split[lane_of(&record, lanes)].push(record);
    }
    let mut tasks = JoinSet::new();
    for (lane, (records, window)) in split.into_iter().zip(windows).enumerate() {
        let (context, shard_id) = (Arc::clone(context), shard_id.to_string());
        tasks.spawn(async move { (lane, deliver_lane(&context, &shard_id, records, window).await) });
    }
    let mut states: Vec<Option<WindowState>> = (0..lanes).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        if let Ok((lane, state)) = joined {
            states[lane] = state;
        }
    }
    states
}

async fn deliver_lane(
    context: &Context,
    shard_id: &str,
    records: Vec<Record>,
    mut window: Option<WindowState>,
) -> Option<WindowState> {
    let tumbling_ms = context.configuration.tumbling_window_in_seconds * 1000;
    if tumbling_ms <= 0 {
        for chunk in chunks(records, context.configuration.batch_size as usize) {
            invoke_until_done(context, shard_id, chunk, None).await;
        }
        return None;
    }
    if let Some(state) = window.take_if(|state| tideline_now_ms() >= state.end_ms && records.is_empty()) {
        close_window(context, shard_id, state).await;
    }
    // Records grouped by the window their arrival falls in, oldest first.
    let mut groups: Vec<(i64, Vec<Record>)> = Vec::new();
    for record in records {
        let start = record.arrival_ms - record.arrival_ms.rem_euclid(tumbling_ms);
        match groups.last_mut() {
            Some((group_start, group)) if *group_start == start => group.push(record),
            _ => groups.push((start, vec![record])),
        }
    }
    let count = groups.len();
    for (index, (start, group)) in groups.into_iter().enumerate() {
        if let Some(state) = window.take_if(|state| state.start_ms != start) {
            close_window(context, shard_id, state).await;
        }
        let mut state =
            window.take().unwrap_or(WindowState { start_ms: start, end_ms: start + tumbling_ms, state: json!({}) });
        // The last invocation of a window that later records have already closed is its final one.
        let closed = index + 1 < count;
        let pieces = chunks(group, context.configuration.batch_size as usize);
        let pieces_count = pieces.len();
        for (piece_index, piece) in pieces.into_iter().enumerate() {
            let is_final = closed && piece_index + 1 == pieces_count;
            state.state =
                invoke_until_done(context, shard_id, piece, Some((&state, is_final))).await.unwrap_or(state.state);
        }
        if !closed {
            window = Some(state);
        }
    }
    window
}

/// The final invocation of a window that ended with no more records: no records, its state.
async fn close_window(context: &Context, shard_id: &str, state: WindowState) {
    invoke_until_done(context, shard_id, Vec::new(), Some((&state, true))).await;
}

/// Splits a lane's records into invocations of at most `batch_size` records and 6 MB.
fn chunks(records: Vec<Record>, batch_size: usize) -> Vec<Vec<Record>> {
    // Base64 in the event's JSON: 4 bytes for 3.
    split_batches(records, batch_size, MAX_EVENT_BYTES, |record| record.data.len() * 4 / 3 + RECORD_OVERHEAD_BYTES)
}

/// Why records leave for the on-failure destination.
#[derive(Debug, Clone, Copy)]
enum Discard {
    RetryAttemptsExhausted,
    RecordAgeExceeded,
}

/// Invokes until the records are done: succeeded, or sent to the on-failure destination. Returns
/// the window state the last successful invocation gave.
async fn invoke_until_done(
    context: &Context,
    shard_id: &str,
    records: Vec<Record>,
    window: Option<(&WindowState, bool)>,
) -> Option<Value> {
    let configuration = &context.configuration;
    let source =
        EventSource { stream_arn: &context.stream_arn, region: &context.region, role: &context.role, shard_id };
    let mut new_state = None;
    // Pending pieces in order, each with the retries it has used.
    let mut pending: VecDeque<(Vec<Record>, i64)> = VecDeque::from([(records, 0)]);
    while let Some((mut batch, retries)) = pending.pop_front() {
        if configuration.maximum_record_age_in_seconds >= 0 {
            let oldest_allowed = tideline_now_ms() - configuration.maximum_record_age_in_seconds * 1000;
            let expired: Vec<Record> =
                batch.iter().filter(|record| record.arrival_ms < oldest_allowed).cloned().collect();
            if !expired.is_empty() {
                batch.retain(|record| record.arrival_ms >= oldest_allowed);
                discard(context, shard_id, &expired, Discard::RecordAgeExceeded, retries + 1).await;
                if batch.is_empty() {
                    continue;
                }
            }
        }
        let window_event = window.map(|(state, is_final)| Window {
            start_ms: state.start_ms,
            end_ms: state.end_ms,
            state: new_state.as_ref().unwrap_or(&state.state),
            is_final,
        });
        let payload = Bytes::from(event::build(&source, &batch, window_event));
        let result = invoke(context, payload).await;
        // The index of the first record to retry, and whether the whole batch failed.
        let failed_from = match result {
            Ok(result) => match result.outcome {
                Outcome::Success(answer) => {
                    let answer = event::read_answer(&answer, &batch);
                    if answer.state.is_some() {
                        new_state = answer.state;
                    }
                    match answer.failures {
                        _ if !configuration.reports_item_failures() => None,
                        Ok(failed) => failed
                            .iter()
                            .filter_map(|id| batch.iter().position(|record| &record.sequence_number == id))
                            .min()
                            .map(|index| (index, index == 0)),
                        Err(()) => Some((0, true)),
                    }
                }
                Outcome::FunctionError(_) => Some((0, true)),
            },
            Err(error) => {
                tracing::warn!(function = %context.function_name, %error, "mapping cannot invoke its function");
                Some((0, true))
            }
        };
        let Some((index, whole)) = failed_from else {
            context.status.ok();
            continue;
        };
        context.metrics.errors.inc();
        context.status.problem("PROBLEM: Function call failed");
        let remaining = batch.split_off(index);
        let max_retries = configuration.maximum_retry_attempts;
        if configuration.bisect_batch_on_function_error && whole && remaining.len() > 1 {
            // Splitting does not use up a retry.
            let mut first = remaining;
            let second = first.split_off(first.len() / 2);
            pending.push_front((second, retries));
            pending.push_front((first, retries));
        } else if max_retries >= 0 && retries >= max_retries {
            discard(context, shard_id, &remaining, Discard::RetryAttemptsExhausted, retries + 1).await;
        } else {
            let backoff = BACKOFF.0.saturating_mul(1 << retries.clamp(0, 6)).min(BACKOFF.1);
            tokio::time::sleep(backoff).await;
            pending.push_front((remaining, retries + 1));
        }
    }
    new_state
}

/// Invokes the function once. An invocation over the function's concurrency is a throttle
/// (AWS's Throttles metric, not an Invocation), and the mapping then waits for a slot: a
/// throttled batch is retried, not failed.
async fn invoke(context: &Context, payload: Bytes) -> Result<InvokeResult, LambdaError> {
    let runner = &context.runner;
    let result = match runner.invoke(&context.function_name, payload.clone(), Admission::Refuse, false).await {
        Err(LambdaError::TooManyRequests(_)) => {
            context.metrics.throttles.inc();
            runner.invoke(&context.function_name, payload, Admission::Wait, false).await
        }
        result => result,
    };
    context.metrics.invocations.inc();
    result
}

/// Sends the on-failure record (metadata of the discarded records, as AWS's `KinesisBatchInfo`)
/// to the mapping's destination, if it has one.
async fn discard(context: &Context, shard_id: &str, records: &[Record], reason: Discard, invocations: i64) {
    context.metrics.discarded.inc_by(records.len() as u64);
    let (Some(first), Some(last)) = (records.first(), records.last()) else { return };
    let Some(destination) = context.configuration.destination_config.on_failure.destination.as_deref() else {
        tracing::warn!(mapping = %context.configuration.uuid, records = records.len(), ?reason, "records discarded");
        return;
    };
    let Some(destination) = Destination::parse(destination) else { return };
    let time = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
            .unwrap_or_default()
    };
    let document = json!({
        "requestContext": {
            "requestId": uuid::Uuid::new_v4().to_string(),
            "functionArn": context.configuration.function_arn,
            "condition": format!("{reason:?}"),
            "approximateInvokeCount": invocations,
        },
        "responseContext": { "statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled" },
        "version": "1.0",
        "timestamp": time(tideline_now_ms()),
        "KinesisBatchInfo": {
            "shardId": shard_id,
            "startSequenceNumber": first.sequence_number,
            "endSequenceNumber": last.sequence_number,
            "approximateArrivalOfFirstRecord": time(first.arrival_ms),
            "approximateArrivalOfLastRecord": time(last.arrival_ms),
            "batchSize": records.len(),
            "streamArn": context.stream_arn,
        },
    });
    let source =
        EventSource { stream_arn: &context.stream_arn, region: &context.region, role: &context.role, shard_id };
    let event = event::build(&source, records, None);
    let failure = FailureRecord { mapping_uuid: &context.configuration.uuid, shard_id, document, event: &event };
    if let Err(error) = deliver(&context.streams, &context.firehose, &destination, failure).await {
        tracing::error!(mapping = %context.configuration.uuid, %error, "cannot deliver the on-failure record");
    }
}
