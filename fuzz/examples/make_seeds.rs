//! Writes the seed corpora in `fuzz/seeds/` (committed; the fuzzers grow their own corpora from
//! them in `fuzz/corpus/`, which is not). Rerun after a change to the request harness's fixture
//! or input format, the iterator token format or the frame format:
//!
//! ```sh
//! cargo run --manifest-path fuzz/Cargo.toml --example make_seeds
//! ```
//!
//! Request seeds are valid requests against the fixture, one per operation and variant plus a few
//! sequences; the iterator tokens in them are real ones, signed with the harness's fixed key.
//! Each seed is run once here and its answer printed, so a seed that stopped reaching its handler
//! shows.

use std::fs;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};
use tideline_fuzz::requests::{join, Harness, STREAM, STREAM_ARN};
use tideline_proto::Codec;
use tideline_storage::fuzzing::encode_frame;

type Request = (&'static str, Value);

fn call(harness: &mut Harness, operation: &str, body: &Value) -> Value {
    let bytes = serde_json::to_vec(body).expect("json");
    let result = harness.call(operation, Codec::Json, &bytes);
    harness.finish();
    match result {
        Ok(response) => serde_json::from_slice(&response).expect("json response"),
        Err(error) => panic!("{operation} {body}: {error}"),
    }
}

fn iterator(harness: &mut Harness, shard: u32, kind: &str, extra: Value) -> String {
    let mut body = json!({"StreamName": STREAM, "ShardId": format!("shardId-{shard:012}"), "ShardIteratorType": kind});
    if let (Value::Object(body), Value::Object(extra)) = (&mut body, extra) {
        body.extend(extra);
    }
    call(harness, "GetShardIterator", &body)["ShardIterator"].as_str().expect("a token").to_string()
}

/// The same request in CBOR, as the Java SDK writes it: blobs as byte strings, timestamps as
/// integer epoch milliseconds.
fn to_cbor(key: Option<&str>, value: &Value) -> ciborium::Value {
    match (key, value) {
        (Some("Data"), Value::String(text)) => ciborium::Value::Bytes(STANDARD.decode(text).expect("base64")),
        (Some("Timestamp" | "StreamCreationTimestamp"), Value::Number(seconds)) => {
            ciborium::Value::Integer(((seconds.as_f64().unwrap_or(0.0) * 1000.0) as i64).into())
        }
        (_, Value::Null) => ciborium::Value::Null,
        (_, Value::Bool(b)) => ciborium::Value::Bool(*b),
        (_, Value::Number(n)) => match n.as_i64() {
            Some(i) => ciborium::Value::Integer(i.into()),
            None => ciborium::Value::Float(n.as_f64().unwrap_or(0.0)),
        },
        (_, Value::String(s)) => ciborium::Value::Text(s.clone()),
        (_, Value::Array(items)) => ciborium::Value::Array(items.iter().map(|item| to_cbor(key, item)).collect()),
        (_, Value::Object(map)) => ciborium::Value::Map(
            map.iter().map(|(k, v)| (ciborium::Value::Text(k.clone()), to_cbor(Some(k), v))).collect(),
        ),
    }
}

fn encode(codec: Codec, body: &Value) -> Vec<u8> {
    match codec {
        Codec::Json => serde_json::to_vec(body).expect("json"),
        Codec::Cbor => {
            let mut out = Vec::new();
            ciborium::into_writer(&to_cbor(None, body), &mut out).expect("cbor");
            out
        }
    }
}

fn request_seeds(harness: &mut Harness) -> Vec<(String, Vec<Request>)> {
    let horizon: Vec<String> = (0..5).map(|shard| iterator(harness, shard, "TRIM_HORIZON", json!({}))).collect();
    let read = call(harness, "GetRecords", &json!({"ShardIterator": horizon[1]}));
    let sequence = read["Records"][0]["SequenceNumber"].as_str().expect("a record in shard 1").to_string();
    let at_sequence = iterator(harness, 1, "AT_SEQUENCE_NUMBER", json!({"StartingSequenceNumber": sequence}));
    let latest = iterator(harness, 2, "LATEST", json!({}));
    let consumer = call(harness, "DescribeStreamConsumer", &json!({"StreamARN": STREAM_ARN, "ConsumerName": "c"}));
    let consumer_arn = consumer["ConsumerDescription"]["ConsumerARN"].as_str().expect("consumer ARN").to_string();
    let page = call(harness, "ListShards", &json!({"StreamName": STREAM, "MaxResults": 1}));
    let next_token = page["NextToken"].as_str().expect("a next token").to_string();
    let policy = json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Deny", "Principal": "*", "Action": "kinesis:Get*", "Resource": format!("{STREAM_ARN}*"),
             "Condition": {"StringEquals": {"aws:SourceVpc": "vpc-1"}}},
            {"Effect": "Deny", "Principal": {"AWS": ["arn:aws:iam::000000000000:user/fuzzer"]},
             "Action": "kinesis:PutRecord", "Resource": [STREAM_ARN]},
        ],
    })
    .to_string();

    let one = |operation: &'static str, body: Value| vec![(operation, body)];
    let mut seeds: Vec<(&str, Vec<Request>)> = vec![
        ("create", one("CreateStream", json!({"StreamName": "t", "ShardCount": 2}))),
        (
            "create-on-demand",
            one(
                "CreateStream",
                json!({"StreamName": "od", "StreamModeDetails": {"StreamMode": "ON_DEMAND"}, "Tags": {"a": "b"}}),
            ),
        ),
        ("delete", one("DeleteStream", json!({"StreamName": STREAM, "EnforceConsumerDeletion": true}))),
        (
            "describe",
            one(
                "DescribeStream",
                json!({"StreamName": STREAM, "Limit": 2, "ExclusiveStartShardId": "shardId-000000000001"}),
            ),
        ),
        ("describe-summary", one("DescribeStreamSummary", json!({"StreamARN": STREAM_ARN}))),
        ("list-streams", one("ListStreams", json!({"Limit": 1, "ExclusiveStartStreamName": "a"}))),
        ("describe-limits", one("DescribeLimits", json!({}))),
        (
            "update-mode",
            one("UpdateStreamMode", json!({"StreamARN": STREAM_ARN, "StreamModeDetails": {"StreamMode": "ON_DEMAND"}})),
        ),
        (
            "list-shards-filter",
            one("ListShards", json!({"StreamName": STREAM, "ShardFilter": {"Type": "AT_TRIM_HORIZON"}})),
        ),
        (
            "list-shards-after",
            one(
                "ListShards",
                json!({"StreamName": STREAM, "ShardFilter": {"Type": "AFTER_SHARD_ID", "ShardId": "shardId-000000000001"}}),
            ),
        ),
        (
            "list-shards-timestamp",
            one(
                "ListShards",
                json!({"StreamARN": STREAM_ARN, "ShardFilter": {"Type": "FROM_TIMESTAMP", "Timestamp": 1_700_000_000.5}}),
            ),
        ),
        ("list-shards-token", one("ListShards", json!({"NextToken": next_token, "MaxResults": 2}))),
        (
            "split",
            one(
                "SplitShard",
                json!({"StreamName": STREAM, "ShardToSplit": "shardId-000000000001",
                       "NewStartingHashKey": "170141183460469231731687303715884105728"}),
            ),
        ),
        (
            "merge",
            one(
                "MergeShards",
                json!({"StreamName": STREAM, "ShardToMerge": "shardId-000000000003", "AdjacentShardToMerge": "shardId-000000000004"}),
            ),
        ),
        (
            "update-shard-count",
            one(
                "UpdateShardCount",
                json!({"StreamName": STREAM, "TargetShardCount": 6, "ScalingType": "UNIFORM_SCALING"}),
            ),
        ),
        (
            "put-record",
            one(
                "PutRecord",
                json!({"StreamName": STREAM, "Data": "AAEC", "PartitionKey": "k", "ExplicitHashKey": "12345",
                       "SequenceNumberForOrdering": sequence}),
            ),
        ),
        (
            "put-records",
            one(
                "PutRecords",
                json!({"StreamARN": STREAM_ARN, "Records": [
                    {"Data": "aGk=", "PartitionKey": "a"},
                    {"Data": "", "PartitionKey": "b", "ExplicitHashKey": "340282366920938463463374607431768211455"},
                ]}),
            ),
        ),
        (
            "iterator-horizon",
            one(
                "GetShardIterator",
                json!({"StreamName": STREAM, "ShardId": "shardId-000000000001", "ShardIteratorType": "TRIM_HORIZON"}),
            ),
        ),
        (
            "iterator-latest",
            one(
                "GetShardIterator",
                json!({"StreamARN": STREAM_ARN, "ShardId": "shardId-000000000004", "ShardIteratorType": "LATEST"}),
            ),
        ),
        (
            "iterator-at-sequence",
            one(
                "GetShardIterator",
                json!({"StreamName": STREAM, "ShardId": "shardId-000000000001", "ShardIteratorType": "AT_SEQUENCE_NUMBER",
                       "StartingSequenceNumber": sequence}),
            ),
        ),
        (
            "iterator-after-sequence",
            one(
                "GetShardIterator",
                json!({"StreamName": STREAM, "ShardId": "shardId-000000000001", "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
                       "StartingSequenceNumber": sequence}),
            ),
        ),
        (
            "iterator-timestamp",
            one(
                "GetShardIterator",
                json!({"StreamName": STREAM, "ShardId": "shardId-000000000002", "ShardIteratorType": "AT_TIMESTAMP",
                       "Timestamp": 1_700_000_000.25}),
            ),
        ),
        ("get-records-closed", one("GetRecords", json!({"ShardIterator": horizon[0]}))),
        (
            "get-records-limit",
            one("GetRecords", json!({"ShardIterator": horizon[1], "Limit": 2, "StreamARN": STREAM_ARN})),
        ),
        ("get-records-child", one("GetRecords", json!({"ShardIterator": horizon[3]}))),
        ("get-records-at-sequence", one("GetRecords", json!({"ShardIterator": at_sequence}))),
        ("get-records-latest", one("GetRecords", json!({"ShardIterator": latest}))),
        (
            "retention-up",
            one("IncreaseStreamRetentionPeriod", json!({"StreamName": STREAM, "RetentionPeriodHours": 48})),
        ),
        (
            "retention-down",
            one("DecreaseStreamRetentionPeriod", json!({"StreamARN": STREAM_ARN, "RetentionPeriodHours": 24})),
        ),
        (
            "encryption-start",
            one(
                "StartStreamEncryption",
                json!({"StreamName": STREAM, "EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"}),
            ),
        ),
        (
            "encryption-stop",
            one(
                "StopStreamEncryption",
                json!({"StreamName": STREAM, "EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"}),
            ),
        ),
        (
            "monitoring-on",
            one(
                "EnableEnhancedMonitoring",
                json!({"StreamName": STREAM, "ShardLevelMetrics": ["IncomingBytes", "OutgoingRecords"]}),
            ),
        ),
        (
            "monitoring-off",
            one("DisableEnhancedMonitoring", json!({"StreamARN": STREAM_ARN, "ShardLevelMetrics": ["ALL"]})),
        ),
        ("policy-put", one("PutResourcePolicy", json!({"ResourceARN": STREAM_ARN, "Policy": policy}))),
        ("policy-get", one("GetResourcePolicy", json!({"ResourceARN": STREAM_ARN}))),
        ("policy-delete", one("DeleteResourcePolicy", json!({"ResourceARN": STREAM_ARN}))),
        ("tags-add", one("AddTagsToStream", json!({"StreamName": STREAM, "Tags": {"k": "v"}}))),
        ("tags-remove", one("RemoveTagsFromStream", json!({"StreamName": STREAM, "TagKeys": ["team"]}))),
        ("tags-list", one("ListTagsForStream", json!({"StreamName": STREAM, "ExclusiveStartTagKey": "a", "Limit": 1}))),
        ("tag-resource", one("TagResource", json!({"ResourceARN": STREAM_ARN, "Tags": {"x": "y"}}))),
        ("untag-resource", one("UntagResource", json!({"ResourceARN": STREAM_ARN, "TagKeys": ["env"]}))),
        ("tags-for-resource", one("ListTagsForResource", json!({"ResourceARN": STREAM_ARN}))),
        ("consumer-register", one("RegisterStreamConsumer", json!({"StreamARN": STREAM_ARN, "ConsumerName": "d"}))),
        // The consumer's ARN carries its creation time, so this one matches only the fixture it
        // was taken from; the name form keeps matching.
        ("consumer-deregister-arn", one("DeregisterStreamConsumer", json!({"ConsumerARN": consumer_arn}))),
        (
            "consumer-deregister-name",
            one("DeregisterStreamConsumer", json!({"StreamARN": STREAM_ARN, "ConsumerName": "c"})),
        ),
        ("consumer-describe", one("DescribeStreamConsumer", json!({"StreamARN": STREAM_ARN, "ConsumerName": "c"}))),
        ("consumers-list", one("ListStreamConsumers", json!({"StreamARN": STREAM_ARN, "MaxResults": 1}))),
        (
            "sequence-write-read",
            vec![
                ("PutRecord", json!({"StreamName": STREAM, "Data": "eA==", "PartitionKey": "z"})),
                ("GetRecords", json!({"ShardIterator": latest})),
            ],
        ),
        (
            "sequence-split-merge",
            vec![
                (
                    "SplitShard",
                    json!({"StreamName": STREAM, "ShardToSplit": "shardId-000000000002",
                           "NewStartingHashKey": "300000000000000000000000000000000000000"}),
                ),
                (
                    "MergeShards",
                    json!({"StreamName": STREAM, "ShardToMerge": "shardId-000000000005", "AdjacentShardToMerge": "shardId-000000000006"}),
                ),
                ("ListShards", json!({"StreamName": STREAM})),
                ("GetRecords", json!({"ShardIterator": horizon[2]})),
            ],
        ),
        (
            "sequence-policy-denies",
            vec![
                ("PutResourcePolicy", json!({"ResourceARN": STREAM_ARN, "Policy": policy})),
                ("PutRecord", json!({"StreamName": STREAM, "Data": "eA==", "PartitionKey": "z"})),
                ("GetRecords", json!({"ShardIterator": horizon[1]})),
            ],
        ),
        (
            "sequence-create-write",
            vec![
                ("CreateStream", json!({"StreamName": "u", "ShardCount": 1})),
                ("PutRecords", json!({"StreamName": "u", "Records": [{"Data": "eQ==", "PartitionKey": "p"}]})),
                ("DescribeStream", json!({"StreamName": "u"})),
                ("DeleteStream", json!({"StreamName": "u"})),
            ],
        ),
    ];
    seeds.sort_by(|a, b| a.0.cmp(b.0));
    seeds.into_iter().map(|(name, requests)| (name.to_string(), requests)).collect()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::write(dir.join(name), bytes).expect("writing a seed");
}

fn fresh_dir(root: &Path, target: &str) -> PathBuf {
    let dir = root.join(target);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("creating the seed directory");
    dir
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let mut harness = Harness::new();
    let seeds = request_seeds(&mut harness);

    for (target, codec) in [("json_request", Codec::Json), ("cbor_request", Codec::Cbor)] {
        let dir = fresh_dir(&root, target);
        for (name, requests) in &seeds {
            let bodies: Vec<(&str, Vec<u8>)> = requests.iter().map(|(op, body)| (*op, encode(codec, body))).collect();
            let input: Vec<(&str, &[u8])> = bodies.iter().map(|(op, body)| (*op, &body[..])).collect();
            let answers: Vec<String> = input
                .iter()
                .map(|(op, body)| match harness.call(op, codec, body) {
                    Ok(_) => format!("{op}: ok"),
                    Err(error) => format!("{op}: {}", error.code.as_str()),
                })
                .collect();
            harness.finish();
            println!("{target}/{name}: {}", answers.join(", "));
            write(&dir, name, &join(&input));
        }
    }

    let dir = fresh_dir(&root, "shard_iterator");
    let token = iterator(&mut harness, 1, "TRIM_HORIZON", json!({}));
    write(&dir, "token", token.as_bytes());
    let mut fields = Vec::new();
    fields.extend_from_slice(&1_700_000_000_000i64.to_le_bytes());
    fields.extend_from_slice(&1u64.to_le_bytes());
    fields.extend_from_slice(&3u32.to_le_bytes());
    fields.extend_from_slice(&42u64.to_le_bytes());
    fields.push(7);
    fields.extend_from_slice(b"orders");
    write(&dir, "position", &fields);
    fields.extend_from_slice("é".repeat(200).as_bytes());
    write(&dir, "position-long-name", &fields);

    let dir = fresh_dir(&root, "record_frame");
    let log: Vec<u8> = (0..3u64)
        .flat_map(|index| encode_frame(index, 1_700_000_000_000 + index as i64, index == 1, b"key", &[index as u8; 40]))
        .collect();
    // The mode byte (see src/frames.rs): bit 0 fixes checksums, bits 1-2 pick the scan buffer,
    // bits 3-4 the first index.
    write(&dir, "log", &[&[0u8][..], &log].concat());
    write(&dir, "log-small-buffer", &[&[2u8][..], &log].concat());
    write(&dir, "log-torn", &[&[0u8][..], &log[..log.len() - 7]].concat());
    let mut flipped = log.clone();
    flipped[40] ^= 0x10;
    write(&dir, "log-damaged-middle", &[&[0u8][..], &flipped].concat());
    let mut flags = log.clone();
    flags[24] = 0x80;
    write(&dir, "log-flags-fixed-crc", &[&[1u8][..], &flags].concat());
    let mut gap = log.clone();
    gap.extend(encode_frame(7, 1_700_000_000_009, false, b"", b"late"));
    write(&dir, "log-index-gap", &[&[0u8][..], &gap].concat());
    let high = u64::MAX - (1 << 32);
    write(&dir, "log-high-index", &[&[0b0001_1000u8][..], &encode_frame(high, 1, false, b"k", b"d")].concat());
}
