//! Enhanced fan-out consumers: RegisterStreamConsumer, DeregisterStreamConsumer,
//! DescribeStreamConsumer, ListStreamConsumers.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use tideline_proto::{AwsError, Pattern, Timestamp, Validator};

use super::tags::{check_tags, validate_tags};
use super::Empty;
use crate::model::{ConsumerMeta, ConsumerStatus, StreamMeta, StreamStatus};
use crate::rules;
use crate::service::{now_ms, StreamEntry, StreamsService};

pub static CONSUMER_ARN: Pattern =
    Pattern::new("^(arn):aws.*:kinesis:.*:\\d{12}:.*stream\\/[a-zA-Z0-9_.-]+\\/consumer\\/[a-zA-Z0-9_.-]+:[0-9]+");

/// AWS allows this many consumers per stream.
const MAX_CONSUMERS: usize = 20;
/// RegisterStreamConsumer takes "a set of up to 50 key-value pairs".
const MAX_CONSUMER_TAGS: usize = 50;

pub fn consumer_arn(v: &mut Validator, arn: Option<&str>) {
    v.string("consumerARN", arn, 1, 2048, Some(&CONSUMER_ARN));
}

/// The stream name, consumer name and creation second a consumer ARN encodes.
pub fn parse_consumer_arn(arn: &str) -> Option<(&str, &str, i64)> {
    let (_, rest) = arn.split_once(":stream/")?;
    let (stream, rest) = rest.split_once("/consumer/")?;
    let (name, created) = rest.rsplit_once(':')?;
    Some((stream, name, created.parse().ok()?))
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Consumer {
    consumer_name: String,
    #[serde(rename = "ConsumerARN")]
    consumer_arn: String,
    consumer_status: &'static str,
    consumer_creation_timestamp: Timestamp,
}

fn consumer_shape(service: &StreamsService, meta: &StreamMeta, consumer: &ConsumerMeta) -> Consumer {
    Consumer {
        consumer_name: consumer.name.clone(),
        consumer_arn: consumer.arn(&service.arn(meta)),
        consumer_status: consumer.status.as_str(),
        consumer_creation_timestamp: Timestamp(consumer.created_ms),
    }
}

/// AWS's error for a consumer that is not (or no longer) registered.
pub fn consumer_not_found(service: &StreamsService, stream: &str, name: &str) -> AwsError {
    AwsError::not_found(format!("Consumer {name} under stream {stream} under account {} not found.", service.account()))
}

/// A consumer named by its ARN, or by stream ARN and consumer name, with its stream.
pub fn find_consumer(
    service: &StreamsService,
    consumer_arn: Option<&str>,
    stream_arn: Option<&str>,
    consumer_name: Option<&str>,
) -> Result<(Arc<StreamEntry>, ConsumerMeta), AwsError> {
    let (stream, name, created_secs) = match (consumer_arn, stream_arn, consumer_name) {
        (Some(arn), _, _) => {
            let (stream, name, created) = parse_consumer_arn(arn)
                .ok_or_else(|| AwsError::invalid_argument(format!("Invalid ConsumerARN: {arn}")))?;
            (stream.to_string(), name, Some(created))
        }
        (None, Some(stream_arn), Some(name)) => (service.resolve_name(None, Some(stream_arn))?, name, None),
        _ => {
            return Err(AwsError::invalid_argument(
                "ConsumerArn or both ConsumerName and StreamARN are required for this request.",
            ))
        }
    };
    let not_found = || consumer_not_found(service, &stream, name);
    let entry = service.entry(&stream).map_err(|_| not_found())?;
    let consumer = entry
        .state
        .read()
        .meta
        .consumers
        .iter()
        .find(|c| c.name == name && created_secs.is_none_or(|secs| secs == c.created_ms.div_euclid(1000)))
        .cloned()
        .ok_or_else(not_found)?;
    Ok((entry, consumer))
}

/// Moves a consumer out of a transitional status after the configured delay.
fn finish_transition(service: &StreamsService, entry: &Arc<StreamEntry>, name: String, from: ConsumerStatus) {
    let entry = Arc::clone(entry);
    let delay = service.config.transition_delay;
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let _control = entry.control.lock().await;
        let mut meta = entry.meta();
        match from {
            ConsumerStatus::Deleting => meta.consumers.retain(|c| !(c.name == name && c.status == from)),
            _ => meta.consumers.iter_mut().filter(|c| c.name == name && c.status == from).for_each(|c| {
                c.status = ConsumerStatus::Active;
            }),
        }
        entry.replace(meta);
    });
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RegisterStreamConsumerInput {
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    consumer_name: Option<String>,
    tags: Option<BTreeMap<String, String>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RegisterStreamConsumerOutput {
    consumer: Consumer,
}

pub async fn register_stream_consumer(
    service: &StreamsService,
    input: RegisterStreamConsumerInput,
) -> Result<RegisterStreamConsumerOutput, AwsError> {
    let mut v = Validator::new();
    v.required("streamARN", input.stream_arn.as_ref());
    rules::stream_arn(&mut v, input.stream_arn.as_deref());
    v.required("consumerName", input.consumer_name.as_ref());
    v.string("consumerName", input.consumer_name.as_deref(), 1, 128, Some(&rules::NAME));
    validate_tags(&mut v, input.tags.as_ref(), MAX_CONSUMER_TAGS);
    v.finish()?;
    let tags = input.tags.unwrap_or_default();
    check_tags(&tags)?;
    let (stream, entry) = service.target(None, input.stream_arn.as_deref())?;
    let name = input.consumer_name.unwrap_or_default();
    let _control = entry.control.lock().await;
    let mut meta = entry.meta();
    if !meta.status.accepts_data() {
        return Err(service.stream_not_found(&stream));
    }
    if meta.consumers.iter().any(|c| c.name == name) {
        return Err(AwsError::in_use(format!(
            "Consumer {name} under stream {stream} under account {} already exists.",
            service.account()
        )));
    }
    if meta.consumers.len() >= MAX_CONSUMERS {
        return Err(AwsError::limit_exceeded(format!(
            "Only {MAX_CONSUMERS} consumers can be registered to a stream at once"
        )));
    }
    let delayed = !service.config.transition_delay.is_zero();
    let status = if delayed { ConsumerStatus::Creating } else { ConsumerStatus::Active };
    let consumer = ConsumerMeta { name: name.clone(), created_ms: now_ms(), status, tags };
    meta.consumers.push(consumer.clone());
    let shape = consumer_shape(service, &meta, &consumer);
    service.commit_change(&entry, meta, StreamStatus::Active).await?;
    if delayed {
        finish_transition(service, &entry, name, ConsumerStatus::Creating);
    }
    Ok(RegisterStreamConsumerOutput { consumer: shape })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConsumerTargetInput {
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    consumer_name: Option<String>,
    #[serde(rename = "ConsumerARN")]
    consumer_arn: Option<String>,
}

impl ConsumerTargetInput {
    /// Validates the request and finds the consumer it names.
    fn find(&self, service: &StreamsService) -> Result<(Arc<StreamEntry>, ConsumerMeta), AwsError> {
        self.validate()?;
        find_consumer(service, self.consumer_arn.as_deref(), self.stream_arn.as_deref(), self.consumer_name.as_deref())
    }

    fn validate(&self) -> Result<(), AwsError> {
        let mut v = Validator::new();
        rules::stream_arn(&mut v, self.stream_arn.as_deref());
        v.string("consumerName", self.consumer_name.as_deref(), 1, 128, Some(&rules::NAME));
        consumer_arn(&mut v, self.consumer_arn.as_deref());
        v.finish()
    }
}

pub async fn deregister_stream_consumer(
    service: &StreamsService,
    input: ConsumerTargetInput,
) -> Result<Empty, AwsError> {
    let (entry, consumer) = input.find(service)?;
    let _control = entry.control.lock().await;
    let mut meta = entry.meta();
    if consumer.status != ConsumerStatus::Active {
        return Err(AwsError::in_use(format!("Consumer {} is not in an ACTIVE state", consumer.name)));
    }
    if service.config.transition_delay.is_zero() {
        meta.consumers.retain(|c| c.name != consumer.name);
        service.commit_change(&entry, meta, StreamStatus::Active).await?;
    } else {
        meta.consumers.iter_mut().filter(|c| c.name == consumer.name).for_each(|c| c.status = ConsumerStatus::Deleting);
        service.commit_change(&entry, meta, StreamStatus::Active).await?;
        finish_transition(service, &entry, consumer.name, ConsumerStatus::Deleting);
    }
    Ok(Empty {})
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConsumerDescription {
    consumer_name: String,
    #[serde(rename = "ConsumerARN")]
    consumer_arn: String,
    consumer_status: &'static str,
    consumer_creation_timestamp: Timestamp,
    #[serde(rename = "StreamARN")]
    stream_arn: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeStreamConsumerOutput {
    consumer_description: ConsumerDescription,
}

pub async fn describe_stream_consumer(
    service: &StreamsService,
    input: ConsumerTargetInput,
) -> Result<DescribeStreamConsumerOutput, AwsError> {
    let (entry, consumer) = input.find(service)?;
    let meta = entry.meta();
    let stream_arn = service.arn(&meta);
    Ok(DescribeStreamConsumerOutput {
        consumer_description: ConsumerDescription {
            consumer_name: consumer.name.clone(),
            consumer_arn: consumer.arn(&stream_arn),
            consumer_status: consumer.status.as_str(),
            consumer_creation_timestamp: Timestamp(consumer.created_ms),
            stream_arn,
        },
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListStreamConsumersInput {
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    next_token: Option<String>,
    max_results: Option<i64>,
    stream_creation_timestamp: Option<Timestamp>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListStreamConsumersOutput {
    consumers: Vec<Consumer>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

pub async fn list_stream_consumers(
    service: &StreamsService,
    input: ListStreamConsumersInput,
) -> Result<ListStreamConsumersOutput, AwsError> {
    let mut v = Validator::new();
    v.required("streamARN", input.stream_arn.as_ref());
    rules::stream_arn(&mut v, input.stream_arn.as_deref());
    v.integer("maxResults", input.max_results, 1, 10_000);
    v.string("nextToken", input.next_token.as_deref(), 1, 1_048_576, None);
    v.finish()?;
    let (stream, entry) = service.target(None, input.stream_arn.as_deref())?;
    let meta = entry.meta();
    if input.stream_creation_timestamp.is_some_and(|t| t.0.div_euclid(1000) != meta.created_ms.div_euclid(1000)) {
        return Err(service.stream_not_found(&stream));
    }
    // The token is the last consumer name returned; consumers are listed in name order.
    let after = match input.next_token.as_deref() {
        Some(token) => URL_SAFE_NO_PAD
            .decode(token)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| AwsError::invalid_argument("NextToken is improperly formatted."))?,
        None => String::new(),
    };
    let mut consumers: Vec<&ConsumerMeta> = meta.consumers.iter().filter(|c| c.name > after).collect();
    consumers.sort_by(|a, b| a.name.cmp(&b.name));
    let limit = input.max_results.unwrap_or(100) as usize;
    let has_more = consumers.len() > limit;
    consumers.truncate(limit);
    let next_token = has_more.then(|| consumers.last().map(|c| URL_SAFE_NO_PAD.encode(&c.name))).flatten();
    Ok(ListStreamConsumersOutput {
        consumers: consumers.into_iter().map(|c| consumer_shape(service, &meta, c)).collect(),
        next_token,
    })
}
