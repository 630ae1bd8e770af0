//! What the handler benchmark and the `handler_calls` example share: a service on the storage
//! the caller picks (in memory, or durable in a directory) with one 4-shard stream, and bodies
//! like `tideline-bench`'s (500 records of 100 bytes, 1,024 partition keys).

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use tideline_proto::{Call, Codec, Reply, Service};
use tideline_storage::{Storage, StorageConfig};
use tideline_streams::{StreamsConfig, StreamsService};
use tokio::runtime::Runtime;

pub const RECORDS: usize = 500;
pub const RECORD_BYTES: usize = 100;
pub const STREAM: &str = "bench";

pub fn runtime() -> Runtime {
    match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => panic!("tokio runtime: {error}"),
    }
}

pub fn call(runtime: &Runtime, service: &StreamsService, operation: &str, body: &[u8]) -> Vec<u8> {
    let call = Call::in_process(operation, Codec::Json, body);
    match runtime.block_on(service.handle(call)) {
        Ok(Reply::Body(response)) => response,
        Ok(Reply::Events(_) | Reply::Http(_)) => panic!("{operation}: not a body"),
        Err(error) => panic!("{operation}: {error:?}"),
    }
}

/// The service on the given storage (in memory, or durable in a directory).
pub fn service(runtime: &Runtime, config: StorageConfig) -> Arc<StreamsService> {
    let storage = match Storage::open(config) {
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

/// Four PutRecords bodies like tideline-bench's, each `RECORDS` of its 1,024 keys, rotated by callers.
pub fn put_records_bodies() -> Vec<Vec<u8>> {
    (0..4).map(|i| put_records_body(i * RECORDS)).collect()
}

fn put_records_body(first: usize) -> Vec<u8> {
    let records: Vec<String> = (first..first + RECORDS)
        .map(|i| {
            let data = STANDARD.encode(vec![(i % 251) as u8; RECORD_BYTES]);
            format!(r#"{{"Data":"{data}","PartitionKey":"partition-{:04}"}}"#, i % 1024)
        })
        .collect();
    format!(r#"{{"StreamName":"{STREAM}","Records":[{}]}}"#, records.join(",")).into_bytes()
}

/// A GetRecords body reading shard 0 from TRIM_HORIZON, up to 10,000 records, and how many
/// records one call with it returns.
pub fn get_records_body(runtime: &Runtime, service: &StreamsService) -> (Vec<u8>, usize) {
    let iterator = call(
        runtime,
        service,
        "GetShardIterator",
        format!(r#"{{"StreamName":"{STREAM}","ShardId":"shardId-000000000000","ShardIteratorType":"TRIM_HORIZON"}}"#)
            .as_bytes(),
    );
    let iterator: serde_json::Value = match serde_json::from_slice(&iterator) {
        Ok(value) => value,
        Err(error) => panic!("GetShardIterator response: {error}"),
    };
    let body = format!(r#"{{"ShardIterator":{},"Limit":10000}}"#, iterator["ShardIterator"]).into_bytes();
    let records = match serde_json::from_slice::<serde_json::Value>(&call(runtime, service, "GetRecords", &body)) {
        Ok(response) => response["Records"].as_array().map_or(0, Vec::len),
        Err(error) => panic!("GetRecords response: {error}"),
    };
    (body, records)
}
