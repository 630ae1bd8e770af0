//! Reading fragments back: GetMedia (`kinesis-video-media`: from a start selector on, following
//! the live edge) and, from `kinesis-video-archived-media`, ListFragments and
//! GetMediaForFragmentList. All three sign as `kinesisvideo`, like the control plane.

use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tideline_proto::{Payload, RestRequest, Validator};
use tokio::sync::mpsc;

use super::streams::StreamInput;
use super::{ok, Response};
use crate::error::VideoError;
use crate::media::connections::Connection;
use crate::media::mkv::{tag_seconds, MkvWriter};
use crate::media::{FragmentMeta, StreamFragments};
use crate::service::VideoService;
use crate::validate;

/// How long GetMedia waits at the live edge for a new fragment before it ends its response (the
/// client resumes with the last continuation token).
const LIVE_EDGE_WAIT: Duration = Duration::from_secs(5);
/// Encoded fragments a media response holds ahead of its client.
const MEDIA_BACKLOG: usize = 2;
const MEDIA_CONTENT_TYPE: &str = "video/webm";

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StartSelector {
    start_selector_type: Option<String>,
    after_fragment_number: Option<String>,
    start_timestamp: Option<f64>,
    continuation_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetMediaInput {
    #[serde(flatten)]
    stream: StreamInput,
    start_selector: Option<StartSelector>,
}

/// A fragment number as clients send it.
fn parse_number(text: &str) -> Result<u64, VideoError> {
    text.parse().map_err(|_| VideoError::InvalidArgument(format!("{text} is not a valid fragment number.")))
}

/// Epoch seconds (REST-JSON timestamps) to epoch milliseconds.
fn seconds_to_ms(seconds: f64) -> i64 {
    (seconds * 1000.0).round() as i64
}

/// The number of the fragment a timestamp selects among `list` (in number order): the one
/// containing it, that is the last one starting at or before it, or the first of several
/// starting at that same instant (fragments a producer sends faster than real time can share a
/// server millisecond); else the first one starting after it; else none (`u64::MAX`).
fn first_at(list: &[FragmentMeta], ms: i64, of: fn(&FragmentMeta) -> i64) -> u64 {
    let last = list.iter().rposition(|meta| of(meta) <= ms).filter(|&at| of(&list[at]) + list[at].duration_ms > ms);
    let containing = last.map(|last| {
        let start = of(&list[last]);
        let tied = list[..last].iter().rev().take_while(|meta| of(meta) == start).count();
        &list[last - tied]
    });
    containing.or_else(|| list.iter().find(|meta| of(meta) >= ms)).map_or(u64::MAX, |meta| meta.number)
}

/// The number of the first fragment a start selector selects.
fn start_number(selector: &StartSelector, fragments: &StreamFragments) -> Result<u64, VideoError> {
    let missing = |member: &str, kind: &str| {
        VideoError::InvalidArgument(format!("StartSelector.{member} is required with StartSelectorType {kind}."))
    };
    match selector.start_selector_type.as_deref().unwrap_or_default() {
        "EARLIEST" => Ok(0),
        "NOW" => Ok(fragments.latest().max(1)),
        "FRAGMENT_NUMBER" => {
            let after = selector
                .after_fragment_number
                .as_deref()
                .ok_or_else(|| missing("AfterFragmentNumber", "FRAGMENT_NUMBER"))?;
            Ok(parse_number(after)?.saturating_add(1))
        }
        "CONTINUATION_TOKEN" => {
            let token = selector
                .continuation_token
                .as_deref()
                .ok_or_else(|| missing("ContinuationToken", "CONTINUATION_TOKEN"))?;
            parse_number(token).map_err(|_| VideoError::InvalidArgument(format!("Invalid continuation token {token}.")))
        }
        kind @ ("SERVER_TIMESTAMP" | "PRODUCER_TIMESTAMP") => {
            let start = selector.start_timestamp.ok_or_else(|| missing("StartTimestamp", kind))?;
            let of: fn(&FragmentMeta) -> i64 =
                if kind == "SERVER_TIMESTAMP" { |meta| meta.server_ms } else { |meta| meta.producer_ms };
            Ok(first_at(&fragments.list(0), seconds_to_ms(start), of))
        }
        other => Err(VideoError::InvalidArgument(format!("Invalid StartSelectorType {other}."))),
    }
}

fn media_response(chunks: mpsc::Receiver<Bytes>) -> Response {
    let mut response = http::Response::new(Payload::Stream(chunks));
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(MEDIA_CONTENT_TYPE));
    Ok(response)
}

pub(super) async fn get_media(service: &VideoService, request: RestRequest<'_>) -> Response {
    let input: GetMediaInput = request.json()?;
    let mut check = Validator::new();
    input.stream.check(&mut check);
    check.required("startSelector", input.start_selector.as_ref());
    if let Some(selector) = &input.start_selector {
        let kinds =
            ["FRAGMENT_NUMBER", "SERVER_TIMESTAMP", "PRODUCER_TIMESTAMP", "NOW", "EARLIEST", "CONTINUATION_TOKEN"];
        check.required("startSelector.startSelectorType", selector.start_selector_type.as_ref());
        check.one_of("startSelector.startSelectorType", selector.start_selector_type.as_deref(), &kinds);
        check.string("startSelector.afterFragmentNumber", selector.after_fragment_number.as_deref(), 1, 128, None);
        check.string("startSelector.continuationToken", selector.continuation_token.as_deref(), 1, 128, None);
    }
    validate::finish(check)?;
    let meta = service
        .locate_active(input.stream.as_ref(), VideoError::InvalidArgument)
        .map_err(VideoError::inactive_as_not_found)?;
    let fragments = service.media().stream(&meta.name, meta.created_ms).map_err(VideoError::from)?;
    let selector = input.start_selector.as_ref().ok_or(VideoError::StreamNotFound)?;
    let from = start_number(selector, &fragments)?;
    let connection = fragments.connections.claim(Connection::GetMedia).ok_or(VideoError::ConnectionLimit)?;
    let (chunks, receiver) = mpsc::channel(MEDIA_BACKLOG);
    tokio::spawn(async move {
        follow(&fragments, from, chunks).await;
        drop(connection);
    });
    media_response(receiver)
}

/// GetMedia's error ids (the `AWS_KINESISVIDEO_ERROR_ID` tag of the chunk that ends a response
/// early, with `AWS_KINESISVIDEO_ERROR_CODE` describing it), from the API reference.
mod error_id {
    pub const FRAGMENT_NOT_FOUND: (u32, &str) = (4000, "Requested fragment is not found");
    pub const INTERNAL_ERROR: (u32, &str) = (5000, "Internal error");
}

/// Sends fragments from number `from` on, then new ones as they arrive, until none came for
/// [`LIVE_EDGE_WAIT`] or the client is gone; a fragment that cannot be read ends the response
/// with GetMedia's error tags.
async fn follow(fragments: &StreamFragments, mut from: u64, chunks: mpsc::Sender<Bytes>) {
    let mut writer = MkvWriter::default();
    let mut added = fragments.subscribe();
    loop {
        added.mark_unchanged();
        for meta in fragments.list(from) {
            let fragment = match fragments.read(meta.number).await {
                Ok(Some(fragment)) => fragment,
                failed => {
                    let (id, code) = match failed {
                        Ok(_) => error_id::FRAGMENT_NOT_FOUND,
                        Err(error) => {
                            tracing::error!(%error, fragment = meta.number, "GetMedia could not read a fragment");
                            error_id::INTERNAL_ERROR
                        }
                    };
                    let tags = [
                        ("AWS_KINESISVIDEO_ERROR_CODE", code.to_owned()),
                        ("AWS_KINESISVIDEO_ERROR_ID", id.to_string()),
                        ("AWS_KINESISVIDEO_CONTINUATION_TOKEN", meta.number_text()),
                    ];
                    let _ = chunks.send(Bytes::from(writer.tags_only(&tags))).await;
                    return;
                }
            };
            from = meta.number + 1;
            let behind_ms = (tideline_storage::now_ms() - meta.server_ms).max(0);
            let tags = [
                ("AWS_KINESISVIDEO_FRAGMENT_NUMBER", meta.number_text()),
                ("AWS_KINESISVIDEO_SERVER_TIMESTAMP", tag_seconds(meta.server_ms)),
                ("AWS_KINESISVIDEO_PRODUCER_TIMESTAMP", tag_seconds(meta.producer_ms)),
                ("AWS_KINESISVIDEO_MILLIS_BEHIND_NOW", behind_ms.to_string()),
                ("AWS_KINESISVIDEO_CONTINUATION_TOKEN", crate::media::number_text(from)),
            ];
            if chunks.send(Bytes::from(writer.fragment(&fragment, &tags))).await.is_err() {
                return;
            }
        }
        match tokio::time::timeout(LIVE_EDGE_WAIT, added.changed()).await {
            Ok(Ok(())) => {}
            _ => return,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TimestampRange {
    start_timestamp: Option<f64>,
    end_timestamp: Option<f64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct FragmentSelector {
    fragment_selector_type: Option<String>,
    timestamp_range: Option<TimestampRange>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListFragmentsInput {
    #[serde(flatten)]
    stream: StreamInput,
    max_results: Option<i64>,
    next_token: Option<String>,
    fragment_selector: Option<FragmentSelector>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct FragmentOutput {
    fragment_number: String,
    fragment_size_in_bytes: u64,
    producer_timestamp: f64,
    server_timestamp: f64,
    fragment_length_in_milliseconds: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ListFragmentsOutput {
    fragments: Vec<FragmentOutput>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

/// ListFragments' default page size.
const DEFAULT_LIST_RESULTS: i64 = 100;

pub(super) async fn list_fragments(service: &VideoService, request: RestRequest<'_>) -> Response {
    let input: ListFragmentsInput = request.json()?;
    let mut check = Validator::new();
    input.stream.check(&mut check);
    check.integer("maxResults", input.max_results, 1, 1000);
    check.string("nextToken", input.next_token.as_deref(), 1, 4096, None);
    if let Some(selector) = &input.fragment_selector {
        let kind = selector.fragment_selector_type.as_deref();
        check.required("fragmentSelector.fragmentSelectorType", kind);
        check.one_of("fragmentSelector.fragmentSelectorType", kind, &["PRODUCER_TIMESTAMP", "SERVER_TIMESTAMP"]);
        check.required("fragmentSelector.timestampRange", selector.timestamp_range.as_ref());
        if let Some(range) = &selector.timestamp_range {
            check.required("fragmentSelector.timestampRange.startTimestamp", range.start_timestamp.as_ref());
            check.required("fragmentSelector.timestampRange.endTimestamp", range.end_timestamp.as_ref());
        }
    }
    validate::finish(check)?;
    let meta = service
        .locate_active(input.stream.as_ref(), VideoError::InvalidArgument)
        .map_err(VideoError::inactive_as_not_found)?;
    let fragments = service.media().stream(&meta.name, meta.created_ms).map_err(VideoError::from)?;
    let from = match input.next_token.as_deref() {
        Some(token) => {
            parse_number(token).map_err(|_| VideoError::InvalidArgument(format!("Invalid NextToken {token}.")))?
        }
        None => 0,
    };
    let in_range = |fragment: &FragmentMeta| {
        let Some(FragmentSelector { fragment_selector_type: Some(kind), timestamp_range: Some(range) }) =
            &input.fragment_selector
        else {
            return true;
        };
        let at = if kind == "SERVER_TIMESTAMP" { fragment.server_ms } else { fragment.producer_ms };
        let (start, end) = (range.start_timestamp.unwrap_or(0.0), range.end_timestamp.unwrap_or(0.0));
        (seconds_to_ms(start)..=seconds_to_ms(end)).contains(&at)
    };
    let limit = usize::try_from(input.max_results.unwrap_or(DEFAULT_LIST_RESULTS)).unwrap_or(usize::MAX);
    let mut selected = fragments.list(from).into_iter().filter(in_range);
    let page: Vec<FragmentMeta> = selected.by_ref().take(limit).collect();
    let next_token = selected.next().map(|next| next.number_text());
    let fragments = page
        .into_iter()
        .map(|meta| FragmentOutput {
            fragment_number: meta.number_text(),
            fragment_size_in_bytes: meta.size,
            producer_timestamp: meta.producer_ms as f64 / 1000.0,
            server_timestamp: meta.server_ms as f64 / 1000.0,
            fragment_length_in_milliseconds: meta.duration_ms,
        })
        .collect();
    ok(&ListFragmentsOutput { fragments, next_token })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetMediaForFragmentListInput {
    #[serde(flatten)]
    stream: StreamInput,
    fragments: Option<Vec<String>>,
}

pub(super) async fn get_media_for_fragment_list(service: &VideoService, request: RestRequest<'_>) -> Response {
    let input: GetMediaForFragmentListInput = request.json()?;
    let mut check = Validator::new();
    input.stream.check(&mut check);
    check.required("fragments", input.fragments.as_ref());
    let count = input.fragments.as_ref().map(|list| i64::try_from(list.len()).unwrap_or(i64::MAX));
    check.integer("fragments", count, 1, 1000);
    validate::finish(check)?;
    let meta = service
        .locate_active(input.stream.as_ref(), VideoError::InvalidArgument)
        .map_err(VideoError::inactive_as_not_found)?;
    let fragments = service.media().stream(&meta.name, meta.created_ms).map_err(VideoError::from)?;
    let mut numbers = Vec::new();
    for text in input.fragments.iter().flatten() {
        let number = parse_number(text)?;
        if fragments.meta(number).is_none() {
            return Err(VideoError::FragmentNotFound(text.clone()).into());
        }
        numbers.push(number);
    }
    let connection =
        fragments.connections.claim(Connection::GetMediaForFragmentList).ok_or(VideoError::ConnectionLimit)?;
    let (chunks, receiver) = mpsc::channel(MEDIA_BACKLOG);
    tokio::spawn(async move {
        let _connection = connection;
        let mut writer = MkvWriter::default();
        for number in numbers {
            let Ok(Some(fragment)) = fragments.read(number).await else { continue };
            let tags = [
                ("AWS_KINESISVIDEO_FRAGMENT_NUMBER", fragment.meta.number_text()),
                ("AWS_KINESISVIDEO_SERVER_SIDE_TIMESTAMP", tag_seconds(fragment.meta.server_ms)),
                ("AWS_KINESISVIDEO_PRODUCER_SIDE_TIMESTAMP", tag_seconds(fragment.meta.producer_ms)),
            ];
            if chunks.send(Bytes::from(writer.fragment(&fragment, &tags))).await.is_err() {
                return;
            }
        }
    });
    media_response(receiver)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fragment(number: u64, server_ms: i64) -> FragmentMeta {
        FragmentMeta { number, producer_ms: number as i64 * 2000, server_ms, duration_ms: 2000, size: 1 }
    }

    #[test]
    fn a_server_timestamp_selects_the_first_of_fragments_received_in_the_same_millisecond() {
        let list = [fragment(10, 84), fragment(11, 84), fragment(12, 85)];
        let server = |meta: &FragmentMeta| meta.server_ms;
        assert_eq!(first_at(&list, 84, server), 10);
        assert_eq!(first_at(&list, 85, server), 12);
        assert_eq!(first_at(&list, 2000, server), 12, "the last one still contains it");
        assert_eq!(first_at(&list, 5000, server), u64::MAX, "past every fragment");
        assert_eq!(first_at(&list, 0, server), 10, "before every fragment: the first after");
        let producer = |meta: &FragmentMeta| meta.producer_ms;
        assert_eq!(first_at(&list, 22_500, producer), 11);
    }
}
