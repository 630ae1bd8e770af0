//! SubscribeToShard: enhanced fan-out pushes a shard's records to a registered consumer as AWS
//! event-stream messages — an `initial-response`, then `SubscribeToShardEvent`s — for up to five
//! minutes. New records are pushed as soon as they are durable: the subscription waits on the
//! storage's commit watch, not on a polling timer. A subscription ends early when its consumer is
//! deregistered (ResourceNotFoundException, as a new subscription would get) and at the end of a
//! closed shard (an event with `ChildShards` and a null `ContinuationSequenceNumber`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tideline_proto::{event_stream, AwsError, Codec, EventSource, Timestamp, Validator};
use tideline_storage::ShardKey;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::consumers::{consumer_arn, consumer_not_found, find_consumer};
use super::reading::{read_records, start_position};
use super::shapes::{child_shards, ChildShard};
use super::wire::get_records::ShardRecords;
use super::Empty;
use crate::model::{shard_id, ConsumerMeta, ConsumerStatus, StreamMeta};
use crate::rules;
use crate::sequence::SequenceNumber;
use crate::service::{now_ms, Caller, StreamEntry, StreamsService};

/// How long one subscription lasts, as in AWS.
const LIFETIME: Duration = Duration::from_secs(300);
/// A subscription sends an event at least this often, with no records if none arrived, so the
/// client sees it is alive.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// A consumer cannot start a new subscription to the same shard within this time of the last.
const RESUBSCRIBE_AFTER_MS: i64 = 5_000;
/// Record bytes per event; the consumer's read limit is 2 MiB/s per shard.
const EVENT_MAX_BYTES: usize = 1024 * 1024;

const POSITION_TYPES: [&str; 5] =
    ["AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER", "TRIM_HORIZON", "LATEST", "AT_TIMESTAMP"];

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StartingPosition {
    #[serde(rename = "Type")]
    kind: Option<String>,
    sequence_number: Option<String>,
    timestamp: Option<Timestamp>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SubscribeToShardInput {
    #[serde(rename = "ConsumerARN")]
    consumer_arn: Option<String>,
    shard_id: Option<String>,
    starting_position: Option<StartingPosition>,
}

impl SubscribeToShardInput {
    fn validate(&self) -> Result<(), AwsError> {
        let mut v = Validator::new();
        v.required("consumerARN", self.consumer_arn.as_ref());
        consumer_arn(&mut v, self.consumer_arn.as_deref());
        v.required("shardId", self.shard_id.as_ref());
        rules::shard_id(&mut v, "shardId", self.shard_id.as_deref());
        v.required("startingPosition", self.starting_position.as_ref());
        if let Some(position) = &self.starting_position {
            v.required("startingPosition.type", position.kind.as_ref());
            v.one_of("startingPosition.type", position.kind.as_deref(), &POSITION_TYPES);
            rules::sequence_number(&mut v, "startingPosition.sequenceNumber", position.sequence_number.as_deref());
        }
        v.finish()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct SubscribeToShardEvent {
    records: ShardRecords,
    /// Null at the end of a closed shard, as AWS sends it: the KCL takes a null, not the
    /// presence of `ChildShards`, as the sign that the shard is finished.
    continuation_sequence_number: Option<String>,
    millis_behind_latest: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    child_shards: Option<Vec<ChildShard>>,
}

/// A subscription accepted and leased, whose events start flowing when it is opened.
pub struct Subscription {
    service: Arc<StreamsService>,
    entry: Arc<StreamEntry>,
    consumer: ConsumerMeta,
    shard_index: u32,
    start: u64,
}

impl EventSource for Subscription {
    fn open(self, codec: Codec) -> mpsc::Receiver<Bytes> {
        let (events, receiver) = mpsc::channel(4);
        let _ = events.try_send(event_stream::event(codec, "initial-response", &Empty {}));
        tokio::spawn(push_events(self.service, self.entry, self.consumer, codec, self.shard_index, self.start, events));
        receiver
    }
}

/// Accepts a subscription: checks the consumer, the shard and the five-second rule.
pub async fn subscribe_to_shard(
    service: &StreamsService,
    caller: Option<&Caller>,
    input: SubscribeToShardInput,
) -> Result<Subscription, AwsError> {
    input.validate()?;
    let arn = input.consumer_arn.unwrap_or_default();
    let (entry, consumer) = find_consumer(service, Some(&arn), None, None)?;
    if consumer.status != ConsumerStatus::Active {
        return Err(AwsError::in_use(format!("Consumer {} is not in an ACTIVE state", consumer.name)));
    }
    let meta = entry.snapshot();
    service.authorize(caller, &meta, "kinesis:SubscribeToShard", Some(&arn))?;
    let requested = input.shard_id.unwrap_or_default();
    let (shard_index, shard) = meta.find_shard(&requested).ok_or_else(|| {
        AwsError::not_found(format!(
            "Shard {requested} in stream {} under account {} does not exist",
            meta.name,
            service.account()
        ))
    })?;
    let position =
        input.starting_position.unwrap_or(StartingPosition { kind: None, sequence_number: None, timestamp: None });
    let start = start_position(
        service,
        &meta,
        (shard_index, shard),
        position.kind.as_deref().unwrap_or_default(),
        position.sequence_number.as_deref(),
        position.timestamp,
    )
    .await?;
    {
        let mut leases = service.subscriptions.lock();
        let now = now_ms();
        let lease = leases.entry((arn.clone(), shard_index)).or_insert(i64::MIN);
        if now.saturating_sub(*lease) < RESUBSCRIBE_AFTER_MS {
            return Err(AwsError::in_use(format!(
                "Another active subscription exists for consumer {arn} on shard {}",
                shard_id(shard_index)
            )));
        }
        *lease = now;
    }
    Ok(Subscription { service: service.shared(), entry, consumer, shard_index, start })
}

/// Whether the consumer a subscription was made for is still registered and ACTIVE: one
/// deregistered (DELETING or gone), or re-registered under the same name, is another consumer.
fn still_active(meta: &StreamMeta, consumer: &ConsumerMeta) -> bool {
    meta.consumers
        .iter()
        .any(|c| c.name == consumer.name && c.created_ms == consumer.created_ms && c.status == ConsumerStatus::Active)
}

async fn push_events(
    service: Arc<StreamsService>,
    entry: Arc<StreamEntry>,
    consumer: ConsumerMeta,
    codec: Codec,
    shard_index: u32,
    mut position: u64,
    events: mpsc::Sender<Bytes>,
) {
    let deadline = Instant::now() + LIFETIME;
    let stream_id = entry.snapshot().id;
    let key = ShardKey { stream_id, shard_index };
    let mut committed = service.storage.watch_tail(key);
    let mut changed = entry.changed.subscribe();
    let mut last_event: Option<Instant> = None;
    loop {
        let meta = entry.snapshot();
        let live = service.entry(&meta.name).is_ok_and(|current| Arc::ptr_eq(&current, &entry));
        let shard = meta.shard(shard_index).filter(|_| live && meta.status.accepts_data()).cloned();
        let Some(shard) = shard else {
            let gone = service.stream_not_found(&meta.name);
            let _ = events.send(event_stream::exception(codec, &gone)).await;
            return;
        };
        if !still_active(&meta, &consumer) {
            let gone = consumer_not_found(&service, &meta.name, &consumer.name);
            let _ = events.send(event_stream::exception(codec, &gone)).await;
            return;
        }
        // Mark current values seen before reading, so a commit after the read still wakes us.
        committed.borrow_and_update();
        changed.borrow_and_update();
        let read = match read_records(
            &service,
            &meta,
            (shard_index, &shard),
            position,
            rules::MAX_GET_RECORDS as usize,
            EVENT_MAX_BYTES,
        )
        .await
        {
            Ok(read) => read,
            Err(error) => {
                let _ = events.send(event_stream::exception(codec, &error)).await;
                return;
            }
        };
        let has_records = !read.records.is_empty();
        let heartbeat_due = last_event.is_none_or(|at| at.elapsed() >= HEARTBEAT);
        position = read.next_index;
        if has_records || read.at_end || heartbeat_due {
            let event = SubscribeToShardEvent {
                records: read.records,
                continuation_sequence_number: (!read.at_end)
                    .then(|| SequenceNumber::at_position(stream_id, shard_index, position).encode()),
                millis_behind_latest: read.millis_behind_latest,
                child_shards: read.at_end.then(|| child_shards(&meta, shard_index)),
            };
            if events.send(event_stream::event(codec, "SubscribeToShardEvent", &event)).await.is_err() {
                return; // the client went away
            }
            last_event = Some(Instant::now());
        }
        if read.at_end {
            return;
        }
        if has_records && position < service.storage.tail(key).next_index {
            continue;
        }
        let wake = last_event.map_or(deadline, |at| (at + HEARTBEAT).min(deadline));
        tokio::select! {
            result = committed.changed() => {
                if result.is_err() {
                    // The shard's log was removed: the stream is gone; the next turn reports it.
                    committed = service.storage.watch_tail(key);
                }
            }
            _ = changed.changed() => {}
            _ = tokio::time::sleep_until(wake) => {}
        }
        if Instant::now() >= deadline {
            return;
        }
    }
}
