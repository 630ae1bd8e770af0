//! Bounded memory: with 100 idle shard iterators, slow readers and a producer writing a large
//! volume, the server's resident memory stays under a bound — record data lives on disk and in
//! the kernel's page cache, not in the server's heap.
//!
//! Volume: `TIDELINE_MEMORY_TEST_MIB` (default 128 in CI; the documented full run is 1024).
//! Bound: `TIDELINE_MEMORY_BOUND_MIB` (default 160).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};
use common::*;

fn env_mib(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Resident set size of a process, from /proc (Linux).
fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    kib / 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resident_memory_stays_bounded_while_writing_a_large_volume() {
    let volume_mib = env_mib("TIDELINE_MEMORY_TEST_MIB", 128);
    let bound_mib = env_mib("TIDELINE_MEMORY_BOUND_MIB", 160);
    let server = TestServer::durable();
    let client = server.client().clone();
    let stream = unique_name("memory");
    create_stream(&client, &stream, 2).await;

    // 100 idle iterators: they are self-contained tokens, so they must cost the server nothing.
    let mut idle = Vec::new();
    for i in 0..100 {
        let shard = shard_id(i % 2);
        idle.push(iterator(&client, &stream, &shard, ShardIteratorType::TrimHorizon, None).await);
    }

    let done = Arc::new(AtomicBool::new(false));
    // Slow readers: one per shard, 100 records per call, pausing between calls.
    let mut readers = Vec::new();
    for shard in 0..2 {
        let (client, stream, done) = (client.clone(), stream.clone(), Arc::clone(&done));
        readers.push(tokio::spawn(async move {
            let mut position = iterator(&client, &stream, &shard_id(shard), ShardIteratorType::TrimHorizon, None).await;
            let mut read = 0usize;
            while !done.load(Ordering::Relaxed) {
                let page = client.get_records().shard_iterator(&position).limit(100).send().await.expect("GetRecords");
                read += page.records().len();
                position = page.next_shard_iterator().expect("open shard").to_string();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            read
        }));
    }

    let pid = server.pid();
    let sampler = {
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let mut peak = 0;
            while !done.load(Ordering::Relaxed) {
                peak = peak.max(rss_mib(pid));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            peak.max(rss_mib(pid))
        })
    };

    // The producer: batches of 500 records of 4 KiB (~2 MiB per call).
    let record = vec![0x5au8; 4096];
    let calls = (volume_mib * 1024 * 1024).div_ceil(500 * 4096);
    let started = Instant::now();
    for call in 0..calls {
        let entries: Vec<PutRecordsRequestEntry> = (0..500)
            .map(|i| {
                PutRecordsRequestEntry::builder()
                    .partition_key(format!("{call}-{i}"))
                    .data(Blob::new(record.clone()))
                    .build()
                    .expect("entry")
            })
            .collect();
        let out =
            client.put_records().stream_name(&stream).set_records(Some(entries)).send().await.expect("PutRecords");
        assert_eq!(out.failed_record_count(), Some(0));
    }
    let elapsed = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let peak = sampler.await.expect("sampler");
    let mut read = 0;
    for reader in readers {
        read += reader.await.expect("reader");
    }
    eprintln!(
        "wrote {volume_mib} MiB in {:.1} s with 100 idle iterators and 2 slow readers ({read} records read); \
         peak server RSS {peak} MiB (bound {bound_mib} MiB)",
        elapsed.as_secs_f64()
    );
    assert!(peak > 0, "could not read the server's RSS");
    assert!(peak <= bound_mib, "server RSS peaked at {peak} MiB, over the {bound_mib} MiB bound");
    // The idle iterators still work after all that.
    let first = client.get_records().shard_iterator(&idle[0]).limit(1).send().await.expect("idle iterator");
    assert_eq!(first.records().len(), 1);
}
