//! The `record_frame` target: bytes read back from a shard log, which a torn write, bit rot or a
//! stray file can make anything.
//!
//! The input's first byte chooses how the rest is read: whether its frames get their checksums
//! fixed first (random bytes almost never carry a valid CRC-32, so without this the decoder's
//! later checks and the recovery of intact-looking logs would go unexercised), the scanner's
//! first buffer size, and the segment's first index. Then:
//!
//! - one frame: `peek_len` and `decode` stay in bounds, and a frame that decodes re-encodes to
//!   exactly its bytes;
//! - the scanner that reads use: frames are contiguous from offset 0 and the scan stops clean
//!   exactly at the end, or at the first bad frame, never with an I/O error;
//! - the start-up recovery scan: it either refuses (and leaves the bytes alone) or keeps a prefix
//!   that holds exactly the consecutive records it reports, and recovering that prefix again
//!   changes nothing.

use bytes::Bytes;
use tideline_storage::fuzzing::{
    decode_frame, encode_frame, peek_frame_len, recover_segment, scan_segment, FrameError, ScanEnd, HEADER_LEN,
    MAX_FRAME_LEN,
};

/// First-buffer sizes for the scanner: the smallest it allows, smaller than most frames, and the
/// size recovery uses.
const CHUNKS: [usize; 4] = [HEADER_LEN, 64, 4096, 1024 * 1024];

/// Gives every frame in `bytes` a valid CRC, walking from the start by each frame's length
/// field (an independent re-implementation of the checksum, not the code under test).
fn fix_checksums(bytes: &mut [u8]) {
    let mut at = 0;
    while let Some(header) = bytes.get(at..at + 8) {
        let body_len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let Some(end) = at.checked_add(8 + body_len).filter(|&end| end <= bytes.len()) else { return };
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&bytes[at..at + 4]);
        hasher.update(&bytes[at + 8..end]);
        let crc = hasher.finalize();
        bytes[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
        at = end;
    }
}

fn check_frame(bytes: &[u8]) {
    let peeked = peek_frame_len(bytes);
    if let Ok(len) = peeked {
        assert!((HEADER_LEN..=MAX_FRAME_LEN).contains(&len), "peek_len {len} out of bounds");
    }
    match decode_frame(&Bytes::copy_from_slice(bytes)) {
        Ok((record, used)) => {
            assert_eq!(Ok(used), peeked, "decode and peek_len disagree on the length");
            assert!(used <= bytes.len());
            assert_eq!(HEADER_LEN + record.partition_key.len() + record.data.len(), used);
            let again =
                encode_frame(record.index, record.arrival_ms, record.encrypted, &record.partition_key, &record.data);
            assert_eq!(again, bytes[..used], "a decoded frame does not re-encode to its bytes");
        }
        Err(FrameError::Incomplete { needed }) => {
            assert!(needed > bytes.len(), "incomplete, yet {needed} bytes are there")
        }
        Err(_) => {}
    }
}

/// Scans `bytes`: the frames before the stop as (offset, length, index), and whether the scan
/// reached the end cleanly.
fn check_scan(bytes: &[u8], chunk: usize) -> (Vec<(u64, u64, u64)>, bool) {
    let scan = scan_segment(bytes, chunk).expect("an in-memory segment");
    let mut next = 0u64;
    let mut found = Vec::with_capacity(scan.frames.len());
    for (offset, len, record) in &scan.frames {
        assert_eq!(*offset, next, "frames are not contiguous");
        assert_eq!(HEADER_LEN + record.partition_key.len() + record.data.len(), *len);
        next += *len as u64;
        found.push((*offset, *len as u64, record.index));
    }
    assert!(next <= bytes.len() as u64);
    let clean = match scan.end {
        ScanEnd::Clean => {
            assert_eq!(next, bytes.len() as u64, "a clean scan stopped before the end");
            true
        }
        ScanEnd::Corrupt { offset, .. } => {
            assert_eq!(offset, next, "the scan reported corruption somewhere other than where it stopped");
            assert!(next < bytes.len() as u64);
            false
        }
        ScanEnd::Io(error) => panic!("reading an in-memory segment failed: {error}"),
    };
    (found, clean)
}

fn check_recovery(bytes: &[u8], first_index: u64, chunk: usize) {
    let (frames, clean) = check_scan(bytes, chunk);
    let recovery = recover_segment(bytes, first_index).expect("an in-memory segment");
    let Ok((kept, next_index)) = recovery.outcome else {
        assert_eq!(recovery.len_after, bytes.len() as u64, "recovery refused to start, yet cut the log");
        return;
    };
    let zeros_after = bytes.get(kept as usize..).is_some_and(|rest| rest.iter().all(|&byte| byte == 0));
    if zeros_after {
        // Zeros after the records are space written ahead: recovery leaves them.
        assert_eq!(recovery.len_after, bytes.len() as u64, "recovery cut the zeros written ahead");
    } else {
        assert_eq!(kept, recovery.len_after, "recovery reports a length other than the one it left");
    }
    // The records recovery may keep: the ones at the start whose indices count up from the first.
    let mut consecutive = 0;
    let mut expected = Some(first_index);
    while let (Some(&(_, _, index)), Some(want)) = (frames.get(consecutive), expected) {
        if index != want {
            break;
        }
        consecutive += 1;
        expected = want.checked_add(1);
    }
    let count = next_index.checked_sub(first_index).expect("next index before the first");
    assert_eq!(count, consecutive as u64, "recovery kept other records than the consecutive ones at the start");
    let end_of_kept = frames
        .get(consecutive)
        .map_or_else(|| frames.last().map_or(0, |&(offset, len, _)| offset + len), |&(offset, _, _)| offset);
    assert_eq!(kept, end_of_kept, "recovery did not cut right after the last record it kept");
    if clean && consecutive == frames.len() {
        assert_eq!(kept, bytes.len() as u64, "recovery cut an intact log");
    }
    let prefix = &bytes[..kept as usize];
    let again = recover_segment(prefix, first_index).expect("an in-memory segment");
    assert_eq!(again.outcome.ok(), Some((kept, next_index)), "recovering a recovered log changed it");
    assert_eq!(again.len_after, kept);
}

pub fn fuzz(input: &[u8]) {
    let Some((&mode, rest)) = input.split_first() else { return };
    let mut bytes = rest.to_vec();
    if mode & 1 != 0 {
        fix_checksums(&mut bytes);
    }
    let chunk = CHUNKS[usize::from(mode >> 1) % CHUNKS.len()];
    // Index 0 for most inputs, else the first frame's own index, or a large one. Kept below
    // u64::MAX - 2^32: a segment whose records reach index u64::MAX overflows `index + 1` in
    // recovery (found by this target, reported; no writer can get there, only a crafted file).
    const HIGHEST_FIRST_INDEX: u64 = u64::MAX - (1 << 32);
    let first_index = match mode >> 3 & 3 {
        0 | 1 => 0,
        2 => bytes.get(8..16).map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or_default())),
        _ => HIGHEST_FIRST_INDEX - u64::from(mode >> 5),
    }
    .min(HIGHEST_FIRST_INDEX);
    check_frame(&bytes);
    check_recovery(&bytes, first_index, chunk);
}
