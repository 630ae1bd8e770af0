//! Where fragments start: at a video key frame, so that every stored fragment decodes on its
//! own (HLS segments, GetClip and GetMedia readers start at any fragment).
//!
//! Live writers do not always start a Cluster at a key frame: `ffmpeg -f matroska -live 1`
//! closes a Cluster when its size or time limit is reached, whatever frame comes next. Such a
//! Cluster continues the group of pictures of the Cluster before it, so ingest appends its
//! frames to the fragment still open (their timecodes rebased on that fragment's Cluster
//! timecode) instead of storing a fragment whose first frames reference frames it lacks.

use std::sync::Arc;

use super::ebml::{self, id};
use super::{cluster_blocks, cluster_timecode, TrackHeader};

/// Matroska's TrackType of video tracks.
const VIDEO: u64 = 1;

/// Whether the frames of `cluster` seen so far start at a key frame: `Some(true)` when its first
/// video frame is a key frame (or the tracks have no video: audio frames all are), `Some(false)`
/// when it is not, `None` while no video frame has arrived.
pub(crate) fn starts_at_key_frame(header: &TrackHeader, cluster: &[u8]) -> Option<bool> {
    let video: Vec<u64> =
        header.tracks().into_iter().filter(|track| track.kind == VIDEO).map(|track| track.number).collect();
    if video.is_empty() {
        return Some(true);
    }
    cluster_blocks(cluster).find(|block| video.contains(&block.track)).map(|block| block.keyframe)
}

/// A fragment being assembled from the Clusters of one group of pictures.
pub(crate) struct OpenFragment {
    pub header: Arc<TrackHeader>,
    /// The Cluster's children: the first Cluster's Timecode, then the frames of every Cluster.
    pub body: Vec<u8>,
    /// The producer's timestamp of the fragment's start, epoch milliseconds.
    pub producer_ms: i64,
}

/// A Cluster whose frames lie further from the fragment's start than a block's 16-bit relative
/// timecode reaches.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct BeyondBlockRange;

impl OpenFragment {
    /// The fragment's Cluster timecode, in ticks.
    pub fn timecode(&self) -> u64 {
        cluster_timecode(&self.body)
    }

    /// Appends the frames of `cluster` (the Cluster's children), which continues this fragment.
    pub fn extend(&mut self, cluster: &[u8]) -> Result<(), BeyondBlockRange> {
        let delta = i64::try_from(cluster_timecode(cluster)).unwrap_or(i64::MAX)
            - i64::try_from(self.timecode()).unwrap_or(i64::MAX);
        let mut rebased = Vec::with_capacity(cluster.len());
        for (child_id, body) in ebml::children(cluster) {
            match child_id {
                id::TIMECODE => {}
                id::SIMPLE_BLOCK => ebml::write(&mut rebased, id::SIMPLE_BLOCK, &shifted(body, delta)?),
                id::BLOCK_GROUP => {
                    let mut group = Vec::with_capacity(body.len());
                    for (member_id, member) in ebml::children(body) {
                        match member_id {
                            id::BLOCK => ebml::write(&mut group, id::BLOCK, &shifted(member, delta)?),
                            other => ebml::write(&mut group, other, member),
                        }
                    }
                    ebml::write(&mut rebased, id::BLOCK_GROUP, &group);
                }
                other => ebml::write(&mut rebased, other, body),
            }
        }
        self.body.extend_from_slice(&rebased);
        Ok(())
    }
}

/// A (Simple)Block body with its relative timecode moved by `delta` ticks.
fn shifted(block: &[u8], delta: i64) -> Result<Vec<u8>, BeyondBlockRange> {
    let track_len = block.first().ok_or(BeyondBlockRange)?.leading_zeros() as usize + 1;
    let at = block.get(track_len..track_len + 2).ok_or(BeyondBlockRange)?;
    let timecode = i64::from(i16::from_be_bytes([at[0], at[1]])) + delta;
    let timecode = i16::try_from(timecode).map_err(|_| BeyondBlockRange)?;
    let mut out = block.to_vec();
    out[track_len..track_len + 2].copy_from_slice(&timecode.to_be_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kinds: &[u64]) -> TrackHeader {
        let mut tracks = Vec::new();
        for (number, kind) in kinds.iter().enumerate() {
            let mut entry = Vec::new();
            ebml::write_uint(&mut entry, id::TRACK_NUMBER, number as u64 + 1);
            ebml::write_uint(&mut entry, id::TRACK_TYPE, *kind);
            ebml::write(&mut tracks, id::TRACK_ENTRY, &entry);
        }
        let mut element = Vec::new();
        ebml::write(&mut element, id::TRACKS, &tracks);
        TrackHeader::new(Vec::new(), element)
    }

    fn cluster(timecode: u64, blocks: &[(u8, i16, bool)]) -> Vec<u8> {
        let mut body = Vec::new();
        ebml::write_uint(&mut body, id::TIMECODE, timecode);
        for (track, relative, key) in blocks {
            let mut block = vec![0x80 | track];
            block.extend_from_slice(&relative.to_be_bytes());
            block.extend_from_slice(&[if *key { 0x80 } else { 0 }, 0xAB]);
            ebml::write(&mut body, id::SIMPLE_BLOCK, &block);
        }
        body
    }

    #[test]
    fn the_first_video_frame_decides() {
        let av = header(&[1, 2]);
        assert_eq!(starts_at_key_frame(&av, &cluster(0, &[(2, 0, true)])), None);
        assert_eq!(starts_at_key_frame(&av, &cluster(0, &[(2, 0, true), (1, 5, true)])), Some(true));
        assert_eq!(starts_at_key_frame(&av, &cluster(0, &[(2, 0, true), (1, 5, false)])), Some(false));
        assert_eq!(starts_at_key_frame(&header(&[2]), &cluster(0, &[])), Some(true));
    }

    #[test]
    fn a_continuing_cluster_is_rebased_on_the_fragment() {
        let av = Arc::new(header(&[1, 2]));
        let mut fragment =
            OpenFragment { header: av, body: cluster(1000, &[(1, 0, true), (1, 40, false)]), producer_ms: 0 };
        fragment.extend(&cluster(1080, &[(2, 0, true), (1, 0, false)])).unwrap();
        let frames: Vec<(u64, i16, bool)> = cluster_blocks(&fragment.body)
            .map(|block| (block.track, block.relative_timecode, block.keyframe))
            .collect();
        assert_eq!(frames, [(1, 0, true), (1, 40, false), (2, 80, true), (1, 80, false)]);
        assert_eq!(fragment.timecode(), 1000);
        assert_eq!(fragment.extend(&cluster(40_000, &[(1, 0, false)])), Err(BeyondBlockRange));
    }
}
