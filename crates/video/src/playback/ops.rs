//! The playback operations: GetHLSStreamingSessionURL and GetClip (signed, `POST`), the HLS
//! resources a session's URLs name (public `GET`s checked by their session token), and the
//! refusals of what Tideline does not package yet (DASH, images, MPEG-TS).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tideline_proto::{bytes_response, json_response, AwsError, Payload, RestRequest, Validator};
use tideline_storage::now_ms;

use super::archive::{frames, tracks, Archive, Clock, FragmentInfo, Window};
use super::error::{no_fragments, PlaybackError};
use super::playlist;
use super::remux;
use super::session::{DiscontinuityMode, Mode, Session};
use super::{off_runtime, PlaybackService};
use crate::error::VideoError;
use crate::media::Fragment;
use crate::service::StreamRef;
use crate::validate;

type Response = Result<http::Response<Payload>, AwsError>;

/// The longest time range of an ON_DEMAND session or a clip.
const MAX_RANGE_MS: i64 = 24 * 3600 * 1000;
/// A LIVE session needs a fragment this recent.
const LIVE_WINDOW_MS: i64 = 30_000;
/// Most fragments a media playlist lists, whatever the session asks.
const MAX_PLAYLIST_FRAGMENTS: i64 = 5000;
/// Most fragments in one clip, as AWS limits GetClip.
const MAX_CLIP_FRAGMENTS: usize = 200;
/// Most bytes of media in one clip, as AWS limits GetClip.
const MAX_CLIP_BYTES: u64 = 100 * 1024 * 1024;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RangeInput {
    start_timestamp: Option<f64>,
    end_timestamp: Option<f64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SelectorInput {
    fragment_selector_type: Option<String>,
    timestamp_range: Option<RangeInput>,
}

const CLOCKS: [&str; 2] = ["PRODUCER_TIMESTAMP", "SERVER_TIMESTAMP"];

impl SelectorInput {
    fn check(&self, check: &mut Validator, path: &str, required: bool) {
        let kind = format!("{path}.fragmentSelectorType");
        if required {
            check.required(&kind, self.fragment_selector_type.as_ref());
            check.required(&format!("{path}.timestampRange"), self.timestamp_range.as_ref());
        }
        check.one_of(&kind, self.fragment_selector_type.as_deref(), &CLOCKS);
    }

    /// The window the selector names: epoch seconds become milliseconds.
    fn window(&self) -> Window {
        let clock = match self.fragment_selector_type.as_deref() {
            Some("PRODUCER_TIMESTAMP") => Clock::Producer,
            _ => Clock::Server,
        };
        let range = self.timestamp_range.as_ref();
        let ms = |seconds: Option<f64>| seconds.map(|seconds| (seconds * 1000.0).round() as i64);
        Window {
            clock,
            start_ms: ms(range.and_then(|range| range.start_timestamp)),
            end_ms: ms(range.and_then(|range| range.end_timestamp)),
        }
    }
}

/// A window's ends, checked as AWS checks a bounded range.
fn check_range(window: &Window) -> Result<(), PlaybackError> {
    match (window.start_ms, window.end_ms) {
        (Some(start), Some(end)) if end <= start => {
            Err(PlaybackError::InvalidArgument("The EndTimestamp must be later than the StartTimestamp.".into()))
        }
        (Some(start), Some(end)) if end - start > MAX_RANGE_MS => Err(PlaybackError::InvalidArgument(
            "The time range between StartTimestamp and EndTimestamp must not exceed 24 hours.".into(),
        )),
        _ => Ok(()),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SessionUrlInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    playback_mode: Option<String>,
    #[serde(rename = "HLSFragmentSelector")]
    fragment_selector: Option<SelectorInput>,
    container_format: Option<String>,
    discontinuity_mode: Option<String>,
    display_fragment_timestamp: Option<String>,
    expires: Option<i64>,
    max_media_playlist_fragment_results: Option<i64>,
}

impl SessionUrlInput {
    fn validate(&self) -> Result<(), AwsError> {
        let mut check = Validator::new();
        validate::stream_ref(&mut check, self.stream_name.as_deref(), self.stream_arn.as_deref());
        check.one_of("playbackMode", self.playback_mode.as_deref(), &["LIVE", "LIVE_REPLAY", "ON_DEMAND"]);
        if let Some(selector) = &self.fragment_selector {
            selector.check(&mut check, "hLSFragmentSelector", false);
        }
        check.one_of("containerFormat", self.container_format.as_deref(), &["FRAGMENTED_MP4", "MPEG_TS"]);
        let modes = ["ALWAYS", "NEVER", "ON_DISCONTINUITY"];
        check.one_of("discontinuityMode", self.discontinuity_mode.as_deref(), &modes);
        check.one_of("displayFragmentTimestamp", self.display_fragment_timestamp.as_deref(), &["ALWAYS", "NEVER"]);
        check.integer("expires", self.expires, 300, 43_200);
        let max = self.max_media_playlist_fragment_results;
        check.integer("maxMediaPlaylistFragmentResults", max, 1, MAX_PLAYLIST_FRAGMENTS);
        validate::finish(check)
    }

    /// The session asked for, on `stream`, valid from `now_ms`.
    fn session(&self, stream: String, arn: String, now_ms: i64) -> Result<Session, PlaybackError> {
        if self.container_format.as_deref() == Some("MPEG_TS") {
            return Err(PlaybackError::InvalidArgument(
                "ContainerFormat MPEG_TS is not supported by Tideline yet: use FRAGMENTED_MP4.".into(),
            ));
        }
        let mode = match self.playback_mode.as_deref() {
            Some("LIVE_REPLAY") => Mode::LiveReplay,
            Some("ON_DEMAND") => Mode::OnDemand,
            _ => Mode::Live,
        };
        let window = self
            .fragment_selector
            .as_ref()
            .map_or(Window { clock: Clock::Server, start_ms: None, end_ms: None }, SelectorInput::window);
        let invalid = |message: &str| Err(PlaybackError::InvalidArgument(message.into()));
        let ranged = window.start_ms.is_some() || window.end_ms.is_some();
        match mode {
            Mode::Live if ranged => return invalid("TimestampRange must not be set when PlaybackMode is LIVE."),
            Mode::LiveReplay if window.start_ms.is_none() => {
                return invalid("StartTimestamp must be set when PlaybackMode is LIVE_REPLAY.")
            }
            Mode::OnDemand if window.start_ms.is_none() || window.end_ms.is_none() => {
                return invalid("StartTimestamp and EndTimestamp must be set when PlaybackMode is ON_DEMAND.")
            }
            _ => {}
        }
        check_range(&window)?;
        // AWS's defaults: discontinuities marked everywhere on the server's clock, which may jump
        // between producer connections; nowhere on the producer's.
        let discontinuity = match (self.discontinuity_mode.as_deref(), window.clock) {
            (Some("ALWAYS"), _) | (None, Clock::Server) => DiscontinuityMode::Always,
            (Some("ON_DISCONTINUITY"), _) => DiscontinuityMode::OnDiscontinuity,
            _ => DiscontinuityMode::Never,
        };
        let default_max = if mode == Mode::OnDemand { 1000 } else { 5 };
        let max_fragments = self.max_media_playlist_fragment_results.unwrap_or(default_max);
        Ok(Session {
            stream,
            arn,
            mode,
            window,
            discontinuity,
            program_date_time: self.display_fragment_timestamp.as_deref() == Some("ALWAYS"),
            max_fragments: usize::try_from(max_fragments).unwrap_or(5),
            origin: 0,
            expires_s: now_ms / 1000 + self.expires.unwrap_or(300),
        })
    }
}

#[derive(Serialize)]
struct SessionUrlOutput {
    #[serde(rename = "HLSStreamingSessionURL")]
    url: String,
}

pub(super) async fn hls_session_url(service: &PlaybackService, request: RestRequest<'_>) -> Response {
    let input: SessionUrlInput = request.json()?;
    input.validate()?;
    let stream = StreamRef { name: input.stream_name.as_deref(), arn: input.stream_arn.as_deref() };
    let meta =
        service.video.locate_active(stream, VideoError::InvalidArgument).map_err(VideoError::inactive_as_not_found)?;
    let endpoint = service.video.endpoint(request.head)?;
    let now = now_ms();
    let session = input.session(meta.name.clone(), meta.arn.clone(), now)?;
    if meta.retention_hours == 0 {
        return Err(PlaybackError::NoDataRetention.into());
    }
    // As AWS does, a session is only handed out when it has something to play, in a form it
    // can package.
    let archive = Archive::of(&service.video, &meta, 0)?;
    let first = first_fragment(&archive, &select(&archive, &session, now)).await?;
    remux::init_segment(&tracks(&first.header)).map_err(PlaybackError::from)?;
    let session = Session { origin: first.meta.number, ..session };
    let token = service.sealer.seal(&session);
    let url = format!("{endpoint}/hls/v1/getHLSMasterPlaylist.m3u8?SessionToken={token}");
    Ok(json_response(200, &SessionUrlOutput { url }))
}

/// The fragments a session's media playlist lists at `now_ms`: the newest ones of a LIVE
/// session (none when the newest is older than 30 s), the window's oldest ones otherwise.
fn select(archive: &Archive, session: &Session, now_ms: i64) -> Vec<FragmentInfo> {
    match session.mode {
        Mode::Live => {
            let latest = archive.latest(session.max_fragments);
            let fresh =
                latest.last().is_some_and(|last| last.server_ms + last.duration_ms as i64 >= now_ms - LIVE_WINDOW_MS);
            if fresh {
                latest
            } else {
                Vec::new()
            }
        }
        Mode::OnDemand => archive.list(session.window, session.max_fragments),
        // A replay's playlist grows from its start as fragments arrive, like an HLS EVENT playlist.
        Mode::LiveReplay => archive.list(session.window, MAX_PLAYLIST_FRAGMENTS as usize),
    }
}

/// The first of `fragments`, read whole: its track header describes the session's tracks.
async fn first_fragment(archive: &Archive, fragments: &[FragmentInfo]) -> Result<Arc<Fragment>, PlaybackError> {
    let first = fragments.first().ok_or_else(no_fragments)?;
    archive.read(&first.number).await?.ok_or_else(no_fragments)
}

/// The session a HLS resource request's token carries, and the fragments of its stream (which
/// must still be the stream the session was made for).
fn session_of(service: &PlaybackService, request: &RestRequest<'_>) -> Result<(Session, Archive), AwsError> {
    let token = request.query("SessionToken").ok_or_else(|| {
        PlaybackError::InvalidArgument("1 validation error detected: SessionToken must not be null.".into())
    })?;
    let session = service.sealer.open(&token, now_ms() / 1000)?;
    let stream = StreamRef { name: Some(&session.stream), arn: None };
    let meta =
        service.video.locate_active(stream, VideoError::InvalidArgument).map_err(VideoError::inactive_as_not_found)?;
    if meta.arn != session.arn {
        return Err(VideoError::StreamNotFound.into());
    }
    let archive = Archive::of(&service.video, &meta, session.origin)?;
    Ok((session, archive))
}

/// An HLS resource: public, so that browsers can fetch it across origins.
fn resource(content_type: &'static str, body: Vec<u8>) -> http::Response<Payload> {
    let mut response = bytes_response(200, content_type, body);
    response.headers_mut().insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, http::HeaderValue::from_static("*"));
    response
}

/// The `TrackNumber` an HLS resource is asked for: the media playlists the master playlist names
/// carry it, one per track; without it a resource holds every track, muxed.
fn track_number(request: &RestRequest<'_>) -> Result<Option<u64>, PlaybackError> {
    let Some(text) = request.query("TrackNumber") else { return Ok(None) };
    let number = text.parse::<u64>().ok().filter(|number| (1..=3).contains(number));
    number.map(Some).ok_or_else(|| PlaybackError::InvalidArgument(format!("TrackNumber {text} is not a track number.")))
}

/// `header` for one track, or whole.
fn of_track(header: remux::Header, track: Option<u64>) -> Result<remux::Header, PlaybackError> {
    match track {
        None => Ok(header),
        Some(number) => header
            .only(number)
            .ok_or_else(|| PlaybackError::InvalidArgument(format!("The stream has no track {number}."))),
    }
}

const PLAYLIST: &str = "application/vnd.apple.mpegurl";
const MP4: &str = "video/mp4";

pub(super) async fn master_playlist(service: &PlaybackService, request: RestRequest<'_>) -> Response {
    let (session, archive) = session_of(service, &request)?;
    let token = request.query("SessionToken").unwrap_or_default();
    let fragments = select(&archive, &session, now_ms());
    let header = tracks(&first_fragment(&archive, &fragments).await?.header);
    let codecs = remux::codecs(&header).map_err(PlaybackError::from)?;
    let per_track = header.video_and_audio().map_err(PlaybackError::from)?;
    Ok(resource(PLAYLIST, playlist::master(&token, codecs, remux::resolution(&header), &fragments, per_track)))
}

pub(super) async fn media_playlist(service: &PlaybackService, request: RestRequest<'_>) -> Response {
    let (session, archive) = session_of(service, &request)?;
    let token = request.query("SessionToken").unwrap_or_default();
    let now = now_ms();
    let fragments = select(&archive, &session, now);
    if fragments.is_empty() {
        return Err(no_fragments().into());
    }
    let query = playlist::query(&token, track_number(&request)?);
    Ok(resource(PLAYLIST, playlist::media(&session, &query, &fragments, now)))
}

pub(super) async fn init_fragment(service: &PlaybackService, request: RestRequest<'_>) -> Response {
    let (session, archive) = session_of(service, &request)?;
    let first = first_fragment(&archive, &select(&archive, &session, now_ms())).await?;
    let header = of_track(tracks(&first.header), track_number(&request)?)?;
    let init = remux::init_segment(&header).map_err(PlaybackError::from)?;
    Ok(resource(MP4, init))
}

pub(super) async fn media_fragment(service: &PlaybackService, request: RestRequest<'_>) -> Response {
    let (session, archive) = session_of(service, &request)?;
    let Some(number) = request.query("FragmentNumber") else {
        return Err(PlaybackError::InvalidArgument(
            "1 validation error detected: FragmentNumber must not be null.".into(),
        )
        .into());
    };
    let info = archive.info(&number).ok_or_else(no_fragments)?;
    // A session serves its own window only.
    if session.mode != Mode::Live && !session.window.contains(&info) {
        return Err(no_fragments().into());
    }
    let track = track_number(&request)?;
    let fragment = archive.read(&number).await?.ok_or_else(no_fragments)?;
    let sequence = u32::try_from(info.sequence).unwrap_or(u32::MAX);
    let segment = off_runtime(move || {
        let header = of_track(tracks(&fragment.header), track)?;
        Ok(remux::media_segment(&header, &frames(&fragment.cluster), sequence, 0)?)
    })
    .await?;
    Ok(resource(MP4, segment))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ClipInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    clip_fragment_selector: Option<SelectorInput>,
}

pub(super) async fn clip(service: &PlaybackService, request: RestRequest<'_>) -> Response {
    let input: ClipInput = request.json()?;
    let mut check = Validator::new();
    validate::stream_ref(&mut check, input.stream_name.as_deref(), input.stream_arn.as_deref());
    check.required("clipFragmentSelector", input.clip_fragment_selector.as_ref());
    if let Some(selector) = &input.clip_fragment_selector {
        selector.check(&mut check, "clipFragmentSelector", true);
    }
    validate::finish(check)?;
    let Some(window) = input.clip_fragment_selector.as_ref().map(SelectorInput::window) else {
        return Err(PlaybackError::InvalidArgument("ClipFragmentSelector must be set.".into()).into());
    };
    if window.start_ms.is_none() || window.end_ms.is_none() {
        let message = "StartTimestamp and EndTimestamp must be set in the ClipFragmentSelector.";
        return Err(PlaybackError::InvalidArgument(message.into()).into());
    }
    check_range(&window)?;
    let stream = StreamRef { name: input.stream_name.as_deref(), arn: input.stream_arn.as_deref() };
    let meta =
        service.video.locate_active(stream, VideoError::InvalidArgument).map_err(VideoError::inactive_as_not_found)?;
    if meta.retention_hours == 0 {
        return Err(PlaybackError::NoDataRetention.into());
    }
    let archive = Archive::of(&service.video, &meta, 0)?;
    let fragments = archive.list(window, MAX_CLIP_FRAGMENTS + 1);
    if fragments.len() > MAX_CLIP_FRAGMENTS
        || fragments.iter().map(|fragment| fragment.size).sum::<u64>() > MAX_CLIP_BYTES
    {
        let message = "The clip exceeds the limit of 200 fragments or 100 MB: ask for a shorter time range.";
        return Err(PlaybackError::InvalidArgument(message.into()).into());
    }
    let mut stored = Vec::with_capacity(fragments.len());
    for info in &fragments {
        stored.extend(archive.read(&info.number).await?);
    }
    let first = Arc::clone(stored.first().ok_or_else(no_fragments)?);
    let body = off_runtime(move || {
        let frames: Vec<_> = stored.iter().map(|fragment| frames(&fragment.cluster)).collect();
        Ok(remux::clip(&tracks(&first.header), &frames)?)
    })
    .await?;
    Ok(bytes_response(200, MP4, body))
}

/// Operations Tideline does not serve yet, refused with what to use instead.
pub(super) async fn dash_session_url(_: &PlaybackService, _: RestRequest<'_>) -> Response {
    let message = "GetDASHStreamingSessionURL is not supported by Tideline yet: use GetHLSStreamingSessionURL.";
    Err(PlaybackError::InvalidArgument(message.into()).into())
}

pub(super) async fn images(_: &PlaybackService, _: RestRequest<'_>) -> Response {
    let message = "GetImages is not supported by Tideline yet (it needs a video decoder): use GetClip.";
    Err(PlaybackError::InvalidArgument(message.into()).into())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tideline_proto::{Call, Codec, Reply};
    use tideline_storage::{Storage, StorageConfig};

    use http::Method;

    use super::*;
    use crate::model::StreamMeta;
    use crate::playback::OPERATIONS;
    use crate::{VideoConfig, VideoService};

    struct Answer {
        status: u16,
        content_type: String,
        body: Vec<u8>,
    }

    impl Answer {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.body).into_owned()
        }
    }

    fn call(service: &PlaybackService, method: Method, uri: &str, body: &str) -> Answer {
        let head = http::Request::builder().method(method).uri(uri).header("host", "127.0.0.1:4567");
        let head = head.body(()).unwrap().into_parts().0;
        let call =
            Call { operation: head.uri.path(), codec: Codec::Json, body: body.as_bytes(), caller: None, head: &head };
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let reply = runtime.block_on(OPERATIONS.dispatch(service, call));
        let response = match reply {
            Ok(Reply::Http(response)) => response,
            Ok(_) => panic!("REST operations answer HTTP"),
            Err(error) => {
                let body = error.to_body(Codec::Json);
                return Answer { status: error.status(), content_type: error.code.as_str().to_owned(), body };
            }
        };
        let content_type = response.headers()[http::header::CONTENT_TYPE].to_str().unwrap().to_owned();
        let Payload::Full(body) = response.into_body() else { panic!("a whole body") };
        Answer { status: 200, content_type, body }
    }

    fn service(retention_hours: u64) -> Arc<PlaybackService> {
        let config = VideoConfig {
            region: "us-east-1".into(),
            account_id: "000000000000".into(),
            scheme: "http",
            max_streams: 10,
            media_dir: None,
            transition_ms: 0,
        };
        let video = VideoService::open(Storage::open(StorageConfig::in_memory()).unwrap(), config).unwrap();
        let meta = StreamMeta {
            name: "cam".into(),
            arn: video.arn("cam", 1),
            device_name: None,
            media_type: Some("video/h264".into()),
            kms_key_id: video.default_kms_key(),
            version: "1".into(),
            created_ms: 1,
            retention_hours,
            tags: Default::default(),
        };
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(video.commit(meta)).unwrap();
        runtime.block_on(video.playback()).unwrap()
    }

    #[test]
    fn tokens_are_checked_on_every_resource() {
        let service = service(24);
        for resource in ["getHLSMasterPlaylist.m3u8", "getHLSMediaPlaylist.m3u8", "getMP4InitFragment.mp4"] {
            let forged = call(&service, Method::GET, &format!("/hls/v1/{resource}?SessionToken=e30.AAAA"), "");
            assert_eq!((forged.status, forged.content_type.as_str()), (403, "NotAuthorizedException"));
            let missing = call(&service, Method::GET, &format!("/hls/v1/{resource}"), "");
            assert_eq!(missing.status, 400);
        }
        let session = Session {
            arn: service.video.arn("cam", 1),
            expires_s: now_ms() / 1000 - 1,
            ..crate::playback::testing::live_session()
        };
        let expired = service.sealer.seal(&session);
        let uri = format!("/hls/v1/getMP4MediaFragment.mp4?FragmentNumber=1&SessionToken={expired}");
        let answer = call(&service, Method::GET, &uri, "");
        assert_eq!(answer.status, 403);
        assert!(answer.text().contains("The session token has expired."), "{}", answer.text());
    }

    #[test]
    fn sessions_and_clips_are_refused_as_aws_refuses_them() {
        let service = service(0);
        let refused = |path: &str, body: serde_json::Value| {
            let answer = call(&service, Method::POST, path, &body.to_string());
            let text = answer.text();
            (answer.status, answer.content_type, text)
        };
        let (status, kind, _) = refused("/getHLSStreamingSessionURL", serde_json::json!({"StreamName": "cam"}));
        assert_eq!((status, kind.as_str()), (400, "NoDataRetentionException"));
        let ts = serde_json::json!({"StreamName": "cam", "ContainerFormat": "MPEG_TS"});
        let (status, kind, text) = refused("/getHLSStreamingSessionURL", ts);
        assert_eq!((status, kind.as_str()), (400, "InvalidArgumentException"));
        assert!(text.contains("MPEG_TS is not supported"), "{text}");
        let (_, kind, text) =
            refused("/getHLSStreamingSessionURL", serde_json::json!({"StreamName": "cam", "Expires": 10}));
        assert_eq!(kind, "InvalidArgumentException");
        assert!(text.contains("at 'expires' failed to satisfy constraint"), "{text}");
        let (status, kind, _) = refused("/getHLSStreamingSessionURL", serde_json::json!({"StreamName": "nope"}));
        assert_eq!((status, kind.as_str()), (404, "ResourceNotFoundException"));
        let (_, kind, text) = refused("/getDASHStreamingSessionURL", serde_json::json!({"StreamName": "cam"}));
        assert!(kind == "InvalidArgumentException" && text.contains("use GetHLSStreamingSessionURL"), "{text}");
        let (_, kind, _) = refused("/getImages", serde_json::json!({}));
        assert_eq!(kind, "InvalidArgumentException");
        let (_, kind, text) = refused("/getClip", serde_json::json!({"StreamName": "cam"}));
        assert!(kind == "InvalidArgumentException" && text.contains("clipFragmentSelector"), "{text}");
        let backwards = serde_json::json!({"StreamName": "cam", "ClipFragmentSelector": {
            "FragmentSelectorType": "SERVER_TIMESTAMP", "TimestampRange": {"StartTimestamp": 20.0, "EndTimestamp": 10.0}}});
        let (_, _, text) = refused("/getClip", backwards);
        assert!(text.contains("EndTimestamp must be later"), "{text}");
    }
}
