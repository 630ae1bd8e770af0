//! Control-plane operations against the real binary, checked against AWS's documented behaviour.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_kinesis::error::DisplayErrorContext;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{
    EncryptionType, MetricsName, ShardFilter, ShardFilterType, ShardIteratorType, StreamMode, StreamModeDetails,
    StreamStatus, Tag,
};
use aws_sdk_kinesis::Client;
use common::*;

fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs() as i64
}

fn on_demand() -> StreamModeDetails {
    StreamModeDetails::builder().stream_mode(StreamMode::OnDemand).build().expect("StreamModeDetails")
}

fn provisioned() -> StreamModeDetails {
    StreamModeDetails::builder().stream_mode(StreamMode::Provisioned).build().expect("StreamModeDetails")
}

fn tag_pairs(tags: &[Tag]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> =
        tags.iter().map(|t| (t.key().to_string(), t.value().unwrap_or("").to_string())).collect();
    pairs.sort();
    pairs
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn metric_names(metrics: &[MetricsName]) -> BTreeSet<String> {
    metrics.iter().map(|m| m.as_str().to_string()).collect()
}

fn names(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

async fn summary(client: &Client, name: &str) -> aws_sdk_kinesis::types::StreamDescriptionSummary {
    client
        .describe_stream_summary()
        .stream_name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("DescribeStreamSummary: {}", DisplayErrorContext(&e)))
        .stream_description_summary()
        .expect("StreamDescriptionSummary")
        .clone()
}

#[tokio::test]
async fn create_stream_splits_the_hash_key_space_evenly() {
    let server = TestServer::in_memory();
    let client = server.client();
    let name = unique_name("create");
    let before = now_secs();
    create_stream(client, &name, 3).await;

    let out = client.describe_stream().stream_name(&name).send().await.expect("DescribeStream");
    let d = out.stream_description().expect("StreamDescription");
    assert_eq!(d.stream_name(), name);
    assert_eq!(d.stream_arn(), format!("arn:aws:kinesis:us-east-1:000000000000:stream/{name}"));
    assert_eq!(d.stream_status(), &StreamStatus::Active);
    assert_eq!(d.retention_period_hours(), 24);
    assert!(!d.has_more_shards());
    assert_eq!(d.encryption_type(), Some(&EncryptionType::None));
    assert_eq!(d.stream_mode_details().map(|m| m.stream_mode()), Some(&StreamMode::Provisioned));
    assert!(
        d.enhanced_monitoring().iter().all(|m| m.shard_level_metrics().is_empty()),
        "no metrics enabled on a new stream"
    );
    let created = d.stream_creation_timestamp().secs();
    assert!(created >= before - 60 && created <= now_secs() + 60, "StreamCreationTimestamp {created} is not now");

    assert_eq!(shard_ids(d.shards()), vec![shard_id(0), shard_id(1), shard_id(2)]);
    // floor(i * 2^128 / 3), as AWS computes it.
    let literal = [
        ("0", "113427455640312821154458202477256070484"),
        ("113427455640312821154458202477256070485", "226854911280625642308916404954512140969"),
        ("226854911280625642308916404954512140970", "340282366920938463463374607431768211455"),
    ];
    for ((shard, expected), (start, end)) in d.shards().iter().zip(even_split_ranges(3)).zip(literal) {
        let range = shard.hash_key_range().expect("HashKeyRange");
        assert_eq!(range.starting_hash_key(), start);
        assert_eq!(range.ending_hash_key(), end);
        assert_eq!(range_of(shard), expected);
        assert_eq!(shard.parent_shard_id(), None);
        assert_eq!(shard.adjacent_parent_shard_id(), None);
        let seqs = shard.sequence_number_range().expect("SequenceNumberRange");
        assert_sequence_number(seqs.starting_sequence_number());
        assert_eq!(seqs.ending_sequence_number(), None, "a new shard is open");
    }
}

#[tokio::test]
async fn create_stream_on_demand_gets_four_even_shards() {
    let server = TestServer::in_memory();
    let client = server.client();
    let name = unique_name("ondemand");
    client
        .create_stream()
        .stream_name(&name)
        .stream_mode_details(on_demand())
        .send()
        .await
        .expect("CreateStream ON_DEMAND");
    wait_active(client, &name).await;

    let shards = shards_of(client, &name).await;
    assert_eq!(shard_ids(&shards), (0..4).map(shard_id).collect::<Vec<_>>());
    let ranges: Vec<(u128, u128)> = shards.iter().map(range_of).collect();
    assert_eq!(ranges, even_split_ranges(4));
    assert_eq!(ranges[1].0, 1u128 << 126);
    assert_eq!(ranges[2].0, 1u128 << 127);
    assert_eq!(ranges[3].0, 3u128 << 126);
    assert_eq!(ranges[3].1, u128::MAX);

    let s = summary(client, &name).await;
    assert_eq!(s.stream_mode_details().map(|m| m.stream_mode()), Some(&StreamMode::OnDemand));
    assert_eq!(s.open_shard_count(), 4);
}

#[tokio::test]
async fn describe_stream_paginates_with_limit_and_exclusive_start_shard_id() {
    let server = TestServer::in_memory();
    let client = server.client();
    let name = unique_name("paged");
    create_stream(client, &name, 5).await;

    let page = |start: Option<u32>| {
        let mut request = client.describe_stream().stream_name(&name).limit(2);
        if let Some(start) = start {
            request = request.exclusive_start_shard_id(shard_id(start));
        }
        request.send()
    };
    let first = page(None).await.expect("page 1");
    let first = first.stream_description().expect("StreamDescription");
    assert_eq!(shard_ids(first.shards()), vec![shard_id(0), shard_id(1)]);
    assert!(first.has_more_shards());

    let second = page(Some(1)).await.expect("page 2");
    let second = second.stream_description().expect("StreamDescription");
    assert_eq!(shard_ids(second.shards()), vec![shard_id(2), shard_id(3)]);
    assert!(second.has_more_shards());

    let third = page(Some(3)).await.expect("page 3");
    let third = third.stream_description().expect("StreamDescription");
    assert_eq!(shard_ids(third.shards()), vec![shard_id(4)]);
    assert!(!third.has_more_shards());

    // Without a limit every shard fits in one page.
    let all = client.describe_stream().stream_name(&name).send().await.expect("DescribeStream");
    let all = all.stream_description().expect("StreamDescription");
    assert_eq!(all.shards().len(), 5);
    assert!(!all.has_more_shards());
}

#[tokio::test]
async fn describe_stream_summary_reports_counts_and_arn() {
    let server = TestServer::in_memory();
    let client = server.client();
    let name = unique_name("summary");
    create_stream(client, &name, 2).await;

    let s = summary(client, &name).await;
    assert_eq!(s.stream_name(), name);
    assert_eq!(s.stream_arn(), format!("arn:aws:kinesis:us-east-1:000000000000:stream/{name}"));
    assert_eq!(s.stream_status(), &StreamStatus::Active);
    assert_eq!(s.open_shard_count(), 2);
    assert_eq!(s.retention_period_hours(), 24);
    assert_eq!(s.encryption_type(), Some(&EncryptionType::None));
    assert_eq!(s.stream_mode_details().map(|m| m.stream_mode()), Some(&StreamMode::Provisioned));
    let created = s.stream_creation_timestamp().secs();
    assert!((created - now_secs()).abs() < 60, "StreamCreationTimestamp {created} is not now");
}

#[tokio::test]
async fn list_streams_paginates_in_name_order() {
    let server = TestServer::in_memory();
    let client = server.client();
    // Created out of order: AWS lists stream names sorted.
    for name in ["ls-c", "ls-a", "ls-e", "ls-b", "ls-d"] {
        create_stream(client, name, 1).await;
    }

    let first = client.list_streams().limit(2).send().await.expect("ListStreams page 1");
    assert_eq!(first.stream_names(), ["ls-a", "ls-b"]);
    assert!(first.has_more_streams());
    let summaries: Vec<(&str, &str)> =
        first.stream_summaries().iter().map(|s| (s.stream_name(), s.stream_arn())).collect();
    assert_eq!(summaries, vec![("ls-a", stream_arn("ls-a").as_str()), ("ls-b", stream_arn("ls-b").as_str())]);
    for s in first.stream_summaries() {
        assert_eq!(s.stream_status(), &StreamStatus::Active);
        assert_eq!(s.stream_mode_details().map(|m| m.stream_mode()), Some(&StreamMode::Provisioned));
        assert!(s.stream_creation_timestamp().is_some());
    }
    let token = first.next_token().expect("NextToken on a page with more streams").to_string();

    let second = client.list_streams().limit(2).next_token(token).send().await.expect("ListStreams page 2");
    assert_eq!(second.stream_names(), ["ls-c", "ls-d"]);
    assert!(second.has_more_streams());
    let token = second.next_token().expect("NextToken").to_string();

    let third = client.list_streams().limit(2).next_token(token).send().await.expect("ListStreams page 3");
    assert_eq!(third.stream_names(), ["ls-e"]);
    assert!(!third.has_more_streams());
    assert_eq!(third.next_token(), None);
    assert_eq!(third.stream_summaries().len(), 1);

    let after_b =
        client.list_streams().exclusive_start_stream_name("ls-b").send().await.expect("ListStreams after ls-b");
    assert_eq!(after_b.stream_names(), ["ls-c", "ls-d", "ls-e"]);
    assert!(!after_b.has_more_streams());

    let all = client.list_streams().send().await.expect("ListStreams");
    assert_eq!(all.stream_names(), ["ls-a", "ls-b", "ls-c", "ls-d", "ls-e"]);
}

#[tokio::test]
async fn list_shards_paginates_with_max_results_and_next_token() {
    let server = TestServer::in_memory();
    let client = server.client();
    let name = unique_name("listshards");
    create_stream(client, &name, 5).await;

    let first = client.list_shards().stream_name(&name).max_results(2).send().await.expect("ListShards page 1");
    assert_eq!(shard_ids(first.shards()), vec![shard_id(0), shard_id(1)]);
    let token = first.next_token().expect("NextToken").to_string();

    // With a NextToken the stream name must be left out.
    let second = client.list_shards().next_token(token).max_results(2).send().await.expect("ListShards page 2");
    assert_eq!(shard_ids(second.shards()), vec![shard_id(2), shard_id(3)]);
    let token = second.next_token().expect("NextToken").to_string();

    let third = client.list_shards().next_token(token).max_results(2).send().await.expect("ListShards page 3");
    assert_eq!(shard_ids(third.shards()), vec![shard_id(4)]);
    assert_eq!(third.next_token(), None);

    let after = client
        .list_shards()
        .stream_name(&name)
        .exclusive_start_shard_id(shard_id(2))
        .send()
        .await
        .expect("ListShards after 2");
    assert_eq!(shard_ids(after.shards()), vec![shard_id(3), shard_id(4)]);

    let all = client.list_shards().stream_name(&name).send().await.expect("ListShards");
    let ranges: Vec<(u128, u128)> = all.shards().iter().map(range_of).collect();
    assert_eq!(ranges, even_split_ranges(5));
    assert_eq!(all.next_token(), None);
}

#[tokio::test]
async fn list_shards_applies_shard_filters() {
    let server = TestServer::in_memory();
    let client = server.client();
    let name = unique_name("filter");
    create_stream(client, &name, 2).await;
    // Split shard 0 ([0, 2^127-1]) at 2^126: shard 0 closes, children 2 and 3 open.
    client
        .split_shard()
        .stream_name(&name)
        .shard_to_split(shard_id(0))
        .new_starting_hash_key((1u128 << 126).to_string())
        .send()
        .await
        .expect("SplitShard");
    wait_active(client, &name).await;

    let filtered = |kind: ShardFilterType, after: Option<String>| {
        let filter = ShardFilter::builder().r#type(kind).set_shard_id(after).build().expect("ShardFilter");
        client.list_shards().stream_name(&name).shard_filter(filter).send()
    };
    let at_latest = filtered(ShardFilterType::AtLatest, None).await.expect("AT_LATEST");
    assert_eq!(shard_ids(at_latest.shards()), vec![shard_id(1), shard_id(2), shard_id(3)]);
    let from_trim = filtered(ShardFilterType::FromTrimHorizon, None).await.expect("FROM_TRIM_HORIZON");
    assert_eq!(shard_ids(from_trim.shards()), vec![shard_id(0), shard_id(1), shard_id(2), shard_id(3)]);
    let at_trim = filtered(ShardFilterType::AtTrimHorizon, None).await.expect("AT_TRIM_HORIZON");
    assert_eq!(shard_ids(at_trim.shards()), vec![shard_id(0), shard_id(1)]);
    let after = filtered(ShardFilterType::AfterShardId, Some(shard_id(1))).await.expect("AFTER_SHARD_ID");
    assert_eq!(shard_ids(after.shards()), vec![shard_id(2), shard_id(3)]);
}

#[tokio::test]
async fn delete_stream_then_resource_not_found() {
    let server = TestServer::in_memory();
    let client = server.client();
    let name = unique_name("delete");
    let keep = unique_name("keep");
    create_stream(client, &name, 2).await;
    create_stream(client, &keep, 1).await;

    client.delete_stream().stream_name(&name).send().await.expect("DeleteStream");
    // Deletion is asynchronous on AWS (DELETING first): poll until the stream is gone.
    let deadline = Instant::now() + Duration::from_secs(10);
    let error = loop {
        match client.describe_stream().stream_name(&name).send().await {
            Ok(out) => {
                let status = out.stream_description().map(|d| d.stream_status().clone());
                assert_eq!(status, Some(StreamStatus::Deleting), "a deleted stream can only be seen as DELETING");
                assert!(Instant::now() < deadline, "stream still present 10 s after DeleteStream");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => break e.into_service_error(),
        }
    };
    assert!(error.is_resource_not_found_exception(), "{error:?}");
    assert_error(&error, "ResourceNotFoundException", &format!("Stream {name} under account 000000000000 not found."));

    let listed = client.list_streams().send().await.expect("ListStreams");
    assert_eq!(listed.stream_names(), [keep.as_str()]);

    // The name can be reused once the stream is gone.
    create_stream(client, &name, 1).await;
    assert_eq!(shards_of(client, &name).await.len(), 1);
}

#[tokio::test]
async fn retention_period_increase_and_decrease() {
    let server = TestServer::in_memory();
    let client = server.client();
    let name = unique_name("retention");
    create_stream(client, &name, 1).await;
    assert_eq!(summary(client, &name).await.retention_period_hours(), 24);

    client
        .increase_stream_retention_period()
        .stream_name(&name)
        .retention_period_hours(48)
        .send()
        .await
        .expect("increase to 48");
    wait_active(client, &name).await;
    assert_eq!(summary(client, &name).await.retention_period_hours(), 48);

    client
        .increase_stream_retention_period()
        .stream_name(&name)
        .retention_period_hours(8760)
        .send()
        .await
        .expect("increase to 8760");
    wait_active(client, &name).await;
    assert_eq!(summary(client, &name).await.retention_period_hours(), 8760);
    let described = client.describe_stream().stream_name(&name).send().await.expect("DescribeStream");
    assert_eq!(described.stream_description().map(|d| d.retention_period_hours()), Some(8760));

    client
        .decrease_stream_retention_period()
        .stream_name(&name)
        .retention_period_hours(24)
        .send()
        .await
        .expect("decrease to 24");
    wait_active(client, &name).await;
    assert_eq!(summary(client, &name).await.retention_period_hours(), 24);
}

#[tokio::test]
async fn stream_tags_add_list_remove() {
    let server = TestServer::in_memory();
    let client = server.client();
    let name = unique_name("tags");
    client
        .create_stream()
        .stream_name(&name)
        .shard_count(1)
        .tags("origin", "create")
        .send()
        .await
        .expect("CreateStream with tags");
    wait_active(client, &name).await;

    client
        .add_tags_to_stream()
        .stream_name(&name)
        .tags("env", "test")
        .tags("team", "data")
        .send()
        .await
        .expect("AddTagsToStream");
    let listed = client.list_tags_for_stream().stream_name(&name).send().await.expect("ListTagsForStream");
    assert_eq!(tag_pairs(listed.tags()), pairs(&[("env", "test"), ("origin", "create"), ("team", "data")]));
    assert!(!listed.has_more_tags());

    // Tags are listed in key order, paged with Limit and ExclusiveStartTagKey.
    let first =
        client.list_tags_for_stream().stream_name(&name).limit(1).send().await.expect("ListTagsForStream Limit 1");
    assert_eq!(tag_pairs(first.tags()), pairs(&[("env", "test")]));
    assert!(first.has_more_tags());
    let rest = client
        .list_tags_for_stream()
        .stream_name(&name)
        .exclusive_start_tag_key("env")
        .send()
        .await
        .expect("ListTagsForStream after env");
    assert_eq!(tag_pairs(rest.tags()), pairs(&[("origin", "create"), ("team", "data")]));
    assert!(!rest.has_more_tags());

    // Adding an existing key overwrites its value.
    client.add_tags_to_stream().stream_name(&name).tags("env", "prod").send().await.expect("AddTagsToStream overwrite");
    client
        .remove_tags_from_stream()
        .stream_name(&name)
        .tag_keys("origin")
        .tag_keys("missing-key")
        .send()
        .await
        .expect("RemoveTagsFromStream");
    let listed = client.list_tags_for_stream().stream_name(&name).send().await.expect("ListTagsForStream");
    assert_eq!(tag_pairs(listed.tags()), pairs(&[("env", "prod"), ("team", "data")]));
}

#[tokio::test]
async fn resource_tags_by_arn() {
    let server = TestServer::in_memory();
    let client = server.client();
    let name = unique_name("rtags");
    create_stream(client, &name, 1).await;
    let arn = stream_arn(&name);

    client.tag_resource().resource_arn(&arn).tags("a", "1").tags("b", "2").send().await.expect("TagResource");
    let listed = client.list_tags_for_resource().resource_arn(&arn).send().await.expect("ListTagsForResource");
    assert_eq!(tag_pairs(listed.tags()), pairs(&[("a", "1"), ("b", "2")]));

    client.untag_resource().resource_arn(&arn).tag_keys("a").send().await.expect("UntagResource");
    let listed = client.list_tags_for_resource().resource_arn(&arn).send().await.expect("ListTagsForResource");
    assert_eq!(tag_pairs(listed.tags()), pairs(&[("b", "2")]));

    // Same tag set seen through the stream-named API.
    let by_name = client.list_tags_for_stream().stream_name(&name).send().await.expect("ListTagsForStream");
    assert_eq!(tag_pairs(by_name.tags()), pairs(&[("b", "2")]));
}

#[tokio::test]
async fn describe_limits_counts_open_shards() {
    let server = TestServer::in_memory();
    let client = server.client();
    let limits = client.describe_limits().send().await.expect("DescribeLimits");
    assert_eq!(limits.shard_limit(), 500);
    assert_eq!(limits.open_shard_count(), 0);
    assert_eq!(limits.on_demand_stream_count(), 0);

    create_stream(client, &unique_name("lim"), 3).await;
    create_stream(client, &unique_name("lim"), 2).await;
    let limits = client.describe_limits().send().await.expect("DescribeLimits");
    assert_eq!(limits.open_shard_count(), 5);

    let od = unique_name("lim-od");
    client
        .create_stream()
        .stream_name(&od)
        .stream_mode_details(on_demand())
        .send()
        .await
        .expect("CreateStream ON_DEMAND");
    wait_active(client, &od).await;
    let limits = client.describe_limits().send().await.expect("DescribeLimits");
    assert_eq!(limits.on_demand_stream_count(), 1);
    assert_eq!(limits.shard_limit(), 500);

    let limited = TestServer::in_memory_with(&["--shard-limit", "42"]);
    let limits = limited.client().describe_limits().send().await.expect("DescribeLimits");
    assert_eq!(limits.shard_limit(), 42);
    assert_eq!(limits.open_shard_count(), 0);
}

#[tokio::test]
async fn update_stream_mode_switches_capacity_mode() {
    let server = TestServer::in_memory();
    let client = server.client();
    let name = unique_name("mode");
    create_stream(client, &name, 2).await;
    let arn = stream_arn(&name);

    client
        .update_stream_mode()
        .stream_arn(&arn)
        .stream_mode_details(on_demand())
        .send()
        .await
        .expect("UpdateStreamMode ON_DEMAND");
    wait_active(client, &name).await;
    let s = summary(client, &name).await;
    assert_eq!(s.stream_mode_details().map(|m| m.stream_mode()), Some(&StreamMode::OnDemand));

    client
        .update_stream_mode()
        .stream_arn(&arn)
        .stream_mode_details(provisioned())
        .send()
        .await
        .expect("UpdateStreamMode PROVISIONED");
    wait_active(client, &name).await;
    let s = summary(client, &name).await;
    assert_eq!(s.stream_mode_details().map(|m| m.stream_mode()), Some(&StreamMode::Provisioned));
}

#[tokio::test]
async fn stream_encryption_start_and_stop() {
    let server = TestServer::in_memory();
    let client = server.client();
    let name = unique_name("kms");
    create_stream(client, &name, 1).await;
    const KEY: &str = "alias/aws/kinesis";

    client
        .start_stream_encryption()
        .stream_name(&name)
        .encryption_type(EncryptionType::Kms)
        .key_id(KEY)
        .send()
        .await
        .expect("StartStreamEncryption");
    wait_active(client, &name).await;
    let s = summary(client, &name).await;
    assert_eq!(s.encryption_type(), Some(&EncryptionType::Kms));
    assert_eq!(s.key_id(), Some(KEY));
    let d = client.describe_stream().stream_name(&name).send().await.expect("DescribeStream");
    let d = d.stream_description().expect("StreamDescription");
    assert_eq!(d.encryption_type(), Some(&EncryptionType::Kms));
    assert_eq!(d.key_id(), Some(KEY));

    // Records written to an encrypted stream report it.
    let put = client
        .put_record()
        .stream_name(&name)
        .partition_key("k")
        .data(Blob::new("secret"))
        .send()
        .await
        .expect("PutRecord");
    assert_eq!(put.encryption_type(), Some(&EncryptionType::Kms));
    let read = read_shard(client, &name, &shard_id(0)).await;
    assert_eq!(read.records.len(), 1);
    assert_eq!(read.records[0].data().as_ref(), b"secret");
    assert_eq!(read.records[0].encryption_type(), Some(&EncryptionType::Kms));

    client
        .stop_stream_encryption()
        .stream_name(&name)
        .encryption_type(EncryptionType::Kms)
        .key_id(KEY)
        .send()
        .await
        .expect("StopStreamEncryption");
    wait_active(client, &name).await;
    let s = summary(client, &name).await;
    assert_eq!(s.encryption_type(), Some(&EncryptionType::None));
}

#[tokio::test]
async fn enhanced_monitoring_enable_and_disable() {
    let server = TestServer::in_memory();
    let client = server.client();
    let name = unique_name("metrics");
    create_stream(client, &name, 1).await;

    let enabled = client
        .enable_enhanced_monitoring()
        .stream_name(&name)
        .shard_level_metrics(MetricsName::IncomingBytes)
        .shard_level_metrics(MetricsName::OutgoingBytes)
        .send()
        .await
        .expect("EnableEnhancedMonitoring");
    assert_eq!(enabled.stream_name(), Some(name.as_str()));
    assert!(enabled.current_shard_level_metrics().is_empty(), "{:?}", enabled.current_shard_level_metrics());
    assert_eq!(metric_names(enabled.desired_shard_level_metrics()), names(&["IncomingBytes", "OutgoingBytes"]));
    wait_active(client, &name).await;

    let s = summary(client, &name).await;
    let shown: BTreeSet<String> =
        s.enhanced_monitoring().iter().flat_map(|m| metric_names(m.shard_level_metrics())).collect();
    assert_eq!(shown, names(&["IncomingBytes", "OutgoingBytes"]));

    let disabled = client
        .disable_enhanced_monitoring()
        .stream_name(&name)
        .shard_level_metrics(MetricsName::IncomingBytes)
        .send()
        .await
        .expect("DisableEnhancedMonitoring");
    assert_eq!(metric_names(disabled.current_shard_level_metrics()), names(&["IncomingBytes", "OutgoingBytes"]));
    assert_eq!(metric_names(disabled.desired_shard_level_metrics()), names(&["OutgoingBytes"]));
    wait_active(client, &name).await;

    // ALL expands to the seven individual metrics.
    let all = client
        .enable_enhanced_monitoring()
        .stream_name(&name)
        .shard_level_metrics(MetricsName::All)
        .send()
        .await
        .expect("EnableEnhancedMonitoring ALL");
    assert_eq!(metric_names(all.current_shard_level_metrics()), names(&["OutgoingBytes"]));
    assert_eq!(
        metric_names(all.desired_shard_level_metrics()),
        names(&[
            "IncomingBytes",
            "IncomingRecords",
            "IteratorAgeMilliseconds",
            "OutgoingBytes",
            "OutgoingRecords",
            "ReadProvisionedThroughputExceeded",
            "WriteProvisionedThroughputExceeded",
        ])
    );
    wait_active(client, &name).await;
    let d = client.describe_stream().stream_name(&name).send().await.expect("DescribeStream");
    let shown: BTreeSet<String> = d
        .stream_description()
        .expect("StreamDescription")
        .enhanced_monitoring()
        .iter()
        .flat_map(|m| metric_names(m.shard_level_metrics()))
        .collect();
    assert_eq!(shown.len(), 7, "{shown:?}");
}

#[tokio::test]
async fn resource_policy_put_get_delete() {
    let server = TestServer::in_memory();
    let client = server.client();
    let name = unique_name("policy");
    create_stream(client, &name, 1).await;
    let arn = stream_arn(&name);
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"AllowRead","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::000000000000:root"}},"Action":["kinesis:GetRecords","kinesis:GetShardIterator","kinesis:DescribeStreamSummary"],"Resource":"{arn}"}}]}}"#
    );
    let compact = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();

    client.put_resource_policy().resource_arn(&arn).policy(&policy).send().await.expect("PutResourcePolicy");
    let got = client.get_resource_policy().resource_arn(&arn).send().await.expect("GetResourcePolicy");
    assert_eq!(compact(got.policy()), compact(&policy));

    client.delete_resource_policy().resource_arn(&arn).send().await.expect("DeleteResourcePolicy");
    match client.get_resource_policy().resource_arn(&arn).send().await {
        Ok(out) => assert!(
            !out.policy().contains("AllowRead"),
            "policy still returned after DeleteResourcePolicy: {}",
            out.policy()
        ),
        Err(e) => {
            let e = e.into_service_error();
            assert!(e.is_resource_not_found_exception(), "unexpected error after DeleteResourcePolicy: {e:?}");
        }
    }
}

#[tokio::test]
async fn operations_address_streams_by_arn() {
    let server = TestServer::in_memory();
    let client = server.client();
    let name = unique_name("byarn");
    let arn = stream_arn(&name);
    create_stream(client, &name, 2).await;

    let s = client.describe_stream_summary().stream_arn(&arn).send().await.expect("DescribeStreamSummary by ARN");
    assert_eq!(s.stream_description_summary().map(|s| s.stream_name()), Some(name.as_str()));
    let d = client.describe_stream().stream_arn(&arn).send().await.expect("DescribeStream by ARN");
    assert_eq!(d.stream_description().map(|d| d.shards().len()), Some(2));
    let listed = client.list_shards().stream_arn(&arn).send().await.expect("ListShards by ARN");
    assert_eq!(shard_ids(listed.shards()), vec![shard_id(0), shard_id(1)]);

    let put = client
        .put_record()
        .stream_arn(&arn)
        .partition_key("pk")
        .data(Blob::new("by-arn"))
        .send()
        .await
        .expect("PutRecord by ARN");
    let it = client
        .get_shard_iterator()
        .stream_arn(&arn)
        .shard_id(put.shard_id())
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .expect("GetShardIterator by ARN");
    let got = client
        .get_records()
        .stream_arn(&arn)
        .shard_iterator(it.shard_iterator().expect("ShardIterator"))
        .send()
        .await
        .expect("GetRecords by ARN");
    assert_eq!(got.records().len(), 1);
    assert_eq!(got.records()[0].sequence_number(), put.sequence_number());
    assert_eq!(got.records()[0].data().as_ref(), b"by-arn");

    client.add_tags_to_stream().stream_arn(&arn).tags("k", "v").send().await.expect("AddTagsToStream by ARN");
    let tags = client.list_tags_for_stream().stream_arn(&arn).send().await.expect("ListTagsForStream by ARN");
    assert_eq!(tag_pairs(tags.tags()), pairs(&[("k", "v")]));
    client
        .increase_stream_retention_period()
        .stream_arn(&arn)
        .retention_period_hours(36)
        .send()
        .await
        .expect("Increase by ARN");
    wait_active(client, &name).await;
    assert_eq!(summary(client, &name).await.retention_period_hours(), 36);

    client.delete_stream().stream_arn(&arn).send().await.expect("DeleteStream by ARN");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let listed = client.list_streams().send().await.expect("ListStreams");
        if listed.stream_names().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "stream not deleted by ARN");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
