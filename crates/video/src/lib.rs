//! Amazon Kinesis Video Streams semantics for Tideline.
//!
//! Owns: the `kinesisvideo` control plane (REST-JSON `POST /<operation>`, one handler per
//! operation): video streams and their durable metadata (under `<data-dir>/video`), data
//! retention, data endpoints and tags; and the media side ([`media`]): PutMedia ingest, durable
//! fragments under `<data-dir>/video/media`, GetMedia, ListFragments and
//! GetMediaForFragmentList. Does not own: HLS playback, HTTP serving or flags (the `tideline`
//! binary).

mod error;
pub mod media;
mod model;
mod ops;
mod service;
mod validate;

pub use service::{VideoConfig, VideoService};
