//! Amazon Kinesis Video Streams semantics for Tideline.
//!
//! Owns: the `kinesisvideo` control plane (REST-JSON `POST /<operation>`, one handler per
//! operation): video streams and their durable metadata (under `<data-dir>/video`), data
//! retention, data endpoints and tags; playback (`playback`: HLS sessions and GetClip, remuxed
//! from stored fragments). Does not own yet: media ingest and read-back (PutMedia, GetMedia,
//! ListFragments), nor HTTP serving or flags (the `tideline` binary).

mod error;
mod model;
mod ops;
mod playback;
mod service;
mod validate;

pub use playback::PlaybackService;
pub use service::{VideoConfig, VideoService};
