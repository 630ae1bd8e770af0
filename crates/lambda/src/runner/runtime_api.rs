//! The Lambda Runtime API (`/2018-06-01/runtime/...`) one sandbox's runtime client talks to.
//!
//! Each sandbox gets its own listener on 127.0.0.1 with an ephemeral port, so which process
//! calls is known from the port alone: runtime clients (awslambdaric, aws-lambda-ric,
//! `lambda_runtime`) take `AWS_LAMBDA_RUNTIME_API` as a bare `host:port` and cannot carry a token.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use tokio::sync::{mpsc, Mutex};

/// The largest synchronous response payload AWS accepts (6 MB).
pub const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024;

/// One event handed to the runtime by `GET .../invocation/next`.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub request_id: String,
    pub payload: Bytes,
    pub deadline_ms: i64,
    pub function_arn: String,
    pub trace_id: String,
}

/// What the runtime reported.
#[derive(Debug)]
pub enum RuntimeEvent {
    Response { request_id: String, payload: Bytes },
    Error { request_id: String, payload: Bytes, error_type: Option<String> },
    InitError { payload: Bytes, error_type: Option<String> },
}

struct ApiState {
    next: Mutex<mpsc::Receiver<Invocation>>,
    events: mpsc::UnboundedSender<RuntimeEvent>,
}

/// The runtime's side of a sandbox: invocations go in, reports come out.
pub struct RuntimeChannel {
    pub invocations: mpsc::Sender<Invocation>,
    pub events: mpsc::UnboundedReceiver<RuntimeEvent>,
    /// `host:port`, for `AWS_LAMBDA_RUNTIME_API`.
    pub address: String,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for RuntimeChannel {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Starts a Runtime API listener on an ephemeral 127.0.0.1 port.
pub async fn start() -> std::io::Result<RuntimeChannel> {
    let (invocations, next) = mpsc::channel(1);
    let (events_in, events) = mpsc::unbounded_channel();
    let state = Arc::new(ApiState { next: Mutex::new(next), events: events_in });
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
        .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        // A response over the limit still arrives whole, so that it can be refused as AWS does
        // (a function error) instead of the runtime getting a transport error.
        .layer(DefaultBodyLimit::max(MAX_RESPONSE_BYTES + 1024 * 1024))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?.to_string();
    let server = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::warn!(%error, "runtime API listener stopped");
        }
    });
    Ok(RuntimeChannel { invocations, events, address, server })
}

async fn next_invocation(State(state): State<Arc<ApiState>>) -> Response {
    let Some(invocation) = state.next.lock().await.recv().await else {
        return (StatusCode::GONE, "sandbox shutting down").into_response();
    };
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    set("lambda-runtime-aws-request-id", &invocation.request_id);
    set("lambda-runtime-deadline-ms", &invocation.deadline_ms.to_string());
    set("lambda-runtime-invoked-function-arn", &invocation.function_arn);
    set("lambda-runtime-trace-id", &invocation.trace_id);
    set("content-type", "application/json");
    (StatusCode::OK, headers, invocation.payload).into_response()
}

fn error_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("lambda-runtime-function-error-type")?;
    value.to_str().ok().map(str::to_string)
}

fn accepted() -> Response {
    (StatusCode::ACCEPTED, [("content-type", "application/json")], r#"{"status":"OK"}"#).into_response()
}

async fn response(State(state): State<Arc<ApiState>>, Path(request_id): Path<String>, payload: Bytes) -> Response {
    let _ = state.events.send(RuntimeEvent::Response { request_id, payload });
    accepted()
}

async fn error(
    State(state): State<Arc<ApiState>>,
    Path(request_id): Path<String>,
    headers: HeaderMap,
    payload: Bytes,
) -> Response {
    let _ = state.events.send(RuntimeEvent::Error { request_id, payload, error_type: error_type(&headers) });
    accepted()
}

async fn init_error(State(state): State<Arc<ApiState>>, headers: HeaderMap, payload: Bytes) -> Response {
    let _ = state.events.send(RuntimeEvent::InitError { payload, error_type: error_type(&headers) });
    accepted()
}
