//! `--fsync interval=<ms>`: acknowledged once written to the page cache, fsync'ed every <ms>. The
//! policy is announced in the log and /metrics, and a killed process (SIGKILL) loses nothing it
//! acknowledged, even with no periodic fsync run before the kill: the kernel keeps the pages.
//! (What a power loss would take, the last <ms>, cannot be tested without one.)

mod common;

use std::collections::BTreeMap;

use aws_sdk_kinesis::primitives::Blob;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CALLERS: u64 = 16;
const PUTS_PER_CALLER: u64 = 40;

/// GET /metrics over a plain HTTP/1.0 connection.
async fn metrics(endpoint: &str) -> String {
    let address = endpoint.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.expect("connect");
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").await.expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interval_fsync_is_announced_and_a_kill_loses_nothing_acknowledged() {
    // A minute: no periodic fsync runs before the kill below.
    let mut server = TestServer::durable_with(&["--fsync", "interval=60000"]);
    assert!(server.log_text().contains("fsync=interval=60000"), "{}", server.log_text());
    assert!(
        metrics(server.endpoint()).await.contains("\ntideline_fsync_interval_milliseconds 60000\n"),
        "{}",
        metrics(server.endpoint()).await
    );
    let stream = unique_name("fsync");
    create_stream(server.client(), &stream, 2).await;

    let mut callers = Vec::new();
    for caller in 0..CALLERS {
        let (client, stream) = (server.client().clone(), stream.clone());
        callers.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for put in 0..PUTS_PER_CALLER {
                let data = pseudo_random_bytes(caller << 16 | put, 100);
                let key = format!("caller-{caller}-{put}");
                let reply = client
                    .put_record()
                    .stream_name(&stream)
                    .partition_key(&key)
                    .data(Blob::new(data.clone()))
                    .send()
                    .await
                    .expect("PutRecord");
                acknowledged.push((reply.sequence_number().to_owned(), (key, data)));
            }
            acknowledged
        }));
    }
    let mut expected = BTreeMap::new();
    for caller in callers {
        expected.extend(caller.await.expect("caller"));
    }
    assert_eq!(expected.len() as u64, CALLERS * PUTS_PER_CALLER);

    tokio::task::block_in_place(|| server.kill_and_restart());
    let mut found = BTreeMap::new();
    for shard in shard_ids(&shards_of(server.client(), &stream).await) {
        for record in read_shard(server.client(), &stream, &shard).await.records {
            let data = record.data().as_ref().to_vec();
            found.insert(
                record.sequence_number().to_string(),
                (record.partition_key().unwrap_or_default().to_owned(), data),
            );
        }
    }
    for (sequence, record) in &expected {
        assert_eq!(found.get(sequence), Some(record), "acknowledged record {sequence} after SIGKILL");
    }
    assert_eq!(found.len(), expected.len(), "records nobody put");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_is_fsync_before_acknowledging() {
    let server = TestServer::durable();
    assert!(server.log_text().contains("fsync=always"), "{}", server.log_text());
    assert!(metrics(server.endpoint()).await.contains("\ntideline_fsync_interval_milliseconds 0\n"));
}
