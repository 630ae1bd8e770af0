//! The ways a playback call fails, and the AWS errors they are (type, status and message as the
//! Kinesis Video archived-media API reference lists them).

use tideline_proto::{AwsError, ErrorCode};

use super::remux::RemuxError;

#[derive(Debug, thiserror::Error)]
pub(crate) enum PlaybackError {
    #[error("{0}")]
    InvalidArgument(String),
    /// A session token that is forged, altered, from another server run, or expired.
    #[error("{0}")]
    NotAuthorized(String),
    #[error("{0}")]
    NotFound(String),
    #[error("The stream does not retain data (DataRetentionInHours is 0).")]
    NoDataRetention,
    #[error("{0}")]
    Remux(#[from] RemuxError),
    #[error("Internal service failure: {0}")]
    Io(#[from] std::io::Error),
    #[error("Internal service failure: the read was interrupted.")]
    Interrupted,
}

/// What AWS answers when a session or clip selects no fragment.
pub(crate) fn no_fragments() -> PlaybackError {
    PlaybackError::NotFound("No fragments found in the stream for the streaming request.".into())
}

impl From<PlaybackError> for AwsError {
    fn from(error: PlaybackError) -> Self {
        let message = error.to_string();
        let (name, status) = match &error {
            PlaybackError::InvalidArgument(_) => ("InvalidArgumentException", 400),
            PlaybackError::NotAuthorized(_) => ("NotAuthorizedException", 403),
            PlaybackError::NotFound(_) => ("ResourceNotFoundException", 404),
            PlaybackError::NoDataRetention => ("NoDataRetentionException", 400),
            PlaybackError::Remux(remux) => match remux {
                RemuxError::UnsupportedCodec { .. } | RemuxError::NoPlayableTrack => {
                    ("UnsupportedStreamMediaTypeException", 400)
                }
                RemuxError::MissingCodecPrivateData(_) => ("MissingCodecPrivateDataException", 400),
                RemuxError::InvalidCodecPrivateData(_) => ("InvalidCodecPrivateDataException", 400),
                RemuxError::Mp4(_) => return server_fault(message),
            },
            PlaybackError::Io(_) | PlaybackError::Interrupted => return server_fault(message),
        };
        AwsError::new(ErrorCode::Named(name), message).with_status(status)
    }
}

/// The server's fault, never the client's.
fn server_fault(message: String) -> AwsError {
    tracing::error!(%message, "video playback failure");
    AwsError::new(ErrorCode::ServiceUnavailableException, message)
}
