//! Entry points for the fuzz targets in `fuzz/` (docs/reliability.md, "Fuzzing"). Not an API:
//! hidden from the docs, thin wrappers over the crate's internals, and free to change with them.
//!
//! They reach the code that reads bytes from disk: the frame decoder, the segment scanner that
//! reads use, and the recovery scan that start-up runs over the last segment of each shard.

use bytes::Bytes;

use crate::segment::{ScanError, Scanner, Segment};
use crate::{frame, recovery, StorageError, StoredRecord};

pub use crate::frame::{FrameError, HEADER_LEN, MAX_FRAME_LEN};

/// The frame's total length from its header, bounds-checked (`frame::peek_len`).
pub fn peek_frame_len(buf: &[u8]) -> Result<usize, FrameError> {
    frame::peek_len(buf)
}

/// The frame at the start of `buf` and its length (`frame::decode`).
pub fn decode_frame(buf: &Bytes) -> Result<(StoredRecord, usize), FrameError> {
    frame::decode(buf)
}

/// One frame as the writer encodes it (`frame::encode`).
pub fn encode_frame(index: u64, arrival_ms: i64, encrypted: bool, key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    frame::encode(&mut out, index, arrival_ms, encrypted, key, data, frame::Crc::Checked);
    out
}

/// Why a segment scan stopped.
#[derive(Debug)]
pub enum ScanEnd {
    /// Every byte was a valid frame.
    Clean,
    /// The bytes at `offset` are not a valid frame.
    Corrupt { offset: u64, error: FrameError },
    /// Reading the (in-memory) segment failed: only a scanner bug can cause this.
    Io(std::io::Error),
}

/// An in-memory segment holding `bytes`.
fn memory_segment(bytes: &[u8], first_index: u64) -> Result<Segment, StorageError> {
    let segment = Segment::memory(first_index, 0);
    segment.write_at(0, bytes).map_err(|error| segment.io_error("writing", error))?;
    Ok(segment)
}

/// What a scan read: each frame as (offset, length, record), and why it stopped.
pub struct Scan {
    pub frames: Vec<(u64, usize, StoredRecord)>,
    pub end: ScanEnd,
}

/// Reads `bytes` as one segment with the scanner that reads use, starting with a `chunk`-byte
/// buffer, up to the end or the first bad frame.
pub fn scan_segment(bytes: &[u8], chunk: usize) -> Result<Scan, StorageError> {
    let segment = memory_segment(bytes, 0)?;
    let mut scanner = Scanner::new(&segment, 0, bytes.len() as u64, chunk)?;
    let mut frames = Vec::new();
    let end = loop {
        match scanner.next_frame() {
            Ok(Some(frame)) => frames.push(frame),
            Ok(None) => break ScanEnd::Clean,
            Err(ScanError::Corrupt { offset, error }) => break ScanEnd::Corrupt { offset, error },
            Err(ScanError::Io(error)) => break ScanEnd::Io(error),
        }
    };
    Ok(Scan { frames, end })
}

/// What start-up recovery made of a shard's last segment.
pub struct Recovery {
    /// `Ok((length kept, next index))`, or the error that refuses to start (damage followed by
    /// intact records).
    pub outcome: Result<(u64, u64), StorageError>,
    /// The segment's length afterwards: recovery cuts a torn tail (but not zeros that follow the
    /// records: space the writer wrote ahead).
    pub len_after: u64,
}

/// Start-up recovery of a shard whose last segment holds `bytes` and starts at `first_index`.
pub fn recover_segment(bytes: &[u8], first_index: u64) -> Result<Recovery, StorageError> {
    let segment = memory_segment(bytes, first_index)?;
    let outcome = recovery::scan_tail(&segment, true).map(|scan| (scan.len, scan.next_index));
    let len_after = segment.file_len().map_err(|error| segment.io_error("reading", error))?;
    Ok(Recovery { outcome, len_after })
}
