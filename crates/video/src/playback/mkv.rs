//! Reading what playback needs from a stored Matroska fragment: the track descriptions (`Info`
//! and `Tracks`) and the frames of one `Cluster`.
//!
//! Hand-written rather than `matroska-demuxer` or `webm-iterable`: those read a whole seekable
//! file or go through an owned tag tree, while a stored fragment is a header and one cluster
//! handed over as byte slices, which `ffmpeg -live 1` writes with unknown sizes. The reader is
//! kept to the few elements playback reads, and isolated here so that it can give way to the
//! ingest side's parser.

use std::ops::Range;

use super::remux::{Frame, Header, Track};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum MkvError {
    #[error("the Matroska data ends inside an element")]
    Truncated,
    #[error("the Matroska data has an invalid element header")]
    BadHeader,
    #[error("the Matroska data has no Tracks element")]
    NoTracks,
    #[error("the Matroska data has no Cluster")]
    NoCluster,
    #[error("a Matroska block uses lacing, which playback does not support")]
    Laced,
}

const EBML_HEADER: u32 = 0x1A45_DFA3;
const SEGMENT: u32 = 0x1853_8067;
const INFO: u32 = 0x1549_A966;
const TIMECODE_SCALE: u32 = 0x2A_D7B1;
const TRACKS: u32 = 0x1654_AE6B;
const TRACK_ENTRY: u32 = 0xAE;
const TRACK_NUMBER: u32 = 0xD7;
const CODEC_ID: u32 = 0x86;
const CODEC_PRIVATE: u32 = 0x63A2;
const DEFAULT_DURATION: u32 = 0x23_E383;
const VIDEO: u32 = 0xE0;
const PIXEL_WIDTH: u32 = 0xB0;
const PIXEL_HEIGHT: u32 = 0xBA;
const AUDIO: u32 = 0xE1;
const SAMPLING_FREQUENCY: u32 = 0xB5;
const CHANNELS: u32 = 0x9F;
const CLUSTER: u32 = 0x1F43_B675;
const CLUSTER_TIMECODE: u32 = 0xE7;
const SIMPLE_BLOCK: u32 = 0xA3;
const BLOCK_GROUP: u32 = 0xA0;
const BLOCK: u32 = 0xA1;
const REFERENCE_BLOCK: u32 = 0xFB;

/// Elements that only ever sit at the top of a Segment: an element of unknown size (a live
/// Cluster) ends where one of them starts.
const TOP_LEVEL: [u32; 10] = [
    EBML_HEADER,
    SEGMENT,
    INFO,
    TRACKS,
    CLUSTER,
    0x114D_9B74, // SeekHead
    0x1C53_BB6B, // Cues
    0x1254_C367, // Tags
    0x1043_A770, // Chapters
    0x1941_A469, // Attachments
];

/// Matroska's default: timecodes in milliseconds.
const DEFAULT_TIMECODE_SCALE_NS: u64 = 1_000_000;

/// An element: its ID, and where its body is in the bytes it was read from.
#[derive(Debug, Clone, Copy)]
struct Element {
    id: u32,
    body_start: usize,
    body_end: usize,
}

/// A variable-length integer at `bytes[at..]`: its value (with the length marker kept for IDs,
/// removed for sizes) and its length; `None` for a size means "unknown".
fn vint(bytes: &[u8], at: usize, keep_marker: bool) -> Result<(u64, usize), MkvError> {
    let first = *bytes.get(at).ok_or(MkvError::Truncated)?;
    let length = first.leading_zeros() as usize + 1;
    if length > 8 {
        return Err(MkvError::BadHeader);
    }
    let raw = bytes.get(at..at + length).ok_or(MkvError::Truncated)?;
    let mut value = u64::from(if keep_marker { first } else { first & (0xFFu16 >> length) as u8 });
    for byte in &raw[1..] {
        value = (value << 8) | u64::from(*byte);
    }
    Ok((value, length))
}

/// The element starting at `at` within `bytes[..end]`.
fn element(bytes: &[u8], at: usize, end: usize) -> Result<Element, MkvError> {
    let (id, id_length) = vint(bytes, at, true)?;
    if id_length > 4 {
        return Err(MkvError::BadHeader);
    }
    let (size, size_length) = vint(bytes, at + id_length, false)?;
    let body_start = at + id_length + size_length;
    let unknown = size == (1u64 << (7 * size_length)) - 1;
    let body_end = if unknown {
        unknown_size_end(bytes, id as u32, body_start, end)?
    } else {
        usize::try_from(size).ok().and_then(|size| body_start.checked_add(size)).ok_or(MkvError::BadHeader)?
    };
    if body_end > end {
        return Err(MkvError::Truncated);
    }
    Ok(Element { id: id as u32, body_start, body_end })
}

/// Where an element `id` of unknown size ends: a live Segment at the next stream's start, a
/// live Cluster at the next top-level element; either at `end` when none comes.
fn unknown_size_end(bytes: &[u8], id: u32, mut at: usize, end: usize) -> Result<usize, MkvError> {
    let ends: &[u32] = if id == SEGMENT { &[EBML_HEADER, SEGMENT] } else { &TOP_LEVEL };
    while at < end {
        let (next, _) = vint(bytes, at, true)?;
        if ends.contains(&(next as u32)) {
            return Ok(at);
        }
        at = element(bytes, at, end)?.body_end;
    }
    Ok(end)
}

/// The elements side by side in `bytes[range]`.
fn children(bytes: &[u8], range: Range<usize>) -> impl Iterator<Item = Result<Element, MkvError>> + '_ {
    let mut at = range.start;
    let end = range.end;
    std::iter::from_fn(move || {
        if at >= end {
            return None;
        }
        let next = element(bytes, at, end);
        // A malformed element ends the walk: nothing after it can be found.
        at = next.as_ref().map_or(end, |element| element.body_end);
        Some(next)
    })
}

/// The top-level elements of a stream's bytes, looking inside the Segment.
fn top_level(bytes: &[u8]) -> impl Iterator<Item = Result<Element, MkvError>> + '_ {
    children(bytes, 0..bytes.len()).flat_map(|element| -> Box<dyn Iterator<Item = _>> {
        match element {
            Ok(segment) if segment.id == SEGMENT => Box::new(children(bytes, segment.body_start..segment.body_end)),
            other => Box::new(std::iter::once(other)),
        }
    })
}

fn unsigned(bytes: &[u8], element: Element) -> u64 {
    bytes[element.body_start..element.body_end].iter().fold(0, |value, byte| (value << 8) | u64::from(*byte))
}

fn float(bytes: &[u8], element: Element) -> f64 {
    let body = &bytes[element.body_start..element.body_end];
    match body.len() {
        4 => f64::from(f32::from_be_bytes([body[0], body[1], body[2], body[3]])),
        8 => f64::from_be_bytes([body[0], body[1], body[2], body[3], body[4], body[5], body[6], body[7]]),
        _ => 0.0,
    }
}

/// The `Info` and `Tracks` of a stream's header bytes (EBML header, Segment start, Info, Tracks).
pub(crate) fn read_header(bytes: &[u8]) -> Result<Header, MkvError> {
    let mut timecode_scale_ns = DEFAULT_TIMECODE_SCALE_NS;
    let mut tracks = None;
    for element in top_level(bytes) {
        let element = element?;
        match element.id {
            INFO => {
                for child in children(bytes, element.body_start..element.body_end) {
                    let child = child?;
                    if child.id == TIMECODE_SCALE {
                        timecode_scale_ns = unsigned(bytes, child).max(1);
                    }
                }
            }
            TRACKS => {
                let entries = children(bytes, element.body_start..element.body_end)
                    .filter(|entry| entry.as_ref().map_or(true, |entry| entry.id == TRACK_ENTRY))
                    .map(|entry| entry.and_then(|entry| read_track(bytes, entry)));
                tracks = Some(entries.collect::<Result<Vec<_>, _>>()?);
            }
            // The header ends where the media starts.
            CLUSTER => break,
            _ => {}
        }
    }
    Ok(Header { timecode_scale_ns, tracks: tracks.ok_or(MkvError::NoTracks)? })
}

fn read_track(bytes: &[u8], entry: Element) -> Result<Track, MkvError> {
    let mut track = Track {
        number: 0,
        codec_id: String::new(),
        codec_private: Vec::new(),
        default_duration_ns: None,
        width: 0,
        height: 0,
        sample_rate: 8000.0,
        channels: 1,
    };
    for child in children(bytes, entry.body_start..entry.body_end) {
        let child = child?;
        let body = &bytes[child.body_start..child.body_end];
        match child.id {
            TRACK_NUMBER => track.number = unsigned(bytes, child),
            CODEC_ID => track.codec_id = String::from_utf8_lossy(body).trim_end_matches('\0').to_owned(),
            CODEC_PRIVATE => track.codec_private = body.to_vec(),
            DEFAULT_DURATION => track.default_duration_ns = Some(unsigned(bytes, child)),
            VIDEO | AUDIO => {
                for setting in children(bytes, child.body_start..child.body_end) {
                    let setting = setting?;
                    let value = unsigned(bytes, setting);
                    match setting.id {
                        PIXEL_WIDTH => track.width = u32::try_from(value).unwrap_or(0),
                        PIXEL_HEIGHT => track.height = u32::try_from(value).unwrap_or(0),
                        SAMPLING_FREQUENCY => track.sample_rate = float(bytes, setting),
                        CHANNELS => track.channels = u32::try_from(value).unwrap_or(1),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Ok(track)
}

/// The timecode and frames of the first Cluster in `bytes` (which may begin with a header).
pub(crate) fn read_cluster(bytes: &[u8]) -> Result<(u64, Vec<Frame<'_>>), MkvError> {
    let mut clusters = top_level(bytes).filter(|element| element.as_ref().map_or(true, |e| e.id == CLUSTER));
    let cluster = clusters.next().ok_or(MkvError::NoCluster)??;
    let mut timecode = 0;
    let mut frames = Vec::new();
    for child in children(bytes, cluster.body_start..cluster.body_end) {
        let child = child?;
        match child.id {
            CLUSTER_TIMECODE => timecode = unsigned(bytes, child),
            SIMPLE_BLOCK => {
                let (frame, flags) = read_block(bytes, child)?;
                frames.push(Frame { keyframe: flags & 0x80 != 0, ..frame });
            }
            BLOCK_GROUP => {
                let mut block = None;
                let mut references_others = false;
                for part in children(bytes, child.body_start..child.body_end) {
                    let part = part?;
                    match part.id {
                        BLOCK => block = Some(read_block(bytes, part)?.0),
                        REFERENCE_BLOCK => references_others = true,
                        _ => {}
                    }
                }
                // A Block is a key frame unless it names a frame it depends on.
                frames.extend(block.map(|frame| Frame { keyframe: !references_others, ..frame }));
            }
            _ => {}
        }
    }
    let base = i64::try_from(timecode).map_err(|_| MkvError::BadHeader)?;
    for frame in &mut frames {
        frame.timecode += base;
    }
    Ok((timecode, frames))
}

/// A (Simple)Block's frame, with its timecode relative to the cluster, and its flags byte.
fn read_block(bytes: &[u8], block: Element) -> Result<(Frame<'_>, u8), MkvError> {
    let (track, length) = vint(bytes, block.body_start, false)?;
    let at = block.body_start + length;
    let head = bytes.get(at..at + 3).filter(|_| at + 3 <= block.body_end).ok_or(MkvError::Truncated)?;
    let relative = i16::from_be_bytes([head[0], head[1]]);
    let flags = head[2];
    if flags & 0x06 != 0 {
        return Err(MkvError::Laced);
    }
    let frame = Frame { track, timecode: i64::from(relative), keyframe: false, data: &bytes[at + 3..block.body_end] };
    Ok((frame, flags))
}

/// The bytes of each Cluster of a whole stream, with the header before the first: how a stream
/// splits into fragments. Used by tests to make fragments out of an MKV file.
#[cfg(test)]
pub(crate) fn split_clusters(bytes: &[u8]) -> Result<(Vec<u8>, Vec<Vec<u8>>), MkvError> {
    let segment = children(bytes, 0..bytes.len())
        .find(|element| element.as_ref().map_or(true, |element| element.id == SEGMENT))
        .ok_or(MkvError::NoCluster)??;
    let mut header_end = bytes.len();
    let mut clusters = Vec::new();
    // Each element starts where the one before it ends.
    let mut start = segment.body_start;
    for element in children(bytes, segment.body_start..segment.body_end) {
        let element = element?;
        if element.id == CLUSTER {
            header_end = header_end.min(start);
            clusters.push(bytes[start..element.body_end].to_vec());
        }
        start = element.body_end;
    }
    Ok((bytes[..header_end].to_vec(), clusters))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_ids_and_unknown_sizes() {
        assert_eq!(vint(&[0x81], 0, false), Ok((1, 1)));
        assert_eq!(vint(&[0x40, 0x02], 0, false), Ok((2, 2)));
        assert_eq!(vint(&[0x1A, 0x45, 0xDF, 0xA3], 0, true), Ok((0x1A45_DFA3, 4)));
        assert_eq!(vint(&[0x00], 0, false), Err(MkvError::BadHeader));
        assert_eq!(vint(&[0x40], 0, false), Err(MkvError::Truncated));
        // An unknown-size cluster ends where the next cluster starts.
        let mut bytes = vec![0x1F, 0x43, 0xB6, 0x75, 0xFF, 0xE7, 0x81, 0x05];
        bytes.extend([0x1F, 0x43, 0xB6, 0x75, 0x83, 0xE7, 0x81, 0x07]);
        let first = element(&bytes, 0, bytes.len()).unwrap();
        assert_eq!((first.body_start, first.body_end), (5, 8));
        assert_eq!(read_cluster(&bytes).unwrap(), (5, vec![]));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [
            &b""[..],
            b"\x01\xff\xff\xff\xff\xff\xff\xff\xff",
            b"\x1a\x45\xdf\xa3\x88",
            b"\xff\xff\xff",
            b"\x1f\x43\xb6\x75\x85\xa3\x83\x81",
        ] {
            assert!(read_header(bytes).is_err());
            assert!(read_cluster(bytes).is_err());
        }
    }
}
