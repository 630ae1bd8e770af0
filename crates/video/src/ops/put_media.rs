//! PutMedia (`POST /putMedia`): a long-lived request whose body is one Matroska stream. Every
//! Cluster starting at a video key frame begins a fragment (a Cluster that does not continues the
//! fragment before it, see `media::keyframe`), stored durably before it is acknowledged
//! PERSISTED; every Cluster is acknowledged BUFFERING and RECEIVED on arrival. The response is a
//! stream of JSON acknowledgements, one a line:
//! `{"EventType":"BUFFERING"|"RECEIVED"|"PERSISTED"|"ERROR"|"IDLE","FragmentTimecode":n,
//! "FragmentNumber":"…","ErrorId":n}` (API_dataplane_PutMedia in the Kinesis Video guide).
//! An ERROR ends the session.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use tideline_proto::{AwsError, BodyStream, Payload, RestRequest};
use tokio::sync::mpsc;

use super::Response;
use crate::error::VideoError;
use crate::media::connections::{Claim, Connection};
use crate::media::ingest::{Cluster, SplitError, Splitter, MAX_FRAGMENT_BYTES};
use crate::media::keyframe::{starts_at_key_frame, BeyondBlockRange, OpenFragment};
use crate::media::{cluster_blocks, cluster_timecode, StreamFragments, TrackHeader};
use crate::model::Status;
use crate::service::{StreamRef, VideoService};

/// How long a session may send nothing before it is told IDLE (and again after as long).
const IDLE_ACK_INTERVAL: Duration = Duration::from_secs(3);
/// Acknowledgements not yet taken by the client; past that the session stops reading media
/// until the client catches up.
const ACK_BACKLOG: usize = 32;

/// The longest fragment Kinesis Video takes (its PutMedia quota: 20 seconds).
const MAX_FRAGMENT_DURATION_MS: i64 = 20_000;

/// Kinesis Video's PutMedia error ids (the `ErrorId` of an ERROR acknowledgement).
mod error_id {
    pub const STREAM_READ_ERROR: u32 = 4000;
    pub const MAX_FRAGMENT_SIZE_REACHED: u32 = 4001;
    pub const MAX_FRAGMENT_DURATION_REACHED: u32 = 4002;
    pub const FRAGMENT_TIMECODE_LESSER_THAN_PREVIOUS: u32 = 4004;
    pub const INVALID_MKV_DATA: u32 = 4006;
    pub const STREAM_NOT_ACTIVE: u32 = 4008;
    pub const ARCHIVAL_ERROR: u32 = 5001;
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Ack {
    event_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    fragment_timecode: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fragment_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_id: Option<u32>,
}

impl Ack {
    fn event(event_type: &'static str, fragment_timecode: Option<u64>) -> Self {
        Self { event_type, fragment_timecode, fragment_number: None, error_id: None }
    }

    fn error(error_id: u32, fragment_timecode: Option<u64>) -> Self {
        Self { error_id: Some(error_id), ..Self::event("ERROR", fragment_timecode) }
    }

    fn line(&self) -> Bytes {
        let mut line = serde_json::to_vec(self).unwrap_or_default();
        line.push(b'\n');
        Bytes::from(line)
    }
}

/// How the producer's Cluster timecodes map to timestamps.
#[derive(Clone, Copy)]
enum Timing {
    /// Cluster timecodes are epoch times.
    Absolute,
    /// Cluster timecodes count from the producer's start, given in epoch milliseconds.
    Relative { start_ms: i64 },
}

impl Timing {
    fn from_headers(request: &RestRequest<'_>) -> Result<Self, VideoError> {
        let start = request.header("x-amzn-producer-start-timestamp");
        let start_ms = start
            .map(|text| {
                let seconds = text.trim().parse::<f64>().ok().filter(|seconds| seconds.is_finite() && *seconds >= 0.0);
                let seconds = seconds.ok_or_else(|| {
                    VideoError::InvalidArgument(format!("x-amzn-producer-start-timestamp {text} is not a timestamp."))
                })?;
                Ok::<_, VideoError>((seconds * 1000.0).round() as i64)
            })
            .transpose()?;
        match (request.header("x-amzn-fragment-timecode-type"), start_ms) {
            (Some("ABSOLUTE"), _) => Ok(Self::Absolute),
            (Some("RELATIVE"), Some(start_ms)) => Ok(Self::Relative { start_ms }),
            (Some("RELATIVE"), None) => Err(VideoError::InvalidArgument(
                "x-amzn-producer-start-timestamp is required with RELATIVE fragment timecodes.".into(),
            )),
            _ => Err(VideoError::InvalidArgument("x-amzn-fragment-timecode-type must be ABSOLUTE or RELATIVE.".into())),
        }
    }

    fn producer_ms(self, timecode_ms: i64) -> i64 {
        match self {
            Self::Absolute => timecode_ms,
            Self::Relative { start_ms } => start_ms.saturating_add(timecode_ms),
        }
    }
}

pub(super) async fn put_media(service: &VideoService, request: RestRequest<'_>) -> Response {
    let stream = StreamRef { name: request.header("x-amzn-stream-name"), arn: request.header("x-amzn-stream-arn") };
    let meta = service.locate(stream, VideoError::InvalidArgument)?;
    let timing = Timing::from_headers(&request)?;
    let body = request
        .take_body_stream()
        .ok_or_else(|| VideoError::InvalidArgument("PutMedia takes its media as the request body.".into()))?;
    let fragments = service.media().stream(&meta.name, meta.created_ms).map_err(VideoError::from)?;
    let connection = fragments.connections.claim(Connection::PutMedia).ok_or(VideoError::ConnectionLimit)?;
    let service = service.shared().ok_or_else(|| AwsError::from(VideoError::StreamNotFound))?;
    let (acks, ack_lines) = mpsc::channel(ACK_BACKLOG);
    let session = Session {
        _connection: connection,
        service,
        stream_name: meta.name.clone(),
        created_ms: meta.created_ms,
        fragments,
        timing,
        acks,
        last_producer_ms: None,
        open: None,
    };
    tokio::spawn(session.run(body));
    let mut response = http::Response::new(Payload::Stream(ack_lines));
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    Ok(response)
}

/// One PutMedia connection's ingest.
struct Session {
    /// The stream's one PutMedia slot; declared first, so that it is given back before the
    /// acknowledgements end (a producer may reconnect as soon as they do).
    _connection: Claim,
    service: Arc<VideoService>,
    stream_name: String,
    /// When the stream began: a stream deleted and created again under its name is another.
    created_ms: i64,
    fragments: Arc<StreamFragments>,
    timing: Timing,
    acks: mpsc::Sender<Bytes>,
    last_producer_ms: Option<i64>,
    /// The fragment whose group of pictures may go on in the next Cluster.
    open: Option<OpenFragment>,
}

impl Session {
    async fn run(mut self, mut body: BodyStream) {
        let mut splitter = Splitter::new();
        loop {
            let chunk = match tokio::time::timeout(IDLE_ACK_INTERVAL, body.next()).await {
                Err(_) => match self.ack(Ack::event("IDLE", None)).await {
                    true => continue,
                    false => return,
                },
                Ok(None) => break,
                Ok(Some(Err(error))) => {
                    tracing::debug!(%error, stream = %self.stream_name, "PutMedia body ended");
                    self.fail(Ack::error(error_id::STREAM_READ_ERROR, None)).await;
                    return;
                }
                Ok(Some(Ok(chunk))) => chunk,
            };
            let clusters = match splitter.push(&chunk) {
                Ok(clusters) => clusters,
                Err(error) => return self.refuse(error).await,
            };
            for cluster in clusters {
                if !self.receive(cluster).await {
                    return;
                }
            }
            // The next Cluster starts at a key frame: the open fragment is complete, and is
            // persisted without waiting for the end of that Cluster.
            let next_fragment = splitter.open_cluster().and_then(|(header, cluster)| {
                (starts_at_key_frame(header, cluster) == Some(true)).then(|| cluster_timecode(cluster))
            });
            if next_fragment.is_some() && !self.persist(next_fragment).await {
                return;
            }
        }
        match splitter.finish() {
            Ok(Some(cluster)) => {
                if !self.receive(cluster).await {
                    return;
                }
            }
            Ok(None) => {}
            Err(error) => return self.refuse(error).await,
        }
        self.persist(None).await;
    }

    /// Sends an acknowledgement; false when the client is gone.
    async fn ack(&self, ack: Ack) -> bool {
        self.acks.send(ack.line()).await.is_ok()
    }

    /// Ends the session with an ERROR; the open fragment, made of complete Clusters, is
    /// persisted first.
    async fn fail(&mut self, error: Ack) {
        if self.persist(None).await {
            self.ack(error).await;
        }
    }

    async fn refuse(&mut self, error: SplitError) {
        let id = match error {
            SplitError::Invalid(reason) => {
                tracing::debug!(%reason, stream = %self.stream_name, "PutMedia refused invalid MKV");
                error_id::INVALID_MKV_DATA
            }
            SplitError::TooLarge => error_id::MAX_FRAGMENT_SIZE_REACHED,
        };
        self.fail(Ack::error(id, None)).await;
    }

    /// Takes one complete Cluster: it starts the next fragment (the open one is then persisted),
    /// or continues the open one when its first video frame is not a key frame. False when the
    /// session ends (an error, or the client gone).
    async fn receive(&mut self, cluster: Cluster) -> bool {
        let Cluster { header, body } = cluster;
        let timecode = cluster_timecode(&body);
        let timecode_ms = header.ticks_to_ms(i64::try_from(timecode).unwrap_or(i64::MAX));
        let producer_ms = self.timing.producer_ms(timecode_ms);
        if self.last_producer_ms.is_some_and(|last| producer_ms < last) {
            self.fail(Ack::error(error_id::FRAGMENT_TIMECODE_LESSER_THAN_PREVIOUS, Some(timecode))).await;
            return false;
        }
        self.last_producer_ms = Some(producer_ms);
        let starts_fragment = starts_at_key_frame(&header, &body);
        let continues = self.open.as_ref().is_some_and(|open| Arc::ptr_eq(&open.header, &header));
        let begins = match (starts_fragment, continues) {
            (Some(true), _) | (None, false) => true,
            (_, true) => false,
            // Frames that reference a key frame this session never sent cannot be decoded.
            (Some(false), false) => {
                tracing::debug!(stream = %self.stream_name, "PutMedia refused a session starting after a key frame");
                self.fail(Ack::error(error_id::INVALID_MKV_DATA, Some(timecode))).await;
                return false;
            }
        };
        // How long, and how large, the fragment would be with this Cluster's frames.
        let (span_ticks, held_bytes) = match (&self.open, begins) {
            (Some(open), false) => {
                (i64::try_from(timecode.saturating_sub(open.timecode())).unwrap_or(i64::MAX), open.body.len())
            }
            _ => (0, 0),
        };
        if header.ticks_to_ms(span_ticks.saturating_add(duration_ticks(&body))) > MAX_FRAGMENT_DURATION_MS {
            self.fail(Ack::error(error_id::MAX_FRAGMENT_DURATION_REACHED, Some(timecode))).await;
            return false;
        }
        if held_bytes.saturating_add(body.len()) > MAX_FRAGMENT_BYTES {
            self.fail(Ack::error(error_id::MAX_FRAGMENT_SIZE_REACHED, Some(timecode))).await;
            return false;
        }
        // The fragment before is complete (and acknowledged) before this Cluster is.
        if begins && !self.persist(Some(timecode)).await {
            return false;
        }
        if !self.ack(Ack::event("BUFFERING", Some(timecode))).await
            || !self.ack(Ack::event("RECEIVED", Some(timecode))).await
        {
            return false;
        }
        match self.open.as_mut() {
            Some(open) if !begins => {
                if open.extend(&body) == Err(BeyondBlockRange) {
                    self.fail(Ack::error(error_id::MAX_FRAGMENT_DURATION_REACHED, Some(timecode))).await;
                    return false;
                }
            }
            _ => self.open = Some(OpenFragment { header, body, producer_ms }),
        }
        true
    }

    /// Stores the open fragment, if any, and acknowledges it; `next_timecode` is the timecode of
    /// the Cluster that follows it, when known. False when the session ends (an error, or the
    /// client gone).
    async fn persist(&mut self, next_timecode: Option<u64>) -> bool {
        let Some(OpenFragment { header, body, producer_ms }) = self.open.take() else { return true };
        let timecode = cluster_timecode(&body);
        // Retention as it is now: it may have changed since the session began. The stream must
        // still be the one the session began with, and ACTIVE.
        let current = self.service.stream_meta(&self.stream_name).filter(|meta| meta.created_ms == self.created_ms);
        let retention_hours = match current.filter(|meta| self.service.status(meta) == Status::Active) {
            Some(meta) => meta.retention_hours,
            None => {
                self.ack(Ack::error(error_id::STREAM_NOT_ACTIVE, Some(timecode))).await;
                return false;
            }
        };
        let duration_ms = duration_ms(&header, &body, next_timecode);
        match self.fragments.append(header, body, producer_ms, duration_ms, retention_hours).await {
            Ok(meta) => {
                let persisted =
                    Ack { fragment_number: Some(meta.number_text()), ..Ack::event("PERSISTED", Some(timecode)) };
                self.ack(persisted).await
            }
            Err(error) => {
                tracing::error!(%error, stream = %self.stream_name, "could not store a video fragment");
                self.ack(Ack::error(error_id::ARCHIVAL_ERROR, Some(timecode))).await;
                false
            }
        }
    }
}

/// How far a fragment's next one may start from the end of its last frame and still be taken as
/// its continuation.
const CONTINUATION_TOLERANCE_MS: i64 = 50;

/// A fragment's duration: until the next fragment's start when that one follows on (so that
/// the durations of a continuous stream add up exactly, as HLS players place segments by their
/// playlist durations), else to the end of its last frame.
fn duration_ms(header: &TrackHeader, cluster: &[u8], next_timecode: Option<u64>) -> i64 {
    let measured_ms = header.ticks_to_ms(duration_ticks(cluster));
    let start = cluster_timecode(cluster);
    let until_next = next_timecode.and_then(|next| i64::try_from(next.checked_sub(start)?).ok());
    until_next
        .map(|ticks| header.ticks_to_ms(ticks))
        .filter(|until_ms| (until_ms - measured_ms).abs() <= CONTINUATION_TOLERANCE_MS)
        .unwrap_or(measured_ms)
}

/// A Cluster's duration in timecode ticks: from its start to its last frame, plus the gap
/// between its last two frames of that track (one frame's duration).
fn duration_ticks(cluster: &[u8]) -> i64 {
    let blocks: Vec<_> = cluster_blocks(cluster).collect();
    let Some(last) = blocks.iter().max_by_key(|block| block.relative_timecode) else { return 0 };
    let mut same_track: Vec<i16> =
        blocks.iter().filter(|block| block.track == last.track).map(|block| block.relative_timecode).collect();
    same_track.sort_unstable();
    same_track.dedup();
    let frame = match same_track.as_slice() {
        [.., before, end] => i64::from(*end) - i64::from(*before),
        _ => 0,
    };
    i64::from(last.relative_timecode).max(0) + frame
}
