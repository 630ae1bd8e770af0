use serde::Serialize;

use crate::Codec;

/// The AWS error types Tideline returns. The wire name is what clients match on, so it must be exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    AccessDenied,
    ConcurrentModification,
    ExpiredIterator,
    ExpiredNextToken,
    IncompleteSignature,
    InternalFailure,
    InvalidArgument,
    InvalidSignature,
    LimitExceeded,
    MissingAuthenticationToken,
    ProvisionedThroughputExceeded,
    /// A request body over the size the server reads.
    RequestEntityTooLarge,
    /// A request body that did not arrive in time.
    RequestTimeout,
    ResourceInUse,
    ResourceNotFound,
    Serialization,
    ServiceUnavailable,
    /// Firehose's name for ServiceUnavailable.
    ServiceUnavailableException,
    UnknownOperation,
    UnrecognizedClient,
    Validation,
    /// An error type of one service's own (Lambda's `ResourceConflictException`, …), by its wire
    /// name; its status is 400 unless the error sets another ([`AwsError::with_status`]).
    Named(&'static str),
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccessDenied => "AccessDeniedException",
            Self::ConcurrentModification => "ConcurrentModificationException",
            Self::ExpiredIterator => "ExpiredIteratorException",
            Self::ExpiredNextToken => "ExpiredNextTokenException",
            Self::IncompleteSignature => "IncompleteSignatureException",
            Self::InternalFailure => "InternalFailure",
            Self::InvalidArgument => "InvalidArgumentException",
            Self::InvalidSignature => "InvalidSignatureException",
            Self::LimitExceeded => "LimitExceededException",
            Self::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            Self::ProvisionedThroughputExceeded => "ProvisionedThroughputExceededException",
            Self::RequestEntityTooLarge => "RequestEntityTooLargeException",
            Self::RequestTimeout => "RequestTimeoutException",
            Self::ResourceInUse => "ResourceInUseException",
            Self::ResourceNotFound => "ResourceNotFoundException",
            Self::Serialization => "SerializationException",
            Self::ServiceUnavailable => "ServiceUnavailable",
            Self::ServiceUnavailableException => "ServiceUnavailableException",
            Self::UnknownOperation => "UnknownOperationException",
            Self::UnrecognizedClient => "UnrecognizedClientException",
            Self::Validation => "ValidationException",
            Self::Named(name) => name,
        }
    }

    /// HTTP status: Kinesis answers every client fault, authentication ones included, with 400
    /// (as observed from the real service) and its own faults with 5xx.
    pub fn status(self) -> u16 {
        match self {
            Self::InternalFailure => 500,
            Self::ServiceUnavailable | Self::ServiceUnavailableException => 503,
            Self::RequestEntityTooLarge => 413,
            Self::RequestTimeout => 408,
            _ => 400,
        }
    }
}

/// An error as the client will see it: `{"__type": ..., "message": ...}` with the code's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsError {
    pub code: ErrorCode,
    pub message: Option<String>,
    /// Set by REST-JSON services, whose error types each have their own status (404, 409, 429…).
    status: Option<u16>,
    /// Members of the error's shape besides its type and message (Lambda's `Type`, and a
    /// throttle's `Reason`), written after them.
    members: Vec<(&'static str, &'static str)>,
}

struct ErrorBody<'a> {
    kind: &'static str,
    message: Option<&'a str>,
    members: &'a [(&'static str, &'static str)],
}

impl Serialize for ErrorBody<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("__type", self.kind)?;
        if let Some(message) = self.message {
            map.serialize_entry("message", message)?;
        }
        for (name, value) in self.members {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl AwsError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: Some(message.into()), status: None, members: Vec::new() }
    }

    pub fn bare(code: ErrorCode) -> Self {
        Self { code, message: None, status: None, members: Vec::new() }
    }

    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ResourceNotFound, message)
    }

    pub fn in_use(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ResourceInUse, message)
    }

    pub fn limit_exceeded(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::LimitExceeded, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InternalFailure, message)
    }

    /// The same error answered with another HTTP status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    pub fn status(&self) -> u16 {
        self.status.unwrap_or_else(|| self.code.status())
    }

    /// The same error with one more member in its body.
    pub fn with_member(mut self, name: &'static str, value: &'static str) -> Self {
        self.members.push((name, value));
        self
    }

    /// The response body in the request's codec.
    pub fn to_body(&self, codec: Codec) -> Vec<u8> {
        codec.encode(&ErrorBody { kind: self.code.as_str(), message: self.message.as_deref(), members: &self.members })
    }
}

impl std::fmt::Display for AwsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.message {
            Some(message) => write!(f, "{}: {}", self.code.as_str(), message),
            None => f.write_str(self.code.as_str()),
        }
    }
}

impl std::error::Error for AwsError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_follow_the_message_in_the_body() {
        let error = AwsError::new(ErrorCode::Named("TooManyRequestsException"), "Rate Exceeded.")
            .with_member("Type", "User")
            .with_member("Reason", "ConcurrentInvocationLimitExceeded");
        assert_eq!(
            String::from_utf8(error.to_body(Codec::Json)).unwrap(),
            r#"{"__type":"TooManyRequestsException","message":"Rate Exceeded.","Type":"User","Reason":"ConcurrentInvocationLimitExceeded"}"#
        );
    }

    #[test]
    fn json_error_body_has_type_and_message() {
        let error = AwsError::not_found("Stream s under account 000000000000 not found.");
        let body: serde_json::Value = serde_json::from_slice(&error.to_body(Codec::Json)).unwrap();
        assert_eq!(body["__type"], "ResourceNotFoundException");
        assert_eq!(body["message"], "Stream s under account 000000000000 not found.");
        assert_eq!(error.status(), 400);
    }

    #[test]
    fn bare_error_has_no_message() {
        let body = AwsError::bare(ErrorCode::UnknownOperation).to_body(Codec::Json);
        assert_eq!(body, br#"{"__type":"UnknownOperationException"}"#);
    }
}
