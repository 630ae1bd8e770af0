//! Amazon Kinesis Video Streams semantics for Tideline.
//!
//! Owns: the `kinesisvideo` control plane (REST-JSON `POST /<operation>`, one handler per
//! operation): video streams and their durable metadata (under `<data-dir>/video`), data
//! retention, data endpoints and tags. Does not own yet: the media side (PutMedia, GetMedia,
//! ListFragments, HLS playback), nor HTTP serving or flags (the `tideline` binary).

mod error;
mod model;
mod ops;
mod playback;
mod service;
mod validate;

pub use playback::PlaybackService;
pub use service::{VideoConfig, VideoService};
