//! Enhanced fan-out against the real binary with the `aws-sdk-kinesis` client: stream consumers
//! and SubscribeToShard's event stream, including reading across a shard split.

mod common;

use std::time::Duration;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{ConsumerStatus, ShardIteratorType, StartingPosition, SubscribeToShardEventStream};
use common::*;

async fn register(client: &aws_sdk_kinesis::Client, stream: &str, name: &str) -> String {
    let out =
        client.register_stream_consumer().stream_arn(stream_arn(stream)).consumer_name(name).send().await.unwrap();
    let consumer = out.consumer().unwrap();
    assert_eq!(consumer.consumer_name(), name);
    assert!(consumer.consumer_arn().starts_with(&format!("{}/consumer/{name}:", stream_arn(stream))));
    consumer.consumer_arn().to_string()
}

async fn subscribe(
    client: &aws_sdk_kinesis::Client,
    consumer_arn: &str,
    shard: &str,
    kind: ShardIteratorType,
) -> aws_sdk_kinesis::operation::subscribe_to_shard::SubscribeToShardOutput {
    client
        .subscribe_to_shard()
        .consumer_arn(consumer_arn)
        .shard_id(shard)
        .starting_position(StartingPosition::builder().r#type(kind).build().unwrap())
        .send()
        .await
        .unwrap_or_else(|e| panic!("SubscribeToShard: {}", aws_sdk_kinesis::error::DisplayErrorContext(&e)))
}

/// Receives events until `want` records arrived or the stream ended; returns the records' data,
/// the last continuation number and whether child shards were reported.
async fn collect(
    output: &mut aws_sdk_kinesis::operation::subscribe_to_shard::SubscribeToShardOutput,
    want: usize,
) -> (Vec<Vec<u8>>, String, Vec<String>) {
    let mut data = Vec::new();
    let mut continuation = String::new();
    let mut children = Vec::new();
    while data.len() < want {
        let event = tokio::time::timeout(Duration::from_secs(10), output.event_stream.recv())
            .await
            .expect("an event within 10 s")
            .expect("a well-formed event");
        let Some(SubscribeToShardEventStream::SubscribeToShardEvent(event)) = event else { break };
        data.extend(event.records().iter().map(|r| r.data().as_ref().to_vec()));
        continuation = event.continuation_sequence_number().to_string();
        children.extend(event.child_shards().iter().map(|c| c.shard_id().to_string()));
        if !children.is_empty() {
            break;
        }
    }
    (data, continuation, children)
}

#[tokio::test]
async fn consumers_register_describe_list_deregister() {
    let server = TestServer::in_memory();
    let client = server.client();
    let stream = unique_name("fanout-consumers");
    create_stream(client, &stream, 1).await;
    let first = register(client, &stream, "alpha").await;
    register(client, &stream, "beta").await;

    let described = client.describe_stream_consumer().consumer_arn(&first).send().await.unwrap();
    let description = described.consumer_description().unwrap();
    assert_eq!(description.consumer_status(), &ConsumerStatus::Active);
    assert_eq!(description.stream_arn(), stream_arn(&stream));
    let by_name =
        client.describe_stream_consumer().stream_arn(stream_arn(&stream)).consumer_name("alpha").send().await.unwrap();
    assert_eq!(by_name.consumer_description().unwrap().consumer_arn(), first);

    let page = client.list_stream_consumers().stream_arn(stream_arn(&stream)).max_results(1).send().await.unwrap();
    assert_eq!(page.consumers().iter().map(|c| c.consumer_name()).collect::<Vec<_>>(), vec!["alpha"]);
    let rest = client
        .list_stream_consumers()
        .stream_arn(stream_arn(&stream))
        .next_token(page.next_token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(rest.consumers().iter().map(|c| c.consumer_name()).collect::<Vec<_>>(), vec!["beta"]);
    assert!(rest.next_token().is_none());

    let summary = client.describe_stream_summary().stream_name(&stream).send().await.unwrap();
    assert_eq!(summary.stream_description_summary().unwrap().consumer_count(), Some(2));

    let duplicate = service_error(
        client.register_stream_consumer().stream_arn(stream_arn(&stream)).consumer_name("alpha").send().await,
    );
    assert_eq!(duplicate.meta().code(), Some("ResourceInUseException"));

    // A stream with consumers is only deleted when consumer deletion is enforced.
    let refused = service_error(client.delete_stream().stream_name(&stream).send().await);
    assert_eq!(refused.meta().code(), Some("ResourceInUseException"));

    client.deregister_stream_consumer().consumer_arn(&first).send().await.unwrap();
    let gone = service_error(client.describe_stream_consumer().consumer_arn(&first).send().await);
    assert_eq!(gone.meta().code(), Some("ResourceNotFoundException"));
    client.delete_stream().stream_name(&stream).enforce_consumer_deletion(true).send().await.unwrap();
}

#[tokio::test]
async fn subscribe_pushes_existing_and_new_records() {
    let server = TestServer::in_memory();
    let client = server.client();
    let stream = unique_name("fanout-push");
    create_stream(client, &stream, 1).await;
    let consumer = register(client, &stream, "reader").await;
    for i in 0..3u8 {
        put(client, &stream, "k", &[i; 10]).await;
    }
    let mut output = subscribe(client, &consumer, &shard_id(0), ShardIteratorType::TrimHorizon).await;
    let (data, _, _) = collect(&mut output, 3).await;
    assert_eq!(data, vec![vec![0u8; 10], vec![1u8; 10], vec![2u8; 10]]);

    // Records written after subscribing are pushed on the same subscription.
    let writer = client.clone();
    let name = stream.clone();
    let put_later = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        writer.put_record().stream_name(name).partition_key("k").data(Blob::new(b"late".to_vec())).send().await.unwrap()
    });
    let (late, continuation, _) = collect(&mut output, 1).await;
    let put = put_later.await.unwrap();
    assert_eq!(late, vec![b"late".to_vec()]);
    assert_eq!(continuation, put.sequence_number(), "continuation is the last record's number");

    // A second subscription within 5 seconds is refused, as AWS does.
    let again = client
        .subscribe_to_shard()
        .consumer_arn(&consumer)
        .shard_id(shard_id(0))
        .starting_position(StartingPosition::builder().r#type(ShardIteratorType::Latest).build().unwrap())
        .send()
        .await;
    assert_eq!(service_error(again).meta().code(), Some("ResourceInUseException"));
}

#[tokio::test]
async fn subscription_ends_with_child_shards_after_a_split() {
    let server = TestServer::in_memory();
    let client = server.client();
    let stream = unique_name("fanout-split");
    create_stream(client, &stream, 1).await;
    let consumer = register(client, &stream, "lineage").await;
    put(client, &stream, "before", b"before-split").await;
    let mut output = subscribe(client, &consumer, &shard_id(0), ShardIteratorType::TrimHorizon).await;
    let (data, _, children) = collect(&mut output, 1).await;
    assert_eq!(data, vec![b"before-split".to_vec()]);
    assert!(children.is_empty());

    client
        .split_shard()
        .stream_name(&stream)
        .shard_to_split(shard_id(0))
        .new_starting_hash_key((1u128 << 127).to_string())
        .send()
        .await
        .unwrap();
    let (_, continuation, children) = collect(&mut output, usize::MAX).await;
    assert_eq!(children, vec![shard_id(1), shard_id(2)]);
    // AWS sends a null ContinuationSequenceNumber at the end of a closed shard (the KCL's sign
    // that the shard is finished); this SDK parses the event and reads the null as empty.
    assert_eq!(continuation, "", "the last event of a closed shard has no continuation");
    let end = tokio::time::timeout(Duration::from_secs(10), output.event_stream.recv()).await.unwrap().unwrap();
    assert!(end.is_none(), "the event stream ends at the end of a closed shard");

    // The children are readable by new subscriptions, and carry records written after the split.
    let (child, _) = put(client, &stream, "after", b"after-split").await;
    let mut child_output = subscribe(client, &consumer, &child, ShardIteratorType::TrimHorizon).await;
    let (data, _, _) = collect(&mut child_output, 1).await;
    assert_eq!(data, vec![b"after-split".to_vec()]);
}

#[tokio::test]
async fn deregistering_a_consumer_ends_its_subscription() {
    let server = TestServer::in_memory();
    let client = server.client();
    let stream = unique_name("fanout-deregister");
    create_stream(client, &stream, 1).await;
    let consumer = register(client, &stream, "leaving").await;
    let mut output = subscribe(client, &consumer, &shard_id(0), ShardIteratorType::Latest).await;
    client.deregister_stream_consumer().consumer_arn(&consumer).send().await.unwrap();
    put(client, &stream, "after", b"after-deregistration").await;

    // Heartbeats come every 5 s: a subscription that outlived its consumer would keep sending them.
    let ended = tokio::time::timeout(Duration::from_secs(12), async {
        loop {
            match output.event_stream.recv().await {
                Ok(Some(SubscribeToShardEventStream::SubscribeToShardEvent(event))) => {
                    assert!(event.records().is_empty(), "records pushed after deregistration: {event:?}")
                }
                Ok(other) => panic!("expected ResourceNotFoundException, the stream gave {other:?}"),
                Err(error) => return service_error::<(), _, _>(Err(error)),
            }
        }
    })
    .await
    .expect("the subscription ends after DeregisterStreamConsumer");
    assert!(ended.is_resource_not_found_exception(), "{ended:?}");
}
