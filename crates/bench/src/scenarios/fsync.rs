//! `fsync`: the disk's own commit latency, for reference beside the durable figures. Appends
//! `--record-size` bytes to a file and fdatasyncs it, one after the other, and reports the
//! percentiles of append + fdatasync: the floor under a durable acknowledgement on this disk.

use std::io::Write;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::cli::FsyncArgs;
use crate::BenchError;

#[derive(Debug, Serialize)]
pub struct FsyncReport {
    pub scenario: &'static str,
    pub dir: String,
    pub bytes_per_sync: usize,
    pub syncs: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl FsyncReport {
    pub fn table(&self) -> String {
        format!(
            "scenario       fsync  (append {} B + fdatasync in {})\nsyncs          {}\nlatency (ms)   p50 {:.3}   p99 {:.3}   p99.9 {:.3}   max {:.3}\n",
            self.bytes_per_sync, self.dir, self.syncs, self.p50_ms, self.p99_ms, self.p999_ms, self.max_ms
        )
    }
}

/// Runs `args.syncs` appends + fdatasyncs (at most `bound` long) in a new file under `args.dir`.
pub fn run(args: &FsyncArgs, record_size: usize, bound: Duration) -> Result<FsyncReport, BenchError> {
    let dir = tempfile::Builder::new().prefix("tideline-bench-fsync-").tempdir_in(&args.dir)?;
    let mut file = std::fs::File::create(dir.path().join("log"))?;
    let data = vec![0x5a_u8; record_size];
    let started = Instant::now();
    let mut samples = Vec::with_capacity(args.syncs);
    while samples.len() < args.syncs && started.elapsed() < bound {
        let begun = Instant::now();
        file.write_all(&data)?;
        file.sync_data()?;
        samples.push(begun.elapsed());
    }
    samples.sort();
    let at = |quantile: f64| {
        let index = ((samples.len() as f64 * quantile).ceil() as usize).saturating_sub(1);
        samples.get(index).map_or(0.0, |sample| sample.as_secs_f64() * 1e3)
    };
    Ok(FsyncReport {
        scenario: "fsync",
        dir: args.dir.display().to_string(),
        bytes_per_sync: record_size,
        syncs: samples.len(),
        p50_ms: at(0.5),
        p99_ms: at(0.99),
        p999_ms: at(0.999),
        max_ms: at(1.0),
    })
}
