//! Start-up: finds every shard log under `<data_dir>/shards` and makes its last segment whole.
//!
//! Only the last segment of a shard can have a torn tail (a segment is synced before the next
//! one is created), so only it is scanned, frame by frame; at the first frame that is torn, fails
//! its CRC or breaks the index sequence, the file is cut there. Older segments are trusted and
//! cost one `stat` each: their sparse indexes are built later, by the reads that pass through.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::frame;
use crate::open_files::OpenFiles;
use crate::segment::{parse_log_file_name, ScanError, Scanner, Segment};
use crate::shard::{Committed, SegmentView, ShardLog};
use crate::writer::{Tail, WriterShard};
use crate::{ShardKey, StorageError};

/// Scan buffer for recovery: large sequential reads.
const RECOVERY_CHUNK: usize = 1024 * 1024;

pub(crate) struct Recovered {
    pub logs: HashMap<ShardKey, Arc<ShardLog>>,
    pub writers: HashMap<ShardKey, WriterShard>,
}

/// Directory entries whose names parse as `T`, sorted; anything else is reported and skipped.
pub(crate) fn numbered_dirs<T: std::str::FromStr + Ord>(dir: &Path) -> Result<Vec<(T, PathBuf)>, StorageError> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|error| StorageError::io_at("listing", dir, error))? {
        let entry = entry.map_err(|error| StorageError::io_at("listing", dir, error))?;
        let path = entry.path();
        match entry.file_name().to_str().and_then(|name| name.parse::<T>().ok()) {
            Some(number) if path.is_dir() => found.push((number, path)),
            _ => tracing::warn!(path = %path.display(), "ignoring unexpected entry in the shard log directory"),
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(found)
}

/// `synced`: the previous run shut down cleanly, so every byte in the logs is already on disk.
/// Otherwise whole frames a killed process wrote but never synced may sit in the page cache;
/// they are valid, become part of the log, and must be made durable before they are served.
pub(crate) fn recover(root: &Path, synced: bool, files: &Arc<OpenFiles>) -> Result<Recovered, StorageError> {
    let mut recovered = Recovered { logs: HashMap::new(), writers: HashMap::new() };
    for (stream_id, stream_dir) in numbered_dirs::<u64>(root)? {
        for (shard_index, shard_dir) in numbered_dirs::<u32>(&stream_dir)? {
            let key = ShardKey { stream_id, shard_index };
            let (log, writer) = recover_shard(key, shard_dir, synced, files)?;
            recovered.logs.insert(key, log);
            recovered.writers.insert(key, writer);
        }
    }
    Ok(recovered)
}

fn recover_shard(
    key: ShardKey,
    dir: PathBuf,
    synced: bool,
    files: &Arc<OpenFiles>,
) -> Result<(Arc<ShardLog>, WriterShard), StorageError> {
    let mut entries = log_files(&dir)?;
    let Some((last_first, last_is_gap, last_path)) = entries.pop() else {
        // A shard whose first segment was never created: empty.
        let log = Arc::new(ShardLog::new(key, Committed::empty()));
        return Ok((Arc::clone(&log), WriterShard::new(log, (Some(dir), files), 0, None, None)));
    };
    if last_is_gap {
        // `tideline repair` puts a gap only before the segment that follows the damage.
        return Err(StorageError::Corrupt {
            path: last_path.display().to_string(),
            offset: 0,
            detail: "a gap marker is the last entry of the shard's log: its segment is missing".into(),
        });
    }
    let mut views = Vec::with_capacity(entries.len() + 1);
    for (at, (first_index, lost, path)) in entries.iter().enumerate() {
        let len = if *lost {
            0
        } else {
            std::fs::metadata(path).map_err(|error| StorageError::io_at("reading", path, error))?.len()
        };
        let end_index = entries.get(at + 1).map_or(last_first, |(next, _, _)| *next);
        views.push(SegmentView {
            segment: Arc::new(Segment::existing_file(files, path.clone(), *first_index, *lost)),
            len,
            end_index,
        });
    }

    let last = Arc::new(Segment::existing_file(files, last_path, last_first, false));
    let TailScan { len, allocated, next_index, mut last_arrival_ms } = scan_tail(&last, synced)?;
    if !synced {
        // Likewise the directory entry of a segment created just before the crash.
        sync_dir(&dir).map_err(|error| StorageError::io_at("syncing directory", &dir, error))?;
    }
    if len == 0 {
        // The last segment is empty: the newest record, if any, ends the one before.
        last_arrival_ms = last_arrival_before(&views);
    }
    views.push(SegmentView { segment: Arc::clone(&last), len, end_index: next_index });
    // Retention removes segments oldest first: the first one left is where the log now starts.
    let trim_index = views.first().map_or(next_index, |view| view.segment.first_index);
    let committed = Committed { next_index, trim_index, last_arrival_ms, sealed: false, segments: views };
    let log = Arc::new(ShardLog::new(key, committed));
    let tail = Tail::new(last, len, allocated);
    Ok((Arc::clone(&log), WriterShard::new(log, (Some(dir), files), next_index, last_arrival_ms, Some(tail))))
}

/// A shard directory's segments and gap markers as (first index, is a gap, path), in log order
/// (a gap before a segment of the same index: a repair interrupted before it removed the
/// damaged segment leaves both, and reads then still reach that segment). Other files are
/// reported and skipped.
pub(crate) fn log_files(dir: &Path) -> Result<Vec<(u64, bool, PathBuf)>, StorageError> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|error| StorageError::io_at("listing", dir, error))? {
        let entry = entry.map_err(|error| StorageError::io_at("listing", dir, error))?;
        match entry.file_name().to_str().and_then(parse_log_file_name) {
            Some((first_index, gap)) => entries.push((first_index, gap, entry.path())),
            None => tracing::warn!(path = %entry.path().display(), "ignoring a file that is not a segment"),
        }
    }
    entries.sort_by_key(|(first_index, gap, _)| (*first_index, !*gap));
    Ok(entries)
}

/// What [`scan_tail`] found in a shard's last segment.
pub(crate) struct TailScan {
    /// Bytes of intact records: where the next frame goes.
    pub len: u64,
    /// The file's length: more than `len` when zeros the writer wrote ahead follow the records.
    pub allocated: u64,
    pub next_index: u64,
    pub last_arrival_ms: Option<i64>,
}

/// Scans the last segment, indexing it and cutting it at the first bad frame, unless all that
/// follows is zeros: the writer writes zeros ahead of its frames (see
/// `writer::preallocation_target`), and they stay, for the next frames to overwrite.
pub(crate) fn scan_tail(segment: &Segment, synced: bool) -> Result<TailScan, StorageError> {
    let file_len = segment.file_len().map_err(|error| segment.io_error("reading", error))?;
    let mut scanner = Scanner::new(segment, 0, file_len, RECOVERY_CHUNK)?;
    let mut next_index = segment.first_index;
    let mut last_arrival_ms = None;
    let mut sparse = segment.sparse.write();
    let bad = loop {
        match scanner.next_frame() {
            Ok(None) => break None,
            Ok(Some((offset, len, record))) => {
                if record.index != next_index {
                    break Some((offset, format!("record index {} where {next_index} was expected", record.index)));
                }
                // No writer reaches the last index; a file claiming it is crafted or corrupt (found
                // by the record_frame fuzz target: it overflowed the next index).
                if record.index == u64::MAX {
                    break Some((offset, "record index at the end of the index space".to_string()));
                }
                sparse.note(record.index, offset, record.arrival_ms, len);
                next_index += 1;
                last_arrival_ms = Some(record.arrival_ms);
            }
            Err(ScanError::Corrupt { offset, error }) => break Some((offset, error.to_string())),
            Err(ScanError::Io(error)) => return Err(segment.io_error("reading", error)),
        }
    };
    drop(sparse);
    // (intact length, file length after, whether synced)
    let (good_len, allocated, synced) = match bad {
        None => (file_len, file_len, synced),
        Some((offset, _)) if zeros_to_end(segment, offset, file_len)? => (offset, file_len, synced),
        Some((offset, reason)) => {
            // A crash can only tear the end of the log. Intact records after the bad frame mean
            // the damage is in the middle (bit rot, a stray write): cutting there would drop
            // records that were acknowledged, and their sequence numbers would be handed out
            // again. Refuse to start instead, and say where.
            if let Some(later) = intact_frame_after(segment, offset, file_len, next_index)? {
                return Err(segment.corrupt(
                    offset,
                    format!(
                        "{reason}; an intact record follows at byte {later}, so this is damage inside the log, \
                         not a torn write: refusing to truncate acknowledged records (stop the server and run \
                         `tideline check`, then `tideline repair`, or restore the file)"
                    ),
                ));
            }
            tracing::warn!(
                segment = %segment.describe(),
                offset,
                dropped_bytes = file_len - offset,
                %reason,
                "cutting a torn or damaged log tail: usually a write a crash interrupted, which was never \
                 acknowledged; if instead these bytes were damaged after they were written, acknowledged \
                 records are lost here"
            );
            segment.set_len(offset).map_err(|error| segment.io_error("truncating", error))?;
            (offset, offset, false)
        }
    };
    if !synced {
        // Even with nothing dirty an fsync costs milliseconds here (a device flush), which is
        // why a clean shutdown leaves a marker that lets the next start skip this.
        segment.sync().map_err(|error| segment.io_error("syncing", error))?;
    }
    Ok(TailScan { len: good_len, allocated, next_index, last_arrival_ms })
}

/// Whether every byte from `offset` to the end of the file is zero: space written ahead, where
/// no frame was written yet (a frame never starts with a zero length).
fn zeros_to_end(segment: &Segment, offset: u64, file_len: u64) -> Result<bool, StorageError> {
    let reader = segment.reader().map_err(|error| segment.io_error("reading", error))?;
    let mut at = offset;
    while at < file_len {
        let len = usize::try_from((file_len - at).min(RECOVERY_CHUNK as u64)).unwrap_or(RECOVERY_CHUNK);
        let bytes = reader.read_at(at, len).map_err(|error| segment.io_error("reading", error))?;
        if bytes.iter().any(|&byte| byte != 0) {
            return Ok(false);
        }
        at += len as u64;
    }
    Ok(true)
}

/// The offset of the first intact frame after `bad` whose index is at least `min_index` (and
/// plausibly close to it), if any.
fn intact_frame_after(segment: &Segment, bad: u64, file_len: u64, min_index: u64) -> Result<Option<u64>, StorageError> {
    let start = bad + 1;
    let len = usize::try_from(file_len.saturating_sub(start)).unwrap_or(usize::MAX);
    if len < frame::HEADER_LEN {
        return Ok(None);
    }
    let reader = segment.reader().map_err(|error| segment.io_error("reading", error))?;
    let rest = reader.read_at(start, len).map_err(|error| segment.io_error("reading", error))?;
    let plausible = min_index..min_index.saturating_add(1 << 32).saturating_add(1);
    Ok(frame::find_intact(&bytes::Bytes::from(rest), 0, plausible).map(|(at, _)| start + at as u64))
}

/// The arrival time of the newest record in the older segments. Rare (only when the last segment
/// is empty), and it indexes the segment it scans, so the work is not lost.
fn last_arrival_before(views: &[SegmentView]) -> Option<i64> {
    let view = views.iter().rev().find(|view| view.len > 0)?;
    let segment = &view.segment;
    let scan = || -> Result<Option<i64>, StorageError> {
        let mut scanner = Scanner::new(segment, 0, view.len, RECOVERY_CHUNK)?;
        let mut extension = segment.extension();
        let mut last = None;
        while let Some((offset, len, record)) = scanner.next()? {
            extension.observe(record.index, offset, record.arrival_ms, len);
            last = Some(record.arrival_ms);
        }
        segment.extend_index(extension);
        Ok(last)
    };
    scan().unwrap_or_else(|error| {
        tracing::warn!(%error, "could not read the newest arrival time; new records start from the clock");
        None
    })
}

/// Makes a new directory entry durable.
pub(crate) fn sync_dir(path: &Path) -> io::Result<()> {
    std::fs::File::open(path)?.sync_all()
}
