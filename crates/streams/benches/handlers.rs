//! The Data Streams handlers in process, without HTTP: what one call costs from request body to
//! response body (decode, validate, route, append to in-memory storage, encode).
//!
//! `cargo bench -p tideline-streams --bench handlers` (add `-- --quick` for a fast pass). The
//! bodies match `tideline-bench`'s: 500 records of 100 bytes, 1,024 partition keys, 4 shards.
//! Storage is in memory and keeps every record put, so runs are kept short.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tideline_proto::{Call, Codec, Reply, Service};
use tideline_storage::{Storage, StorageConfig};
use tideline_streams::{StreamsConfig, StreamsService};
use tokio::runtime::Runtime;

const RECORDS: usize = 500;
const RECORD_BYTES: usize = 100;
const STREAM: &str = "bench";

fn runtime() -> Runtime {
    match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => panic!("tokio runtime: {error}"),
    }
}

fn call(runtime: &Runtime, service: &StreamsService, operation: &str, body: &[u8]) -> Vec<u8> {
    let call = Call::in_process(operation, Codec::Json, body);
    match runtime.block_on(service.handle(call)) {
        Ok(Reply::Body(response)) => response,
        Ok(Reply::Events(_) | Reply::Http(_)) => panic!("{operation}: not a body"),
        Err(error) => panic!("{operation}: {error:?}"),
    }
}

fn service(runtime: &Runtime) -> Arc<StreamsService> {
    let storage = match Storage::open(StorageConfig::in_memory()) {
        Ok(storage) => storage,
        Err(error) => panic!("storage: {error}"),
    };
    let service = match runtime.block_on(StreamsService::open(storage, StreamsConfig::default())) {
        Ok(service) => service,
        Err(error) => panic!("service: {error}"),
    };
    call(runtime, &service, "CreateStream", format!(r#"{{"StreamName":"{STREAM}","ShardCount":4}}"#).as_bytes());
    service
}

/// A PutRecords body like tideline-bench's: `batch` of its 1,024 keys, from `first` on.
fn put_records_body(first: usize) -> Vec<u8> {
    let records: Vec<String> = (first..first + RECORDS)
        .map(|i| {
            let data = STANDARD.encode(vec![(i % 251) as u8; RECORD_BYTES]);
            format!(r#"{{"Data":"{data}","PartitionKey":"partition-{:04}"}}"#, i % 1024)
        })
        .collect();
    format!(r#"{{"StreamName":"{STREAM}","Records":[{}]}}"#, records.join(",")).into_bytes()
}

fn handlers(c: &mut Criterion) {
    let runtime = runtime();
    let service = service(&runtime);
    let bodies: Vec<Vec<u8>> = (0..4).map(|i| put_records_body(i * RECORDS)).collect();

    let mut group = c.benchmark_group("put_records");
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.sample_size(20).measurement_time(Duration::from_secs(3));
    let mut next = 0;
    group.bench_function("500x100B", |b| {
        b.iter(|| {
            next = (next + 1) % bodies.len();
            call(&runtime, &service, "PutRecords", &bodies[next])
        })
    });
    group.finish();

    // Reads whatever the puts above left in shard 0 (at least one call's worth), up to 10,000.
    let iterator = call(
        &runtime,
        &service,
        "GetShardIterator",
        format!(r#"{{"StreamName":"{STREAM}","ShardId":"shardId-000000000000","ShardIteratorType":"TRIM_HORIZON"}}"#)
            .as_bytes(),
    );
    let iterator: serde_json::Value = match serde_json::from_slice(&iterator) {
        Ok(value) => value,
        Err(error) => panic!("GetShardIterator response: {error}"),
    };
    let body = format!(r#"{{"ShardIterator":{},"Limit":10000}}"#, iterator["ShardIterator"]).into_bytes();
    let records = match serde_json::from_slice::<serde_json::Value>(&call(&runtime, &service, "GetRecords", &body)) {
        Ok(response) => response["Records"].as_array().map_or(0, Vec::len),
        Err(error) => panic!("GetRecords response: {error}"),
    };
    let mut group = c.benchmark_group("get_records");
    group.throughput(Throughput::Elements(records as u64));
    group.sample_size(20).measurement_time(Duration::from_secs(3));
    group.bench_function(format!("{records}x100B"), |b| b.iter(|| call(&runtime, &service, "GetRecords", &body)));
    group.finish();
}

criterion_group!(benches, handlers);
criterion_main!(benches);
