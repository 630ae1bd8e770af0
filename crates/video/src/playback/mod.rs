//! Kinesis Video playback: HLS sessions (fragmented MP4) and GetClip, remuxed from the stored
//! Matroska fragments without transcoding.
//!
//! Owns: `POST /getHLSStreamingSessionURL` and `POST /getClip` (signed like every archived-media
//! call), the HLS resources under `/hls/v1/` (public: their session token, sealed by
//! [`session`], is their credential), and the refusals of DASH, GetImages and MPEG-TS.
//! Reads the PutMedia fragment store through [`archive`]; owns neither ingest nor storage.
//! Pieces: [`remux`] writes a fragment's MP4, [`playlist`] the HLS playlists.

mod archive;
mod error;
mod ops;
mod playlist;
mod remux;
mod session;
#[cfg(test)]
mod testing;

use std::sync::{Arc, LazyLock};

use http::Method;
use tideline_proto::{AwsError, BoxFuture, Call, Reply, RestOperations, Route, Service};

use error::PlaybackError;
use session::Sealer;

use crate::service::VideoService;

/// Where the HLS resources live: `<endpoint>/hls/v1/<resource>`, as AWS's session URLs read.
const HLS_PREFIX: &str = "/hls/v1/";

/// The paths of [`OPERATIONS`], which are the service's route.
const PATHS: &[&str] = &[
    "/getHLSStreamingSessionURL",
    "/getDASHStreamingSessionURL",
    "/getClip",
    "/getImages",
    "/hls/v1/getHLSMasterPlaylist.m3u8",
    "/hls/v1/getHLSMediaPlaylist.m3u8",
    "/hls/v1/getMP4InitFragment.mp4",
    "/hls/v1/getMP4MediaFragment.mp4",
];

static OPERATIONS: LazyLock<RestOperations<PlaybackService>> = LazyLock::new(|| {
    RestOperations::new()
        .route(Method::POST, "/getHLSStreamingSessionURL", "GetHLSStreamingSessionURL", ops::hls_session_url)
        .route(Method::POST, "/getDASHStreamingSessionURL", "GetDASHStreamingSessionURL", ops::dash_session_url)
        .route(Method::POST, "/getClip", "GetClip", ops::clip)
        .route(Method::POST, "/getImages", "GetImages", ops::images)
        .route(Method::GET, "/hls/v1/getHLSMasterPlaylist.m3u8", "GetHLSMasterPlaylist", ops::master_playlist)
        .route(Method::GET, "/hls/v1/getHLSMediaPlaylist.m3u8", "GetHLSMediaPlaylist", ops::media_playlist)
        .route(Method::GET, "/hls/v1/getMP4InitFragment.mp4", "GetMP4InitFragment", ops::init_fragment)
        .route(Method::GET, "/hls/v1/getMP4MediaFragment.mp4", "GetMP4MediaFragment", ops::media_fragment)
});

/// Kinesis Video playback on Tideline's port.
pub struct PlaybackService {
    video: Arc<VideoService>,
    sealer: Sealer,
}

/// Runs `work` (remuxing a fragment or a clip: CPU work in proportion to its size) off the
/// runtime's threads.
async fn off_runtime<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, PlaybackError> + Send + 'static,
) -> Result<T, PlaybackError> {
    tokio::task::spawn_blocking(work).await.map_err(|_| PlaybackError::Interrupted)?
}

/// The name, in the video metadata store, of the key session tokens are sealed with: kept, so
/// that session URLs handed out before a restart still play after it (until they expire).
const SESSION_KEY: &str = "hls-session-key";

impl VideoService {
    /// Playback of this service's streams, served beside it on the same port.
    pub async fn playback(self: &Arc<Self>) -> Result<Arc<PlaybackService>, tideline_storage::StorageError> {
        let key = self.durable_secret(SESSION_KEY).await?;
        Ok(Arc::new(PlaybackService { video: Arc::clone(self), sealer: Sealer::new(key) }))
    }
}

impl Service for PlaybackService {
    fn name(&self) -> &'static str {
        "kinesisvideo-playback"
    }

    fn route(&self) -> Route {
        Route::Paths(PATHS)
    }

    /// Archived-media clients sign as Kinesis Video.
    fn signing_name(&self) -> &'static str {
        "kinesisvideo"
    }

    fn operation_name(&self, call: &Call<'_>) -> Option<&'static str> {
        OPERATIONS.name_of(call)
    }

    fn handle<'a>(&'a self, call: Call<'a>) -> BoxFuture<'a, Result<Reply, AwsError>> {
        Box::pin(OPERATIONS.dispatch(self, call))
    }

    /// Players fetch the HLS resources unsigned: the session token they carry is checked instead.
    fn is_public(&self, head: &http::request::Parts) -> bool {
        head.uri.path().starts_with(HLS_PREFIX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_route_names_every_operation_of_the_table() {
        for path in PATHS {
            let method = if path.starts_with(HLS_PREFIX) { Method::GET } else { Method::POST };
            let head = http::Request::builder().method(method).uri(*path).body(()).unwrap().into_parts().0;
            let call = Call { head: &head, ..Call::in_process(path, tideline_proto::Codec::Json, b"") };
            assert!(OPERATIONS.name_of(&call).is_some(), "{path} is routed but has no operation");
        }
    }
}
