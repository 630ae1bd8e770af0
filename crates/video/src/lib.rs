//! Amazon Kinesis Video Streams semantics for Tideline.
//!
//! Owns: the `kinesisvideo` control plane (REST-JSON `POST /<operation>`, one handler per
//! operation): video streams and their durable metadata (under `<data-dir>/video`), data
//! retention, data endpoints and tags; the media side ([`media`]): PutMedia ingest, durable
//! fragments under `<data-dir>/video/media`, GetMedia, ListFragments and
//! GetMediaForFragmentList; and playback (`playback`: HLS sessions and GetClip, remuxed from the
//! stored fragments). Does not own: HTTP serving or flags (the `tideline` binary).

mod error;
pub mod media;
mod model;
mod ops;
mod playback;
mod service;
mod validate;

pub use playback::PlaybackService;
pub use service::{VideoConfig, VideoService};
