//! AWS error types and messages, as the SDK's typed errors see them.

mod common;

use std::time::Duration;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::ShardIteratorType;
use common::*;

const TWO_POW_128: &str = "340282366920938463463374607431768211456";

#[tokio::test]
async fn missing_stream_is_resource_not_found() {
    let server = TestServer::in_memory();
    let client = server.client();
    let message = "Stream nope under account 000000000000 not found.";

    let e = service_error(client.describe_stream().stream_name("nope").send().await);
    assert!(e.is_resource_not_found_exception(), "{e:?}");
    assert_error(&e, "ResourceNotFoundException", message);

    let e = service_error(client.describe_stream_summary().stream_name("nope").send().await);
    assert!(e.is_resource_not_found_exception(), "{e:?}");
    assert_error(&e, "ResourceNotFoundException", message);

    let e = service_error(client.delete_stream().stream_name("nope").send().await);
    assert!(e.is_resource_not_found_exception(), "{e:?}");
    assert_error(&e, "ResourceNotFoundException", message);

    let e = service_error(client.put_record().stream_name("nope").partition_key("a").data(Blob::new("x")).send().await);
    assert!(e.is_resource_not_found_exception(), "{e:?}");
    assert_error(&e, "ResourceNotFoundException", message);
}

#[tokio::test]
async fn duplicate_stream_is_resource_in_use() {
    let server = TestServer::in_memory();
    let client = server.client();
    create_stream(client, "x", 1).await;
    let e = service_error(client.create_stream().stream_name("x").shard_count(2).send().await);
    assert!(e.is_resource_in_use_exception(), "{e:?}");
    assert_error(&e, "ResourceInUseException", "Stream x under account 000000000000 already exists.");
    // The original stream is untouched.
    assert_eq!(shards_of(client, "x").await.len(), 1);
}

#[tokio::test]
async fn invalid_members_are_validation_errors() {
    let server = TestServer::in_memory();
    let client = server.client();

    let e = service_error(client.create_stream().stream_name("zero").shard_count(0).send().await);
    assert!(e.is_validation_exception(), "{e:?}");
    assert_error(
        &e,
        "ValidationException",
        "1 validation error detected: Value '0' at 'shardCount' failed to satisfy constraint: Member must have value greater than or equal to 1",
    );

    let e = service_error(client.create_stream().stream_name("bad name!").shard_count(1).send().await);
    assert!(e.is_validation_exception(), "{e:?}");
    assert_error(
        &e,
        "ValidationException",
        "1 validation error detected: Value 'bad name!' at 'streamName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+",
    );

    create_stream(client, "valid", 1).await;
    // PutRecord does not model ValidationException; the SDK still exposes its code and message.
    let e = service_error(client.put_record().stream_name("valid").partition_key("").data(Blob::new("x")).send().await);
    assert_error(
        &e,
        "ValidationException",
        "1 validation error detected: Value '' at 'partitionKey' failed to satisfy constraint: Member must have length greater than or equal to 1",
    );
    // Nothing was created or written by the rejected calls.
    let listed = client.list_streams().send().await.expect("ListStreams");
    assert_eq!(listed.stream_names(), ["valid"]);
}

#[tokio::test]
async fn tampered_shard_iterator_is_invalid_argument() {
    let server = TestServer::in_memory();
    let client = server.client();
    create_stream(client, "it", 1).await;
    put(client, "it", "k", b"v").await;
    let good = iterator(client, "it", &shard_id(0), ShardIteratorType::TrimHorizon, None).await;

    // Flip one character in the middle to another character of the same alphabet class.
    let mut bytes = good.clone().into_bytes();
    let mid = bytes.len() / 2;
    bytes[mid] = match bytes[mid] {
        b'A' => b'B',
        b'0'..=b'9' => {
            if bytes[mid] == b'9' {
                b'0'
            } else {
                bytes[mid] + 1
            }
        }
        c if c.is_ascii_lowercase() => {
            if c == b'z' {
                b'a'
            } else {
                c + 1
            }
        }
        _ => b'A',
    };
    let tampered = String::from_utf8(bytes).expect("ascii");
    assert_ne!(tampered, good);

    for bad in [tampered.as_str(), "not-a-real-iterator"] {
        let e = service_error(client.get_records().shard_iterator(bad).send().await);
        assert!(e.is_invalid_argument_exception(), "{e:?}");
        assert_error(&e, "InvalidArgumentException", "Invalid ShardIterator.");
    }
    // The genuine iterator still works.
    let out = client.get_records().shard_iterator(good).send().await.expect("GetRecords");
    assert_eq!(out.records().len(), 1);
}

#[tokio::test]
async fn old_shard_iterator_is_expired() {
    let server = TestServer::in_memory_with(&["--iterator-ttl-secs", "1"]);
    let client = server.client();
    create_stream(client, "exp", 1).await;
    let it = iterator(client, "exp", &shard_id(0), ShardIteratorType::TrimHorizon, None).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let e = service_error(client.get_records().shard_iterator(&it).send().await);
    assert!(e.is_expired_iterator_exception(), "{e:?}");
    assert_eq!(aws_sdk_kinesis::error::ProvideErrorMetadata::code(&e), Some("ExpiredIteratorException"));
    let message = aws_sdk_kinesis::error::ProvideErrorMetadata::message(&e).unwrap_or("");
    assert!(message.starts_with("Iterator expired."), "message: {message:?}");

    // A fresh iterator works again.
    let fresh = iterator(client, "exp", &shard_id(0), ShardIteratorType::TrimHorizon, None).await;
    client.get_records().shard_iterator(fresh).send().await.expect("GetRecords with a fresh iterator");
}

#[tokio::test]
async fn exceeding_the_shard_limit_is_limit_exceeded() {
    let server = TestServer::in_memory_with(&["--shard-limit", "5"]);
    let client = server.client();
    create_stream(client, "first", 3).await;

    let e = service_error(client.create_stream().stream_name("second").shard_count(3).send().await);
    assert!(e.is_limit_exceeded_exception(), "{e:?}");
    assert_error(
        &e,
        "LimitExceededException",
        "This request would exceed the shard limit for the account 000000000000 in us-east-1. Current shard count for the account: 3. \
         Limit: 5. Number of additional shards that would have resulted from this request: 3. Refer to the AWS Service Limits page \
         (http://docs.aws.amazon.com/general/latest/gr/aws_service_limits.html) for current limits and how to request higher limits.",
    );
    let listed = client.list_streams().send().await.expect("ListStreams");
    assert_eq!(listed.stream_names(), ["first"]);

    // Up to the limit is fine; then a split (one more open shard) is refused too.
    create_stream(client, "second", 2).await;
    let e = service_error(
        client
            .split_shard()
            .stream_name("first")
            .shard_to_split(shard_id(0))
            .new_starting_hash_key("1000")
            .send()
            .await,
    );
    assert!(e.is_limit_exceeded_exception(), "{e:?}");
    let limits = client.describe_limits().send().await.expect("DescribeLimits");
    assert_eq!((limits.shard_limit(), limits.open_shard_count()), (5, 5));
}

#[tokio::test]
async fn get_shard_iterator_argument_errors() {
    let server = TestServer::in_memory();
    let client = server.client();
    create_stream(client, "gsi", 2).await;
    let (shard, seq) = put(client, "gsi", "k", b"v").await;

    let e = service_error(
        client
            .get_shard_iterator()
            .stream_name("gsi")
            .shard_id(shard_id(7))
            .shard_iterator_type(ShardIteratorType::Latest)
            .send()
            .await,
    );
    assert!(e.is_resource_not_found_exception(), "{e:?}");
    assert_error(
        &e,
        "ResourceNotFoundException",
        "Shard shardId-000000000007 in stream gsi under account 000000000000 does not exist",
    );

    let e = service_error(
        client
            .get_shard_iterator()
            .stream_name("gsi")
            .shard_id(&shard)
            .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
            .send()
            .await,
    );
    assert!(e.is_invalid_argument_exception(), "{e:?}");
    assert_error(
        &e,
        "InvalidArgumentException",
        "Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and StartingSequenceNumber or (2) TRIM_HORIZON or LATEST \
         and no StartingSequenceNumber. Request specified AT_SEQUENCE_NUMBER and no StartingSequenceNumber.",
    );

    let e = service_error(
        client
            .get_shard_iterator()
            .stream_name("gsi")
            .shard_id(&shard)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .starting_sequence_number(&seq)
            .send()
            .await,
    );
    assert!(e.is_invalid_argument_exception(), "{e:?}");
    assert_error(
        &e,
        "InvalidArgumentException",
        "Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and StartingSequenceNumber or (2) TRIM_HORIZON or LATEST \
         and no StartingSequenceNumber. Request specified TRIM_HORIZON and also a StartingSequenceNumber.",
    );

    let e = service_error(
        client
            .get_shard_iterator()
            .stream_name("nope")
            .shard_id(shard_id(0))
            .shard_iterator_type(ShardIteratorType::Latest)
            .send()
            .await,
    );
    assert!(e.is_resource_not_found_exception(), "{e:?}");
}

#[tokio::test]
async fn explicit_hash_key_out_of_range_is_invalid_argument() {
    let server = TestServer::in_memory();
    let client = server.client();
    create_stream(client, "ehk", 1).await;
    let e = service_error(
        client
            .put_record()
            .stream_name("ehk")
            .partition_key("a")
            .explicit_hash_key(TWO_POW_128)
            .data(Blob::new("x"))
            .send()
            .await,
    );
    assert!(e.is_invalid_argument_exception(), "{e:?}");
    assert_error(
        &e,
        "InvalidArgumentException",
        &format!("Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified value was {TWO_POW_128}"),
    );
    // 2^128 - 1 itself is accepted.
    put_with_hash_key(client, "ehk", "a", u128::MAX, b"x").await;
}

#[tokio::test]
async fn oversized_record_is_refused() {
    let server = TestServer::in_memory();
    let client = server.client();
    create_stream(client, "big", 1).await;
    // Over the default 1 MiB record limit however the partition key is counted.
    let data = vec![7u8; 1024 * 1024 + 1];
    let e = service_error(client.put_record().stream_name("big").partition_key("k").data(Blob::new(data)).send().await);
    // The current model allows 10 MiB blobs, so the per-stream limit answers (InvalidArgument);
    // under the older 1 MiB model it was a ValidationException. Either way the write is refused.
    let code = aws_sdk_kinesis::error::ProvideErrorMetadata::code(&e);
    assert!(matches!(code, Some("InvalidArgumentException") | Some("ValidationException")), "{e:?}");
    let read = read_shard(client, "big", &shard_id(0)).await;
    assert!(read.records.is_empty(), "a refused record must not be stored");
}

#[tokio::test]
async fn retention_period_errors() {
    let server = TestServer::in_memory();
    let client = server.client();
    create_stream(client, "ret", 1).await;

    let e = service_error(
        client.increase_stream_retention_period().stream_name("ret").retention_period_hours(12).send().await,
    );
    assert!(e.is_invalid_argument_exception(), "{e:?}");
    assert_error(
        &e,
        "InvalidArgumentException",
        "Minimum allowed retention period is 24 hours. Requested retention period (12 hours) is too short.",
    );

    client
        .increase_stream_retention_period()
        .stream_name("ret")
        .retention_period_hours(48)
        .send()
        .await
        .expect("increase to 48");
    wait_active(client, "ret").await;

    let e = service_error(
        client.increase_stream_retention_period().stream_name("ret").retention_period_hours(36).send().await,
    );
    assert!(e.is_invalid_argument_exception(), "{e:?}");
    assert_error(
        &e,
        "InvalidArgumentException",
        "Requested retention period (36 hours) for stream ret can not be shorter than existing retention period (48 hours). Use DecreaseRetentionPeriod API.",
    );

    let e = service_error(
        client.decrease_stream_retention_period().stream_name("ret").retention_period_hours(72).send().await,
    );
    assert!(e.is_invalid_argument_exception(), "{e:?}");
    assert_error(
        &e,
        "InvalidArgumentException",
        "Requested retention period (72 hours) for stream ret can not be longer than existing retention period (48 hours). Use IncreaseRetentionPeriod API.",
    );

    let e = service_error(
        client.decrease_stream_retention_period().stream_name("ret").retention_period_hours(23).send().await,
    );
    assert!(e.is_invalid_argument_exception(), "{e:?}");
    assert_error(
        &e,
        "InvalidArgumentException",
        "Minimum allowed retention period is 24 hours. Requested retention period (23 hours) is too short.",
    );
}

#[tokio::test]
async fn resharding_argument_errors() {
    let server = TestServer::in_memory();
    let client = server.client();
    create_stream(client, "rs", 3).await;
    let ranges = even_split_ranges(3);

    let e = service_error(
        client
            .merge_shards()
            .stream_name("rs")
            .shard_to_merge(shard_id(0))
            .adjacent_shard_to_merge(shard_id(2))
            .send()
            .await,
    );
    assert!(e.is_invalid_argument_exception(), "{e:?}");
    assert_error(
        &e,
        "InvalidArgumentException",
        "Shards shardId-000000000000 and shardId-000000000002 in stream rs under account 000000000000 are not an adjacent pair of shards eligible for merging",
    );

    let e = service_error(
        client.split_shard().stream_name("rs").shard_to_split(shard_id(0)).new_starting_hash_key("0").send().await,
    );
    assert!(e.is_invalid_argument_exception(), "{e:?}");
    assert_error(
        &e,
        "InvalidArgumentException",
        &format!(
            "NewStartingHashKey 0 used in SplitShard() on shard shardId-000000000000 in stream rs under account 000000000000 is not both \
             greater than one plus the shard's StartingHashKey 0 and less than the shard's EndingHashKey {}.",
            ranges[0].1
        ),
    );

    let e = service_error(
        client.split_shard().stream_name("rs").shard_to_split(shard_id(9)).new_starting_hash_key("1000").send().await,
    );
    assert!(e.is_resource_not_found_exception(), "{e:?}");
    assert_error(
        &e,
        "ResourceNotFoundException",
        "Could not find shard shardId-000000000009 in stream rs under account 000000000000.",
    );

    // Nothing changed.
    assert_eq!(shards_of(client, "rs").await.len(), 3);
}

#[tokio::test]
async fn list_shards_argument_errors() {
    let server = TestServer::in_memory();
    let client = server.client();
    create_stream(client, "ls", 3).await;
    let page = client.list_shards().stream_name("ls").max_results(1).send().await.expect("ListShards");
    let token = page.next_token().expect("NextToken").to_string();

    let e = service_error(client.list_shards().stream_name("ls").next_token(token).send().await);
    assert!(e.is_invalid_argument_exception(), "{e:?}");
    assert_error(&e, "InvalidArgumentException", "NextToken and StreamName cannot be provided together.");

    let e = service_error(client.list_shards().stream_name("missing").send().await);
    assert!(e.is_resource_not_found_exception(), "{e:?}");
    assert_error(&e, "ResourceNotFoundException", "Stream missing under account 000000000000 not found.");
}
