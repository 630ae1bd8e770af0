//! How the transformation hook runs a function named by a Lambda function ARN
//! (`arn:aws:lambda:<region>:<account>:function:<name>`): through a [`FunctionInvoker`] the
//! server installs (Tideline's Lambda service implements it). Firehose does not depend on the
//! Lambda crate: Lambda delivers its on-failure records to Firehose, so the dependency runs the
//! other way, and this trait is the seam.

use std::sync::{Arc, OnceLock};

use tideline_proto::BoxFuture;

/// Why a synchronous invocation gave no answer, as Firehose reports it (its `Lambda.*` codes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvokeFailure {
    /// No such function (`Lambda.ResourceNotFound`).
    NotFound(String),
    /// The function's concurrency is used up (`Lambda.InvokeLimitExceeded`).
    Throttled(String),
    /// The handler failed or timed out (`Lambda.FunctionError`); carries its error payload.
    FunctionError(String),
}

/// Runs functions by ARN, synchronously (RequestResponse), and returns the handler's answer.
pub trait FunctionInvoker: Send + Sync {
    fn invoke<'a>(&'a self, function_arn: &'a str, event: Vec<u8>) -> BoxFuture<'a, Result<Vec<u8>, InvokeFailure>>;
}

/// Where the invoker is installed once the server has built the Lambda service (which opens
/// after Firehose); empty in a Firehose without Lambda.
pub type FunctionSlot = Arc<OnceLock<Arc<dyn FunctionInvoker>>>;

/// Whether `target` is a Lambda function ARN, rather than the invoke URL form.
pub fn is_function_arn(target: &str) -> bool {
    let mut parts = target.splitn(7, ':');
    let (arn, _, service, _, _, kind, name) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next());
    arn == Some("arn") && service == Some("lambda") && kind == Some("function") && name.is_some_and(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_arns_are_told_from_urls() {
        assert!(is_function_arn("arn:aws:lambda:us-east-1:000000000000:function:upper"));
        assert!(is_function_arn("arn:aws:lambda:us-east-1:000000000000:function:upper:$LATEST"));
        assert!(!is_function_arn("arn:aws:lambda:us-east-1:000000000000:function:"));
        assert!(!is_function_arn("arn:aws:s3:::bucket"));
        assert!(!is_function_arn("http://127.0.0.1:9000/2015-03-31/functions/function/invocations"));
    }
}
