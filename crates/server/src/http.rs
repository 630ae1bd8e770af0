//! HTTP routing: every AWS JSON/CBOR call is a `POST` whose `X-Amz-Target` names the service and
//! operation; the path does not matter (as with AWS).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tideline_proto::{auth, event_stream, AwsError, Codec, ErrorCode};
use tideline_streams::StreamsService;

/// Largest request body accepted. AWS caps PutRecords at 5 MiB of data, which is ~6.7 MiB as
/// base64 JSON; the margin lets oversized batches get AWS's own error instead of a bare 413.
const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;

#[derive(Clone)]
struct Services {
    streams: Arc<StreamsService>,
}

pub fn router(streams: Arc<StreamsService>) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .fallback(handle)
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(Services { streams })
}

fn respond(status: u16, codec: Codec, body: Vec<u8>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let request_id = uuid::Uuid::new_v4().to_string();
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(codec.content_type()));
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert("x-amzn-RequestId", value);
    }
    response
}

/// A streaming `application/vnd.amazon.eventstream` response: each message is sent as soon as it
/// is produced, and the response ends when the producer does.
fn event_stream_response(events: tokio::sync::mpsc::Receiver<Bytes>) -> Response {
    let stream = futures_util::stream::unfold(events, |mut events| async move {
        events.recv().await.map(|message| (Ok::<Bytes, std::convert::Infallible>(message), events))
    });
    let mut response = Response::new(axum::body::Body::from_stream(stream));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(event_stream::CONTENT_TYPE));
    response
}

fn error_response(codec: Codec, error: &AwsError) -> Response {
    if error.status() >= 500 {
        tracing::warn!(%error, "request failed");
    }
    respond(error.status(), codec, error.to_body(codec))
}

async fn handle(State(services): State<Services>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let header_text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let Some(codec) = header_text("content-type").and_then(Codec::from_content_type) else {
        return error_response(Codec::Json, &AwsError::bare(ErrorCode::UnknownOperation));
    };
    let (service, operation) = header_text("x-amz-target").and_then(|t| t.split_once('.')).unwrap_or(("", ""));
    if service != tideline_streams::TARGET_PREFIX {
        return error_response(codec, &AwsError::bare(ErrorCode::UnknownOperation));
    }
    let has_date = headers.contains_key("x-amz-date") || headers.contains_key(header::DATE);
    if let Err(error) = auth::check_complete(header_text("authorization"), uri.query(), has_date) {
        return error_response(codec, &error);
    }
    if operation == "SubscribeToShard" {
        return match services.streams.subscribe_to_shard(codec, &body).await {
            Ok(events) => event_stream_response(events),
            Err(error) => error_response(codec, &error),
        };
    }
    match services.streams.handle(operation, codec, &body).await {
        Ok(body) => respond(200, codec, body),
        Err(error) => error_response(codec, &error),
    }
}
