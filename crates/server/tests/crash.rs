//! Crash safety: no acknowledged record is lost, moved or corrupted when the server is killed
//! with SIGKILL at an arbitrary moment.
//!
//! Each cycle, concurrent producers write PutRecords batches and single PutRecords to a durable
//! server while a metadata task may be creating, resharding or deleting scratch streams; at a
//! random moment the server is SIGKILLed, restarted on the same data directory and checked:
//! every acknowledged record is served at its acknowledged shard and sequence number, byte for
//! byte; what was served after one restart is served identically after every later one; nothing
//! is served that no one wrote; every stream is ACTIVE (or gone if its deletion was acknowledged)
//! and its shards form a valid tree.
//!
//! `TIDELINE_CRASH_CYCLES` (default 20) sets the number of kill/restart cycles;
//! `TIDELINE_CRASH_SEED` replays a run's random choices (the thread timing still varies).
//! See docs/reliability.md.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_kinesis::error::{DisplayErrorContext, SdkError};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, Shard, StreamStatus};
use aws_sdk_kinesis::Client;
use common::*;

const DEFAULT_CYCLES: u32 = 20;
const PRODUCERS: u32 = 4;
/// The metadata task writes to scratch streams under this writer number.
const META_WRITER: u32 = PRODUCERS;
/// Streams the producers write to, with their initial shard counts.
const DATA_STREAMS: [(&str, i32); 2] = [("crash-a", 4), ("crash-b", 3)];
const SCRATCH_PREFIX: &str = "scratch-";
/// Chance (percent) that a cycle runs metadata operations up to the kill.
const META_PERCENT: u64 = 60;
const MAX_SCRATCH_STREAMS: usize = 3;
const MAX_SCRATCH_OPEN_SHARDS: usize = 6;
/// Upper bounds so a hung server fails the test instead of stalling CI.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
const VERIFY_TIMEOUT: Duration = Duration::from_secs(300);
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(5);
/// At most this many failures are printed.
const SHOWN_FAILURES: usize = 25;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    let cycles = env_number("TIDELINE_CRASH_CYCLES").map(|n| n as u32).unwrap_or(DEFAULT_CYCLES);
    let seed = env_number("TIDELINE_CRASH_SEED")
        .unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1));
    println!("crash test: {cycles} cycles, seed {seed} (replay with TIDELINE_CRASH_SEED={seed})");
    let started = Instant::now();
    let mut rng = Rng(seed);
    let mut server = TestServer::durable();
    let mut world = World::default();

    let client = server.client().clone();
    for (name, shards) in DATA_STREAMS {
        create_stream(&client, name, shards).await;
        world.streams.insert(name.to_string(), Presence::Present);
    }
    let first_scratch = format!("{SCRATCH_PREFIX}0-0");
    create_stream(&client, &first_scratch, 2).await;
    world.streams.insert(first_scratch, Presence::Present);

    let mut totals = Totals::default();
    for cycle in 1..=cycles {
        let kill_after = Duration::from_millis(rng.range(50, 400));
        // The metadata task starts up to 200 ms before the kill: several operations complete
        // and the last one is usually cut short.
        let meta_lead = if rng.chance(META_PERCENT) { Some(Duration::from_millis(rng.range(10, 200))) } else { None };
        let stop = Arc::new(AtomicBool::new(false));
        let client = server.client().clone();

        let mut producers = Vec::new();
        for writer in 0..PRODUCERS {
            let streams: Vec<String> = DATA_STREAMS.iter().map(|(name, _)| name.to_string()).collect();
            producers.push(tokio::spawn(produce(
                client.clone(),
                streams,
                cycle,
                writer,
                rng.fork(),
                Arc::clone(&stop),
            )));
        }
        let meta = meta_lead.map(|lead| {
            let scratch: Vec<String> = world.present_scratch_streams();
            let start = kill_after.saturating_sub(lead);
            tokio::spawn(run_metadata(client.clone(), scratch, cycle, start, rng.fork(), Arc::clone(&stop)))
        });

        tokio::time::sleep(kill_after).await;
        stop.store(true, AtomicOrdering::SeqCst);
        tokio::task::block_in_place(|| server.kill());

        let mut logs = Vec::new();
        for producer in producers {
            logs.push(
                within(DRAIN_TIMEOUT, seed, "a producer to stop after the kill", producer).await.expect("producer"),
            );
        }
        let meta_log = match meta {
            Some(task) => within(DRAIN_TIMEOUT, seed, "the metadata task to stop", task).await.expect("metadata task"),
            None => MetaLog::default(),
        };
        let cycle_stats = world.register(cycle, &logs, &meta_log);

        tokio::task::block_in_place(|| server.kill_and_restart());
        let verify_started = Instant::now();
        let verified = within(VERIFY_TIMEOUT, seed, "verification", world.verify(server.client(), cycle)).await;
        match verified {
            Ok(read) => {
                println!(
                    "cycle {cycle:>3}: killed after {:>3} ms; {} of {} records acknowledged ({} requests, {} failed \
                     while up), {} unacknowledged served; metadata: {}; {} records verified in {} ms",
                    kill_after.as_millis(),
                    cycle_stats.acked,
                    cycle_stats.attempted,
                    cycle_stats.requests,
                    cycle_stats.errors_while_up,
                    read.unacked_served_now,
                    if meta_log.events.is_empty() { "-".to_string() } else { meta_log.summary() },
                    read.records,
                    verify_started.elapsed().as_millis()
                );
                for error in logs.iter().flat_map(|log| &log.errors_while_up).chain(&meta_log.refusals).take(3) {
                    println!("    while up: {error}");
                }
                totals.add(&cycle_stats, &read);
            }
            Err(failures) => {
                let (data_dir, log) = server.keep_files();
                panic!(
                    "crash test failed after kill #{cycle} (seed {seed}; replay with TIDELINE_CRASH_SEED={seed}); \
                     data dir kept at {}, server log at {}; {} failure(s):\n  {}{}",
                    data_dir.map(|d| d.display().to_string()).unwrap_or_else(|| "(none)".to_string()),
                    log.display(),
                    failures.len(),
                    failures.iter().take(SHOWN_FAILURES).cloned().collect::<Vec<_>>().join("\n  "),
                    if failures.len() > SHOWN_FAILURES { "\n  …" } else { "" }
                );
            }
        }
    }
    println!(
        "crash test passed: {cycles} kill -9 cycles in {:.1} s, seed {seed}; {} records attempted, {} acknowledged \
         (all verified after every later restart), {} unacknowledged of which {} were served; {} metadata \
         operations ({} acknowledged); {} records read in the last check",
        started.elapsed().as_secs_f64(),
        totals.attempted,
        totals.acked,
        totals.attempted - totals.acked,
        totals.unacked_served,
        totals.meta_ops,
        totals.meta_acked,
        totals.last_read,
    );
}

// ---------------------------------------------------------------------------------------------
// Randomness and record identity

/// SplitMix64: tiny, seedable and good enough to choose sizes, timings and operations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn u128(&mut self) -> u128 {
        (u128::from(self.next()) << 64) | u128::from(self.next())
    }

    /// An independent generator for a task, so each task's choices depend only on the seed.
    fn fork(&mut self) -> Rng {
        Rng(self.next())
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Who wrote a record: the partition key spells it out and the data is derived from it, so any
/// record read back can be checked byte for byte without keeping its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct RecordId {
    cycle: u32,
    writer: u32,
    n: u32,
}

impl RecordId {
    fn partition_key(self) -> String {
        format!("c{}.w{}.n{}", self.cycle, self.writer, self.n)
    }

    fn parse(partition_key: &str) -> Option<Self> {
        let mut parts = partition_key.split('.');
        let cycle = parts.next()?.strip_prefix('c')?.parse().ok()?;
        let writer = parts.next()?.strip_prefix('w')?.parse().ok()?;
        let n = parts.next()?.strip_prefix('n')?.parse().ok()?;
        parts.next().is_none().then_some(RecordId { cycle, writer, n })
    }

    /// 0..=4096 bytes: mostly small, a fifth between 512 bytes and 4 KiB, some (nearly) empty.
    fn payload(self) -> Vec<u8> {
        let s = mix((u64::from(self.cycle) << 40) ^ (u64::from(self.writer) << 32) ^ u64::from(self.n));
        let len = match s % 10 {
            0 => (s >> 20) % 17,
            1 | 2 => 512 + (s >> 20) % 3585,
            _ => 16 + (s >> 20) % 497,
        };
        pseudo_random_bytes(s, len as usize)
    }
}

// ---------------------------------------------------------------------------------------------
// Producers

/// One record a producer tried to write.
struct Attempt {
    id: RecordId,
    stream: String,
    /// `(ShardId, SequenceNumber)` when the put was acknowledged.
    ack: Option<(String, String)>,
}

#[derive(Default)]
struct WriterLog {
    attempts: Vec<Attempt>,
    requests: u64,
    /// Failures before the kill (the server was up): not data loss, but worth showing.
    errors_while_up: Vec<String>,
}

impl WriterLog {
    /// Sends a PutRecords (or, for one record and `single`, a PutRecord) and logs the outcome;
    /// false once the server is gone.
    async fn put(
        &mut self,
        client: &Client,
        stream: &str,
        ids: Vec<RecordId>,
        single: bool,
        stop: &AtomicBool,
    ) -> bool {
        self.requests += 1;
        let result: Result<Vec<Option<(String, String)>>, String> = if single && ids.len() == 1 {
            client
                .put_record()
                .stream_name(stream)
                .partition_key(ids[0].partition_key())
                .data(Blob::new(ids[0].payload()))
                .send()
                .await
                .map(|out| vec![Some((out.shard_id().to_string(), out.sequence_number().to_string()))])
                .map_err(describe_error)
        } else {
            let mut request = client.put_records().stream_name(stream);
            for id in &ids {
                let entry = PutRecordsRequestEntry::builder()
                    .partition_key(id.partition_key())
                    .data(Blob::new(id.payload()))
                    .build()
                    .expect("PutRecordsRequestEntry");
                request = request.records(entry);
            }
            match request.send().await {
                Ok(out) if out.records().len() == ids.len() => Ok(out
                    .records()
                    .iter()
                    .map(|entry| match (entry.shard_id(), entry.sequence_number(), entry.error_code()) {
                        (Some(shard), Some(seq), None) => Some((shard.to_string(), seq.to_string())),
                        _ => None,
                    })
                    .collect()),
                Ok(out) => {
                    Err(format!("PutRecords returned {} results for {} records", out.records().len(), ids.len()))
                }
                Err(error) => Err(describe_error(error)),
            }
        };
        let up = !stop.load(AtomicOrdering::SeqCst);
        let acks = match result {
            Ok(acks) => {
                if up && acks.iter().any(Option::is_none) {
                    self.errors_while_up.push(format!("PutRecords to {stream}: some records failed"));
                }
                acks
            }
            Err(error) => {
                if up {
                    self.errors_while_up.push(format!("put to {stream}: {error}"));
                }
                vec![None; ids.len()]
            }
        };
        let gone = acks.iter().all(Option::is_none) && !up;
        for (id, ack) in ids.into_iter().zip(acks) {
            self.attempts.push(Attempt { id, stream: stream.to_string(), ack });
        }
        !gone
    }
}

fn describe_error<E: std::error::Error + 'static, R: std::fmt::Debug>(error: SdkError<E, R>) -> String {
    DisplayErrorContext(&error).to_string()
}

/// 1..=200 records, mostly small batches: the point is many crash points, not volume (every
/// check re-reads everything written so far).
fn batch_size(rng: &mut Rng) -> u32 {
    match rng.range(0, 99) {
        0..=59 => rng.range(1, 10) as u32,
        60..=89 => rng.range(11, 50) as u32,
        _ => rng.range(51, 200) as u32,
    }
}

/// Writes until the server is killed.
async fn produce(
    client: Client,
    streams: Vec<String>,
    cycle: u32,
    writer: u32,
    mut rng: Rng,
    stop: Arc<AtomicBool>,
) -> WriterLog {
    let mut log = WriterLog::default();
    let mut n = 0;
    while !stop.load(AtomicOrdering::SeqCst) {
        let stream = &streams[rng.below(streams.len())];
        let single = rng.chance(30);
        let count = if single { 1 } else { batch_size(&mut rng) };
        let ids: Vec<RecordId> = (n..n + count).map(|n| RecordId { cycle, writer, n }).collect();
        n += count;
        if !log.put(&client, stream, ids, single, &stop).await {
            break;
        }
    }
    log
}

// ---------------------------------------------------------------------------------------------
// Metadata operations

#[derive(Debug)]
enum MetaOp {
    Create { stream: String, shards: i32 },
    Split { stream: String, shard: String, at: u128 },
    Merge { stream: String, shard: String, adjacent: String },
    Delete { stream: String },
}

#[derive(Debug)]
enum Outcome {
    Acked,
    /// A service error while the server was up: the operation did nothing.
    Refused,
    /// The server went away: the operation may or may not have happened.
    Unknown,
}

#[derive(Default)]
struct MetaLog {
    events: Vec<(MetaOp, Outcome)>,
    writes: WriterLog,
    refusals: Vec<String>,
}

impl MetaLog {
    fn summary(&self) -> String {
        let ops: Vec<String> = self
            .events
            .iter()
            .map(|(op, outcome)| {
                let name = match op {
                    MetaOp::Create { .. } => "create",
                    MetaOp::Split { .. } => "split",
                    MetaOp::Merge { .. } => "merge",
                    MetaOp::Delete { .. } => "delete",
                };
                match outcome {
                    Outcome::Acked => name.to_string(),
                    Outcome::Refused => format!("{name}(refused)"),
                    Outcome::Unknown => format!("{name}(interrupted)"),
                }
            })
            .collect();
        ops.join(" ")
    }
}

/// From `start` until the kill: writes to the scratch streams and creates, splits, merges and
/// deletes them, so the kill may land in the middle of a metadata change.
async fn run_metadata(
    client: Client,
    mut scratch: Vec<String>,
    cycle: u32,
    start: Duration,
    mut rng: Rng,
    stop: Arc<AtomicBool>,
) -> MetaLog {
    tokio::time::sleep(start).await;
    let mut log = MetaLog::default();
    let mut n = 0;
    let mut created = 0;
    while !stop.load(AtomicOrdering::SeqCst) {
        if scratch.is_empty() || (scratch.len() < MAX_SCRATCH_STREAMS && rng.chance(20)) {
            let op =
                MetaOp::Create { stream: format!("{SCRATCH_PREFIX}{cycle}-{created}"), shards: rng.range(1, 3) as i32 };
            created += 1;
            if !log.apply(&client, op, &stop).await {
                break;
            }
            if let Some((MetaOp::Create { stream, .. }, Outcome::Acked)) = log.events.last() {
                scratch.push(stream.clone());
            }
            continue;
        }
        let target = rng.below(scratch.len());
        let stream = scratch[target].clone();
        if rng.chance(35) {
            let count = rng.range(1, 30) as u32;
            let ids: Vec<RecordId> = (n..n + count).map(|n| RecordId { cycle, writer: META_WRITER, n }).collect();
            n += count;
            if !log.writes.put(&client, &stream, ids, false, &stop).await {
                break;
            }
            continue;
        }
        let mut open = match open_shards(&client, &stream).await {
            Ok(open) => open,
            Err(error) => {
                if stop.load(AtomicOrdering::SeqCst) {
                    break;
                }
                log.refusals.push(format!("DescribeStream {stream}: {error}"));
                scratch.remove(target);
                continue;
            }
        };
        open.sort_by_key(|s| range_of(s).0);
        let op = if open.len() < MAX_SCRATCH_OPEN_SHARDS && rng.chance(45) {
            let shard = &open[rng.below(open.len())];
            let (lo, hi) = range_of(shard);
            if hi == lo {
                continue;
            }
            // NewStartingHashKey must lie in (start, end].
            let at = lo + 1 + rng.u128() % (hi - lo);
            MetaOp::Split { stream, shard: shard.shard_id().to_string(), at }
        } else if open.len() >= 2 && rng.chance(75) {
            let i = rng.below(open.len() - 1);
            MetaOp::Merge {
                stream,
                shard: open[i].shard_id().to_string(),
                adjacent: open[i + 1].shard_id().to_string(),
            }
        } else if scratch.len() >= 2 {
            scratch.remove(target);
            MetaOp::Delete { stream }
        } else {
            continue;
        };
        if !log.apply(&client, op, &stop).await {
            break;
        }
    }
    log
}

impl MetaLog {
    /// Sends `op` and logs it; false once the server is gone.
    async fn apply(&mut self, client: &Client, op: MetaOp, stop: &AtomicBool) -> bool {
        let result = match &op {
            MetaOp::Create { stream, shards } => client
                .create_stream()
                .stream_name(stream)
                .shard_count(*shards)
                .send()
                .await
                .map(|_| ())
                .map_err(describe_error),
            MetaOp::Split { stream, shard, at } => client
                .split_shard()
                .stream_name(stream)
                .shard_to_split(shard)
                .new_starting_hash_key(at.to_string())
                .send()
                .await
                .map(|_| ())
                .map_err(describe_error),
            MetaOp::Merge { stream, shard, adjacent } => client
                .merge_shards()
                .stream_name(stream)
                .shard_to_merge(shard)
                .adjacent_shard_to_merge(adjacent)
                .send()
                .await
                .map(|_| ())
                .map_err(describe_error),
            MetaOp::Delete { stream } => {
                client.delete_stream().stream_name(stream).send().await.map(|_| ()).map_err(describe_error)
            }
        };
        let up = !stop.load(AtomicOrdering::SeqCst);
        let outcome = match result {
            Ok(()) => Outcome::Acked,
            Err(error) if up => {
                self.refusals.push(format!("{op:?}: {error}"));
                Outcome::Refused
            }
            Err(_) => Outcome::Unknown,
        };
        let gone = matches!(outcome, Outcome::Unknown);
        self.events.push((op, outcome));
        !gone
    }
}

/// The open shards of `stream`, without panicking when the server goes away.
async fn open_shards(client: &Client, stream: &str) -> Result<Vec<Shard>, String> {
    let mut shards: Vec<Shard> = Vec::new();
    loop {
        let mut request = client.describe_stream().stream_name(stream);
        if let Some(last) = shards.last() {
            request = request.exclusive_start_shard_id(last.shard_id());
        }
        let out = request.send().await.map_err(describe_error)?;
        let description = out.stream_description().ok_or("no StreamDescription")?;
        shards.extend(description.shards().iter().cloned());
        if !description.has_more_shards() || description.shards().is_empty() {
            return Ok(shards.into_iter().filter(is_open).collect());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// What must hold after a restart

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Presence {
    Present,
    Absent,
    /// Its creation or deletion was interrupted: the next check decides.
    Either,
}

/// A record as served, to compare with later restarts.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Served {
    seq: String,
    partition_key: String,
    len: usize,
    digest: u64,
}

/// What a shard looked like, to compare with later restarts.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ShardShape {
    range: (u128, u128),
    parent: Option<String>,
    adjacent_parent: Option<String>,
    starting_seq: String,
    ending_seq: Option<String>,
}

#[derive(Default)]
struct World {
    /// Every record ever attempted, acknowledged or not.
    attempts: HashMap<RecordId, Attempt>,
    streams: BTreeMap<String, Presence>,
    /// Shards an acknowledged SplitShard or MergeShards closed.
    must_be_closed: BTreeSet<(String, String)>,
    /// Unacknowledged records of the last cycle, to settle at the next check.
    unsettled: Vec<RecordId>,
    /// Unacknowledged records that were not there after the restart that followed them: they
    /// must never show up later.
    lost_for_good: HashSet<RecordId>,
    /// Per (stream, shard): the records served at the last check, in order.
    served: BTreeMap<(String, String), Vec<Served>>,
    shapes: BTreeMap<(String, String), ShardShape>,
}

#[derive(Default)]
struct CycleStats {
    attempted: u64,
    acked: u64,
    requests: u64,
    errors_while_up: usize,
    meta_ops: u64,
    meta_acked: u64,
}

struct ReadStats {
    records: u64,
    unacked_served_now: u64,
}

#[derive(Default)]
struct Totals {
    attempted: u64,
    acked: u64,
    unacked_served: u64,
    meta_ops: u64,
    meta_acked: u64,
    last_read: u64,
}

impl Totals {
    fn add(&mut self, cycle: &CycleStats, read: &ReadStats) {
        self.attempted += cycle.attempted;
        self.acked += cycle.acked;
        self.unacked_served += read.unacked_served_now;
        self.meta_ops += cycle.meta_ops;
        self.meta_acked += cycle.meta_acked;
        self.last_read = read.records;
    }
}

impl World {
    fn present_scratch_streams(&self) -> Vec<String> {
        self.streams
            .iter()
            .filter(|(name, presence)| name.starts_with(SCRATCH_PREFIX) && **presence == Presence::Present)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Takes in what the producers and the metadata task did before the kill.
    fn register(&mut self, cycle: u32, logs: &[WriterLog], meta: &MetaLog) -> CycleStats {
        let mut stats = CycleStats::default();
        for log in logs.iter().chain(std::iter::once(&meta.writes)) {
            stats.requests += log.requests;
            stats.errors_while_up += log.errors_while_up.len();
            for attempt in &log.attempts {
                assert_eq!(attempt.id.cycle, cycle);
                stats.attempted += 1;
                if attempt.ack.is_some() {
                    stats.acked += 1;
                } else {
                    self.unsettled.push(attempt.id);
                }
                let copy = Attempt { id: attempt.id, stream: attempt.stream.clone(), ack: attempt.ack.clone() };
                assert!(self.attempts.insert(attempt.id, copy).is_none(), "record id reused: {:?}", attempt.id);
            }
        }
        stats.errors_while_up += meta.refusals.len();
        for (op, outcome) in &meta.events {
            stats.meta_ops += 1;
            let acked = matches!(outcome, Outcome::Acked);
            stats.meta_acked += u64::from(acked);
            match (op, outcome) {
                (MetaOp::Create { stream, .. }, Outcome::Acked) => self.set_presence(stream, Presence::Present),
                (MetaOp::Delete { stream }, Outcome::Acked) => self.set_presence(stream, Presence::Absent),
                (MetaOp::Create { stream, .. } | MetaOp::Delete { stream }, Outcome::Unknown) => {
                    self.set_presence(stream, Presence::Either)
                }
                (MetaOp::Create { stream, .. }, Outcome::Refused) => {
                    self.streams.entry(stream.clone()).or_insert(Presence::Absent);
                }
                (MetaOp::Split { stream, shard, .. }, Outcome::Acked) => {
                    self.must_be_closed.insert((stream.clone(), shard.clone()));
                }
                (MetaOp::Merge { stream, shard, adjacent }, Outcome::Acked) => {
                    self.must_be_closed.insert((stream.clone(), shard.clone()));
                    self.must_be_closed.insert((stream.clone(), adjacent.clone()));
                }
                _ => {}
            }
        }
        stats
    }

    fn set_presence(&mut self, stream: &str, presence: Presence) {
        self.streams.insert(stream.to_string(), presence);
    }

    /// Checks everything that must hold after a restart; returns what was read, or every
    /// violation found.
    async fn verify(&mut self, client: &Client, cycle: u32) -> Result<ReadStats, Vec<String>> {
        let mut failures = Vec::new();
        let listed = list_stream_names(client).await;
        for name in &listed {
            if !self.streams.contains_key(name) {
                failures.push(format!("stream {name} exists but nobody created it"));
            }
        }
        for (name, presence) in self.streams.iter_mut() {
            let present = listed.contains(name);
            match (*presence, present) {
                (Presence::Present, false) => failures.push(format!("stream {name} was acknowledged but is gone")),
                (Presence::Absent, true) => {
                    failures.push(format!("stream {name} was deleted (acknowledged) but exists"))
                }
                (Presence::Either, _) => *presence = if present { Presence::Present } else { Presence::Absent },
                _ => {}
            }
        }
        let gone: Vec<String> =
            self.streams.iter().filter(|(_, p)| **p == Presence::Absent).map(|(name, _)| name.clone()).collect();
        for name in &gone {
            self.served.retain(|(stream, _), _| stream != name);
            self.shapes.retain(|(stream, _), _| stream != name);
            self.must_be_closed.retain(|(stream, _)| stream != name);
        }

        let mut found: HashMap<RecordId, (String, String)> = HashMap::new();
        let mut served_now: BTreeMap<(String, String), Vec<Served>> = BTreeMap::new();
        let mut records = 0;
        let present: Vec<String> = listed.iter().filter(|name| self.streams.contains_key(*name)).cloned().collect();
        for stream in &present {
            if let Err(status) = wait_for_active(client, stream).await {
                failures.push(format!("stream {stream} is {status} {ACTIVE_TIMEOUT:?} after the restart, not ACTIVE"));
            }
            let shards = shards_of(client, stream).await;
            self.check_shapes(stream, &shards, &mut failures);
            let reads = read_tree(client, stream, &shards, &mut failures).await;
            for (shard, shard_records) in reads {
                let key = (stream.clone(), shard.clone());
                let mut served = Vec::with_capacity(shard_records.len());
                for record in shard_records {
                    records += 1;
                    let seq = record.sequence_number().to_string();
                    let partition_key = record.partition_key().unwrap_or("").to_string();
                    let data = record.data().as_ref();
                    let at =
                        format!("{stream}/{shard} seq {seq} (partition key {partition_key:?}, {} bytes)", data.len());
                    match RecordId::parse(&partition_key).and_then(|id| self.attempts.get(&id)) {
                        None => failures.push(format!("{at}: no one wrote this record")),
                        Some(attempt) => {
                            let id = attempt.id;
                            if attempt.stream != *stream {
                                failures.push(format!("{at}: written to stream {}", attempt.stream));
                            }
                            let expected = id.payload();
                            if data != expected.as_slice() {
                                let first = data.iter().zip(&expected).position(|(a, b)| a != b);
                                failures.push(format!(
                                    "{at}: data corrupted: expected {} bytes, first difference at byte {first:?}",
                                    expected.len()
                                ));
                            }
                            if let Some((ack_shard, ack_seq)) = &attempt.ack {
                                if *ack_shard != shard || *ack_seq != seq {
                                    failures.push(format!("{at}: acknowledged as {ack_shard} seq {ack_seq}"));
                                }
                            }
                            if self.lost_for_good.contains(&id) {
                                failures.push(format!(
                                    "{at}: unacknowledged record absent after an earlier restart reappeared"
                                ));
                            }
                            if let Some((other_shard, other_seq)) = found.insert(id, (shard.clone(), seq.clone())) {
                                failures
                                    .push(format!("{at}: also served at {other_shard} seq {other_seq} (duplicate)"));
                            }
                        }
                    }
                    served.push(Served { seq, partition_key, len: data.len(), digest: fnv1a(data) });
                }
                if let Some(before) = self.served.get(&key) {
                    compare_served(stream, &shard, before, &served, &mut failures);
                }
                served_now.insert(key, served);
            }
        }
        for ((stream, shard), before) in &self.served {
            if present.contains(stream) && !served_now.contains_key(&(stream.clone(), shard.clone())) {
                failures.push(format!("{stream}/{shard}: served {} records before, not read now", before.len()));
            }
        }

        let mut missing = 0;
        for attempt in self.attempts.values() {
            let Some((shard, seq)) = &attempt.ack else { continue };
            if self.streams.get(&attempt.stream) != Some(&Presence::Present) || found.contains_key(&attempt.id) {
                continue;
            }
            missing += 1;
            if missing <= 10 {
                failures.push(format!(
                    "acknowledged record {:?} ({}/{shard} seq {seq}, written before kill #{}) is missing",
                    attempt.id.partition_key(),
                    attempt.stream,
                    attempt.id.cycle
                ));
            }
        }
        if missing > 10 {
            failures.push(format!("… {missing} acknowledged records missing in all"));
        }
        let mut unacked_served_now = 0;
        for id in std::mem::take(&mut self.unsettled) {
            if found.contains_key(&id) {
                unacked_served_now += 1;
            } else {
                self.lost_for_good.insert(id);
            }
        }
        self.served = served_now;
        if failures.is_empty() {
            Ok(ReadStats { records, unacked_served_now })
        } else {
            failures.insert(0, format!("check after kill #{cycle}:"));
            Err(failures)
        }
    }

    /// The shards of `stream` form a valid tree, and every shard seen before is still there,
    /// unchanged except that an open shard may have been closed.
    fn check_shapes(&mut self, stream: &str, shards: &[Shard], failures: &mut Vec<String>) {
        failures.extend(tree_problems(shards).into_iter().map(|p| format!("stream {stream}: {p}")));
        for shard in shards {
            let key = (stream.to_string(), shard.shard_id().to_string());
            let range = shard.sequence_number_range();
            let shape = ShardShape {
                range: range_of(shard),
                parent: shard.parent_shard_id().map(str::to_string),
                adjacent_parent: shard.adjacent_parent_shard_id().map(str::to_string),
                starting_seq: range.map(|r| r.starting_sequence_number().to_string()).unwrap_or_default(),
                ending_seq: range.and_then(|r| r.ending_sequence_number()).map(str::to_string),
            };
            if let Some(before) = self.shapes.get(&key) {
                let reopened = before.ending_seq.is_some() && shape.ending_seq != before.ending_seq;
                let changed = ShardShape { ending_seq: before.ending_seq.clone(), ..shape.clone() } != *before;
                if reopened || changed {
                    failures.push(format!("{stream}/{}: was {before:?}, now {shape:?}", key.1));
                }
            }
            self.shapes.insert(key, shape);
        }
        let ids: HashSet<&str> = shards.iter().map(|s| s.shard_id()).collect();
        for (s, shard) in &self.must_be_closed {
            if s == stream {
                match shards.iter().find(|x| x.shard_id() == shard) {
                    Some(x) if is_open(x) => {
                        failures.push(format!("{stream}/{shard}: its split/merge was acknowledged, but it is open"))
                    }
                    _ => {}
                }
            }
        }
        for ((s, shard), _) in self.shapes.iter() {
            if s == stream && !ids.contains(shard.as_str()) {
                failures.push(format!("{stream}/{shard}: listed after an earlier restart, gone now"));
            }
        }
    }
}

/// Each shard in `before` must start `now`: records once served are served identically, and
/// nothing new appears among them.
fn compare_served(stream: &str, shard: &str, before: &[Served], now: &[Served], failures: &mut Vec<String>) {
    for (i, old) in before.iter().enumerate() {
        match now.get(i) {
            None => {
                failures.push(format!(
                    "{stream}/{shard}: {} records served after the previous restart, only {} now (first gone: seq {})",
                    before.len(),
                    now.len(),
                    old.seq
                ));
                return;
            }
            Some(new) if new != old => {
                failures.push(format!("{stream}/{shard} record #{i}: served as {old:?} before, as {new:?} now"));
                return;
            }
            Some(_) => {}
        }
    }
}

/// Problems with a stream's shard tree: parents exist, closed shards have an
/// EndingSequenceNumber and children that cover exactly their range, and the open shards tile
/// [0, 2^128-1].
fn tree_problems(shards: &[Shard]) -> Vec<String> {
    let mut problems = Vec::new();
    let by_id: HashMap<&str, &Shard> = shards.iter().map(|s| (s.shard_id(), s)).collect();
    if by_id.len() != shards.len() {
        problems.push(format!("duplicate shard ids in {:?}", shard_ids(shards)));
    }
    let mut children: HashMap<&str, Vec<&Shard>> = HashMap::new();
    for shard in shards {
        let (lo, hi) = range_of(shard);
        if lo > hi {
            problems.push(format!("{}: empty hash range {lo}..{hi}", shard.shard_id()));
        }
        for parent in [shard.parent_shard_id(), shard.adjacent_parent_shard_id()].into_iter().flatten() {
            if !by_id.contains_key(parent) {
                problems.push(format!("{}: parent {parent} is not listed", shard.shard_id()));
            }
            children.entry(parent).or_default().push(shard);
        }
    }
    for shard in shards {
        let id = shard.shard_id();
        let kids = children.get(id).map(Vec::as_slice).unwrap_or_default();
        let range = range_of(shard);
        match (is_open(shard), kids.len()) {
            (true, 0) => {}
            (true, _) => problems.push(format!("{id}: open, but {:?} name it as parent", shard_ids_of(kids))),
            (false, 0) => problems.push(format!("{id}: closed (has EndingSequenceNumber) but has no children")),
            (false, 2) => {
                // A split: two children, each naming only this parent, covering its range.
                let mut ranges: Vec<(u128, u128)> = kids.iter().map(|k| range_of(k)).collect();
                ranges.sort();
                let single_parent = kids.iter().all(|k| k.adjacent_parent_shard_id().is_none());
                if !single_parent
                    || ranges[0].0 != range.0
                    || ranges[0].1.checked_add(1) != Some(ranges[1].0)
                    || ranges[1].1 != range.1
                {
                    problems
                        .push(format!("{id} {range:?}: split into {:?} with ranges {ranges:?}", shard_ids_of(kids)));
                }
            }
            (false, 1) => {
                // A merge: the child covers exactly the two parents' adjacent ranges.
                let kid = kids[0];
                let parents: Vec<(u128, u128)> = [kid.parent_shard_id(), kid.adjacent_parent_shard_id()]
                    .into_iter()
                    .flatten()
                    .filter_map(|p| by_id.get(p).map(|s| range_of(s)))
                    .collect();
                let mut sorted = parents.clone();
                sorted.sort();
                let ok = sorted.len() == 2
                    && sorted[0].1.checked_add(1) == Some(sorted[1].0)
                    && (sorted[0].0, sorted[1].1) == range_of(kid);
                if !ok {
                    problems.push(format!(
                        "{id}: merged into {} with range {:?} from parent ranges {parents:?}",
                        kid.shard_id(),
                        range_of(kid)
                    ));
                }
            }
            (false, n) => problems.push(format!("{id}: {n} children {:?}", shard_ids_of(kids))),
        }
    }
    let mut open: Vec<(u128, u128)> = shards.iter().filter(|s| is_open(s)).map(range_of).collect();
    open.sort();
    let tiles = !open.is_empty()
        && open[0].0 == 0
        && open.windows(2).all(|w| w[0].1.checked_add(1) == Some(w[1].0))
        && open.last().map(|r| r.1) == Some(MAX_HASH_KEY);
    if !tiles {
        problems.push(format!("open shards do not tile [0, 2^128-1]: {open:?}"));
    }
    problems
}

fn shard_ids_of(shards: &[&Shard]) -> Vec<String> {
    shards.iter().map(|s| s.shard_id().to_string()).collect()
}

/// Reads every shard from TRIM_HORIZON, starting at the shards without parents and following
/// each closed shard's ChildShards; checks sequence numbers increase within each shard and stay
/// within the shard's SequenceNumberRange.
async fn read_tree(
    client: &Client,
    stream: &str,
    shards: &[Shard],
    failures: &mut Vec<String>,
) -> Vec<(String, Vec<aws_sdk_kinesis::types::Record>)> {
    let by_id: HashMap<&str, &Shard> = shards.iter().map(|s| (s.shard_id(), s)).collect();
    let mut queue: VecDeque<String> =
        shards.iter().filter(|s| s.parent_shard_id().is_none()).map(|s| s.shard_id().to_string()).collect();
    let mut visited: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::new();
    while let Some(id) = queue.pop_front() {
        if !visited.insert(id.clone()) {
            continue;
        }
        let Some(shard) = by_id.get(id.as_str()) else {
            failures.push(format!("{stream}: ChildShards names {id}, which DescribeStream does not list"));
            continue;
        };
        let read = read_shard(client, stream, &id).await;
        let mut listed_children: Vec<String> = shards
            .iter()
            .filter(|s| s.parent_shard_id() == Some(id.as_str()) || s.adjacent_parent_shard_id() == Some(id.as_str()))
            .map(|s| s.shard_id().to_string())
            .collect();
        listed_children.sort();
        let mut child_shards: Vec<String> = read.child_shards.iter().map(|c| c.shard_id().to_string()).collect();
        child_shards.sort();
        if is_open(shard) {
            if read.closed || !child_shards.is_empty() {
                failures
                    .push(format!("{stream}/{id}: open shard, but reading it ended with ChildShards {child_shards:?}"));
            }
        } else if !read.closed || child_shards != listed_children {
            failures.push(format!(
                "{stream}/{id}: closed shard; reading ended: {}, ChildShards {child_shards:?}, children listed {listed_children:?}",
                read.closed
            ));
        }
        queue.extend(child_shards);

        let range = shard.sequence_number_range();
        let start = range.map(|r| r.starting_sequence_number()).unwrap_or("0");
        let end = range.and_then(|r| r.ending_sequence_number());
        let mut previous: Option<&str> = None;
        for record in &read.records {
            let seq = record.sequence_number();
            if let Some(prev) = previous {
                if seq_cmp(prev, seq) != std::cmp::Ordering::Less {
                    failures.push(format!("{stream}/{id}: sequence number {seq} follows {prev}"));
                }
            }
            if seq_cmp(seq, start) == std::cmp::Ordering::Less || end.is_some_and(|e| seq_cmp(seq, e).is_gt()) {
                failures
                    .push(format!("{stream}/{id}: sequence number {seq} outside the shard's range {start}..{end:?}"));
            }
            previous = Some(seq);
        }
        out.push((id, read.records));
    }
    for shard in shards {
        if !visited.contains(shard.shard_id()) {
            failures.push(format!("{stream}/{}: not reachable from the parentless shards", shard.shard_id()));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Small helpers

fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    Some(text.trim().parse().unwrap_or_else(|_| panic!("{name} must be a non-negative integer, not {text:?}")))
}

/// Awaits `future`, failing the test (with the seed) if it takes longer than `limit`.
async fn within<T>(limit: Duration, seed: u64, what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, future).await {
        Ok(value) => value,
        Err(_) => {
            panic!("timed out after {limit:?} waiting for {what} (seed {seed}; replay with TIDELINE_CRASH_SEED={seed})")
        }
    }
}

async fn list_stream_names(client: &Client) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut token: Option<String> = None;
    for _ in 0..100 {
        let mut request = client.list_streams().limit(100);
        request = match token.take() {
            Some(token) => request.next_token(token),
            None => request,
        };
        let out = request.send().await.unwrap_or_else(|e| panic!("ListStreams: {}", DisplayErrorContext(&e)));
        names.extend(out.stream_names().iter().cloned());
        match out.next_token() {
            Some(next) if out.has_more_streams() => token = Some(next.to_string()),
            _ => return names,
        }
    }
    panic!("ListStreams: HasMoreStreams never became false");
}

/// Waits until `stream` is ACTIVE; the last status seen if it does not get there in time.
async fn wait_for_active(client: &Client, stream: &str) -> Result<(), String> {
    let deadline = Instant::now() + ACTIVE_TIMEOUT;
    loop {
        let out = client
            .describe_stream_summary()
            .stream_name(stream)
            .send()
            .await
            .unwrap_or_else(|e| panic!("DescribeStreamSummary {stream}: {}", DisplayErrorContext(&e)));
        let status = out.stream_description_summary().map(|s| s.stream_status().clone());
        if status == Some(StreamStatus::Active) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("{status:?}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3))
}

// ---------------------------------------------------------------------------------------------
// The checker's own checks

fn test_shard(id: u32, range: (u128, u128), parents: (Option<u32>, Option<u32>), closed: bool) -> Shard {
    use aws_sdk_kinesis::types::{HashKeyRange, SequenceNumberRange};
    let mut seqs = SequenceNumberRange::builder().starting_sequence_number("1");
    if closed {
        seqs = seqs.ending_sequence_number("9");
    }
    Shard::builder()
        .shard_id(shard_id(id))
        .set_parent_shard_id(parents.0.map(shard_id))
        .set_adjacent_parent_shard_id(parents.1.map(shard_id))
        .hash_key_range(
            HashKeyRange::builder()
                .starting_hash_key(range.0.to_string())
                .ending_hash_key(range.1.to_string())
                .build()
                .expect("HashKeyRange"),
        )
        .sequence_number_range(seqs.build().expect("SequenceNumberRange"))
        .build()
        .expect("Shard")
}

#[test]
fn tree_check_accepts_splits_and_merges_and_catches_broken_trees() {
    let half = 1u128 << 127;
    // 0 splits into 1 and 2; 1 and 2 merge into 3.
    let good = vec![
        test_shard(0, (0, MAX_HASH_KEY), (None, None), true),
        test_shard(1, (0, half - 1), (Some(0), None), true),
        test_shard(2, (half, MAX_HASH_KEY), (Some(0), None), true),
        test_shard(3, (0, MAX_HASH_KEY), (Some(1), Some(2)), false),
    ];
    assert_eq!(tree_problems(&good), Vec::<String>::new());

    let mut reopened = good.clone();
    reopened[1] = test_shard(1, (0, half - 1), (Some(0), None), false);
    assert!(!tree_problems(&reopened).is_empty(), "an open parent and overlapping open shards");

    let gap = vec![
        test_shard(0, (0, MAX_HASH_KEY), (None, None), true),
        test_shard(1, (0, half - 2), (Some(0), None), false),
        test_shard(2, (half, MAX_HASH_KEY), (Some(0), None), false),
    ];
    assert!(!tree_problems(&gap).is_empty(), "a split that loses a hash key");

    let orphan = vec![test_shard(0, (0, MAX_HASH_KEY), (None, None), true)];
    assert!(!tree_problems(&orphan).is_empty(), "a closed shard without children, no open shard");

    let missing_parent = vec![test_shard(5, (0, MAX_HASH_KEY), (Some(4), None), false)];
    assert!(!tree_problems(&missing_parent).is_empty(), "a parent that is not listed");
}

#[test]
fn record_ids_round_trip_and_payloads_are_deterministic() {
    let id = RecordId { cycle: 12, writer: 3, n: 4567 };
    assert_eq!(RecordId::parse(&id.partition_key()), Some(id));
    assert_eq!(RecordId::parse("c1.w2"), None);
    assert_eq!(RecordId::parse("c1.w2.n3.x"), None);
    assert_eq!(id.payload(), id.payload());
    let sizes: Vec<usize> = (0..2000).map(|n| RecordId { n, ..id }.payload().len()).collect();
    assert!(sizes.iter().all(|&len| len <= 4096));
    assert!(sizes.contains(&0) && sizes.iter().any(|&len| len > 3000));
}
