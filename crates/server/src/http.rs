//! HTTP routing: every AWS JSON/CBOR call is a `POST` whose `X-Amz-Target` names the service and
//! operation; the path does not matter (as with AWS).

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tideline_firehose::FirehoseService;
use tideline_proto::sigv4::{Principal, ReceivedRequest, Verifier};
use tideline_proto::{auth, event_stream, AwsError, Codec, ErrorCode};
use tideline_streams::{Caller, StreamsService};

/// Largest request body accepted. AWS caps PutRecords at 5 MiB of data, which is ~6.7 MiB as
/// base64 JSON; the margin lets oversized batches get AWS's own error instead of a bare 413.
const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;

#[derive(Clone)]
struct Services {
    streams: Arc<StreamsService>,
    firehose: Arc<FirehoseService>,
    /// Set with `--auth`: every request's SigV4 signature is verified before dispatch, for the
    /// signing name of the service it calls.
    verifiers: Option<Arc<Verifiers>>,
}

struct Verifiers {
    kinesis: Verifier,
    firehose: Verifier,
}

/// The service an `X-Amz-Target` prefix names.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Service {
    Kinesis,
    Firehose,
}

pub fn router(streams: Arc<StreamsService>, firehose: Arc<FirehoseService>, verifier: Option<Verifier>) -> Router {
    let verifiers = verifier.map(|kinesis| Arc::new(Verifiers { firehose: kinesis.for_service("firehose"), kinesis }));
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .fallback(handle)
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(Services { streams, firehose, verifiers })
}

/// Prometheus scrape endpoint: the CloudWatch-style per-stream metrics.
async fn metrics(State(services): State<Services>) -> Response {
    let mut text = services.streams.metrics_text();
    text.push_str(&services.firehose.metrics_text());
    let mut response = text.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    response
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

async fn handle(
    State(services): State<Services>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header_text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let Some(codec) = header_text("content-type").and_then(Codec::from_content_type) else {
        return error_response(Codec::Json, &AwsError::bare(ErrorCode::UnknownOperation));
    };
    let (service, operation) = header_text("x-amz-target").and_then(|t| t.split_once('.')).unwrap_or(("", ""));
    let service = match service {
        tideline_streams::TARGET_PREFIX => Service::Kinesis,
        tideline_firehose::TARGET_PREFIX => Service::Firehose,
        _ => return error_response(codec, &AwsError::bare(ErrorCode::UnknownOperation)),
    };
    let has_date = headers.contains_key("x-amz-date") || headers.contains_key(header::DATE);
    let authorization = match auth::check_complete(header_text("authorization"), uri.query(), has_date) {
        Ok(authorization) => authorization,
        Err(error) => return error_response(codec, &error),
    };
    // Verified before dispatch, so that a refused request changes nothing; the verified caller is
    // what resource policies apply to.
    let verifier = services.verifiers.as_ref().map(|verifiers| match service {
        Service::Kinesis => &verifiers.kinesis,
        Service::Firehose => &verifiers.firehose,
    });
    let principal = match verifier {
        Some(verifier) => match verify(verifier, authorization.as_ref(), &method, &uri, &headers, &body) {
            Ok(principal) => Some(principal),
            Err(error) => {
                tracing::debug!(%error, operation, "signature refused");
                return error_response(codec, &error);
            }
        },
        None => None,
    };
    let caller = principal.map(|principal| {
        tracing::debug!(access_key_id = %principal.access_key_id, operation, "signature verified");
        Caller { access_key_id: principal.access_key_id }
    });
    if service == Service::Firehose {
        return match services.firehose.handle(operation, codec, &body).await {
            Ok(body) => respond(200, codec, body),
            Err(error) => error_response(codec, &error),
        };
    }
    if operation == "SubscribeToShard" {
        return match services.streams.subscribe_to_shard(caller.as_ref(), codec, &body).await {
            Ok(events) => event_stream_response(events),
            Err(error) => error_response(codec, &error),
        };
    }
    match services.streams.handle(caller.as_ref(), operation, codec, &body).await {
        Ok(body) => respond(200, codec, body),
        Err(error) => error_response(codec, &error),
    }
}

/// Hands the request, as received, to the SigV4 verifier.
fn verify(
    verifier: &Verifier,
    authorization: Option<&auth::SigV4Header<'_>>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Principal, AwsError> {
    // A value that is not visible ASCII cannot have been signed as text; leaving it out makes a
    // request that signed it fail as a mismatch.
    let mut pairs: Vec<(&str, &str)> =
        headers.iter().filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?))).collect();
    // HTTP/2 carries the host as the `:authority` pseudo-header, which clients sign as `host`.
    if !headers.contains_key(header::HOST) {
        if let Some(authority) = uri.authority() {
            pairs.push(("host", authority.as_str()));
        }
    }
    let request = ReceivedRequest {
        method: method.as_str(),
        path_and_query: uri.path_and_query().map_or("/", |target| target.as_str()),
        headers: &pairs,
        body,
    };
    verifier.verify(authorization, &request, SystemTime::now())
}
