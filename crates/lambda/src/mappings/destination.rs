//! On-failure destinations: where a mapping sends the record of a batch it discarded. A Kinesis
//! stream (`arn:aws:kinesis:…:stream/NAME`) and a Firehose delivery stream
//! (`arn:aws:firehose:…:deliverystream/NAME`) receive the on-failure record as one record; a
//! bucket (`arn:aws:s3:::BUCKET`, the folder store Firehose's S3 destination writes to) receives
//! it as one object with the invocation's event as `payload`, under AWS's key
//! `aws/lambda/<mapping UUID>/<shard id>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<UUID>`. Amazon SNS and
//! SQS, AWS's other choices, are not served by Tideline.

use bytes::Bytes;
use serde_json::Value;
use tideline_firehose::FirehoseService;
use tideline_proto::{AwsError, ErrorCode};
use tideline_streams::{NewEntry, PutOutcome, StreamsService};

/// A destination, parsed from its ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Stream(String),
    DeliveryStream(String),
    Bucket(String),
}

impl Destination {
    pub fn parse(arn: &str) -> Option<Self> {
        if let Some(bucket) = arn.strip_prefix("arn:aws:s3:::") {
            let valid = !bucket.is_empty() && !bucket.contains('/') && !bucket.chars().all(|c| c == '.');
            return valid.then(|| Destination::Bucket(bucket.to_string()));
        }
        let mut parts = arn.splitn(6, ':');
        let (prefix, _, service, _, _, resource) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let named = |kind: &str| resource.strip_prefix(kind).filter(|name| !name.is_empty() && !name.contains('/'));
        match (prefix, service) {
            ("arn", "kinesis") => named("stream/").map(|name| Destination::Stream(name.to_string())),
            ("arn", "firehose") => named("deliverystream/").map(|name| Destination::DeliveryStream(name.to_string())),
            _ => None,
        }
    }
}

/// What a destination is sent: the on-failure record, and (for a bucket) the invocation event.
pub struct FailureRecord<'a> {
    pub mapping_uuid: &'a str,
    pub shard_id: &'a str,
    pub document: Value,
    pub event: &'a [u8],
}

/// Sends `failure` to `destination`.
pub async fn deliver(
    streams: &StreamsService,
    firehose: &FirehoseService,
    destination: &Destination,
    failure: FailureRecord<'_>,
) -> Result<(), AwsError> {
    match destination {
        Destination::Stream(name) => {
            let entry = NewEntry::new(failure.shard_id, failure.document.to_string());
            match streams.put_entries(Some(name), None, vec![entry]).await?.into_iter().next() {
                Some(PutOutcome::Written { .. }) => Ok(()),
                Some(PutOutcome::Throttled { message, .. }) => {
                    Err(AwsError::new(ErrorCode::ProvisionedThroughputExceeded, message))
                }
                None => Err(AwsError::internal("the on-failure record was not placed")),
            }
        }
        Destination::DeliveryStream(name) => {
            firehose.put_record_in_process(name, Bytes::from(failure.document.to_string())).await.map(|_| ())
        }
        Destination::Bucket(bucket) => {
            let mut document = failure.document;
            if let Some(object) = document.as_object_mut() {
                let event = serde_json::from_slice(failure.event).unwrap_or(Value::Null);
                object.insert("payload".into(), event);
            }
            let key = object_key(failure.mapping_uuid, failure.shard_id, chrono::Utc::now());
            firehose.put_object(bucket, &key, Bytes::from(document.to_string())).await
        }
    }
}

fn object_key(mapping_uuid: &str, shard_id: &str, now: chrono::DateTime<chrono::Utc>) -> String {
    format!(
        "aws/lambda/{mapping_uuid}/{shard_id}/{}/{}-{}",
        now.format("%Y/%m/%d"),
        now.format("%Y-%m-%dT%H.%M.%S"),
        uuid::Uuid::new_v4()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_are_parsed_from_their_arns() {
        let parse = Destination::parse;
        assert_eq!(parse("arn:aws:kinesis:us-east-1:000000000000:stream/dlq"), Some(Destination::Stream("dlq".into())));
        assert_eq!(
            parse("arn:aws:firehose:us-east-1:000000000000:deliverystream/dlq"),
            Some(Destination::DeliveryStream("dlq".into()))
        );
        assert_eq!(parse("arn:aws:s3:::failures"), Some(Destination::Bucket("failures".into())));
        assert_eq!(parse("arn:aws:s3:::.."), None);
        assert_eq!(parse("arn:aws:kinesis:us-east-1:000000000000:stream/s/consumer/c:1"), None);
        assert_eq!(parse("arn:aws:sqs:us-east-1:000000000000:queue"), None);
    }

    #[test]
    fn bucket_keys_follow_aws_naming() {
        let now = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        let key = object_key("uuid", "shardId-000000000000", now);
        assert!(key.starts_with("aws/lambda/uuid/shardId-000000000000/2023/11/14/2023-11-14T22.13.20-"), "{key}");
    }
}
