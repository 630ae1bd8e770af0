//! HTTP routing: every request goes to the one [`Service`] whose route it matches (an
//! `X-Amz-Target` prefix, as AWS's JSON/CBOR services use, or a URL path prefix for REST-JSON
//! services), through the same steps: codec, authentication headers, a bounded body read, the
//! signature, the service's operation table, and a bounded response.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use http_body_util::BodyExt;
use tideline_proto::service::PendingBody;
use tideline_proto::sigv4::{ReceivedRequest, Verifier};
use tideline_proto::{
    auth, event_stream, AwsError, BodyStream, Call, Caller, Codec, ErrorCode, Payload, Reply, Route, Service,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::observe::{self, Served, ServerMetrics};

/// Smallest body chunk that is kept without a copy ([`ReceivedBody`]).
const UNCOPIED_BODY_BYTES: usize = 64 * 1024;

/// Largest request body accepted. AWS caps PutRecords at 5 MiB of data, which is ~6.7 MiB as
/// base64 JSON; the margin lets oversized batches get AWS's own error instead of a bare 413.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;
/// Responses up to this size are sent whole; larger ones are sent in frames of this size, each
/// taken only when the connection can write it, while the response holds its share of the budget.
const RESPONSE_FRAME_BYTES: usize = 64 * 1024;

/// Memory bounds of the HTTP layer (docs/reliability.md).
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Request body bytes held at once by all requests being read or handled.
    pub request_bytes_in_flight: usize,
    /// Response body bytes held at once by responses not yet written to their connection.
    pub response_bytes_in_flight: usize,
    /// How long a request body may take to arrive, and a request to wait for budget.
    pub body_timeout: Duration,
}

/// A request body as its chunks arrive, in one buffer (which the decoders need). A large body
/// that arrives in one chunk is kept as it is: copying it cost PutRecords about 2% of its server
/// CPU. The chunk is a slice of hyper's read buffer (at most ~400 KiB) and keeps all of it alive
/// while the body lives, so small bodies are copied and a large one pins at most a few times its
/// size; a service that keeps a body beyond its request (a queued Lambda event) copies it.
struct ReceivedBody {
    /// The first chunk, while it is the only one and large.
    whole: Option<Bytes>,
    joined: BytesMut,
    /// The length the request declared, for the buffer's capacity.
    declared: usize,
}

impl ReceivedBody {
    fn new(declared: usize) -> Self {
        ReceivedBody { whole: None, joined: BytesMut::new(), declared }
    }

    fn len(&self) -> usize {
        self.whole.as_ref().map_or(0, Bytes::len) + self.joined.len()
    }

    fn push(&mut self, chunk: Bytes) {
        let held = self.len();
        match self.whole.take() {
            None if held == 0 && chunk.len() >= UNCOPIED_BODY_BYTES => self.whole = Some(chunk),
            whole => {
                if self.joined.is_empty() {
                    self.joined.reserve(self.declared.max(held + chunk.len()));
                }
                if let Some(whole) = whole {
                    self.joined.extend_from_slice(&whole);
                }
                self.joined.extend_from_slice(&chunk);
            }
        }
    }

    fn finish(self) -> Bytes {
        self.whole.unwrap_or_else(|| self.joined.freeze())
    }
}

struct Gateway {
    services: Vec<Arc<dyn Service>>,
    /// Set with `--auth`: one verifier per signing name; every request's SigV4 signature is
    /// verified before dispatch.
    verifiers: Option<HashMap<&'static str, Verifier>>,
    limits: HttpLimits,
    /// Shared with the permits taken from them (`acquire_many_owned`).
    request_budget: Arc<Semaphore>,
    response_budget: Arc<Semaphore>,
}

/// The application served on every connection: each request is observed ([`observe::track`])
/// and answered by the gateway. Routed by hand rather than through an `axum::Router`, whose boxed
/// route services and middleware layers cost ~7,000 instructions and ten allocations per request
/// (a tenth of a single-record PutRecord) for three routes. Shared by every connection behind
/// one `Arc`.
pub struct App {
    gateway: Gateway,
    metrics: Arc<ServerMetrics>,
}

impl App {
    pub fn new(
        services: Vec<Arc<dyn Service>>,
        verifier: Option<Verifier>,
        limits: HttpLimits,
        metrics: Arc<ServerMetrics>,
    ) -> App {
        let verifiers = verifier.map(|verifier| {
            let by_name =
                services.iter().map(|service| (service.signing_name(), verifier.for_service(service.signing_name())));
            by_name.collect::<HashMap<_, _>>()
        });
        let gateway = Gateway {
            services,
            verifiers,
            limits,
            request_budget: Arc::new(Semaphore::new(limits.request_bytes_in_flight.max(MAX_REQUEST_BYTES))),
            response_budget: Arc::new(Semaphore::new(limits.response_bytes_in_flight.max(RESPONSE_FRAME_BYTES))),
        };
        App { gateway, metrics }
    }

    pub async fn respond(&self, request: Request) -> Response {
        observe::track(&self.metrics, request, |request| self.gateway.respond(request)).await
    }
}

/// The answer to a method other than GET or HEAD on `/health` or `/metrics`.
fn method_not_allowed() -> Response {
    let mut response = StatusCode::METHOD_NOT_ALLOWED.into_response();
    response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET,HEAD"));
    response
}

/// Prometheus scrape endpoint: every service's metrics.
fn metrics(gateway: &Gateway) -> Response {
    let text: String = gateway.services.iter().map(|service| service.metrics_text()).collect();
    let mut response = text.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    response
}

impl Gateway {
    /// `/health` and `/metrics` (GET or HEAD; other methods are refused as axum's routes would),
    /// and every other path by the service it routes to.
    async fn respond(&self, request: Request) -> Response {
        let read_only = matches!(*request.method(), Method::GET | Method::HEAD);
        match request.uri().path() {
            "/health" | "/metrics" if !read_only => method_not_allowed(),
            "/health" => "ok".into_response(),
            "/metrics" => metrics(self),
            _ => handle(self, request).await,
        }
    }

    /// The service a request is for, and the operation it names.
    fn route<'r>(&self, target: Option<&'r str>, path: &'r str) -> Option<(&Arc<dyn Service>, &'r str)> {
        let (prefix, operation) = target.and_then(|target| target.split_once('.')).unwrap_or(("", ""));
        self.services.iter().find_map(|service| match service.route() {
            Route::Target(name) if name == prefix => Some((service, operation)),
            Route::PathPrefixes(starts) if target.is_none() && starts.iter().any(|start| path.starts_with(start)) => {
                Some((service, path))
            }
            Route::Paths(paths) if target.is_none() && paths.contains(&path) => Some((service, path)),
            _ => None,
        })
    }

    /// Reads the body within the time limit, taking its bytes from the request budget as they
    /// arrive; the permit is held until the request is answered.
    async fn read_body(&self, headers: &HeaderMap, body: Body) -> Result<(Bytes, OwnedSemaphorePermit), AwsError> {
        let too_large = || {
            AwsError::new(ErrorCode::RequestEntityTooLarge, format!("Request body exceeds {MAX_REQUEST_BYTES} bytes."))
        };
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u64>().ok());
        if declared.is_some_and(|length| length > MAX_REQUEST_BYTES as u64) {
            return Err(too_large());
        }
        let deadline = Instant::now() + self.limits.body_timeout;
        let mut permit = self.reserve(&self.request_budget, 0, deadline).await?;
        let mut received = ReceivedBody::new(declared.map_or(0, |length| length as usize));
        let mut body = body;
        loop {
            let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
                Err(_) => return Err(AwsError::new(ErrorCode::RequestTimeout, "Request body not received in time.")),
                Ok(None) => break,
                Ok(Some(Err(error))) => {
                    return Err(AwsError::new(ErrorCode::Serialization, format!("Request body unreadable: {error}")))
                }
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else { continue };
            if received.len() + data.len() > MAX_REQUEST_BYTES {
                return Err(too_large());
            }
            permit.merge(self.reserve(&self.request_budget, data.len(), deadline).await?);
            received.push(data);
        }
        Ok((received.finish(), permit))
    }

    /// `bytes` of a budget, waiting until `deadline`: past it the server is overloaded, which
    /// clients retry (503).
    async fn reserve(
        &self,
        budget: &Arc<Semaphore>,
        bytes: usize,
        deadline: Instant,
    ) -> Result<OwnedSemaphorePermit, AwsError> {
        let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
        match tokio::time::timeout_at(deadline, Arc::clone(budget).acquire_many_owned(bytes)).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(AwsError::new(ErrorCode::ServiceUnavailable, "Server busy: too many bytes in flight. Retry.")),
        }
    }

    /// A response body: small ones whole; larger ones in frames, holding their share of the
    /// response budget until written or dropped (a client that never reads cannot pin more).
    async fn body(&self, body: Vec<u8>) -> Result<Body, AwsError> {
        if body.len() <= RESPONSE_FRAME_BYTES {
            return Ok(Body::from(body));
        }
        let deadline = Instant::now() + self.limits.body_timeout;
        let share = body.len().min(self.limits.response_bytes_in_flight);
        let permit = self.reserve(&self.response_budget, share, deadline).await?;
        let frames = futures_util::stream::unfold((Bytes::from(body), permit), |(mut rest, permit)| async move {
            if rest.is_empty() {
                return None;
            }
            let frame = rest.split_to(rest.len().min(RESPONSE_FRAME_BYTES));
            Some((Ok::<Bytes, std::convert::Infallible>(frame), (rest, permit)))
        });
        Ok(Body::from_stream(frames))
    }
}

fn respond(status: u16, codec: Codec, body: Body) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(codec.content_type()));
    with_request_id(response)
}

/// `x-amzn-RequestId` (header names are sent in lower case): a constant, so that naming it does
/// not parse and copy the name on every response.
const REQUEST_ID: HeaderName = HeaderName::from_static("x-amzn-requestid");

/// A fresh version 4 UUID, as AWS's request ids are. Its bits come from the thread's
/// user-space generator (`rand`'s ThreadRng: ChaCha, seeded and periodically reseeded from the
/// OS) rather than `Uuid::new_v4`, which asks the OS for each id: one `getrandom` system call
/// per request.
fn with_request_id(mut response: Response) -> Response {
    let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
    let mut text = [0; uuid::fmt::Hyphenated::LENGTH];
    if let Ok(value) = HeaderValue::from_str(id.hyphenated().encode_lower(&mut text)) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// A REST-JSON operation's own response; a whole body is framed like any other.
async fn http_response(gateway: &Gateway, response: axum::http::Response<Payload>) -> Result<Response, AwsError> {
    let (parts, payload) = response.into_parts();
    let body = match payload {
        Payload::Full(body) => gateway.body(body).await?,
        Payload::Stream(chunks) => chunked(chunks),
    };
    Ok(with_request_id(Response::from_parts(parts, body)))
}

/// A body sent chunk by chunk as produced; it ends when the producer does.
fn chunked(chunks: tokio::sync::mpsc::Receiver<Bytes>) -> Body {
    let stream = futures_util::stream::unfold(chunks, |mut chunks| async move {
        chunks.recv().await.map(|chunk| (Ok::<Bytes, std::convert::Infallible>(chunk), chunks))
    });
    Body::from_stream(stream)
}

/// A streaming `application/vnd.amazon.eventstream` response: each message is sent as soon as it
/// is produced, and the response ends when the producer does.
fn event_stream_response(events: tokio::sync::mpsc::Receiver<Bytes>) -> Response {
    let mut response = Response::new(chunked(events));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(event_stream::CONTENT_TYPE));
    response
}

/// How a service's errors are written: JSON 1.1/CBOR services name the type in the body's
/// `__type`; REST-JSON ones also in the `x-amzn-ErrorType` header, with `application/json`.
#[derive(Clone, Copy)]
enum ErrorStyle {
    Rpc(Codec),
    Rest,
}

fn error_response(style: ErrorStyle, error: &AwsError) -> Response {
    if error.status() >= 500 {
        tracing::warn!(%error, "request failed");
    }
    match style {
        ErrorStyle::Rpc(codec) => respond(error.status(), codec, Body::from(error.to_body(codec))),
        ErrorStyle::Rest => {
            let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut response = (status, Body::from(error.to_body(Codec::Json))).into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            headers.insert("x-amzn-ErrorType", HeaderValue::from_static(error.code.as_str()));
            with_request_id(response)
        }
    }
}

async fn handle(gateway: &Gateway, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let header_text = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let codec = header_text("content-type").and_then(Codec::from_content_type);
    let unknown =
        || error_response(ErrorStyle::Rpc(codec.unwrap_or(Codec::Json)), &AwsError::bare(ErrorCode::UnknownOperation));
    // Held apart from the head, so that a streamed body can be put into its extensions while
    // they are used: clones that share the received bytes (reference counts, no copies).
    let (target, uri) = (parts.headers.get("x-amz-target").cloned(), parts.uri.clone());
    let target = target.as_ref().and_then(|value| value.to_str().ok());
    let Some((service, operation)) = gateway.route(target, uri.path()) else {
        return unknown();
    };
    // REST-JSON bodies are JSON whatever their content type says (often none, on a GET).
    let (codec, style) = match service.route() {
        Route::PathPrefixes(_) | Route::Paths(_) => (Codec::Json, ErrorStyle::Rest),
        Route::Target(_) => match codec {
            Some(codec) => (codec, ErrorStyle::Rpc(codec)),
            None => return unknown(),
        },
    };
    let mut response = serve(gateway, service, operation, codec, style, &mut parts, body).await;
    let call = Call::in_process(operation, codec, &[]);
    let served = Served { service: service.name(), operation: service.operation_name(&Call { head: &parts, ..call }) };
    response.extensions_mut().insert(served);
    response
}

/// Authenticates, reads and dispatches one routed request.
async fn serve(
    gateway: &Gateway,
    service: &Arc<dyn Service>,
    operation: &str,
    codec: Codec,
    style: ErrorStyle,
    parts: &mut axum::http::request::Parts,
    body: Body,
) -> Response {
    if service.streams_body(parts) {
        return serve_streamed(gateway, service, operation, codec, style, parts, body).await;
    }
    let parts = &*parts;
    let headers = &parts.headers;
    let (authorization, verifier) = match authorization(gateway, service, parts) {
        Ok(checks) => checks,
        Err(error) => return error_response(style, &error),
    };
    // The headers as the verifier takes them, gathered once for both of its checks.
    let pairs = verifier.map(|_| header_pairs(&parts.uri, headers)).unwrap_or_default();
    // Whatever the headers alone can refuse is refused before the body is read, so that clients
    // without credentials cannot make the server hold bodies.
    if let Some(verifier) = verifier {
        let received = received(&parts.method, &parts.uri, &pairs, &[]);
        if let Err(error) = verifier.check_headers(authorization.as_ref(), &received, SystemTime::now()) {
            tracing::debug!(%error, operation, "signature refused");
            return unread_body_closes(parts, error_response(style, &error));
        }
    }
    let (body, _body_permit) = match gateway.read_body(headers, body).await {
        Ok(read) => read,
        Err(error) => return unread_body_closes(parts, error_response(style, &error)),
    };
    // Verified before dispatch, so that a refused request changes nothing; the verified caller is
    // what resource policies apply to.
    let caller = match verifier {
        Some(verifier) => {
            let received = received(&parts.method, &parts.uri, &pairs, &body);
            match verifier.verify(authorization.as_ref(), &received, SystemTime::now()) {
                Ok(principal) => {
                    tracing::debug!(access_key_id = %principal.access_key_id, operation, "signature verified");
                    Some(Caller { access_key_id: principal.access_key_id })
                }
                Err(error) => {
                    tracing::debug!(%error, operation, "signature refused");
                    return error_response(style, &error);
                }
            }
        }
        None => None,
    };
    let call = Call { operation, codec, body: &body, caller: caller.as_ref(), head: parts };
    dispatch(gateway, service, codec, style, call).await
}

/// A request's SigV4 `Authorization` (header or presigned query), which every request but a
/// service's public ones must carry complete whether or not `--auth` is on (AWS answers
/// `MissingAuthenticationToken` without one), and the verifier that is to check its signature:
/// none without `--auth` or for a public request.
fn authorization<'r>(
    gateway: &'r Gateway,
    service: &Arc<dyn Service>,
    parts: &'r axum::http::request::Parts,
) -> Result<(Option<auth::SigV4Header<'r>>, Option<&'r Verifier>), AwsError> {
    let headers = &parts.headers;
    let has_date = headers.contains_key("x-amz-date") || headers.contains_key(header::DATE);
    let header = headers.get("authorization").and_then(|value| value.to_str().ok());
    let public = service.is_public(parts);
    let authorization = match auth::check_complete(header, parts.uri.query(), has_date) {
        Ok(authorization) => authorization,
        Err(_) if public => None,
        Err(error) => return Err(error),
    };
    let verifier = match public {
        true => None,
        false => gateway.verifiers.as_ref().and_then(|verifiers| verifiers.get(service.signing_name())),
    };
    Ok((authorization, verifier))
}

/// Runs a call and writes its answer.
async fn dispatch(
    gateway: &Gateway,
    service: &Arc<dyn Service>,
    codec: Codec,
    style: ErrorStyle,
    call: Call<'_>,
) -> Response {
    let answered = match service.handle(call).await {
        Ok(Reply::Body(body)) => gateway.body(body).await.map(|body| respond(200, codec, body)),
        Ok(Reply::Events(events)) => Ok(event_stream_response(events)),
        Ok(Reply::Http(response)) => http_response(gateway, response).await,
        Err(error) => Err(error),
    };
    answered.unwrap_or_else(|error| error_response(style, &error))
}

/// Serves a request whose body its handler reads as it arrives ([`Service::streams_body`]): the
/// signature covers the head only, and the body goes to the handler through a [`BodyStream`]
/// fed chunk by chunk, each within the body timeout, never more than the stream's few chunks
/// ahead of the handler.
async fn serve_streamed(
    gateway: &Gateway,
    service: &Arc<dyn Service>,
    operation: &str,
    codec: Codec,
    style: ErrorStyle,
    parts: &mut axum::http::request::Parts,
    body: Body,
) -> Response {
    let (authorization, verifier) = match authorization(gateway, service, parts) {
        Ok(checks) => checks,
        Err(error) => return unread_body_closes(parts, error_response(style, &error)),
    };
    let caller = match verifier {
        None => None,
        Some(verifier) => {
            let pairs = header_pairs(&parts.uri, &parts.headers);
            let received = received(&parts.method, &parts.uri, &pairs, &[]);
            match verifier.verify_unsigned_payload(authorization.as_ref(), &received, SystemTime::now()) {
                Ok(principal) => Some(Caller { access_key_id: principal.access_key_id }),
                Err(error) => {
                    tracing::debug!(%error, operation, "signature refused");
                    return unread_body_closes(parts, error_response(style, &error));
                }
            }
        }
    };
    let (chunks, stream) = BodyStream::channel();
    tokio::spawn(feed_body(body, chunks, gateway.limits.body_timeout));
    parts.extensions.insert(PendingBody::new(stream));
    let call = Call { operation, codec, body: &[], caller: caller.as_ref(), head: parts };
    let response = dispatch(gateway, service, codec, style, call).await;
    // A refused request's body was not read (its stream was dropped with the call).
    match response.status().is_success() {
        true => response,
        false => unread_body_closes(parts, response),
    }
}

/// Forwards a streamed request body to its handler, one chunk at a time: a chunk that does not
/// arrive within `chunk_timeout` ends the body with an error, and a handler that stops reading
/// ends the forwarding (and with it the reading of the connection).
async fn feed_body(
    mut body: Body,
    chunks: tokio::sync::mpsc::Sender<Result<Bytes, AwsError>>,
    chunk_timeout: Duration,
) {
    loop {
        let chunk = match tokio::time::timeout(chunk_timeout, body.frame()).await {
            Err(_) => Err(AwsError::new(ErrorCode::RequestTimeout, "Request body not received in time.")),
            Ok(None) => return,
            Ok(Some(Err(error))) => {
                Err(AwsError::new(ErrorCode::Serialization, format!("Request body unreadable: {error}")))
            }
            Ok(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => Ok(data),
                Err(_) => continue,
            },
        };
        let failed = chunk.is_err();
        if chunks.send(chunk).await.is_err() || failed {
            return;
        }
    }
}

/// Marks a response given before the request's body was read (or read to its end) as the
/// connection's last. The server then closes the HTTP/1.1 connection rather than read a body
/// it refused (hyper keeps it only if the rest of the body has already arrived), and a client
/// told `Connection: close` opens a new connection for its next request instead of racing
/// that close on a pooled one (RFC 9112, section 9.6). HTTP/2 streams need no such thing.
fn unread_body_closes(parts: &axum::http::request::Parts, mut response: Response) -> Response {
    let http1 = parts.version <= axum::http::Version::HTTP_11;
    let has_body = parts.headers.contains_key(header::TRANSFER_ENCODING)
        || parts.headers.get(header::CONTENT_LENGTH).is_some_and(|length| length.as_bytes() != b"0");
    if http1 && has_body {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Every header as text, as the SigV4 verifier takes them.
fn header_pairs<'h>(uri: &'h Uri, headers: &'h HeaderMap) -> Vec<(&'h str, &'h str)> {
    // A value that is not visible ASCII cannot have been signed as text; leaving it out makes a
    // request that signed it fail as a mismatch.
    let mut pairs: Vec<(&str, &str)> =
        headers.iter().filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?))).collect();
    // HTTP/2 carries the host as the `:authority` pseudo-header, which most clients sign as `host`
    // and the AWS SDK for JavaScript v3 signs under its own name.
    if let Some(authority) = uri.authority() {
        if !headers.contains_key(header::HOST) {
            pairs.push(("host", authority.as_str()));
        }
        pairs.push((tideline_proto::sigv4::AUTHORITY, authority.as_str()));
    }
    pairs
}

fn received<'r>(
    method: &'r Method,
    uri: &'r Uri,
    headers: &'r [(&'r str, &'r str)],
    body: &'r [u8],
) -> ReceivedRequest<'r> {
    ReceivedRequest {
        method: method.as_str(),
        path_and_query: uri.path_and_query().map_or("/", |target| target.as_str()),
        headers,
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received(chunks: &[&Bytes]) -> Bytes {
        let mut body = ReceivedBody::new(0);
        for chunk in chunks {
            body.push(Bytes::clone(chunk));
        }
        assert_eq!(body.len(), chunks.iter().map(|chunk| chunk.len()).sum::<usize>());
        body.finish()
    }

    #[test]
    fn a_large_body_in_one_chunk_is_kept_and_any_other_is_joined_in_order() {
        let large = Bytes::from((0..UNCOPIED_BODY_BYTES + 10).map(|i| i as u8).collect::<Vec<u8>>());
        let small = Bytes::from_static(b"tail");
        let kept = received(&[&large]);
        assert_eq!(kept.as_ptr(), large.as_ptr(), "a large single chunk is not copied");
        let joined = received(&[&large, &small, &small]);
        assert_eq!(joined, [&large[..], b"tail", b"tail"].concat());
        let joined = received(&[&small, &large]);
        assert_eq!(joined, [b"tail", &large[..]].concat());
        let copied = received(&[&small]);
        assert_eq!(copied, small);
        assert_ne!(copied.as_ptr(), small.as_ptr(), "a small body is copied, not kept");
        assert!(received(&[]).is_empty());
    }
}
