//! Shard log throughput: appends (group-committed, fsync'ed in durable mode) and reads.
//!
//! `cargo bench -p tideline-storage --bench log` (add `-- --quick` for a fast pass). Durable runs
//! use a temp dir under $TMPDIR, so they measure that file system's fdatasync.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use tideline_storage::{AppendBatch, NewRecord, ShardKey, Storage, StorageConfig};
use tokio::runtime::Runtime;

const RECORDS: usize = 500;
const RECORD_BYTES: usize = 100;

fn runtime() -> Runtime {
    match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => panic!("tokio runtime: {error}"),
    }
}

fn batch(shard: ShardKey) -> AppendBatch {
    let records = (0..RECORDS)
        .map(|i| NewRecord {
            partition_key: format!("partition-{}", i % 37).into(),
            data: Bytes::from(vec![(i % 251) as u8; RECORD_BYTES]),
            encrypted: false,
        })
        .collect();
    AppendBatch { shard, records }
}

fn shard(index: u32) -> ShardKey {
    ShardKey { stream_id: 1, shard_index: index }
}

struct Setup {
    name: &'static str,
    storage: Arc<Storage>,
    _dir: Option<tempfile::TempDir>,
}

fn setups() -> Vec<Setup> {
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(error) => panic!("tempdir: {error}"),
    };
    let open = |config| match Storage::open(config) {
        Ok(storage) => storage,
        Err(error) => panic!("open storage: {error}"),
    };
    vec![
        Setup { name: "durable", storage: open(StorageConfig::durable(dir.path())), _dir: Some(dir) },
        Setup { name: "in_memory", storage: open(StorageConfig::in_memory()), _dir: None },
    ]
}

async fn append(storage: &Storage, batches: Vec<AppendBatch>) {
    if let Err(error) = storage.append(batches).await {
        panic!("append: {error}");
    }
}

fn appends(c: &mut Criterion) {
    let runtime = runtime();
    let mut group = c.benchmark_group("append");
    group.sample_size(30).measurement_time(Duration::from_secs(5));
    for setup in setups() {
        let storage = &setup.storage;
        let one = batch(shard(0));

        // One caller: every append waits for its own fsync.
        group.throughput(Throughput::Elements(RECORDS as u64));
        group.bench_function(format!("{}/1_writer_500x100B", setup.name), |b| {
            b.iter_batched(
                || one.clone(),
                |batch| runtime.block_on(append(storage, vec![batch])),
                BatchSize::SmallInput,
            )
        });

        // One call with a batch for each of 8 shards: one group, 8 files to sync.
        let eight: Vec<AppendBatch> = (0..8).map(|i| batch(shard(10 + i))).collect();
        group.throughput(Throughput::Elements(8 * RECORDS as u64));
        group.bench_function(format!("{}/8_shards_one_call_500x100B", setup.name), |b| {
            b.iter_batched(
                || eight.clone(),
                |batches| runtime.block_on(append(storage, batches)),
                BatchSize::SmallInput,
            )
        });

        // 16 concurrent callers on 4 shards: group commit shares fsyncs between them.
        group.throughput(Throughput::Elements(16 * RECORDS as u64));
        group.bench_function(format!("{}/16_writers_4_shards_500x100B", setup.name), |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let started = Instant::now();
                    for _ in 0..iters {
                        let tasks: Vec<_> = (0..16u32)
                            .map(|task| {
                                let storage = Arc::clone(storage);
                                let batch = batch(shard(20 + task % 4));
                                tokio::spawn(async move { append(&storage, vec![batch]).await })
                            })
                            .collect();
                        for task in tasks {
                            if let Err(error) = task.await {
                                panic!("task: {error}");
                            }
                        }
                    }
                    started.elapsed()
                })
            })
        });
    }
    group.finish();
}

fn reads(c: &mut Criterion) {
    let runtime = runtime();
    let mut group = c.benchmark_group("read");
    group.sample_size(50).measurement_time(Duration::from_secs(3));
    const TOTAL: u64 = 200 * RECORDS as u64;
    for setup in setups() {
        let storage = &setup.storage;
        let key = shard(0);
        runtime.block_on(async {
            for _ in 0..TOTAL / RECORDS as u64 {
                append(storage, vec![batch(key)]).await;
            }
        });
        group.throughput(Throughput::Elements(RECORDS as u64));
        let mut position = 0u64;
        group.bench_function(format!("{}/500_records_at_random_positions", setup.name), |b| {
            b.iter(|| {
                // A fixed stride walks the whole log without a random number generator.
                position = (position + 7919 * 13) % (TOTAL - RECORDS as u64);
                match storage.read(key, position, RECORDS, 10 << 20) {
                    Ok(batch) if batch.records.len() == RECORDS => batch,
                    Ok(batch) => panic!("short read: {}", batch.records.len()),
                    Err(error) => panic!("read: {error}"),
                }
            })
        });
        group.bench_function(format!("{}/index_at_timestamp", setup.name), |b| {
            let tail = storage.tail(key);
            let last = tail.last_arrival_ms.unwrap_or(0);
            b.iter(|| match storage.index_at_timestamp(key, last - 1) {
                Ok(index) => index,
                Err(error) => panic!("index_at_timestamp: {error}"),
            })
        });
    }
    group.finish();
}

criterion_group!(benches, appends, reads);
criterion_main!(benches);
