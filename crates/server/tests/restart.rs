//! Durability: a SIGKILLed server restarted on the same data directory has every acknowledged
//! stream, shard and record, and keeps handing out increasing sequence numbers.

mod common;

use std::cmp::Ordering;
use std::collections::BTreeMap;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, Shard};
use aws_sdk_kinesis::Client;
use common::*;

/// One acknowledged record.
#[derive(Clone, Debug, PartialEq)]
struct Written {
    seq: String,
    pk: String,
    data: Vec<u8>,
}

/// Acknowledged records per (stream, shard).
type Ledger = BTreeMap<(String, String), Vec<Written>>;

fn payload(i: u64) -> Vec<u8> {
    let len = match (i % 500, i % 97) {
        (1, _) => 0,
        (_, 0) => 60_000 + (i as usize % 1000),
        _ => (i as usize * 131) % 2500,
    };
    pseudo_random_bytes(i, len)
}

fn partition_key(i: u64) -> String {
    format!("pk-{}", i % 173)
}

async fn put_batch(client: &Client, ledger: &mut Ledger, stream: &str, ids: std::ops::Range<u64>) {
    let mut request = client.put_records().stream_name(stream);
    let inputs: Vec<(String, Vec<u8>)> = ids.map(|i| (partition_key(i), payload(i))).collect();
    for (pk, data) in &inputs {
        request = request.records(
            PutRecordsRequestEntry::builder()
                .partition_key(pk)
                .data(Blob::new(data.clone()))
                .build()
                .expect("PutRecordsRequestEntry"),
        );
    }
    let out = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("PutRecords: {}", aws_sdk_kinesis::error::DisplayErrorContext(&e)));
    assert_eq!(out.failed_record_count(), Some(0));
    assert_eq!(out.records().len(), inputs.len());
    for ((pk, data), result) in inputs.into_iter().zip(out.records()) {
        let shard = result.shard_id().expect("ShardId").to_string();
        let seq = result.sequence_number().expect("SequenceNumber").to_string();
        ledger.entry((stream.to_string(), shard)).or_default().push(Written { seq, pk, data });
    }
}

async fn put_one(client: &Client, ledger: &mut Ledger, stream: &str, i: u64) {
    let (pk, data) = (partition_key(i), payload(i));
    let (shard, seq) = put(client, stream, &pk, &data).await;
    ledger.entry((stream.to_string(), shard)).or_default().push(Written { seq, pk, data });
}

/// Reads every shard of `stream` and checks it holds exactly the ledger's records, in
/// sequence-number order.
async fn check_records(client: &Client, ledger: &Ledger, stream: &str, shards: &[Shard]) -> usize {
    let mut total = 0;
    for shard in shards {
        let key = (stream.to_string(), shard.shard_id().to_string());
        let mut expected = ledger.get(&key).cloned().unwrap_or_default();
        // PutRecords does not promise request order within a shard; sequence numbers do.
        expected.sort_by(|a, b| seq_cmp(&a.seq, &b.seq));
        let read = read_shard(client, stream, shard.shard_id()).await;
        let got: Vec<Written> = read
            .records
            .iter()
            .map(|r| Written {
                seq: r.sequence_number().to_string(),
                pk: r.partition_key().unwrap_or("").to_string(),
                data: r.data().as_ref().to_vec(),
            })
            .collect();
        assert_eq!(got.len(), expected.len(), "record count of {stream}/{}", shard.shard_id());
        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
            assert_eq!(g.seq, e.seq, "sequence number #{i} of {stream}/{}", shard.shard_id());
            assert_eq!(g.pk, e.pk, "partition key of {}", e.seq);
            assert!(g.data == e.data, "data of {} differs ({} vs {} bytes)", e.seq, g.data.len(), e.data.len());
        }
        if !is_open(shard) {
            assert!(read.closed, "closed shard {stream}/{} must end", shard.shard_id());
            assert!(!read.child_shards.is_empty(), "closed shard {stream}/{} must name its children", shard.shard_id());
        }
        total += got.len();
    }
    total
}

#[tokio::test]
async fn sigkill_and_restart_keeps_streams_shards_and_records() {
    let mut server = TestServer::durable();
    let client = server.client().clone();
    let (alpha, beta) = ("alpha", "beta");
    create_stream(&client, alpha, 3).await;
    create_stream(&client, beta, 2).await;
    client.add_tags_to_stream().stream_name(alpha).tags("owner", "restart-test").send().await.expect("AddTagsToStream");
    client
        .increase_stream_retention_period()
        .stream_name(beta)
        .retention_period_hours(48)
        .send()
        .await
        .expect("IncreaseRetention");
    wait_active(&client, beta).await;

    // ~2000 records of varied sizes (0 bytes to ~61 KB), through both write APIs.
    let mut ledger = Ledger::new();
    put_batch(&client, &mut ledger, alpha, 0..450).await;
    put_batch(&client, &mut ledger, beta, 450..900).await;
    for i in 900..1000 {
        put_one(&client, &mut ledger, [alpha, beta][(i % 2) as usize], i).await;
    }
    // A reshard before the crash: beta's shard 0 ([0, 2^127-1]) splits at 2^126.
    client
        .split_shard()
        .stream_name(beta)
        .shard_to_split(shard_id(0))
        .new_starting_hash_key((1u128 << 126).to_string())
        .send()
        .await
        .expect("SplitShard");
    wait_active(&client, beta).await;
    put_batch(&client, &mut ledger, alpha, 1000..1450).await;
    put_batch(&client, &mut ledger, beta, 1450..1900).await;
    for i in 1900..2000 {
        put_one(&client, &mut ledger, [alpha, beta][(i % 2) as usize], i).await;
    }
    assert_eq!(ledger.values().map(Vec::len).sum::<usize>(), 2000);
    assert!(
        ledger.contains_key(&(beta.to_string(), shard_id(2))) && ledger.contains_key(&(beta.to_string(), shard_id(3))),
        "writes after the split reach both children: {:?}",
        ledger.keys().collect::<Vec<_>>()
    );

    let before: BTreeMap<&str, (aws_sdk_kinesis::types::StreamDescription, Vec<Shard>)> =
        [(alpha, describe_all(&client, alpha).await), (beta, describe_all(&client, beta).await)].into_iter().collect();
    assert_eq!(before[beta].1.len(), 4, "beta has its parent and two children before the crash");

    server.kill_and_restart();
    let client = server.client().clone();

    let listed = client.list_streams().send().await.expect("ListStreams after restart");
    assert_eq!(listed.stream_names(), ["alpha", "beta"]);
    for stream in [alpha, beta] {
        let (description, shards) = describe_all(&client, stream).await;
        let (old_description, old_shards) = &before[stream];
        assert_eq!(&shards, old_shards, "shards of {stream} after restart");
        assert_eq!(description.stream_status(), &aws_sdk_kinesis::types::StreamStatus::Active);
        assert_eq!(description.stream_arn(), old_description.stream_arn());
        assert_eq!(description.retention_period_hours(), old_description.retention_period_hours());
        assert_eq!(description.stream_creation_timestamp(), old_description.stream_creation_timestamp());
    }
    assert_eq!(before[beta].0.retention_period_hours(), 48);
    let split_parent = before[beta].1.iter().find(|s| s.shard_id() == shard_id(0)).expect("beta shard 0");
    assert!(!is_open(split_parent), "the split survived: shard 0 is closed");
    let tags = client.list_tags_for_stream().stream_name(alpha).send().await.expect("ListTagsForStream");
    assert_eq!(
        tags.tags().iter().map(|t| (t.key(), t.value())).collect::<Vec<_>>(),
        vec![("owner", Some("restart-test"))]
    );

    let mut total = 0;
    for stream in [alpha, beta] {
        total += check_records(&client, &ledger, stream, &before[stream].1).await;
    }
    assert_eq!(total, 2000, "every acknowledged record is back");

    // New writes continue each shard's sequence.
    let last_before: BTreeMap<(String, String), String> = ledger
        .iter()
        .map(|(key, records)| {
            let max = records.iter().map(|r| r.seq.clone()).max_by(|a, b| seq_cmp(a, b)).expect("non-empty");
            (key.clone(), max)
        })
        .collect();
    let mut after = Ledger::new();
    put_batch(&client, &mut after, alpha, 2000..2100).await;
    for i in 2100..2160 {
        put_one(&client, &mut after, [alpha, beta][(i % 2) as usize], i).await;
    }
    for (key, records) in &after {
        assert_ne!(key, &(beta.to_string(), shard_id(0)), "the closed parent takes no writes after restart");
        if let Some(last) = last_before.get(key) {
            for record in records {
                assert_eq!(
                    seq_cmp(last, &record.seq),
                    Ordering::Less,
                    "{key:?}: {} after restart is not above {last}",
                    record.seq
                );
            }
        }
    }
    for (key, records) in after {
        ledger.entry(key).or_default().extend(records);
    }
    let mut total = 0;
    for stream in [alpha, beta] {
        let shards = shards_of(&client, stream).await;
        total += check_records(&client, &ledger, stream, &shards).await;
    }
    assert_eq!(total, 2160);
}

#[tokio::test]
async fn restart_keeps_deletions_and_later_reshards() {
    let mut server = TestServer::durable();
    let client = server.client().clone();
    create_stream(&client, "kept", 2).await;
    create_stream(&client, "dropped", 1).await;
    put(&client, "dropped", "k", b"gone").await;
    client.delete_stream().stream_name("dropped").send().await.expect("DeleteStream");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while client.describe_stream_summary().stream_name("dropped").send().await.is_ok() {
        assert!(std::time::Instant::now() < deadline, "stream not deleted");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    client
        .merge_shards()
        .stream_name("kept")
        .shard_to_merge(shard_id(0))
        .adjacent_shard_to_merge(shard_id(1))
        .send()
        .await
        .expect("MergeShards");
    wait_active(&client, "kept").await;
    let (_, seq) = put(&client, "kept", "k", b"merged").await;
    let before = shards_of(&client, "kept").await;

    server.kill_and_restart();
    let client = server.client().clone();
    let e = service_error(client.describe_stream().stream_name("dropped").send().await);
    assert_error(&e, "ResourceNotFoundException", "Stream dropped under account 000000000000 not found.");
    assert_eq!(client.list_streams().send().await.expect("ListStreams").stream_names(), ["kept"]);
    let after = shards_of(&client, "kept").await;
    assert_eq!(after, before);
    let merged = after.iter().find(|s| s.shard_id() == shard_id(2)).expect("merged shard");
    assert_eq!(merged.adjacent_parent_shard_id(), Some(shard_id(1).as_str()));
    let read = read_shard(&client, "kept", &shard_id(2)).await;
    assert_eq!(read.records.len(), 1);
    assert_eq!(read.records[0].sequence_number(), seq);
    assert_eq!(read.records[0].data().as_ref(), b"merged");

    // A stream recreated under the deleted name starts empty.
    create_stream(&client, "dropped", 1).await;
    let read = read_shard(&client, "dropped", &shard_id(0)).await;
    assert!(read.records.is_empty(), "a recreated stream must not see the old records");
}
