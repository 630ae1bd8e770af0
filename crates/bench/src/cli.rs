//! Command-line flags. Shared flags are global, so they may come before or after the scenario.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// AWS's PutRecords limit on records per call.
pub const MAX_BATCH: usize = 500;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "tideline-bench",
    version,
    about = "End-to-end load generator for Kinesis Data Streams endpoints (Tideline, kinesalite, kinesis-mock)",
    after_help = "Every run is bounded: by --duration (default 10 s), by --requests, or by both (whichever comes \
                  first). Only loopback endpoints are accepted."
)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub scenario: Scenario,
}

#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Kinesis endpoint, e.g. http://127.0.0.1:4567 (loopback only). Not used by `startup`.
    #[arg(long, global = true, env = "TIDELINE_BENCH_ENDPOINT")]
    pub endpoint: Option<String>,
    /// Concurrent workers, each with its own keep-alive HTTP connection.
    #[arg(long, global = true, default_value_t = 8)]
    pub connections: usize,
    /// Streams to spread the load over.
    #[arg(long, global = true, default_value_t = 1)]
    pub streams: usize,
    /// Shards per stream.
    #[arg(long, global = true, default_value_t = 4)]
    pub shards: u32,
    /// Bytes of data per record (before base64).
    #[arg(long, global = true, default_value_t = 100)]
    pub record_size: usize,
    /// Records per PutRecords call (at most 500).
    #[arg(long, global = true, default_value_t = 500)]
    pub batch_size: usize,
    /// Measured seconds (after the warm-up). Default 10 when --requests is not given either.
    #[arg(long, global = true)]
    pub duration: Option<f64>,
    /// Measured requests, across all workers. With --duration, whichever bound comes first ends the run.
    #[arg(long, global = true)]
    pub requests: Option<u64>,
    /// Seconds of load before measuring starts.
    #[arg(long, global = true, default_value_t = 1.0)]
    pub warmup: f64,
    /// Distinct partition keys; requests rotate over this set so records spread across shards.
    #[arg(long, global = true, default_value_t = 1024)]
    pub keys: usize,
    /// Client runtime threads. On a small machine the server needs the other cores.
    #[arg(long, global = true, default_value_t = 1)]
    pub threads: usize,
    /// Use the streams <prefix>-0..N as they are (creating any that are missing) and keep them afterwards.
    /// Without it, fresh streams are created and deleted at the end.
    #[arg(long, global = true)]
    pub reuse: bool,
    /// Stream name prefix.
    #[arg(long, global = true, default_value = "tideline-bench")]
    pub stream_prefix: String,
    /// Per-request timeout in seconds; a request that takes longer counts as an error.
    #[arg(long, global = true, default_value_t = 30.0)]
    pub timeout: f64,
    /// Region written in the SigV4 credential scope.
    #[arg(long, global = true, default_value = "us-east-1")]
    pub region: String,
    /// The server's process id, for its CPU time per record. Default: the process listening on
    /// the endpoint's port, when it can be found in /proc.
    #[arg(long, global = true)]
    pub server_pid: Option<i32>,
    /// Print one JSON object on stdout instead of the table.
    #[arg(long, global = true)]
    pub json: bool,
    /// Run a competing process with this many CPU-bound threads for the length of the run
    /// (latency under contention; 0: none).
    #[arg(long, global = true, default_value_t = 0)]
    pub cpu_hogs: usize,
}

#[derive(Subcommand, Debug, Clone)]
pub enum Scenario {
    /// PutRecords ingest: --batch-size records per call.
    PutRecords,
    /// PutRecord ingest: one record per call.
    PutRecord,
    /// PutRecords ingest sent by aws-sdk-kinesis (plain-HTTP hyper client, retries off).
    SdkPutRecords,
    /// PutRecord ingest sent by aws-sdk-kinesis (plain-HTTP hyper client, retries off).
    SdkPutRecord,
    /// Fill the streams, then measure GetRecords read-back throughput across shards.
    GetRecords(GetRecordsArgs),
    /// PutRecord → GetRecords end-to-end latency, with one polling consumer per shard.
    E2e(LatencyArgs),
    /// PutRecord → SubscribeToShard (enhanced fan-out) push latency, one subscription per shard.
    Subscribe(LatencyArgs),
    /// Load JSON records, then time an in-server SQL job (TUMBLE count/sum per key) reading them all.
    SqlTumble(SqlTumbleArgs),
    /// Spawn a server repeatedly and time each start until its first ListStreams succeeds.
    Startup(StartupArgs),
    /// No server: time appends of --record-size bytes + fdatasync on this disk, one at a time.
    Fsync(FsyncArgs),
    /// The --cpu-hogs process (internal).
    #[command(hide = true)]
    Spin(SpinArgs),
}

impl Scenario {
    pub fn name(&self) -> &'static str {
        match self {
            Scenario::PutRecords => "put-records",
            Scenario::PutRecord => "put-record",
            Scenario::SdkPutRecords => "sdk-put-records",
            Scenario::SdkPutRecord => "sdk-put-record",
            Scenario::GetRecords(_) => "get-records",
            Scenario::E2e(_) => "e2e",
            Scenario::Subscribe(_) => "subscribe",
            Scenario::SqlTumble(_) => "sql-tumble",
            Scenario::Startup(_) => "startup",
            Scenario::Fsync(_) => "fsync",
            Scenario::Spin(_) => "spin",
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct GetRecordsArgs {
    /// Records written before reading (default: 200,000, or fewer so the fill stays under 512 MiB).
    #[arg(long)]
    pub fill: Option<u64>,
    /// GetRecords Limit.
    #[arg(long, default_value_t = 10_000)]
    pub limit: u32,
}

#[derive(Args, Debug, Clone)]
pub struct LatencyArgs {
    /// Records per second produced in total (open loop, spread over --connections producers).
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    /// e2e only: pause between GetRecords calls that returned nothing, in milliseconds (0: poll back to back).
    #[arg(long, default_value_t = 0.0)]
    pub poll_interval_ms: f64,
    /// Seconds to wait after the last put for records still in flight.
    #[arg(long, default_value_t = 2.0)]
    pub grace: f64,
}

#[derive(Args, Debug, Clone)]
pub struct SqlTumbleArgs {
    /// Records loaded into the source stream (a closing record comes after them).
    #[arg(long, default_value_t = 1_000_000)]
    pub records: u64,
    /// Distinct values of the `key` column (`k0`, `k1`, …), also the partition keys.
    #[arg(long, default_value_t = 100)]
    pub key_count: u64,
    /// Records per second of event time: how many rows each 1-second window holds.
    #[arg(long, default_value_t = 10_000)]
    pub per_second: u64,
    /// Longest wait for the job to emit every window, in seconds.
    #[arg(long, default_value_t = 300.0)]
    pub max_wait: f64,
    /// Only write the input records as JSON lines to this file (for Flink: tests/ecosystem/flink/bench.sh)
    /// and exit; no endpoint is needed.
    #[arg(long)]
    pub write_jsonl: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct StartupArgs {
    /// The server binary.
    #[arg(long, default_value = "target/release/tideline")]
    pub server: PathBuf,
    /// Starts to time.
    #[arg(long, default_value_t = 10)]
    pub runs: usize,
    /// Give each start a new empty --data-dir (removed afterwards).
    #[arg(long)]
    pub fresh_data_dir: bool,
    /// Server arguments; `--listen 127.0.0.1:0` is added unless --listen is given.
    #[arg(last = true, default_values_t = ["serve".to_string(), "--in-memory".to_string()])]
    pub server_args: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct FsyncArgs {
    /// Directory on the disk to measure (a temporary file is made in it and removed).
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Syncs to time (the run also ends after --duration, default 10 s).
    #[arg(long, default_value_t = 2000)]
    pub syncs: usize,
}

#[derive(Args, Debug, Clone)]
pub struct SpinArgs {
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Spin for this long, then exit.
    #[arg(long)]
    pub seconds: f64,
}

impl Common {
    /// The measured-phase bounds: (duration, requests). At least one is always set.
    pub fn bounds(&self) -> (Option<Duration>, Option<u64>) {
        let duration = match (self.duration, self.requests) {
            (Some(secs), _) => Some(Duration::from_secs_f64(secs.max(0.0))),
            (None, Some(_)) => None,
            (None, None) => Some(Duration::from_secs(10)),
        };
        (duration, self.requests)
    }

    /// The longest a run can take (what a helper process may live for): the warm-up, the measured
    /// time (10 minutes when only --requests bounds it) and a margin for fills and grace periods.
    pub fn run_bound(&self) -> Duration {
        let measured = self.bounds().0.unwrap_or(Duration::from_secs(600));
        self.warmup() + measured + Duration::from_secs(120)
    }

    pub fn warmup(&self) -> Duration {
        Duration::from_secs_f64(self.warmup.max(0.0))
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout.max(0.001))
    }

    /// Rejects flag combinations the endpoint would refuse anyway, with a clearer message.
    pub fn validate(&self, scenario: &Scenario) -> Result<(), String> {
        if self.connections == 0 || self.streams == 0 || self.shards == 0 || self.keys == 0 || self.threads == 0 {
            return Err("--connections, --streams, --shards, --keys and --threads must be at least 1".into());
        }
        if self.batch_size == 0 || self.batch_size > MAX_BATCH {
            return Err(format!("--batch-size must be between 1 and {MAX_BATCH}"));
        }
        if self.record_size == 0 || self.record_size > crate::body::MAX_RECORD_BYTES {
            return Err(format!("--record-size must be between 1 and {} bytes", crate::body::MAX_RECORD_BYTES));
        }
        if matches!(scenario, Scenario::PutRecords | Scenario::SdkPutRecords | Scenario::GetRecords(_)) {
            let batch_bytes = self.batch_size * (self.record_size + crate::body::LONGEST_KEY);
            if batch_bytes > crate::body::MAX_PUT_RECORDS_BYTES {
                return Err(format!(
                    "{} records of {} bytes exceed PutRecords' 5 MiB limit; lower --batch-size",
                    self.batch_size, self.record_size
                ));
            }
        }
        if matches!(scenario, Scenario::E2e(_) | Scenario::Subscribe(_)) && self.record_size < crate::body::STAMP_BYTES
        {
            return Err(format!("latency scenarios need --record-size of at least {}", crate::body::STAMP_BYTES));
        }
        if let (Some(duration), _) = (self.duration, self.requests) {
            if duration.is_nan() || duration <= 0.0 {
                return Err("--duration must be positive".into());
            }
        }
        if self.requests == Some(0) {
            return Err("--requests must be at least 1".into());
        }
        Ok(())
    }
}
