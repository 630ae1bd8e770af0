//! Single-record appends from concurrent callers, durable, on the disk of `DIR`: the storage
//! half of PutRecord with one record per call, without HTTP. Prints appends/s and the latency
//! percentiles of one append (submit to durable acknowledgement).
//!
//! `single_appends DIR CALLERS SECONDS [FSYNC]` (4 shards, 100-byte records; FSYNC as `--fsync`:
//! `always`, the default, or `interval=<ms>`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tideline_storage::{AppendBatch, FsyncPolicy, NewRecord, ShardKey, Storage, StorageConfig};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(dir), Some(Ok(callers)), Some(Ok(seconds))) =
        (args.first(), args.get(1).map(|a| a.parse::<usize>()), args.get(2).map(|a| a.parse::<f64>()))
    else {
        eprintln!("usage: single_appends DIR CALLERS SECONDS [FSYNC]");
        std::process::exit(2);
    };
    let fsync = match args.get(3).map(|text| text.parse::<FsyncPolicy>()).transpose() {
        Ok(fsync) => fsync.unwrap_or_default(),
        Err(error) => panic!("FSYNC: {error}"),
    };
    let dir = match tempfile::Builder::new().prefix("single-appends-").tempdir_in(dir) {
        Ok(dir) => dir,
        Err(error) => panic!("temp dir: {error}"),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => panic!("runtime: {error}"),
    };
    let storage = match Storage::open(StorageConfig { fsync, ..StorageConfig::durable(dir.path()) }) {
        Ok(storage) => storage,
        Err(error) => panic!("open: {error}"),
    };
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let mut latencies: Vec<Duration> = runtime.block_on(async {
        let tasks: Vec<_> = (0..callers)
            .map(|caller| {
                let storage = Arc::clone(&storage);
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    let shard = ShardKey { stream_id: 1, shard_index: (caller % 4) as u32 };
                    while Instant::now() < deadline {
                        let record = NewRecord {
                            partition_key: bytes::Bytes::from_static(b"key"),
                            data: bytes::Bytes::from(vec![7u8; 100]),
                            encrypted: false,
                        };
                        let started = Instant::now();
                        if let Err(error) = storage.append(vec![AppendBatch { shard, records: vec![record] }]).await {
                            panic!("append: {error}");
                        }
                        latencies.push(started.elapsed());
                    }
                    latencies
                })
            })
            .collect();
        let mut all = Vec::new();
        for task in tasks {
            if let Ok(latencies) = task.await {
                all.extend(latencies);
            }
        }
        all
    });
    latencies.sort();
    let at = |q: f64| {
        let index = ((latencies.len() as f64 * q).ceil() as usize).saturating_sub(1);
        latencies.get(index).map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    println!(
        "{callers} callers, fsync {fsync}: {:.0} appends/s, p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms",
        latencies.len() as f64 / seconds,
        at(0.5),
        at(0.99),
        at(0.999)
    );
}
