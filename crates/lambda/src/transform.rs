//! Firehose's `Lambda` processor with a function ARN: Firehose invokes the function through
//! [`FunctionInvoker`], which runs it as a synchronous (RequestResponse) Invoke would, so the
//! function's concurrency limits and logs are the same as for any other caller.

use bytes::Bytes;
use tideline_firehose::{FunctionInvoker, InvokeFailure};
use tideline_proto::BoxFuture;

use crate::error::LambdaError;
use crate::invoke::InvokeRequest;
use crate::service::LambdaService;

impl FunctionInvoker for LambdaService {
    fn invoke<'a>(&'a self, function_arn: &'a str, event: Vec<u8>) -> BoxFuture<'a, Result<Vec<u8>, InvokeFailure>> {
        Box::pin(async move {
            let Some(service) = self.shared() else {
                return Err(InvokeFailure::NotFound("Lambda is shutting down".into()));
            };
            let request = InvokeRequest {
                function_name: function_arn,
                qualifier: None,
                invocation_type: Some("RequestResponse"),
                log_type: None,
                payload: Bytes::from(event),
            };
            match service.invoke(request).await {
                Ok(response) if response.function_error.is_none() => Ok(response.payload.to_vec()),
                Ok(response) => Err(InvokeFailure::FunctionError(String::from_utf8_lossy(&response.payload).into())),
                Err(LambdaError::ResourceNotFound(message)) => Err(InvokeFailure::NotFound(message)),
                Err(error @ LambdaError::TooManyRequests(_)) => Err(InvokeFailure::Throttled(error.to_string())),
                Err(error) => Err(InvokeFailure::FunctionError(format!("{}: {error}", error.error_type()))),
            }
        })
    }
}
