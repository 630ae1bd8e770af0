//! The Lambda API's errors: one enum, each variant carrying AWS's error type and HTTP status.

/// An error as a Lambda client sees it: `x-amzn-ErrorType` names [`LambdaError::error_type`], the
/// response status is [`LambdaError::status`], the JSON body carries `message`, `Type` and (for a
/// throttle) `Reason` ([`LambdaError::members`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LambdaError {
    #[error("{0}")]
    InvalidParameterValue(String),
    #[error("{0}")]
    ResourceNotFound(String),
    #[error("{0}")]
    ResourceConflict(String),
    #[error("{0}")]
    ResourceInUse(String),
    /// An invocation over a concurrency limit; the body's `Reason` says which.
    #[error("Rate Exceeded.")]
    TooManyRequests(Throttle),
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("{0}")]
    RequestTooLarge(String),
    #[error("{0}")]
    InvalidRequestContent(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A path and method that name no operation.
    #[error("{0}")]
    UnknownOperation(String),
    /// A 1.x-only field out of range or malformed: AWS's REST-JSON model validation error.
    #[error("{0}")]
    Validation(String),
    /// A Tideline fault (disk, runtime process start).
    #[error("{0}")]
    Service(String),
}

/// Which limit refused an invocation: TooManyRequestsException's `Reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttle {
    /// The server's (`--lambda-max-concurrency`), AWS's account concurrency.
    Concurrency,
    /// The function's reserved concurrency (PutFunctionConcurrency).
    ReservedConcurrency,
}

impl Throttle {
    fn reason(self) -> &'static str {
        match self {
            Self::Concurrency => "ConcurrentInvocationLimitExceeded",
            Self::ReservedConcurrency => "ReservedFunctionConcurrentInvocationLimitExceeded",
        }
    }
}

impl LambdaError {
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::InvalidParameterValue(_) => "InvalidParameterValueException",
            Self::ResourceNotFound(_) => "ResourceNotFoundException",
            Self::ResourceConflict(_) => "ResourceConflictException",
            Self::ResourceInUse(_) => "ResourceInUseException",
            Self::TooManyRequests(_) => "TooManyRequestsException",
            Self::PreconditionFailed(_) => "PreconditionFailedException",
            Self::RequestTooLarge(_) => "RequestTooLargeException",
            Self::InvalidRequestContent(_) => "InvalidRequestContentException",
            Self::UnsupportedMediaType(_) => "UnsupportedMediaTypeException",
            Self::UnknownOperation(_) => "UnknownOperationException",
            Self::Validation(_) => "ValidationException",
            Self::Service(_) => "ServiceException",
        }
    }

    /// The status AWS documents for each error type (API reference, "Errors").
    pub fn status(&self) -> u16 {
        match self {
            Self::ResourceNotFound(_) | Self::UnknownOperation(_) => 404,
            Self::ResourceConflict(_) => 409,
            Self::TooManyRequests(_) => 429,
            Self::PreconditionFailed(_) => 412,
            Self::RequestTooLarge(_) => 413,
            Self::UnsupportedMediaType(_) => 415,
            Self::Service(_) => 500,
            _ => 400,
        }
    }

    /// `User` for client faults, `Service` for ours: the body's `Type` field.
    pub fn fault(&self) -> &'static str {
        match self {
            Self::Service(_) => "Service",
            _ => "User",
        }
    }

    pub fn message(&self) -> String {
        self.to_string()
    }

    /// The body's members besides the message: `Type`, and a throttle's `Reason`.
    pub fn members(&self) -> Vec<(&'static str, &'static str)> {
        let mut members = vec![("Type", self.fault())];
        if let Self::TooManyRequests(throttle) = self {
            members.push(("Reason", throttle.reason()));
        }
        members
    }

    pub fn not_found_function(arn: &str) -> Self {
        Self::ResourceNotFound(format!("Function not found: {arn}"))
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidParameterValue(message.into())
    }

    pub fn service(message: impl std::fmt::Display) -> Self {
        Self::Service(message.to_string())
    }
}

pub type Result<T, E = LambdaError> = std::result::Result<T, E>;
