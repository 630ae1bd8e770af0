//! Reading a stream's shards for a query: the [`StreamAccess`] seam (in process through
//! `tideline_streams::reader` inside the server, or through the Kinesis API from `tideline sql`),
//! and [`StreamTail`], which reads every shard of a stream, follows a closed shard to its
//! children once it is read to the end (parents before children), and remembers each shard's
//! last sequence number so a job can resume after it.

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
    /// The last read returned nothing: this shard is caught up.
    idle: bool,
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

    /// Whether every open shard is caught up (its last read returned nothing).
    pub fn caught_up(&self) -> bool {
        self.open.iter().all(|shard| shard.idle)
    }

    /// The ids of the shards being read and whether each is caught up.
    pub fn shard_states(&self) -> impl Iterator<Item = (&str, bool)> {
        self.open.iter().map(|shard| (shard.shard_id.as_str(), shard.idle))
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
            self.open.push(OpenShard { shard_id: id.to_string(), cursor, idle: false });
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
                shard.idle = batch.records.is_empty();
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
