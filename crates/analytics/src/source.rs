//! Reading a stream's shards for a query: the [`StreamAccess`] seam (in process through
//! `tideline_streams::reader` inside the server, or through the Kinesis API from `tideline sql`),
//! and [`StreamTail`], which reads every shard of a stream, follows a closed shard to its
//! children once it is read to the end (parents before children), remembers each shard's
//! last sequence number so a job can resume after it, and tells which shards are idle
//! ([`IdleTimeout`]).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tideline_firehose::FirehoseService;
use tideline_streams::StreamsService;
use tideline_streams::{Batch, Position, ShardInfo, ShardReader};

use crate::error::{Result, SqlError};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Records to write to a Kinesis stream: (partition key, data).
pub type Entries = Vec<(String, Vec<u8>)>;

/// What a query needs from Kinesis: list a stream's shards, read one, and write records to a
/// stream or a Firehose delivery stream.
pub trait StreamAccess: Send + Sync + 'static {
    fn shards<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, Result<Vec<ShardInfo>>>;
    fn open<'a>(
        &'a self,
        stream: &'a str,
        shard: &'a str,
        from: Position,
    ) -> BoxFuture<'a, Result<Box<dyn ShardCursor>>>;
    fn put<'a>(&'a self, stream: &'a str, entries: Entries) -> BoxFuture<'a, Result<()>>;
    fn put_firehose<'a>(&'a self, delivery_stream: &'a str, records: Vec<Vec<u8>>) -> BoxFuture<'a, Result<()>>;
}

/// One shard being read forward.
pub trait ShardCursor: Send + Sync {
    fn read(&mut self, limit: usize) -> BoxFuture<'_, Result<Batch>>;
    /// Resolves when records may have arrived, or after `timeout`.
    fn wait(&self, timeout: Duration) -> BoxFuture<'_, ()>;
}

fn stream_error(error: impl std::fmt::Display) -> SqlError {
    SqlError::Stream(error.to_string())
}

/// Reading and writing inside the server: the typed in-process Data Streams and Firehose APIs,
/// no HTTP.
pub struct InProcess {
    pub streams: Arc<StreamsService>,
    pub firehose: Arc<FirehoseService>,
}

impl StreamAccess for InProcess {
    fn shards<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, Result<Vec<ShardInfo>>> {
        Box::pin(async move { Ok(self.streams.stream_info(Some(stream), None).map_err(stream_error)?.shards) })
    }

    fn open<'a>(
        &'a self,
        stream: &'a str,
        shard: &'a str,
        from: Position,
    ) -> BoxFuture<'a, Result<Box<dyn ShardCursor>>> {
        Box::pin(async move {
            let reader = self.streams.open_reader(stream, shard, from).await.map_err(stream_error)?;
            Ok(Box::new(reader) as Box<dyn ShardCursor>)
        })
    }

    fn put<'a>(&'a self, stream: &'a str, entries: Entries) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { crate::sink::put_in_process(&self.streams, stream, entries).await })
    }

    fn put_firehose<'a>(&'a self, delivery_stream: &'a str, records: Vec<Vec<u8>>) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            // Firehose's in-process way in takes one record at a time (PutRecord's checks).
            for data in records {
                self.firehose.put_record_in_process(delivery_stream, data.into()).await.map_err(stream_error)?;
            }
            Ok(())
        })
    }
}

impl ShardCursor for ShardReader {
    fn read(&mut self, limit: usize) -> BoxFuture<'_, Result<Batch>> {
        Box::pin(async move { ShardReader::read(self, limit).await.map_err(stream_error) })
    }

    fn wait(&self, timeout: Duration) -> BoxFuture<'_, ()> {
        Box::pin(ShardReader::wait(self, timeout))
    }
}

/// Records of one shard, from one read.
pub struct ShardRecords {
    pub shard_id: String,
    pub records: Vec<tideline_streams::Record>,
}

/// Where each shard of a stream has been read to: a job's checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Positions {
    /// Shard id → last sequence number read.
    pub shards: BTreeMap<String, String>,
    /// Shards read to their end.
    pub finished: BTreeSet<String>,
}

struct OpenShard {
    shard_id: String,
    cursor: Box<dyn ShardCursor>,
    /// Since when its reads have returned nothing (it is caught up); `None` while they return
    /// records.
    quiet_since: Option<tokio::time::Instant>,
}

/// When a shard that returns no records stops holding back the watermark: Flink's
/// `table.exec.source.idle-timeout` (`SET`, a duration; 0 = never) and the Kinesis connector's
/// `scan.shard.idle.interval` (milliseconds; -1, its default, = never).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleTimeout {
    /// A shard without new records holds the watermark at its latest event time (Flink's default).
    Never,
    /// A shard from which nothing was read for this long is idle.
    After(Duration),
}

impl IdleTimeout {
    /// Tideline's default, where Flink's is [`IdleTimeout::Never`]: a `SELECT` at a terminal is
    /// expected to close its windows once the input stops, not when every shard gets another
    /// record. Not 0: on a live stream every shard is caught up for a moment after each read, and
    /// counting it idle then would let the other shards close windows its next records, put a
    /// few milliseconds later, belong to.
    pub const DEFAULT: IdleTimeout = IdleTimeout::After(Duration::from_secs(1));

    /// A `table.exec.source.idle-timeout` value: Flink's duration syntax (`5 s`, `1min`, `500ms`,
    /// a plain number of milliseconds); zero disables idleness.
    ///
    /// Hand-written: Flink's `TimeUtils.parseDuration` takes a bare number as milliseconds and
    /// unit labels (`min`, `secs`, …) that humantime-style crates do not.
    pub fn from_setting(value: &str) -> Option<IdleTimeout> {
        let value = value.trim();
        let digits = value.find(|ch: char| !ch.is_ascii_digit()).unwrap_or(value.len());
        let amount: u64 = value[..digits].parse().ok()?;
        let unit_ms = match value[digits..].trim().to_ascii_lowercase().as_str() {
            "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => 1,
            "s" | "sec" | "secs" | "second" | "seconds" => 1_000,
            "m" | "min" | "minute" | "minutes" => 60_000,
            "h" | "hour" | "hours" => 3_600_000,
            "d" | "day" | "days" => 86_400_000,
            _ => return None,
        };
        Some(IdleTimeout::from_millis(amount.checked_mul(unit_ms)?))
    }

    /// A `scan.shard.idle.interval` value: milliseconds, idleness off unless positive.
    pub fn from_shard_idle_interval(value: &str) -> Option<IdleTimeout> {
        let millis: i64 = value.trim().parse().ok()?;
        Some(IdleTimeout::from_millis(u64::try_from(millis).unwrap_or(0)))
    }

    fn from_millis(millis: u64) -> IdleTimeout {
        match millis {
            0 => IdleTimeout::Never,
            millis => IdleTimeout::After(Duration::from_millis(millis)),
        }
    }
}

/// How many records one read asks a shard for.
const READ_LIMIT: usize = 10_000;
/// How long a caught-up tail waits for new records before looking again (and checking for
/// children of closed shards).
const IDLE_WAIT: Duration = Duration::from_millis(200);

/// How often a tail lists the stream's shards for children of shards it reads (Flink's
/// `source.shard.discovery.interval` is 10 s).
const DISCOVERY_INTERVAL: Duration = Duration::from_secs(2);

/// Reads every shard of a stream: see the module doc.
pub struct StreamTail {
    access: Arc<dyn StreamAccess>,
    stream: String,
    start: Position,
    open: Vec<OpenShard>,
    positions: Positions,
    /// The next shard to read, round robin.
    next: usize,
    discovered: bool,
    last_discovery: tokio::time::Instant,
}

impl StreamTail {
    /// A tail from `start`, or, for shards in `resume`, after their checkpointed position.
    pub fn new(access: Arc<dyn StreamAccess>, stream: &str, start: Position, resume: Positions) -> Self {
        StreamTail {
            access,
            stream: stream.to_string(),
            start,
            open: Vec::new(),
            positions: resume,
            next: 0,
            discovered: false,
            last_discovery: tokio::time::Instant::now(),
        }
    }

    pub fn positions(&self) -> &Positions {
        &self.positions
    }

    /// The ids of the shards being read and whether each is idle: nothing read from it for
    /// `timeout`.
    pub fn shard_states(&self, timeout: IdleTimeout) -> impl Iterator<Item = (&str, bool)> {
        self.open.iter().map(move |shard| {
            let idle = match timeout {
                IdleTimeout::Never => false,
                IdleTimeout::After(timeout) => shard.quiet_since.is_some_and(|since| since.elapsed() >= timeout),
            };
            (shard.shard_id.as_str(), idle)
        })
    }

    /// Opens the shards that are ready to read: not yet open or finished, and whose parents are
    /// finished or gone (expired).
    async fn discover(&mut self) -> Result<()> {
        let shards = self.access.shards(&self.stream).await?;
        let listed: BTreeSet<&str> = shards.iter().map(|shard| shard.shard_id.as_str()).collect();
        // Parents first: the listing is in creation order, so a closed parent is settled before
        // its children are looked at.
        for shard in &shards {
            let id = shard.shard_id.as_str();
            if self.positions.finished.contains(id) || self.open.iter().any(|open| open.shard_id == id) {
                continue;
            }
            let parents_done = shard
                .parents
                .iter()
                .all(|parent| self.positions.finished.contains(parent) || !listed.contains(parent.as_str()));
            let from = match self.positions.shards.get(id) {
                Some(sequence) => Position::AfterSequenceNumber(sequence.clone()),
                None if !parents_done => continue,
                // Children found later are read from their start.
                None if self.discovered => Position::TrimHorizon,
                // A LATEST start reads only what arrives from now on: closed shards have nothing.
                None if self.start == Position::Latest && !shard.open => {
                    self.positions.finished.insert(id.to_string());
                    continue;
                }
                None => self.start.clone(),
            };
            let cursor = self.access.open(&self.stream, id, from).await?;
            self.open.push(OpenShard { shard_id: id.to_string(), cursor, quiet_since: None });
        }
        self.discovered = true;
        self.last_discovery = tokio::time::Instant::now();
        Ok(())
    }

    /// The next records, waiting up to `timeout` for some; `None` when there were none.
    pub async fn next(&mut self, timeout: Duration) -> Result<Option<ShardRecords>> {
        if !self.discovered {
            self.discover().await?;
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            for _ in 0..self.open.len() {
                let index = self.next % self.open.len();
                self.next = self.next.wrapping_add(1);
                let shard = &mut self.open[index];
                let batch = shard.cursor.read(READ_LIMIT).await?;
                if !batch.records.is_empty() {
                    shard.quiet_since = None;
                } else if shard.quiet_since.is_none() {
                    shard.quiet_since = Some(tokio::time::Instant::now());
                }
                if let Some(last) = batch.records.last() {
                    self.positions.shards.insert(shard.shard_id.clone(), last.sequence_number.clone());
                }
                if batch.end_of_shard {
                    let done = self.open.remove(index);
                    self.positions.finished.insert(done.shard_id.clone());
                    self.positions.shards.remove(&done.shard_id);
                    self.discover().await?;
                    if !batch.records.is_empty() {
                        return Ok(Some(ShardRecords { shard_id: done.shard_id, records: batch.records }));
                    }
                    break;
                }
                if !batch.records.is_empty() {
                    return Ok(Some(ShardRecords { shard_id: shard.shard_id.clone(), records: batch.records }));
                }
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let wait = (deadline - now).min(IDLE_WAIT);
            match self.open.first() {
                // Any shard's wake-up is enough: each read round visits them all.
                Some(shard) if self.open.len() == 1 => shard.cursor.wait(wait).await,
                _ => tokio::time::sleep(wait.min(Duration::from_millis(50))).await,
            }
            if self.open.is_empty() || self.last_discovery.elapsed() >= DISCOVERY_INTERVAL {
                self.discover().await?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_timeouts_read_flinks_duration_syntax() {
        let after = |ms| Some(IdleTimeout::After(Duration::from_millis(ms)));
        assert_eq!(IdleTimeout::from_setting("5 s"), after(5_000));
        assert_eq!(IdleTimeout::from_setting("1min"), after(60_000));
        assert_eq!(IdleTimeout::from_setting("250"), after(250));
        assert_eq!(IdleTimeout::from_setting("0"), Some(IdleTimeout::Never));
        assert_eq!(IdleTimeout::from_setting("soon"), None);
        assert_eq!(IdleTimeout::from_shard_idle_interval("-1"), Some(IdleTimeout::Never));
        assert_eq!(IdleTimeout::from_shard_idle_interval("2000"), after(2_000));
    }
}
