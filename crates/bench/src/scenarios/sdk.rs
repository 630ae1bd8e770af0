//! `sdk-put-records` and `sdk-put-record`: the ingest scenarios again, but sent by the official
//! AWS SDK for Rust (`aws-sdk-kinesis` over its plain-HTTP hyper client, retries off) instead of
//! the hand-built requests of the other scenarios. What a real producer costs — JSON and base64
//! encoding, the payload hash and SigV4 signature — is then on the client's side of the machine,
//! as it is in production, and the server's CPU per record is measured under that load.

use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use aws_sdk_kinesis::Client;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use tokio::time::Instant;

use crate::body;
use crate::run::{Clock, Ctx, ERROR_BACKOFF};
use crate::stats::{Report, Tally};
use crate::BenchError;

/// A client with its own connection pool, like one producer process.
fn client(ctx: &Ctx) -> Client {
    let config = aws_sdk_kinesis::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(ctx.endpoint.as_str())
        .region(Region::new(ctx.common.region.clone()))
        .credentials_provider(Credentials::new("AKIDTIDELINEBENCH", "tideline-bench", None, None, "tideline-bench"))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .retry_config(RetryConfig::disabled())
        .timeout_config(TimeoutConfig::builder().operation_timeout(ctx.common.request_timeout()).build())
        .build();
    Client::from_conf(config)
}

/// One request's worth of records for a stream: (stream, entries). The SDK takes ownership of
/// each request's entries, so workers clone these (a copy of 100-byte blobs: small beside the
/// SDK's own encoding).
fn batches(ctx: &Ctx, per_request: usize) -> Vec<(String, Vec<PutRecordsRequestEntry>)> {
    let data = Blob::new(body::record_data(ctx.common.record_size, 1));
    let rotations = ctx.common.keys.div_ceil(per_request).clamp(1, 16);
    let mut batches = Vec::new();
    for rotation in 0..rotations {
        for stream in &ctx.streams.streams {
            let entries = (0..per_request)
                .filter_map(|i| {
                    PutRecordsRequestEntry::builder()
                        .data(data.clone())
                        .partition_key(body::partition_key((rotation * per_request + i) % ctx.common.keys))
                        .build()
                        .ok()
                })
                .collect();
            batches.push((stream.name.clone(), entries));
        }
    }
    batches
}

pub async fn put_records(ctx: &Ctx) -> Result<Report, BenchError> {
    run(ctx, "sdk-put-records", ctx.common.batch_size).await
}

pub async fn put_record(ctx: &Ctx) -> Result<Report, BenchError> {
    run(ctx, "sdk-put-record", 1).await
}

async fn run(ctx: &Ctx, scenario: &str, per_request: usize) -> Result<Report, BenchError> {
    let batches = std::sync::Arc::new(batches(ctx, per_request));
    let clock = ctx.clock();
    let workers: Vec<_> = (0..ctx.common.connections)
        .map(|worker| {
            let (client, clock, batches) = (client(ctx), clock.clone(), std::sync::Arc::clone(&batches));
            let record_size = ctx.common.record_size as u64;
            tokio::spawn(async move { worker_loop(worker, client, clock, &batches, per_request, record_size).await })
        })
        .collect();
    let tally = crate::run::join_workers(workers, "worker").await;
    let mut config = ctx.config();
    config["batch_size"] = per_request.into();
    config["client"] = "aws-sdk-kinesis".into();
    Ok(Report::new(scenario, ctx.endpoint.as_str(), config, &tally, clock.measured(Instant::now())))
}

async fn worker_loop(
    worker: usize,
    client: Client,
    clock: Clock,
    batches: &[(String, Vec<PutRecordsRequestEntry>)],
    per_request: usize,
    record_size: u64,
) -> Tally {
    let mut tally = Tally::default();
    let mut next = worker;
    while let Some(measured) = clock.next() {
        let Some((stream, entries)) = batches.get(next % batches.len().max(1)) else { break };
        next += 1;
        let started = Instant::now();
        let result = match entries.as_slice() {
            [only] if per_request == 1 => {
                // The SDK hands the key out as an option (it is required, so always set here).
                let (key, data) = (only.partition_key().unwrap_or_default(), only.data().clone());
                client
                    .put_record()
                    .stream_name(stream)
                    .partition_key(key)
                    .data(data)
                    .send()
                    .await
                    .map(|_| 0)
                    .map_err(|error| aws_sdk_kinesis::error::DisplayErrorContext(error).to_string())
            }
            _ => client
                .put_records()
                .stream_name(stream)
                .set_records(Some(entries.clone()))
                .send()
                .await
                .map(|output| u64::try_from(output.failed_record_count().unwrap_or(0)).unwrap_or(0))
                .map_err(|error| aws_sdk_kinesis::error::DisplayErrorContext(error).to_string()),
        };
        let elapsed = started.elapsed();
        match result {
            Ok(failed) if measured => {
                let written = (per_request as u64).saturating_sub(failed);
                tally.requests += 1;
                tally.records += written;
                tally.failed_records += failed;
                tally.payload_bytes += written * record_size;
                tally.latency.record(elapsed);
            }
            Ok(_) => {}
            Err(error) => {
                if measured {
                    tally.error(error);
                }
                tokio::time::sleep(ERROR_BACKOFF).await;
            }
        }
    }
    tally
}
