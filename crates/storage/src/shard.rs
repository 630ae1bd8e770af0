//! The committed, reader-visible side of one shard log. Only the writer thread changes it, and
//! only after the bytes it describes are durable.

use std::sync::Arc;

use parking_lot::RwLock;
use tokio::sync::watch;

use crate::segment::{Scanner, Segment, SPARSE_INTERVAL};
use crate::{ReadBatch, ShardKey, ShardTail, StorageError};

/// A segment as far as it is committed.
#[derive(Clone)]
pub(crate) struct SegmentView {
    pub segment: Arc<Segment>,
    /// Committed bytes.
    pub len: u64,
    /// One past the last committed index in it.
    pub end_index: u64,
}

pub(crate) struct Committed {
    pub next_index: u64,
    /// Records below this index are gone (retention); always the first segment's first index or
    /// more. Stays 0 until retention deletes whole old segments.
    pub trim_index: u64,
    pub last_arrival_ms: Option<i64>,
    pub sealed: bool,
    /// In index order; the last one is the writer's current tail.
    pub segments: Vec<SegmentView>,
}

impl Committed {
    pub fn empty() -> Self {
        Committed { next_index: 0, trim_index: 0, last_arrival_ms: None, sealed: false, segments: Vec::new() }
    }
}

pub(crate) struct ShardLog {
    pub key: ShardKey,
    pub committed: RwLock<Committed>,
    pub watch: watch::Sender<u64>,
}

impl ShardLog {
    pub fn new(key: ShardKey, committed: Committed) -> Self {
        let (watch, _) = watch::channel(committed.next_index);
        ShardLog { key, committed: RwLock::new(committed), watch }
    }

    pub fn tail(&self) -> ShardTail {
        let committed = self.committed.read();
        ShardTail {
            next_index: committed.next_index,
            trim_index: committed.trim_index,
            last_arrival_ms: committed.last_arrival_ms,
            sealed: committed.sealed,
        }
    }

    /// The committed segment holding `index`, if that index is committed and not trimmed.
    fn view_containing(&self, index: u64) -> Option<SegmentView> {
        let committed = self.committed.read();
        if index >= committed.next_index || index < committed.trim_index {
            return None;
        }
        let after = committed.segments.partition_point(|view| view.segment.first_index <= index);
        let view = committed.segments.get(after.checked_sub(1)?)?;
        (index < view.end_index).then(|| view.clone())
    }

    pub fn read(&self, from_index: u64, max_records: usize, max_bytes: usize) -> Result<ReadBatch, StorageError> {
        let start = from_index.max(self.committed.read().trim_index);
        let mut batch = ReadBatch { records: Vec::new(), next_index: start };
        let mut bytes = 0usize;
        while batch.records.len() < max_records {
            let Some(view) = self.view_containing(batch.next_index) else { break };
            let full = read_segment(&view, &mut batch, &mut bytes, max_records, max_bytes)?;
            if full {
                break;
            }
        }
        Ok(batch)
    }

    pub fn index_at_timestamp(&self, ts_ms: i64) -> Result<u64, StorageError> {
        let (next_index, trim_index, views) = {
            let committed = self.committed.read();
            // Cloned so that the probes below (file reads) do not hold up the writer's commits.
            let views: Vec<SegmentView> = committed.segments.iter().filter(|view| view.len > 0).cloned().collect();
            (committed.next_index, committed.trim_index, views)
        };
        // Arrival times are non-decreasing per shard: binary search for the first segment whose
        // first record is not too early; the answer is in the segment before it, or is its start.
        let (mut low, mut high) = (0, views.len());
        while low < high {
            let mid = low + (high - low) / 2;
            if views[mid].segment.first_arrival(views[mid].len)? < ts_ms {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        let after = |at: usize| views.get(at).map_or(next_index, |view| view.segment.first_index);
        let found = match low.checked_sub(1) {
            None => after(0),
            Some(at) => match find_arrival(&views[at], ts_ms)? {
                Some(index) => index,
                None => after(low),
            },
        };
        Ok(found.max(trim_index))
    }
}

/// How large a first read buffer to ask for: enough for the records wanted (guessing small
/// records) plus a sparse interval of frames to skip, so typical reads take one pread.
fn chunk_hint(records: usize, bytes: usize) -> usize {
    records.saturating_mul(256).min(bytes).saturating_add(SPARSE_INTERVAL as usize)
}

/// Appends records from one segment to `batch`; returns true when a limit is reached.
fn read_segment(
    view: &SegmentView,
    batch: &mut ReadBatch,
    bytes: &mut usize,
    max_records: usize,
    max_bytes: usize,
) -> Result<bool, StorageError> {
    let segment = &view.segment;
    let wanted = batch.next_index;
    let (offset, mut expect) = segment.locate(wanted);
    let mut scanner = Scanner::new(
        segment,
        offset,
        view.len,
        chunk_hint(max_records.saturating_sub(batch.records.len()), max_bytes.saturating_sub(*bytes)),
    )?;
    let mut extension = segment.extension();
    let mut full = false;
    while batch.next_index < view.end_index {
        let Some((at, len, record)) = scanner.next()? else {
            return Err(segment.corrupt(scanner.position(), format!("segment ends before index {}", batch.next_index)));
        };
        check_index(segment, at, record.index, expect)?;
        expect += 1;
        extension.observe(record.index, at, record.arrival_ms, len);
        if record.index < batch.next_index {
            continue;
        }
        let size = record.partition_key.len() + record.data.len();
        if !batch.records.is_empty() && *bytes + size > max_bytes {
            full = true;
            break;
        }
        *bytes += size;
        batch.next_index = record.index + 1;
        batch.records.push(record);
        if batch.records.len() >= max_records || *bytes >= max_bytes {
            full = true;
            break;
        }
    }
    segment.extend_index(extension);
    Ok(full)
}

/// First index in the view with `arrival_ms >= ts_ms`, if any.
fn find_arrival(view: &SegmentView, ts_ms: i64) -> Result<Option<u64>, StorageError> {
    let segment = &view.segment;
    let (offset, mut expect) = segment.locate_time(ts_ms, view.end_index);
    let mut scanner = Scanner::new(segment, offset, view.len, 2 * SPARSE_INTERVAL as usize)?;
    let mut extension = segment.extension();
    let mut found = None;
    while let Some((at, len, record)) = scanner.next()? {
        check_index(segment, at, record.index, expect)?;
        expect += 1;
        extension.observe(record.index, at, record.arrival_ms, len);
        if record.arrival_ms >= ts_ms {
            found = Some(record.index);
            break;
        }
    }
    segment.extend_index(extension);
    Ok(found)
}

/// Frames of a segment carry consecutive indices from its first; anything else is damage.
fn check_index(segment: &Segment, offset: u64, found: u64, expected: u64) -> Result<(), StorageError> {
    if found != expected {
        return Err(segment.corrupt(offset, format!("record index {found} where {expected} was expected")));
    }
    Ok(())
}
