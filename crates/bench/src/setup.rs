//! Control plane around a run: the streams (created and deleted unless `--reuse`), their shard ids,
//! and enhanced fan-out consumers. Every wait is bounded.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use tokio::time::Instant;

use crate::client::{CallError, Kinesis, Op};

/// How long a stream or consumer may take to become ACTIVE (kinesalite takes 500 ms by default).
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(20);

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Call(#[from] CallError),
    #[error("{what} did not become ACTIVE within {ACTIVE_TIMEOUT:?}")]
    NotActive { what: String },
    #[error("stream {0} has no open shard")]
    NoShards(String),
}

#[derive(Clone, Debug)]
pub struct StreamInfo {
    pub name: String,
    pub arn: Option<String>,
    /// Open shards.
    pub shard_ids: Vec<String>,
}

/// The streams of a run. Unless reused, they are deleted by [`Streams::delete`].
pub struct Streams {
    pub streams: Vec<StreamInfo>,
    created: bool,
}

impl Streams {
    /// Creates `count` streams of `shards` shards (or, with `reuse`, uses those that exist and
    /// creates the missing ones), waits for them to be ACTIVE and lists their shards.
    pub async fn prepare(
        client: &Kinesis,
        prefix: &str,
        count: usize,
        shards: u32,
        reuse: bool,
    ) -> Result<Self, SetupError> {
        let base = if reuse {
            prefix.to_string()
        } else {
            // A fresh name per run, so concurrent or aborted runs never collide.
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
            format!("{prefix}-{}-{}", std::process::id(), nanos % 1_000_000_000)
        };
        let names: Vec<String> = (0..count).map(|i| format!("{base}-{i}")).collect();
        let mut streams = Self { streams: Vec::new(), created: !reuse };
        for name in &names {
            let created = client
                .json::<_, serde_json::Value>(Op::CreateStream, &json!({"StreamName": name, "ShardCount": shards}))
                .await;
            match created {
                Ok(_) => {}
                Err(error) if reuse && error.aws_kind() == Some("ResourceInUseException") => {}
                Err(error) => {
                    streams.streams = names.iter().take_while(|n| *n != name).map(|n| StreamInfo::named(n)).collect();
                    streams.delete(client).await;
                    return Err(error.into());
                }
            }
            streams.streams.push(StreamInfo::named(name));
        }
        let result = async {
            for stream in &mut streams.streams {
                stream.arn = wait_active(client, &stream.name).await?;
                stream.shard_ids = open_shards(client, &stream.name).await?;
                if stream.shard_ids.is_empty() {
                    return Err(SetupError::NoShards(stream.name.clone()));
                }
            }
            Ok(())
        }
        .await;
        if let Err(error) = result {
            streams.delete(client).await;
            return Err(error);
        }
        Ok(streams)
    }

    /// Deletes the streams this run created; reused streams are kept. Failures are logged only.
    pub async fn delete(&self, client: &Kinesis) {
        if !self.created {
            return;
        }
        for stream in &self.streams {
            let deleted = client
                .json::<_, serde_json::Value>(
                    Op::DeleteStream,
                    &json!({"StreamName": stream.name, "EnforceConsumerDeletion": true}),
                )
                .await;
            if let Err(error) = deleted {
                tracing::warn!(stream = %stream.name, %error, "could not delete the stream");
            }
        }
    }

    /// Every (stream index, shard id) pair, in a stable order.
    pub fn shards(&self) -> Vec<(usize, String)> {
        self.streams
            .iter()
            .enumerate()
            .flat_map(|(i, s)| s.shard_ids.iter().map(move |shard| (i, shard.clone())))
            .collect()
    }
}

impl StreamInfo {
    fn named(name: &str) -> Self {
        Self { name: name.to_string(), arn: None, shard_ids: Vec::new() }
    }
}

/// Waits until the stream is ACTIVE and returns its ARN.
async fn wait_active(client: &Kinesis, name: &str) -> Result<Option<String>, SetupError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Summary {
        stream_status: String,
        #[serde(rename = "StreamARN")]
        stream_arn: Option<String>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Output {
        stream_description_summary: Summary,
    }
    let deadline = Instant::now() + ACTIVE_TIMEOUT;
    loop {
        let output: Output = client.json(Op::DescribeStreamSummary, &json!({"StreamName": name})).await?;
        if output.stream_description_summary.stream_status == "ACTIVE" {
            return Ok(output.stream_description_summary.stream_arn);
        }
        if Instant::now() >= deadline {
            return Err(SetupError::NotActive { what: format!("stream {name}") });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The stream's open shards (no `EndingSequenceNumber`), following `NextToken`.
pub async fn open_shards(client: &Kinesis, name: &str) -> Result<Vec<String>, SetupError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Range {
        ending_sequence_number: Option<String>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Shard {
        shard_id: String,
        sequence_number_range: Option<Range>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Output {
        shards: Vec<Shard>,
        next_token: Option<String>,
    }
    let mut ids = Vec::new();
    let mut request = json!({"StreamName": name});
    // A stream has at most a few thousand shards; 100 pages of 1000 is far beyond that.
    for _ in 0..100 {
        let output: Output = client.json(Op::ListShards, &request).await?;
        ids.extend(
            output
                .shards
                .into_iter()
                .filter(|s| s.sequence_number_range.as_ref().is_none_or(|r| r.ending_sequence_number.is_none()))
                .map(|s| s.shard_id),
        );
        match output.next_token {
            Some(token) => request = json!({"NextToken": token}),
            None => break,
        }
    }
    Ok(ids)
}

/// Registers an enhanced fan-out consumer and waits for it to be ACTIVE; returns its ARN.
pub async fn register_consumer(client: &Kinesis, stream_arn: &str, name: &str) -> Result<String, SetupError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Consumer {
        #[serde(rename = "ConsumerARN")]
        consumer_arn: String,
        consumer_status: String,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Registered {
        consumer: Consumer,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Described {
        consumer_description: Consumer,
    }
    let registered: Registered =
        client.json(Op::RegisterStreamConsumer, &json!({"StreamARN": stream_arn, "ConsumerName": name})).await?;
    let arn = registered.consumer.consumer_arn;
    let mut status = registered.consumer.consumer_status;
    let deadline = Instant::now() + ACTIVE_TIMEOUT;
    while status != "ACTIVE" {
        if Instant::now() >= deadline {
            return Err(SetupError::NotActive { what: format!("consumer {name}") });
        }
        tokio::time::sleep(POLL).await;
        let described: Described = client.json(Op::DescribeStreamConsumer, &json!({"ConsumerARN": arn})).await?;
        status = described.consumer_description.consumer_status;
    }
    Ok(arn)
}

pub async fn deregister_consumer(client: &Kinesis, consumer_arn: &str) {
    let result =
        client.json::<_, serde_json::Value>(Op::DeregisterStreamConsumer, &json!({"ConsumerARN": consumer_arn})).await;
    if let Err(error) = result {
        tracing::warn!(consumer = %consumer_arn, %error, "could not deregister the consumer");
    }
}

/// A shard iterator of the given type.
pub async fn shard_iterator(client: &Kinesis, stream: &str, shard: &str, kind: &str) -> Result<String, CallError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Output {
        shard_iterator: String,
    }
    let output: Output = client
        .json(Op::GetShardIterator, &json!({"StreamName": stream, "ShardId": shard, "ShardIteratorType": kind}))
        .await?;
    Ok(output.shard_iterator)
}
