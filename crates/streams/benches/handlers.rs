//! The Data Streams handlers in process, without HTTP: what one call costs from request body to
//! response body (decode, validate, route, append to in-memory storage, encode).
//!
//! `cargo bench -p tideline-streams --bench handlers` (add `-- --quick` for a fast pass). The
//! bodies match `tideline-bench`'s: 500 records of 100 bytes, 1,024 partition keys, 4 shards.
//! Storage is in memory and keeps every record put, so runs are kept short. For instruction
//! counts (callgrind), the `handler_calls` example makes a fixed number of the same calls.

mod common;

use std::time::Duration;

use common::{call, get_records_body, put_records_bodies, runtime, service, RECORDS};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tideline_storage::StorageConfig;

fn handlers(c: &mut Criterion) {
    let runtime = runtime();
    let service = service(&runtime, StorageConfig::in_memory());
    let bodies = put_records_bodies();

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
    let (body, records) = get_records_body(&runtime, &service);
    let mut group = c.benchmark_group("get_records");
    group.throughput(Throughput::Elements(records as u64));
    group.sample_size(20).measurement_time(Duration::from_secs(3));
    group.bench_function(format!("{records}x100B"), |b| b.iter(|| call(&runtime, &service, "GetRecords", &body)));
    group.finish();
}

criterion_group!(benches, handlers);
criterion_main!(benches);
