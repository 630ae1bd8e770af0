//! The optional TLS listener against the real binary: an aws-sdk-kinesis client that trusts the
//! server's certificate (`--tls-cert`/`--tls-key`) writes, reads and subscribes over HTTPS; ALPN
//! picks h2 or http/1.1 as the client asks; a client that connects and never finishes its handshake
//! loses its connection slot after the header-read timeout.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{ShardIteratorType, StartingPosition, SubscribeToShardEventStream};
use common::*;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A certificate for 127.0.0.1 and its key, written as PEM files the server reads.
struct Certificate {
    pem: String,
    der: CertificateDer<'static>,
    dir: tempfile::TempDir,
}

impl Certificate {
    fn new() -> Self {
        let rcgen::CertifiedKey { cert, signing_key } =
            rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .expect("generate a certificate");
        let dir = tempfile::Builder::new().prefix("tideline-tls-").tempdir().expect("temp dir");
        std::fs::write(dir.path().join("cert.pem"), cert.pem()).expect("write cert.pem");
        std::fs::write(dir.path().join("key.pem"), signing_key.serialize_pem()).expect("write key.pem");
        Self { pem: cert.pem(), der: cert.der().clone(), dir }
    }

    fn server_flags(&self) -> [String; 4] {
        let path = |name: &str| self.dir.path().join(name).display().to_string();
        ["--tls-cert".to_owned(), path("cert.pem"), "--tls-key".to_owned(), path("key.pem")]
    }

    fn serve(&self, extra: &[&str]) -> TestServer {
        let flags = self.server_flags();
        let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
        args.extend_from_slice(extra);
        TestServer::in_memory_with(&args)
    }

    /// A raw rustls client trusting only this certificate, offering `alpn`.
    fn connector(&self, alpn: &[&[u8]]) -> TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).expect("trust the test certificate");
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
        TlsConnector::from(Arc::new(config))
    }
}

fn address(server: &TestServer) -> String {
    server.endpoint().trim_start_matches("https://").to_string()
}

#[tokio::test]
async fn an_sdk_client_trusting_the_certificate_writes_reads_and_subscribes_over_https() {
    let certificate = Certificate::new();
    let server = certificate.serve(&[]);
    assert!(server.endpoint().starts_with("https://127.0.0.1:"), "{}", server.endpoint());
    let client = client_trusting(server.endpoint(), &certificate.pem);
    let stream = unique_name("tls");
    create_stream(&client, &stream, 1).await;
    let mut written = Vec::new();
    for i in 0..20 {
        let data = format!("over-tls-{i}");
        put(&client, &stream, &format!("key-{i}"), data.as_bytes()).await;
        written.push(data.into_bytes());
    }
    let read = read_shard(&client, &stream, &shard_id(0)).await;
    let data: Vec<Vec<u8>> = read.records.iter().map(|record| record.data().as_ref().to_vec()).collect();
    assert_eq!(data, written);

    let stream_arn = stream_arn(&stream);
    let consumer = client
        .register_stream_consumer()
        .stream_arn(&stream_arn)
        .consumer_name("tls-consumer")
        .send()
        .await
        .expect("RegisterStreamConsumer")
        .consumer()
        .expect("Consumer")
        .consumer_arn()
        .to_string();
    let mut events = client
        .subscribe_to_shard()
        .consumer_arn(&consumer)
        .shard_id(shard_id(0))
        .starting_position(
            StartingPosition::builder().r#type(ShardIteratorType::TrimHorizon).build().expect("position"),
        )
        .send()
        .await
        .expect("SubscribeToShard over TLS")
        .event_stream;
    let mut subscribed = Vec::new();
    while subscribed.len() < written.len() {
        let event = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .expect("an event within 10 s")
            .expect("event stream")
            .expect("an event, not the end");
        if let SubscribeToShardEventStream::SubscribeToShardEvent(event) = event {
            subscribed.extend(event.records().iter().map(|record| record.data().as_ref().to_vec()));
        }
    }
    assert_eq!(subscribed, written);

    // A client that does not trust the certificate is refused by its own TLS check, not served.
    let untrusting = client_trusting(server.endpoint(), &Certificate::new().pem);
    let refused = untrusting.put_record().stream_name(&stream).partition_key("k").data(Blob::new("x")).send().await;
    assert!(refused.is_err(), "a client trusting another certificate must not connect");
}

/// Sends `GET /health` over HTTP/1.1 on `stream` and returns the response.
async fn http1_health<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(stream: &mut S) -> String {
    http1_get(stream, "/health").await
}

/// Sends `GET path` over HTTP/1.1 on `stream` and returns the response.
async fn http1_get<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(stream: &mut S, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nHost: tideline\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send a GET");
    let mut answer = Vec::new();
    // A connection reset (plain HTTP to the TLS port) ends the answer like a close does.
    let _ =
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await.expect("answer within 5 s");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn alpn_negotiates_h2_or_http1_as_the_client_asks() {
    let certificate = Certificate::new();
    let server = certificate.serve(&[]);
    let name = ServerName::try_from("127.0.0.1").expect("server name");

    let tcp = TcpStream::connect(address(&server)).await.expect("connect");
    let h2 = certificate.connector(&[b"h2", b"http/1.1"]).connect(name.clone(), tcp).await.expect("TLS handshake");
    assert_eq!(h2.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), hyper_util::rt::TokioIo::new(h2))
            .await
            .expect("HTTP/2 handshake");
    tokio::spawn(connection);
    let request = hyper::Request::get("https://127.0.0.1/health")
        .body(http_body_util::Empty::<hyper::body::Bytes>::new())
        .expect("request");
    let response = sender.send_request(request).await.expect("GET /health over h2");
    assert_eq!(response.version(), hyper::Version::HTTP_2);
    assert_eq!(response.status(), 200);

    let tcp = TcpStream::connect(address(&server)).await.expect("connect");
    let mut http1 = certificate.connector(&[b"http/1.1"]).connect(name.clone(), tcp).await.expect("TLS handshake");
    assert_eq!(http1.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let answer = http1_health(&mut http1).await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");

    // Without ALPN the server still serves, detecting the protocol from the first bytes.
    let tcp = TcpStream::connect(address(&server)).await.expect("connect");
    let mut plain = certificate.connector(&[]).connect(name, tcp).await.expect("TLS handshake");
    assert_eq!(plain.get_ref().1.alpn_protocol(), None);
    let answer = http1_health(&mut plain).await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");

    // Plain HTTP on the TLS port is not served.
    let mut cleartext = TcpStream::connect(address(&server)).await.expect("connect");
    let answer = http1_health(&mut cleartext).await;
    assert!(!answer.contains("200"), "{answer}");
}

#[tokio::test]
async fn a_client_that_stalls_in_the_handshake_loses_its_slot_after_the_header_read_timeout() {
    let certificate = Certificate::new();
    let server = certificate.serve(&["--header-read-timeout-secs", "1", "--max-connections", "3"]);
    let started = Instant::now();
    // One says nothing; one sends the first bytes of a ClientHello and stops; together with a
    // third they would hold every slot.
    let mut silent = TcpStream::connect(address(&server)).await.expect("connect");
    let mut halfway = TcpStream::connect(address(&server)).await.expect("connect");
    halfway.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).await.expect("start a ClientHello");
    let mut third = TcpStream::connect(address(&server)).await.expect("connect");
    for stream in [&mut silent, &mut halfway, &mut third] {
        let mut buffer = [0u8; 512];
        let closed = tokio::time::timeout(Duration::from_secs(6), async {
            loop {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "a stalled TLS handshake was still open after 6 s (header-read timeout 1 s)");
    }
    assert!(started.elapsed() < Duration::from_secs(4), "closed after {:?}", started.elapsed());

    // The slots are free again: a real client is served.
    let tcp = TcpStream::connect(address(&server)).await.expect("connect");
    let name = ServerName::try_from("127.0.0.1").expect("server name");
    let mut tls = certificate.connector(&[b"http/1.1"]).connect(name, tcp).await.expect("TLS handshake");
    let metrics = http1_get(&mut tls, "/metrics").await;
    assert!(metrics.starts_with("HTTP/1.1 200 "), "{metrics}");
    assert!(metrics.contains("\ntideline_tls_handshake_failures_total 3\n"), "{metrics}");
}
