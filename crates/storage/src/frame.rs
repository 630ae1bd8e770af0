//! The on-disk record frame. All integers little-endian:
//!
//! ```text
//! offset size field
//!      0    4 body_len      bytes after the first 8 (so the frame is 8 + body_len bytes)
//!      4    4 crc32         CRC-32 (IEEE) of bytes 0..4 and 8..8+body_len
//!      8    8 index         dense per-shard record index
//!     16    8 arrival_ms    wall clock at append, non-decreasing per shard
//!     24    1 flags         bit 0: encrypted; other bits must be zero
//!     25    2 key_len       partition key length
//!     27    k partition key UTF-8
//!   27+k    d data          d = body_len - 19 - key_len
//! ```
//!
//! The CRC covers the length too, so a torn or flipped length is caught rather than trusted.
//! Unknown flag bits are an error, so a newer writer's frames are never misread as old ones.

use bytes::Bytes;

use crate::StoredRecord;

/// Fixed bytes before the partition key.
pub const HEADER_LEN: usize = 27;
/// Bytes before the body (length and CRC).
const PREFIX_LEN: usize = 8;
/// Largest partition key plus data a frame may carry. Kinesis allows 1 MiB per record; twice
/// that leaves room without letting a corrupt length make a reader allocate gigabytes.
pub const MAX_PAYLOAD: usize = 2 * 1024 * 1024;
/// Largest frame a reader will accept; every length read from disk is checked against it.
pub const MAX_FRAME_LEN: usize = HEADER_LEN + MAX_PAYLOAD;

const FLAG_ENCRYPTED: u8 = 1;

/// Why bytes do not hold a valid frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The buffer ends before the frame does (`needed` bytes in all, when known).
    Incomplete { needed: usize },
    /// The length field is outside what any valid frame can have.
    BadLength(u32),
    /// The CRC does not match.
    Checksum,
    /// Reserved flag bits are set.
    BadFlags(u8),
    /// The partition key length exceeds the body.
    BadKeyLength(u16),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Incomplete { needed } => write!(f, "frame incomplete ({needed} bytes needed)"),
            FrameError::BadLength(len) => write!(f, "invalid frame length {len}"),
            FrameError::Checksum => write!(f, "checksum mismatch"),
            FrameError::BadFlags(flags) => write!(f, "unknown flags {flags:#04x}"),
            FrameError::BadKeyLength(len) => write!(f, "partition key length {len} exceeds the frame"),
        }
    }
}

/// Size of the frame for a record with these lengths.
pub fn frame_len(key_len: usize, data_len: usize) -> usize {
    HEADER_LEN + key_len + data_len
}

/// Whether a frame's CRC is computed and checked. Frames in files always are; frames in an
/// in-memory segment go from the writer to readers through this process's memory only, where
/// nothing tears or flips them, and there the CRC was ~5 % of the server's CPU in an append
/// and again in a read. A skipped CRC is written as zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crc {
    Checked,
    Skipped,
}

/// Appends one frame to `out`. The caller has checked `key.len() + data.len() <= MAX_PAYLOAD`
/// and `key.len() <= u16::MAX` (see [`check_payload`]).
pub fn encode(out: &mut Vec<u8>, index: u64, arrival_ms: i64, encrypted: bool, key: &[u8], data: &[u8], crc: Crc) {
    let start = out.len();
    let body_len = (frame_len(key.len(), data.len()) - PREFIX_LEN) as u32;
    out.reserve(frame_len(key.len(), data.len()));
    out.extend_from_slice(&body_len.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(&arrival_ms.to_le_bytes());
    out.push(if encrypted { FLAG_ENCRYPTED } else { 0 });
    out.extend_from_slice(&(key.len() as u16).to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(data);
    if crc == Crc::Checked {
        let crc = checksum(&out[start..]);
        out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Whether a record of these lengths fits in a frame.
pub fn check_payload(key_len: usize, data_len: usize) -> Result<(), crate::StorageError> {
    let size = key_len.saturating_add(data_len);
    if size > MAX_PAYLOAD || key_len > usize::from(u16::MAX) {
        return Err(crate::StorageError::RecordTooLarge { size, max: MAX_PAYLOAD });
    }
    Ok(())
}

fn checksum(frame: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&frame[..4]);
    hasher.update(&frame[PREFIX_LEN..]);
    hasher.finalize()
}

fn u64_at(buf: &[u8], at: usize) -> u64 {
    let mut bytes = [0; 8];
    bytes.copy_from_slice(&buf[at..at + 8]);
    u64::from_le_bytes(bytes)
}

/// The frame's total length, read from its header and bounds-checked, without verifying it.
pub fn peek_len(buf: &[u8]) -> Result<usize, FrameError> {
    if buf.len() < HEADER_LEN {
        return Err(FrameError::Incomplete { needed: HEADER_LEN });
    }
    let body_len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let total = PREFIX_LEN + body_len as usize;
    if !(HEADER_LEN..=MAX_FRAME_LEN).contains(&total) {
        return Err(FrameError::BadLength(body_len));
    }
    Ok(total)
}

/// Decodes the frame at the start of `buf`, returning the record (its key and data are slices of
/// `buf`, not copies) and the frame's length.
pub fn decode(buf: &Bytes) -> Result<(StoredRecord, usize), FrameError> {
    decode_at(buf, 0, Crc::Checked)
}

/// Decodes the frame at offset `at` of `buf`, as [`decode`] does `buf[at..]`. Readers decode
/// frame after frame of one buffer: slicing it once per frame first cost a reference count
/// increment and decrement per record.
pub fn decode_at(buf: &Bytes, at: usize, crc: Crc) -> Result<(StoredRecord, usize), FrameError> {
    let rest = buf.get(at..).unwrap_or_default();
    let total = peek_len(rest)?;
    if rest.len() < total {
        return Err(FrameError::Incomplete { needed: total });
    }
    let frame = &rest[..total];
    let stored_crc = u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]);
    if crc == Crc::Checked && checksum(frame) != stored_crc {
        return Err(FrameError::Checksum);
    }
    let flags = frame[24];
    if flags & !FLAG_ENCRYPTED != 0 {
        return Err(FrameError::BadFlags(flags));
    }
    let key_len = u16::from_le_bytes([frame[25], frame[26]]);
    let key_end = HEADER_LEN + usize::from(key_len);
    if key_end > total {
        return Err(FrameError::BadKeyLength(key_len));
    }
    let record = StoredRecord {
        index: u64_at(frame, 8),
        arrival_ms: u64_at(frame, 16) as i64,
        encrypted: flags & FLAG_ENCRYPTED != 0,
        partition_key: buf.slice(at + HEADER_LEN..at + key_end),
        data: buf.slice(at + key_end..at + total),
    };
    Ok((record, total))
}

/// The first offset at or after `from` where a whole, valid frame starts whose index is in
/// `indices`, with that index. After damage nothing says where the next frame starts, so every
/// offset is tried; candidates are filtered by length and index before the checksum, which keeps
/// this cheap even over a full segment.
pub fn find_intact(buf: &Bytes, from: usize, indices: std::ops::Range<u64>) -> Option<(usize, u64)> {
    let last_start = buf.len().checked_sub(HEADER_LEN)?;
    (from..=last_start).find_map(|at| {
        let total = peek_len(&buf[at..]).ok()?;
        let index = u64_at(buf, at + 8);
        if at + total > buf.len() || !indices.contains(&index) {
            return None;
        }
        decode_at(buf, at, Crc::Checked).ok().map(|_| (at, index))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn one(index: u64, arrival: i64, encrypted: bool, key: &[u8], data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(&mut out, index, arrival, encrypted, key, data, Crc::Checked);
        out
    }

    #[test]
    fn a_skipped_crc_is_neither_computed_nor_checked() {
        let mut bytes = Vec::new();
        encode(&mut bytes, 7, 1, false, b"k", b"data", Crc::Skipped);
        assert_eq!(&bytes[4..8], &[0; 4]);
        let bytes = Bytes::from(bytes);
        let (record, _) = decode_at(&bytes, 0, Crc::Skipped).unwrap();
        assert_eq!((record.index, &record.data[..]), (7, &b"data"[..]));
        assert_eq!(decode_at(&bytes, 0, Crc::Checked).unwrap_err(), FrameError::Checksum);
    }

    proptest! {
        #[test]
        fn round_trip(index: u64, arrival: i64, encrypted: bool,
                      key in proptest::collection::vec(any::<u8>(), 0..300),
                      data in proptest::collection::vec(any::<u8>(), 0..4096),
                      trailing in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut bytes = one(index, arrival, encrypted, &key, &data);
            prop_assert_eq!(bytes.len(), frame_len(key.len(), data.len()));
            let len = bytes.len();
            bytes.extend_from_slice(&trailing);
            let (record, used) = decode(&Bytes::from(bytes)).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(used, len);
            prop_assert_eq!(record.index, index);
            prop_assert_eq!(record.arrival_ms, arrival);
            prop_assert_eq!(record.encrypted, encrypted);
            prop_assert_eq!(&record.partition_key[..], &key[..]);
            prop_assert_eq!(&record.data[..], &data[..]);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = peek_len(&bytes);
            if let Ok((record, used)) = decode(&Bytes::from(bytes.clone())) {
                prop_assert!(used <= bytes.len());
                prop_assert!(record.partition_key.len() + record.data.len() + HEADER_LEN == used);
            }
        }

        #[test]
        fn arbitrary_bytes_with_plausible_length_never_panic(
            body in proptest::collection::vec(any::<u8>(), 23..400), extra in 0usize..40) {
            // A random length field almost never lands in range; force one that does so the
            // later checks (CRC, flags, key length) are exercised too.
            let mut bytes = ((body.len() - 4 + extra) as u32).to_le_bytes().to_vec();
            bytes.extend_from_slice(&body);
            let _ = decode(&Bytes::from(bytes));
        }

        #[test]
        fn any_flipped_byte_is_detected(key in proptest::collection::vec(any::<u8>(), 0..40),
                                        data in proptest::collection::vec(any::<u8>(), 0..200),
                                        position: prop::sample::Index, flip in 1u8..=255) {
            let mut bytes = one(7, 1_700_000_000_000, false, &key, &data);
            let at = position.index(bytes.len());
            bytes[at] ^= flip;
            prop_assert!(decode(&Bytes::from(bytes)).is_err());
        }

        #[test]
        fn every_strict_prefix_is_incomplete(data in proptest::collection::vec(any::<u8>(), 0..200),
                                             cut: prop::sample::Index) {
            let bytes = one(1, 2, true, b"pk", &data);
            let cut = cut.index(bytes.len());
            let result = decode(&Bytes::copy_from_slice(&bytes[..cut]));
            prop_assert!(matches!(result, Err(FrameError::Incomplete { .. })), "{:?}", result);
        }
    }

    #[test]
    fn lengths_are_bounded_before_anything_is_allocated() {
        let mut bytes = vec![0u8; HEADER_LEN];
        bytes[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(peek_len(&bytes), Err(FrameError::BadLength(u32::MAX)));
        bytes[..4].copy_from_slice(&3u32.to_le_bytes());
        assert_eq!(peek_len(&bytes), Err(FrameError::BadLength(3)));
        assert!(check_payload(MAX_PAYLOAD, 1).is_err());
        assert!(check_payload(70_000, 0).is_err());
        assert!(check_payload(256, MAX_PAYLOAD - 256).is_ok());
    }

    #[test]
    fn the_layout_is_stable() {
        // Frames written today must decode forever: pin the exact bytes of one.
        let bytes = one(0x0102, -1, true, b"k", b"xy");
        let expected: Vec<u8> = [
            &22u32.to_le_bytes()[..],
            &crc32fast::hash(&[&22u32.to_le_bytes()[..], &bytes[8..]].concat()).to_le_bytes(),
            &0x0102u64.to_le_bytes(),
            &(-1i64).to_le_bytes(),
            &[1, 1, 0],
            b"k",
            b"xy",
        ]
        .concat();
        assert_eq!(bytes, expected);
    }
}
