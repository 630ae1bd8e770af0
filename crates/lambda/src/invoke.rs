//! Invoke: RequestResponse (the function's answer, `X-Amz-Function-Error: Unhandled` when it
//! failed, the log tail on `LogType: Tail`), Event (queued, 202) and DryRun (checked, 204).

use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;

use crate::error::{LambdaError, Result, Throttle};
use crate::runner::sandbox::Outcome;
use crate::runner::Admission;
use crate::service::LambdaService;

/// AWS's synchronous request payload limit.
const MAX_SYNC_PAYLOAD: usize = 6 * 1024 * 1024;
/// AWS's asynchronous (Event) payload limit.
const MAX_ASYNC_PAYLOAD: usize = 1024 * 1024;

pub struct InvokeRequest<'a> {
    pub function_name: &'a str,
    pub qualifier: Option<&'a str>,
    pub invocation_type: Option<&'a str>,
    pub log_type: Option<&'a str>,
    pub payload: Bytes,
}

#[derive(Debug)]
pub struct InvokeResponse {
    pub status: u16,
    pub function_error: Option<&'static str>,
    /// Base64 of the invocation's last 4 KB of log.
    pub log_result: Option<String>,
    pub executed_version: Option<&'static str>,
    pub payload: Bytes,
}

impl LambdaService {
    pub async fn invoke(self: &Arc<Self>, request: InvokeRequest<'_>) -> Result<InvokeResponse> {
        let invocation_type = request.invocation_type.unwrap_or("RequestResponse");
        let mut v = tideline_proto::Validator::new();
        v.one_of("invocationType", Some(invocation_type), &["Event", "RequestResponse", "DryRun"]);
        v.one_of("logType", request.log_type, &["None", "Tail"]);
        crate::functions::finish(v)?;
        let name = crate::functions::resolve_name(self, request.function_name, request.qualifier)?;
        if !self.functions.read().contains_key(&name) {
            return Err(LambdaError::not_found_function(&self.function_arn(&name)));
        }
        let limit = if invocation_type == "Event" { MAX_ASYNC_PAYLOAD } else { MAX_SYNC_PAYLOAD };
        if request.payload.len() > limit {
            return Err(LambdaError::RequestTooLarge(format!(
                "Request must be smaller than {limit} bytes for the InvokeFunction operation"
            )));
        }
        let payload = if request.payload.is_empty() { Bytes::from_static(b"{}") } else { request.payload };
        if let Err(error) = serde_json::from_slice::<serde::de::IgnoredAny>(&payload) {
            return Err(LambdaError::InvalidRequestContent(format!("Could not parse request body into json: {error}")));
        }
        match invocation_type {
            "DryRun" => Ok(InvokeResponse::empty(204)),
            "Event" => {
                let queued = Arc::clone(&self.async_slots)
                    .try_acquire_owned()
                    .map_err(|_| LambdaError::TooManyRequests(Throttle::Concurrency))?;
                let service = Arc::clone(self);
                // A queued event may wait long: its own copy, so that it does not keep alive the
                // larger buffer a request body can be a slice of.
                let payload = Bytes::copy_from_slice(&payload);
                tokio::spawn(async move {
                    let _queued = queued;
                    if let Err(error) = service.runner.invoke(&name, payload, Admission::Wait, false).await {
                        tracing::warn!(function = %name, %error, "asynchronous invocation failed");
                    }
                });
                Ok(InvokeResponse::empty(202))
            }
            _ => {
                let tail = request.log_type == Some("Tail");
                let result = self.runner.invoke(&name, payload, Admission::Refuse, tail).await?;
                let (payload, function_error) = match result.outcome {
                    Outcome::Success(payload) => (payload, None),
                    Outcome::FunctionError(payload) => (payload, Some("Unhandled")),
                };
                let log_result =
                    result.log_tail.map(|tail| base64::engine::general_purpose::STANDARD.encode(tail.as_bytes()));
                Ok(InvokeResponse {
                    status: 200,
                    function_error,
                    log_result,
                    executed_version: Some("$LATEST"),
                    payload,
                })
            }
        }
    }
}

impl InvokeResponse {
    fn empty(status: u16) -> Self {
        Self { status, function_error: None, log_result: None, executed_version: None, payload: Bytes::new() }
    }
}
