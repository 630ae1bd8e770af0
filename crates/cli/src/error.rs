//! The client's one error type: AWS errors keep their type and message as the server sent them.

use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// An error the service answered with, e.g. `ResourceNotFoundException`.
    #[error("{code}: {message}")]
    Aws { code: String, message: String },
    /// The request did not get an answer (connection refused, timeout, bad endpoint URL).
    #[error("{0}")]
    Request(String),
    /// Arguments or input the client cannot send.
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl CliError {
    /// The error type shown to scripts (`--output json`).
    pub fn kind(&self) -> &str {
        match self {
            CliError::Aws { code, .. } => code,
            CliError::Request(_) => "RequestError",
            CliError::Usage(_) => "UsageError",
            CliError::Io(_) => "IoError",
        }
    }

    pub fn message(&self) -> String {
        match self {
            CliError::Aws { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }
}

// One impl for Kinesis and Firehose: both SDKs share the smithy runtime's error types.
impl<E, R> From<SdkError<E, R>> for CliError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    fn from(error: SdkError<E, R>) -> Self {
        match error.code() {
            Some(code) => {
                CliError::Aws { code: code.to_owned(), message: error.message().unwrap_or_default().to_owned() }
            }
            // The causes' own words, without the Debug dump DisplayErrorContext adds.
            None => {
                let mut message = error.to_string();
                let mut source = std::error::Error::source(&error);
                while let Some(cause) = source {
                    message = format!("{message}: {cause}");
                    source = cause.source();
                }
                CliError::Request(message)
            }
        }
    }
}

pub type Result<T, E = CliError> = std::result::Result<T, E>;
