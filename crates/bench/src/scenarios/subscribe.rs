//! `subscribe`: PutRecord → SubscribeToShard push latency. A consumer is registered per stream
//! (RegisterStreamConsumer, waited ACTIVE), one subscription per shard starts at LATEST, and the
//! producers start once every subscription has delivered its `initial-response`. Events are read
//! frame by frame with the SDKs' own decoder (`aws-smithy-eventstream`); a record counts as seen
//! when the frame that carries it has been received. A subscription that ends (AWS ends them
//! after 5 minutes) is renewed after its last `ContinuationSequenceNumber`.

use std::sync::Arc;
use std::time::Duration;

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::Message;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use serde::Deserialize;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::body::Stamp;
use crate::cli::LatencyArgs;
use crate::client::{Kinesis, Op};
use crate::run::{Clock, Ctx};
use crate::scenarios::get_records::DataOnly;
use crate::scenarios::latency::{self, Seen, Tracker};
use crate::setup::{deregister_consumer, register_consumer};
use crate::stats::{Report, Tally};
use crate::BenchError;

/// How often a subscriber waiting for a frame checks whether to stop.
const CHECK: Duration = Duration::from_millis(50);
/// Subscriptions per shard and run: renewals after the 5-minute lifetime, retries after errors.
const MAX_SUBSCRIPTIONS: usize = 50;
/// A renewal within 5 s of the previous subscription is refused (ResourceInUseException).
const RETRY_IN_USE: Duration = Duration::from_secs(1);
const RETRY_ERROR: Duration = Duration::from_millis(200);
/// How long to wait for every subscription's initial response.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn run(ctx: &Ctx, args: &LatencyArgs) -> Result<Report, BenchError> {
    let admin = ctx.client();
    let name = format!("tideline-bench-{}", std::process::id());
    let mut consumers = Vec::new();
    let mut outcome = Ok(());
    for stream in &ctx.streams.streams {
        let Some(arn) = &stream.arn else {
            outcome = Err(BenchError::Run(format!("stream {} has no StreamARN in DescribeStreamSummary", stream.name)));
            break;
        };
        match register_consumer(&admin, arn, &name).await {
            Ok(consumer) => consumers.push(consumer),
            Err(error) => {
                outcome = Err(error.into());
                break;
            }
        }
    }
    let result = match outcome {
        Ok(()) => measure(ctx, args, &consumers).await,
        Err(error) => Err(error),
    };
    for consumer in &consumers {
        deregister_consumer(&admin, consumer).await;
    }
    result
}

async fn measure(ctx: &Ctx, args: &LatencyArgs, consumers: &[String]) -> Result<Report, BenchError> {
    let epoch = Instant::now();
    let tracker = Tracker::new(Duration::from_secs_f64(args.grace.max(0.0)));
    let mut ready = Vec::new();
    let subscribers: Vec<_> = ctx
        .streams
        .shards()
        .into_iter()
        .map(|(stream, shard)| {
            let (ready_tx, ready_rx) = oneshot::channel();
            ready.push(ready_rx);
            let client = ctx.client();
            let consumer = consumers[stream].clone();
            let tracker = Arc::clone(&tracker);
            tokio::spawn(async move { subscriber(client, consumer, shard, tracker, epoch, ready_tx).await })
        })
        .collect();
    let mut not_ready = None;
    for ready in ready {
        let outcome = match tokio::time::timeout(READY_TIMEOUT, ready).await {
            Ok(Ok(Ok(()))) => continue,
            Ok(Ok(Err(message))) => message,
            Ok(Err(_)) => "the subscriber stopped".to_string(),
            Err(_) => format!("no initial-response within {READY_TIMEOUT:?}"),
        };
        not_ready = Some(outcome);
        break;
    }
    let clock = ctx.clock_from(epoch);
    let produced = if not_ready.is_none() {
        Some(latency::produce(ctx, &clock, args.rate, &tracker).await)
    } else {
        tracker.producers_done();
        None
    };
    let mut events = Tally::default();
    let mut seen = Vec::new();
    for subscriber in subscribers {
        match subscriber.await {
            Ok((t, s)) => {
                events.merge(&t);
                seen.extend(s);
            }
            Err(error) => events.error(format!("subscriber failed: {error}")),
        }
    }
    let Some(produced) = produced else {
        return Err(BenchError::Run(format!("SubscribeToShard failed: {}", not_ready.unwrap_or_default())));
    };
    let mut report = latency::report("subscribe", ctx, &clock, produced, events, &seen, "subscribe_call");
    report.config["rate"] = args.rate.into();
    Ok(report)
}

/// One shard's subscription(s). The tally counts events; its latency is SubscribeToShard's, from
/// the request to the `initial-response`.
async fn subscriber(
    client: Kinesis,
    consumer_arn: String,
    shard_id: String,
    tracker: Arc<Tracker>,
    epoch: Instant,
    ready: oneshot::Sender<Result<(), String>>,
) -> (Tally, Vec<Seen>) {
    let clock = Clock::with_epoch(epoch, Duration::ZERO, None, None);
    let mut tally = Tally::default();
    let mut seen = Vec::new();
    let mut ready = Some(ready);
    let mut position = serde_json::json!({"Type": "LATEST"});
    let mut attempts = 0;
    'subscriptions: while !tracker.should_stop() && attempts < MAX_SUBSCRIPTIONS {
        attempts += 1;
        let request =
            serde_json::json!({"ConsumerARN": consumer_arn, "ShardId": shard_id, "StartingPosition": position});
        let started = Instant::now();
        let response = match client.send_streaming(Op::SubscribeToShard, Bytes::from(request.to_string())).await {
            Ok(response) => response,
            Err(error) => {
                let in_use = error.aws_kind() == Some("ResourceInUseException");
                if !in_use {
                    tally.error(error.to_string());
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(Err(error.to_string()));
                    }
                }
                tokio::time::sleep(if in_use { RETRY_IN_USE } else { RETRY_ERROR }).await;
                continue;
            }
        };
        let mut body = response.into_body();
        let mut buffer = BytesMut::new();
        let mut decoder = MessageFrameDecoder::new();
        loop {
            if tracker.should_stop() {
                break 'subscriptions;
            }
            let frame = match tokio::time::timeout(CHECK, body.frame()).await {
                Err(_) => continue,
                // The subscription ended: renew it.
                Ok(None) => break,
                Ok(Some(Err(error))) => {
                    tally.error(format!("SubscribeToShard stream: {error}"));
                    break;
                }
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else { continue };
            let seen_ns = clock.now_ns();
            buffer.extend_from_slice(&data);
            loop {
                let message = match decoder.decode_frame(&mut buffer) {
                    Ok(DecodedFrame::Complete(message)) => message,
                    Ok(DecodedFrame::Incomplete) => break,
                    Err(error) => {
                        tally.error(format!("bad event-stream frame: {error}"));
                        continue 'subscriptions;
                    }
                };
                match classify(&message) {
                    Event::InitialResponse => {
                        tally.latency.record(started.elapsed());
                        if let Some(ready) = ready.take() {
                            let _ = ready.send(Ok(()));
                        }
                    }
                    Event::Records => match parse_event(message.payload()) {
                        Ok((stamps, continuation)) => {
                            tally.requests += 1;
                            tracker.saw(stamps.len());
                            seen.extend(stamps.into_iter().map(|stamp| Seen { stamp, seen_ns }));
                            if let Some(sequence) = continuation {
                                position =
                                    serde_json::json!({"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": sequence});
                            }
                        }
                        Err(error) => tally.error(format!("bad SubscribeToShardEvent: {error}")),
                    },
                    Event::Exception(kind) => {
                        let text = String::from_utf8_lossy(message.payload()).into_owned();
                        tally.error(format!("SubscribeToShard exception {kind}: {text}"));
                    }
                    Event::Other => {}
                }
            }
        }
    }
    if let Some(ready) = ready.take() {
        let _ = ready.send(Err("no subscription could be started".to_string()));
    }
    (tally, seen)
}

#[derive(Debug, PartialEq)]
enum Event {
    InitialResponse,
    Records,
    Exception(String),
    Other,
}

fn header<'a>(message: &'a Message, name: &str) -> Option<&'a str> {
    message
        .headers()
        .iter()
        .find(|h| h.name().as_str() == name)
        .and_then(|h| h.value().as_string().ok())
        .map(|s| s.as_str())
}

fn classify(message: &Message) -> Event {
    match (header(message, ":message-type"), header(message, ":event-type")) {
        (Some("event"), Some("initial-response")) => Event::InitialResponse,
        (Some("event"), Some("SubscribeToShardEvent")) => Event::Records,
        (Some("exception") | Some("error"), _) => Event::Exception(
            header(message, ":exception-type").or(header(message, ":error-code")).unwrap_or("unknown").to_string(),
        ),
        _ => Event::Other,
    }
}

#[derive(Deserialize)]
struct SubscribeToShardEvent<'a> {
    #[serde(rename = "Records", borrow, default)]
    records: Vec<DataOnly<'a>>,
    #[serde(rename = "ContinuationSequenceNumber", default)]
    continuation_sequence_number: Option<String>,
}

/// The stamps of an event's records and its continuation sequence number.
fn parse_event(payload: &[u8]) -> Result<(Vec<Stamp>, Option<String>), serde_json::Error> {
    let event: SubscribeToShardEvent<'_> = serde_json::from_slice(payload)?;
    let stamps = event.records.iter().filter_map(|r| Stamp::from_base64_data(&r.data)).collect();
    Ok((stamps, event.continuation_sequence_number))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_eventstream::frame::write_message_to;
    use aws_smithy_types::event_stream::{Header, HeaderValue};

    fn message(headers: &[(&'static str, &'static str)], payload: &[u8]) -> Message {
        headers.iter().fold(Message::new(Bytes::copy_from_slice(payload)), |m, (name, value)| {
            m.add_header(Header::new(*name, HeaderValue::String((*value).into())))
        })
    }

    #[test]
    fn frames_split_anywhere_decode_into_events() {
        let stamp = Stamp { id: latency::MEASURED | 9, sent_ns: 42 };
        let template = crate::body::PutRecordTemplate::new("s", "k", &crate::body::record_data(20, 1));
        let put: serde_json::Value = serde_json::from_slice(&template.stamped(stamp)).unwrap();
        let payload = serde_json::json!({
            "Records": [{"SequenceNumber": "1", "Data": put["Data"], "PartitionKey": "k"}],
            "ContinuationSequenceNumber": "49000", "MillisBehindLatest": 0
        });
        let mut wire = Vec::new();
        write_message_to(
            &message(&[(":message-type", "event"), (":event-type", "initial-response")], b"{}"),
            &mut wire,
        )
        .unwrap();
        write_message_to(
            &message(
                &[(":message-type", "event"), (":event-type", "SubscribeToShardEvent")],
                payload.to_string().as_bytes(),
            ),
            &mut wire,
        )
        .unwrap();
        // Feed the bytes in small chunks, as a network would.
        let mut decoder = MessageFrameDecoder::new();
        let mut buffer = BytesMut::new();
        let mut events = Vec::new();
        for chunk in wire.chunks(7) {
            buffer.extend_from_slice(chunk);
            while let DecodedFrame::Complete(m) = decoder.decode_frame(&mut buffer).unwrap() {
                events.push(m);
            }
        }
        assert_eq!(events.len(), 2);
        assert_eq!(classify(&events[0]), Event::InitialResponse);
        assert_eq!(classify(&events[1]), Event::Records);
        let (stamps, continuation) = parse_event(events[1].payload()).unwrap();
        assert_eq!(stamps, vec![stamp]);
        assert_eq!(continuation.as_deref(), Some("49000"));
    }

    #[test]
    fn exceptions_are_classified_with_their_type() {
        let m = message(&[(":message-type", "exception"), (":exception-type", "ResourceNotFoundException")], b"{}");
        assert_eq!(classify(&m), Event::Exception("ResourceNotFoundException".into()));
    }
}
