//! Shared harness for the integration tests: starts the real `tideline` binary on a free port and
//! hands out an `aws-sdk-kinesis` client pointed at it, plus small helpers that encode AWS's
//! documented rules (hash-key arithmetic, sequence-number ordering) independently of the server.

#![allow(dead_code)]

use std::cmp::Ordering;
use std::ffi::OsString;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sdk_kinesis::config::retry::RetryConfig;
use aws_sdk_kinesis::config::timeout::TimeoutConfig;
use aws_sdk_kinesis::config::{BehaviorVersion, Region, StalledStreamProtectionConfig};
use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{ChildShard, Record, Shard, ShardIteratorType, StreamDescription, StreamStatus};
use aws_sdk_kinesis::Client;
use md5::{Digest, Md5};

pub const ACCOUNT: &str = "000000000000";
pub const REGION: &str = "us-east-1";
/// The largest hash key, 2^128 - 1.
pub const MAX_HASH_KEY: u128 = u128::MAX;

const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
const LISTENING_PREFIX: &str = "tideline listening on ";

/// A running `tideline serve`, killed when dropped.
pub struct TestServer {
    child: Option<Child>,
    /// Kept alive for the server's lifetime; `None` for `--in-memory`.
    data_dir: Option<tempfile::TempDir>,
    extra_args: Vec<String>,
    /// `ulimit -n` the server runs under, if not inherited.
    fd_limit: Option<u32>,
    /// Holds the server's stderr (logs), shown when a test panics.
    log_dir: tempfile::TempDir,
    endpoint: String,
    client: Client,
}

impl TestServer {
    /// `tideline serve --in-memory`.
    pub fn in_memory() -> Self {
        Self::in_memory_with(&[])
    }

    /// `tideline serve --in-memory` plus extra flags, e.g. `["--shard-limit", "5"]`.
    pub fn in_memory_with(extra_args: &[&str]) -> Self {
        Self::start(None, extra_args)
    }

    /// `tideline serve --data-dir <fresh tempdir>`.
    pub fn durable() -> Self {
        Self::durable_with(&[])
    }

    pub fn durable_with(extra_args: &[&str]) -> Self {
        let dir = tempfile::Builder::new().prefix("tideline-data-").tempdir().expect("create data dir");
        Self::start(Some(dir), extra_args)
    }

    /// A durable server whose process may open at most `fd_limit` files (`ulimit -n`).
    pub fn durable_with_fd_limit(fd_limit: u32, extra_args: &[&str]) -> Self {
        let dir = tempfile::Builder::new().prefix("tideline-data-").tempdir().expect("create data dir");
        Self::launch_with(Some(dir), extra_args, Some(fd_limit))
    }

    fn start(data_dir: Option<tempfile::TempDir>, extra_args: &[&str]) -> Self {
        Self::launch_with(data_dir, extra_args, None)
    }

    fn launch_with(data_dir: Option<tempfile::TempDir>, extra_args: &[&str], fd_limit: Option<u32>) -> Self {
        let log_dir = tempfile::Builder::new().prefix("tideline-log-").tempdir().expect("create log dir");
        let extra_args: Vec<String> = extra_args.iter().map(|s| s.to_string()).collect();
        let (child, endpoint) =
            launch(data_dir.as_ref().map(|d| d.path()), &extra_args, fd_limit, &log_dir.path().join("server.log"));
        let client = make_client(&endpoint);
        Self { child: Some(child), data_dir, extra_args, fd_limit, log_dir, endpoint, client }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The server's process id (for reading its resource use from /proc).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// `http://127.0.0.1:PORT` (`https://` with the `--tls-*` flags).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn data_dir(&self) -> Option<&Path> {
        self.data_dir.as_ref().map(|d| d.path())
    }

    /// Crash the server (SIGKILL, no chance to flush) and start a new one on the same data
    /// directory and flags. The port changes; `client()` is rebuilt for the new one.
    pub fn kill_and_restart(&mut self) {
        self.kill();
        let data_dir = self.data_dir.as_ref().map(|d| d.path());
        let (child, endpoint) = launch(data_dir, &self.extra_args, self.fd_limit, &self.log_path());
        self.client = make_client(&endpoint);
        self.endpoint = endpoint;
        self.child = Some(child);
    }

    /// SIGKILL the server and reap it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // `Child::kill` sends SIGKILL on Unix.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Leaves the data directory and the server log on disk when the server is dropped, for a
    /// post-mortem of a failed run. Returns the data directory (if durable) and the log file.
    pub fn keep_files(&mut self) -> (Option<PathBuf>, PathBuf) {
        if let Some(dir) = self.data_dir.as_mut() {
            dir.disable_cleanup(true);
        }
        self.log_dir.disable_cleanup(true);
        (self.data_dir().map(Path::to_path_buf), self.log_path())
    }

    fn log_path(&self) -> PathBuf {
        self.log_dir.path().join("server.log")
    }

    /// Everything the server (and its restarts) logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("---- tideline server log ({}) ----\n{}", self.endpoint, log_tail(&self.log_path(), 80));
        }
    }
}

fn launch(data_dir: Option<&Path>, extra_args: &[String], fd_limit: Option<u32>, log_path: &Path) -> (Child, String) {
    let log = OpenOptions::new().create(true).append(true).open(log_path).expect("open server log");
    let mut command = match fd_limit {
        None => Command::new(env!("CARGO_BIN_EXE_tideline")),
        Some(limit) => {
            // The shell lowers its own limit, then becomes the server, which inherits it.
            let mut shell = Command::new("bash");
            shell.arg("-c").arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\"")).arg(env!("CARGO_BIN_EXE_tideline"));
            shell
        }
    };
    command.arg("serve").arg("--listen").arg("127.0.0.1:0");
    match data_dir {
        Some(dir) => command.arg("--data-dir").arg(dir),
        None => command.arg("--in-memory"),
    };
    command.args(extra_args);
    // The caller's TIDELINE_* settings must not leak into a test server.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("TIDELINE_") {
            command.env_remove::<OsString>(key);
        }
    }
    command.env("TIDELINE_LOG", "info");
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::from(log));
    let mut child = command.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", env!("CARGO_BIN_EXE_tideline")));

    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    // Keeps draining stdout after the first line so the server never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let mut tx = Some(tx);
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if let Some(url) = line.trim_end().strip_prefix(LISTENING_PREFIX) {
                        if let Some(tx) = tx.take() {
                            let _ = tx.send(url.to_string());
                        }
                    }
                }
            }
        }
    });

    match rx.recv_timeout(STARTUP_TIMEOUT) {
        Ok(url) => {
            let port = ["http://127.0.0.1:", "https://127.0.0.1:"]
                .iter()
                .find_map(|prefix| url.strip_prefix(prefix))
                .and_then(|p| p.parse::<u16>().ok())
                .unwrap_or_else(|| panic!("unexpected listening line: {LISTENING_PREFIX}{url}"));
            assert_ne!(port, 0, "server reported port 0");
            (child, url)
        }
        Err(error) => {
            let _ = child.kill();
            let status = child.wait();
            panic!(
                "tideline did not print its listening line within {STARTUP_TIMEOUT:?} ({error}); exit: {status:?}\n---- log ----\n{}",
                log_tail(log_path, 80)
            );
        }
    }
}

fn log_tail(path: &Path, lines: usize) -> String {
    let mut text = String::new();
    if let Ok(mut file) = File::open(path) {
        let _ = file.read_to_string(&mut text);
    }
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn make_client(endpoint: &str) -> Client {
    Client::from_conf(client_config(endpoint).build())
}

/// A client for an https `endpoint` whose certificate is `certificate_pem` (self-issued in tests),
/// trusted instead of the system's roots.
pub fn client_trusting(endpoint: &str, certificate_pem: &str) -> Client {
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(
            TlsContext::builder()
                .with_trust_store(TrustStore::empty().with_pem_certificate(certificate_pem.as_bytes()))
                .build()
                .expect("TLS context"),
        )
        .build_https();
    Client::from_conf(client_config(endpoint).http_client(http_client).build())
}

fn client_config(endpoint: &str) -> aws_sdk_kinesis::config::Builder {
    aws_sdk_kinesis::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(
            "AKIDTIDELINETEST",
            "tideline-test-secret",
            None,
            None,
            "tideline-tests",
        ))
        .retry_config(RetryConfig::disabled())
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
        .timeout_config(TimeoutConfig::builder().operation_timeout(Duration::from_secs(30)).build())
}

// ---------------------------------------------------------------------------------------------
// Names

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A stream name unique within this test process (valid for AWS's `[a-zA-Z0-9_.-]+`).
pub fn unique_name(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, AtomicOrdering::Relaxed);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{prefix}-{}-{n}-{nanos:x}", std::process::id())
}

pub fn stream_arn(name: &str) -> String {
    format!("arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{name}")
}

pub fn shard_id(index: u32) -> String {
    format!("shardId-{index:012}")
}

// ---------------------------------------------------------------------------------------------
// Hash keys

/// AWS routes a record to the shard whose range holds MD5(partition key) read as a big-endian
/// 128-bit unsigned integer.
pub fn partition_hash(partition_key: &str) -> u128 {
    let digest = Md5::digest(partition_key.as_bytes());
    u128::from_be_bytes(digest.into())
}

/// floor(i * 2^128 / n): where shard `i` of `n` evenly split shards starts.
pub fn even_split_start(i: u32, n: u32) -> u128 {
    assert!(n > 0 && i < n);
    let n128 = n as u128;
    // 2^128 = q * n + r, computed without overflowing (2^128 = u128::MAX + 1).
    let (mut q, mut r) = (u128::MAX / n128, u128::MAX % n128 + 1);
    if r == n128 {
        q += 1;
        r = 0;
    }
    i as u128 * q + (i as u128 * r) / n128
}

/// The `n` ranges `[start, end]` of a stream created with `n` shards.
pub fn even_split_ranges(n: u32) -> Vec<(u128, u128)> {
    (0..n)
        .map(|i| {
            let start = even_split_start(i, n);
            let end = if i + 1 == n { MAX_HASH_KEY } else { even_split_start(i + 1, n) - 1 };
            (start, end)
        })
        .collect()
}

pub fn parse_hash(text: &str) -> u128 {
    text.parse::<u128>().unwrap_or_else(|_| panic!("not a 128-bit decimal hash key: {text:?}"))
}

/// `(start, end)` of a shard's hash key range.
pub fn range_of(shard: &Shard) -> (u128, u128) {
    let range = shard.hash_key_range().unwrap_or_else(|| panic!("shard {} has no HashKeyRange", shard.shard_id()));
    (parse_hash(range.starting_hash_key()), parse_hash(range.ending_hash_key()))
}

pub fn is_open(shard: &Shard) -> bool {
    shard.sequence_number_range().and_then(|r| r.ending_sequence_number()).is_none()
}

/// The open shard that owns `hash`.
pub fn owner_of(shards: &[Shard], hash: u128) -> String {
    let owners: Vec<&str> = shards
        .iter()
        .filter(|s| is_open(s))
        .filter(|s| {
            let (start, end) = range_of(s);
            start <= hash && hash <= end
        })
        .map(|s| s.shard_id())
        .collect();
    assert_eq!(owners.len(), 1, "exactly one open shard must own hash {hash}, found {owners:?}");
    owners[0].to_string()
}

/// Asserts the open shards tile [0, 2^128-1] with no gap or overlap.
pub fn assert_open_ranges_cover_key_space(shards: &[Shard]) {
    let mut ranges: Vec<(u128, u128)> = shards.iter().filter(|s| is_open(s)).map(range_of).collect();
    ranges.sort();
    assert!(!ranges.is_empty(), "no open shards");
    assert_eq!(ranges[0].0, 0, "first open range must start at 0: {ranges:?}");
    for pair in ranges.windows(2) {
        assert_eq!(pair[0].1.checked_add(1), Some(pair[1].0), "open ranges must be contiguous: {ranges:?}");
    }
    assert_eq!(ranges.last().map(|r| r.1), Some(MAX_HASH_KEY), "last open range must end at 2^128-1: {ranges:?}");
}

// ---------------------------------------------------------------------------------------------
// Sequence numbers

/// AWS sequence numbers are decimal strings of up to 128 bits; the ones Kinesis hands out today
/// are 56 digits.
pub fn assert_sequence_number(seq: &str) {
    assert_eq!(seq.len(), 56, "sequence number must have 56 digits: {seq:?}");
    assert!(seq.bytes().all(|b| b.is_ascii_digit()), "sequence number must be decimal: {seq:?}");
}

/// Numeric comparison of two decimal sequence numbers (too wide for u128).
pub fn seq_cmp(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

pub fn assert_strictly_increasing(seqs: &[String]) {
    for pair in seqs.windows(2) {
        assert_eq!(
            seq_cmp(&pair[0], &pair[1]),
            Ordering::Less,
            "sequence numbers must strictly increase: {} then {}",
            pair[0],
            pair[1]
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Streams

/// CreateStream (provisioned) and wait until ACTIVE.
pub async fn create_stream(client: &Client, name: &str, shard_count: i32) {
    client
        .create_stream()
        .stream_name(name)
        .shard_count(shard_count)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateStream {name}: {}", DisplayErrorContext(&e)));
    wait_active(client, name).await;
}

/// Polls DescribeStreamSummary until the stream is ACTIVE (AWS creates and reshards
/// asynchronously; tests must not assume it is instant).
pub async fn wait_active(client: &Client, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = client
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("DescribeStreamSummary {name}: {}", DisplayErrorContext(&e)));
        let status = out.stream_description_summary().map(|s| s.stream_status().clone());
        if status == Some(StreamStatus::Active) {
            return;
        }
        assert!(Instant::now() < deadline, "stream {name} not ACTIVE after 10 s (status {status:?})");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// DescribeStream, following HasMoreShards so every shard is returned.
pub async fn describe_all(client: &Client, name: &str) -> (StreamDescription, Vec<Shard>) {
    let mut shards: Vec<Shard> = Vec::new();
    let mut first: Option<StreamDescription> = None;
    for _ in 0..100 {
        let mut request = client.describe_stream().stream_name(name);
        if let Some(last) = shards.last() {
            request = request.exclusive_start_shard_id(last.shard_id());
        }
        let out = request.send().await.unwrap_or_else(|e| panic!("DescribeStream {name}: {}", DisplayErrorContext(&e)));
        let description = out.stream_description().expect("StreamDescription").clone();
        shards.extend(description.shards().iter().cloned());
        let more = description.has_more_shards();
        if first.is_none() {
            first = Some(description);
        }
        if !more {
            return (first.expect("first page"), shards);
        }
    }
    panic!("DescribeStream {name}: HasMoreShards never became false");
}

pub async fn shards_of(client: &Client, name: &str) -> Vec<Shard> {
    describe_all(client, name).await.1
}

pub fn shard_ids(shards: &[Shard]) -> Vec<String> {
    shards.iter().map(|s| s.shard_id().to_string()).collect()
}

pub async fn put(client: &Client, stream: &str, partition_key: &str, data: &[u8]) -> (String, String) {
    let out = client
        .put_record()
        .stream_name(stream)
        .partition_key(partition_key)
        .data(Blob::new(data))
        .send()
        .await
        .unwrap_or_else(|e| panic!("PutRecord {stream}: {}", DisplayErrorContext(&e)));
    (out.shard_id().to_string(), out.sequence_number().to_string())
}

pub async fn put_with_hash_key(
    client: &Client,
    stream: &str,
    partition_key: &str,
    hash_key: u128,
    data: &[u8],
) -> (String, String) {
    let out = client
        .put_record()
        .stream_name(stream)
        .partition_key(partition_key)
        .explicit_hash_key(hash_key.to_string())
        .data(Blob::new(data))
        .send()
        .await
        .unwrap_or_else(|e| panic!("PutRecord {stream}: {}", DisplayErrorContext(&e)));
    (out.shard_id().to_string(), out.sequence_number().to_string())
}

pub async fn iterator(
    client: &Client,
    stream: &str,
    shard: &str,
    kind: ShardIteratorType,
    seq: Option<&str>,
) -> String {
    client
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard)
        .shard_iterator_type(kind.clone())
        .set_starting_sequence_number(seq.map(str::to_string))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetShardIterator {stream}/{shard} {kind:?}: {}", DisplayErrorContext(&e)))
        .shard_iterator()
        .expect("ShardIterator")
        .to_string()
}

/// What reading a shard up to its current end gave.
pub struct ShardRead {
    pub records: Vec<Record>,
    /// Non-empty once a closed shard has been read to its end.
    pub child_shards: Vec<ChildShard>,
    /// True when GetRecords stopped returning a NextShardIterator (closed shard fully read).
    pub closed: bool,
    pub calls: usize,
}

/// Reads from `shard_iterator` until a closed shard ends (no NextShardIterator) or an open shard
/// is caught up (an empty page with MillisBehindLatest 0).
pub async fn read_from(client: &Client, shard_iterator: String) -> ShardRead {
    let mut next = Some(shard_iterator);
    let mut read = ShardRead { records: Vec::new(), child_shards: Vec::new(), closed: false, calls: 0 };
    let mut empty_pages = 0;
    while let Some(it) = next.take() {
        assert!(read.calls < 500, "shard not drained after 500 GetRecords calls");
        assert!(
            empty_pages < 20,
            "20 empty GetRecords pages in a row without MillisBehindLatest 0 (caught up) or the end of the shard"
        );
        read.calls += 1;
        let out = client
            .get_records()
            .shard_iterator(it)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GetRecords: {}", DisplayErrorContext(&e)));
        read.records.extend(out.records().iter().cloned());
        empty_pages = if out.records().is_empty() { empty_pages + 1 } else { 0 };
        if !out.child_shards().is_empty() {
            read.child_shards = out.child_shards().to_vec();
        }
        match out.next_shard_iterator() {
            None => read.closed = true,
            Some(n) => {
                if out.records().is_empty() && out.millis_behind_latest() == Some(0) {
                    break;
                }
                next = Some(n.to_string());
            }
        }
    }
    read
}

pub async fn read_shard(client: &Client, stream: &str, shard: &str) -> ShardRead {
    let it = iterator(client, stream, shard, ShardIteratorType::TrimHorizon, None).await;
    read_from(client, it).await
}

/// Deterministic pseudo-random bytes (xorshift), so expected data needs no RNG crate.
pub fn pseudo_random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Errors

/// The modeled service error of a failed call; panics (with the value) if the call succeeded or
/// failed without reaching the service.
pub fn service_error<T, E, R>(result: Result<T, SdkError<E, R>>) -> E
where
    T: Debug,
    E: std::error::Error + 'static,
    R: Debug,
{
    match result {
        Ok(value) => panic!("expected an AWS error, the call succeeded: {value:?}"),
        Err(SdkError::ServiceError(context)) => context.into_err(),
        Err(other) => panic!("expected an AWS service error, got: {}", DisplayErrorContext(&other)),
    }
}

/// Asserts the error's `__type` code and exact message.
pub fn assert_error<E: ProvideErrorMetadata + Debug>(error: &E, code: &str, message: &str) {
    assert_eq!(error.code(), Some(code), "error code of {error:?}");
    assert_eq!(error.message(), Some(message), "error message of {error:?}");
}
