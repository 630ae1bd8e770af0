//! Connection limits against the real binary, over raw sockets and hyper's HTTP/1.1 and HTTP/2
//! clients: slow and silent clients are closed after the header-read timeout; idle connections,
//! and requests whose body stops arriving, after the idle timeout; connections beyond
//! `--max-connections` at once. A streaming SubscribeToShard response outlives both timeouts.

mod common;

use std::time::{Duration, Instant};

use aws_sdk_kinesis::types::{ShardIteratorType, StartingPosition, SubscribeToShardEventStream};
use common::*;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn address(server: &TestServer) -> String {
    server.endpoint().trim_start_matches("http://").to_string()
}

/// Reads (and discards) until the server closes the connection; how long that took, or None if
/// it was still open after `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buffer = [0u8; 4096];
    let closing = async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, closing).await.ok()
}

/// A slowloris client: a request head sent one header line every 200 ms, never finished. Returns
/// when the server closed the connection, or None if it was still open after `limit`.
async fn slowloris(address: String, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(&address).await.expect("connect");
    if stream.write_all(b"POST / HTTP/1.1\r\nHost: tideline\r\n").await.is_err() {
        return Some(started.elapsed());
    }
    let mut buffer = [0u8; 1024];
    while started.elapsed() < limit {
        tokio::select! {
            read = stream.read(&mut buffer) => if matches!(read, Ok(0) | Err(_)) {
                return Some(started.elapsed());
            },
            () = tokio::time::sleep(Duration::from_millis(200)) => {
                if stream.write_all(b"X-Slow: 1\r\n").await.is_err() {
                    return Some(started.elapsed());
                }
            }
        }
    }
    None
}

async fn list_streams_answers(server: &TestServer) {
    let out = server.client().list_streams().send().await.expect("ListStreams after the slow clients");
    assert!(out.stream_names().is_empty());
}

#[tokio::test]
async fn slow_and_silent_clients_are_closed_after_the_header_read_timeout() {
    let server = TestServer::in_memory_with(&["--header-read-timeout-secs", "1"]);
    let limit = Duration::from_secs(6);
    let slow: Vec<_> = (0..50).map(|_| tokio::spawn(slowloris(address(&server), limit))).collect();
    let mut silent = Vec::new();
    for _ in 0..50 {
        silent.push(TcpStream::connect(address(&server)).await.expect("connect"));
    }
    for client in slow {
        let closed = client.await.expect("slowloris task");
        let closed = closed.unwrap_or_else(|| panic!("a slow request head was still being read after {limit:?}"));
        assert!(closed < Duration::from_secs(4), "closed after {closed:?}, header-read timeout 1 s");
    }
    for stream in &mut silent {
        let closed = closed_within(stream, limit).await;
        assert!(closed.is_some(), "a connection that sent nothing was still open after {limit:?}");
    }
    list_streams_answers(&server).await;
}

#[tokio::test]
async fn a_request_body_that_stops_arriving_is_answered_and_its_connection_closed() {
    let server = TestServer::in_memory_with(&["--idle-timeout-secs", "1"]);
    let mut stream = TcpStream::connect(address(&server)).await.expect("connect");
    let head = "POST / HTTP/1.1\r\nHost: tideline\r\nContent-Type: application/x-amz-json-1.1\r\n\
                X-Amz-Target: Kinesis_20131202.ListStreams\r\nContent-Length: 100\r\n\r\n{";
    stream.write_all(head.as_bytes()).await.expect("send the head and 1 of the 100 body bytes announced");
    let started = Instant::now();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(6), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "a connection whose request body stalled was still open after 6 s (idle timeout 1 s)");
    assert!(started.elapsed() < Duration::from_secs(4), "closed after {:?}", started.elapsed());
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    list_streams_answers(&server).await;
}

#[tokio::test]
async fn idle_http1_and_http2_connections_are_closed() {
    let server = TestServer::in_memory_with(&["--header-read-timeout-secs", "1", "--idle-timeout-secs", "1"]);
    let uri = format!("{}/health", server.endpoint());
    let request = || hyper::Request::get(&uri).body(Empty::<Bytes>::new()).expect("request");

    let io = TokioIo::new(TcpStream::connect(address(&server)).await.expect("connect"));
    let (mut http1, http1_connection) = hyper::client::conn::http1::handshake(io).await.expect("HTTP/1.1 handshake");
    let http1_connection = tokio::spawn(http1_connection);
    let response = http1.send_request(request()).await.expect("HTTP/1.1 GET /health");
    // Holding the request in flight until its body is sent must not turn it into a chunked one.
    assert_eq!(response.headers().get("content-length").map(|v| v.as_bytes()), Some(&b"2"[..]));
    assert_eq!(response.into_body().collect().await.expect("body").to_bytes(), "ok");

    let io = TokioIo::new(TcpStream::connect(address(&server)).await.expect("connect"));
    let (mut http2, http2_connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await.expect("h2c handshake");
    let http2_connection = tokio::spawn(http2_connection);
    let response = http2.send_request(request()).await.expect("h2c GET /health");
    assert_eq!(response.version(), hyper::Version::HTTP_2);
    assert_eq!(response.into_body().collect().await.expect("body").to_bytes(), "ok");

    // Both now idle, with the clients keeping them open: the server must be the one to close.
    let started = Instant::now();
    for (version, connection) in [("HTTP/1.1", http1_connection), ("HTTP/2", http2_connection)] {
        let ended = tokio::time::timeout(Duration::from_secs(6), connection).await;
        assert!(ended.is_ok(), "idle {version} connection still open after 6 s (idle timeout 1 s)");
    }
    assert!(started.elapsed() < Duration::from_secs(4), "closed after {:?}", started.elapsed());
    assert!(http1.send_request(request()).await.is_err(), "the HTTP/1.1 connection is closed");
}

#[tokio::test]
async fn a_streaming_subscription_outlives_the_idle_and_header_timeouts() {
    let server = TestServer::in_memory_with(&["--header-read-timeout-secs", "1", "--idle-timeout-secs", "1"]);
    let client = server.client();
    let stream = unique_name("idle-subscribe");
    create_stream(client, &stream, 1).await;
    let consumer = client
        .register_stream_consumer()
        .stream_arn(stream_arn(&stream))
        .consumer_name("reader")
        .send()
        .await
        .expect("RegisterStreamConsumer");
    let consumer_arn = consumer.consumer().expect("consumer").consumer_arn().to_string();
    let mut output = client
        .subscribe_to_shard()
        .consumer_arn(consumer_arn)
        .shard_id(shard_id(0))
        .starting_position(StartingPosition::builder().r#type(ShardIteratorType::Latest).build().expect("position"))
        .send()
        .await
        .expect("SubscribeToShard");
    // No request on the subscription's connection for three idle timeouts.
    tokio::time::sleep(Duration::from_secs(3)).await;
    put(client, &stream, "k", b"after the quiet").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let event = tokio::time::timeout_at(deadline.into(), output.event_stream.recv())
            .await
            .expect("the record within 10 s")
            .expect("a well-formed event, not a cut connection");
        let Some(SubscribeToShardEventStream::SubscribeToShardEvent(event)) = event else {
            panic!("the subscription ended before the record arrived: {event:?}");
        };
        if let Some(record) = event.records().first() {
            assert_eq!(record.data().as_ref(), b"after the quiet");
            break;
        }
    }
}

#[tokio::test]
async fn connections_beyond_the_cap_are_closed_at_once_and_the_server_recovers() {
    let server = TestServer::in_memory_with(&["--max-connections", "4"]);
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(address(&server)).await.expect("connect"));
    }
    // Accepted in order: give the server a moment to take all four.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..3 {
        let mut extra = TcpStream::connect(address(&server)).await.expect("the kernel still accepts");
        let closed = closed_within(&mut extra, Duration::from_secs(2)).await;
        assert!(closed.is_some(), "a connection beyond --max-connections 4 was kept open");
    }
    for stream in &mut held {
        assert!(closed_within(stream, Duration::from_millis(100)).await.is_none(), "held connections stay open");
    }
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match server.client().list_streams().send().await {
            Ok(_) => break,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("ListStreams once the held connections closed: {error:?}"),
        }
    }
}
