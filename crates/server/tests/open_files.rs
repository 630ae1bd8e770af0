//! Open files stay bounded: a server allowed 256 descriptors (`ulimit -n 256`) writes to 600
//! shards at once, reads them all back, and does both again after a restart. Before segment
//! files were kept in a bounded set, every written shard held its file open, and the writes
//! failed with InternalFailure once the process ran out of descriptors.

mod common;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use aws_sdk_kinesis::Client;
use common::*;

const FD_LIMIT: u32 = 256;
const SHARDS: u32 = 600;

fn data(round: u32, shard: u32) -> Vec<u8> {
    format!("round {round} shard {shard} ").repeat(8).into_bytes()
}

/// One record per shard, routed by explicit hash key, in PutRecords calls of 500: each call
/// makes the server write (and sync) hundreds of shards in one group.
async fn put_round(client: &Client, stream: &str, round: u32) {
    let ranges = even_split_ranges(SHARDS);
    let entries: Vec<PutRecordsRequestEntry> = ranges
        .iter()
        .enumerate()
        .map(|(shard, (start, _))| {
            PutRecordsRequestEntry::builder()
                .partition_key("pk")
                .explicit_hash_key(start.to_string())
                .data(Blob::new(data(round, shard as u32)))
                .build()
                .expect("entry")
        })
        .collect();
    for chunk in entries.chunks(500) {
        let out = client
            .put_records()
            .stream_name(stream)
            .set_records(Some(chunk.to_vec()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutRecords: {}", aws_sdk_kinesis::error::DisplayErrorContext(&e)));
        assert_eq!(
            out.failed_record_count(),
            Some(0),
            "round {round}: {:?}",
            out.records().iter().find(|r| r.error_code().is_some())
        );
    }
}

/// Reads every shard from TRIM_HORIZON, eight at a time, and checks it holds rounds 0..rounds.
async fn check_all(client: &Client, stream: &str, rounds: u32) {
    let mut readers = tokio::task::JoinSet::new();
    for first in 0..8 {
        let (client, stream) = (client.clone(), stream.to_string());
        readers.spawn(async move {
            for shard in (first..SHARDS).step_by(8) {
                let read = read_shard(&client, &stream, &shard_id(shard)).await;
                let got: Vec<Vec<u8>> = read.records.iter().map(|r| r.data().as_ref().to_vec()).collect();
                let expected: Vec<Vec<u8>> = (0..rounds).map(|round| data(round, shard)).collect();
                assert_eq!(got, expected, "records of {}", shard_id(shard));
            }
        });
    }
    while let Some(result) = readers.join_next().await {
        result.expect("reader task");
    }
}

fn open_file_limit(pid: u32) -> String {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("read /proc/PID/limits");
    limits.lines().find(|line| line.starts_with("Max open files")).unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_shards_than_descriptors_are_written_read_and_recovered() {
    let mut server = TestServer::durable_with_fd_limit(FD_LIMIT, &["--shard-limit", "1000"]);
    let limit = open_file_limit(server.pid());
    assert!(limit.split_whitespace().nth(3) == Some("256"), "the server must run under ulimit -n 256: {limit}");
    let stream = unique_name("many-shards");
    create_stream(server.client(), &stream, SHARDS as i32).await;

    put_round(server.client(), &stream, 0).await;
    put_round(server.client(), &stream, 1).await;
    check_all(server.client(), &stream, 2).await;
    let open = std::fs::read_dir(format!("/proc/{}/fd", server.pid())).expect("list fds").count();
    assert!(open < FD_LIMIT as usize, "{open} descriptors open");

    server.kill_and_restart();
    check_all(server.client(), &stream, 2).await;
    put_round(server.client(), &stream, 2).await;
    check_all(server.client(), &stream, 3).await;
}
