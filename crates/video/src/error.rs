//! The ways a Kinesis Video control-plane call fails, and the one place they become AWS errors
//! (type, HTTP status and message as the Kinesis Video API reference lists them).

use tideline_proto::{AwsError, ErrorCode};
use tideline_storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub(crate) enum VideoError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    InvalidResourceFormat(String),
    #[error("The requested stream is not found or not active.")]
    StreamNotFound,
    #[error("The stream {0} already exists.")]
    StreamExists(String),
    #[error("The stream {name} is not ACTIVE: its status is {status}.")]
    NotActive { name: String, status: &'static str },
    #[error("The stream version {given} does not match the current version {current}.")]
    VersionMismatch { given: String, current: String },
    #[error("The stream has reached the limit of {limit} tags.")]
    TooManyTags { limit: usize },
    #[error("The account has reached the limit of {limit} streams.")]
    AccountStreamLimit { limit: usize },
    #[error("Internal service failure: {0}")]
    Storage(#[from] StorageError),
    #[error("Internal service failure: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("Internal service failure: {0}")]
    Media(#[from] std::io::Error),
    #[error("Fragment {0} is not found.")]
    FragmentNotFound(String),
    #[error(
        "Kinesis Video Streams has throttled the request because you have exceeded the limit of allowed client connections."
    )]
    ConnectionLimit,
}

impl VideoError {
    /// The data APIs (GetMedia, ListFragments, playback) answer for a stream that is not ACTIVE
    /// as for one that does not exist: "not found or not active".
    pub fn inactive_as_not_found(self) -> Self {
        match self {
            Self::NotActive { .. } => Self::StreamNotFound,
            other => other,
        }
    }
}

impl From<VideoError> for AwsError {
    fn from(error: VideoError) -> Self {
        let message = error.to_string();
        let (name, status) = match &error {
            VideoError::InvalidArgument(_) => ("InvalidArgumentException", 400),
            VideoError::InvalidResourceFormat(_) => ("InvalidResourceFormatException", 400),
            VideoError::StreamNotFound | VideoError::FragmentNotFound(_) => ("ResourceNotFoundException", 404),
            VideoError::StreamExists(_) | VideoError::NotActive { .. } => ("ResourceInUseException", 400),
            VideoError::VersionMismatch { .. } => ("VersionMismatchException", 400),
            VideoError::TooManyTags { .. } => ("TagsPerResourceExceededLimitException", 400),
            VideoError::AccountStreamLimit { .. } => ("AccountStreamLimitExceededException", 400),
            VideoError::ConnectionLimit => ("ConnectionLimitExceededException", 400),
            VideoError::Storage(_) | VideoError::Encode(_) | VideoError::Media(_) => {
                // The server's fault, never the client's.
                tracing::error!(%message, "video storage failure");
                return AwsError::new(ErrorCode::ServiceUnavailableException, message);
            }
        };
        AwsError::new(ErrorCode::Named(name), message).with_status(status)
    }
}
