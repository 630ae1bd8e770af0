//! Matroska fragments to fragmented MP4, without transcoding: the H.264 frames (already
//! length-prefixed NAL units in MKV, as in MP4) and AAC frames are copied; only the container
//! changes. An init segment (`ftyp` + `moov`) comes from the tracks' codec private data, a media
//! segment (`moof` + `mdat`) from each fragment's cluster.

use mp4_atom::{
    Atom, Audio, Avc1, Avcc, Dinf, Dref, Encode, Esds, FourCC, Ftyp, Hdlr, Mdat, Mdhd, Mdia, Mfhd, Minf, Moof, Moov,
    Mp4a, Mvex, Mvhd, Smhd, Stbl, Stco, Stsd, Tfdt, Tfhd, Tkhd, Traf, Trak, Trex, Trun, TrunEntry, Url, Visual, Vmhd,
};

/// Ticks per second of video tracks: the usual MPEG clock, which divides every common frame rate.
const VIDEO_TIMESCALE: u32 = 90_000;
/// Samples per AAC frame: an AAC frame's exact duration at the track's sample-rate timescale.
const AAC_FRAME_SAMPLES: u32 = 1024;
/// `trun` sample flags (ISO/IEC 14496-12 §8.8.3.1): a sync sample depends on no other; other
/// video samples depend on others and are not sync samples.
const SYNC_SAMPLE: u32 = 0x0200_0000;
const NON_SYNC_SAMPLE: u32 = 0x0101_0000;

#[derive(Debug, thiserror::Error)]
pub(crate) enum RemuxError {
    #[error("The codec ID of track {track} is {codec_id}; playback supports V_MPEG4/ISO/AVC and A_AAC.")]
    UnsupportedCodec { track: u64, codec_id: String },
    #[error("No codec private data was found in track {0}.")]
    MissingCodecPrivateData(u64),
    #[error("The codec private data of track {0} is not valid for this operation.")]
    InvalidCodecPrivateData(u64),
    #[error("The stream has no H.264 or AAC track.")]
    NoPlayableTrack,
    #[error("The MP4 could not be written: {0}")]
    Mp4(#[from] mp4_atom::Error),
}

/// One track of a stream, as its Matroska `TrackEntry` describes it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Track {
    pub number: u64,
    pub codec_id: String,
    pub codec_private: Vec<u8>,
    pub default_duration_ns: Option<u64>,
    pub width: u32,
    pub height: u32,
    pub sample_rate: f64,
    pub channels: u32,
}

/// A stream's tracks and its timecode unit (Matroska's `Info` and `Tracks`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Header {
    pub timecode_scale_ns: u64,
    pub tracks: Vec<Track>,
}

impl Header {
    /// The header of track `number` alone (one track's init and media segments); `None` when
    /// the stream has no such track.
    pub fn only(&self, number: u64) -> Option<Header> {
        let track = self.tracks.iter().find(|track| track.number == number)?;
        Some(Header { timecode_scale_ns: self.timecode_scale_ns, tracks: vec![track.clone()] })
    }

    /// The numbers of the video track and, if any, of the audio track (what playback packages).
    pub fn video_and_audio(&self) -> Result<(u64, Option<u64>), RemuxError> {
        let tracks = playable(self)?;
        let video = tracks.iter().find(|track| matches!(track.kind, Kind::Video { .. }));
        let audio = tracks.iter().find(|track| matches!(track.kind, Kind::Audio { .. }));
        let first = tracks.first().ok_or(RemuxError::NoPlayableTrack)?;
        Ok((video.unwrap_or(first).track.number, audio.filter(|_| video.is_some()).map(|audio| audio.track.number)))
    }
}

/// One frame of a fragment, in the order stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frame<'a> {
    pub track: u64,
    /// Presentation time in timecode-scale units, counted from the stream's origin.
    pub timecode: i64,
    pub keyframe: bool,
    pub data: &'a [u8],
}

/// What a track becomes in MP4.
enum Kind {
    Video { avcc: Avcc, width: u16, height: u16 },
    Audio { esds: Esds, sample_rate: u32, channels: u16 },
}

/// A track playback can serve.
struct Playable<'a> {
    track: &'a Track,
    kind: Kind,
}

impl Playable<'_> {
    fn id(&self) -> u32 {
        u32::try_from(self.track.number).unwrap_or(u32::MAX)
    }

    fn timescale(&self) -> u32 {
        match self.kind {
            Kind::Video { .. } => VIDEO_TIMESCALE,
            Kind::Audio { sample_rate, .. } => sample_rate.max(1),
        }
    }
}

/// The tracks of `header` that play, in track-number order; any other codec is refused, as AWS
/// refuses streams whose tracks it cannot package.
fn playable(header: &Header) -> Result<Vec<Playable<'_>>, RemuxError> {
    let mut tracks = Vec::new();
    for track in &header.tracks {
        let number = track.number;
        if track.codec_private.is_empty() {
            return Err(RemuxError::MissingCodecPrivateData(number));
        }
        let kind = match track.codec_id.as_str() {
            "V_MPEG4/ISO/AVC" => {
                let avcc = Avcc::decode_body(&mut track.codec_private.as_slice())
                    .map_err(|_| RemuxError::InvalidCodecPrivateData(number))?;
                let width = u16::try_from(track.width).unwrap_or(u16::MAX);
                let height = u16::try_from(track.height).unwrap_or(u16::MAX);
                Kind::Video { avcc, width, height }
            }
            "A_AAC" => audio_kind(track)?,
            _ => return Err(RemuxError::UnsupportedCodec { track: number, codec_id: track.codec_id.clone() }),
        };
        tracks.push(Playable { track, kind });
    }
    tracks.sort_by_key(|track| track.track.number);
    if tracks.is_empty() {
        return Err(RemuxError::NoPlayableTrack);
    }
    Ok(tracks)
}

/// An AAC track's `esds`, from its AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1).
fn audio_kind(track: &Track) -> Result<Kind, RemuxError> {
    let config = &track.codec_private;
    if config.len() < 2 {
        return Err(RemuxError::InvalidCodecPrivateData(track.number));
    }
    let profile = config[0] >> 3;
    let freq_index = ((config[0] & 0x07) << 1) | (config[1] >> 7);
    let chan_conf = (config[1] >> 3) & 0x0F;
    let esds = Esds {
        es_desc: mp4_atom::esds::EsDescriptor {
            es_id: u16::try_from(track.number).unwrap_or(0),
            dec_config: mp4_atom::esds::DecoderConfig {
                // MPEG-4 audio, an audio stream.
                object_type_indication: 0x40,
                stream_type: 0x05,
                dec_specific: Some(mp4_atom::esds::DecoderSpecific {
                    profile,
                    freq_index,
                    chan_conf,
                    raw: config.clone(),
                }),
                ..Default::default()
            },
            ..Default::default()
        },
    };
    let sample_rate = track.sample_rate.round() as u32;
    let channels = u16::try_from(track.channels).unwrap_or(2);
    Ok(Kind::Audio { esds, sample_rate, channels })
}

/// The RFC 6381 codecs of a stream's playable tracks, for the master playlist's `CODECS`:
/// `avc1.PPCCLL` from the AVC configuration, `mp4a.40.N` from the AAC object type.
pub(crate) fn codecs(header: &Header) -> Result<String, RemuxError> {
    let names: Vec<String> = playable(header)?
        .iter()
        .map(|track| match &track.kind {
            Kind::Video { avcc, .. } => format!(
                "avc1.{:02x}{:02x}{:02x}",
                avcc.avc_profile_indication, avcc.profile_compatibility, avcc.avc_level_indication
            ),
            Kind::Audio { esds, .. } => {
                let profile = esds.es_desc.dec_config.dec_specific.as_ref().map_or(2, |config| config.profile);
                format!("mp4a.40.{profile}")
            }
        })
        .collect();
    Ok(names.join(","))
}

/// The picture size of a stream's first video track.
pub(crate) fn resolution(header: &Header) -> Option<(u32, u32)> {
    let video = header.tracks.iter().find(|track| track.codec_id == "V_MPEG4/ISO/AVC")?;
    Some((video.width, video.height))
}

fn encode(atom: &impl Encode, out: &mut Vec<u8>) -> Result<(), RemuxError> {
    Ok(atom.encode(out)?)
}

/// The init segment (`ftyp` + `moov` with one `trak` and `trex` per track) of a stream whose
/// fragments have `header`.
pub(crate) fn init_segment(header: &Header) -> Result<Vec<u8>, RemuxError> {
    let tracks = playable(header)?;
    let mut out = Vec::new();
    encode(&file_type(), &mut out)?;
    let moov = Moov {
        mvhd: Mvhd {
            timescale: 1000,
            rate: 1.into(),
            volume: 1.into(),
            next_track_id: tracks.iter().map(Playable::id).max().unwrap_or(0).saturating_add(1),
            ..Default::default()
        },
        mvex: Some(Mvex {
            trex: tracks
                .iter()
                .map(|track| Trex { track_id: track.id(), default_sample_description_index: 1, ..Default::default() })
                .collect(),
            ..Default::default()
        }),
        trak: tracks.iter().map(trak).collect(),
        ..Default::default()
    };
    encode(&moov, &mut out)?;
    Ok(out)
}

fn file_type() -> Ftyp {
    Ftyp {
        major_brand: FourCC::new(b"iso6"),
        minor_version: 0,
        compatible_brands: [b"iso6", b"cmfc", b"mp41", b"avc1"].into_iter().map(FourCC::new).collect(),
    }
}

fn trak(track: &Playable<'_>) -> Trak {
    let (handler, name, codec, width, height, volume) = match &track.kind {
        Kind::Video { avcc, width, height } => {
            let visual = Visual {
                width: *width,
                height: *height,
                horizresolution: 72.into(),
                vertresolution: 72.into(),
                ..Default::default()
            };
            let avc1 = Avc1 { visual, avcc: avcc.clone(), ..Default::default() };
            (b"vide", "VideoHandler", avc1.into(), *width, *height, 0)
        }
        Kind::Audio { esds, sample_rate, channels } => {
            // The 16.16 field cannot hold rates above 65535 Hz; the esds carries the real one.
            let rate = u16::try_from(*sample_rate).unwrap_or(0);
            let audio =
                Audio { data_reference_index: 1, channel_count: *channels, sample_size: 16, sample_rate: rate.into() };
            let mp4a = Mp4a { audio, esds: esds.clone(), btrt: None, taic: None };
            (b"soun", "SoundHandler", mp4a.into(), 0, 0, 1)
        }
    };
    let is_video = handler == b"vide";
    Trak {
        tkhd: Tkhd {
            track_id: track.id(),
            enabled: true,
            in_movie: true,
            volume: volume.into(),
            matrix: identity_matrix(),
            width: width.into(),
            height: height.into(),
            ..Default::default()
        },
        mdia: Mdia {
            mdhd: Mdhd { timescale: track.timescale(), language: "und".into(), ..Default::default() },
            hdlr: Hdlr { handler: FourCC::new(handler), name: name.into() },
            minf: Minf {
                vmhd: is_video.then(Vmhd::default),
                smhd: (!is_video).then(Smhd::default),
                dinf: Dinf { dref: Dref { entries: vec![Url::default().into()] } },
                stbl: Stbl { stsd: Stsd { codecs: vec![codec] }, stco: Some(Stco::default()), ..Default::default() },
                ..Default::default()
            },
        },
        ..Default::default()
    }
}

fn identity_matrix() -> mp4_atom::Matrix {
    mp4_atom::Matrix { a: 0x0001_0000, b: 0, u: 0, c: 0, d: 0x0001_0000, v: 0, x: 0, y: 0, w: 0x4000_0000 }
}

/// One track's samples of a fragment, in decode order.
struct Run {
    track_id: u32,
    base_decode_time: u64,
    entries: Vec<TrunEntry>,
    data: Vec<u8>,
}

/// `ns` in ticks of `timescale`.
fn ticks(ns: i128, timescale: u32) -> i128 {
    ns * i128::from(timescale) / 1_000_000_000
}

/// The samples of `track` among `frames`. Matroska stores presentation times in decode order;
/// decode times are the presentation times sorted (exact when frames are not reordered, and
/// consistent for B-frames, whose offsets then go into the `trun`'s composition offsets).
fn run(track: &Playable<'_>, frames: &[Frame<'_>], scale_ns: u64, origin_ns: i128) -> Option<Run> {
    let frames: Vec<&Frame<'_>> = frames.iter().filter(|frame| frame.track == track.track.number).collect();
    let timescale = track.timescale();
    let presentation: Vec<i128> = frames
        .iter()
        .map(|frame| ticks(i128::from(frame.timecode) * i128::from(scale_ns) - origin_ns, timescale))
        .collect();
    let mut decode = presentation.clone();
    decode.sort_unstable();
    let first = *decode.first()?;
    let default_duration = match track.kind {
        Kind::Audio { .. } => Some(i128::from(AAC_FRAME_SAMPLES)),
        Kind::Video { .. } => track.track.default_duration_ns.map(|ns| ticks(i128::from(ns), timescale)),
    };
    let mut entries = Vec::with_capacity(frames.len());
    let mut data = Vec::new();
    let mut previous_duration = default_duration.unwrap_or(0);
    for (index, frame) in frames.iter().enumerate() {
        let duration = match (&track.kind, decode.get(index + 1)) {
            // AAC frames always last 1024 samples; millisecond timecodes would only blur that.
            (Kind::Audio { .. }, _) => i128::from(AAC_FRAME_SAMPLES),
            (Kind::Video { .. }, Some(next)) => next - decode[index],
            (Kind::Video { .. }, None) => default_duration.unwrap_or(previous_duration),
        };
        previous_duration = duration;
        let bytes = frame.data;
        let flags = match (&track.kind, frame.keyframe) {
            (Kind::Video { .. }, false) => NON_SYNC_SAMPLE,
            _ => SYNC_SAMPLE,
        };
        entries.push(TrunEntry {
            duration: Some(u32::try_from(duration.max(0)).unwrap_or(u32::MAX)),
            size: Some(u32::try_from(bytes.len()).unwrap_or(u32::MAX)),
            flags: Some(flags),
            cts: Some(i64::try_from(presentation[index] - decode[index]).unwrap_or(0)),
        });
        data.extend_from_slice(bytes);
    }
    Some(Run { track_id: track.id(), base_decode_time: u64::try_from(first.max(0)).unwrap_or(0), entries, data })
}

/// The media segment (`moof` + `mdat`) of one fragment's frames. Decode times count from
/// `origin_ns` (Matroska time, in nanoseconds): 0 keeps the stream's own clock, a clip's start
/// makes the clip begin at zero. `sequence` numbers the fragment within the presentation.
pub(crate) fn media_segment(
    header: &Header,
    frames: &[Frame<'_>],
    sequence: u32,
    origin_ns: i128,
) -> Result<Vec<u8>, RemuxError> {
    let tracks = playable(header)?;
    let runs: Vec<Run> =
        tracks.iter().filter_map(|track| run(track, frames, header.timecode_scale_ns, origin_ns)).collect();
    // The data offsets point from the moof's start into the mdat, so they depend on the moof's
    // size; every offset field is present whatever its value, so one sizing pass suffices.
    let moof_size = encoded_len(&moof(&runs, sequence, 0))?;
    let mut out = Vec::new();
    encode(&moof(&runs, sequence, moof_size), &mut out)?;
    let data: Vec<u8> = runs.into_iter().flat_map(|run| run.data).collect();
    encode(&Mdat { data }, &mut out)?;
    Ok(out)
}

fn encoded_len(atom: &impl Encode) -> Result<usize, RemuxError> {
    let mut out = Vec::new();
    encode(atom, &mut out)?;
    Ok(out.len())
}

/// The `moof` of `runs`, their data following it in an `mdat` (whose 8-byte header comes first).
fn moof(runs: &[Run], sequence: u32, moof_size: usize) -> Moof {
    let mut offset = moof_size + 8;
    let traf = runs
        .iter()
        .map(|run| {
            let data_offset = i32::try_from(offset).unwrap_or(i32::MAX);
            offset += run.data.len();
            Traf {
                tfhd: Tfhd { track_id: run.track_id, default_base_is_moof: true, ..Default::default() },
                tfdt: Some(Tfdt { base_media_decode_time: run.base_decode_time }),
                trun: vec![Trun { data_offset: Some(data_offset), samples: run.entries.clone().into() }],
                ..Default::default()
            }
        })
        .collect();
    Moof { mfhd: Mfhd { sequence_number: sequence }, traf }
}

/// One MP4 file of several fragments' frames (GetClip): the init segment, then each fragment's
/// media segment, timed from the clip's first frame.
pub(crate) fn clip(header: &Header, fragments: &[Vec<Frame<'_>>]) -> Result<Vec<u8>, RemuxError> {
    let mut out = init_segment(header)?;
    let first = fragments.first().and_then(|frames| frames.iter().map(|frame| frame.timecode).min());
    let origin_ns = i128::from(first.unwrap_or(0)) * i128::from(header.timecode_scale_ns);
    for (index, frames) in fragments.iter().enumerate() {
        let sequence = u32::try_from(index + 1).unwrap_or(u32::MAX);
        out.extend(media_segment(header, frames, sequence, origin_ns)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::playback::testing;
    use mp4_atom::Decode;

    use crate::playback::archive::frames;

    fn fragments(seconds: u32) -> Option<(Header, Vec<Vec<u8>>)> {
        testing::fragments(seconds)
    }

    #[test]
    fn ffmpeg_tracks_are_read_as_written() {
        let Some((header, clusters)) = fragments(6) else { return };
        assert_eq!(header.timecode_scale_ns, 1_000_000);
        let video = &header.tracks[0];
        assert_eq!(
            (video.number, video.codec_id.as_str(), video.width, video.height),
            (1, "V_MPEG4/ISO/AVC", 320, 240)
        );
        assert_eq!(video.codec_private[0], 1, "AVCC configuration version");
        let audio = &header.tracks[1];
        assert_eq!(
            (audio.number, audio.codec_id.as_str(), audio.sample_rate, audio.channels),
            (2, "A_AAC", 44100.0, 1)
        );
        // ffmpeg cuts clusters by time and size, not at key frames: the key frames (every 2 s)
        // and all 150 video frames are found across them, in order.
        let frames: Vec<Frame> = clusters.iter().flat_map(|cluster| frames(cluster)).collect();
        let video: Vec<&Frame<'_>> = frames.iter().filter(|frame| frame.track == 1).collect();
        assert_eq!(video.len(), 150);
        let keyframes: Vec<i64> = video.iter().filter(|frame| frame.keyframe).map(|frame| frame.timecode).collect();
        assert_eq!(keyframes, [23, 2023, 4023]);
        assert!(video.windows(2).all(|pair| pair[1].timecode - pair[0].timecode == 40));
    }

    #[test]
    fn a_clip_is_an_mp4_ffprobe_plays_with_both_tracks_and_the_whole_duration() {
        let Some((header, clusters)) = fragments(6) else { return };
        let fragments: Vec<Vec<Frame>> = clusters.iter().map(|cluster| frames(cluster)).collect();
        let mp4 = clip(&header, &fragments).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clip.mp4");
        std::fs::write(&path, &mp4).unwrap();
        let Some(probe) = testing::probe(&path) else { return };
        let streams = probe["streams"].as_array().unwrap();
        assert_eq!(streams[0]["codec_name"], "h264");
        assert_eq!((streams[0]["width"].as_u64(), streams[0]["height"].as_u64()), (Some(320), Some(240)));
        assert_eq!(streams[0]["nb_read_packets"], "150");
        assert_eq!(streams[1]["codec_name"], "aac");
        assert_eq!(streams[1]["sample_rate"], "44100");
        let duration: f64 = probe["format"]["duration"].as_str().unwrap().parse().unwrap();
        assert!((duration - 6.0).abs() < 0.1, "duration {duration}");
    }

    #[test]
    fn each_media_segment_keeps_the_stream_clock() {
        let Some((header, clusters)) = fragments(6) else { return };
        let starts_at_4023 =
            |cluster: &&Vec<u8>| frames(cluster).iter().any(|frame| frame.track == 1 && frame.timecode == 4023);
        let cluster = clusters.iter().find(starts_at_4023).unwrap();
        let segment = media_segment(&header, &frames(cluster), 2, 0).unwrap();
        let moof = Moof::decode(&mut segment.as_slice()).unwrap();
        assert_eq!(moof.mfhd.sequence_number, 2);
        let video = &moof.traf[0];
        // The key frame at 4.023 s: 362,070 ticks of the 90 kHz clock.
        assert_eq!(video.tfdt.as_ref().unwrap().base_media_decode_time, 362_070);
        let samples: Vec<TrunEntry> = video.trun[0].samples.iter().collect();
        assert!(samples.len() > 40);
        assert_eq!((samples[0].flags, samples[1].flags), (Some(SYNC_SAMPLE), Some(NON_SYNC_SAMPLE)));
        assert!(samples.iter().all(|sample| sample.duration == Some(3600) && sample.cts == Some(0)));
        // The first track's data starts right after the moof and the mdat header.
        let moof_len = u32::from_be_bytes(segment[..4].try_into().unwrap()) as i32;
        assert_eq!(video.trun[0].data_offset, Some(moof_len + 8));
    }

    #[test]
    fn tracks_playback_cannot_package_are_refused() {
        let track = Track {
            number: 1,
            codec_id: "V_MPEGH/ISO/HEVC".into(),
            codec_private: vec![1, 2, 3],
            default_duration_ns: None,
            width: 0,
            height: 0,
            sample_rate: 0.0,
            channels: 0,
        };
        let header = |track: Track| Header { timecode_scale_ns: 1_000_000, tracks: vec![track] };
        let unsupported = init_segment(&header(track.clone())).unwrap_err();
        assert!(matches!(unsupported, RemuxError::UnsupportedCodec { track: 1, .. }));
        let avc = Track { codec_id: "V_MPEG4/ISO/AVC".into(), ..track.clone() };
        assert!(matches!(init_segment(&header(avc.clone())), Err(RemuxError::InvalidCodecPrivateData(1))));
        let empty = Track { codec_private: vec![], ..avc };
        assert!(matches!(init_segment(&header(empty)), Err(RemuxError::MissingCodecPrivateData(1))));
        assert!(matches!(
            init_segment(&Header { timecode_scale_ns: 1, tracks: vec![] }),
            Err(RemuxError::NoPlayableTrack)
        ));
    }
}
