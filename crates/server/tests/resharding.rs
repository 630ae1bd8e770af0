//! SplitShard, MergeShards and UpdateShardCount: the shard tree, hash ranges, and reading across a
//! reshard.

mod common;

use std::cmp::Ordering;

use aws_sdk_kinesis::types::{ChildShard, ScalingType, Shard, ShardIteratorType};
use aws_sdk_kinesis::Client;
use common::*;

const HALF: u128 = 1u128 << 127;

async fn split(client: &Client, name: &str, shard: u32, new_start: u128) {
    client
        .split_shard()
        .stream_name(name)
        .shard_to_split(shard_id(shard))
        .new_starting_hash_key(new_start.to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("SplitShard: {}", aws_sdk_kinesis::error::DisplayErrorContext(&e)));
    wait_active(client, name).await;
}

async fn merge(client: &Client, name: &str, shard: u32, adjacent: u32) {
    client
        .merge_shards()
        .stream_name(name)
        .shard_to_merge(shard_id(shard))
        .adjacent_shard_to_merge(shard_id(adjacent))
        .send()
        .await
        .unwrap_or_else(|e| panic!("MergeShards: {}", aws_sdk_kinesis::error::DisplayErrorContext(&e)));
    wait_active(client, name).await;
}

fn find<'a>(shards: &'a [Shard], id: &str) -> &'a Shard {
    shards
        .iter()
        .find(|s| s.shard_id() == id)
        .unwrap_or_else(|| panic!("shard {id} missing from {:?}", shard_ids(shards)))
}

fn ending_seq(shard: &Shard) -> &str {
    shard
        .sequence_number_range()
        .and_then(|r| r.ending_sequence_number())
        .unwrap_or_else(|| panic!("closed shard {} must have an EndingSequenceNumber", shard.shard_id()))
}

fn starting_seq(shard: &Shard) -> &str {
    shard.sequence_number_range().expect("SequenceNumberRange").starting_sequence_number()
}

fn child_summary(children: &[ChildShard]) -> Vec<(String, Vec<String>, (u128, u128))> {
    let mut out: Vec<_> = children
        .iter()
        .map(|c| {
            let mut parents = c.parent_shards().to_vec();
            parents.sort();
            let range = c.hash_key_range().expect("ChildShard HashKeyRange");
            (
                c.shard_id().to_string(),
                parents,
                (parse_hash(range.starting_hash_key()), parse_hash(range.ending_hash_key())),
            )
        })
        .collect();
    out.sort();
    out
}

fn data_strings(read: &ShardRead) -> Vec<String> {
    read.records.iter().map(|r| String::from_utf8_lossy(r.data().as_ref()).into_owned()).collect()
}

#[tokio::test]
async fn split_shard_creates_two_children() {
    let server = TestServer::in_memory();
    let client = server.client();
    let name = unique_name("split");
    create_stream(client, &name, 2).await;
    let new_start = 1u128 << 125;
    split(client, &name, 0, new_start).await;

    let shards = shards_of(client, &name).await;
    // Child ids continue the stream's numbering.
    assert_eq!(shard_ids(&shards), (0..4).map(shard_id).collect::<Vec<_>>());

    let parent = find(&shards, &shard_id(0));
    assert_eq!(range_of(parent), (0, HALF - 1), "the parent keeps its range");
    let parent_end = ending_seq(parent);
    assert_sequence_number(parent_end);

    let lower = find(&shards, &shard_id(2));
    let upper = find(&shards, &shard_id(3));
    assert_eq!(range_of(lower), (0, new_start - 1));
    assert_eq!(range_of(upper), (new_start, HALF - 1));
    for child in [lower, upper] {
        assert_eq!(child.parent_shard_id(), Some(shard_id(0).as_str()));
        assert_eq!(child.adjacent_parent_shard_id(), None);
        assert!(is_open(child));
        assert_sequence_number(starting_seq(child));
        assert_eq!(seq_cmp(parent_end, starting_seq(child)), Ordering::Less, "children start after the parent ends");
    }

    let untouched = find(&shards, &shard_id(1));
    assert!(is_open(untouched));
    assert_eq!(range_of(untouched), (HALF, u128::MAX));
    assert_eq!(untouched.parent_shard_id(), None);

    assert_open_ranges_cover_key_space(&shards);
    let summary = client.describe_stream_summary().stream_name(&name).send().await.expect("DescribeStreamSummary");
    assert_eq!(summary.stream_description_summary().map(|s| s.open_shard_count()), Some(3));
}

#[tokio::test]
async fn merge_shards_creates_child_with_adjacent_parent() {
    let server = TestServer::in_memory();
    let client = server.client();
    let name = unique_name("merge");
    create_stream(client, &name, 3).await;
    let before = even_split_ranges(3);
    merge(client, &name, 1, 2).await;

    let shards = shards_of(client, &name).await;
    assert_eq!(shard_ids(&shards), (0..4).map(shard_id).collect::<Vec<_>>());
    let child = find(&shards, &shard_id(3));
    assert_eq!(child.parent_shard_id(), Some(shard_id(1).as_str()));
    assert_eq!(child.adjacent_parent_shard_id(), Some(shard_id(2).as_str()));
    assert_eq!(range_of(child), (before[1].0, u128::MAX));
    assert!(is_open(child));
    for parent in [1, 2] {
        let parent = find(&shards, &shard_id(parent));
        assert_sequence_number(ending_seq(parent));
        assert_eq!(seq_cmp(ending_seq(parent), starting_seq(child)), Ordering::Less);
    }
    assert!(is_open(find(&shards, &shard_id(0))));
    assert_open_ranges_cover_key_space(&shards);
    assert_eq!(shards.iter().filter(|s| is_open(s)).count(), 2);
}

#[tokio::test]
async fn update_shard_count_uniform_scaling_up_and_down() {
    let server = TestServer::in_memory();
    let client = server.client();
    let name = unique_name("scale");
    create_stream(client, &name, 2).await;

    for (current, target) in [(2, 4), (4, 3)] {
        let out = client
            .update_shard_count()
            .stream_name(&name)
            .target_shard_count(target)
            .scaling_type(ScalingType::UniformScaling)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!("UpdateShardCount {current} -> {target}: {}", aws_sdk_kinesis::error::DisplayErrorContext(&e))
            });
        assert_eq!(out.stream_name(), Some(name.as_str()));
        assert_eq!(out.current_shard_count(), Some(current));
        assert_eq!(out.target_shard_count(), Some(target));
        wait_active(client, &name).await;

        let shards = shards_of(client, &name).await;
        let open = shards.iter().filter(|s| is_open(s)).count();
        assert_eq!(open, target as usize, "open shards after scaling to {target}: {:?}", shard_ids(&shards));
        assert_open_ranges_cover_key_space(&shards);
        // Every closed shard is closed for good: it has an ending sequence number.
        for shard in shards.iter().filter(|s| !is_open(s)) {
            assert_sequence_number(ending_seq(shard));
        }
        let summary = client.describe_stream_summary().stream_name(&name).send().await.expect("DescribeStreamSummary");
        assert_eq!(summary.stream_description_summary().map(|s| s.open_shard_count()), Some(target));

        // Writes land on open shards only, on the one owning the key.
        for i in 0..20 {
            let key = format!("scaled-{target}-{i}");
            let (shard, _) = put(client, &name, &key, b"x").await;
            assert_eq!(shard, owner_of(&shards, partition_hash(&key)));
        }
    }
    let limits = client.describe_limits().send().await.expect("DescribeLimits");
    assert_eq!(limits.open_shard_count(), 3);
}

#[tokio::test]
async fn records_before_and_after_a_split_stay_readable_in_order() {
    let server = TestServer::in_memory();
    let client = server.client();
    let name = unique_name("splitread");
    create_stream(client, &name, 1).await;

    let mut before = Vec::new();
    for i in 0..6 {
        let (shard, seq) = put(client, &name, &format!("k{i}"), format!("before-{i}").as_bytes()).await;
        assert_eq!(shard, shard_id(0));
        before.push((seq, format!("before-{i}")));
    }

    split(client, &name, 0, HALF).await;
    let shards = shards_of(client, &name).await;
    assert_eq!(shard_ids(&shards), vec![shard_id(0), shard_id(1), shard_id(2)]);

    let mut lower = Vec::new();
    let mut upper = Vec::new();
    for i in 0..8u128 {
        let data = format!("after-{i}");
        let to_lower = i % 2 != 1;
        let hash = if to_lower { 1000 + i } else { HALF + 1000 + i };
        let (shard, seq) = put_with_hash_key(client, &name, "any", hash, data.as_bytes()).await;
        if to_lower {
            assert_eq!(shard, shard_id(1));
            lower.push((seq, data));
        } else {
            assert_eq!(shard, shard_id(2));
            upper.push((seq, data));
        }
    }
    for i in 0..10 {
        let key = format!("post-split-{i}");
        let (shard, _) = put(client, &name, &key, b"routed").await;
        assert_ne!(shard, shard_id(0), "a closed shard takes no writes");
        assert_eq!(shard, owner_of(&shards, partition_hash(&key)));
    }

    // The parent yields exactly its records, then ends with its children.
    let parent = read_shard(client, &name, &shard_id(0)).await;
    let got: Vec<(String, String)> = parent
        .records
        .iter()
        .map(|r| (r.sequence_number().to_string(), String::from_utf8_lossy(r.data().as_ref()).into_owned()))
        .collect();
    assert_eq!(got, before);
    assert!(parent.closed, "reading a closed shard to its end gives no NextShardIterator");
    let expected_children =
        vec![(shard_id(1), vec![shard_id(0)], (0, HALF - 1)), (shard_id(2), vec![shard_id(0)], (HALF, u128::MAX))];
    assert_eq!(child_summary(&parent.child_shards), expected_children);

    // LATEST on a closed shard sits at its end: no records, children, no next iterator.
    let latest = iterator(client, &name, &shard_id(0), ShardIteratorType::Latest, None).await;
    let at_end = read_from(client, latest).await;
    assert!(at_end.records.is_empty());
    assert!(at_end.closed);
    assert_eq!(child_summary(&at_end.child_shards), expected_children);

    // Each child starts with the records written after the split, in order.
    let child = read_shard(client, &name, &shard_id(1)).await;
    let got: Vec<(String, String)> = child
        .records
        .iter()
        .take(lower.len())
        .map(|r| (r.sequence_number().to_string(), String::from_utf8_lossy(r.data().as_ref()).into_owned()))
        .collect();
    assert_eq!(got, lower);
    assert!(!child.closed);
    assert!(child.child_shards.is_empty());
    let child = read_shard(client, &name, &shard_id(2)).await;
    let got: Vec<(String, String)> = child
        .records
        .iter()
        .take(upper.len())
        .map(|r| (r.sequence_number().to_string(), String::from_utf8_lossy(r.data().as_ref()).into_owned()))
        .collect();
    assert_eq!(got, upper);
    for seq in lower.iter().chain(&upper).map(|(s, _)| s) {
        assert_eq!(seq_cmp(&before[5].0, seq), Ordering::Less, "post-split records sort after the parent's");
    }
}

#[tokio::test]
async fn merged_parents_lead_to_their_child() {
    let server = TestServer::in_memory();
    let client = server.client();
    let name = unique_name("mergeread");
    create_stream(client, &name, 2).await;
    put_with_hash_key(client, &name, "k", 5, b"left").await;
    put_with_hash_key(client, &name, "k", HALF + 5, b"right").await;

    merge(client, &name, 0, 1).await;
    let (shard, _) = put_with_hash_key(client, &name, "k", 5, b"merged").await;
    assert_eq!(shard, shard_id(2));

    let expected_child = vec![(shard_id(2), vec![shard_id(0), shard_id(1)], (0, u128::MAX))];
    for (parent, data) in [(0, "left"), (1, "right")] {
        let read = read_shard(client, &name, &shard_id(parent)).await;
        assert_eq!(data_strings(&read), vec![data.to_string()]);
        assert!(read.closed);
        assert_eq!(child_summary(&read.child_shards), expected_child);
    }
    let child = read_shard(client, &name, &shard_id(2)).await;
    assert_eq!(data_strings(&child), vec!["merged".to_string()]);
    assert!(!child.closed);
}

/// PutRecords calls racing splits and merges: a batch whose shard a reshard closes between
/// routing and appending is routed again. Every record acknowledged is read back exactly once,
/// from the shard the response named, whose range owns the record's hash key, under the
/// sequence number the response gave.
#[tokio::test]
async fn put_records_racing_reshards_land_once_in_their_owning_shard() {
    use aws_sdk_kinesis::primitives::Blob;
    use aws_sdk_kinesis::types::PutRecordsRequestEntry;
    use std::collections::HashMap;

    let server = TestServer::durable();
    let client = server.client().clone();
    let name = unique_name("race");
    create_stream(&client, &name, 2).await;

    let writer = {
        let (client, name) = (client.clone(), name.clone());
        tokio::spawn(async move {
            let mut acknowledged = HashMap::new(); // data -> (shard, sequence number, key)
            for call in 0..60 {
                let entries = (0..200)
                    .map(|i| {
                        PutRecordsRequestEntry::builder()
                            .partition_key(format!("key-{call}-{i}"))
                            .data(Blob::new(format!("{call}-{i}")))
                            .build()
                            .unwrap()
                    })
                    .collect::<Vec<_>>();
                let out = client.put_records().stream_name(&name).set_records(Some(entries)).send().await.unwrap();
                assert_eq!(out.failed_record_count(), Some(0));
                for (i, entry) in out.records().iter().enumerate() {
                    let shard = entry.shard_id().unwrap().to_string();
                    let seq = entry.sequence_number().unwrap().to_string();
                    acknowledged.insert(format!("{call}-{i}"), (shard, seq, format!("key-{call}-{i}")));
                }
            }
            acknowledged
        })
    };
    // Splits and merges while the writer runs: 0,1 -> split 0 -> merge its children -> split 1.
    split(&client, &name, 0, HALF / 2).await;
    merge(&client, &name, 2, 3).await;
    split(&client, &name, 1, HALF + HALF / 2).await;
    let acknowledged = writer.await.unwrap();
    assert_eq!(acknowledged.len(), 60 * 200);

    let shards = shards_of(&client, &name).await;
    let mut seen = 0;
    for shard in &shards {
        let (start, end) = range_of(shard);
        for record in read_shard(&client, &name, shard.shard_id()).await.records {
            let data = String::from_utf8_lossy(record.data().as_ref()).into_owned();
            let (acked_shard, acked_seq, key) = &acknowledged[&data];
            assert_eq!(acked_shard, shard.shard_id(), "{data} read from another shard than acknowledged");
            assert_eq!(acked_seq, record.sequence_number(), "{data}");
            let hash = partition_hash(key);
            assert!(start <= hash && hash <= end, "{data} in a shard that does not own its hash key");
            seen += 1;
        }
    }
    assert_eq!(seen, acknowledged.len(), "every acknowledged record read back exactly once");
}
