//! The media side of Kinesis Video: fragments in (PutMedia), fragments stored, fragments out
//! (GetMedia, GetMediaForFragmentList, ListFragments).
//!
//! A *fragment* is one Matroska Cluster as a producer sent it (Kinesis Video's definition: a
//! Cluster that starts at a key frame), stored with the track header in force when it was sent;
//! a Cluster that does not start at a video key frame is appended to the fragment before it.
//!
//! The store's API, for readers of fragments (the HLS/GetClip remuxer builds on it):
//! - [`MediaStore::stream`] → a stream's [`StreamFragments`], by stream name and creation time;
//! - [`StreamFragments::list`] → [`FragmentMeta`]s in fragment-number order (which is ingest
//!   and server-timestamp order), optionally from a number or within a timestamp range;
//!   [`StreamFragments::latest`] and [`StreamFragments::subscribe`] follow the live edge;
//! - [`StreamFragments::read`] → a [`Fragment`]: its [`TrackHeader`] ([`TrackHeader::tracks`]
//!   gives each [`Track`]'s number, type, codec ID and codec private data; the raw Segment Info
//!   and Tracks elements are there too) and the Cluster's children bytes (Timecode, SimpleBlocks)
//!   ([`Fragment::cluster`]), which [`Fragment::blocks`] walks frame by frame.
//!
//! Submodules: [`connections`] (per-stream connection limits), [`ebml`] (element primitives), [`ingest`] (incremental splitter), [`keyframe`]
//! (fragments start at video key frames), [`store`]
//! (durable fragment files and their index), [`mkv`] (the MKV that readers get back).

pub(crate) mod connections;
pub(crate) mod ebml;
pub(crate) mod ingest;
pub(crate) mod keyframe;
pub(crate) mod mkv;
mod store;

use ebml::id;
pub(crate) use store::number_text;
pub use store::{FragmentMeta, MediaStore, StreamFragments};

/// What the fragments of one producer session share: the Segment's Info and Tracks elements,
/// byte for byte as received.
#[derive(Debug, PartialEq, Eq)]
pub struct TrackHeader {
    /// The Segment Info element (header and body); empty when the producer sent none.
    pub info: Vec<u8>,
    /// The Tracks element (header and body).
    pub tracks: Vec<u8>,
    /// Nanoseconds per Matroska timecode tick (Info's TimecodeScale; 1 ms by default).
    pub timecode_scale_ns: u64,
}

/// One track of a [`TrackHeader`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Track {
    pub number: u64,
    /// Matroska's TrackType: 1 video, 2 audio.
    pub kind: u64,
    /// `V_MPEG4/ISO/AVC`, `A_AAC`, …
    pub codec_id: String,
    /// For H.264 the AVCC record, for AAC the AudioSpecificConfig; empty when absent.
    pub codec_private: Vec<u8>,
    /// The TrackEntry element's body, for any other setting (pixel size, sampling rate).
    pub entry: Vec<u8>,
}

/// Matroska's default TimecodeScale: timecodes in milliseconds.
const DEFAULT_TIMECODE_SCALE_NS: u64 = 1_000_000;

impl TrackHeader {
    pub(crate) fn new(info: Vec<u8>, tracks: Vec<u8>) -> Self {
        let scale = body_of(&info).and_then(|body| ebml::child(body, id::TIMECODE_SCALE)).and_then(ebml::uint);
        let timecode_scale_ns = scale.filter(|scale| *scale > 0).unwrap_or(DEFAULT_TIMECODE_SCALE_NS);
        Self { info, tracks, timecode_scale_ns }
    }

    /// The tracks the Tracks element describes.
    pub fn tracks(&self) -> Vec<Track> {
        let entries = body_of(&self.tracks).map(ebml::children).into_iter().flatten();
        entries
            .filter(|(child_id, _)| *child_id == id::TRACK_ENTRY)
            .map(|(_, entry)| Track {
                number: ebml::child(entry, id::TRACK_NUMBER).and_then(ebml::uint).unwrap_or(0),
                kind: ebml::child(entry, id::TRACK_TYPE).and_then(ebml::uint).unwrap_or(0),
                codec_id: String::from_utf8_lossy(ebml::child(entry, id::CODEC_ID).unwrap_or_default()).into(),
                codec_private: ebml::child(entry, id::CODEC_PRIVATE).unwrap_or_default().to_vec(),
                entry: entry.to_vec(),
            })
            .collect()
    }

    /// Milliseconds of `ticks` timecode ticks.
    pub fn ticks_to_ms(&self, ticks: i64) -> i64 {
        let ns = i128::from(ticks) * i128::from(self.timecode_scale_ns);
        i64::try_from(ns / 1_000_000).unwrap_or(i64::MAX)
    }
}

/// The body of a whole element (header included).
fn body_of(element: &[u8]) -> Option<&[u8]> {
    let header = ebml::header(element).ok()?;
    element.get(header.header_len..)
}

/// A stored fragment, whole.
#[derive(Debug)]
pub struct Fragment {
    pub meta: FragmentMeta,
    pub header: std::sync::Arc<TrackHeader>,
    /// The Cluster's children as the producer sent them: its Timecode, then its blocks.
    pub cluster: Vec<u8>,
}

/// One frame of a fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block<'a> {
    pub track: u64,
    /// Ticks relative to the Cluster's timecode.
    pub relative_timecode: i16,
    pub keyframe: bool,
    /// The frame data (lacing, which live writers do not use for video, is left to the caller).
    pub data: &'a [u8],
}

impl Fragment {
    /// The Cluster's timecode, in ticks of the track header's scale.
    pub fn timecode(&self) -> u64 {
        cluster_timecode(&self.cluster)
    }

    /// The frames of the Cluster, in order (SimpleBlocks and the Blocks of BlockGroups).
    pub fn blocks(&self) -> impl Iterator<Item = Block<'_>> {
        cluster_blocks(&self.cluster)
    }
}

pub(crate) fn cluster_timecode(cluster: &[u8]) -> u64 {
    ebml::child(cluster, id::TIMECODE).and_then(ebml::uint).unwrap_or(0)
}

pub(crate) fn cluster_blocks(cluster: &[u8]) -> impl Iterator<Item = Block<'_>> {
    ebml::children(cluster).filter_map(|(child_id, body)| match child_id {
        id::SIMPLE_BLOCK => parse_block(body, None),
        // A Block is a key frame when its group references no other frame.
        id::BLOCK_GROUP => {
            let keyframe = ebml::child(body, id::REFERENCE_BLOCK).is_none();
            ebml::child(body, id::BLOCK).and_then(|block| parse_block(block, Some(keyframe)))
        }
        _ => None,
    })
}

/// A (Simple)Block body: track number (a vint), 16-bit relative timecode, flags, data. A
/// SimpleBlock's flags say whether it is a key frame; a Block's group does (`keyframe`).
fn parse_block(body: &[u8], keyframe: Option<bool>) -> Option<Block<'_>> {
    let first = *body.first()?;
    let len = first.leading_zeros() as usize + 1;
    let track_bytes = body.get(..len)?;
    let track = track_bytes.iter().fold(0u64, |value, byte| value << 8 | u64::from(*byte)) & ((1u64 << (7 * len)) - 1);
    let timecode = i16::from_be_bytes([*body.get(len)?, *body.get(len + 1)?]);
    let flags = *body.get(len + 2)?;
    Some(Block {
        track,
        relative_timecode: timecode,
        keyframe: keyframe.unwrap_or(flags & 0x80 != 0),
        data: body.get(len + 3..)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_and_frames_read_back() {
        let mut info = Vec::new();
        ebml::write_uint(&mut info, id::TIMECODE_SCALE, 500_000);
        let mut info_element = Vec::new();
        ebml::write(&mut info_element, id::INFO, &info);
        let mut entry = Vec::new();
        ebml::write_uint(&mut entry, id::TRACK_NUMBER, 1);
        ebml::write_uint(&mut entry, id::TRACK_TYPE, 1);
        ebml::write(&mut entry, id::CODEC_ID, b"V_MPEG4/ISO/AVC");
        ebml::write(&mut entry, id::CODEC_PRIVATE, &[1, 2, 3]);
        let mut tracks = Vec::new();
        ebml::write(&mut tracks, id::TRACK_ENTRY, &entry);
        let mut tracks_element = Vec::new();
        ebml::write(&mut tracks_element, id::TRACKS, &tracks);
        let header = TrackHeader::new(info_element, tracks_element);
        assert_eq!(header.timecode_scale_ns, 500_000);
        assert_eq!(header.ticks_to_ms(4000), 2000);
        let found = header.tracks();
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].number, found[0].kind, found[0].codec_id.as_str()), (1, 1, "V_MPEG4/ISO/AVC"));
        assert_eq!(found[0].codec_private, [1, 2, 3]);

        let mut cluster = Vec::new();
        ebml::write_uint(&mut cluster, id::TIMECODE, 4000);
        ebml::write(&mut cluster, id::SIMPLE_BLOCK, &[0x81, 0, 0, 0x80, 0xAA]);
        let mut group = Vec::new();
        ebml::write(&mut group, id::BLOCK, &[0x82, 0, 40, 0, 0xBB]);
        ebml::write(&mut group, id::REFERENCE_BLOCK, &[0xD8]);
        ebml::write(&mut cluster, id::BLOCK_GROUP, &group);
        let meta = FragmentMeta { number: 1, producer_ms: 0, server_ms: 0, duration_ms: 0, size: 0 };
        let fragment = Fragment { meta, header: std::sync::Arc::new(header), cluster };
        assert_eq!(fragment.timecode(), 4000);
        let blocks: Vec<Block<'_>> = fragment.blocks().collect();
        assert_eq!(blocks[0], Block { track: 1, relative_timecode: 0, keyframe: true, data: &[0xAA] });
        assert_eq!(blocks[1], Block { track: 2, relative_timecode: 40, keyframe: false, data: &[0xBB] });
    }
}
