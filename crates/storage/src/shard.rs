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
    /// Records below this index are gone (retention deleted their segments); the first
    /// segment's first index.
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

    pub fn trim_index(&self) -> u64 {
        self.committed.read().trim_index
    }

    /// Where `index` is: in a committed segment, gone (below the trim point or in a range
    /// `tideline repair` quarantined), or not committed yet.
    fn find(&self, index: u64) -> Found {
        let committed = self.committed.read();
        if index < committed.trim_index {
            return Found::Gone(committed.trim_index);
        }
        if index >= committed.next_index {
            return Found::End;
        }
        let after = committed.segments.partition_point(|view| view.segment.first_index <= index);
        match after.checked_sub(1).and_then(|at| committed.segments.get(at)) {
            Some(view) if index < view.end_index && view.segment.lost => Found::Gone(view.end_index),
            Some(view) if index < view.end_index => Found::In(view.clone()),
            _ => Found::End,
        }
    }

    /// Whether retention removed this segment from the log (it may have been read from a
    /// snapshot taken before).
    fn trimmed(&self, view: &SegmentView) -> bool {
        view.end_index <= self.trim_index()
    }

    pub fn read(&self, from_index: u64, max_records: usize, max_bytes: usize) -> Result<ReadBatch, StorageError> {
        let mut batch = ReadBatch { records: Vec::new(), next_index: from_index };
        let mut bytes = 0usize;
        while batch.records.len() < max_records {
            let view = match self.find(batch.next_index) {
                Found::In(view) => view,
                // Records are never served across a gap within one batch: the next read skips it.
                Found::Gone(next) if batch.records.is_empty() => {
                    batch.next_index = next;
                    continue;
                }
                Found::Gone(_) | Found::End => break,
            };
            match self.read_view(&view, &mut batch, &mut bytes, max_records, max_bytes)? {
                Some(false) => {}
                Some(true) => break,
                None if !batch.records.is_empty() => break,
                // Trimmed while we held it: go on from the new trim point.
                None => batch.next_index = batch.next_index.max(self.trim_index()),
            }
        }
        Ok(batch)
    }

    /// Reads from one segment of a snapshot; `Ok(Some(full))` as `read_segment`, or `Ok(None)`
    /// when retention removed the segment (and its file) after the snapshot was taken, so that a
    /// reader racing a trim gets fewer records rather than an error. Records already taken from
    /// the segment were verified and stay valid.
    pub(crate) fn read_view(
        &self,
        view: &SegmentView,
        batch: &mut ReadBatch,
        bytes: &mut usize,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Option<bool>, StorageError> {
        match read_segment(view, batch, bytes, max_records, max_bytes) {
            Ok(full) => Ok(Some(full)),
            Err(_) if self.trimmed(view) => Ok(None),
            Err(error) => Err(error),
        }
    }

    pub fn index_at_timestamp(&self, ts_ms: i64) -> Result<u64, StorageError> {
        loop {
            let trim_index = self.trim_index();
            match self.index_at_timestamp_in_snapshot(ts_ms) {
                // A probed segment was removed by retention meanwhile: ask the trimmed log.
                Err(_) if self.trim_index() != trim_index => continue,
                result => return result,
            }
        }
    }

    fn index_at_timestamp_in_snapshot(&self, ts_ms: i64) -> Result<u64, StorageError> {
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

    /// Retention: the first index to keep when every segment whose records all arrived before
    /// `cutoff_ms` may go, or None if none may. The last segment always stays (it is the
    /// writer's tail), so this is at most its first index. Reads files (blocking): the last
    /// arrival of each candidate is read once and cached, so a steady state costs no I/O.
    pub fn trim_point(&self, cutoff_ms: i64) -> Result<Option<u64>, StorageError> {
        // A snapshot: every segment in it but the last is final, so probing it needs no lock.
        let views: Vec<SegmentView> = self.committed.read().segments.clone();
        let Some((_, older)) = views.split_last() else { return Ok(None) };
        let mut expired = 0;
        for view in older {
            let empty = view.end_index <= view.segment.first_index || view.segment.lost;
            if !empty && view.segment.last_arrival(view.len, view.end_index)? >= cutoff_ms {
                break;
            }
            expired += 1;
        }
        Ok(views.get(expired).filter(|_| expired > 0).map(|view| view.segment.first_index))
    }
}

enum Found {
    In(SegmentView),
    /// No record here; the next one stored is at or after the index given.
    Gone(u64),
    /// Not committed (yet).
    End,
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
        segment.check_index(at, record.index, expect)?;
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
    let mut found = None;
    let start = segment.locate_time(ts_ms, view.end_index);
    segment.scan_indexed(start, view.len, 2 * SPARSE_INTERVAL as usize, |record| {
        if record.arrival_ms >= ts_ms {
            found = Some(record.index);
        }
        found.is_none()
    })?;
    Ok(found)
}
