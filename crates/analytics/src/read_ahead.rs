//! Reading ahead for a running query: each read of the source becomes a [`Round`] whose records
//! are decoded (and, for event-time windows, assigned to their windows) on tokio's blocking pool
//! while the query aggregates and writes the rounds read before it, so that reading, decoding and
//! the query itself use more than one core. Rounds come back in the order they were read, each
//! with what the reader knew right after its read (which shards were idle, where every shard was
//! read to): the watermark, the late rows and the checkpoints are what they would be if every
//! round were read and handled before the next one.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::error::{invalid, Result};
use crate::format::{decode, Decoded};
use crate::source::{IdleTimeout, Positions, ShardRecords, StreamTail};
use crate::table::TableSpec;
use crate::window::{assign, Assigned, WindowKind};

/// How many reads may be decoding or waiting for the query at once: enough to keep both cores
/// busy, few enough that a round's records (at most one read, 10 MiB) times this stay small.
const DEPTH: usize = 4;

/// One read's records, as rows.
pub struct Rows {
    pub shard_id: String,
    pub decoded: Decoded,
    /// The rows grouped by window, when the query's windows allow it ([`ReadAhead::new`]).
    pub assigned: Option<Assigned>,
}

/// One read of the source (or a look that found nothing) and the reader's state after it.
pub struct Round {
    rows: Option<JoinHandle<Result<Rows>>>,
    /// Each shard being read, and whether it was idle.
    pub shards: Vec<(String, bool)>,
    /// Where each shard had been read to.
    pub positions: Positions,
}

impl Round {
    /// The round's rows, once decoded; `None` when the read found no records.
    pub async fn rows(&mut self) -> Result<Option<Rows>> {
        match self.rows.take() {
            Some(handle) => {
                let rows = handle.await.map_err(|error| invalid(format!("decoding records failed: {error}")))?;
                rows.map(Some)
            }
            None => Ok(None),
        }
    }

    pub fn shard_states(&self) -> impl Iterator<Item = (&str, bool)> {
        self.shards.iter().map(|(shard, idle)| (shard.as_str(), *idle))
    }
}

/// A [`StreamTail`] read up to [`DEPTH`] rounds ahead of the query.
pub struct ReadAhead {
    tail: StreamTail,
    source: Arc<TableSpec>,
    idle_timeout: IdleTimeout,
    /// The windows rows are assigned to while decoding, and the event time column.
    windows: Option<(WindowKind, usize)>,
    pending: VecDeque<Round>,
}

impl ReadAhead {
    /// `windows`: assign each read's rows to these windows (over event time in that column)
    /// with the decoding; only for windows that depend on nothing but the row
    /// ([`crate::window::WindowState::assigns_apart`]).
    pub fn new(
        tail: StreamTail,
        source: Arc<TableSpec>,
        idle_timeout: IdleTimeout,
        windows: Option<(WindowKind, usize)>,
    ) -> Self {
        ReadAhead { tail, source, idle_timeout, windows, pending: VecDeque::new() }
    }

    /// The next round: reads ahead first unless `stopping` (then only the rounds already read
    /// are handed out, and after them one with the reader's current state). Waits up to `poll`
    /// for records when nothing is read ahead.
    pub async fn next(&mut self, stopping: bool, poll: Duration) -> Result<Round> {
        while !stopping && self.pending.len() < DEPTH {
            let wait = if self.pending.is_empty() { poll } else { Duration::ZERO };
            let polled = self.tail.next(wait).await?;
            let read = polled.is_some();
            if read || self.pending.is_empty() {
                let round = self.begin(polled);
                self.pending.push_back(round);
            }
            if !read {
                break;
            }
        }
        Ok(match self.pending.pop_front() {
            Some(round) => round,
            None => self.begin(None),
        })
    }

    /// No round is read ahead: the last one handed out was the latest.
    pub fn drained(&self) -> bool {
        self.pending.is_empty()
    }

    /// A round for `polled`, its decoding started.
    fn begin(&self, polled: Option<ShardRecords>) -> Round {
        let shards = self.tail.shard_states(self.idle_timeout).map(|(shard, idle)| (shard.to_string(), idle)).collect();
        let rows = polled.map(|ShardRecords { shard_id, records }| {
            let (source, windows) = (Arc::clone(&self.source), self.windows);
            tokio::task::spawn_blocking(move || -> Result<Rows> {
                let decoded = decode(&source, &shard_id, &records)?;
                let assigned = match windows {
                    // Event-time windows: no floor under the event time.
                    Some((kind, column)) => Some(assign(kind, &decoded.batch, column, i64::MIN)?),
                    None => None,
                };
                Ok(Rows { shard_id, decoded, assigned })
            })
        });
        Round { rows, shards, positions: self.tail.positions().clone() }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use tideline_streams::{Batch, Position, Record, ShardInfo};

    use super::*;
    use crate::source::{BoxFuture, Entries, ShardCursor, StreamAccess};

    /// Shards `s0` (3 records) and `s1` (2 records), each served whole by its first read.
    struct TwoShards;

    struct ReadOnce(Vec<Record>);

    fn records(shard: usize, count: usize) -> Vec<Record> {
        (0..count)
            .map(|i| Record {
                sequence_number: format!("{shard}{i}"),
                partition_key: Bytes::from_static(b"k"),
                data: Bytes::from(format!(r#"{{"id":"s{shard}","ts":"2026-01-01 00:00:0{i}"}}"#)),
                arrival_ms: 0,
            })
            .collect()
    }

    impl ShardCursor for ReadOnce {
        fn read(&mut self, _limit: usize) -> BoxFuture<'_, Result<Batch>> {
            let records = std::mem::take(&mut self.0);
            Box::pin(async move { Ok(Batch { records, millis_behind_latest: 0, end_of_shard: false }) })
        }

        fn wait(&self, timeout: Duration) -> BoxFuture<'_, ()> {
            Box::pin(tokio::time::sleep(timeout))
        }
    }

    impl StreamAccess for TwoShards {
        fn shards<'a>(&'a self, _stream: &'a str) -> BoxFuture<'a, Result<Vec<ShardInfo>>> {
            let shard = |id: &str| ShardInfo { shard_id: id.into(), parents: vec![], open: true, records_written: 0 };
            Box::pin(async move { Ok(vec![shard("s0"), shard("s1")]) })
        }

        fn open<'a>(
            &'a self,
            _stream: &'a str,
            shard: &'a str,
            _from: Position,
        ) -> BoxFuture<'a, Result<Box<dyn ShardCursor>>> {
            let read = match shard {
                "s0" => records(0, 3),
                _ => records(1, 2),
            };
            Box::pin(async move { Ok(Box::new(ReadOnce(read)) as Box<dyn ShardCursor>) })
        }

        fn put<'a>(&'a self, _stream: &'a str, _entries: Entries) -> BoxFuture<'a, Result<()>> {
            Box::pin(async { Ok(()) })
        }

        fn put_firehose<'a>(&'a self, _stream: &'a str, _records: Vec<Vec<u8>>) -> BoxFuture<'a, Result<()>> {
            Box::pin(async { Ok(()) })
        }
    }

    #[tokio::test]
    async fn rounds_come_in_read_order_with_the_reader_state_after_their_own_read() {
        let sql = "CREATE TABLE t (id STRING, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) \
                   WITH ('connector' = 'kinesis', 'stream' = 's', 'format' = 'json')";
        let table = TableSpec::parse(sql, &crate::engine::session()).await.unwrap();
        let tail = StreamTail::new(Arc::new(TwoShards), "s", Position::TrimHorizon, Positions::default());
        let tumble = WindowKind::Tumble { size: 2_000, offset: 0 };
        let mut ahead = ReadAhead::new(tail, Arc::new(table), IdleTimeout::Never, Some((tumble, 1)));
        let poll = Duration::from_millis(10);

        // Both shards were read before the first round is handed out; it carries the positions
        // as they were right after its own read.
        let mut first = ahead.next(false, poll).await.unwrap();
        assert!(!ahead.drained());
        assert_eq!(first.positions.shards.keys().collect::<Vec<_>>(), ["s0"]);
        let rows = first.rows().await.unwrap().unwrap();
        assert_eq!((rows.shard_id.as_str(), rows.decoded.batch.num_rows()), ("s0", 3));
        assert!(rows.assigned.is_some());

        let mut second = ahead.next(false, poll).await.unwrap();
        assert_eq!(second.positions.shards.keys().collect::<Vec<_>>(), ["s0", "s1"]);
        assert_eq!(second.rows().await.unwrap().unwrap().decoded.batch.num_rows(), 2);
        assert!(ahead.drained());

        // Nothing left to read: a round with no rows and the shards as they are now.
        let mut last = ahead.next(true, poll).await.unwrap();
        assert!(last.rows().await.unwrap().is_none());
        assert_eq!(last.shard_states().collect::<Vec<_>>(), [("s0", false), ("s1", false)]);
    }
}
