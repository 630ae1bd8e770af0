//! HLS playlists of a session (RFC 8216): the master playlist naming one media playlist per
//! track, as AWS's do (the video track's as the variant, the audio track's as its `AUDIO`
//! rendition), and media playlists listing the session's fragments, each fragment's media
//! segment holding that one track. URIs are relative: the player resolves them against the
//! playlist's URL.

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use m3u8_rs::{
    AlternativeMedia, AlternativeMediaType, MasterPlaylist, MediaPlaylist, MediaPlaylistType, MediaSegment, Resolution,
    VariantStream,
};

use super::archive::FragmentInfo;
use super::session::{DiscontinuityMode, Mode, Session};

/// A gap or overlap between fragments larger than this is a discontinuity (`ON_DISCONTINUITY`).
const DISCONTINUITY_TOLERANCE_MS: i64 = 50;

/// The query naming a session's resources for one track (`None`: every track, muxed). Tokens
/// are URL-safe as sealed: they go into query strings as they are.
pub(crate) fn query(token: &str, track: Option<u64>) -> String {
    match track {
        Some(track) => format!("SessionToken={token}&TrackNumber={track}"),
        None => format!("SessionToken={token}"),
    }
}

/// The group ID of the audio rendition.
const AUDIO_GROUP: &str = "audio";

fn write(write: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    write(&mut out).expect("a playlist writes into memory");
    out
}

/// The master playlist: one variant, the video track's media playlist, with the stream's codecs,
/// picture size and peak bit rate (from the fragments' sizes and durations), and the audio
/// track's media playlist as its audio rendition when there is one.
pub(crate) fn master(
    token: &str,
    codecs: String,
    resolution: Option<(u32, u32)>,
    fragments: &[FragmentInfo],
    (video, audio): (u64, Option<u64>),
) -> Vec<u8> {
    let bandwidth =
        fragments.iter().map(|fragment| fragment.size * 8 * 1000 / fragment.duration_ms.max(1)).max().unwrap_or(0);
    let variant = VariantStream {
        uri: format!("getHLSMediaPlaylist.m3u8?{}", query(token, Some(video))),
        bandwidth,
        codecs: Some(codecs),
        resolution: resolution.map(|(width, height)| Resolution { width: width.into(), height: height.into() }),
        audio: audio.map(|_| AUDIO_GROUP.to_owned()),
        ..Default::default()
    };
    let alternatives = audio
        .map(|audio| AlternativeMedia {
            media_type: AlternativeMediaType::Audio,
            uri: Some(format!("getHLSMediaPlaylist.m3u8?{}", query(token, Some(audio)))),
            group_id: AUDIO_GROUP.to_owned(),
            name: AUDIO_GROUP.to_owned(),
            default: true,
            autoselect: true,
            ..Default::default()
        })
        .into_iter()
        .collect();
    let playlist = MasterPlaylist {
        version: Some(7),
        variants: vec![variant],
        alternatives,
        independent_segments: true,
        ..Default::default()
    };
    write(|out| playlist.write_to(out))
}

/// A media playlist of `fragments`, its resources named with `query` (see [`query`]): LIVE ones
/// keep growing (no `EXT-X-ENDLIST`), ON_DEMAND ones are complete, LIVE_REPLAY ones are complete
/// once their window's end has passed (`now_ms`).
pub(crate) fn media(session: &Session, query: &str, fragments: &[FragmentInfo], now_ms: i64) -> Vec<u8> {
    let clock = session.window.clock;
    let mut previous: Option<&FragmentInfo> = None;
    let segments = fragments
        .iter()
        .map(|fragment| {
            let discontinuity = previous.is_some_and(|previous| match session.discontinuity {
                DiscontinuityMode::Always => true,
                DiscontinuityMode::Never => false,
                DiscontinuityMode::OnDiscontinuity => {
                    let expected = previous.at(clock) + previous.duration_ms as i64;
                    (fragment.at(clock) - expected).abs() > DISCONTINUITY_TOLERANCE_MS
                }
            });
            // Each piece after a discontinuity names its init segment again.
            let map = (previous.is_none() || discontinuity)
                .then(|| m3u8_rs::Map { uri: format!("getMP4InitFragment.mp4?{query}"), ..Default::default() });
            previous = Some(fragment);
            MediaSegment {
                uri: format!("getMP4MediaFragment.mp4?FragmentNumber={}&{query}", fragment.number),
                duration: fragment.duration_ms as f32 / 1000.0,
                discontinuity,
                map,
                program_date_time: session.program_date_time.then(|| date_time(fragment.at(clock))).flatten(),
                ..Default::default()
            }
        })
        .collect();
    let longest_ms = fragments.iter().map(|fragment| fragment.duration_ms).max().unwrap_or(1000);
    let complete = match session.mode {
        Mode::Live => false,
        Mode::OnDemand => true,
        Mode::LiveReplay => session.window.end_ms.is_some_and(|end| end < now_ms),
    };
    let first_sequence = fragments.first().map_or(0, |fragment| fragment.sequence);
    // With ALWAYS every boundary between fragments is a discontinuity, those before the first
    // listed one too: counting them keeps a sliding LIVE playlist's discontinuities numbered the
    // same from one reload to the next (RFC 8216 §4.3.3.3).
    let discontinuity_sequence = match session.discontinuity {
        DiscontinuityMode::Always => first_sequence.saturating_sub(1),
        _ => 0,
    };
    let playlist = MediaPlaylist {
        version: Some(7),
        // RFC 8216 §4.3.3.1: every EXTINF rounded to the nearest integer is at most the target;
        // a larger target only makes players hold back further and reload less often.
        target_duration: ((longest_ms + 500) / 1000).max(1),
        media_sequence: first_sequence,
        discontinuity_sequence,
        segments,
        end_list: complete,
        playlist_type: (session.mode == Mode::OnDemand).then_some(MediaPlaylistType::Vod),
        independent_segments: true,
        ..Default::default()
    };
    write(|out| playlist.write_to(out))
}

fn date_time(epoch_ms: i64) -> Option<DateTime<FixedOffset>> {
    Utc.timestamp_millis_opt(epoch_ms).single().map(|time| time.fixed_offset())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::playback::archive::{Clock, Window};

    fn fragment(sequence: u64, at_ms: i64) -> FragmentInfo {
        FragmentInfo {
            number: format!("91343852333181432{sequence:03}"),
            sequence,
            producer_ms: at_ms,
            server_ms: at_ms + 40,
            duration_ms: 2000,
            size: 50_000,
        }
    }

    fn session(mode: Mode, discontinuity: DiscontinuityMode) -> Session {
        Session {
            stream: "cam".into(),
            arn: "arn".into(),
            mode,
            window: Window { clock: Clock::Producer, start_ms: Some(0), end_ms: Some(10_000) },
            discontinuity,
            program_date_time: true,
            max_fragments: 5,
            origin: 0,
            expires_s: 0,
        }
    }

    #[test]
    fn the_master_playlist_names_the_media_playlist_with_codecs_size_and_rate() {
        let codecs = "avc1.42c00d,mp4a.40.2".to_owned();
        let text = String::from_utf8(master("a.b", codecs, Some((320, 240)), &[fragment(1, 0)], (1, Some(2)))).unwrap();
        assert!(text.starts_with("#EXTM3U"), "{text}");
        assert!(text.contains("BANDWIDTH=200000"), "{text}");
        assert!(text.contains("CODECS=\"avc1.42c00d,mp4a.40.2\""), "{text}");
        assert!(text.contains("RESOLUTION=320x240"), "{text}");
        assert!(text.contains("AUDIO=\"audio\""), "{text}");
        assert!(text.contains("\ngetHLSMediaPlaylist.m3u8?SessionToken=a.b&TrackNumber=1\n"), "{text}");
        assert!(text.contains("#EXT-X-MEDIA:TYPE=AUDIO,"), "{text}");
        assert!(text.contains("URI=\"getHLSMediaPlaylist.m3u8?SessionToken=a.b&TrackNumber=2\""), "{text}");
        let video_only = String::from_utf8(master("a.b", "avc1.42c00d".into(), None, &[], (1, None))).unwrap();
        assert!(!video_only.contains("EXT-X-MEDIA:") && !video_only.contains("AUDIO="), "{video_only}");
    }

    #[test]
    fn on_demand_playlists_end_and_live_ones_grow() {
        let fragments = [fragment(7, 0), fragment(8, 2000), fragment(9, 9000)];
        let text = |mode, discontinuity| {
            String::from_utf8(media(&session(mode, discontinuity), "SessionToken=t", &fragments, 5_000)).unwrap()
        };
        let on_demand = text(Mode::OnDemand, DiscontinuityMode::OnDiscontinuity);
        assert!(on_demand.contains("#EXT-X-ENDLIST") && on_demand.contains("#EXT-X-PLAYLIST-TYPE:VOD"), "{on_demand}");
        assert!(on_demand.contains("#EXT-X-MEDIA-SEQUENCE:7"), "{on_demand}");
        assert!(on_demand.contains("#EXT-X-TARGETDURATION:2"), "{on_demand}");
        assert!(on_demand.contains("getMP4MediaFragment.mp4?FragmentNumber=91343852333181432008&SessionToken=t"));
        assert!(on_demand.contains("#EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:00:02"), "{on_demand}");
        // Only the 5 s gap before the third fragment is a discontinuity.
        assert_eq!(on_demand.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{on_demand}");
        assert_eq!(on_demand.matches("#EXT-X-MAP:URI=\"getMP4InitFragment.mp4?SessionToken=t\"").count(), 2);
        let live = text(Mode::Live, DiscontinuityMode::Always);
        assert!(!live.contains("#EXT-X-ENDLIST") && !live.contains("PLAYLIST-TYPE"), "{live}");
        assert!(live.contains("#EXT-X-DISCONTINUITY-SEQUENCE:6"), "{live}");
        assert_eq!(live.matches("#EXT-X-DISCONTINUITY\n").count(), 2, "{live}");
        assert!(!text(Mode::LiveReplay, DiscontinuityMode::Never).contains("#EXT-X-ENDLIST"), "window still open");
    }
}
