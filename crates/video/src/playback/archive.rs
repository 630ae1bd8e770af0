//! What playback reads of a stream's stored fragments, from the PutMedia fragment store
//! ([`crate::media`]): fragments listed by time and read whole, and their track header and
//! Cluster in the remuxer's terms. Playback never writes.

use std::sync::Arc;

use crate::media::{self, ebml, FragmentMeta, StreamFragments, TrackHeader};
use crate::model::StreamMeta;
use crate::service::VideoService;

use super::error::PlaybackError;
use super::remux::{Frame, Header, Track};

/// Which of a fragment's timestamps a selector ranges over (`FragmentSelectorType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum Clock {
    #[serde(rename = "PRODUCER_TIMESTAMP")]
    Producer,
    #[serde(rename = "SERVER_TIMESTAMP")]
    Server,
}

/// One stored fragment's description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FragmentInfo {
    /// AWS's fragment number: a long digit string.
    pub number: String,
    /// The fragment's position among the stream's fragments from its session's first one,
    /// counting from 1: HLS media sequence numbers, which go up by one from fragment to
    /// fragment where fragment numbers jump.
    pub sequence: u64,
    pub producer_ms: i64,
    pub server_ms: i64,
    pub duration_ms: u64,
    pub size: u64,
}

impl FragmentInfo {
    pub fn at(&self, clock: Clock) -> i64 {
        match clock {
            Clock::Producer => self.producer_ms,
            Clock::Server => self.server_ms,
        }
    }
}

/// A time window over one of the fragments' clocks; open ends are unbounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Window {
    pub clock: Clock,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
}

impl Window {
    pub fn contains(&self, fragment: &FragmentInfo) -> bool {
        let at = fragment.at(self.clock);
        self.start_ms.is_none_or(|start| at >= start) && self.end_ms.is_none_or(|end| at <= end)
    }
}

impl FragmentInfo {
    fn new(meta: &FragmentMeta, sequence: u64) -> Self {
        Self {
            number: meta.number_text(),
            sequence,
            producer_ms: meta.producer_ms,
            server_ms: meta.server_ms,
            duration_ms: u64::try_from(meta.duration_ms).unwrap_or(0),
            size: meta.size,
        }
    }
}

/// One stream's stored fragments, as one session sees them: numbered in sequence from the
/// session's first fragment (`origin`, a fragment number; 0 before the session has one).
pub(crate) struct Archive {
    fragments: Arc<StreamFragments>,
    origin: u64,
}

impl Archive {
    pub fn of(video: &VideoService, stream: &StreamMeta, origin: u64) -> Result<Self, PlaybackError> {
        Ok(Self { fragments: video.media().stream(&stream.name, stream.created_ms)?, origin })
    }

    /// Every fragment from the origin on, oldest first. (Retention dropping the session's first
    /// fragments would shift the sequence: sessions end within 12 hours, retention is hours.)
    fn all(&self) -> Vec<FragmentInfo> {
        let metas = self.fragments.list(self.origin);
        metas.iter().zip(1..).map(|(meta, sequence)| FragmentInfo::new(meta, sequence)).collect()
    }

    /// The fragments inside `window`, oldest first, at most `limit`.
    pub fn list(&self, window: Window, limit: usize) -> Vec<FragmentInfo> {
        self.all().into_iter().filter(|info| window.contains(info)).take(limit).collect()
    }

    /// The newest `limit` fragments, oldest first.
    pub fn latest(&self, limit: usize) -> Vec<FragmentInfo> {
        let mut all = self.all();
        all.split_off(all.len().saturating_sub(limit))
    }

    /// The description of fragment `number` (as the API spells it).
    pub fn info(&self, number: &str) -> Option<FragmentInfo> {
        self.all().into_iter().find(|info| info.number == number)
    }

    /// Fragment `number` (as the API spells it); `None` when it does not exist (any more).
    pub async fn read(&self, number: &str) -> Result<Option<Arc<media::Fragment>>, PlaybackError> {
        let Ok(number) = number.parse::<u64>() else { return Ok(None) };
        Ok(self.fragments.read(number).await?)
    }
}

// TrackEntry settings the store's header does not break out (Matroska element IDs).
const DEFAULT_DURATION: u32 = 0x23_E383;
const VIDEO: u32 = 0xE0;
const PIXEL_WIDTH: u32 = 0xB0;
const PIXEL_HEIGHT: u32 = 0xBA;
const AUDIO: u32 = 0xE1;
const SAMPLING_FREQUENCY: u32 = 0xB5;
const CHANNELS: u32 = 0x9F;

/// An EBML float: 4 or 8 bytes, big-endian.
fn float(body: &[u8]) -> Option<f64> {
    match body.len() {
        4 => Some(f64::from(f32::from_be_bytes(body.try_into().ok()?))),
        8 => Some(f64::from_be_bytes(body.try_into().ok()?)),
        _ => None,
    }
}

/// The remuxer's view of a stream's track header.
pub(crate) fn tracks(header: &TrackHeader) -> Header {
    let tracks = header
        .tracks()
        .into_iter()
        .map(|track| {
            let setting = |group: u32, id: u32| ebml::child(&track.entry, group).and_then(|body| ebml::child(body, id));
            let number =
                |group, id| setting(group, id).and_then(ebml::uint).and_then(|value| u32::try_from(value).ok());
            Track {
                number: track.number,
                default_duration_ns: ebml::child(&track.entry, DEFAULT_DURATION).and_then(ebml::uint),
                width: number(VIDEO, PIXEL_WIDTH).unwrap_or(0),
                height: number(VIDEO, PIXEL_HEIGHT).unwrap_or(0),
                sample_rate: setting(AUDIO, SAMPLING_FREQUENCY).and_then(float).unwrap_or(8000.0),
                channels: number(AUDIO, CHANNELS).unwrap_or(1),
                codec_id: track.codec_id,
                codec_private: track.codec_private,
            }
        })
        .collect();
    Header { timecode_scale_ns: header.timecode_scale_ns, tracks }
}

/// The frames of a stored Cluster (its children), timed from the stream's origin.
pub(crate) fn frames(cluster: &[u8]) -> Vec<Frame<'_>> {
    let base = i64::try_from(media::cluster_timecode(cluster)).unwrap_or(i64::MAX);
    media::cluster_blocks(cluster)
        .map(|block| Frame {
            track: block.track,
            timecode: base.saturating_add(i64::from(block.relative_timecode)),
            keyframe: block.keyframe,
            data: block.data,
        })
        .collect()
}
