//! Writing and reading records: routing, sequence numbers, iterators, GetRecords paging, payloads.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_kinesis::primitives::{Blob, DateTime};
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};
use common::*;

fn entry(partition_key: &str, data: &[u8], hash_key: Option<u128>) -> PutRecordsRequestEntry {
    PutRecordsRequestEntry::builder()
        .partition_key(partition_key)
        .data(Blob::new(data))
        .set_explicit_hash_key(hash_key.map(|h| h.to_string()))
        .build()
        .expect("PutRecordsRequestEntry")
}

fn seqs_of(records: &[aws_sdk_kinesis::types::Record]) -> Vec<String> {
    records.iter().map(|r| r.sequence_number().to_string()).collect()
}

fn now_millis() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as i64
}

#[tokio::test]
async fn put_record_routes_by_md5_of_partition_key() {
    let server = TestServer::in_memory();
    let client = server.client();
    let name = unique_name("route");
    create_stream(client, &name, 4).await;
    let shards = shards_of(client, &name).await;

    // MD5("a") = 0cc175b9c0f1b6a831c399e269772661, below 2^126: the first of four shards.
    assert_eq!(partition_hash("a"), 0x0cc175b9c0f1b6a831c399e269772661);
    let (shard, seq) = put(client, &name, "a", b"x").await;
    assert_eq!(shard, shard_id(0));
    assert_sequence_number(&seq);

    let mut keys: Vec<String> = (0..60).map(|i| format!("partition-{i}")).collect();
    keys.push("ключ-🔑".to_string()); // hashed as UTF-8 bytes
    keys.push("k".repeat(256)); // longest allowed key
    let mut hit = BTreeMap::new();
    for key in &keys {
        let (shard, seq) = put(client, &name, key, key.as_bytes()).await;
        assert_eq!(shard, owner_of(&shards, partition_hash(key)), "partition key {key:?}");
        assert_sequence_number(&seq);
        *hit.entry(shard).or_insert(0) += 1;
    }
    assert_eq!(hit.len(), 4, "62 keys should reach all four shards: {hit:?}");
}

#[tokio::test]
async fn explicit_hash_key_overrides_partition_key() {
    let server = TestServer::in_memory();
    let client = server.client();
    let name = unique_name("ehk");
    create_stream(client, &name, 4).await;
    let ranges = even_split_ranges(4);

    // The same partition key everywhere; only the explicit hash key decides.
    for (i, (start, end)) in ranges.iter().enumerate() {
        let (shard, _) = put_with_hash_key(client, &name, "same-key", start + 7, b"start").await;
        assert_eq!(shard, shard_id(i as u32));
        let (shard, _) = put_with_hash_key(client, &name, "same-key", *end, b"end").await;
        assert_eq!(shard, shard_id(i as u32), "the ending hash key belongs to the shard");
    }
    let (shard, _) = put_with_hash_key(client, &name, "same-key", 0, b"zero").await;
    assert_eq!(shard, shard_id(0));
    let (shard, _) = put_with_hash_key(client, &name, "same-key", u128::MAX, b"max").await;
    assert_eq!(shard, shard_id(3));

    // PutRecords honours per-entry explicit hash keys too.
    let out = client
        .put_records()
        .stream_name(&name)
        .records(entry("same-key", b"r0", Some(ranges[3].0)))
        .records(entry("same-key", b"r1", Some(ranges[2].0)))
        .records(entry("same-key", b"r2", Some(ranges[1].1)))
        .records(entry("same-key", b"r3", Some(0)))
        .send()
        .await
        .expect("PutRecords");
    let owners: Vec<Option<&str>> = out.records().iter().map(|r| r.shard_id()).collect();
    let expected: Vec<String> = [3, 2, 1, 0].into_iter().map(shard_id).collect();
    assert_eq!(owners, expected.iter().map(|s| Some(s.as_str())).collect::<Vec<_>>());
}

#[tokio::test]
async fn sequence_numbers_are_56_digits_and_increase_per_shard() {
    let server = TestServer::in_memory();
    let client = server.client();
    let name = unique_name("seq");
    create_stream(client, &name, 2).await;

    let mut per_shard: HashMap<String, Vec<String>> = HashMap::new();
    for i in 0..80 {
        let (shard, seq) = put(client, &name, &format!("key-{}", i % 13), format!("payload-{i}").as_bytes()).await;
        assert_sequence_number(&seq);
        per_shard.entry(shard).or_default().push(seq);
    }
    assert_eq!(per_shard.len(), 2, "13 keys should reach both shards");
    for (shard, seqs) in &per_shard {
        assert_strictly_increasing(seqs);
        // GetRecords hands back the same sequence numbers in the same order.
        let read = read_shard(client, &name, shard).await;
        assert_eq!(&seqs_of(&read.records), seqs, "shard {shard}");
    }

    // SequenceNumberForOrdering: the new record gets a larger sequence number.
    let (shard, previous) = put(client, &name, "ordered", b"first").await;
    let out = client
        .put_record()
        .stream_name(&name)
        .partition_key("ordered")
        .sequence_number_for_ordering(&previous)
        .data(Blob::new("second"))
        .send()
        .await
        .expect("PutRecord with SequenceNumberForOrdering");
    assert_eq!(out.shard_id(), shard);
    assert_sequence_number(out.sequence_number());
    assert_eq!(seq_cmp(&previous, out.sequence_number()), std::cmp::Ordering::Less);
}

#[tokio::test]
async fn put_records_accepts_500_records() {
    let server = TestServer::in_memory();
    let client = server.client();
    let name = unique_name("batch");
    create_stream(client, &name, 3).await;
    let shards = shards_of(client, &name).await;

    let inputs: Vec<(String, Vec<u8>)> =
        (0..500u64).map(|i| (format!("pk-{i}"), pseudo_random_bytes(i, 16 + (i as usize * 37) % 900))).collect();
    let mut request = client.put_records().stream_name(&name);
    for (pk, data) in &inputs {
        request = request.records(entry(pk, data, None));
    }
    let out = request.send().await.expect("PutRecords");
    assert_eq!(out.failed_record_count(), Some(0));
    assert_eq!(out.records().len(), 500);

    // The response lines up with the request, entry by entry.
    let mut expected: HashMap<String, (String, String, Vec<u8>)> = HashMap::new();
    for ((pk, data), result) in inputs.iter().zip(out.records()) {
        assert_eq!(result.error_code(), None, "{result:?}");
        assert_eq!(result.error_message(), None, "{result:?}");
        let shard = result.shard_id().expect("ShardId");
        assert_eq!(shard, owner_of(&shards, partition_hash(pk)), "partition key {pk}");
        let seq = result.sequence_number().expect("SequenceNumber");
        assert_sequence_number(seq);
        assert!(
            expected.insert(seq.to_string(), (shard.to_string(), pk.clone(), data.clone())).is_none(),
            "duplicate sequence number {seq}"
        );
    }

    let mut read_total = 0;
    for shard in &shards {
        let read = read_shard(client, &name, shard.shard_id()).await;
        assert_strictly_increasing(&seqs_of(&read.records));
        for record in &read.records {
            let (owner, pk, data) = expected
                .get(record.sequence_number())
                .unwrap_or_else(|| panic!("unknown record {}", record.sequence_number()));
            assert_eq!(owner, shard.shard_id());
            assert_eq!(record.partition_key(), Some(pk.as_str()));
            assert_eq!(record.data().as_ref(), data.as_slice(), "data of {pk}");
        }
        read_total += read.records.len();
    }
    assert_eq!(read_total, 500);
}

#[tokio::test]
async fn shard_iterator_types_position_reads() {
    let server = TestServer::in_memory();
    let client = server.client();
    let name = unique_name("iter");
    create_stream(client, &name, 1).await;
    let shard = shard_id(0);

    let mut seqs = Vec::new();
    for i in 0..10 {
        let (_, seq) = put(client, &name, "k", format!("r{i}").as_bytes()).await;
        seqs.push(seq);
    }
    let data_of = |read: &ShardRead| {
        read.records.iter().map(|r| String::from_utf8_lossy(r.data().as_ref()).into_owned()).collect::<Vec<_>>()
    };
    let expect = |range: std::ops::Range<usize>| range.map(|i| format!("r{i}")).collect::<Vec<_>>();

    let it = iterator(client, &name, &shard, ShardIteratorType::TrimHorizon, None).await;
    let read = read_from(client, it).await;
    assert_eq!(data_of(&read), expect(0..10));
    assert_eq!(seqs_of(&read.records), seqs);

    let it = iterator(client, &name, &shard, ShardIteratorType::AtSequenceNumber, Some(&seqs[3])).await;
    let read = read_from(client, it).await;
    assert_eq!(data_of(&read), expect(3..10));
    assert_eq!(read.records[0].sequence_number(), seqs[3]);

    let it = iterator(client, &name, &shard, ShardIteratorType::AfterSequenceNumber, Some(&seqs[3])).await;
    let read = read_from(client, it).await;
    assert_eq!(data_of(&read), expect(4..10));

    let it = iterator(client, &name, &shard, ShardIteratorType::AfterSequenceNumber, Some(&seqs[9])).await;
    let read = read_from(client, it).await;
    assert!(read.records.is_empty(), "nothing after the last record: {:?}", data_of(&read));

    // LATEST: only records written after the iterator was taken.
    let latest = iterator(client, &name, &shard, ShardIteratorType::Latest, None).await;
    put(client, &name, "k", b"after-1").await;
    put(client, &name, "k", b"after-2").await;
    let read = read_from(client, latest).await;
    assert_eq!(data_of(&read), vec!["after-1".to_string(), "after-2".to_string()]);
}

#[tokio::test]
async fn at_timestamp_iterator_starts_at_arrival_time() {
    let server = TestServer::in_memory();
    let client = server.client();
    let name = unique_name("ts");
    create_stream(client, &name, 1).await;
    let shard = shard_id(0);

    for i in 0..5 {
        put(client, &name, "k", format!("before-{i}").as_bytes()).await;
    }
    tokio::time::sleep(Duration::from_millis(250)).await;
    let cut = now_millis();
    tokio::time::sleep(Duration::from_millis(250)).await;
    for i in 0..5 {
        put(client, &name, "k", format!("after-{i}").as_bytes()).await;
    }

    let it = client
        .get_shard_iterator()
        .stream_name(&name)
        .shard_id(&shard)
        .shard_iterator_type(ShardIteratorType::AtTimestamp)
        .timestamp(DateTime::from_millis(cut))
        .send()
        .await
        .expect("GetShardIterator AT_TIMESTAMP")
        .shard_iterator()
        .expect("ShardIterator")
        .to_string();
    let read = read_from(client, it).await;
    let data: Vec<String> =
        read.records.iter().map(|r| String::from_utf8_lossy(r.data().as_ref()).into_owned()).collect();
    assert_eq!(data, (0..5).map(|i| format!("after-{i}")).collect::<Vec<_>>());
    for record in &read.records {
        let arrival =
            record.approximate_arrival_timestamp().expect("ApproximateArrivalTimestamp").to_millis().expect("millis");
        assert!(arrival >= cut, "record arrived at {arrival}, before the cut {cut}");
        assert!(arrival <= now_millis() + 1000, "arrival {arrival} is in the future");
    }

    // A timestamp before the stream existed starts at the trim horizon.
    let it = client
        .get_shard_iterator()
        .stream_name(&name)
        .shard_id(&shard)
        .shard_iterator_type(ShardIteratorType::AtTimestamp)
        .timestamp(DateTime::from_millis(cut - 3_600_000))
        .send()
        .await
        .expect("GetShardIterator AT_TIMESTAMP (old)")
        .shard_iterator()
        .expect("ShardIterator")
        .to_string();
    assert_eq!(read_from(client, it).await.records.len(), 10);
}

#[tokio::test]
async fn get_records_limit_and_next_shard_iterator_chaining() {
    let server = TestServer::in_memory();
    let client = server.client();
    let name = unique_name("limit");
    create_stream(client, &name, 1).await;
    let mut seqs = Vec::new();
    for i in 0..10 {
        seqs.push(put(client, &name, "k", format!("r{i}").as_bytes()).await.1);
    }

    let mut it = iterator(client, &name, &shard_id(0), ShardIteratorType::TrimHorizon, None).await;
    let mut sizes = Vec::new();
    let mut got = Vec::new();
    for _ in 0..4 {
        let out = client.get_records().shard_iterator(&it).limit(3).send().await.expect("GetRecords");
        assert!(out.millis_behind_latest().is_some(), "MillisBehindLatest must be present");
        assert!(out.millis_behind_latest().unwrap_or(-1) >= 0);
        sizes.push(out.records().len());
        got.extend(seqs_of(out.records()));
        it = out.next_shard_iterator().expect("an open shard always has a NextShardIterator").to_string();
        assert!(out.child_shards().is_empty());
    }
    assert_eq!(sizes, vec![3, 3, 3, 1]);
    assert_eq!(got, seqs);

    // Caught up: no records, a fresh iterator, and MillisBehindLatest 0.
    let out = client.get_records().shard_iterator(&it).limit(3).send().await.expect("GetRecords at tip");
    assert!(out.records().is_empty());
    assert_eq!(out.millis_behind_latest(), Some(0));
    let next = out.next_shard_iterator().expect("NextShardIterator at tip").to_string();

    // The chained iterator picks up new records.
    let (_, seq) = put(client, &name, "k", b"late").await;
    let out = client.get_records().shard_iterator(&next).send().await.expect("GetRecords after new write");
    assert_eq!(seqs_of(out.records()), vec![seq]);
}

#[tokio::test]
async fn data_round_trips_byte_for_byte() {
    let server = TestServer::in_memory();
    let client = server.client();
    let name = unique_name("bytes");
    create_stream(client, &name, 1).await;

    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let not_utf8 = vec![0xff, 0xfe, 0x00, 0x80, 0xc3, 0x28];
    // A maximum-size record: data plus partition key make exactly 1 MiB, the default per-stream
    // record limit (AWS counts the partition key in the record size).
    let one_mib = pseudo_random_bytes(42, 1024 * 1024 - "one-mib".len());
    let zero = vec![0u8];
    let payloads: Vec<(&str, &[u8])> = vec![
        ("all-bytes", &all_bytes),
        ("not-utf8", &not_utf8),
        ("one-mib", &one_mib),
        ("zero", &zero),
        ("tail", b"tail"),
    ];

    let mut seqs = Vec::new();
    for (pk, data) in &payloads {
        let (_, seq) = put(client, &name, pk, data).await;
        seqs.push(seq);
    }
    // Binary data through PutRecords as well.
    let batch = client
        .put_records()
        .stream_name(&name)
        .records(entry("batch-all-bytes", &all_bytes, None))
        .records(entry("batch-not-utf8", &not_utf8, None))
        .send()
        .await
        .expect("PutRecords binary");
    assert_eq!(batch.failed_record_count(), Some(0));
    seqs.extend(batch.records().iter().map(|r| r.sequence_number().expect("SequenceNumber").to_string()));

    let read = read_shard(client, &name, &shard_id(0)).await;
    assert_eq!(seqs_of(&read.records), seqs);
    let expected: Vec<(&str, &[u8])> = payloads
        .iter()
        .copied()
        .chain([("batch-all-bytes", all_bytes.as_slice()), ("batch-not-utf8", not_utf8.as_slice())])
        .collect();
    for (record, (pk, data)) in read.records.iter().zip(&expected) {
        assert_eq!(record.partition_key(), Some(*pk));
        assert_eq!(record.data().as_ref().len(), data.len(), "length of {pk}");
        assert!(record.data().as_ref() == *data, "data of {pk} differs");
        assert!(record.approximate_arrival_timestamp().is_some());
    }
}
