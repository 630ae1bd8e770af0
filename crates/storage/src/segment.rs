//! One segment of a shard log: a file (or, in memory mode, a byte buffer) of consecutive frames
//! whose first index is in its name, plus the sparse index that lets readers seek into it.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use parking_lot::RwLock;

use crate::frame::{self, Crc, FrameError, HEADER_LEN};
use crate::open_files::{FileSlot, OpenFiles};
use crate::{StorageError, StoredRecord};

/// Distance in bytes between sparse index entries: a seek lands at most this far before the
/// record it wants, and a 64 MiB segment costs ~1000 entries (24 KiB) of memory.
pub(crate) const SPARSE_INTERVAL: u64 = 64 * 1024;
/// Largest single read buffer. Reads that want more refill in several steps.
const MAX_CHUNK: usize = 8 * 1024 * 1024;

/// `<first_index:020>.seg`: fixed width so a directory listing sorts in log order.
pub(crate) fn segment_file_name(first_index: u64) -> String {
    format!("{first_index:020}.seg")
}

/// `<first_index:020>.gap`: left by `tideline repair` where it moved damaged records to
/// quarantine. The records from that index to the next segment's first are gone; reads skip them.
pub(crate) fn gap_file_name(first_index: u64) -> String {
    format!("{first_index:020}.gap")
}

/// The first index encoded in a segment file name, or None for any other file.
pub(crate) fn parse_segment_file_name(name: &str) -> Option<u64> {
    parse_first_index(name.strip_suffix(".seg")?)
}

/// An entry of a shard's directory: its first index, and whether it is a gap marker.
pub(crate) fn parse_log_file_name(name: &str) -> Option<(u64, bool)> {
    match name.strip_suffix(".gap") {
        Some(digits) => Some((parse_first_index(digits)?, true)),
        None => Some((parse_segment_file_name(name)?, false)),
    }
}

fn parse_first_index(digits: &str) -> Option<u64> {
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SparseEntry {
    pub index: u64,
    pub offset: u64,
    pub arrival_ms: i64,
}

/// Frames in `[0, scanned_to)` are indexed: every frame at least `SPARSE_INTERVAL` past the
/// previous entry has one, and the first frame always has one. Old segments start unscanned and
/// are indexed by the reads that pass through them; the segment being written is always fully
/// scanned, because the writer notes every frame it appends.
#[derive(Debug)]
pub(crate) struct Sparse {
    pub entries: Vec<SparseEntry>,
    pub scanned_to: u64,
    pub scanned_index: u64,
}

impl Sparse {
    fn new(first_index: u64) -> Self {
        Sparse { entries: Vec::new(), scanned_to: 0, scanned_index: first_index }
    }

    /// Records the frame that starts at `scanned_to`.
    pub fn note(&mut self, index: u64, offset: u64, arrival_ms: i64, len: usize) {
        if offset != self.scanned_to {
            return;
        }
        if self.entries.last().is_none_or(|last| offset >= last.offset + SPARSE_INTERVAL) {
            self.entries.push(SparseEntry { index, offset, arrival_ms });
        }
        self.scanned_to = offset + len as u64;
        self.scanned_index = index + 1;
    }

    /// Forgets frames from `offset` on (the writer rolled back a failed group).
    pub fn truncate(&mut self, offset: u64, index: u64) {
        self.entries.retain(|entry| entry.offset < offset);
        self.scanned_to = offset;
        self.scanned_index = index;
    }
}

/// Frames a reader saw past the indexed part of a segment, to be added to its sparse index.
pub(crate) struct Extension {
    from: u64,
    last_entry: Option<u64>,
    entries: Vec<SparseEntry>,
    to: u64,
    to_index: u64,
}

impl Extension {
    pub fn observe(&mut self, index: u64, offset: u64, arrival_ms: i64, len: usize) {
        if offset != self.to {
            return;
        }
        if self.last_entry.is_none_or(|last| offset >= last + SPARSE_INTERVAL) {
            self.entries.push(SparseEntry { index, offset, arrival_ms });
            self.last_entry = Some(offset);
        }
        self.to = offset + len as u64;
        self.to_index = index + 1;
    }
}

enum Backing {
    /// The file is opened on demand through the storage's bounded set of open files, which may
    /// close it again when other segments are busier.
    File {
        slot: Arc<FileSlot>,
        files: Arc<OpenFiles>,
    },
    Memory(RwLock<Vec<u8>>),
}

pub(crate) struct Segment {
    pub first_index: u64,
    /// A `.gap` marker left by `tideline repair`: the records from `first_index` to the next
    /// segment's first index were damaged and moved to quarantine; reads skip them.
    pub lost: bool,
    backing: Backing,
    pub sparse: RwLock<Sparse>,
    first_arrival: OnceLock<i64>,
    /// Cached only for segments that are no longer the tail (their content is final).
    last_arrival: OnceLock<i64>,
}

/// An open source of bytes for one read.
pub(crate) enum Reader<'a> {
    File(Arc<File>),
    Memory(&'a RwLock<Vec<u8>>),
}

impl Reader<'_> {
    /// The `len` bytes at `offset`, or `UnexpectedEof` if the source ends before them.
    ///
    /// They are read into a new vector's spare capacity rather than a zeroed one: zeroing the
    /// room before every `pread` cost about a tenth of a GetRecords call. The standard library
    /// has no stable safe way to `pread` into uninitialised memory (`read_buf_at` is unstable),
    /// and the workspace forbids `unsafe`, so `rustix::io::pread` with its `spare_capacity`
    /// buffer (which advances the vector's length by what the kernel wrote) does it.
    pub fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut buf = Vec::with_capacity(len);
        match self {
            Reader::File(file) => {
                // The capacity may exceed `len`: bytes read past it are cut off below.
                while buf.len() < len {
                    let at = offset + buf.len() as u64;
                    match rustix::io::pread(&**file, rustix::buffer::spare_capacity(&mut buf), at) {
                        Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                        Ok(_) => {}
                        Err(rustix::io::Errno::INTR) => {}
                        Err(errno) => return Err(errno.into()),
                    }
                }
                buf.truncate(len);
            }
            Reader::Memory(bytes) => {
                let bytes = bytes.read();
                let start = usize::try_from(offset).map_err(|_| io::ErrorKind::UnexpectedEof)?;
                let source = start.checked_add(len).and_then(|end| bytes.get(start..end));
                buf.extend_from_slice(source.ok_or(io::ErrorKind::UnexpectedEof)?);
            }
        }
        Ok(buf)
    }
}

impl Segment {
    /// Creates (or empties) the segment file for a new tail.
    pub fn create_file(files: &Arc<OpenFiles>, dir: &Path, first_index: u64) -> io::Result<Segment> {
        let path = dir.join(segment_file_name(first_index));
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path)?;
        let slot = files.adopt(path, file);
        Ok(Self::with_backing(first_index, false, Backing::File { slot, files: Arc::clone(files) }))
    }

    /// An existing segment file (or, with `lost`, gap marker); opened when first needed.
    pub fn existing_file(files: &Arc<OpenFiles>, path: PathBuf, first_index: u64, lost: bool) -> Segment {
        Self::with_backing(first_index, lost, Backing::File { slot: files.slot(path), files: Arc::clone(files) })
    }

    /// An in-memory segment; `capacity` bytes are reserved up front when the segment size is
    /// bounded (a growing buffer would double, and hold up to twice what it stores).
    pub fn memory(first_index: u64, capacity: usize) -> Segment {
        Self::with_backing(first_index, false, Backing::Memory(RwLock::new(Vec::with_capacity(capacity))))
    }

    fn with_backing(first_index: u64, lost: bool, backing: Backing) -> Segment {
        Segment {
            first_index,
            lost,
            backing,
            sparse: RwLock::new(Sparse::new(first_index)),
            first_arrival: OnceLock::new(),
            last_arrival: OnceLock::new(),
        }
    }

    /// Names the segment in errors and logs.
    pub fn describe(&self) -> String {
        match &self.backing {
            Backing::File { slot, .. } => slot.path().display().to_string(),
            Backing::Memory(_) => format!("in-memory segment {}", segment_file_name(self.first_index)),
        }
    }

    pub fn corrupt(&self, offset: u64, detail: impl Into<String>) -> StorageError {
        StorageError::Corrupt { path: self.describe(), offset, detail: detail.into() }
    }

    pub fn io_error(&self, what: &str, source: io::Error) -> StorageError {
        StorageError::io(format!("{what} {}", self.describe()), source)
    }

    /// Whether this segment's frames carry a CRC: a file's do, an in-memory segment's do not
    /// (see [`Crc`]). The writer encodes and the scanner decodes by this one answer.
    pub fn crc(&self) -> Crc {
        match self.backing {
            Backing::File { .. } => Crc::Checked,
            Backing::Memory(_) => Crc::Skipped,
        }
    }

    pub fn reader(&self) -> io::Result<Reader<'_>> {
        match &self.backing {
            Backing::File { slot, files } => Ok(Reader::File(files.handle(slot)?)),
            Backing::Memory(bytes) => Ok(Reader::Memory(bytes)),
        }
    }

    /// Writer only: writes `data` at `offset`, which is the end of what the writer wrote before.
    /// Returns the file handle written through: the writer syncs that one, so that the bytes are
    /// synced even if the set of open files closes its own copy meanwhile.
    pub fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<Option<Arc<File>>> {
        match &self.backing {
            Backing::File { slot, files } => {
                let file = files.handle(slot)?;
                file.write_all_at(data, offset)?;
                Ok(Some(file))
            }
            Backing::Memory(bytes) => {
                let mut bytes = bytes.write();
                let offset = usize::try_from(offset).map_err(io::Error::other)?;
                if offset > bytes.len() {
                    return Err(io::Error::other("write past the end of an in-memory segment"));
                }
                bytes.truncate(offset);
                bytes.extend_from_slice(data);
                Ok(None)
            }
        }
    }

    /// Writer only: fills `[from, to)` of a file with zeros (see `writer::preallocation_target`);
    /// nothing for an in-memory segment, which has no blocks to allocate.
    pub fn write_zeros(&self, from: u64, to: u64) -> io::Result<()> {
        // In .bss: untouched, it costs no memory.
        static ZEROS: [u8; 1024 * 1024] = [0; 1024 * 1024];
        let Backing::File { slot, files } = &self.backing else { return Ok(()) };
        let file = files.handle(slot)?;
        let mut at = from;
        while at < to {
            let len = (to - at).min(ZEROS.len() as u64);
            file.write_all_at(&ZEROS[..len as usize], at)?;
            at += len;
        }
        Ok(())
    }

    /// fdatasyncs whatever is in the page cache for this file: at recovery, what a killed process
    /// left; when the writer rolls to a new segment, everything written to this one.
    pub fn sync(&self) -> io::Result<()> {
        match &self.backing {
            Backing::File { slot, files } => files.handle(slot)?.sync_data(),
            Backing::Memory(_) => Ok(()),
        }
    }

    /// fsyncs the file, its length included (see `writer::WriterShard::roll`).
    pub fn sync_all(&self) -> io::Result<()> {
        match &self.backing {
            Backing::File { slot, files } => files.handle(slot)?.sync_all(),
            Backing::Memory(_) => Ok(()),
        }
    }

    pub fn set_len(&self, len: u64) -> io::Result<()> {
        match &self.backing {
            Backing::File { slot, files } => files.handle(slot)?.set_len(len),
            Backing::Memory(bytes) => {
                bytes.write().truncate(usize::try_from(len).map_err(io::Error::other)?);
                Ok(())
            }
        }
    }

    pub fn file_len(&self) -> io::Result<u64> {
        match &self.backing {
            Backing::File { slot, .. } => Ok(std::fs::metadata(slot.path())?.len()),
            Backing::Memory(bytes) => Ok(bytes.read().len() as u64),
        }
    }

    /// Closes the file once the segment is no longer the tail: readers mostly want the newest
    /// records, and reopen it if they do not.
    pub fn release_handle(&self) {
        if let Backing::File { slot, files } = &self.backing {
            files.close(slot);
        }
    }

    pub fn remove_file(&self) -> io::Result<()> {
        match &self.backing {
            Backing::File { slot, files } => {
                files.close(slot);
                std::fs::remove_file(slot.path())
            }
            Backing::Memory(bytes) => {
                bytes.write().clear();
                Ok(())
            }
        }
    }

    /// Retention: removes the file of a segment that is no longer in its shard's committed list,
    /// then syncs the directory so the removal is durable before the next (newer) segment goes:
    /// a crash must never leave a hole in the log, only a shorter head. Readers that opened the
    /// file before keep reading it. In memory the bytes go with the last reference.
    pub fn unlink(&self) -> io::Result<()> {
        let Backing::File { slot, files } = &self.backing else { return Ok(()) };
        files.close(slot);
        let path = slot.path();
        match std::fs::remove_file(path) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
            _ => {}
        }
        match path.parent().map(File::open) {
            // The shard's directory is gone with its stream: nothing left to make durable.
            Some(Err(error)) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Some(dir) => dir?.sync_all(),
            None => Ok(()),
        }
    }

    /// Where to start scanning for `index` (which must be below the committed end): the nearest
    /// indexed frame at or before it, or the end of the indexed part.
    pub fn locate(&self, index: u64) -> (u64, u64) {
        let sparse = self.sparse.read();
        if index < sparse.scanned_index {
            let at = sparse.entries.partition_point(|entry| entry.index <= index);
            if let Some(entry) = at.checked_sub(1).and_then(|at| sparse.entries.get(at)) {
                return (entry.offset, entry.index);
            }
            return (0, self.first_index);
        }
        (sparse.scanned_to, sparse.scanned_index)
    }

    /// Where to start scanning for the first record with `arrival_ms >= ts_ms`, considering only
    /// entries below `end_index` (committed). Arrival times are non-decreasing, so the answer is
    /// after the last entry that is still too early.
    pub fn locate_time(&self, ts_ms: i64, end_index: u64) -> (u64, u64) {
        let sparse = self.sparse.read();
        let usable = sparse.entries.partition_point(|entry| entry.index < end_index);
        let entries = &sparse.entries[..usable];
        let early = entries.partition_point(|entry| entry.arrival_ms < ts_ms);
        match early.checked_sub(1).and_then(|at| entries.get(at)) {
            Some(entry) => (entry.offset, entry.index),
            None => (0, self.first_index),
        }
    }

    /// A recorder for frames a reader scans past the indexed part.
    pub fn extension(&self) -> Extension {
        let sparse = self.sparse.read();
        Extension {
            from: sparse.scanned_to,
            last_entry: sparse.entries.last().map(|entry| entry.offset),
            entries: Vec::new(),
            to: sparse.scanned_to,
            to_index: sparse.scanned_index,
        }
    }

    /// Adds what a reader learned, unless another reader got there first.
    pub fn extend_index(&self, extension: Extension) {
        if extension.to == extension.from {
            return;
        }
        let mut sparse = self.sparse.write();
        if sparse.scanned_to == extension.from {
            sparse.entries.extend(extension.entries);
            sparse.scanned_to = extension.to;
            sparse.scanned_index = extension.to_index;
        }
    }

    /// Frames of a segment carry consecutive indices from its first; anything else is damage.
    pub fn check_index(&self, offset: u64, found: u64, expected: u64) -> Result<(), StorageError> {
        if found != expected {
            return Err(self.corrupt(offset, format!("record index {found} where {expected} was expected")));
        }
        Ok(())
    }

    /// Arrival time of the first record (a committed segment of `len > 0` bytes), verified.
    pub fn first_arrival(&self, len: u64) -> Result<i64, StorageError> {
        if let Some(arrival) = self.first_arrival.get() {
            return Ok(*arrival);
        }
        let mut scanner = Scanner::new(self, 0, len, 4096)?;
        match scanner.next()? {
            Some((_, _, record)) => {
                let _ = self.first_arrival.set(record.arrival_ms);
                Ok(record.arrival_ms)
            }
            None => Err(self.corrupt(0, "committed segment holds no record")),
        }
    }
}

impl Segment {
    /// Scans the committed frames in `[offset, len)`, the first of which has index `first`:
    /// checks that indices follow on, adds what it passes to the sparse index, and hands each
    /// record to `visit` until that returns false. Returns the index after the last frame seen.
    pub fn scan_indexed(
        &self,
        (offset, first): (u64, u64),
        len: u64,
        chunk: usize,
        mut visit: impl FnMut(StoredRecord) -> bool,
    ) -> Result<u64, StorageError> {
        let mut scanner = Scanner::new(self, offset, len, chunk)?;
        let mut extension = self.extension();
        let mut expect = first;
        while let Some((at, size, record)) = scanner.next()? {
            self.check_index(at, record.index, expect)?;
            expect += 1;
            extension.observe(record.index, at, record.arrival_ms, size);
            if !visit(record) {
                break;
            }
        }
        self.extend_index(extension);
        Ok(expect)
    }

    /// Arrival time of the last record of a committed segment that is no longer the tail (so
    /// `view_len` and `end_index` are final), verified; cached after the first call.
    pub fn last_arrival(&self, view_len: u64, end_index: u64) -> Result<i64, StorageError> {
        if let Some(arrival) = self.last_arrival.get() {
            return Ok(*arrival);
        }
        let Some(last_index) = end_index.checked_sub(1).filter(|&last| last >= self.first_index) else {
            return Err(self.corrupt(0, "committed segment holds no record"));
        };
        let (offset, first) = self.locate(last_index);
        let mut last = None;
        let end = self.scan_indexed((offset, first), view_len, 2 * SPARSE_INTERVAL as usize, |record| {
            last = Some(record.arrival_ms);
            true
        })?;
        if end != end_index {
            return Err(self.corrupt(view_len, format!("segment ends before index {end_index}")));
        }
        let arrival = last.ok_or_else(|| self.corrupt(offset, "committed segment holds no record"))?;
        let _ = self.last_arrival.set(arrival);
        Ok(arrival)
    }
}

/// Why a scan stopped early.
pub(crate) enum ScanError {
    Io(io::Error),
    /// Bytes at `offset` are not a valid frame (torn, flipped, or cut short by `end`).
    Corrupt {
        offset: u64,
        error: FrameError,
    },
}

/// Reads frames in order from `[pos, end)` of a segment, one buffer at a time; the records it
/// returns share their buffer, so a read costs one allocation per buffer and no per-record copy.
pub(crate) struct Scanner<'a> {
    segment: &'a Segment,
    reader: Reader<'a>,
    pos: u64,
    end: u64,
    buf: Bytes,
    buf_at: u64,
    chunk: usize,
}

impl<'a> Scanner<'a> {
    pub fn new(segment: &'a Segment, pos: u64, end: u64, chunk: usize) -> Result<Self, StorageError> {
        let reader = segment.reader().map_err(|error| segment.io_error("opening", error))?;
        Ok(Scanner {
            segment,
            reader,
            pos,
            end,
            buf: Bytes::new(),
            buf_at: pos,
            chunk: chunk.clamp(HEADER_LEN, MAX_CHUNK),
        })
    }

    /// The offset of the next frame.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Makes `[pos, pos + want)` available in `buf`, reading at least a chunk.
    fn fill(&mut self, want: usize) -> Result<(), ScanError> {
        let buffered_end = self.buf_at + self.buf.len() as u64;
        if self.pos >= self.buf_at && self.pos + want as u64 <= buffered_end {
            return Ok(());
        }
        let remaining = self.end - self.pos;
        let size = (want.max(self.chunk) as u64).min(remaining) as usize;
        self.buf = Bytes::from(self.reader.read_at(self.pos, size).map_err(ScanError::Io)?);
        self.buf_at = self.pos;
        // Reads that keep going are probably long: fewer, larger preads.
        self.chunk = (self.chunk * 2).min(MAX_CHUNK);
        Ok(())
    }

    /// The next frame as (offset, length, record), or None at `end`.
    pub fn next_frame(&mut self) -> Result<Option<(u64, usize, StoredRecord)>, ScanError> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let corrupt = |pos, error| ScanError::Corrupt { offset: pos, error };
        let remaining = self.end - self.pos;
        if remaining < HEADER_LEN as u64 {
            return Err(corrupt(self.pos, FrameError::Incomplete { needed: HEADER_LEN }));
        }
        self.fill(HEADER_LEN)?;
        let at = (self.pos - self.buf_at) as usize;
        let len = frame::peek_len(&self.buf[at..]).map_err(|error| corrupt(self.pos, error))?;
        if len as u64 > remaining {
            return Err(corrupt(self.pos, FrameError::Incomplete { needed: len }));
        }
        self.fill(len)?;
        let at = (self.pos - self.buf_at) as usize;
        // The buffer ends at or before `end` (see `fill`), so the frame read is the one checked above.
        let (record, used) =
            frame::decode_at(&self.buf, at, self.segment.crc()).map_err(|error| corrupt(self.pos, error))?;
        let offset = self.pos;
        self.pos += used as u64;
        Ok(Some((offset, used, record)))
    }

    /// Like `next_frame`, with errors in the crate's terms (for ranges that must be intact).
    pub fn next(&mut self) -> Result<Option<(u64, usize, StoredRecord)>, StorageError> {
        self.next_frame().map_err(|error| self.error(error))
    }

    fn error(&self, error: ScanError) -> StorageError {
        match error {
            ScanError::Io(source) => self.segment.io_error("reading", source),
            ScanError::Corrupt { offset, error } => self.segment.corrupt(offset, error.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip_and_reject_strangers() {
        assert_eq!(segment_file_name(42), "00000000000000000042.seg");
        assert_eq!(parse_segment_file_name(&segment_file_name(u64::MAX)), Some(u64::MAX));
        assert_eq!(parse_segment_file_name("00000000000000000042.seg"), Some(42));
        for name in ["42.seg", "0000000000000000004x.seg", "00000000000000000042.tmp", "99999999999999999999.seg"] {
            assert_eq!(parse_segment_file_name(name), None, "{name}");
            assert_eq!(parse_log_file_name(name), None, "{name}");
        }
        assert_eq!(parse_log_file_name(&gap_file_name(7)), Some((7, true)));
        assert_eq!(parse_log_file_name(&segment_file_name(7)), Some((7, false)));
    }

    #[test]
    fn sparse_entries_are_spaced_and_truncate() {
        let mut sparse = Sparse::new(10);
        let mut offset = 0;
        for index in 10..2010u64 {
            sparse.note(index, offset, index as i64, 1000);
            offset += 1000;
        }
        assert_eq!(sparse.scanned_index, 2010);
        assert_eq!(sparse.entries[0], SparseEntry { index: 10, offset: 0, arrival_ms: 10 });
        assert!(sparse.entries.windows(2).all(|w| w[1].offset - w[0].offset >= SPARSE_INTERVAL));
        assert!(sparse.entries.windows(2).all(|w| w[1].offset - w[0].offset < SPARSE_INTERVAL + 1000));
        sparse.truncate(500_000, 510);
        assert!(sparse.entries.iter().all(|entry| entry.offset < 500_000));
        assert_eq!((sparse.scanned_to, sparse.scanned_index), (500_000, 510));
    }
}
