//! A trivial Kinesis endpoint that stores nothing and answers every call with a canned response of
//! realistic size, to measure the load generator's own ceiling:
//!
//! ```sh
//! cargo run --release -p tideline-bench --example null_endpoint          # prints its URL
//! tideline-bench --endpoint URL put-records                               # then, in another shell
//! ```
//!
//! It reads each request body to the end (as a server must) and does nothing else, so what the
//! load generator achieves against it is its own limit on this machine. Stops after 10 minutes.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

const LIFETIME: Duration = Duration::from_secs(600);

fn put_records_response() -> Bytes {
    // What Tideline answers to a 500-record PutRecords: one sequence number and shard id per record.
    let entry = r#"{"SequenceNumber":"49000000000000010000000000000000000000000000000000000000","ShardId":"shardId-000000000000"}"#;
    let entries = vec![entry; 500].join(",");
    Bytes::from(format!(r#"{{"FailedRecordCount":0,"Records":[{entries}],"EncryptionType":"NONE"}}"#))
}

fn answer(target: &str, put_records: &Bytes) -> Bytes {
    match target.rsplit('.').next().unwrap_or_default() {
        "PutRecords" => put_records.clone(),
        "PutRecord" => Bytes::from_static(
            br#"{"SequenceNumber":"49000000000000010000000000000000000000000000000000000000","ShardId":"shardId-000000000000","EncryptionType":"NONE"}"#,
        ),
        "DescribeStreamSummary" => Bytes::from_static(
            br#"{"StreamDescriptionSummary":{"StreamStatus":"ACTIVE","StreamARN":"arn:aws:kinesis:us-east-1:000000000000:stream/null"}}"#,
        ),
        "ListShards" => Bytes::from_static(
            br#"{"Shards":[{"ShardId":"shardId-000000000000"},{"ShardId":"shardId-000000000001"},{"ShardId":"shardId-000000000002"},{"ShardId":"shardId-000000000003"}]}"#,
        ),
        _ => Bytes::from_static(b"{}"),
    }
}

async fn handle(request: Request<Incoming>, put_records: Bytes) -> Result<Response<Full<Bytes>>, Infallible> {
    let target = request.headers().get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    // Read the whole body, as a real server would.
    let _ = request.into_body().collect().await;
    let mut response = Response::new(Full::new(answer(&target, &put_records)));
    response
        .headers_mut()
        .insert("content-type", hyper::header::HeaderValue::from_static("application/x-amz-json-1.1"));
    Ok(response)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("null endpoint listening on http://{}", listener.local_addr()?);
    let put_records = put_records_response();
    let serve = async {
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            let put_records = put_records.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| handle(request, put_records.clone()));
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    };
    match tokio::time::timeout(LIFETIME, serve).await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}
