//! Offline checking and repair of a store's shard logs: the operator's way out of damage inside a
//! log (bit rot, a stray write), which the server refuses to serve or to start over.
//!
//! [`check_store`] reads every segment of every shard, frame by frame, and reports each damaged
//! range: its bytes, and the record indices lost with them. It only reads. [`repair_store`]
//! (server stopped) copies each damaged segment whole into a quarantine folder, then splits it:
//! the intact part before the damage stays, each intact part after it becomes a segment of its
//! own, and a `.gap` marker stands for the lost records, which reads then skip. Nothing is
//! deleted that is not first copied to quarantine, and record indices (so sequence numbers)
//! never change.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::recovery::{log_files, numbered_dirs, sync_dir};
use crate::segment::{gap_file_name, segment_file_name};
use crate::{frame, ShardKey, StorageError};

/// A range of a segment file that holds no valid record where one belongs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    pub shard: ShardKey,
    pub segment: PathBuf,
    /// The damaged bytes. Empty when whole records are missing between two intact ones (or at
    /// the end of the segment).
    pub bytes: Range<u64>,
    /// The record indices lost. Empty when the bytes follow the segment's last record.
    pub lost: Range<u64>,
    pub detail: String,
}

/// Invalid bytes at the very end of a shard's newest segment: what a crash during a write
/// leaves. The server cuts them off at its next start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    pub shard: ShardKey,
    pub segment: PathBuf,
    pub bytes: Range<u64>,
    /// The index the first cut-off record would have had.
    pub next_index: u64,
    pub detail: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    pub shards: usize,
    pub segments: usize,
    pub records: u64,
    pub damage: Vec<Damage>,
    pub torn_tails: Vec<TornTail>,
}

/// What [`repair_store`] did to one damaged segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repaired {
    pub segment: PathBuf,
    /// The whole original file, as it was.
    pub quarantined: PathBuf,
    /// Segments and gap markers written in its place.
    pub created: Vec<PathBuf>,
}

/// Checks the shard logs under `<store_dir>/shards`. Reads each segment whole into memory (one
/// at a time), so it needs a segment's size (`--segment-max-bytes`) of free memory.
pub fn check_store(store_dir: &Path) -> Result<CheckReport, StorageError> {
    let mut report = CheckReport::default();
    let root = store_dir.join("shards");
    if !root.is_dir() {
        return Ok(report);
    }
    for (stream_id, stream_dir) in numbered_dirs::<u64>(&root)? {
        for (shard_index, shard_dir) in numbered_dirs::<u32>(&stream_dir)? {
            report.shards += 1;
            check_shard(ShardKey { stream_id, shard_index }, &shard_dir, &mut report)?;
        }
    }
    Ok(report)
}

fn check_shard(shard: ShardKey, dir: &Path, report: &mut CheckReport) -> Result<(), StorageError> {
    let entries = log_files(dir)?;
    for (at, (first_index, gap, path)) in entries.iter().enumerate() {
        if *gap {
            continue;
        }
        report.segments += 1;
        let data = Bytes::from(std::fs::read(path).map_err(|error| StorageError::io_at("reading", path, error))?);
        let end = entries.get(at + 1).map(|(next, _, _)| *next);
        let scan = scan_segment(&data, *first_index, end);
        report.records += scan.records;
        report.damage.extend(scan.damage.into_iter().map(|(bytes, lost, detail)| Damage {
            shard,
            segment: path.clone(),
            bytes,
            lost,
            detail,
        }));
        if let Some((bytes, next_index, detail)) = scan.torn_tail {
            report.torn_tails.push(TornTail { shard, segment: path.clone(), bytes, next_index, detail });
        }
    }
    Ok(())
}

struct SegmentScan {
    records: u64,
    damage: Vec<(Range<u64>, Range<u64>, String)>,
    torn_tail: Option<(Range<u64>, u64, String)>,
}

/// Walks a segment holding indices `first..end` (`end` None for a shard's newest segment, whose
/// end is wherever its records stop), resynchronising after each damaged range on the next
/// intact frame whose index belongs here.
fn scan_segment(data: &Bytes, first: u64, end: Option<u64>) -> SegmentScan {
    let mut scan = SegmentScan { records: 0, damage: Vec::new(), torn_tail: None };
    let len = data.len();
    let (mut pos, mut expect) = (0usize, first);
    let belongs = |expect: u64| expect..end.unwrap_or_else(|| expect.saturating_add(1 << 32).saturating_add(1));
    loop {
        if end.is_some_and(|end| expect >= end) {
            if pos < len {
                let detail = format!("{} bytes after the segment's last record", len - pos);
                scan.damage.push((pos as u64..len as u64, expect..expect, detail));
            }
            return scan;
        }
        if pos == len {
            if let Some(end) = end.filter(|end| expect < *end) {
                let detail = "the segment ends before its last record".to_string();
                scan.damage.push((len as u64..len as u64, expect..end, detail));
            }
            return scan;
        }
        let problem = match frame::decode(&data.slice(pos..)) {
            Ok((record, used)) if record.index == expect => {
                pos += used;
                expect += 1;
                scan.records += 1;
                continue;
            }
            Ok((record, _)) if belongs(expect).contains(&record.index) => {
                let detail = format!("records {expect} to {} are missing", record.index - 1);
                scan.damage.push((pos as u64..pos as u64, expect..record.index, detail));
                expect = record.index;
                continue;
            }
            Ok((record, _)) => format!("record index {} where {expect} was expected", record.index),
            Err(error) => error.to_string(),
        };
        match frame::find_intact(data, pos + 1, belongs(expect)) {
            Some((resume, index)) => {
                scan.damage.push((pos as u64..resume as u64, expect..index, problem));
                (pos, expect) = (resume, index);
            }
            None => match end {
                // Zeros after the newest records: space the writer wrote ahead, not damage.
                None if data[pos..].iter().all(|&byte| byte == 0) => return scan,
                None => {
                    scan.torn_tail = Some((pos as u64..len as u64, expect, problem));
                    return scan;
                }
                Some(end) => {
                    scan.damage.push((pos as u64..len as u64, expect..end, problem));
                    return scan;
                }
            },
        }
    }
}

/// Repairs every damaged segment `report` lists (from [`check_store`] on the same directory,
/// with no server running there: hold [`crate::MetadataStore::open_existing`] meanwhile).
/// Each original goes whole to `quarantine` (under its path relative to `store_dir`) before
/// anything else changes, then: the new segments and gap markers are written and made durable,
/// and only then is the original cut to its intact head (or removed, when the damage starts
/// at its first byte). A repair interrupted at any point leaves a log that reads as before or
/// as after it, and running check and repair again finishes it.
pub fn repair_store(store_dir: &Path, report: &CheckReport, quarantine: &Path) -> Result<Vec<Repaired>, StorageError> {
    let mut segments: Vec<&Path> = report.damage.iter().map(|damage| damage.segment.as_path()).collect();
    segments.dedup();
    let mut repaired = Vec::new();
    for segment in segments {
        let mut damage: Vec<&Damage> = report.damage.iter().filter(|damage| damage.segment == segment).collect();
        damage.sort_by_key(|damage| damage.bytes.start);
        repaired.push(repair_segment(store_dir, segment, &damage, quarantine)?);
    }
    Ok(repaired)
}

fn repair_segment(
    store_dir: &Path,
    segment: &Path,
    ranges: &[&Damage],
    quarantine: &Path,
) -> Result<Repaired, StorageError> {
    let io = |what: &str, path: &Path| {
        let (what, path) = (what.to_string(), path.to_path_buf());
        move |error| StorageError::io_at(&what, &path, error)
    };
    let dir = segment.parent().ok_or_else(|| io("locating", segment)(std::io::ErrorKind::NotFound.into()))?;
    let data = std::fs::read(segment).map_err(io("reading", segment))?;
    let relative = segment.strip_prefix(store_dir).unwrap_or(segment);
    let quarantined = quarantine.join(relative);
    let quarantine_dir = quarantined.parent().unwrap_or(quarantine);
    std::fs::create_dir_all(quarantine_dir).map_err(io("creating", quarantine_dir))?;
    write_synced(&quarantined, &data)?;
    let notes: String = ranges
        .iter()
        .map(|damage| {
            format!(
                "bytes {}..{}: {}; record indices {}..{} lost\n",
                damage.bytes.start, damage.bytes.end, damage.detail, damage.lost.start, damage.lost.end
            )
        })
        .collect();
    write_synced(&quarantined.with_extension("seg.damage.txt"), notes.as_bytes())?;
    sync_dir(quarantine_dir).map_err(io("syncing directory", quarantine_dir))?;

    // Each damaged range is followed by an intact piece (up to the next damage), which becomes a
    // segment named after its first record, and preceded by the lost records' gap marker.
    let offset = |at: u64| usize::try_from(at).unwrap_or(data.len()).min(data.len());
    let mut created = Vec::new();
    for (at, damage) in ranges.iter().enumerate() {
        let piece_end = ranges.get(at + 1).map_or(data.len(), |next| offset(next.bytes.start));
        let start = offset(damage.bytes.end).min(piece_end);
        if start < piece_end {
            created.push(replace_with(&dir.join(segment_file_name(damage.lost.end)), &data[start..piece_end])?);
        }
        if !damage.lost.is_empty() {
            let note = format!(
                "records {}..{} quarantined by tideline repair: {}\n",
                damage.lost.start, damage.lost.end, damage.detail
            );
            created.push(replace_with(&dir.join(gap_file_name(damage.lost.start)), note.as_bytes())?);
        }
    }
    sync_dir(dir).map_err(io("syncing directory", dir))?;

    let head = ranges.first().map_or(data.len() as u64, |damage| damage.bytes.start);
    if created.iter().any(|path| path == segment) {
        // Replaced by the piece after damage at its very start.
    } else if head == 0 {
        std::fs::remove_file(segment).map_err(io("removing", segment))?;
        sync_dir(dir).map_err(io("syncing directory", dir))?;
    } else if head < data.len() as u64 {
        let file = OpenOptions::new().write(true).open(segment).map_err(io("opening", segment))?;
        file.set_len(head).and_then(|()| file.sync_all()).map_err(io("truncating", segment))?;
    }
    Ok(Repaired { segment: segment.to_path_buf(), quarantined, created })
}

/// Writes `path` with `data` and fsyncs it.
fn write_synced(path: &Path, data: &[u8]) -> Result<(), StorageError> {
    let mut file = File::create(path).map_err(|error| StorageError::io_at("creating", path, error))?;
    file.write_all(data).and_then(|()| file.sync_all()).map_err(|error| StorageError::io_at("writing", path, error))
}

/// Atomically puts a file with `data` at `path` (through a temporary name and a rename, so no
/// reader or restart ever sees half of it).
fn replace_with(path: &Path, data: &[u8]) -> Result<PathBuf, StorageError> {
    let temporary = path.with_extension("repair-tmp");
    write_synced(&temporary, data)?;
    std::fs::rename(&temporary, path).map_err(|error| StorageError::io_at("renaming", &temporary, error))?;
    Ok(path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames for `indices`, and the offset where each starts.
    fn frames(indices: impl IntoIterator<Item = u64>) -> (Vec<u8>, Vec<u64>) {
        let (mut bytes, mut offsets) = (Vec::new(), Vec::new());
        for index in indices {
            offsets.push(bytes.len() as u64);
            frame::encode(&mut bytes, index, 1_700_000_000_000, false, b"pk", &[index as u8; 40], frame::Crc::Checked);
        }
        (bytes, offsets)
    }

    fn scan(bytes: &[u8], first: u64, end: Option<u64>) -> SegmentScan {
        scan_segment(&Bytes::copy_from_slice(bytes), first, end)
    }

    #[test]
    fn each_kind_of_damage_is_located_with_the_records_it_costs() {
        let (whole, _) = frames(5..10);
        let len = whole.len() as u64;
        let clean = scan(&whole, 5, Some(10));
        assert_eq!((clean.records, clean.damage.len(), clean.torn_tail.is_none()), (5, 0, true));

        let short = scan(&whole, 5, Some(12));
        assert_eq!(short.damage, [(len..len, 10..12, "the segment ends before its last record".to_string())]);

        let mut trailing = whole.clone();
        trailing.extend_from_slice(&[7; 30]);
        assert_eq!(scan(&trailing, 5, Some(10)).damage[0].0, len..len + 30);
        assert!(scan(&trailing, 5, Some(10)).damage[0].1.is_empty(), "no record lost");
        assert_eq!(scan(&trailing, 5, None).torn_tail.map(|(bytes, next, _)| (bytes, next)), Some((len..len + 30, 10)));

        let (missing, offsets) = frames([5, 6, 8, 9]);
        let gap = scan(&missing, 5, Some(10));
        assert_eq!((gap.records, gap.damage[0].0.clone(), gap.damage[0].1.clone()), (4, offsets[2]..offsets[2], 7..8));

        let (mut flipped, offsets) = frames(5..10);
        flipped[offsets[1] as usize + 30] ^= 1;
        let damaged = scan(&flipped, 5, Some(10));
        assert_eq!((damaged.damage[0].0.clone(), damaged.damage[0].1.clone()), (offsets[1]..offsets[2], 6..7));
        assert_eq!(damaged.records, 4);
    }
}
